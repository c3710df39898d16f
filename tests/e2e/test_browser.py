"""Real browser against a real server: ``hepatrack serve`` on 127.0.0.1, Debian's Chromium.

The screenshot goes to test-artifacts/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.config import Settings
from analytics.store import open_store
from tests import services
from tests.store.seed import seed_small_cohort

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
START_TIMEOUT_S = 60
UI_TIMEOUT_MS = 30_000


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200 and r.read().strip() == b"ok"
    except OSError:
        return False


@contextlib.contextmanager
def hepatrack_server(home: Path, log: Path) -> Iterator[str]:
    """``hepatrack --home HOME serve`` on a free port; yields its URL; always stopped."""
    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if k != "HEPATRACK_DB_URL"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "analytics", "--home", str(home), "serve",
             "--port", str(port), "--address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"hepatrack serve exited with {proc.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"hepatrack serve not healthy within {START_TIMEOUT_S} s: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.timeout(180)
def test_cohort_page_in_a_real_browser(settings: Settings, tmp_path: Path):
    chromium = services.chromium_path()
    from playwright.sync_api import sync_playwright

    store = open_store(settings)
    seed_small_cohort(store)
    store.dispose()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with hepatrack_server(settings.home, tmp_path / "serve.log") as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # first visitor of a fresh server opens a page URL directly: Streamlit's legacy
            # pages/ mode would run the page without app.py; it must land in the shell
            page.goto(f"{url}/patient?patient=HT-0002")
            page.get_by_role("heading", name="Cohort").wait_for(timeout=UI_TIMEOUT_MS)
            nav = page.locator('[data-testid="stSidebarNav"]')
            assert nav.inner_text().split() == ["groups", "Cohort", "person", "Patient"]
            page.locator('[data-testid="stDataFrame"]').wait_for(timeout=UI_TIMEOUT_MS)
            # the grid's accessible cells hold the values drawn on its canvas
            cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"]')
            cells.filter(has_text="HT-0003").first.wait_for(state="attached",
                                                            timeout=UI_TIMEOUT_MS)
            shown = set(cells.all_inner_texts())
            assert {"HT-0001", "HT-0002", "HT-0003"} <= shown
            assert "Doe^Jane" not in shown  # not logged in: pseudonymised view
            # pseudonyms are visible to a person on the follow-up chart's axis
            assert page.locator("svg text", has_text="HT-0001").first.is_visible()
            sidebar = page.locator('[data-testid="stSidebar"]')
            assert "3 patients" in sidebar.inner_text()
            page.screenshot(path=str(SCREENSHOTS / "cohort.png"), full_page=True)

            page.get_by_label("Search by pseudonym").fill("0002")
            page.keyboard.press("Enter")
            page.get_by_text("1 of 3 patients").wait_for(timeout=UI_TIMEOUT_MS)
            assert "3 patients" in sidebar.inner_text()  # the shell survives a rerun
            page.screenshot(path=str(SCREENSHOTS / "cohort_search.png"), full_page=True)

            # a deep link now opens the patient page inside the shell
            page.goto(f"{url}/patient?patient=HT-0002")
            page.get_by_role("heading", name="HT-0002").wait_for(timeout=UI_TIMEOUT_MS)
            page.get_by_text("Studies and series").wait_for(timeout=UI_TIMEOUT_MS)
            assert "3 patients" in sidebar.inner_text()
            page.screenshot(path=str(SCREENSHOTS / "patient.png"), full_page=True)
        finally:
            browser.close()
    assert (SCREENSHOTS / "cohort.png").stat().st_size > 10_000
