"""Risk, survival and model figures: the plotted numbers are the input numbers, colours
are Okabe-Ito, and the matplotlib twins (PDF) draw from the same prepared data."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from analytics import viz
from analytics.explain import (
    ChangeSinceScan,
    ClinicalImportance,
    IncidenceCurves,
    Trajectory,
    Waterfall,
)
from analytics.models.explanation import Explanation
from analytics.viz import mpl, prep
from analytics.viz.palette import OKABE_ITO


def _trajectory(event: str = "death,decompensation", horizon: float = 2.0) -> Trajectory:
    points = _points()
    n = len(points)
    empty = Explanation(np.zeros((n, 0)), np.zeros(n), points["model_output"].to_numpy(),
                        pd.DataFrame(index=range(n)), "log_hazard")
    return Trajectory("P1", None, event, horizon, points, empty, empty, has_interval=True)


def _points() -> pd.DataFrame:
    # four visits: scan, lab, not assessable, scan
    return pd.DataFrame({
        "time": [0.0, 0.5, 1.0, 1.5], "date": ["2020-01-01", None, "2021-01-01", None],
        "risk": [0.10, 0.12, np.nan, 0.20], "ci_low": [0.05, 0.06, np.nan, 0.12],
        "ci_high": [0.18, 0.20, np.nan, 0.30], "assessable": [True, True, False, True],
        "reason": [None, None, "missing required feature albumin_g_dl", None],
        "is_scan": [True, False, False, True], "series_uid": ["1.2", None, None, "1.3"],
        "base_value": [0.0, 0.0, np.nan, 0.0], "model_output": [-1.0, -0.8, np.nan, -0.2]})


def test_trajectory_breaks_at_unassessable_visits():
    d = prep.trajectory_data(_trajectory())
    assert [s.tolist() for s in d.segments] == [[0, 1], [3]]
    assert d.risk_pct[[0, 1, 3]].tolist() == pytest.approx([10.0, 12.0, 20.0])
    assert d.y_max == pytest.approx(30.0 * 1.15)


def test_risk_trajectory_plots_the_risks_in_percent():
    fig = viz.risk_trajectory(_trajectory(), outcome_event="decompensation", outcome_time=2.2,
                              selected_time=1.5)
    by = {}
    for tr in fig.data:
        by.setdefault(tr.name, []).append(tr)
    assert [list(t.y) for t in by["Risk"]] == [pytest.approx([10.0, 12.0]),
                                               pytest.approx([20.0])]
    band = by["95% interval"][0]
    assert list(band.y) == pytest.approx([18.0, 20.0, 6.0, 5.0])
    assert list(by["Scan"][0].x) == [0.0, 1.5] and list(by["Lab visit"][0].x) == [0.5]
    bad = by["Not assessable"][0]
    assert list(bad.x) == [1.0] and "albumin_g_dl" in bad.text[0]
    assert by["Decompensation at 2.2 y"][0].marker.color == OKABE_ITO["vermillion"]
    assert list(by["Selected visit"][0].x) == [1.5]
    assert fig.layout.yaxis.title.text == "Risk of death or decompensation within 2 y (%)"


def _steps() -> Waterfall:
    df = pd.DataFrame({"label": ["Base value", "Albumin = 3.1 g/dL", "Age = 70 years",
                                 "3 other features", "Model output"],
                       "shap": [0.0, 0.6, -0.2, 0.1, 0.0],
                       "start": [0.0, 0.0, 0.6, 0.4, 0.5], "end": [0.0, 0.6, 0.4, 0.5, 0.5],
                       "kind": ["base", "feature", "feature", "other", "output"]})
    return Waterfall(df, base_value=0.0, output=0.5, scale="log_hazard")


def test_waterfall_has_absolute_relative_total_steps():
    fig = viz.shap_waterfall(_steps())
    w = fig.data[0]
    assert list(w.measure) == ["absolute", "relative", "relative", "relative", "total"]
    assert list(w.x) == pytest.approx([0.0, 0.6, -0.2, 0.1, 0.0])
    assert list(w.text) == ["0.00", "+0.60", "-0.20", "+0.10", "0.50"]
    assert w.increasing.marker.color == OKABE_ITO["vermillion"]
    assert w.decreasing.marker.color == OKABE_ITO["blue"]


def test_waterfall_in_points_runs_from_the_base_risk_to_the_risk():
    # base risk 8.0%, +3.1 and -0.04 points, 3 others +1.0: risk 12.06%
    df = pd.DataFrame({"label": ["Base risk", "Platelets = 123 ×10⁹/L", "Sex = F",
                                 "3 other features", "Risk"],
                       "shap": [0.0, 3.1, -0.04, 1.0, 0.0],
                       "start": [8.0, 8.0, 11.1, 11.06, 12.06],
                       "end": [8.0, 11.1, 11.06, 12.06, 12.06],
                       "kind": ["base", "feature", "feature", "other", "output"]})
    fig = viz.shap_waterfall(Waterfall(df, 8.0, 12.06, "points", 3.0))
    w = fig.data[0]
    assert list(w.text) == ["8.0%", "+3.1", "-0.04", "+1.0", "12.1%"]
    assert fig.layout.xaxis.title.text == "Contribution (percentage points of the 3-year risk)"
    png = mpl.waterfall_png(Waterfall(df, 8.0, 12.06, "points", 3.0))
    assert png.startswith(b"\x89PNG")
    ch = ChangeSinceScan(pd.DataFrame({"feature": ["a"], "label": ["Albumin"],
                                       "change": [3.4]}), 1.0, "scan", 3.4, 0.034, "points")
    assert viz.change_chart(ch).layout.xaxis.title.text == \
        "Change of contribution (percentage points of the risk)"
    assert list(viz.change_chart(ch).data[0].text) == ["+3.4"]


def test_change_chart_colours_by_sign_and_names_the_reference():
    ch = ChangeSinceScan(pd.DataFrame({"feature": ["a", "b"], "label": ["Albumin", "Platelets"],
                                       "change": [0.3, -0.1]}),
                         reference_time=1.0, reference_kind="scan", output_change=0.2,
                         risk_change=0.034, scale="log_hazard")
    fig = viz.change_chart(ch)
    assert list(fig.data[0].x) == [0.3, -0.1]
    assert list(fig.data[0].marker.color) == [OKABE_ITO["vermillion"], OKABE_ITO["blue"]]
    assert fig.layout.title.text == "Since the scan at 1.0 y: risk +3.4 percentage points"
    empty = ChangeSinceScan(pd.DataFrame(columns=["feature", "label", "change"]), None, None,
                            None, None, "log_hazard")
    assert "No earlier" in viz.change_chart(empty).layout.annotations[0].text


def test_competing_incidence_starts_at_zero():
    curves = pd.DataFrame({"time": [1.0, 2.0, 1.0, 2.0], "cause": ["interest"] * 2 + ["death"] * 2,
                           "label": ["decompensation"] * 2 + ["death"] * 2,
                           "cif": [0.1, 0.2, 0.05, 0.07]})
    fig = viz.competing_incidence(IncidenceCurves(visit_time=1.2, curves=curves))
    assert [tr.name for tr in fig.data] == ["Decompensation", "Death"]
    assert list(fig.data[0].y) == pytest.approx([0.0, 10.0, 20.0])
    assert list(fig.data[1].x) == [0.0, 1.0, 2.0]
    assert fig.data[1].line.dash == "dash"
    assert fig.layout.xaxis.title.text == "Years after the visit at 1.2 y"


def test_patient_timeline_lanes():
    scans = pd.DataFrame({"time_years": [0.0, 1.0], "study_date": pd.to_datetime(
        ["2020-01-01", "2021-01-01"])})
    visits = pd.DataFrame({"time_years": [0.2, np.nan], "visit_date": [None, None]})
    fig = viz.patient_timeline(scans=scans, visits=visits, outcome_event="censored",
                               outcome_time=3.0)
    assert [t.name for t in fig.data] == ["Scan", "Lab draw", "No event, followed to 3.0 y"]
    assert list(fig.data[0].text) == ["2020-01-01", "2021-01-01"]
    assert list(fig.data[0].customdata) == ["Scan", "Scan"]  # modality not given
    assert list(fig.data[1].x) == [0.2]


def test_patient_timeline_names_each_scans_modality():
    scans = pd.DataFrame({"time_years": [0.0, 1.0, 2.0], "modality": ["CT", "US", "MR, US"],
                          "study_date": pd.to_datetime(["2020-01-01", "2021-01-01",
                                                        "2022-01-01"])})
    fig = viz.patient_timeline(scans=scans, visits=pd.DataFrame(columns=["time_years"]))
    assert list(fig.data[0].customdata) == ["CT", "Ultrasound", "MR, Ultrasound"]
    assert fig.data[0].hovertemplate.startswith("%{customdata} %{text}")


def test_incidence_by_group_draws_steps_and_numbers_at_risk():
    from analytics.usecases.overview import GroupIncidence

    curves = pd.DataFrame({"group": ["Low"] * 2 + ["High"] * 2, "time": [0.0, 1.0] * 2,
                           "cif": [0.0, 0.1, 0.0, 0.5], "lower": [0, 0.02, 0, 0.3],
                           "upper": [0, 0.3, 0, 0.7]})
    at = pd.DataFrame({"group": ["Low", "Low", "High", "High"], "time": [0.0, 1.0] * 2,
                       "n_at_risk": [10, 8, 10, 4]})
    groups = pd.DataFrame({"group": ["Low", "High"], "n": [10, 10], "events": [1, 5],
                           "competing": [0, 0], "risk_low": [0.01, 0.4],
                           "risk_high": [0.1, 0.9]})
    gi = GroupIncidence("kaplan_meier", curves, at, groups, [0.2], 0, "decompensation", 3.0)
    fig = viz.incidence_by_risk_group(gi)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["Low (n=10, 1 events)", "High (n=10, 5 events)"]
    assert list(lines[1].y) == pytest.approx([0.0, 50.0]) and lines[1].line.shape == "hv"
    assert lines[0].line.color == OKABE_ITO["bluish_green"]
    assert lines[1].line.color == OKABE_ITO["vermillion"] and lines[1].line.dash == "dot"
    texts = [t for t in fig.data if t.mode == "text"]
    assert [list(t.text) for t in texts] == [["10", "8"], ["10", "4"]]


def test_model_figures_plot_the_stored_numbers():
    cal = pd.DataFrame({"horizon": [1.0, 1.0, 2.0, 2.0], "predicted": [0.1, 0.2, 0.1, 0.3],
                        "observed": [0.12, 0.18, 0.15, 0.25]})
    fig = viz.calibration_plot(cal)
    assert fig.data[0].name == "Perfect calibration"
    assert list(fig.data[2].x) == pytest.approx([10.0, 30.0])
    assert list(fig.data[2].y) == pytest.approx([15.0, 25.0])
    td = pd.DataFrame({"landmark": [0.0, 1.0], "horizon": [1.0, 1.0], "td_auc": [0.7, 0.65],
                       "n": [30, 25], "events": [5, 4]})
    f2 = viz.td_auc_plot(td)
    assert list(f2.data[1].y) == [0.7, 0.65]
    drivers = ClinicalImportance(pd.DataFrame({"feature": ["a", "b"], "label": ["Albumin", "Age"],
                                               "mean_abs_shap": [0.4, 0.2],
                                               "mean_shap": [0.1, 0.0]}),
                                 scale="log_hazard", n_rows=200)
    f3 = viz.drivers_bar(drivers)
    assert list(f3.data[0].x) == [0.4, 0.2] and "200 training rows" in f3.layout.xaxis.title.text
    # the unit in words, and the factor on the hazard (e^0.4 = 1.4918) in the hover
    assert f3.layout.xaxis.title.text == (
        "Mean size of the effect on the log relative hazard (mean |SHAP|), 200 training rows")
    assert list(f3.data[0].customdata) == pytest.approx([1.4918247, 1.2214028])
    assert "on the log relative hazard (hazard x %{customdata:.2f})" in f3.data[0].hovertemplate
    risk_scale = ClinicalImportance(drivers.table, scale="risk", n_rows=50)
    assert viz.drivers_bar(risk_scale).layout.xaxis.title.text == (
        "Mean size of the effect on the risk (mean |SHAP|), 50 training rows")


def test_biomarker_summary_and_normal_ranges():
    bio = pd.DataFrame({"time_years": [0.0, 1.0, 1.0], "name": ["spleen_volume_ml"] * 2
                        + ["liver_hu_mean"], "value": [300.0, 350.0, 35.0],
                        "unit": ["mL", "mL", "HU"],
                        "contrast_phase": ["unenhanced"] * 3})
    visits = pd.DataFrame({"time_years": [0.0, 0.5], "albumin_g_dl": [4.0, np.nan]})
    s = prep.biomarker_summary(bio, visits).set_index("name")
    assert s.loc["spleen_volume_ml", ["latest", "previous", "change"]].tolist() == [350, 300, 50]
    assert s.loc["spleen_volume_ml", "flag"] == "above normal"
    assert s.loc["liver_hu_mean", "flag"] == "below normal"
    assert s.loc["albumin_g_dl", "latest"] == 4.0 and np.isnan(s.loc["albumin_g_dl", "previous"])
    assert s.loc["albumin_g_dl", "flag"] == ""
    assert prep.range_text(np.nan, 314.0, "mL") == "≤ 314 mL"
    assert prep.range_text(40.0, np.nan, "HU") == "≥ 40 HU"
    assert prep.range_text(np.nan, np.nan) == "—"


def test_attenuation_is_compared_within_its_contrast_phase_only():
    # liver 60 HU unenhanced at 0 y, 105 HU portal venous at 1 y, 30 HU portal venous at 2 y,
    # 50 HU unenhanced at 3 y: the table compares 50 with 60 (unenhanced, -10 HU)
    def bio(phases, values):
        return pd.DataFrame({"time_years": np.arange(len(values), dtype=float),
                             "name": ["liver_hu_mean"] * len(values), "value": values,
                             "unit": ["HU"] * len(values), "contrast_phase": phases})

    empty = pd.DataFrame({"time_years": []})
    s = prep.biomarker_summary(bio(["unenhanced", "portal_venous"], [60.0, 105.0]), empty)
    row = s.set_index("name").loc["liver_hu_mean"]
    # portal venous after unenhanced: no HU change, said in words, and no normal range
    assert row["latest"] == 105.0 and np.isnan(row["previous"]) and np.isnan(row["change"])
    assert row["compared_with"] == "no earlier scan in the same phase"
    assert row["phase"] == "portal venous" and row["flag"] == ""
    assert np.isnan(row["normal_low"])
    # a fatty-liver value (30 HU < 40 HU) after contrast is not flagged; compared with the
    # previous portal-venous scan: 30 - 105 = -75 HU
    row = prep.biomarker_summary(bio(["unenhanced", "portal_venous", "portal_venous"],
                                     [60.0, 105.0, 30.0]), empty).iloc[0]
    assert (row["previous"], row["change"], row["flag"]) == (105.0, -75.0, "")
    assert row["compared_with"] == "previous portal venous scan"
    # unenhanced: compared with the earlier unenhanced scan, flagged against >= 40 HU
    row = prep.biomarker_summary(bio(["unenhanced", "portal_venous", "portal_venous",
                                      "unenhanced"], [60.0, 105.0, 30.0, 35.0]), empty).iloc[0]
    assert (row["previous"], row["change"], row["flag"]) == (60.0, -25.0, "below normal")
    assert row["normal_low"] == 40.0
    # an unknown phase is never the same phase as another: no comparison, no flag
    row = prep.biomarker_summary(bio([None, None], [60.0, 30.0]), empty).iloc[0]
    assert np.isnan(row["change"]) and row["flag"] == "" and row["phase"] == "phase unknown"
    # a volume does not depend on the phase: compared with the previous scan as before
    vol = bio(["unenhanced", "portal_venous"], [300.0, 350.0]).assign(
        name="spleen_volume_ml", unit="mL")
    row = prep.biomarker_summary(vol, empty).iloc[0]
    assert (row["change"], row["compared_with"], row["flag"]) == (50.0, "previous scan",
                                                                 "above normal")


def test_biomarker_trajectory_draws_the_limits_of_normal():
    bio = pd.DataFrame({"time_years": [0.0, 1.0], "name": ["spleen_volume_ml"] * 2,
                        "value": [300.0, 350.0], "unit": ["mL", "mL"]})
    fig = viz.biomarker_trajectory(bio, ["spleen_volume_ml"],
                                   normal_ranges={"spleen_volume_ml": (None, 314.0)})
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert [s.y0 for s in lines] == [314.0]
    assert fig.layout.annotations[0].text == "upper limit of normal"


@pytest.mark.parametrize("render", ["trajectory", "waterfall", "calibration"])
def test_matplotlib_twins_render_pngs_of_the_requested_size(render):
    from PIL import Image

    if render == "trajectory":
        png = mpl.trajectory_png(_trajectory(event="x"), outcome_event="death",
                                 outcome_time=2.0, size_in=(4, 2), dpi=100)
        size = (400, 200)
    elif render == "waterfall":
        png = mpl.waterfall_png(_steps(), size_in=(5, 3), dpi=100)
        size = (500, 300)
    else:
        cal = pd.DataFrame({"horizon": [2.0, 2.0], "predicted": [0.1, 0.3],
                            "observed": [0.15, 0.25]})
        png = mpl.calibration_png(cal, 2.0, size_in=(2, 2), dpi=100)
        size = (200, 200)
    assert Image.open(io.BytesIO(png)).size == size


def test_mr_map_biomarkers_are_flagged_by_their_published_thresholds():
    # PDFF 4 % then 12 %: steatosis from 5 %; MRE 4.4 kPa (below 5) and 6.1 kPa
    bio = pd.DataFrame({
        "time_years": [0.0, 1.0, 0.0, 1.0],
        "name": ["liver_pdff_median_pct"] * 2 + ["liver_mre_stiffness_median_kpa"] * 2,
        "value": [4.0, 12.0, 4.4, 6.1], "unit": ["%", "%", "kPa", "kPa"],
        "contrast_phase": [None] * 4})
    names = ["liver_pdff_median_pct", "liver_mre_stiffness_median_kpa"]
    s = prep.biomarker_summary(bio, pd.DataFrame({"time_years": []}), imaging=names)
    s = s.set_index("name")
    assert s.loc["liver_pdff_median_pct", ["latest", "change", "normal_high"]].tolist() == [
        12.0, 8.0, 5.0]
    assert s.loc["liver_pdff_median_pct", "flag"] == "steatosis (PDFF >= 5 %)"
    assert s.loc["liver_mre_stiffness_median_kpa", "flag"] == (
        "suggests cirrhosis (MRE >= 5 kPa)")
    early = prep.biomarker_summary(bio[bio["time_years"] == 0.0],
                                   pd.DataFrame({"time_years": []}), imaging=names)
    flags = dict(zip(early["name"], early["flag"], strict=True))
    assert flags == {"liver_pdff_median_pct": "within normal",
                     "liver_mre_stiffness_median_kpa": ""}
    # listed by default when measured, after the core biomarkers
    assert prep.biomarker_summary(bio, pd.DataFrame({"time_years": []}))["name"].tolist() \
        == names


def test_the_pdf_waterfalls_feature_labels_stay_inside_the_figure():
    # the pack's size (6.2 x 2.6 in at 150 dpi): a 44-character label ran 30 px past the
    # figure's left edge ("en volume = 151 mL (+20.5 mL since the …")
    long = "Spleen volume = 151 mL (+20.5 mL since the previous scan)"
    df = pd.DataFrame({"label": ["Base risk", long, "Age = 74.9 years", "Risk"],
                       "shap": [0.0, -3.6, 6.3, 0.0],
                       "start": [15.2, 15.2, 11.6, 17.9], "end": [15.2, 11.6, 17.9, 17.9],
                       "kind": ["base", "feature", "feature", "output"]})
    fig = mpl.waterfall_figure(Waterfall(df, 15.2, 17.9, "points", 3.0), size_in=(6.2, 2.6))
    fig.canvas.draw()
    labels = fig.axes[0].get_yticklabels()
    shown = [t.get_text() for t in labels]
    assert shown[0] == "Base risk" and shown[2] == "Age = 74.9 years"  # short: as they are
    assert shown[1].endswith("…") and long.startswith(shown[1][:-1].rstrip())
    assert len(shown[1]) < len(long)
    renderer = fig.canvas.get_renderer()
    assert min(t.get_window_extent(renderer).x0 for t in labels) >= 0


def test_risk_histogram_draws_and_names_the_first_visit_cut_offs_not_current_thirds():
    from types import SimpleNamespace

    from analytics.usecases.overview import risk_groups
    from analytics.viz.survival import CUTS_NOTE
    from ui.cohort_view import risk_caption

    # first-visit risks of 9 patients: thirds by linear interpolation at positions 8/3 and
    # 16/3: 0.07 + 2/3 * 0.01 = 0.07667 and 0.12 + 1/3 * 0.03 = 0.13
    first = pd.Series([0.05, 0.06, 0.07, 0.08, 0.10, 0.12, 0.15, 0.20, 0.30])
    _, cuts = risk_groups(first)
    assert cuts == pytest.approx([0.0766667, 0.13], abs=1e-6)
    # the current risk drawn is higher (thirds 0.25 and 0.40 would be its own cut-offs)
    current = pd.DataFrame({"risk": [0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55]})
    fig = viz.risk_distribution(current, event="death", horizon=3.0, cuts=cuts)
    assert [s.x0 for s in fig.layout.shapes] == pytest.approx([7.66667, 13.0], abs=1e-4)
    texts = [a.text for a in fig.layout.annotations]
    assert texts == ["7.7%", "13.0%", CUTS_NOTE]
    assert CUTS_NOTE == "Dashed: risk-group cut-offs, set on first-visit risk"
    assert fig.layout.margin.t == 60
    caption = risk_caption(SimpleNamespace(cuts=cuts))
    assert "Dashed lines (7.7% and 13.0%): the risk-group cut-offs, thirds of the risk at " \
           "the first visit" in caption
    assert "not thirds of the current risk" in caption
    # without groups: no lines, no note
    plain = viz.risk_distribution(current, event="death", horizon=3.0)
    assert not plain.layout.shapes and not plain.layout.annotations
    assert risk_caption(None) == ("Current risk: at each patient's latest visit inside the "
                                  "model's domain.")


def test_waterfall_and_change_chart_leave_room_for_end_labels_and_axis_titles():
    # the latest visit of the screenshots' patient: the risk label "36.1%" (5 characters)
    # needs ceil(8 + 7.5 * 5) = 46 px right of the plot; the 20-px margin cut it to "36.1"
    df = pd.DataFrame({"label": ["Base risk", "Age = 74.9 years", "Risk"],
                       "shap": [0.0, 20.9, 0.0], "start": [15.2, 15.2, 36.1],
                       "end": [15.2, 36.1, 36.1], "kind": ["base", "feature", "output"]})
    fig = viz.shap_waterfall(Waterfall(df, 15.2, 36.1, "points", 3.0))
    assert list(fig.data[0].text) == ["15.2%", "+20.9", "36.1%"]
    assert fig.layout.margin.r == 46 and fig.layout.margin.b == 67
    assert fig.layout.xaxis.automargin and fig.layout.yaxis.automargin
    # change chart: "+17.7" and "-0.04": 5 characters, 46 px
    ch = ChangeSinceScan(pd.DataFrame({"feature": ["a", "b"], "label": ["INR", "Sex"],
                                       "change": [17.7, -0.04]}), 2.7, "scan", 17.7, 0.177,
                         "points")
    change = viz.change_chart(ch)
    assert list(change.data[0].text) == ["+17.7", "-0.04"]
    assert change.layout.margin.r == 46 and change.layout.xaxis.automargin


def test_global_drivers_show_percentage_points_of_the_risk_with_the_log_scale_on_request():
    drivers = ClinicalImportance(pd.DataFrame({
        "feature": ["a", "b", "follow_up"], "label": ["Albumin", "Age", "Follow-up"],
        "mean_abs_shap": [0.4, 0.2, 0.3], "mean_shap": [0.1, 0.0, 0.0],
        "mean_abs_points": [2.5, 1.5, 3.1]}), scale="log_hazard", n_rows=200, horizon=3.0)
    fig = viz.drivers_bar(drivers)
    # the clinic's scale by default, largest first (Follow-up leads in points)
    assert list(fig.data[0].y) == ["Follow-up", "Albumin", "Age"]
    assert list(fig.data[0].x) == [3.1, 2.5, 1.5]
    assert fig.layout.xaxis.title.text == (
        "Mean size of the contribution (percentage points of the 3-year risk), "
        "200 training rows")
    assert "percentage points" in fig.data[0].hovertemplate
    model_scale = viz.drivers_bar(drivers, scale="model")
    assert list(model_scale.data[0].x) == [0.4, 0.3, 0.2]
    assert model_scale.layout.xaxis.title.text == (
        "Mean size of the effect on the log relative hazard (mean |SHAP|), 200 training rows")


def _validated_json(fig) -> dict:
    import json

    import plotly.graph_objects as go
    import plotly.io as pio

    # plotly's property-by-property validation raises on any unknown property or value
    return json.loads(pio.to_json(go.Figure(fig.to_dict()), validate=True))


@pytest.mark.parametrize("figure", [
    lambda: viz.risk_trajectory(_trajectory(), outcome_event="decompensation",
                                outcome_time=2.2, selected_time=1.5),
    lambda: viz.risk_trajectory(_trajectory(), selected_time=1.0),
    lambda: viz.risk_trajectory(Trajectory("P1", None, "death", 2.0, _points().iloc[0:0],
                                           None, None)),
    lambda: viz.shap_waterfall(_steps()),
    lambda: viz.shap_waterfall(_steps(), title="Why", height=300),
    lambda: viz.shap_waterfall(Waterfall(_steps().steps.iloc[0:0], 0.0, 0.0, "log_hazard")),
], ids=["trajectory with outcome", "trajectory unassessable selected", "no visits",
        "waterfall", "waterfall with title", "no explanation"])
def test_patient_figures_built_from_plain_dicts_are_what_plotly_validates(figure):
    import json

    import plotly.io as pio

    fig = figure()
    assert json.loads(pio.to_json(fig, validate=False)) == _validated_json(fig)


def test_the_risk_trajectorys_outcome_line_is_a_dashed_vertical_line_at_the_outcome():
    fig = viz.risk_trajectory(_trajectory(), outcome_event="decompensation", outcome_time=2.2)
    (line,) = fig.layout.shapes
    assert (line.type, line.x0, line.x1, line.y0, line.y1, line.yref) == \
        ("line", 2.2, 2.2, 0, 1, "y domain")
    assert line.line.dash == "dash" and line.line.color == OKABE_ITO["vermillion"]
    assert fig.layout.template.to_plotly_json() == {"data": {"scatter": [{"type": "scatter"}]}}


def test_legend_rows_wrap_whole_entries_at_the_width_given():
    from analytics.viz.palette import legend_rows

    # each entry: 44 px + 5.2 px per character: "Risk" and "Scan" 64.8 px, "Lab visit" 90.8
    assert legend_rows(["Risk", "Scan"], 130) == 1
    assert legend_rows(["Risk", "Scan"], 129) == 2
    assert legend_rows(["Risk", "Scan", "Lab visit"], 130) == 2
    assert legend_rows(["Lab visit"], 50) == 1  # one entry wider than the row: one row


def test_risk_trajectory_margins_hold_the_ticks_and_the_legend_rows():
    # "34%" ticks (y up to 34.5): 56 + 7 * 3 = 77 px, leaving 820 - 77 - 20 = 723 px for
    # the legend; its entries take 44 px + 5.2 px per character
    plain = viz.risk_trajectory(_trajectory(), selected_time=1.5)
    names = [t.name for t in plain.data if t.showlegend is not False]
    # 6 entries, 57 characters: 6 * 44 + 57 * 5.2 = 560.4 px, one row: 18 + 30 px
    assert sum(map(len, names)) == 57 and len(names) == 6
    assert plain.layout.margin.to_plotly_json() == {"l": 77, "r": 20, "t": 48, "b": 67}
    # with "Decompensation at 2.2 y": 7 entries, 80 characters, 724 px: two rows
    fig = viz.risk_trajectory(_trajectory(), outcome_event="decompensation", outcome_time=2.2,
                              selected_time=1.5)
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert sum(map(len, names)) == 80 and len(names) == 7
    assert fig.layout.margin.to_plotly_json() == {"l": 77, "r": 20, "t": 78, "b": 67}
