"""The risk dashboard in real Chromium against ``hepatrack serve`` on the trained synthetic
home: cohort, patient (horizon, visit, key image), models, upload of a new series with
automatic feature extraction, and the MDT PDF pack (a valid PDF, one page per patient).

Screenshots of each page go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest

from benchmarks.browser import GRID_DRAWN
from tests.e2e.conftest import MENU, UI_TIMEOUT_MS, VIEWPORT, login, shot

pytestmark = [pytest.mark.e2e, pytest.mark.services]
CLINICIAN = "dr.grey"
JOB_TIMEOUT_MS = 180_000


def _page(browser, url: str, user: str = CLINICIAN):
    page = browser.new_page(viewport=VIEWPORT)
    login(page, url, user)
    return page


def choose(page, key: str, option: str) -> None:
    """Type ``option`` into the select or search box whose widget key is ``key`` (":"
    written "-") and press Enter: a select box takes its first match, the Patient page's
    search box opens the patient the text names."""
    box = page.locator(f".st-key-{key} input")
    box.click()
    box.fill(option)
    page.keyboard.press("Enter")


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    box.wait_for(timeout=UI_TIMEOUT_MS)
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


@pytest.mark.timeout(300)
def test_cohort_and_patient(dashboard_server, chromium_browser):
    url, t, _home = dashboard_server
    page = _page(chromium_browser, url)
    try:
        nav = page.locator(MENU)
        for title in ("Cohort", "Patient", "MDT meeting", "Ingest", "Models"):
            nav.get_by_text(title, exact=True).wait_for(timeout=UI_TIMEOUT_MS)
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.wait_for(timeout=UI_TIMEOUT_MS)
        # what benchmarks/browser.py waits for on the Cohort page: the grid's drawn canvas
        page.locator(GRID_DRAWN).first.wait_for(timeout=UI_TIMEOUT_MS)
        # no chart at first paint: the current-risk and incidence charts when chosen
        charts = page.locator(".st-key-cohort-charts")
        charts.get_by_text("Current risk", exact=True).click()
        page.get_by_text("Risk across the cohort").wait_for(timeout=UI_TIMEOUT_MS)
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=UI_TIMEOUT_MS)
        charts.get_by_text("Incidence by risk group", exact=True).click()
        page.get_by_text("Cumulative incidence by predicted-risk group").first.wait_for(
            timeout=UI_TIMEOUT_MS)
        # the grid draws on a canvas; its accessible header cells are in the DOM but not
        # "visible", and arrive after the frame: wait for the column to be attached
        grid.locator('[role="columnheader"]').filter(has_text="Current risk").first.wait_for(
            state="attached", timeout=UI_TIMEOUT_MS)
        shot(page, "cohort_risk")

        # open an imaging patient (a page load would be a new, signed-out session, so the
        # menu and the patient selector are used); risk, explanation and key image show
        p = t.imaging[0]
        nav.get_by_text("Patient", exact=True).click()
        choose(page, "patient-find", p)  # the search box: Enter opens the patient it names
        page.get_by_role("heading", name=re.compile(re.escape(p))).wait_for(
            timeout=UI_TIMEOUT_MS)
        three = _metric(page, "Risk within 3 y")
        assert three.endswith("%")
        page.get_by_text("Why this score").wait_for(timeout=UI_TIMEOUT_MS)
        # the change since the last scan and the timeline are drawn when chosen
        charts = page.locator(".st-key-patient-charts")
        charts.get_by_text("Change since the last scan", exact=True).click()
        page.get_by_text("What changed since the last scan").wait_for(timeout=UI_TIMEOUT_MS)
        charts.get_by_text("Timeline", exact=True).click()
        page.locator('[data-testid="stPlotlyChart"]').filter(
            has_text="Scans").first.wait_for(timeout=UI_TIMEOUT_MS)
        page.locator('[data-testid="stImage"] img').first.wait_for(timeout=UI_TIMEOUT_MS)
        shot(page, "patient_risk")

        # change the horizon
        page.locator(".st-key-patient-horizon").get_by_text("1 year", exact=True).click()
        one = _metric(page, "Risk within 1 y")
        assert one.endswith("%")
        # change the visit: the first one on the visit slider
        visit_before = _metric(page, "Visit")
        slider = page.get_by_role("slider").first
        slider.focus()
        page.keyboard.press("Home")
        page.wait_for_function(
            "(v) => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
            ".some(m => m.innerText.includes('Visit') && !m.innerText.includes(v))",
            arg=visit_before, timeout=UI_TIMEOUT_MS)
        assert _metric(page, "Visit") != visit_before
        shot(page, "patient_first_visit")

        nav.get_by_text("Models", exact=True).click()
        page.get_by_text("Validation").first.wait_for(timeout=UI_TIMEOUT_MS)
        page.get_by_text("Global drivers").wait_for(timeout=UI_TIMEOUT_MS)
        shot(page, "models")
    finally:
        page.close()


@pytest.mark.timeout(420)
def test_upload_then_mdt_pack(dashboard_server, chromium_browser, tmp_path):
    from pypdf import PdfReader

    url, t, _home = dashboard_server
    page = _page(chromium_browser, url)
    try:
        page.locator(MENU).get_by_text("Ingest", exact=True).click()
        files = sorted(str(f) for f in (t.holdout / "CT").glob("*.dcm"))
        files.append(str(next((t.holdout / "SEG").glob("*.dcm"))))
        page.locator('.st-key-ingest-files input[type="file"]').set_input_files(files)
        go = page.get_by_role("button", name=f"Ingest {len(files)} file(s)")
        go.wait_for(timeout=UI_TIMEOUT_MS)
        page.wait_for_function(
            "(n) => [...document.querySelectorAll('button')].some("
            "b => b.innerText.includes(`Ingest ${n} file`) && !b.disabled)",
            arg=len(files), timeout=UI_TIMEOUT_MS)
        go.click()
        page.get_by_text(re.compile(r"Ingest: done in \d+ s")).wait_for(timeout=JOB_TIMEOUT_MS)
        assert _metric(page, "Series stored") == "1"
        assert _metric(page, "Features extracted") == "1"
        assert _metric(page, "Refused") == "0"
        # the scan's patient's new risk on the page, and its Patient page from there
        section = page.locator(".st-key-ingest_risk")
        section.get_by_text("New risk").wait_for(timeout=UI_TIMEOUT_MS)
        assert re.fullmatch(r"\d+\.\d%", _metric(page, "Risk within 3 y"))
        shot(page, "ingest")
        patient = t.pseudonyms[t.holdout_truth["patient_id"]]
        section.get_by_role("button", name="Open patient").click()
        page.wait_for_url(re.compile(rf"patient={patient}"), timeout=UI_TIMEOUT_MS)
        page.get_by_role("heading", name="Patient").first.wait_for(timeout=UI_TIMEOUT_MS)

        # MDT: the two imaging patients and one labs-only patient, then the PDF pack
        page.locator(MENU).get_by_text("MDT meeting", exact=True).click()
        box = page.locator(".st-key-mdt-patients input")
        box.wait_for(timeout=UI_TIMEOUT_MS)
        chosen = [*t.imaging, t.pseudonyms["SYN3-0010"]]
        for p in chosen:
            box.click()
            box.fill(p)
            page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.get_by_role("button", name=f"Build the PDF pack ({len(chosen)} page(s))").wait_for(
            timeout=UI_TIMEOUT_MS)
        _metric(page, "Risk within 3 y")
        shot(page, "mdt")
        page.locator(".st-key-mdt-large").get_by_text("Large font").click()
        page.wait_for_timeout(1500)
        shot(page, "mdt_large_font")
        # projector mode folds the meeting set-up (and the pack's button) away
        page.get_by_text("Meeting set-up, horizon and PDF pack").click()
        page.get_by_role("button", name=f"Build the PDF pack ({len(chosen)} page(s))").click()
        download = page.get_by_role("button", name=re.compile(r"Download the pack"))
        download.wait_for(timeout=JOB_TIMEOUT_MS)
        with page.expect_download() as dl:
            download.click()
        pdf = tmp_path / "pack.pdf"
        dl.value.save_as(pdf)
        reader = PdfReader(str(pdf))
        assert len(reader.pages) == len(chosen)
        for p, pg in zip(chosen, reader.pages, strict=True):
            assert p in pg.extract_text()
    finally:
        page.close()
