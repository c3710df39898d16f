"""The MDT PDF pack: one A4 landscape page per patient.

Each page holds the risk trajectory at the chosen horizon (with its interval band, scan
markers and the outcome), the SHAP waterfall of the latest assessable visit, the key
image of the latest scan with its liver/spleen/vessel overlay, the biomarker table with
published normal ranges, the model version with its cross-validated discrimination and
calibration, and the intended-use statement. Figures are drawn with matplotlib from the
same data the dashboard's plotly figures use (:mod:`analytics.viz.prep`), the page with
reportlab: nothing needs a browser.

Access: an identified pack (real names and dates) needs ``EXPORT_IDENTIFIED``; a
pseudonymised one ``EXPORT_PSEUDONYMISED``. Every pack is audited before anything is
drawn, in one ``export`` record that names its patients (``detail["pseudonyms"]``); if the
audit write fails, no PDF is made. The file is written to a temporary name and renamed, so a failure
never leaves half a PDF.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.auth import Permission, allowed
from analytics.cohort import build_cohort
from analytics.errors import HepaTrackError, ModelError, StoreError
from analytics.explain import patient_trajectory, risk_sentence, why_text
from analytics.models.registry import load_model
from analytics.store import repo
from analytics.store.pseudonyms import known_pseudonyms
from analytics.usecases.context import Context, audited, authorize
from analytics.usecases.keyimage import LIVER_WINDOW, load_key_image, png_bytes, render_slice
from analytics.usecases.model_admin import (
    calibration_curves,
    calibration_summary,
    model_metrics,
    validation_table,
)
from analytics.viz.mpl import calibration_png, trajectory_png, waterfall_png
from analytics.viz.prep import biomarker_summary, event_text, range_text

__all__ = ["INTENDED_USE", "PatientPage", "ReportRequest", "ReportResult", "build_mdt_report",
           "collect_patient_page", "download_pack", "key_series_uid"]

INTENDED_USE = (
    "Intended use: decision support for hepatologists and MDT meetings. HepaTrack estimates "
    "the risk of the named endpoint within the named horizon from the visits so far; it "
    "does not diagnose and does not replace clinical judgement. Scores are shown only for "
    "visits inside the model's training domain; performance outside the training "
    "population is unknown until externally validated.")
PAGE_W, PAGE_H = 842.0, 595.0  # A4 landscape, points
MARGIN = 24.0
FOOTER_TOP = MARGIN + 78  # top of the footer band (model, calibration, intended use)
Progress = Callable[[str, float], None]


@dataclass
class PatientPage:
    """Everything drawn on one patient's page (also what tests check)."""

    pseudonym: str
    title: str
    subtitle: str
    trajectory_png: bytes | None = None
    waterfall_png: bytes | None = None
    key_image_png: bytes | None = None
    key_image_caption: str = ""
    biomarkers: pd.DataFrame = field(default_factory=pd.DataFrame)
    risk_text: str = ""
    #: the imaging biomarkers behind the score, with value, change since the previous
    #: scan and contribution (``Trajectory.imaging_text``); empty without scans
    imaging_text: str = ""
    model_text: str = ""
    calibration_png: bytes | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportResult:
    """The made pack: its bytes (and path when written), page count and what was used."""

    pdf: bytes
    pages: int
    patients: list[str]
    model_id: str | None
    identified: bool
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- data
def key_series_uid(series: pd.DataFrame) -> str | None:
    """The series for the key image: the latest complete CT series, else the latest
    complete MR series, else None."""
    if series is None or series.empty:
        return None
    ok = series[series["status"] == "complete"]
    for modality in ("CT", "MR"):
        part = ok[ok["modality"].astype(str).str.upper() == modality]
        if not part.empty:
            part = part.sort_values(["time_years", "n_slices"], na_position="first",
                                    kind="stable")
            return str(part["series_uid"].iloc[-1])
    return None


def _model_text(model, metrics: dict[str, Any], horizon: float) -> str:
    vt = validation_table(metrics, model.horizons)
    m = vt.iloc[0] if len(vt) else None
    cal = calibration_summary(metrics)
    cal_h = cal[np.isclose(cal["horizon"].astype(float), horizon)] if len(cal) else cal
    parts = [f"Model {model.model_id} ({model.kind}), endpoint {model.events.label}, "
             f"horizon {horizon:g} y."]
    if m is not None and np.isfinite(m["c_index"]):
        ci = (f" (95% CI {m['c_index_low']:.2f}-{m['c_index_high']:.2f})"
              if np.isfinite(m["c_index_low"]) else "")
        parts.append(f"Cross-validated C-index {m['c_index']:.2f}{ci}.")
        k = f"td_auc_{horizon:g}"
        if k in vt.columns and np.isfinite(m[k]):
            parts.append(f"td-AUC at {horizon:g} y {m[k]:.2f}.")
    if len(cal_h):
        c = cal_h.iloc[0]
        parts.append(f"Calibration at {horizon:g} y: slope {c['slope']:.2f} (ideal 1), "
                     f"ICI {100 * c['ici']:.1f} percentage points.")
    return " ".join(parts)


def _title(detail, pseudonym: str, identified: bool) -> tuple[str, str]:
    """The page's title and subtitle: who (identified or pseudonymised) and the outcome."""
    if identified:
        title = f"{detail.patient_name or 'Name not recorded'} · {pseudonym}"
        born = detail.birth_date.isoformat() if detail.birth_date else "—"
        subtitle = f"Patient ID {detail.patient_id or '—'} · born {born} · sex {detail.sex or '—'}"
    else:
        title = pseudonym
        subtitle = (f"Pseudonymised · sex {detail.sex or '—'} · birth year "
                    f"{detail.birth_year or '—'} · dates shifted per patient")
    out = detail.outcome
    if out is not None:
        subtitle += (f" · follow-up: {out.event} at {out.time_years:.1f} y"
                     + (f" ({out.date.isoformat()})" if out.date else ""))
    return title, subtitle


def _risk_part(page: PatientPage, model, visits: pd.DataFrame | None, pseudonym: str,
               horizon: float | None, metrics: dict | None, out) -> None:
    """Trajectory, risk sentence, waterfall, model text and calibration onto ``page``."""
    h = float(horizon) if horizon is not None else max(model.horizons)
    try:
        view = patient_trajectory(model, visits, pseudonym, h)
    except ModelError as e:
        view = None
        page.notes.append(f"Risk not available: {e}")
    if view is not None:
        i = view.latest_index()
        sel = float(view.points["time"].iloc[i]) if i is not None else None
        page.trajectory_png = trajectory_png(
            view, outcome_event=out.event if out else None,
            outcome_time=out.time_years if out else None, selected_time=sel,
            size_in=(6.2, 2.65))
        if i is None:
            reasons = {r for r in view.points["reason"].dropna()}
            page.notes.append("No visit is assessable: " + "; ".join(sorted(reasons))[:300])
        else:
            p = view.points.iloc[i]
            page.risk_text = " ".join([risk_sentence(
                event_text(view.event), h, p["time"], p["risk"], (p["ci_low"], p["ci_high"])),
                why_text(view.why(i, top=1))]).strip()
            page.imaging_text = view.imaging_text(i)
            page.waterfall_png = waterfall_png(
                view.waterfall(i, top=7), size_in=(6.2, 2.6),
                title=f"Why: SHAP contributions at {p['time']:.1f} y")
    page.model_text = _model_text(model, metrics or {}, h)
    if metrics:
        page.calibration_png = calibration_png(calibration_curves(metrics), h,
                                               size_in=(2.3, 1.75))


def collect_patient_page(store, settings, pseudonym: str, *, identified: bool, model=None,
                         visits: pd.DataFrame | None = None, metrics: dict | None = None,
                         horizon: float | None = None, key_image_png: bytes | None = None,
                         key_image_caption: str | None = None) -> PatientPage:
    """Gather and render everything on one patient's page.

    Parts that cannot be made (no model, visit not assessable, no imaging, unreadable
    series) are replaced by a line saying why; only a missing patient is an error.

    Raises
    ------
    StoreError
        If no patient has this pseudonym.
    """
    detail = repo.patient_detail(store, pseudonym, identified=identified)
    title, subtitle = _title(detail, pseudonym, identified)
    page = PatientPage(pseudonym=pseudonym, title=title, subtitle=subtitle)
    page.biomarkers = biomarker_summary(detail.biomarkers, detail.visits)
    if model is None:
        page.notes.append("No trained model: no risk trajectory or explanation.")
    else:
        _risk_part(page, model, visits, pseudonym, horizon, metrics, detail.outcome)
    if key_image_png is not None:
        page.key_image_png = key_image_png
        page.key_image_caption = key_image_caption or ""
    else:
        uid = key_series_uid(detail.series)
        if uid is None:
            page.key_image_caption = "No complete CT or MR series stored."
        else:
            page.key_image_png, page.key_image_caption = _key_image(store, settings, uid,
                                                                    detail.series)
    return page


def _key_image(store, settings, uid: str, series: pd.DataFrame) -> tuple[bytes | None, str]:
    row = series[series["series_uid"] == uid].iloc[0]
    when = (pd.Timestamp(row["study_date"]).strftime("%Y-%m-%d")
            if pd.notna(row["study_date"]) else f"{row['time_years']:.1f} y")
    try:
        stack = load_key_image(store, settings, uid)
    except HepaTrackError as e:
        return None, f"Key image of the {row['modality']} of {when} not available: {e}"
    k = stack.key_index
    rgb = render_slice(stack, k, LIVER_WINDOW if stack.modality == "CT" else None)
    masks = ", ".join(f"{n} ({stack.labels_text[n]})" if stack.labels_text.get(
        n, "").startswith("automatic") else n for n in stack.structures) or "no masks"
    window = LIVER_WINDOW.label if stack.modality == "CT" else "auto window"
    caption = (f"{row['modality']} {when}, slice {k + 1}/{stack.n_slices} (z {stack.z_mm[k]:.0f}"
               f" mm), {window}; overlay: {masks}")
    return png_bytes(rgb), caption


# --------------------------------------------------------------------------- drawing
def _fonts() -> tuple[str, str]:
    """DejaVu Sans from matplotlib's own data (covers ⁹, ≥, µ, arrows); Helvetica if absent."""
    from matplotlib import get_data_path
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    if "HT-Sans" in pdfmetrics.getRegisteredFontNames():
        return "HT-Sans", "HT-Sans-Bold"
    base = Path(get_data_path()) / "fonts" / "ttf"
    try:
        pdfmetrics.registerFont(TTFont("HT-Sans", str(base / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("HT-Sans-Bold", str(base / "DejaVuSans-Bold.ttf")))
    except (OSError, TTFError):  # a missing or broken font file: the PDF still renders
        return "Helvetica", "Helvetica-Bold"
    return "HT-Sans", "HT-Sans-Bold"


def _image(c, png: bytes, x: float, y: float, w: float, h: float) -> None:
    from reportlab.lib.utils import ImageReader

    img = ImageReader(io.BytesIO(png))
    iw, ih = img.getSize()
    scale = min(w / iw, h / ih)
    dw, dh = iw * scale, ih * scale
    c.drawImage(img, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh)


def _wrap(c, text: str, x: float, y: float, width: float, font: str, size: float,
          max_lines: int, leading: float | None = None) -> float:
    from reportlab.lib.utils import simpleSplit

    lines = simpleSplit(text, font, size, width)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip()[: max(0, len(lines[-1]) - 1)] + "…"
    c.setFont(font, size)
    lead = leading or size * 1.25
    for line in lines:
        c.drawString(x, y, line)
        y -= lead
    return y


def _biomarker_table(c, df: pd.DataFrame, x: float, y_top: float, w: float, font: str,
                     bold: str, max_rows: int = 14) -> None:
    from reportlab.lib import colors
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.platypus import Table, TableStyle

    def num(v: float) -> str:
        if not np.isfinite(v):
            return "—"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"

    widths = [w * f for f in (0.37, 0.17, 0.11, 0.11, 0.14, 0.10)]
    size = 7.2
    data = [["Biomarker", "Latest (y)", "Prev.", "Change", "Normal", ""]]
    shown = df.head(max_rows)
    for r in shown.itertuples():
        flag = {"below normal": "↓ low", "above normal": "↑ high"}.get(r.flag, "")
        data.append([r.label, f"{num(r.latest)} ({r.latest_time:.1f})"
                     if np.isfinite(r.latest_time) else num(r.latest),
                     num(r.previous), "—" if not np.isfinite(r.change) else f"{r.change:+.3g}",
                     range_text(r.normal_low, r.normal_high, r.unit), flag])
    if len(data) == 1:
        data.append(["No biomarkers or labs stored", "", "", "", "", ""])
    style = [("FONT", (0, 0), (-1, -1), font, size), ("FONT", (0, 0), (-1, 0), bold, size),
             ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2),
             ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]
    # long labels shrink to fit their cell (never below 5 pt) instead of overflowing
    for i, row in enumerate(data):
        for j, cell in enumerate(row):
            room = widths[j] - 4
            width = stringWidth(cell, font, size)
            if width > room:
                style.append(("FONTSIZE", (j, i), (j, i), max(5.0, size * room / width)))
    for i, r in enumerate(shown.itertuples(), start=1):
        if r.flag in ("below normal", "above normal"):
            style.append(("FONTNAME", (5, i), (5, i), bold))
        if i % 2 == 0:
            style.append(("BACKGROUND", (0, i), (-1, i), colors.Color(0.96, 0.96, 0.96)))
    t = Table(data, colWidths=widths, rowHeights=12.5)
    t.setStyle(TableStyle(style))
    _tw, th = t.wrapOn(c, w, 400)
    t.drawOn(c, x, y_top - th)


def _draw_page(c, page: PatientPage, n: int, total: int, header: str, footer: str,
               fonts: tuple[str, str]) -> None:
    from reportlab.lib import colors

    font, bold = fonts
    top = PAGE_H - MARGIN
    c.setFillColor(colors.black)
    c.setFont(bold, 15)
    c.drawString(MARGIN, top - 14, page.title)
    c.setFont(font, 8.5)
    c.drawRightString(PAGE_W - MARGIN, top - 6, header)
    c.drawRightString(PAGE_W - MARGIN, top - 17, f"Page {n} of {total}")
    _wrap(c, page.subtitle, MARGIN, top - 28, PAGE_W - 2 * MARGIN - 150, font, 8.5, 1)
    c.setStrokeColor(colors.Color(0.6, 0.6, 0.6))
    c.line(MARGIN, top - 34, PAGE_W - MARGIN, top - 34)

    left_w = 470.0
    right_x = MARGIN + left_w + 12
    right_w = PAGE_W - MARGIN - right_x
    y = top - 40
    # row 1: trajectory | key image
    if page.trajectory_png:
        _image(c, page.trajectory_png, MARGIN, y - 200, left_w, 200)
    else:
        _wrap(c, " ".join(page.notes) or "No risk trajectory.", MARGIN, y - 20, left_w,
              font, 9, 4)
    if page.key_image_png:
        _image(c, page.key_image_png, right_x, y - 180, right_w, 180)
    _wrap(c, page.key_image_caption, right_x, y - 190, right_w, font, 7, 3)
    y -= 206
    # risk sentence
    c.setFillColor(colors.black)
    _wrap(c, page.risk_text or " ".join(page.notes), MARGIN, y - 4, left_w, bold, 9, 2)
    below = 0.0
    if page.imaging_text:
        _wrap(c, page.imaging_text, MARGIN, y - 27, left_w, font, 7.5, 2)
        below = 20.0
    # row 2: waterfall | biomarker table
    if page.waterfall_png:
        _image(c, page.waterfall_png, MARGIN, FOOTER_TOP + 4, left_w,
               y - 14 - below - FOOTER_TOP - 4)
    _biomarker_table(c, page.biomarkers, right_x, y - 30, right_w, font, bold)
    # footer: model, calibration, intended use
    fy = FOOTER_TOP
    c.setStrokeColor(colors.Color(0.6, 0.6, 0.6))
    c.line(MARGIN, fy, PAGE_W - MARGIN, fy)
    cal_w = 118.0 if page.calibration_png else 0.0
    text_w = PAGE_W - 2 * MARGIN - cal_w - 8
    yy = _wrap(c, page.model_text or "No model.", MARGIN, fy - 10, text_w, font, 7.5, 2)
    yy = _wrap(c, INTENDED_USE, MARGIN, yy - 2, text_w, font, 7, 4)
    _wrap(c, footer, MARGIN, yy - 2, text_w, font, 6.5, 1)
    if page.calibration_png:
        _image(c, page.calibration_png, PAGE_W - MARGIN - cal_w, MARGIN - 12, cal_w,
               fy - MARGIN + 10)


def render_pdf(pages: list[PatientPage], *, header: str, footer: str) -> bytes:
    """Draw the pages (one per patient) and return the PDF bytes."""
    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(PAGE_W, PAGE_H), pageCompression=1)
    c.setTitle("HepaTrack MDT pack")
    c.setCreator("HepaTrack")
    fonts = _fonts()
    for n, page in enumerate(pages, start=1):
        _draw_page(c, page, n, len(pages), header, footer, fonts)
        c.showPage()
    c.save()
    return buf.getvalue()


# --------------------------------------------------------------------------- use case
@dataclass(frozen=True)
class ReportRequest:
    """What goes into the MDT pack.

    Attributes
    ----------
    patients
        Pseudonyms, one page each in this order; repeats are dropped.
    out
        Where to write the PDF (atomically); None keeps it in memory only.
    identified
        Real names and dates; default: whatever the actor may see.
    model_id, horizon
        The model (default the active one) and horizon (default its longest).
    meeting
        Meeting name for the header.
    model, visits
        An already loaded model and ``CohortTable.visits`` (the page passes its cached
        ones); loaded here when None.
    key_images
        Already rendered key images by pseudonym: ``(png, caption)`` (the page passes the
        slice the user chose); rendered here from the latest scan otherwise.
    progress
        ``progress(message, fraction)`` after each page.
    """

    patients: list[str]
    out: str | Path | None = None
    identified: bool | None = None
    model_id: str | None = None
    horizon: float | None = None
    meeting: str | None = None
    model: Any = None
    visits: pd.DataFrame | None = None
    key_images: dict[str, tuple[bytes, str]] | None = None
    progress: Progress | None = None


def _patients(store, patients: list[str]) -> list[str]:
    pts = list(dict.fromkeys(p for p in patients if p))
    if not pts:
        raise StoreError("MDT report: no patient given", hint="add patients to the meeting list")
    known = known_pseudonyms(store, pts)
    unknown = [p for p in pts if p not in known]
    if unknown:
        raise StoreError(f"MDT report: patient(s) {', '.join(unknown)} not in the store",
                         hint="pick pseudonyms from the cohort list")
    return pts


def _model_parts(ctx: Context, req: ReportRequest, warnings: list[str]
                 ) -> tuple[Any, dict[str, Any], pd.DataFrame | None]:
    """The model (None, with a warning, when none loads), its metrics and the visits."""
    model, visits = req.model, req.visits
    if model is None:
        try:
            model = load_model(ctx.store, ctx.settings, req.model_id)
        except ModelError as e:
            warnings.append(str(e))
    if model is None:
        return None, {}, visits
    metrics = model_metrics(ctx.store, model.model_id)["metrics"]
    return model, metrics, visits if visits is not None else build_cohort(ctx.store).visits


def _write_atomically(out: str | Path, pdf: bytes) -> Path:
    path = Path(out)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(pdf)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def build_mdt_report(ctx: Context, req: ReportRequest) -> ReportResult:
    """Make the MDT pack for ``req.patients`` (one page each, in the given order).

    Raises
    ------
    PermissionDeniedError
        If the actor may not export this kind of pack (refusal audited).
    StoreError
        If a patient is unknown or no patient is given.
    AuditError
        If the export cannot be audited (no PDF is made).
    """
    ident = (allowed(ctx.actor, Permission.VIEW_IDENTIFIED) if req.identified is None
             else req.identified)
    authorize(ctx, Permission.EXPORT_IDENTIFIED if ident else Permission.EXPORT_PSEUDONYMISED,
              "export")
    pts = _patients(ctx.store, req.patients)
    warnings: list[str] = []
    model, metrics, visits = _model_parts(ctx, req, warnings)
    mid = model.model_id if model is not None else None
    detail = {"what": "mdt_pdf", "patients": len(pts), "identified": ident, "pseudonyms": pts}
    with audited(ctx, "export", patient=pts[0] if len(pts) == 1 else None,
                 model_version=mid, detail=detail):
        pages = []
        for n, p in enumerate(pts, start=1):
            ki = (req.key_images or {}).get(p)
            pages.append(collect_patient_page(
                ctx.store, ctx.settings, p, identified=ident, model=model, visits=visits,
                metrics=metrics, horizon=req.horizon, key_image_png=ki[0] if ki else None,
                key_image_caption=ki[1] if ki else None))
            if req.progress:
                req.progress(f"page {n} of {len(pts)}: {p}", n / len(pts))
        when = ctx.clock().strftime("%Y-%m-%d %H:%M UTC")
        header = f"HepaTrack MDT{' · ' + req.meeting if req.meeting else ''} · {when}"
        footer = (f"Generated by {ctx.username} · "
                  f"{'identified' if ident else 'pseudonymised'} pack · "
                  f"model {mid or 'none'} · confidential clinical document")
        pdf = render_pdf(pages, header=header, footer=footer)
        path = _write_atomically(req.out, pdf) if req.out is not None else None
    for page in pages:
        warnings += [f"{page.pseudonym}: {n}" for n in page.notes]
    return ReportResult(pdf=pdf, pages=len(pages), patients=pts, model_id=mid,
                        identified=ident, path=path, warnings=warnings)


def download_pack(ctx: Context, result: ReportResult) -> bytes:
    """The bytes of a made pack, for its download (audited ``export``, step ``download``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not export this kind of pack (refusal audited).
    AuditError
        If the download cannot be audited: then no bytes are given.
    """
    authorize(ctx, Permission.EXPORT_IDENTIFIED if result.identified
              else Permission.EXPORT_PSEUDONYMISED, "export")
    with audited(ctx, "export", detail={"step": "download", "what": "mdt_pack",
                                        "pages": int(result.pages),
                                        "identified": bool(result.identified)}):
        return result.pdf
