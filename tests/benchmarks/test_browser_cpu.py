"""The browser benchmark's CPU clock of the browser: Playwright's driver and every process
under it, not the dashboard servers beside it (checked against /proc by hand)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.browser import browser_cpu_seconds

#: burns ``argv[1]`` CPU seconds, writes "done" to ``argv[2]``, then sleeps (its CPU clock
#: stays put while the test reads it)
BURN = """import sys, time
t = time.process_time()
while time.process_time() - t < float(sys.argv[1]):
    pass
open(sys.argv[2], "w").write("done")
time.sleep(60)
"""

#: a stand-in for the benchmark's process: a "driver" (named as Playwright's is) burning
#: 0.2 s with a child burning 0.3 s, and a "server" burning 0.4 s beside it
DRIVER = """import subprocess, sys
burn, out = sys.argv[1], sys.argv[2]
subprocess.Popen([sys.executable, "-c", burn, "0.3", out + "/child"])
sys.argv = ["-c", "0.2", out + "/driver"]
exec(burn)
"""
LAUNCHER = """import subprocess, sys
burn, out, driver = sys.argv[1], sys.argv[2], sys.argv[3]
subprocess.Popen([sys.executable, "-c", driver, burn, out, "run-driver"])
subprocess.Popen([sys.executable, "-c", burn, "0.4", out + "/server", "serve"])
sys.stdin.read()
"""


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _is_driver(pid: int) -> bool:
    return b"run-driver" in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_the_browser_clock_sums_the_driver_and_its_children_and_leaves_out_the_servers(
        tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, BURN, str(tmp_path), DRIVER],
                                stdin=subprocess.PIPE)
    started: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / n).exists() for n in ("driver", "child", "server")):
            assert time.monotonic() < deadline, "the stand-in processes did not finish"
            time.sleep(0.05)
        kids = _children(launcher.pid)
        driver = next(c for c in kids if _is_driver(c))
        server = next(c for c in kids if c != driver)
        started = [*kids, *_children(driver)]
        by_hand = _cpu(driver) + sum(_cpu(c) for c in _children(driver))

        got = browser_cpu_seconds(parent=launcher.pid)

        assert by_hand >= 0.5  # the driver's 0.2 s and its child's 0.3 s
        assert got == by_hand
        assert _cpu(server) >= 0.4  # the server's 0.4 s is not in it
    finally:
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        launcher.kill()
        launcher.wait()


def test_without_a_driver_there_is_no_browser_clock():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert browser_cpu_seconds(parent=child.pid) is None
    finally:
        child.kill()
