"""The MDT pack's page layout (``analytics.viz.pack_pdf``): what is written on the page is
whole, not cut short."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from analytics.viz.pack_pdf import PatientPage, render_pdf


def test_the_risk_sentence_with_its_first_reason_is_printed_whole():
    # the pack's sentence for a patient of the demo: three lines at 8.5 pt in the left
    # column; it was cut after two lines, mid-reason ("since the previous scan…")
    risk = ("Risk of death, decompensation or HCC within 3 y at the visit at 5.2 y: 31.8% "
            "(95% CI 26.0%-38.5%). Why: Liver surface nodularity 1.01 mm (+0.00841 mm since "
            "the previous scan): +5.8 points.")
    page = PatientPage("HT-0001", "Jane DOE · HT-0001", "Patient ID 1", risk_text=risk)
    pdf = render_pdf([page], header="MDT", footer="footer", intended_use="use")
    text = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    assert risk in text
    assert "…" not in text


def _pdf_font_sizes(pdf: bytes) -> list[tuple[float, str]]:
    """``(printed size in points, text)`` of every piece of text on every page: the font
    size scaled by the text and the current transformation matrices."""
    import math

    out: list[tuple[float, str]] = []

    def visit(text, cm, tm, _font, size):
        if text.strip():
            scale = math.hypot(tm[2], tm[3]) * math.hypot(cm[2], cm[3])
            out.append((size * scale, text.strip()))

    for page in PdfReader(io.BytesIO(pdf)).pages:
        page.extract_text(visitor_text=visit)
    return out


def _long_biomarkers():
    import pandas as pd

    from analytics.viz.prep import NO_SAME_PHASE

    names = [("liver_spleen_hu_diff", "Liver minus spleen attenuation (HU)", "unenhanced",
              "below normal"),
             ("liver_vessel_branch_density", "Liver vessel branch density (1/L)", "", ""),
             ("liver_hu_mean", "Liver attenuation, mean (HU)", "unenhanced", "below normal")]
    rows = [{"name": n, "label": label, "phase": phase, "flag": flag, "latest": -18.8,
             "latest_time": 2.7, "previous": -20.2, "change": 1.39, "normal_low": -10.0,
             "normal_high": float("nan"), "unit": "HU", "compared_with": "previous scan"}
            for n, label, phase, flag in names]
    rows += [{"name": f"lab_{k}", "label": f"Lab {k} (U/L)", "phase": "", "flag": "",
              "latest": 40.0 + k, "latest_time": 7.4, "previous": 38.0, "change": 2.0 + k,
              "normal_low": float("nan"), "normal_high": float("nan"), "unit": "U/L",
              "compared_with": NO_SAME_PHASE if k == 0 else "previous visit"}
             for k in range(18)]
    return pd.DataFrame(rows)


def test_no_text_in_the_pack_is_smaller_than_7_points_and_long_names_wrap_whole():
    from analytics.viz.pack_pdf import MIN_FONT_PT

    assert MIN_FONT_PT == 7.0
    page = PatientPage("HT-0001", "Jane DOE · HT-0001", "Patient ID 1",
                       biomarkers=_long_biomarkers(), facts_text="Age 70 y · MELD 14",
                       key_image_caption="CT 2020-04-22, slice 14/26; overlay: Liver, Spleen",
                       imaging_text="Imaging: Spleen volume 151 mL: -3.6 points.",
                       model_text="Model m (cox), horizon 3 y.",
                       mdt_record=[("Question", "Is the spleen growing?")])
    pdf = render_pdf([page], header="MDT", footer="footer", intended_use="use")
    sizes = _pdf_font_sizes(pdf)
    assert len(sizes) > 40
    small = [(round(s, 2), t) for s, t in sizes if s < MIN_FONT_PT - 1e-6]
    assert small == []
    # the longest name is printed whole, at the table's size (it was shrunk to ~4.5 pt)
    text = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    assert "Liver minus spleen attenuation (HU) [unenh.]" in text
    assert "Liver vessel branch density (1/L)" in text
    label = [s for s, t in sizes if t.startswith("Liver minus spleen")]
    assert label and min(label) >= MIN_FONT_PT


def _visible_text_sizes(fig) -> list[tuple[float, str]]:
    from matplotlib.text import Text

    fig.canvas.draw()
    return [(t.get_fontsize(), t.get_text()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip()]


def test_the_packs_figures_print_at_their_box_size_with_no_text_under_7_points():
    import pandas as pd

    from analytics.explain import Waterfall
    from analytics.usecases.report import (
        CALIBRATION_FIGURE,
        TRAJECTORY_FIGURE,
        WATERFALL_FIGURE,
    )
    from analytics.viz import mpl
    from analytics.viz.pack_pdf import (
        CALIBRATION_BOX,
        MIN_FONT_PT,
        TRAJECTORY_BOX,
        WATERFALL_BOX,
    )
    from tests.viz.test_risk_figures import _trajectory

    # each figure is drawn at its box's size: placed at scale 1, a font's size is printed
    for kwargs, box in ((TRAJECTORY_FIGURE, TRAJECTORY_BOX), (WATERFALL_FIGURE, WATERFALL_BOX),
                        (CALIBRATION_FIGURE, CALIBRATION_BOX)):
        w, h = kwargs["size_in"]
        assert (w * 72, h * 72) == pytest.approx(box)
    steps = pd.DataFrame({
        "label": ["Base risk", "Spleen volume = 151 mL (+20.5 mL since the previous scan)",
                  "Age = 74.9 years", "10 other features", "Risk"],
        "shap": [0.0, -3.6, 6.3, 8.9, 0.0], "start": [15.2, 15.2, 11.6, 17.9, 26.8],
        "end": [15.2, 11.6, 17.9, 26.8, 26.8],
        "kind": ["base", "feature", "feature", "other", "output"]})
    cal = pd.DataFrame({"horizon": [3.0] * 3, "predicted": [0.1, 0.2, 0.4],
                        "observed": [0.09, 0.22, 0.37]})
    figures = {
        "trajectory": mpl.trajectory_figure(_trajectory(), outcome_event="decompensation",
                                            outcome_time=1.8, selected_time=1.5,
                                            **TRAJECTORY_FIGURE),
        "waterfall": mpl.waterfall_figure(Waterfall(steps, 15.2, 26.8, "points", 3.0),
                                          title="Why: percentage points", **WATERFALL_FIGURE),
        "calibration": mpl.calibration_figure(cal, 3.0, **CALIBRATION_FIGURE)}
    for name, fig in figures.items():
        sizes = _visible_text_sizes(fig)
        assert len(sizes) >= 6, (name, sizes)
        assert [(s, t) for s, t in sizes if s < MIN_FONT_PT] == [], name
