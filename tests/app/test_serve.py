"""``hepatrack serve``: the command line, environment and directory it runs Streamlit with."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from analytics.cli import main
from analytics.commands import serve
from analytics.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_runs_streamlit_on_app_py_from_the_project_directory():
    assert serve.project_dir() == ROOT
    assert (ROOT / ".streamlit" / "config.toml").exists()
    assert serve.streamlit_command(8600, "0.0.0.0") == [
        sys.executable, "-m", "streamlit", "run", "webapp.py",
        "--server.port", "8600", "--server.address", "0.0.0.0"]


def test_environment_passes_the_absolute_home_and_drops_streamlit_overrides(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION", "false")
    monkeypatch.setenv("HEPATRACK_DB_URL", "postgresql://db.example/h")
    env = serve.serve_environment(load_settings("relative-home"))
    assert env["HEPATRACK_HOME"] == str(tmp_path / "relative-home")
    assert env["HEPATRACK_DB_URL"] == "postgresql://db.example/h"
    assert not [k for k in env if k.startswith("STREAMLIT_")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["serve", "--port", "0"], "--port 0: expected a TCP port between 1 and 65535",
                     id="port-zero"),
        pytest.param(["serve", "--port", "70000"], "--port 70000: expected a TCP port",
                     id="port-too-big"),
    ],
)
def test_bad_port_is_bad_input(home, capsys, argv, message):
    assert main(["--home", str(home), *argv]) == 2
    assert message in capsys.readouterr().err


def test_unreachable_database_fails_before_starting(home, capsys, monkeypatch):
    # port 1 on loopback refuses at once: exit 2 with the reason, no server started
    monkeypatch.setenv("HEPATRACK_DB_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["--home", str(home), "serve", "--port", "8599"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hepatrack serve: ") and "127.0.0.1:1" in err
