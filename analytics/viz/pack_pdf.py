"""The MDT pack's A4 landscape page, drawn with reportlab from a :class:`PatientPage`.

One page per patient: who (name in clinical form, age, aetiology, MELD, Child-Pugh,
ALBI), the meeting's question, discussion and decision, the risk trajectory and its
sentence, the SHAP waterfall, the key image, every biomarker and lab (long names wrap
onto a second line; the key image gives way to the table), and the model with its
calibration. Nothing here needs a browser.

No text on the page is smaller than :data:`MIN_FONT_PT` at print size: the figures are
drawn at the size of their box (:data:`TRAJECTORY_BOX`, :data:`WATERFALL_BOX`,
:data:`CALIBRATION_BOX`; :func:`inches`), so a figure's font size in points is its
printed size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.viz.prep import NO_SAME_PHASE, PHASE_NOTE, range_text
from analytics.vocabulary import PHASE_DEPENDENT

__all__ = ["CALIBRATION_BOX", "MARGIN", "MIN_FONT_PT", "PAGE_H", "PAGE_W", "TRAJECTORY_BOX",
           "WATERFALL_BOX", "PatientPage", "inches", "render_pdf"]

PAGE_W, PAGE_H = 842.0, 595.0  # A4 landscape, points
MARGIN = 24.0
FOOTER_TOP = MARGIN + 78  # top of the footer band (model, calibration, intended use)
LEFT_W = 440.0
#: the smallest text anywhere on the page, points at print size
MIN_FONT_PT = 7.0
#: (width, height) in points of the boxes the figures are drawn in, at scale 1
TRAJECTORY_BOX = (LEFT_W, 122.0)
WATERFALL_BOX = (LEFT_W, 140.0)
CALIBRATION_BOX = (118.0, 88.0)
#: the key image's largest and smallest height, points (the biomarker table comes first)
KEY_IMAGE_H = (150.0, 70.0)
#: the biomarker table's font and line spacing, points
TABLE_FONT, TABLE_LEADING = MIN_FONT_PT, 8.2
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


def inches(box: tuple[float, float]) -> tuple[float, float]:
    """A box's size in inches: the ``size_in`` to draw a figure at so that it is placed on
    the page at scale 1 (its fonts print at their own size)."""
    return box[0] / 72.0, box[1] / 72.0


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


def _wrapped(cell: str, font: str, size: float, room: float) -> str:
    """``cell`` broken into lines of at most ``room`` points (a long name wraps, it does
    not shrink)."""
    from reportlab.lib.utils import simpleSplit

    return "\n".join(simpleSplit(cell, font, size, room)) or cell


#: the table's column widths as fractions of its width: the name column takes the rest
_TABLE_COLUMNS = (0.41, 0.15, 0.11, 0.12, 0.12, 0.09)


def biomarker_table(df: pd.DataFrame, w: float, fonts: tuple[str, str]):
    """The biomarker table (a reportlab ``Table``) at :data:`TABLE_FONT` points, every
    cell wrapped to its column's width."""
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    font, bold = fonts
    size, lead = TABLE_FONT, TABLE_LEADING
    widths = [w * f for f in _TABLE_COLUMNS]
    data = [[_wrapped(cell, bold if i == 0 else font, size, widths[j] - 4)
             for j, cell in enumerate(row)] for i, row in enumerate(_table_rows(df))]
    style = [("FONT", (0, 0), (-1, -1), font, size, lead),
             ("FONT", (0, 0), (-1, 0), bold, size, lead),
             ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2),
             ("TOPPADDING", (0, 0), (-1, -1), 0.6), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.4)]
    for i, r in enumerate(df.itertuples(), start=1):
        if r.flag in ("below normal", "above normal"):
            style.append(("FONTNAME", (5, i), (5, i), bold))
        if i % 2 == 0:
            style.append(("BACKGROUND", (0, i), (-1, i), colors.Color(0.96, 0.96, 0.96)))
    t = Table(data, colWidths=widths)
    t.setStyle(TableStyle(style))
    return t


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
    """Trajectory, risk sentence, waterfall and the meeting's record, top to bottom; each
    figure fills its box at scale 1."""
    font, bold = fonts
    tw, th = TRAJECTORY_BOX
    if page.trajectory_png:
        _image(c, page.trajectory_png, MARGIN, y - th, tw, th)
    else:
        _wrap(c, " ".join(page.notes) or "No risk trajectory.", MARGIN, y - 20, LEFT_W,
              font, 9, 4)
    y -= th + 8
    # three lines: the risk sentence and the first reason, whole
    yy = _wrap(c, page.risk_text or " ".join(page.notes), MARGIN, y, LEFT_W, bold, 8.5, 3)
    if page.imaging_text:
        yy = _wrap(c, page.imaging_text, MARGIN, yy - 1, LEFT_W, font, 7.5, 3, 9.2)
    ww, wh = WATERFALL_BOX
    top = yy - 2
    if page.waterfall_png:
        _image(c, page.waterfall_png, MARGIN, top - wh, ww, wh)
        top -= wh + 4
    _record_box(c, page.mdt_record, MARGIN, top, LEFT_W, FOOTER_TOP + 4, fonts)


def _draw_page(c, page: PatientPage, n: int, total: int, header: str, footer: str,
               intended_use: str, fonts: tuple[str, str]) -> None:
    from reportlab.lib import colors

    font, _bold = fonts
    y = _header(c, page, n, total, header, fonts)
    _left_column(c, page, y, fonts)
    right_x = MARGIN + LEFT_W + 12
    right_w = PAGE_W - MARGIN - right_x
    # the table first: the key image takes the height the table leaves (within limits)
    table = biomarker_table(page.biomarkers, right_w, fonts)
    _tw, table_h = table.wrapOn(c, right_w, PAGE_H)
    note = PHASE_NOTE + " PV: portal venous; unenh.: unenhanced; art.: arterial."
    note_h = 4 * 8.4 + 6
    caption_h = 3 * 8.6 + 4
    room = y - (FOOTER_TOP + 4 + note_h) - table_h - caption_h - 8
    image_h = min(KEY_IMAGE_H[0], max(KEY_IMAGE_H[1], room)) if page.key_image_png else 0.0
    if page.key_image_png:
        _image(c, page.key_image_png, right_x, y - image_h, right_w, image_h)
    yy = _wrap(c, page.key_image_caption, right_x, y - image_h - 10, right_w, font,
               MIN_FONT_PT, 3, 8.6)
    table.drawOn(c, right_x, yy - 2 - table_h)
    _wrap(c, note, right_x, yy - 2 - table_h - 9, right_w, font, MIN_FONT_PT, 4, 8.4)
    # footer: model, calibration, intended use
    fy = FOOTER_TOP
    c.setStrokeColor(colors.Color(0.6, 0.6, 0.6))
    c.line(MARGIN, fy, PAGE_W - MARGIN, fy)
    cal_w, cal_h = CALIBRATION_BOX if page.calibration_png else (0.0, 0.0)
    text_w = PAGE_W - 2 * MARGIN - cal_w - 8
    c.setFillColor(colors.black)
    yy = _wrap(c, page.model_text or "No model.", MARGIN, fy - 10, text_w, font, 7.5, 2)
    yy = _wrap(c, intended_use, MARGIN, yy - 2, text_w, font, 7, 4)
    _wrap(c, footer, MARGIN, yy - 2, text_w, font, MIN_FONT_PT, 1)
    if page.calibration_png:
        _image(c, page.calibration_png, PAGE_W - MARGIN - cal_w, fy - 2 - cal_h, cal_w,
               cal_h)


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
