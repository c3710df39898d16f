"""In real Chromium against ``hepatrack serve``: a clinician's identified cohort table
downloads as CSV through the page's button, the download is in the audit trail, and the
table's own toolbar offers no download that would pass the trail by."""

from __future__ import annotations

import csv
import re

import pytest

from analytics import audit
from analytics.config import load_settings
from analytics.store import open_store
from tests.e2e.conftest import UI_TIMEOUT_MS, VIEWPORT, login

pytestmark = [pytest.mark.e2e, pytest.mark.services]
CLINICIAN = "dr.grey"


@pytest.mark.timeout(300)
def test_a_clinicians_table_download_is_audited_and_the_toolbar_has_none(
        dashboard_server, chromium_browser, tmp_path):
    url, _t, home = dashboard_server
    page = chromium_browser.new_page(viewport=VIEWPORT)
    try:
        login(page, url, CLINICIAN)
        table = page.locator(".st-key-cohort-table")
        table.wait_for(timeout=UI_TIMEOUT_MS)
        table.hover()
        toolbar = page.locator('[data-testid="stElementToolbar"]')
        toolbar.get_by_role("button", name="Search").wait_for(timeout=UI_TIMEOUT_MS)
        assert toolbar.get_by_role("button", name="Download as CSV").count() == 0
        button = page.get_by_role("button", name=re.compile(
            r"Download the table \(CSV, \d+ rows?, identified\)"))
        n = int(re.search(r"CSV, (\d+) row", button.inner_text()).group(1))
        with page.expect_download() as dl:
            button.click()
        path = tmp_path / "cohort.csv"
        dl.value.save_as(path)
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == n and "patient_name" in rows[0]
    finally:
        page.close()
    store = open_store(load_settings(home))
    try:
        exports = [r for r in audit.recent(store, 50)
                   if (r["username"], r["action"]) == (CLINICIAN, "export")]
    finally:
        store.dispose()
    assert exports[0]["detail"] == {"step": "download", "what": "cohort_table", "rows": n,
                                    "columns": len(rows[0]), "identified": True}
