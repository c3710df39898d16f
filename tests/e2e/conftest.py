"""Browser-test fixtures: the trained synthetic home served once per session by
``hepatrack serve``, one Chromium for the session, and signing in through the login form.

Accounts are created with ``analytics.auth.create_user`` (:func:`add_users`); the shared
home (tests/dashboard_data.py) already has one per role with :data:`PASSWORD`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import dashboard_data, services

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
UI_TIMEOUT_MS = 30_000
MENU = ".st-key-shell-menu"  # the shell's page menu (st.page_link links in the sidebar)
PASSWORD = dashboard_data.PASSWORD
#: the laptop size the layout is checked at (and projectors at 1280x720 and up)
VIEWPORT = {"width": 1280, "height": 800}


def add_users(store, users: dict[str, str], password: str = PASSWORD) -> None:
    """Create ``{username: role}`` accounts (``analytics.auth.create_user``)."""
    from analytics.auth import create_user

    for name, role in users.items():
        create_user(store, name, role, password)


def login(page, url: str, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form (a page load is a new Streamlit session)."""
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).and_(page.get_by_role("textbox")).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.locator(MENU).wait_for(timeout=UI_TIMEOUT_MS)


def shot(page, name: str) -> Path:
    """Save a full-page screenshot to test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # Streamlit scrolls inside its main block: grow the viewport to the content to see it all
    size = page.viewport_size
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=\"stMain\"], [data-testid=\"stMainBlockContainer\"]"
                           "')].map(e => e.scrollHeight), document.body.scrollHeight)")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(800)  # charts re-lay out at the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory) -> Iterator[tuple[str, dashboard_data.DashboardHome,
                                                         Path]]:
    """``(url, template, home)``: a copy of the trained home served for the session."""
    from tests.e2e.test_browser import hepatrack_server

    services.chromium_path()  # fail or skip before the (slow) home is built
    t = dashboard_data.template(tmp_path_factory)
    root = tmp_path_factory.mktemp("e2e-dashboard")
    home = dashboard_data.copy_home(t, root / "home")
    with hepatrack_server(home, root / "serve.log") as url:
        yield url, t, home


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[object]:
    """One headless Debian Chromium for the session (Playwright)."""
    path = services.chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=services.CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
