"""``hepatrack serve``: run the dashboard (``streamlit run webapp.py``).

Streamlit reads ``.streamlit/config.toml`` from its working directory, so the server runs
in the project directory (where ``app.py`` and the hardened config live) and gets the
home directory through ``HEPATRACK_HOME``; a relative ``--home`` is resolved first.
``webapp.py`` serves ``app.py`` as an ``st.App`` behind ``ui.webguard`` (security
headers, no anonymous metrics, downloads bound to the browser that asked, once).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from analytics.cli import EXIT_OK, CommandResult, command
from analytics.config import Settings
from analytics.errors import ConfigError
from analytics.store.db import open_store

#: the project directory: app.py, pages/, ui/ and .streamlit/ sit beside analytics/
PROJECT_DIR = Path(__file__).resolve().parents[2]


def project_dir() -> Path:
    """The directory holding ``app.py`` and ``.streamlit/config.toml``.

    Raises
    ------
    ConfigError
        If the package was installed without the dashboard files (not from a checkout).
    """
    missing = [p for p in ("app.py", "webapp.py", ".streamlit/config.toml")
               if not (PROJECT_DIR / p).exists()]
    if missing:
        raise ConfigError(f"{PROJECT_DIR}: dashboard files {missing} not found; expected a "
                          "HepaTrack checkout installed with `pip install -e .`")
    return PROJECT_DIR


def streamlit_command(port: int, address: str) -> list[str]:
    """The command line that starts the dashboard server."""
    return [sys.executable, "-m", "streamlit", "run", "webapp.py",
            "--server.port", str(port), "--server.address", address]


def serve_environment(settings: Settings) -> dict[str, str]:
    """The server's environment: ours, with the absolute home and no Streamlit overrides.

    ``STREAMLIT_*`` variables would override the hardened config file (XSRF, error
    details, usage statistics), so they are not passed on.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env["HEPATRACK_HOME"] = str(settings.home)
    return env


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: expected a TCP port between 1 and 65535")


@command("serve")
def serve(args: argparse.Namespace, settings: Settings) -> CommandResult:
    """Run the dashboard in the foreground until interrupted; returns Streamlit's status."""
    _check_port(args.port)
    cwd = project_dir()
    # migrate before the first page view, so a bad database URL fails here with exit 2
    open_store(settings).dispose()
    cmd = streamlit_command(args.port, args.address)
    print(f"HepaTrack dashboard on http://{args.address}:{args.port} "
          f"(home {settings.home}); Ctrl+C stops it", flush=True)
    proc = subprocess.Popen(cmd, cwd=cwd, env=serve_environment(settings))
    # a SIGTERM to us (service manager, `timeout`) stops the server too, never orphans it
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: proc.send_signal(signum))
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
    return CommandResult({"port": args.port, "address": args.address, "exit_code": code},
                         exit_code=EXIT_OK if code in (0, -signal.SIGINT, -signal.SIGTERM)
                         else code)
