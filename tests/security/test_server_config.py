"""The shipped Streamlit configuration is hardened (RELIABILITY.md 21)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_xsrf_protection_on():
    assert CONFIG["server"]["enableXsrfProtection"] is True


def test_error_details_hidden_from_the_browser():
    assert CONFIG["client"]["showErrorDetails"] in ("none", False)


def test_usage_statistics_off():
    assert CONFIG["browser"]["gatherUsageStats"] is False


def test_tables_offer_no_unaudited_download_or_copy_of_their_own():
    """A table toolbar's CSV download would take identified rows past the audit trail
    (RELIABILITY.md 35); pages offer audited downloads instead (ui/downloads.py)."""
    assert CONFIG["client"]["disableDataExport"] is True


def test_upload_size_limit_set():
    mb = CONFIG["server"]["maxUploadSize"]
    assert isinstance(mb, int) and 0 < mb <= 4096


def test_streamlit_has_no_known_upload_or_path_traversal_advisories():
    assert Version(version("streamlit")) >= Version("1.54")


def test_streamlit_accepts_every_key():
    """A misspelt key is silently ignored by Streamlit; check each one is a real option."""
    from streamlit import config as st_config

    known = set(st_config._config_options_template)
    for section, values in CONFIG.items():
        for key in values:
            assert f"{section}.{key}" in known, f"unknown Streamlit option {section}.{key}"
