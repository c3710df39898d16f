"""Imaging biomarkers in the landmark model: their scan history, checked by hand; an
unscanned patient's imaging terms are exactly 0; features enter by measured patients and
events; automatic-segmentation values only where the site allows them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.cohort_types import CohortTable
from analytics.config import load_settings
from analytics.models.endpoint import resolve_events
from analytics.models.history import history_features
from analytics.models.history_spec import IMAGING_STATS, FeatureSpec, feature_spec, feature_support
from analytics.models.landmark import LandmarkSettings, build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.registry import load_model
from analytics.models.scoring import score
from analytics.models.settings import ModelSettings
from analytics.models.training import _card, train_model
from analytics.store import open_store
from tests.models.imaging_sim import (
    RARE_PATIENTS,
    imaging_cohort,
    scanned_and_unscanned,
    visits_without_imaging,
)

SCAN_COLUMNS = ("spleen_volume_ml", "spleen_volume_ml_measured",
                "spleen_volume_ml_years_since_scan", "spleen_volume_ml_scan_change")


def _small() -> CohortTable:
    """A: CT at 0 (300 mL), at 1 (spleen withheld: NaN) and at 2 (360 mL); B: labs only."""
    visits = pd.DataFrame({
        "patient": ["A", "A", "A", "A", "B", "B"],
        "time": [0.0, 0.5, 1.0, 2.0, 0.0, 1.0],
        "date": pd.NaT,
        "series_uid": ["s1", None, "s2", "s3", None, None],
        "modality": ["CT", None, "CT", "CT", None, None],
        "contrast_phase": None, "automatic_segmentation": None,
        "bilirubin_mg_dl": [1.0, 1.2, 1.4, 2.0, 0.9, 1.0],
        "spleen_volume_ml": [300.0, np.nan, np.nan, 360.0, np.nan, np.nan],
    })
    outcomes = pd.DataFrame({"patient": ["A", "B"], "duration": [3.0, 4.0],
                             "event": ["decompensation", "censored"]})
    return CohortTable(visits=visits, outcomes=outcomes, feature_meta={
        "spleen_volume_ml": {"kind": "imaging", "unit": "mL", "categorical": False}})


def test_scan_history_matches_hand_computation_and_a_withheld_value_is_missing():
    c = _small()
    spec = feature_spec(c, imaging_stats=IMAGING_STATS)
    assert spec.imaging == ["spleen_volume_ml"]
    assert [col for col in spec.columns if col.startswith("spleen")] == list(SCAN_COLUMNS)
    at = pd.DataFrame([("A", 0.5), ("A", 1.5), ("A", 2.0), ("B", 1.0)],
                      columns=["patient", "landmark"])
    h = history_features(c.visits, at, spec).set_index(["patient", "landmark"])
    cols = list(SCAN_COLUMNS)
    # one scan so far: its value, measured, half a year ago, no change yet
    assert h.loc[("A", 0.5), cols].tolist() == [300.0, 1.0, 0.5, 0.0]
    # the scan at 1.0 withheld the spleen: the scan at 0 is still the last measurement
    assert h.loc[("A", 1.5), cols].tolist() == [300.0, 1.0, 1.5, 0.0]
    assert h.loc[("A", 2.0), cols].tolist() == [360.0, 1.0, 0.0, 60.0]
    b = h.loc[("B", 1.0), cols]
    assert b["spleen_volume_ml_measured"] == 0.0
    assert b.drop("spleen_volume_ml_measured").isna().all()


@pytest.fixture(scope="module")
def fitted():
    cohort = imaging_cohort()
    events = resolve_events(cohort.outcomes, "decompensation")
    data = build_landmark_data(cohort, events, LandmarkSettings(imaging_stats=IMAGING_STATS))
    model = LandmarkModel(ModelSettings(kind="cox", interval_refits=0)).fit(data)
    return cohort, data, model


def test_imaging_biomarkers_enter_with_their_counts_and_a_rare_one_is_named(fitted):
    cohort, data, model = fitted
    spec = data.spec
    assert spec.imaging == ["spleen_volume_ml", "liver_surface_nodularity"]
    for col in SCAN_COLUMNS:
        assert col in model.features
    # counts by hand: patients with an outcome and a scan; decompensations after the scan
    v = cohort.visits
    first = v[v["spleen_volume_ml"].notna()].groupby("patient")["time"].min()
    out = cohort.outcomes.set_index("patient").loc[first.index]
    events = int(((out["event"] == "decompensation") & (out["duration"] >= first)).sum())
    assert spec.support["spleen_volume_ml"] == {"patients": len(first), "events": events}
    assert feature_support(cohort, "spleen_volume_ml", ("decompensation",)) == \
        spec.support["spleen_volume_ml"]
    assert spec.excluded == {"liver_hu_mean": f"measured in {RARE_PATIENTS} patients "
                                              "(fewer than 10)"}
    assert FeatureSpec.from_json(spec.to_json()).columns == spec.columns


def test_an_unscanned_patients_imaging_columns_are_exactly_zero_and_add_nothing(fitted):
    cohort, _data, model = fitted
    _scanned, unscanned = scanned_and_unscanned(cohort)
    pv = cohort.visits[cohort.visits["patient"] == unscanned]
    at = pd.DataFrame({"patient": unscanned, "landmark": sorted(pv["time"])})
    X = model.matrix(model.history(pv, at))
    imaging = [c for c in model.features
               if model.feature_groups_[c] in ("spleen_volume_ml", "liver_surface_nodularity")]
    assert len(imaging) == 8
    assert (X[imaging].to_numpy() == 0.0).all()
    # so their terms of the linear predictor are exactly 0, whatever the coefficients
    coef = model.estimators_["interest"].coefficients_
    assert (X[imaging].to_numpy() @ coef[imaging].to_numpy() == 0.0).all()


def test_a_labs_only_patients_risk_is_unchanged_by_imaging_columns_they_have_no_values_for(
        fitted):
    cohort, _data, model = fitted
    _scanned, unscanned = scanned_and_unscanned(cohort)
    pv = cohort.visits[cohort.visits["patient"] == unscanned]
    at = pd.DataFrame({"patient": unscanned, "landmark": sorted(pv["time"])})
    with_cols = score(model, pv, at, 3.0, intervals=False)
    without = score(model, visits_without_imaging(pv), at, 3.0, intervals=False)
    assert with_cols.assessable.all()
    assert np.array_equal(with_cols.risk, without.risk)
    assert np.array_equal(with_cols.matrix.to_numpy(), without.matrix.to_numpy())


def test_a_scanned_patients_risk_follows_their_scans(fitted):
    cohort, _data, model = fitted
    scanned, _ = scanned_and_unscanned(cohort)
    # linear scale (the simulated volumes are not skewed): the shift is exact to write
    assert "spleen_volume_ml" not in model.design_.log_columns
    v = cohort.visits
    pv = v[v["patient"] == scanned]
    last_scan = pv["spleen_volume_ml"].last_valid_index()
    at = pd.DataFrame({"patient": scanned, "landmark": [float(pv.loc[last_scan, "time"])]})
    before = score(model, pv, at, 3.0, intervals=False)
    bigger = pv.copy()
    bigger.loc[last_scan, "spleen_volume_ml"] += 150.0
    after = score(model, bigger, at, 3.0, intervals=False)
    coef = model.estimators_["interest"].coefficients_
    # the change enters the last value and the change since the previous scan
    expected = 150.0 * (coef["spleen_volume_ml"] + coef["spleen_volume_ml_scan_change"])
    got = (model.log_hazard(after.matrix) - model.log_hazard(before.matrix))[0]
    assert got == pytest.approx(expected, rel=1e-9)
    assert after.risk[0] != before.risk[0]


def _automatic(cohort: CohortTable) -> CohortTable:
    """Every spleen volume flagged as measured on an automatic segmentation."""
    v = cohort.visits.copy()
    v["automatic_segmentation"] = np.where(v["spleen_volume_ml"].notna(), "spleen_volume_ml",
                                           None)
    return CohortTable(visits=v, outcomes=cohort.outcomes, feature_meta=cohort.feature_meta)


@pytest.mark.parametrize("allowed", [True, False])
def test_automatic_segmentation_values_are_used_only_when_the_site_allows(fitted, allowed):
    cohort = _automatic(fitted[0])
    events = resolve_events(cohort.outcomes, "decompensation")
    data = build_landmark_data(cohort, events,
                               LandmarkSettings(automatic_segmentation=allowed))
    spec = data.spec
    assert spec.automatic_segmentation is allowed
    assert FeatureSpec.from_json(spec.to_json()).automatic_segmentation is allowed
    if allowed:
        assert "spleen_volume_ml" in spec.imaging
        assert data.rows["spleen_volume_ml"].notna().any()
        assert spec.support["spleen_volume_ml"] == fitted[1].spec.support["spleen_volume_ml"]
    else:
        assert "spleen_volume_ml" not in spec.numeric
        assert spec.excluded["spleen_volume_ml"] == "measured in 0 patients (fewer than 10)"
        assert "liver_surface_nodularity" in spec.imaging  # not flagged: still used
    # the fitted model applies its rule when it scores
    model = LandmarkModel(ModelSettings(kind="cox", interval_refits=0)).fit(data)
    scanned, _ = scanned_and_unscanned(cohort)
    pv = cohort.visits[cohort.visits["patient"] == scanned]
    h = model.history(pv, pd.DataFrame({"patient": scanned, "landmark": [pv["time"].max()]}))
    assert ("spleen_volume_ml" in h.columns) is allowed
    # a spec that keeps the feature but refuses automatic values reads them as missing
    strict = FeatureSpec.from_json({**fitted[1].spec.to_json(),
                                    "automatic_segmentation": False})
    hs = history_features(pv, pd.DataFrame({"patient": scanned,
                                            "landmark": [pv["time"].max()]}), strict)
    assert hs["spleen_volume_ml_measured"].iloc[0] == 0.0
    assert np.isnan(hs["spleen_volume_ml"].iloc[0])
    assert hs["liver_surface_nodularity_measured"].iloc[0] == 1.0


@pytest.mark.parametrize(("toml", "env", "expected"), [
    (None, None, True),
    ("model_automatic_segmentation = false\n", None, False),
    ("model_automatic_segmentation = false\n", "true", True),
    (None, "0", False),
])
def test_the_site_setting_for_automatic_segmentation(tmp_path, monkeypatch, toml, env,
                                                     expected):
    monkeypatch.delenv("HEPATRACK_MODEL_AUTOMATIC_SEGMENTATION", raising=False)
    if toml is not None:
        (tmp_path / "config.toml").write_text(toml, encoding="utf-8")
    if env is not None:
        monkeypatch.setenv("HEPATRACK_MODEL_AUTOMATIC_SEGMENTATION", env)
    assert load_settings(tmp_path).model_automatic_segmentation is expected


def test_the_card_states_patients_and_events_per_feature_and_every_left_out_column(fitted):
    cohort, data, model = fitted
    card = _card(model, "cox-img", data, cohort, {"cv": {}}, "0" * 64)
    pred = card["predictors"]
    by_name = {f["name"]: f for f in pred["features"]}
    spleen = data.spec.support["spleen_volume_ml"]
    for col in SCAN_COLUMNS:
        assert by_name[col]["patients"] == spleen["patients"]
        assert by_name[col]["events"] == spleen["events"]
    assert pred["support"]["liver_hu_mean"] == {"patients": RARE_PATIENTS,
                                                "events": data.spec.support[
                                                    "liver_hu_mean"]["events"],
                                                "entered": False}
    assert pred["left_out"]["liver_hu_mean"] == (
        f"Liver attenuation, mean: measured in {RARE_PATIENTS} patients (fewer than 10)")
    # every history column is in the model or named as left out
    used = {model.design_.source_column(c) for c in model.features}
    assert set(data.spec.columns) <= used | set(pred["left_out"])
    assert pred["automatic_segmentation"].endswith("used")


@pytest.mark.parametrize("allowed", [True, False])
def test_training_follows_the_site_rule_and_the_stored_model_scores_the_same(
        tmp_path, monkeypatch, fitted, allowed):
    monkeypatch.delenv("HEPATRACK_MODEL_AUTOMATIC_SEGMENTATION", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f"model_automatic_segmentation = {str(allowed).lower()}\n", encoding="utf-8")
    settings = load_settings(home)
    store = open_store(settings)
    cohort = _automatic(fitted[0])
    out = train_model(store, settings, cohort, ModelSettings(
        kind="cox", event=("decompensation",), folds=2, repeats=1, n_bootstrap=0,
        interval_refits=0, landmark=LandmarkSettings(imaging_stats=IMAGING_STATS)))
    reg = load_model(store, settings, out["model_id"])
    assert reg.model.spec_.automatic_segmentation is allowed
    assert ("spleen_volume_ml" in out["features"]) is allowed
    assert ("spleen_volume_ml" in out["features_left_out"]) is not allowed
    assert "liver_surface_nodularity_scan_change" in out["features"]
    assert out["feature_support"]["liver_surface_nodularity"]["patients"] == \
        fitted[1].spec.support["liver_surface_nodularity"]["patients"]
    assert reg.card["predictors"]["automatic_segmentation"].endswith(
        "used" if allowed else "left out (site setting model_automatic_segmentation)")
    scanned, unscanned = scanned_and_unscanned(cohort)
    pv = cohort.visits[cohort.visits["patient"] == unscanned]
    at = pd.DataFrame({"patient": unscanned, "landmark": sorted(pv["time"])})
    loaded = score(reg.model, pv, at, 3.0, intervals=False)
    assert loaded.assessable.all()
    np.testing.assert_array_equal(
        loaded.risk, score(reg.model, visits_without_imaging(pv), at, 3.0,
                           intervals=False).risk)
    pv = cohort.visits[cohort.visits["patient"] == scanned]
    h = score(reg.model, pv, pd.DataFrame({"patient": scanned, "landmark": [pv["time"].max()]}),
              3.0, intervals=False).history
    assert h["liver_surface_nodularity_measured"].iloc[0] == 1.0
    if allowed:
        assert h["spleen_volume_ml_measured"].iloc[0] == 1.0
    store.dispose()


def test_by_default_an_imaging_biomarker_costs_its_value_and_measured_flag_and_the_spleen_its_change():
    c = _small()
    visits = c.visits.assign(liver_surface_nodularity=[0.6, np.nan, 0.6, 0.7, np.nan, np.nan])
    meta = {**c.feature_meta,
            "liver_surface_nodularity": {"kind": "imaging", "unit": "mm", "categorical": False}}
    c = CohortTable(visits=visits, outcomes=c.outcomes, feature_meta=meta)
    spec = feature_spec(c)
    assert [col for col in spec.columns if col.startswith(("spleen", "liver"))] == [
        "spleen_volume_ml", "spleen_volume_ml_measured", "spleen_volume_ml_scan_change",
        "liver_surface_nodularity", "liver_surface_nodularity_measured"]
    assert spec.neutral_columns == ["spleen_volume_ml", "spleen_volume_ml_scan_change",
                                    "liver_surface_nodularity"]
    at = pd.DataFrame([("A", 2.0), ("B", 1.0)], columns=["patient", "landmark"])
    h = history_features(c.visits, at, spec).set_index(["patient", "landmark"])
    # the change since the previous scan is still there for the explanations, outside
    # the model columns: 0.7 - 0.6 mm
    assert h.loc[("A", 2.0), "liver_surface_nodularity_scan_change"] == pytest.approx(0.1)
    assert h.loc[("A", 2.0), "spleen_volume_ml_scan_change"] == 60.0
    assert np.isnan(h.loc[("B", 1.0), "liver_surface_nodularity_scan_change"])
    # a spec stored before the setting existed keeps every scan-history column
    old = {k: v for k, v in spec.to_json().items() if k not in ("imaging_stats", "scan_change")}
    assert [col for col in FeatureSpec.from_json(old).columns if col.startswith("spleen")] \
        == list(SCAN_COLUMNS)
    assert FeatureSpec.from_json(spec.to_json()).columns == spec.columns


def test_an_unknown_scan_history_statistic_is_refused_by_name():
    with pytest.raises(ValueError, match=r"imaging_stats: .*'since_scan'"):
        LandmarkSettings(imaging_stats=("measured", "since_scan"))
