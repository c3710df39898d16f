"""The MDT page's projector mode in real Chromium at 1280 x 720 and 1920 x 1080: one
patient per screen, no scrolling, no chart labels running into each other, the text and
the key image growing with the screen, the risk chart filling the height left to the
bottom of the screen, and an unscored visit labelled; a screenshot of
every screen goes to test-artifacts/screenshots/ (and of every PDF page when a PDF
renderer is installed).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.e2e.conftest import MENU, SCREENSHOTS, UI_TIMEOUT_MS, login

pytestmark = [pytest.mark.e2e, pytest.mark.services]
CLINICIAN = "dr.grey"
PROJECTOR = {"width": 1280, "height": 720}
WIDE = {"width": 1920, "height": 1080}

#: sizes (px) of the facts line, the body text and the key image as drawn
DRAWN_SIZES = """() => {
  const px = (el) => el ? parseFloat(getComputedStyle(el).fontSize) : null;
  const facts = document.querySelector('.st-key-mdt-facts [data-testid="stCaptionContainer"] p')
    || document.querySelector('.st-key-mdt-facts [data-testid="stCaptionContainer"]');
  const body = document.querySelector('[data-testid="stMain"] [data-testid="stMarkdownContainer"] p');
  const img = document.querySelector('.st-key-mdt-keyimage img');
  return {facts: px(facts), body: px(body),
          image: img ? img.getBoundingClientRect().height : null};
}"""
JOB_TIMEOUT_MS = 180_000

#: heights that must fit the viewport: the document and Streamlit's scrolling main block
SCROLL_HEIGHTS = """() => ({
  document: document.documentElement.scrollHeight,
  body: document.body.scrollHeight,
  main: Math.max(...[...document.querySelectorAll(
    '[data-testid="stMain"], [data-testid="stAppViewContainer"]')].map(e => e.scrollHeight)),
  viewport: window.innerHeight})"""

#: how the screen is filled: the bottom of the lowest visible element of the page, and the
#: risk chart's box and its drawing (plotly's svg) heights
SCREEN_FILL = """() => {
  const shown = [...document.querySelectorAll(
    '[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"], '
    + '[data-testid="stMainBlockContainer"] [data-testid="stExpander"]')]
    .filter(e => e.checkVisibility({visibilityProperty: true, opacityProperty: true}))
    .map(e => e.getBoundingClientRect()).filter(r => r.height > 0);
  const box = document.querySelector('.st-key-mdt-risk');
  const svg = document.querySelector('.st-key-mdt-risk .main-svg');
  return {lowest: Math.max(...shown.map(r => r.bottom)),
          chart: box ? box.getBoundingClientRect().height : null,
          drawn: svg ? svg.getBoundingClientRect().height : null};
}"""

#: the risk chart's visible text boxes and every pair of them that intersects
LABEL_OVERLAPS = """(sel) => {
  const chart = document.querySelector(sel);
  if (!chart) return {n: -1, overlaps: []};
  const boxes = [...chart.querySelectorAll('svg text')].filter(t => {
    const s = getComputedStyle(t);
    return t.textContent.trim() && s.display !== 'none' && s.visibility !== 'hidden'
      && Number(s.opacity || 1) > 0;
  }).map(t => { const r = t.getBoundingClientRect();
                return {text: t.textContent.trim(), l: r.left, r: r.right, t: r.top,
                        b: r.bottom}; })
    .filter(b => b.r - b.l > 0 && b.b - b.t > 0);
  const overlaps = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (a.l < b.r - 1 && b.l < a.r - 1 && a.t < b.b - 1 && b.t < a.b - 1)
      overlaps.push([a.text, b.text]);
  }
  return {n: boxes.length, overlaps};
}"""


def _pdf_pages_to_png(browser, pdf, pages: int, stem: str) -> list:
    """Each PDF page as test-artifacts/screenshots/<stem>-<n>.png: pdftoppm when installed,
    else Chromium's own PDF viewer (one page per screen at ``#page=n``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tool = shutil.which("pdftoppm")
    if tool is not None:
        subprocess.run([tool, "-png", "-r", "80", str(pdf), str(SCREENSHOTS / stem)],
                       check=True, timeout=120)
        return sorted(SCREENSHOTS.glob(f"{stem}-*.png"))
    out = []
    for n in range(1, pages + 1):
        # a fresh tab per page: the viewer reads #page only when it opens the document
        view = browser.new_page(viewport={"width": 1190, "height": 842})
        try:
            view.goto(f"{pdf.as_uri()}#page={n}&toolbar=0&view=Fit")
            view.wait_for_timeout(2000)  # the viewer draws the page
            path = SCREENSHOTS / f"{stem}-{n}.png"
            view.screenshot(path=str(path))
            out.append(path)
        finally:
            view.close()
    return out


def _record_first_patient(home, pseudonym: str) -> None:
    """A question and a decision of today's meeting, as the page's form would save them."""
    import datetime as dt

    from analytics.audit import Actor
    from analytics.config import load_settings
    from analytics.store import open_store
    from analytics.usecases.context import Context
    from analytics.usecases.mdt import MdtRecordRequest, meeting_name, record_discussion

    settings = load_settings(home)
    store = open_store(settings)
    try:
        record_discussion(Context(Actor(CLINICIAN, "clinician", "e2e"), store, settings),
                          MdtRecordRequest(
                              pseudonym, meeting_name(dt.date.today(), "Hepatology MDT"),
                              question="Is the rising spleen volume portal hypertension, "
                                       "and is endoscopic screening for varices due?",
                              discussion="Spleen volume up since the last scan.",
                              decision="Refer for upper GI endoscopy; repeat CT in 6 months."))
    finally:
        store.dispose()


def _open_projector(page, url: str, chosen: list[str]) -> None:
    """Sign in as the clinician, add ``chosen`` to the MDT list as a person types them,
    and switch projector mode (large font) on: the sidebar folds away."""
    login(page, url, CLINICIAN)
    page.locator(MENU).get_by_text("MDT meeting", exact=True).click()
    box = page.locator(".st-key-mdt-patients input")
    box.wait_for(timeout=UI_TIMEOUT_MS)
    for p in chosen:
        box.click()
        box.fill(p)
        page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.locator(".st-key-mdt-large").get_by_text("Large font").click()
    page.locator('[data-testid="stSidebar"]').wait_for(state="hidden",
                                                       timeout=UI_TIMEOUT_MS)


@pytest.mark.timeout(480)
def test_projector_mode_shows_one_patient_per_screen_without_scrolling(
        dashboard_server, chromium_browser, tmp_path):
    from pypdf import PdfReader

    url, t, home = dashboard_server
    chosen = [*t.imaging, t.pseudonyms["SYN3-0010"]]
    _record_first_patient(home, chosen[0])
    page = chromium_browser.new_page(viewport=PROJECTOR)
    try:
        _open_projector(page, url, chosen)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for n, p in enumerate(chosen, start=1):
            heading = page.get_by_role("heading").filter(has_text=p)
            heading.wait_for(timeout=UI_TIMEOUT_MS)
            # the rerun is over when the previous screen's stale elements are gone
            page.wait_for_function(
                "(t) => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
                ".filter(e => e.innerText.startsWith(t)).length === 1"
                " && !document.querySelector('[data-stale=\"true\"]')",
                arg=f"Patient {n} of {len(chosen)}", timeout=UI_TIMEOUT_MS)
            if p in t.imaging:
                page.locator(".st-key-mdt-risk .main-svg").first.wait_for(
                    timeout=UI_TIMEOUT_MS)
                page.locator('[data-testid="stImage"] img').first.wait_for(
                    timeout=UI_TIMEOUT_MS)
            if n == 1:
                page.get_by_text("Decision: Refer for upper GI endoscopy").wait_for(
                    timeout=UI_TIMEOUT_MS)
            page.wait_for_timeout(1500)  # fonts and the chart settle
            page.screenshot(path=str(SCREENSHOTS / f"mdt_projector_{n}.png"))
            _fits_one_screen(page, p, p in t.imaging, PROJECTOR)
            if n < len(chosen):
                page.locator(".st-key-mdt-next button").click()
        # the pack from the folded set-up: one page per patient, each screenshotted when
        # a renderer is installed
        page.get_by_text("Meeting set-up, horizon and PDF pack").click()
        page.get_by_role("button", name=f"Build the PDF pack ({len(chosen)} page(s))").click()
        download = page.get_by_role("button", name="Download the pack", exact=False)
        download.wait_for(timeout=JOB_TIMEOUT_MS)
        page.wait_for_timeout(2500)  # the pack's progress panel has stopped polling
        with page.expect_download() as dl:
            download.click()
        pdf = tmp_path / "pack.pdf"
        dl.value.save_as(pdf)
        pages = PdfReader(str(pdf)).pages
        assert len(pages) == len(chosen)
        # one patient per page, each of the chosen once (the viewer's screenshots below are
        # artifacts for a reader: under load it may draw a page late, so not compared)
        on_page = [[p for p in chosen if p in page.extract_text()] for page in pages]
        assert sorted(x for found in on_page for x in found) == sorted(chosen), on_page
        assert all(len(found) == 1 for found in on_page), on_page
        pngs = _pdf_pages_to_png(chromium_browser, pdf, len(chosen), "mdt_pack_page")
        assert len(pngs) == len(chosen)
    finally:
        page.close()


def _fits_one_screen(page, p: str, imaging: bool, viewport: dict[str, int]) -> None:
    """No vertical scroll, no chart labels overlapping; the facts line at the body text's
    size and the text and key image grown with the screen (1 px per 1/720 of the height
    at 16:9, so 19 px text and a 236 px image at 1280 x 720, 1.5 times that at 1920 x
    1080); with a scan, the risk chart takes the height the rest leaves, so the screen is
    filled to its bottom edge (the page's 4-projector-pixel padding and a little slack)."""
    h = page.evaluate(SCROLL_HEIGHTS)
    assert h["viewport"] == viewport["height"]
    assert max(h["document"], h["body"], h["main"]) <= h["viewport"], (p, h)
    scale = viewport["height"] / 720
    sizes = page.evaluate(DRAWN_SIZES)
    assert sizes["facts"] == pytest.approx(19 * scale, abs=0.6), sizes
    assert sizes["body"] == pytest.approx(19 * scale, abs=0.6), sizes
    if imaging:
        assert sizes["image"] == pytest.approx(236 * scale, abs=2), sizes
        fill = page.evaluate(SCREEN_FILL)
        # no more than 3 % of the screen's height left empty under the last row
        assert viewport["height"] - fill["lowest"] <= 0.03 * viewport["height"], (p, fill)
        # never below its least height (262 projector pixels), drawn as high as its box
        assert fill["chart"] >= 262 * scale - 1, (p, fill)
        assert fill["drawn"] == pytest.approx(fill["chart"], abs=2), (p, fill)
        labels = page.evaluate(LABEL_OVERLAPS, ".st-key-mdt-risk")
        assert labels["n"] >= 4, labels  # tick labels and the axis titles
        assert labels["overlaps"] == [], (p, labels["overlaps"])


@pytest.mark.timeout(480)
def test_projector_mode_fills_a_1920_by_1080_screen_without_scrolling(
        dashboard_server, chromium_browser):
    url, t, home = dashboard_server
    chosen = [*t.imaging, t.pseudonyms["SYN3-0010"]]
    _record_first_patient(home, chosen[0])
    page = chromium_browser.new_page(viewport=WIDE)
    try:
        _open_projector(page, url, chosen)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for n, p in enumerate(chosen, start=1):
            page.get_by_role("heading").filter(has_text=p).wait_for(timeout=UI_TIMEOUT_MS)
            page.wait_for_function(
                "(t) => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
                ".filter(e => e.innerText.startsWith(t)).length === 1"
                " && !document.querySelector('[data-stale=\"true\"]')",
                arg=f"Patient {n} of {len(chosen)}", timeout=UI_TIMEOUT_MS)
            if p in t.imaging:
                page.locator(".st-key-mdt-risk .main-svg").first.wait_for(
                    timeout=UI_TIMEOUT_MS)
                page.locator('.st-key-mdt-keyimage img').first.wait_for(
                    timeout=UI_TIMEOUT_MS)
            page.wait_for_timeout(1500)  # fonts and the chart settle
            page.screenshot(path=str(SCREENSHOTS / f"mdt_projector_{n}_1920.png"))
            _fits_one_screen(page, p, p in t.imaging, WIDE)
            if n < len(chosen):
                page.locator(".st-key-mdt-next button").click()
    finally:
        page.close()
