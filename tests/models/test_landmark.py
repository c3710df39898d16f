"""Landmark rows and history features, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.cohort_types import CohortTable
from analytics.errors import ModelError
from analytics.models.endpoint import resolve_events
from analytics.models.history import history_features
from analytics.models.history_spec import FeatureSpec, feature_spec
from analytics.models.landmark import LandmarkSettings, build_landmark_data, landmark_grid
from analytics.models.predict import LandmarkModel
from analytics.models.settings import ModelSettings
from analytics.vocabulary import describe_column
from tests.models.sim import simulate_cohort


def _cohort() -> CohortTable:
    visits = pd.DataFrame({
        "patient": ["A", "A", "A", "B", "B", "C"],
        "time": [0.0, 1.0, 2.0, 0.0, 0.5, 1.0],
        "date": pd.NaT, "series_uid": None, "modality": None, "contrast_phase": None,
        "bilirubin_mg_dl": [1.0, 2.0, 4.0, 0.8, np.nan, 1.1],
        "platelets_10e9_l": [200.0, 150.0, 180.0, np.nan, 250.0, 120.0],
        "age_years": [50.0, np.nan, np.nan, 60.0, 60.5, 70.0],
        "sex": ["F", "F", "F", "M", "M", None],
    })
    outcomes = pd.DataFrame({"patient": ["A", "B", "C"], "duration": [2.5, 4.0, 1.2],
                             "event": ["decompensation", "censored", "death"]})
    return CohortTable(visits=visits, outcomes=outcomes,
                       feature_meta={"sex": {"kind": "lab", "categorical": True}})


def _history(at: list[tuple[str, float]]) -> pd.DataFrame:
    c = _cohort()
    spec = feature_spec(c)
    return history_features(c.visits, pd.DataFrame(at, columns=["patient", "landmark"]), spec)


def test_history_features_match_hand_computation():
    h = _history([("A", 1.5), ("A", 2.0), ("A", 0.0), ("B", 0.25), ("C", 0.5)])
    a15, a2, a0, b, c = (h.iloc[i] for i in range(5))
    # A at 1.5: visits at 0 and 1 -> last 2.0, slope (2-1)/1, worst bilirubin = max
    assert a15["bilirubin_mg_dl"] == 2.0
    assert a15["bilirubin_mg_dl_slope"] == pytest.approx(1.0)
    assert a15["bilirubin_mg_dl_worst"] == 2.0
    assert a15["platelets_10e9_l_worst"] == 150.0  # low platelets are worse
    assert a15["n_visits"] == 2
    assert a15["years_since_last_visit"] == pytest.approx(0.5)
    assert a15["age_years"] == pytest.approx(51.5)  # last age + time since it was recorded
    assert a15["landmark_years_sq"] == pytest.approx(2.25)
    # A at 2.0 includes the visit at 2.0: OLS slope of (0,1),(1,2),(2,4) = 1.5 per year
    assert a2["bilirubin_mg_dl_slope"] == pytest.approx(1.5)
    assert a2["platelets_10e9_l_slope"] == pytest.approx(-10.0)
    assert a2["platelets_10e9_l_worst"] == 150.0
    assert a2["bilirubin_mg_dl_worst"] == 4.0
    # one measurement: slope 0 (documented), worst = last
    assert a0["bilirubin_mg_dl_slope"] == 0.0
    assert a0["bilirubin_mg_dl_worst"] == 1.0
    # B at 0.25: platelets never measured so far -> NaN, sex carried forward
    assert np.isnan(b["platelets_10e9_l"])
    assert b["sex"] == "M"
    # C has no visit by 0.5: nothing known
    assert c["n_visits"] == 0 and np.isnan(c["bilirubin_mg_dl"])


def test_a_rarely_measured_feature_is_left_out_and_named():
    c = _cohort()
    c.visits["spleen_volume_ml"] = [np.nan, np.nan, np.nan, 250.0, np.nan, np.nan]
    # measured in 1 of 3 patients: kept at a 1-patient floor, left out above it
    assert "spleen_volume_ml" in feature_spec(c, min_patients=1).numeric
    spec = feature_spec(c, min_patients=2)
    assert "spleen_volume_ml" not in spec.numeric
    assert spec.excluded == {"spleen_volume_ml": "measured in 1 patients (fewer than 2)"}
    assert FeatureSpec.from_json(spec.to_json()).excluded == spec.excluded
    # platelets: 3 of 3 patients, so it stays at any floor the cohort can meet
    assert "platelets_10e9_l" in feature_spec(c, min_patients=3).numeric
    with pytest.raises(ModelError, match="too rarely measured"):
        only = CohortTable(visits=c.visits[["patient", "time", "spleen_volume_ml"]],
                           outcomes=c.outcomes)
        feature_spec(only, min_patients=2)


def test_a_feature_without_enough_events_among_its_patients_is_left_out_with_its_counts():
    c = _cohort()
    # spleen: A (decompensation at 2.5, measured from 1.0) and B (censored)
    c.visits["spleen_volume_ml"] = [np.nan, 300.0, 320.0, 250.0, np.nan, np.nan]
    # liver: B (censored) and C (death, not the endpoint): no endpoint event among them
    c.visits["liver_volume_ml"] = [np.nan, np.nan, np.nan, 1500.0, np.nan, 1400.0]
    events = resolve_events(c.outcomes, "decompensation")
    spec = feature_spec(c, min_patients=2, min_events=1, events=events)
    assert "spleen_volume_ml" in spec.numeric
    assert spec.support["spleen_volume_ml"] == {"patients": 2, "events": 1}
    assert spec.support["bilirubin_mg_dl"] == {"patients": 3, "events": 1}
    assert spec.support["liver_volume_ml"] == {"patients": 2, "events": 0}
    assert spec.excluded == {"liver_volume_ml": (
        "measured in 2 patients, 0 of them with an endpoint event after the first "
        "measurement (fewer than 1)")}
    # every event counts without an endpoint: C's death follows C's measurement
    assert feature_spec(c).support["liver_volume_ml"] == {"patients": 2, "events": 1}
    assert FeatureSpec.from_json(spec.to_json()).support == spec.support


@pytest.mark.parametrize(("name", "value", "match"), [
    ("min_feature_patients", -1, "min_feature_patients: expected a number of patients"),
    ("min_feature_events", 2.5, "min_feature_events: expected a number of patients"),
    ("automatic_segmentation", "yes", "automatic_segmentation: expected true or false"),
])
def test_feature_rules_are_validated_by_field_name(name, value, match):
    with pytest.raises(ValueError, match=match):
        LandmarkSettings(**{name: value})
    with pytest.raises(ModelError, match=match):
        ModelSettings(landmark={name: value})


def test_history_ignores_every_future_value():
    c = _cohort()
    spec = feature_spec(c)
    at = pd.DataFrame({"patient": ["A", "A", "B"], "landmark": [1.0, 1.5, 0.25]})
    before = history_features(c.visits, at, spec)
    poisoned = c.visits.copy()
    future = ((poisoned["patient"] == "A") & (poisoned["time"] > 1.5)) | \
        ((poisoned["patient"] == "B") & (poisoned["time"] > 0.25))
    for col in ("bilirubin_mg_dl", "platelets_10e9_l", "age_years"):
        poisoned.loc[future, col] = 1e6
    poisoned.loc[future, "sex"] = "X"
    after = history_features(poisoned, at, spec)
    pd.testing.assert_frame_equal(before, after)


def test_model_predictions_at_s_do_not_change_when_the_future_is_poisoned():
    cohort, _ = simulate_cohort(120, seed=3)
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"))
    model = LandmarkModel(ModelSettings(kind="gbm", interval_refits=0, params={
        "n_estimators": 60, "validation_fraction": 0})).fit(data)
    s = 1.5
    pats = cohort.visits["patient"].unique()[:30]
    at = pd.DataFrame({"patient": pats, "landmark": s})
    risk_before = model.risk(model.matrix(model.history(cohort.visits, at)))
    poisoned = cohort.visits.copy()
    future = poisoned["time"] > s
    for col in ("bilirubin_mg_dl", "albumin_g_dl", "platelets_10e9_l", "inr", "age_years"):
        poisoned.loc[future, col] = -999.0
    risk_after = model.risk(model.matrix(model.history(poisoned, at)))
    np.testing.assert_array_equal(risk_before, risk_after)
    assert future.sum() > 100  # the poison really touched later visits


def test_landmark_rows_eligibility_and_administrative_censoring():
    c = _cohort()
    ev = resolve_events(c.outcomes, "decompensation")
    data = build_landmark_data(c, ev, LandmarkSettings(horizons=(1.0,), step=0.5,
                                                       landmark_max=2.0, min_at_risk=1))
    r = data.rows.set_index(["patient", "landmark"])
    # A: visits from 0, event at 2.5 -> rows at 0..2.0; event within 1 y only from s=1.5
    assert [s for p, s in r.index if p == "A"] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert r.loc[("A", 1.0), "duration"] == pytest.approx(1.0)  # censored at s + H_max
    assert r.loc[("A", 1.0), "cause"] is None
    assert r.loc[("A", 1.5), "cause"] == "interest"
    assert r.loc[("A", 1.5), "duration"] == pytest.approx(1.0)
    assert r.loc[("A", 2.0), "duration"] == pytest.approx(0.5)
    # C: first visit at 1.0, death at 1.2 -> one row at s=1.0, a competing event
    assert [s for p, s in r.index if p == "C"] == [1.0]
    assert r.loc[("C", 1.0), "cause"] == "other"  # a rare competing cause is pooled
    assert r.loc[("C", 1.0), "event"] == "death"
    assert r.loc[("C", 1.0), "duration"] == pytest.approx(0.2)
    # B censored at 4.0: rows up to landmark_max, never an event
    assert r.xs("B", level=0)["cause"].isna().all()


def test_landmark_grid_stops_when_too_few_patients_remain():
    cohort, _ = simulate_cohort(60, seed=1)
    grid = landmark_grid(cohort, LandmarkSettings(step=0.5, min_at_risk=5,
                                                  min_at_risk_fraction=0.5))
    out = cohort.outcomes.set_index("patient")["duration"]
    assert (out > grid[-1]).sum() >= 30
    assert (out > grid[-1] + 0.5).sum() < 30


def test_default_endpoint_excludes_transplant_which_competes():
    out = pd.DataFrame({"patient": [f"P{i}" for i in range(40)],
                        "duration": 1.0,
                        "event": ["death"] * 12 + ["transplant"] * 11 + ["hcc"] * 3
                        + ["decompensation"] * 4 + ["censored"] * 10})
    ev = resolve_events(out, None)
    assert ev.of_interest == ("death", "decompensation", "hcc")
    assert ev.competing == {"transplant": ("transplant",)}
    ev2 = resolve_events(out, "decompensation")
    # death has >= 10 events: its own cause; hcc is rare and pooled with transplant? no:
    # transplant has 11 events (own cause); hcc has 3 -> pooled into "other"
    assert ev2.competing == {"death": ("death",), "transplant": ("transplant",),
                             "other": ("hcc",)}
    assert ev2.cause_of("hcc") == "other" and ev2.cause_of("censored") is None
    ev3 = resolve_events(out, "death,transplant")
    assert ev3.of_interest == ("death", "transplant")


@pytest.mark.parametrize(("events", "requested", "match"), [
    pytest.param(["death", "censored"], "deth", "not an event in the cohort", id="typo"),
    pytest.param(["transplant", "censored"], None, "no event other than transplant",
                 id="only-transplant"),
])
def test_resolve_events_refuses(events, requested, match):
    out = pd.DataFrame({"patient": ["a", "b"], "duration": [1.0, 2.0], "event": events})
    with pytest.raises(ModelError, match=match):
        resolve_events(out, requested)


def test_no_event_in_any_window_is_refused():
    c = _cohort()
    c.outcomes["event"] = ["censored", "censored", "death"]
    with pytest.raises(ModelError, match="no 'death' event within"):
        build_landmark_data(c, resolve_events(c.outcomes, "death"),
                            LandmarkSettings(horizons=(0.1,), landmark_max=0.5, min_at_risk=1))


def test_column_descriptions_carry_units():
    assert describe_column("bilirubin_mg_dl_slope") == ("Bilirubin trend", "mg/dL per year")
    assert describe_column("platelets_10e9_l") == ("Platelets", "×10⁹/L")
    assert describe_column("spleen_volume_ml_worst")[1] == "mL"
    assert describe_column("albumin_g_dl_missing") == ("Albumin not measured yet", "")
