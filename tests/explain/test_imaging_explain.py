"""Imaging biomarkers in a patient's explanation: value and change since the previous scan
in the waterfall, "what changed since the last scan", the sentences and the MDT report;
nothing about imaging for a patient without scans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.explain import patient_trajectory
from analytics.explain.wording import imaging_text, number_text, points_text
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import LandmarkSettings, build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.registry import RegisteredModel
from analytics.models.settings import ModelSettings
from analytics.usecases.report import PatientPage, _risk_part
from tests.models.imaging_sim import imaging_cohort, scanned_and_unscanned


@pytest.fixture(scope="module")
def setup():
    cohort = imaging_cohort()
    events = resolve_events(cohort.outcomes, "decompensation")
    data = build_landmark_data(cohort, events, LandmarkSettings())
    model = LandmarkModel(ModelSettings(kind="cox", interval_refits=0)).fit(data)
    return cohort, RegisteredModel(model, "cox-imaging")


def _last_two_scans(visits: pd.DataFrame, patient: str, t: float) -> tuple[float, float]:
    pv = visits[(visits["patient"] == patient) & (visits["time"] <= t + 1e-9)]
    spleen = pv["spleen_volume_ml"].dropna()
    return float(spleen.iloc[-1]), float(spleen.iloc[-2])


def test_a_scanned_patients_spleen_shows_its_value_and_change_since_the_previous_scan(setup):
    cohort, reg = setup
    scanned, _ = scanned_and_unscanned(cohort)
    view = patient_trajectory(reg, cohort.visits, scanned, 3.0)
    i = view.latest_index()
    t = float(view.points["time"].iloc[i])
    last, prev = _last_two_scans(cohort.visits, scanned, t)
    spleen = {c.feature: c for c in view.contributions(i)}["spleen_volume_ml"]
    assert spleen.value == pytest.approx(last)
    assert spleen.change == pytest.approx(last - prev)
    assert spleen.since == "previous scan" and spleen.imaging
    # the group adds the four scan-history columns' SHAP values
    cols = [c for c, g in reg.model.feature_groups_.items() if g == "spleen_volume_ml"]
    assert spleen.shap == pytest.approx(view.explanation.frame()[cols].iloc[i].sum(), abs=1e-12)
    sign = "+" if last > prev else "-"
    change = f"{sign}{number_text(abs(last - prev))} mL since the previous scan"
    assert spleen.text == (f"Spleen volume {number_text(last)} mL ({number_text(prev)} at "
                           f"the previous scan): {points_text(spleen.points)}")
    assert np.sign(spleen.points) == np.sign(spleen.shap)
    # the waterfall bar and the change chart's row carry value and change
    label = f"Spleen volume = {number_text(last)} mL ({change})"
    steps = view.waterfall(i, top=50, scale="log_hazard").steps
    assert label in steps["label"].tolist()
    assert float(steps.loc[steps["label"] == label, "shap"].iloc[0]) == pytest.approx(spleen.shap)
    steps = view.waterfall(i, top=50).steps  # percentage points by default
    assert float(steps.loc[steps["label"] == label, "shap"].iloc[0]) == \
        pytest.approx(spleen.points)
    ch = view.change_since_scan(i, top=50, scale="log_hazard")
    assert label in ch.changes["text"].tolist()
    assert ch.changes["change"].sum() == pytest.approx(ch.output_change, abs=1e-9)
    ch = view.change_since_scan(i, top=50)
    assert label in ch.changes["text"].tolist()
    assert ch.changes["change"].sum() == pytest.approx(100 * ch.risk_change, abs=1e-9)
    # the imaging line lists the measured biomarkers, largest first, with their points
    shown = view.imaging(i)
    assert {c.feature for c in shown} == {"spleen_volume_ml", "liver_surface_nodularity"}
    assert view.imaging_text(i) == imaging_text(
        [(c.label, c.unit, c.value, c.change, c.points) for c in shown])
    assert f"Spleen volume {number_text(last)} mL ({change}): {points_text(spleen.points)}" \
        in view.imaging_text(i)
    assert view.imaging_text(i, scale="log_hazard") == imaging_text(
        [(c.label, c.unit, c.value, c.change, c.shap) for c in shown], "log_hazard")
    assert f"Spleen volume {number_text(last)} mL ({change}): {spleen.shap:+.2f} log hazard" \
        in view.imaging_text(i, scale="log_hazard")


def test_a_patient_without_scans_gets_no_imaging_line_and_constant_imaging_terms(setup):
    cohort, reg = setup
    _, unscanned = scanned_and_unscanned(cohort)
    view = patient_trajectory(reg, cohort.visits, unscanned, 3.0)
    ok = np.flatnonzero(view.points["assessable"])
    assert len(ok) >= 2
    for i in ok:
        assert view.imaging(i) == [] and view.imaging_text(i) == ""
    # the imaging terms are the same at every visit: nothing about imaging changed, on
    # the log-hazard scale and in percentage points of the risk
    for scale in ("log_hazard", "points"):
        ch = view.change_since_scan(int(ok[-1]), top=50, scale=scale).changes
        ch = ch.set_index("feature")
        assert ch.loc["spleen_volume_ml", "change"] == 0.0
        assert ch.loc["liver_surface_nodularity", "change"] == 0.0


def test_the_report_says_the_same_about_imaging(setup):
    cohort, reg = setup
    scanned, unscanned = scanned_and_unscanned(cohort)
    texts = {}
    for patient in (scanned, unscanned):
        page = PatientPage(pseudonym=patient, title=patient, subtitle="")
        _risk_part(page, reg, cohort.visits, patient, 3.0, None, None)
        view = patient_trajectory(reg, cohort.visits, patient, 3.0)
        i = view.latest_index()
        assert page.imaging_text == view.imaging_text(i)
        assert page.risk_text.endswith(f" Why: {view.why(i, 1)[0]}.")
        assert page.risk_text.endswith(" points.")  # the report speaks in points too
        assert page.waterfall_png is not None
        texts[patient] = page.imaging_text
    assert texts[scanned].startswith("Imaging: Spleen volume ") or \
        texts[scanned].startswith("Imaging: Liver surface nodularity ")
    assert texts[scanned].endswith(" points.")
    assert texts[unscanned] == ""


def test_imported_imaging_values_are_named_as_imported_measurements_not_scans(setup):
    # the scanned patient's imaging values as a visits file would bring them: the same
    # numbers, no stored series behind them
    cohort, reg = setup
    scanned, _ = scanned_and_unscanned(cohort)
    visits = cohort.visits.copy()
    mine = visits["patient"] == scanned
    visits.loc[mine, ["series_uid", "modality", "contrast_phase"]] = None
    view = patient_trajectory(reg, visits, scanned, 3.0)
    i = view.latest_index()
    t = float(view.points["time"].iloc[i])
    last, prev = _last_two_scans(visits, scanned, t)
    assert not view.points["is_scan"].any()
    assert view.imaging_since(i) == "previous imported measurement"
    spleen = {c.feature: c for c in view.contributions(i)}["spleen_volume_ml"]
    assert spleen.imaging and spleen.since == "previous imported measurement"
    assert spleen.value == pytest.approx(last) and spleen.change == pytest.approx(last - prev)
    assert spleen.text == (f"Spleen volume {number_text(last)} mL ({number_text(prev)} at "
                           f"the previous imported measurement): "
                           f"{points_text(spleen.points)}")
    text = view.imaging_text(i)
    assert text.startswith("Imaging (imported measurements): ")
    assert "since the previous imported measurement" in text
    assert "scan" not in text and not any("scan" in s for s in view.why(i, top=50))
    # the predict JSON's sentences are the page's, word for word
    row = view.to_json()["trajectory"][i]
    assert set(row["contributions"]) <= {c.text for c in view.contributions(i)}
    assert spleen.text in row["contributions"]
    assert any("previous imported measurement" in c for c in row["contributions"])
    assert not any("scan" in c for c in row["contributions"])
    # the report writes the same imaging line
    page = PatientPage(pseudonym=scanned, title=scanned, subtitle="")
    _risk_part(page, reg, visits, scanned, 3.0, None, None)
    assert page.imaging_text == text
    # the stored scans of the same numbers still speak of scans
    stored = patient_trajectory(reg, cohort.visits, scanned, 3.0)
    assert stored.imaging_since(stored.latest_index()) == "previous scan"


def test_a_first_imported_value_says_it_is_an_imported_measurement():
    from analytics.explain.wording import PREVIOUS_IMPORTED, contribution_sentence

    assert contribution_sentence("Spleen volume", "mL", 1019.0, None, 19.0,
                                 "spleen_volume_ml", PREVIOUS_IMPORTED) == \
        "Spleen volume 1,019 mL (imported measurement): +19.0 points"
    assert contribution_sentence("Spleen volume", "mL", 1019.0, 241.0, 19.0,
                                 "spleen_volume_ml", PREVIOUS_IMPORTED) == \
        "Spleen volume 1,019 mL (778 at the previous imported measurement): +19.0 points"
    assert imaging_text([("Spleen volume", "mL", 1019.0, 241.0, 19.0)],
                        since=PREVIOUS_IMPORTED) == (
        "Imaging (imported measurements): Spleen volume 1,019 mL (+241 mL since the "
        "previous imported measurement): +19.0 points.")


def test_the_no_series_line_says_imaging_values_were_imported_with_the_latest_date():
    from analytics.usecases.mdt_facts import NO_SERIES, no_series_text

    visits = pd.DataFrame({
        "time_years": [0.0, 1.0, 2.0],
        "visit_date": pd.to_datetime(["2020-05-04", "2021-10-16", "2022-05-03"]),
        "source": "csv", "bilirubin_mg_dl": [1.0, 1.2, 1.3],
        "spleen_volume_ml": [778.0, 1019.0, np.nan]})
    assert no_series_text(visits) == ("No CT or MR images stored: imaging values were "
                                      "imported from the cohort file (latest 2021-10-16).")
    undated = visits.assign(visit_date=pd.NaT)
    assert no_series_text(undated).endswith("(latest at 1.0 y).")
    # labs only: nothing imported about imaging
    assert no_series_text(visits.drop(columns="spleen_volume_ml")) == NO_SERIES
    assert no_series_text(visits.assign(spleen_volume_ml=np.nan)) == NO_SERIES
    assert NO_SERIES == "No complete CT or MR series stored."
