"""The MDT pack's A4 landscape page, drawn with reportlab from a :class:`PatientPage`.

One page per patient: who (name in clinical form, age, aetiology, MELD, Child-Pugh,
ALBI), the meeting's question, discussion and decision, the risk trajectory and its
sentence, the SHAP waterfall, the key image, every biomarker and lab (the table shrinks
its rows to fit instead of cutting any), and the model with its calibration. Nothing
here needs a browser.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.viz.prep import NO_SAME_PHASE, PHASE_NOTE, range_text
from analytics.vocabulary import PHASE_DEPENDENT

__all__ = ["MARGIN", "PAGE_H", "PAGE_W", "PatientPage", "render_pdf"]

PAGE_W, PAGE_H = 842.0, 595.0  # A4 landscape, points
MARGIN = 24.0
FOOTER_TOP = MARGIN + 78  # top of the footer band (model, calibration, intended use)
LEFT_W = 470.0
#: contrast phases as the table's narrow label column shows them (explained below it)
PHASE_SHORT = {"unenhanced": "[unenh.]", "arterial": "[art.]", "portal venous": "[PV]",
               "delayed": "[delayed]", "phase unknown": "[phase?]"}


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
    #: age, aetiology, MELD, Child-Pugh, ALBI (``ClinicalFacts.line``)
    facts_text: str = ""
    #: the meeting's record: ``[("Question", text), ("Discussion", text), ("Decision",
    #: text)]``, or one line saying why there is none
    mdt_record: list[tuple[str, str]] = field(default_factory=list)


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


def _num(v: float) -> str:
    if not np.isfinite(v):
        return "—"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _table_rows(df: pd.DataFrame) -> list[list[str]]:
    rows = [["Biomarker / lab", "Latest (y)", "Prev.", "Change", "Normal", ""]]
    for r in df.itertuples():
        flag = {"below normal": "↓ low", "above normal": "↑ high"}.get(r.flag, "")
        label = (f"{r.label} {PHASE_SHORT.get(r.phase, r.phase)}"
                 if r.name in PHASE_DEPENDENT and r.phase else r.label)
        prev = ("no same-phase scan" if r.compared_with == NO_SAME_PHASE
                else _num(r.previous))
        rows.append([label, f"{_num(r.latest)} ({r.latest_time:.1f})"
                     if np.isfinite(r.latest_time) else _num(r.latest), prev,
                     "—" if not np.isfinite(r.change) else f"{r.change:+.3g}",
                     range_text(r.normal_low, r.normal_high, r.unit), flag])
    if len(rows) == 1:
        rows.append(["No biomarkers or labs stored", "", "", "", "", ""])
    return rows


def _biomarker_table(c, df: pd.DataFrame, x: float, y_top: float, w: float, h: float,
                     fonts: tuple[str, str]) -> float:
    """Every row of ``df`` in at most ``h`` points (rows shrink, never drop); returns the
    table's bottom."""
    from reportlab.lib import colors
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.platypus import Table, TableStyle

    font, bold = fonts
    data = _table_rows(df)
    row_h = min(12.5, h / len(data))
    size = min(7.2, row_h * 0.72)
    widths = [w * f for f in (0.36, 0.14, 0.19, 0.10, 0.13, 0.08)]
    style = [("FONT", (0, 0), (-1, -1), font, size), ("FONT", (0, 0), (-1, 0), bold, size),
             ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2),
             ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 0)]
    # long labels shrink to fit their cell (never below 4.5 pt) instead of overflowing
    for i, row in enumerate(data):
        for j, cell in enumerate(row):
            room = widths[j] - 4
            width = stringWidth(cell, font, size)
            if width > room:
                style.append(("FONTSIZE", (j, i), (j, i), max(4.5, size * room / width)))
    for i, r in enumerate(df.itertuples(), start=1):
        if r.flag in ("below normal", "above normal"):
            style.append(("FONTNAME", (5, i), (5, i), bold))
        if i % 2 == 0:
            style.append(("BACKGROUND", (0, i), (-1, i), colors.Color(0.96, 0.96, 0.96)))
    t = Table(data, colWidths=widths, rowHeights=row_h)
    t.setStyle(TableStyle(style))
    _tw, th = t.wrapOn(c, w, h)
    t.drawOn(c, x, y_top - th)
    return y_top - th


def _record_box(c, record: list[tuple[str, str]], x: float, y_top: float, w: float,
                y_bottom: float, fonts: tuple[str, str]) -> None:
    """The meeting's question, discussion and decision, each under its bold heading; the
    decision is drawn before any text is shortened."""
    from reportlab.lib import colors
    from reportlab.lib.utils import simpleSplit

    font, bold = fonts
    size, lead, indent = 7.5, 9.5, 60.0
    c.setStrokeColor(colors.Color(0.6, 0.6, 0.6))
    c.rect(x, y_bottom, w, y_top - y_bottom, stroke=1, fill=0)
    need = [max(1, len(simpleSplit(t or "—", font, size, w - indent - 6))) for _h, t in record]
    room = int((y_top - y_bottom - 6) // lead)
    # every part gets one line; the spare lines complete the shorter parts first
    lines = [1] * len(record)
    for k in sorted(range(len(record)), key=lambda k: need[k]):
        extra = min(need[k] - 1, max(0, room - sum(lines)))
        lines[k] += extra
    y = y_top - 10
    for (head, text), n in zip(record, lines, strict=True):
        c.setFont(bold, size)
        c.drawString(x + 4, y, f"{head}:")
        y = _wrap(c, text or "—", x + indent, y, w - indent - 6, font, size, n, lead)


def _header(c, page: PatientPage, n: int, total: int, header: str, fonts: tuple[str, str]
            ) -> float:
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
    _wrap(c, page.facts_text, MARGIN, top - 39, PAGE_W - 2 * MARGIN, bold, 8, 2, 9.5)
    c.setStrokeColor(colors.Color(0.6, 0.6, 0.6))
    c.line(MARGIN, top - 54, PAGE_W - MARGIN, top - 54)
    return top - 58


def _left_column(c, page: PatientPage, y: float, fonts: tuple[str, str]) -> None:
    """Trajectory, risk sentence, waterfall and the meeting's record, top to bottom."""
    font, bold = fonts
    if page.trajectory_png:
        _image(c, page.trajectory_png, MARGIN, y - 150, LEFT_W, 150)
    else:
        _wrap(c, " ".join(page.notes) or "No risk trajectory.", MARGIN, y - 20, LEFT_W,
              font, 9, 4)
    y -= 158
    # three lines: the risk sentence and the first reason, whole (the waterfall gives way)
    yy = _wrap(c, page.risk_text or " ".join(page.notes), MARGIN, y, LEFT_W, bold, 8.5, 3)
    if page.imaging_text:
        yy = _wrap(c, page.imaging_text, MARGIN, yy - 1, LEFT_W, font, 7.2, 2)
    record_h = 100.0
    record_top = FOOTER_TOP + 4 + record_h
    if page.waterfall_png:
        _image(c, page.waterfall_png, MARGIN, record_top + 4, LEFT_W, yy - record_top - 8)
    _record_box(c, page.mdt_record, MARGIN, record_top, LEFT_W, FOOTER_TOP + 4, fonts)


def _draw_page(c, page: PatientPage, n: int, total: int, header: str, footer: str,
               intended_use: str, fonts: tuple[str, str]) -> None:
    from reportlab.lib import colors

    font, _bold = fonts
    y = _header(c, page, n, total, header, fonts)
    _left_column(c, page, y, fonts)
    right_x = MARGIN + LEFT_W + 12
    right_w = PAGE_W - MARGIN - right_x
    if page.key_image_png:
        _image(c, page.key_image_png, right_x, y - 140, right_w, 140)
    yy = _wrap(c, page.key_image_caption, right_x, y - 148, right_w, font, 6.5, 3, 8)
    note_h = 25.0
    bottom = _biomarker_table(c, page.biomarkers, right_x, yy - 2, right_w,
                              yy - 2 - FOOTER_TOP - 4 - note_h, fonts)
    _wrap(c, PHASE_NOTE + " PV: portal venous; unenh.: unenhanced; art.: arterial.",
          right_x, bottom - 8, right_w, font, 6.3, 3, 7.5)
    # footer: model, calibration, intended use
    fy = FOOTER_TOP
    c.setStrokeColor(colors.Color(0.6, 0.6, 0.6))
    c.line(MARGIN, fy, PAGE_W - MARGIN, fy)
    cal_w = 118.0 if page.calibration_png else 0.0
    text_w = PAGE_W - 2 * MARGIN - cal_w - 8
    c.setFillColor(colors.black)
    yy = _wrap(c, page.model_text or "No model.", MARGIN, fy - 10, text_w, font, 7.5, 2)
    yy = _wrap(c, intended_use, MARGIN, yy - 2, text_w, font, 7, 4)
    _wrap(c, footer, MARGIN, yy - 2, text_w, font, 6.5, 1)
    if page.calibration_png:
        _image(c, page.calibration_png, PAGE_W - MARGIN - cal_w, MARGIN - 12, cal_w,
               fy - MARGIN + 10)


def render_pdf(pages: list[PatientPage], *, header: str, footer: str,
               intended_use: str) -> bytes:
    """Draw the pages (one per patient) and return the PDF bytes."""
    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(PAGE_W, PAGE_H), pageCompression=1)
    c.setTitle("HepaTrack MDT pack")
    c.setCreator("HepaTrack")
    fonts = _fonts()
    for n, page in enumerate(pages, start=1):
        _draw_page(c, page, n, len(pages), header, footer, intended_use, fonts)
        c.showPage()
    c.save()
    return buf.getvalue()
