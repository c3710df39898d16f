"""Screenshots of the dashboard for the documentation, with each page's measured time.

Issue 18's closing note asks for screenshots of the Patient page, the MDT pack (each page)
and the identity-conflict flow, and the measured page times. This script:

1. copies the demo home (``--demo``, default ``/tmp/demo25``; never written to) to
   ``--home``, adds a clinician account, records a question and a decision for the first
   MDT patient, and writes two DICOM studies that carry the Patient ID of a stored patient
   with another name and birth date (a typing error, and another person under a re-used
   ID);
2. serves that home (``hepatrack serve``, as ``benchmarks/browser.py`` does) and drives
   headless ``/usr/bin/chromium`` (Playwright; never a downloaded browser) through the
   Cohort, Patient, MDT (normal and projector mode, and the PDF pack), Models and Ingest
   pages at 1280 x 720, then the key pages again at 1920 x 1080;
3. times each step from the click until the app is idle with every chart drawn and every
   image loaded (``benchmarks/browser.py``'s wait, split into the server's part and the
   drawing), and writes ``docs/screenshots/README.md``: every image, what it shows, and
   the times with the load average and the date.

PDF pages are rendered by ``pdftoppm`` when installed, else by Chromium's own PDF viewer.
Screenshots are saved as 256-colour PNGs (Pillow) to keep the folder small.

    .venv/bin/python tools/screenshots.py [--demo /tmp/demo25] [--home /tmp/shots_home]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from analytics.audit import Actor  # noqa: E402
from analytics.auth import create_user  # noqa: E402
from analytics.cohort import build_cohort  # noqa: E402
from analytics.config import load_settings  # noqa: E402
from analytics.models.registry import list_models, load_model  # noqa: E402
from analytics.store import open_store  # noqa: E402
from analytics.store.identity_holds import list_holds  # noqa: E402
from analytics.store.repo import list_patients  # noqa: E402
from analytics.usecases.context import Context  # noqa: E402
from analytics.usecases.mdt import MdtRecordRequest, meeting_name, record_discussion  # noqa: E402
from analytics.usecases.overview import cohort_risk  # noqa: E402
from benchmarks.browser import (  # noqa: E402
    _PERF_INIT_JS,
    CHROMIUM,
    IDLE_JS,
    MENU,
    TABLE_OR_SELECT,
    TIMEOUT_MS,
    Wait,
    _split,
    server,
)
from benchmarks.harness import format_seconds  # noqa: E402
from tests.ingest.identity_samples import Person, RealStudy, real_slices  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
USER, PASSWORD, ROLE = "shots.clinician", "screenshot-password", "clinician"
LAPTOP = {"width": 1280, "height": 720}
WIDE = {"width": 1920, "height": 1080}
MEETING_TITLE = "Hepatology MDT"
JOB_TIMEOUT_MS = 300_000
#: README.md's hand-written findings follow this line (kept when the script rewrites it)
FINDINGS = "<!-- findings: written by hand, kept by tools/screenshots.py -->"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


#: what the page shows: charts, images and tables (unchanged for a second: settled)
_COUNT_JS = """() => document.querySelectorAll(
  '[data-testid="stPlotlyChart"] .main-svg, [data-testid="stImage"] img, '
  + '[data-testid="stDataFrame"], [data-testid="stAlert"]').length"""

#: the height of the page's content (Streamlit scrolls inside its main block)
_CONTENT_HEIGHT_JS = """() => Math.max(...[...document.querySelectorAll(
  '[data-testid="stMain"], [data-testid="stMainBlockContainer"]')].map(e => e.scrollHeight),
  document.body.scrollHeight)"""


# ----------------------------------------------------------------------------- the home
@dataclass
class Picks:
    """The patients the screenshots show (pseudonyms) and the conflicting studies' files."""

    patient: str
    patient_label: str
    mdt: list[str]
    typo_of: str
    reused_id_of: str
    upload: list[Path] = field(default_factory=list)


def prepare_home(demo: Path, home: Path, upload_dir: Path) -> Picks:
    """A fresh copy of the demo home with the account, the MDT record and the conflicting
    studies the flows need; which patients to show."""
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(demo, home, symlinks=True)
    settings = load_settings(home)
    store = open_store(settings)
    try:
        create_user(store, USER, ROLE, PASSWORD)
        picks = _pick_patients(store, settings)
        record_discussion(
            Context(Actor(USER, ROLE, "screenshots"), store, settings),
            MdtRecordRequest(picks.mdt[0], meeting_name(dt.date.today(), MEETING_TITLE),
                             question="Rising risk with a growing spleen: is this portal "
                                      "hypertension, and is variceal screening due?",
                             discussion="Spleen volume up since the previous CT; platelets "
                                        "falling.",
                             decision="Refer for upper GI endoscopy; repeat CT in 6 months."))
        identified = list_patients(store, identified=True).set_index("pseudonym")
    finally:
        store.dispose()
    picks.upload = _conflicting_studies(identified, picks, upload_dir)
    return picks


def _pick_patients(store, settings) -> Picks:
    """The highest-risk patients with imaging (the Patient page and the MDT list), plus the
    highest-risk patient with labs only; two other patients with imaging for the conflicts."""
    model = load_model(store, settings, _active_model_id(store))
    risk = cohort_risk(model, build_cohort(store).visits)
    patients = list_patients(store, identified=True).merge(risk, on="pseudonym")
    ranked = patients.sort_values("risk", ascending=False, na_position="last")
    imaging = ranked[ranked["n_series"] > 0]
    labs_only = ranked[ranked["n_series"] == 0]
    top = imaging["pseudonym"].tolist()
    first = imaging.iloc[0]
    return Picks(patient=top[0], patient_label=str(first["pseudonym"]),
                 mdt=[*top[:3], labs_only["pseudonym"].iloc[0]],
                 typo_of=top[3], reused_id_of=top[4])


def _active_model_id(store) -> str:
    models = list_models(store)
    active = [m for m in models if m.get("active")]
    return str((active or models)[0]["model_id"])


def _conflicting_studies(identified, picks: Picks, upload_dir: Path) -> list[Path]:
    """Two one-series CT studies (three real slices each) under stored Patient IDs: one with
    the name mistyped and day and month of birth swapped (the same person), one of another
    person under a re-used ID."""
    typo = identified.loc[picks.typo_of]
    reused = identified.loc[picks.reused_id_of]
    born = typo["birth_date"]
    people = [
        Person(patient_id=str(typo["patient_id"]), name=_mistyped(str(typo["patient_name"])),
               birth_date=f"{born.year}{born.day:02d}{born.month:02d}",
               sex=str(typo["sex"] or "F")),
        Person(patient_id=str(reused["patient_id"]), name="GARCIA^DAVID^Q",
               birth_date="19700101", sex="M"),
    ]
    if upload_dir.exists():
        shutil.rmtree(upload_dir)
    upload_dir.mkdir(parents=True)
    files = []
    for n, person in enumerate(people, start=1):
        for name, data in real_slices(RealStudy(person, study_date="20261120")):
            path = upload_dir / f"study{n}-{name}"
            path.write_bytes(data)
            files.append(path)
    return files


def _mistyped(name: str) -> str:
    """``LEWIS^MARGARET`` -> ``LEWIS^MARGRET``: the given name with one letter dropped."""
    family, _, given = name.partition("^")
    given = given or family
    cut = len(given.split("^")[0]) // 2 + 1
    return f"{family}^{given[:cut]}{given[cut + 1:]}"


# ----------------------------------------------------------------------------- capture
@dataclass
class Shot:
    file: str
    what: str
    size: str


@dataclass
class Timed:
    what: str
    wait: Wait
    load: float
    split: bool = True  # False: a background job, timed whole (no server/draw split)


@dataclass
class Session:
    """One signed-in browser tab, the screenshots it took and the steps it timed."""

    page: object
    viewport: dict[str, int]
    shots: list[Shot] = field(default_factory=list)
    timed: list[Timed] = field(default_factory=list)

    def step(self, what: str, action, *, charts: int = 0, heading: str | None = None,
             images: int = 0, text: str | None = None, need: str | None = TABLE_OR_SELECT,
             timeout_ms: int = TIMEOUT_MS) -> Wait:
        """Run ``action`` (a click) and wait until the app is idle with at least ``charts``
        charts drawn, ``heading`` and ``text`` shown and ``images`` images loaded, and
        nothing more arrives for a second; record the time until that state began."""
        page = self.page
        args = [charts, heading, images, text, need]
        t0_page = page.evaluate("performance.now()")
        t0 = time.perf_counter()
        action()
        page.wait_for_timeout(150)  # the click reaches the server before idle is judged
        while True:
            page.wait_for_function(IDLE_JS, arg=args, polling=50, timeout=timeout_ms)
            wait = _split(page, t0_page, time.perf_counter() - t0)
            shown = page.evaluate(_COUNT_JS)
            page.wait_for_timeout(1000)
            if page.evaluate(IDLE_JS, args) and page.evaluate(_COUNT_JS) == shown:
                break
        self.timed.append(Timed(what, wait, os.getloadavg()[0]))
        print(f"  {what}: {wait.text()} [load {os.getloadavg()[0]:.2f}]", flush=True)
        return wait

    def shot(self, name: str, what: str, *, full: bool = True) -> None:
        """Save ``name``.png: the whole page at this width (``full``) or the screen."""
        page = self.page
        w, h = self.viewport["width"], self.viewport["height"]
        path = OUT / f"{name}.png"
        if full:  # grow the screen to the content: Streamlit scrolls inside its main block
            height = int(page.evaluate(_CONTENT_HEIGHT_JS))
            page.set_viewport_size({"width": w, "height": max(h, min(height + 40, 9000))})
            page.wait_for_timeout(1200)  # charts re-lay out at the new size
        page.wait_for_timeout(300)
        png = page.screenshot(full_page=full)
        if full:
            page.set_viewport_size(self.viewport)
        size = save_png(png, path)
        self.shots.append(Shot(path.name, what, f"{size[0]}x{size[1]}"))
        print(f"  saved {path.name} ({size[0]}x{size[1]}, {path.stat().st_size // 1024} KiB)",
              flush=True)


def save_png(png: bytes, path: Path) -> tuple[int, int]:
    """Save a screenshot as a 256-colour PNG (a quarter of the size; UI colours survive)."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
                 ).save(path, optimize=True)
    return img.size


def sign_in(browser, url: str, viewport: dict[str, int]) -> Session:
    page = browser.new_page(viewport=viewport)
    page.add_init_script(_PERF_INIT_JS)
    page.goto(url)
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password", exact=True).and_(page.get_by_role("textbox")).fill(PASSWORD)
    s = Session(page, viewport)
    s.step("Sign in to the Cohort page drawn",
           lambda: page.get_by_role("button", name="Sign in").click(), charts=0)
    return s


def open_page(s: Session, title: str, *, charts: int = 0, need: str | None = TABLE_OR_SELECT
              ) -> Wait:
    return s.step(f"{title} page opened from the menu",
                  lambda: s.page.locator(MENU).get_by_text(title, exact=True).click(),
                  charts=charts, heading=title, need=need)


def choose(s: Session, box: str, value: str) -> None:
    """Type into a select box (``.st-key-<key>``) and take the first match, or into the
    Patient page's search box, where Enter opens the patient the text names."""
    field_ = s.page.locator(f".st-key-{box} input")
    field_.click()
    field_.fill(value)
    s.page.keyboard.press("Enter")


# ----------------------------------------------------------------------------- pages
def cohort_page(s: Session, suffix: str) -> None:
    # the page opens with the table only; the histogram is drawn when chosen
    s.step("Cohort page: the current-risk chart chosen",
           lambda: s.page.locator(".st-key-cohort-charts").get_by_text(
               "Current risk", exact=True).click(), charts=1, heading="Cohort")
    s.shot(f"cohort{suffix}", "Cohort page as first drawn after signing in: counts, the "
           "patient table (sorted by pseudonym until another order is chosen) and the "
           "current-risk histogram.")


def patient_page(s: Session, picks: Picks, suffix: str) -> None:
    open_page(s, "Patient", charts=1)
    s.step(f"Patient switch to the high-risk patient {picks.patient} (risk, explanation, "
           "biomarkers, key image)",
           lambda: choose(s, "patient-find", picks.patient),
           charts=2, heading=picks.patient, images=1)
    # the timeline, the biomarker trends and the change since the last scan are drawn
    # when chosen
    more = s.page.locator(".st-key-patient-charts")
    more.get_by_text("Timeline", exact=True).click()
    more.get_by_text("Biomarkers over time", exact=True).click()
    s.step("Patient page: timeline, biomarker trends and change since the last scan chosen",
           lambda: more.get_by_text("Change since the last scan", exact=True).click(),
           charts=5, heading=picks.patient, images=1)
    s.shot(f"patient{suffix}", f"Patient page of {picks.patient}, the highest-risk patient "
           "with imaging: timeline, risk trajectory with its 95% band, the SHAP waterfall "
           "of the latest visit in percentage points, what changed since the last scan, "
           "biomarkers over time, the key image with the organ outlines, studies and visits.")


def mdt_pages(s: Session, picks: Picks, suffix: str, *, pack: bool) -> None:
    open_page(s, "MDT meeting", need='[data-testid="stMultiSelect"]')
    for n, p in enumerate(picks.mdt):
        s.step(f"MDT list: add patient {n + 1}", lambda p=p: choose(s, "mdt-patients", p),
               charts=1, heading=picks.mdt[0], images=1)
    s.page.keyboard.press("Escape")
    if pack:
        s.shot(f"mdt{suffix}", "MDT meeting page (normal mode): the meeting list, the first "
               "patient's summary with the recorded question and decision, biomarkers, the "
               "record form and notes.")
    s.step("MDT projector mode (large font) switched on",
           lambda: s.page.locator(".st-key-mdt-large").get_by_text("Large font").click(),
           charts=1, heading=picks.mdt[0], images=1)
    n_shots = len(picks.mdt) if pack else 1
    for n, p in enumerate(picks.mdt[:n_shots], start=1):
        if n > 1:
            has_image = n < len(picks.mdt)  # the last one has labs only
            s.step(f"MDT projector: Next to patient {n}",
                   lambda: s.page.locator(".st-key-mdt-next button").click(),
                   charts=1, heading=p, images=int(has_image))
        s.shot(f"mdt_projector_{n}{suffix}", f"MDT projector mode, patient {n} of "
               f"{len(picks.mdt)} ({p}" + (", labs only" if n == len(picks.mdt) else "")
               + "): one screen, no scrolling.", full=False)
    if pack:
        mdt_pack(s, picks)


def mdt_pack(s: Session, picks: Picks) -> None:
    page = s.page
    page.get_by_text("Meeting set-up, horizon and PDF pack").click()
    button = page.get_by_role("button", name=f"Build the PDF pack ({len(picks.mdt)} page(s))")
    download = page.get_by_role("button", name="Download the pack", exact=False)
    t0 = time.perf_counter()
    button.click()
    download.wait_for(timeout=JOB_TIMEOUT_MS)
    built = time.perf_counter() - t0
    s.timed.append(Timed(f"MDT PDF pack of {len(picks.mdt)} patients built (click until the "
                         "download button shows)", Wait(built, built, 0.0, 0.0),
                         os.getloadavg()[0], split=False))
    page.wait_for_timeout(2500)  # the pack's progress panel has stopped polling
    with page.expect_download() as dl:
        download.click()
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "pack.pdf"
        dl.value.save_as(pdf)
        reader = PdfReader(str(pdf))
        for n, png in enumerate(pdf_pages(page.context.browser, pdf, reader), start=1):
            name = f"mdt_pack_page_{n}.png"
            size = save_png(png, OUT / name)
            text = reader.pages[n - 1].extract_text() or ""
            who = next((p for p in picks.mdt if p in text), "?")
            s.shots.append(Shot(name, f"MDT PDF pack, page {n} of {len(reader.pages)} ({who})",
                                f"{size[0]}x{size[1]}"))
            print(f"  saved {name}", flush=True)


def pdf_pages(browser, pdf: Path, reader: PdfReader) -> list[bytes]:
    """Each page of ``pdf`` as PNG bytes, about 1280 px wide: ``pdftoppm`` when installed,
    else Chromium's PDF viewer (a fresh tab per page, cropped to the page)."""
    tool = shutil.which("pdftoppm")
    if tool is not None:
        width_pt = float(reader.pages[0].mediabox.width)
        out = pdf.with_suffix("")
        subprocess.run([tool, "-png", "-r", str(round(72 * 1280 / width_pt)), str(pdf),
                        str(out)], check=True, timeout=300)
        return [p.read_bytes() for p in sorted(pdf.parent.glob(f"{out.name}-*.png"))]
    pages = []
    for n, p in enumerate(reader.pages, start=1):
        w, h = float(p.mediabox.width), float(p.mediabox.height)
        scale = 1280 / w
        view = browser.new_page(viewport={"width": 1320, "height": round(h * scale) + 40})
        try:
            view.goto(f"{pdf.as_uri()}#page={n}&toolbar=0&view=Fit")
            pages.append(_settled_screenshot(view))
        finally:
            view.close()
    return pages


def _settled_screenshot(view) -> bytes:
    """The viewer's tab once two screenshots a second apart agree, cropped to the page."""
    view.wait_for_timeout(1500)
    last = view.screenshot()
    for _ in range(20):
        view.wait_for_timeout(1000)
        now = view.screenshot()
        if now == last:
            break
        last = now
    img = Image.open(io.BytesIO(last)).convert("RGB")
    # the page is white and the viewer around it dark grey: crop to the bright pixels
    box = img.convert("L").point(lambda v: 255 if v > 200 else 0).getbbox()
    buf = io.BytesIO()
    (img.crop(box) if box else img).save(buf, format="PNG")
    return buf.getvalue()


def models_page(s: Session) -> None:
    open_page(s, "Models", charts=1)
    s.shot("models", "Models page: registered models, validation against the clinical "
           "baselines, what imaging adds, calibration, time-dependent AUC and global drivers.")


def _holds(home: Path) -> dict[str, int]:
    """The open holds' numbers by the stored patient's pseudonym."""
    store = open_store(load_settings(home))
    try:
        return {h.patient: h.hold_id for h in list_holds(store, identified=False)}
    finally:
        store.dispose()


def identity_flow(s: Session, picks: Picks, home: Path) -> None:
    """Upload the two conflicting studies, then resolve one as the same patient and the
    other as a different one."""
    page = s.page
    open_page(s, "Ingest", need='[data-testid="stFileUploader"]')
    page.locator('.st-key-ingest-files input[type="file"]').set_input_files(
        [str(p) for p in picks.upload])
    go = page.get_by_role("button", name=f"Ingest {len(picks.upload)} file(s)")
    go.wait_for(timeout=TIMEOUT_MS)
    page.locator(".st-key-ingest-extract").get_by_text("Extract imaging").click()
    page.wait_for_timeout(500)
    s.step("Ingest of 2 conflicting studies (6 files) until both are shown held", go.click,
           heading="Identity conflicts", timeout_ms=JOB_TIMEOUT_MS)
    s.shot("identity_1_held", "Ingest page after uploading two studies that carry stored "
           f"Patient IDs with another name and birth date: both held (the stored patients "
           f"{picks.typo_of} and {picks.reused_id_of}), with the fields that differ and, for "
           "a clinician, the received and stored identities side by side.")
    picker = page.locator(".st-key-ingest-hold input")  # the hold picker, opened
    picker.click()
    try:
        page.get_by_role("option").first.wait_for(timeout=5_000)
    except PlaywrightTimeout:
        picker.press("ArrowDown")
        page.wait_for_timeout(1000)
    s.shot("identity_2_choose", "One screen of the held studies: the clinician chooses the "
           "hold to resolve (by its number in the table) and presses Same patient or "
           "Different patient.", full=False)
    page.keyboard.press("Escape")
    holds = _holds(home)
    for n, (decision, name, of) in enumerate((
            ("same", "Same patient", picks.typo_of),
            ("different", "Different patient", picks.reused_id_of)), start=3):
        choose(s, "ingest-hold", f"hold {holds[of]}")  # the files' order in a job varies
        page.wait_for_timeout(1500)
        s.step(f"Identity conflict resolved: {name}",
               lambda name=name: page.get_by_role("button", name=name, exact=True).click(),
               heading="Ingest", text="Filed under")
        s.shot(f"identity_{n}_{decision}", f"After pressing “{name}”: " + (
            f"the mistyped study is filed under the stored patient {picks.typo_of}; the "
            "other study still waits." if decision == "same" else
            "the study of another person is filed under a new patient with a pseudonym of "
            "its own; nothing waits any more."))


# ----------------------------------------------------------------------------- report
def write_readme(shots: list[Shot], timed: list[tuple[str, Timed]], started: dt.datetime,
                 picks: Picks, pdf_renderer: str) -> None:
    lines = [
        "# Screenshots",
        "",
        "Made by `tools/screenshots.py` on a copy of the demo home (2,000 synthetic patients, "
        "12 with imaging, a trained Cox model) in headless Chromium; PNGs in 256 colours. "
        f"Run on {started:%Y-%m-%d %H:%M} UTC on a shared 2-core machine. PDF pages "
        f"rendered by {pdf_renderer}.",
        "",
        "Whole-page images are the full height of the page at that width; `screen` images "
        "are what one screen shows.",
        "",
        "| image | size | what it shows |",
        "|---|---|---|",
        *[f"| [{s.file}]({s.file}) | {s.size} | {s.what} |" for s in shots],
        "",
        "## Measured page times",
        "",
        "From the click until the app is idle with every chart drawn and every image loaded "
        "(`benchmarks/browser.py`'s wait). *Server* is until the server's last websocket "
        "message, *draw* the rest; *load* is the 1-minute load average right after the "
        "step (the machine is shared with other work, so times vary with it).",
        "",
        "| screen | step | total | server | draw | load |",
        "|---|---|---|---|---|---|",
    ]
    for screen, t in timed:
        w = t.wait
        split = (f"{format_seconds(w.server)} | "
                 f"{format_seconds(max(0.0, w.total - w.server))}") if t.split else "— | —"
        lines.append(f"| {screen} | {t.what} | {format_seconds(w.total)} | {split} | "
                     f"{t.load:.2f} |")
    lines += ["", f"Patient page patient: {picks.patient}; MDT list: {', '.join(picks.mdt)}.",
              ""]
    readme = OUT / "README.md"
    # the findings written by hand below the marker are kept from one run to the next
    kept = readme.read_text().partition(FINDINGS)[2] if readme.exists() else ""
    readme.write_text("\n".join(lines) + ("\n" + FINDINGS + kept if kept else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, default=Path("/tmp/demo25"))
    ap.add_argument("--home", type=Path, default=Path("/tmp/shots_home"))
    ap.add_argument("--no-wide", action="store_true", help="skip the 1920 x 1080 screens")
    a = ap.parse_args()
    started = dt.datetime.now(dt.UTC)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    print(f"copying {a.demo} to {a.home}", flush=True)
    picks = prepare_home(a.demo, a.home, a.home.parent / f"{a.home.name}_upload")
    print(f"patient {picks.patient}; MDT {picks.mdt}", flush=True)
    shots: list[Shot] = []
    timed: list[tuple[str, Timed]] = []
    with server(ROOT, a.home, a.home.parent / f"{a.home.name}_serve.log") as (url, ready, _cpu), \
            sync_playwright() as pw:
        print(f"server ready in {format_seconds(ready)}", flush=True)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        s = sign_in(browser, url, LAPTOP)
        cohort_page(s, "")
        patient_page(s, picks, "")
        mdt_pages(s, picks, "", pack=True)
        s.page.close()
        s2 = sign_in(browser, url, LAPTOP)  # a fresh session: no projector mode, no job
        models_page(s2)
        identity_flow(s2, picks, a.home)
        s2.page.close()
        sessions = [("1280x720", s), ("1280x720", s2)]
        if not a.no_wide:
            w = sign_in(browser, url, WIDE)
            cohort_page(w, "_1920")
            patient_page(w, picks, "_1920")
            mdt_pages(w, picks, "_1920", pack=False)
            w.page.close()
            sessions.append(("1920x1080", w))
        browser.close()
    for screen, sess in sessions:
        shots += sess.shots
        timed += [(screen, t) for t in sess.timed]
    renderer = "pdftoppm" if shutil.which("pdftoppm") else "Chromium's PDF viewer"
    write_readme(shots, timed, started, picks, renderer)
    total = sum(p.stat().st_size for p in OUT.glob("*.png"))
    print(f"{len(shots)} screenshots, {total / 2**20:.1f} MiB, in {OUT}", flush=True)


if __name__ == "__main__":
    main()
