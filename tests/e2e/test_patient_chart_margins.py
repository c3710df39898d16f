"""The Patient page's risk trajectory and explanation waterfall are laid out once: the
margins their builders set already hold the tick labels, axis titles and legend as
plotly.js lays them out in Chromium in the dashboard's font, so plotly's automatic
margins grow nothing (a margin grown is a second layout of the whole chart, and a
patient switch draws both charts anew)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
import pytest
import streamlit

from analytics import viz
from analytics.explain import Trajectory, Waterfall
from analytics.models.explanation import Explanation

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
#: the dashboard's font, as Streamlit serves it (its chart theme names it for plotly)
FONT = next((Path(streamlit.__file__).parent / "static" / "static" / "media").glob(
    "SourceSansVF-Upright*.woff2"))
PAGE_CHART_PX = 820  # the main column of a 1280-px window

#: draw each figure as Streamlit's chart theme does (its font), then give the margins
#: as set and as plotly laid them out
DRAW_JS = """async ([figs, width]) => {
  await document.fonts.load('13px "Source Sans"');
  const out = [];
  for (const f of figs) {
    const gd = document.createElement('div');
    gd.style.width = width + 'px';
    document.body.appendChild(gd);
    f.layout.font = {...f.layout.font, family: '"Source Sans", sans-serif'};
    f.layout.width = width;
    await Plotly.newPlot(gd, f.data, f.layout, {});
    const s = gd._fullLayout._size;
    out.push({set: f.layout.margin, drawn: {l: s.l, r: s.r, t: s.t, b: s.b}});
    Plotly.purge(gd);
    gd.remove();
  }
  return out;
}"""


def _trajectory(n: int, outcome: bool) -> tuple[Trajectory, dict]:
    t = np.linspace(0.0, 6.0, n)
    risk = np.linspace(0.08, 0.31, n)
    points = pd.DataFrame({
        "time": t, "date": ["2020-01-01"] * n, "risk": risk, "ci_low": risk * 0.6,
        "ci_high": risk * 1.2, "assessable": [True] * (n - 1) + [False],
        "reason": [None] * (n - 1) + ["missing required feature albumin_g_dl"],
        "is_scan": [i % 2 == 0 for i in range(n)], "series_uid": [None] * n,
        "base_value": np.zeros(n), "model_output": np.log(risk)})
    empty = Explanation(np.zeros((n, 0)), np.zeros(n), points["model_output"].to_numpy(),
                        pd.DataFrame(index=range(n)), "log_hazard")
    kw = ({"outcome_event": "censored", "outcome_time": 6.5} if outcome else {})
    return Trajectory("P1", None, "death,decompensation,hcc", 3.0, points, empty, empty,
                      has_interval=True), kw


def _waterfall(labels: list[str]) -> Waterfall:
    steps = [2.0 + i for i in range(len(labels))]
    ends = np.cumsum([10.0, *steps])
    df = pd.DataFrame({"label": ["Base risk", *labels, "Risk"],
                       "shap": [0.0, *steps, 0.0],
                       "start": [10.0, *ends[:-1], ends[-1]],
                       "end": [10.0, *ends[1:], ends[-1]],
                       "kind": ["base", *["feature"] * len(labels), "output"]})
    return Waterfall(df, 10.0, float(ends[-1]), "points", 3.0)


def _figures() -> list[dict]:
    figs = []
    for n, outcome in ((5, False), (7, True)):  # one legend row, then two (7 entries)
        traj, kw = _trajectory(n, outcome)
        figs.append(viz.risk_trajectory(traj, selected_time=0.0, **kw))
    figs.append(viz.shap_waterfall(_waterfall(["INR = 1.4", "Age = 47.3 years"])))
    figs.append(viz.shap_waterfall(_waterfall([
        "Platelets = 28 ×10⁹/L", "Liver stiffness (transient elastography) = 18.1 kPa",
        "Spleen volume = 223 mL (+24.6 mL since the previous scan)", "13 other features"])))
    return [json.loads(f.to_json()) for f in figs]


@pytest.fixture(scope="module")
def plotly_page(chromium_browser):
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 800})
    font = base64.b64encode(FONT.read_bytes()).decode()
    page.set_content("<style>@font-face {font-family: 'Source Sans'; src: url("
                     f"data:font/woff2;base64,{font}) format('woff2');}}</style>")
    page.add_script_tag(path=str(PLOTLY_JS))
    yield page
    page.close()


def test_patient_charts_margins_hold_their_labels_so_plotly_grows_none(plotly_page):
    drawn = plotly_page.evaluate(DRAW_JS, [_figures(), PAGE_CHART_PX])
    for d in drawn:
        assert d["drawn"] == {k: d["set"][k] for k in "lrtb"}
    # the two-row legend is given its room above the plot; the long labels theirs
    assert [d["set"]["t"] for d in drawn[:2]] == [48, 78]
    assert drawn[3]["set"]["l"] > drawn[2]["set"]["l"] + 150


def test_a_narrower_window_still_shows_every_label(plotly_page):
    # at 400 px the two-row legend needs more rows: plotly grows the margin itself
    drawn = plotly_page.evaluate(DRAW_JS, [_figures(), 400])
    assert drawn[1]["drawn"]["t"] > drawn[1]["set"]["t"]
    assert all(d["drawn"][k] >= d["set"][k] for d in drawn for k in "lrtb")
