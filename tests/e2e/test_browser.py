"""Real browser against a real server: ``hepatrack serve`` on 127.0.0.1, Debian's Chromium.

The screenshot goes to test-artifacts/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import os
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
from tests.app.conftest import seed_without_model
from tests.e2e.conftest import MENU, UI_TIMEOUT_MS, login
from tests.e2e.conftest import PASSWORD as PW

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
START_TIMEOUT_S = 240  # health answers once the shared caches are built (ui/warmup.py)


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
        services.stop(proc)


REAL_NAMES = ("Doe", "Jane", "Roe", "Richard")  # tests/store/seed.py identity map


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.timeout(240)
def test_login_gate_and_cohort_page_in_a_real_browser(settings: Settings, tmp_path: Path,
                                                      chromium_browser):
    from analytics import auth

    store = open_store(settings)
    seed_without_model(store)  # the seed's registry row has no artifact
    auth.create_user(store, "ana", "researcher", PW)
    auth.create_user(store, "dr.who", "clinician", PW)
    store.dispose()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # the session's one Chromium (tests/e2e/conftest.py): a second Playwright in the same
    # thread would refuse to start while the first one's loop is open
    with hepatrack_server(settings.home, tmp_path / "serve.log") as url:
        context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            # an unauthenticated visit to any page lands on the login form; the very first
            # one on a fresh server also checks Streamlit's legacy pages/ mode is closed
            for path in ("/patient?patient=HT-0002", "/", "/cohort", "/audit", "/users"):
                page.goto(f"{url}{path}")
                try:
                    page.get_by_role("button", name="Sign in").wait_for(timeout=UI_TIMEOUT_MS)
                except Exception:
                    page.screenshot(path=str(SCREENSHOTS / "failed_login_gate.png"))
                    raise AssertionError(f"no login form at {path}") from None
                body = page.locator("body").inner_text()
                assert "HT-000" not in body and "Doe^Jane" not in body and "Jane DOE" not in body, path
                assert not page.locator(MENU).count(), path
                assert not page.locator('[data-testid="stSidebarNav"]').count(), path
            page.screenshot(path=str(SCREENSHOTS / "login.png"), full_page=True)

            page.get_by_label("Username").fill("ana")
            page.get_by_label("Password", exact=True).and_(page.get_by_role("textbox")).fill("wrong password!!")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("unknown user or wrong password").wait_for(timeout=UI_TIMEOUT_MS)

            login(page, url, "ana")
            nav = page.locator(MENU)
            nav.get_by_text("Patient").wait_for(timeout=UI_TIMEOUT_MS)
            # researchers: pseudonymised views, ultrasound measurement (not saving) and
            # models; no MDT, ingest or admin pages
            assert nav.inner_text().split() == ["groups", "Cohort", "person", "Patient",
                                                "straighten", "Ultrasound",
                                                "model_training", "Models"]
            page.locator('[data-testid="stDataFrame"]').wait_for(timeout=UI_TIMEOUT_MS)
            # the grid's accessible cells hold the values drawn on its canvas
            cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"]')
            cells.filter(has_text="HT-0003").first.wait_for(state="attached",
                                                            timeout=UI_TIMEOUT_MS)
            shown = set(cells.all_inner_texts())
            assert {"HT-0001", "HT-0002", "HT-0003"} <= shown
            assert not any("Doe" in c or "Roe" in c for c in shown)  # researcher view
            # pseudonyms are visible to a person on the follow-up chart's axis (a chart
            # drawn when chosen: the page opens with the table only)
            page.locator(".st-key-cohort-charts").get_by_text("Follow-up", exact=True).click()
            page.locator("svg text", has_text="HT-0001").first.wait_for(timeout=UI_TIMEOUT_MS)
            sidebar = page.locator('[data-testid="stSidebar"]')
            assert "3 patients" in sidebar.inner_text()
            page.screenshot(path=str(SCREENSHOTS / "cohort.png"), full_page=True)

            page.get_by_label("Search by pseudonym").fill("0002")
            page.keyboard.press("Enter")
            page.get_by_text("1 of 3 patients").wait_for(timeout=UI_TIMEOUT_MS)
            assert "3 patients" in sidebar.inner_text()  # the shell survives a rerun
            page.screenshot(path=str(SCREENSHOTS / "cohort_search.png"), full_page=True)

            page.locator(MENU).get_by_text("Patient").click()
            page.get_by_text("Studies and series").wait_for(timeout=UI_TIMEOUT_MS)
            body = page.locator("body").inner_text()
            assert not any(n in body for n in REAL_NAMES), "real name on the patient page"
            page.screenshot(path=str(SCREENSHOTS / "patient.png"), full_page=True)

            page.locator(MENU).get_by_text("Models").click()
            page.get_by_role("heading", name="Models").wait_for(timeout=UI_TIMEOUT_MS)
            body = page.locator("body").inner_text()
            assert not any(n in body for n in REAL_NAMES), "real name on the models page"

            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Sign in").wait_for(timeout=UI_TIMEOUT_MS)
            # the previous page's elements are removed when the login run ends
            page.wait_for_function("() => !document.body.innerText.includes('HT-000')",
                                   timeout=UI_TIMEOUT_MS)
        finally:
            context.close()
    assert (SCREENSHOTS / "cohort.png").stat().st_size > 10_000
