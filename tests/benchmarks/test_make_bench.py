"""``make bench``: every benchmark runs, and one that fails makes the target fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _venv(tmp_path: Path) -> Path:
    """A stand-in virtualenv whose install steps are already done (nothing is installed)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    newer = (ROOT / "pyproject.toml").stat().st_mtime + 10
    for name in (".installed", ".installed-test"):
        (venv / name).touch()
        os.utime(venv / name, (newer, newer))
    return venv


def _bench(tmp_path: Path, scripts: dict[str, str]) -> subprocess.CompletedProcess:
    paths = []
    for name, body in scripts.items():
        p = tmp_path / name
        p.write_text(f"import pathlib\npathlib.Path({str(p) + '.ran'!r}).touch()\n{body}\n")
        paths.append(str(p))
    return subprocess.run(["make", "-s", "-C", str(ROOT), "bench", f"VENV={_venv(tmp_path)}",
                           f"BENCHMARKS={' '.join(paths)}"],
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_failing_benchmark_fails_make_bench_after_every_benchmark_ran(tmp_path):
    res = _bench(tmp_path, {"broken.py": "assert 1 == 2, 'tables differ'",
                            "fine.py": "print('fine')"})
    assert res.returncode != 0
    assert (tmp_path / "broken.py.ran").exists() and (tmp_path / "fine.py.ran").exists()
    assert f"bench: failed: {tmp_path / 'broken.py'}" in res.stdout
    assert "fine" in res.stdout


def test_make_bench_succeeds_when_every_benchmark_succeeds(tmp_path):
    res = _bench(tmp_path, {"one.py": "print('one')", "two.py": "print('two')"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "bench: failed" not in res.stdout
    assert (tmp_path / "one.py.ran").exists() and (tmp_path / "two.py.ran").exists()
