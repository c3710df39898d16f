"""The demo's default model has imaging features; a patient without scans is scored as if
imaging did not exist; the oracle knows the whole hazard.

A scaled-down demo cohort (the packaged ``sample_data/demo.toml`` at 300 patients, its
CT + SEG series left out to keep the test quick) is loaded as ``hepatrack demo`` loads
it (labs and outcomes, then the imported imaging measurements of the patients under
follow-up) and the default model is fitted on the store's cohort table.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from analytics.cohort import build_cohort
from analytics.config import load_settings
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.scoring import score
from analytics.models.settings import ModelSettings
from analytics.models.training import load_truth
from analytics.store import open_store
from analytics.store.repo import cohort_summary
from analytics.synthetic import generate_cohort
from analytics.synthetic.measurements import MEASURED_COLUMNS
from analytics.usecases.context import Context
from analytics.usecases.demo import _load, demo_config, imaging_figures


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory):
    """(manifest, what loading did, cohort table, landmark data, fitted default model)."""
    cfg = dataclasses.replace(demo_config(patients=300), imaging_patients=0)
    manifest = generate_cohort(tmp_path_factory.mktemp("cohort") / "sample", cfg)
    settings = load_settings(tmp_path_factory.mktemp("demo") / "home")
    settings.ensure_home()
    store = open_store(settings)
    try:
        out: dict = {}
        _load(Context.cli(store, settings), manifest.out_dir, cohort_summary(store), out,
              lambda _m: None)
        cohort = build_cohort(store)
    finally:
        store.dispose()
    ms = ModelSettings(interval_refits=0)
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, None),
                               ms.landmark_settings())
    return manifest, out, cohort, data, LandmarkModel(ms).fit(data)


def test_a_third_or_more_of_the_demo_patients_have_imported_imaging_measurements(small_demo):
    manifest, out, _cohort, _data, _model = small_demo
    assert out["import"]["patients"] == 300
    assert out["import_imaging"]["patients"] == manifest.n_measured_patients
    assert out["import_imaging"]["rejected"] == 0
    assert manifest.n_measured_patients >= 100
    truth = manifest.truth()
    followed = [p for p in truth["patients"] if p["imported_imaging"]]
    assert len(followed) == manifest.n_measured_patients
    # a measurement at every scan visit, every 10-19 months; scan times are drawn in years
    # and stored as dates, so each end of a gap may move by half a day
    day = 1.0 / 365.25
    gaps = np.concatenate([np.diff([v["time_years"] for v in p["visits"] if "measurements"
                                    in v]) for p in followed])
    assert gaps.min() >= 0.8 - day and gaps.max() <= 1.6 + day


def test_imaging_features_enter_the_default_demo_model(small_demo):
    _manifest, _out, _cohort, data, model = small_demo
    assert set(data.spec.imaging) == set(MEASURED_COLUMNS)
    assert {"spleen_volume_ml", "spleen_volume_ml_measured", "spleen_volume_ml_scan_change",
            "liver_surface_nodularity", "liver_surface_nodularity_measured",
            "liver_volume_ml"} <= set(model.features)
    # one value and one flag per biomarker, a change for the spleen only
    assert not [c for c in model.features if c.endswith("_years_since_scan")]
    assert [c for c in model.features if c.endswith("_scan_change")] == [
        "spleen_volume_ml_scan_change"]
    coef = model.estimators_["interest"].coefficients_
    assert float(np.abs(coef[["spleen_volume_ml", "spleen_volume_ml_scan_change"]]).sum()) > 0


def test_a_spleen_growing_from_131_to_151_ml_raises_the_default_model_risk(small_demo):
    """Splenomegaly signals portal hypertension: at fixed other values, a scan showing
    151 mL 20 mL up on the previous one scores above one showing 131 mL unchanged (the
    spleen's last value, log scale, and its change since the previous scan)."""
    _manifest, _out, _cohort, data, model = small_demo
    rows = data.rows[data.rows["spleen_volume_ml"].notna()].head(50)
    assert len(rows) == 50
    before = rows.assign(spleen_volume_ml=131.0, spleen_volume_ml_scan_change=0.0)
    after = rows.assign(spleen_volume_ml=151.0, spleen_volume_ml_scan_change=20.0)
    risk_before = model.risk(model.matrix(before), [2.0])[:, 0]
    risk_after = model.risk(model.matrix(after), [2.0])[:, 0]
    assert (risk_after > risk_before).all()


def test_a_patient_without_scans_is_scored_as_without_the_imaging_columns(small_demo):
    _manifest, _out, cohort, _data, model = small_demo
    v = cohort.visits
    scanned = set(v.loc[v["spleen_volume_ml"].notna(), "patient"])
    unscanned = sorted(set(v["patient"]) - scanned)[:5]
    assert unscanned
    imaging = [c for c in model.features if model.feature_groups_[c] in MEASURED_COLUMNS]
    for pid in unscanned:
        pv = v[v["patient"] == pid]
        at = pd.DataFrame({"patient": pid, "landmark": sorted(pv["time"])})
        with_cols = score(model, pv, at, 3.0, intervals=False)
        without = score(model, pv.drop(columns=list(MEASURED_COLUMNS)), at, 3.0,
                        intervals=False)
        assert (with_cols.matrix[imaging].to_numpy() == 0.0).all()
        np.testing.assert_array_equal(with_cols.risk, without.risk)


def test_the_oracle_knows_the_portal_pressure(small_demo):
    manifest, _out, _cohort, _data, _model = small_demo
    doc = manifest.truth()
    truth = load_truth(manifest.truth_json)
    z = np.array([p["portal_pressure_z"] for p in doc["patients"]])
    assert 0.7 < z.std() < 1.3
    # the oracle recomputes every stored true log hazard of the event of interest
    pats, times, stored = zip(*[(p["patient_id"], v["time_years"], v["true_log_hazard"])
                                for p in doc["patients"][:40] for v in p["visits"]],
                              strict=True)
    got = truth.log_hazard(np.array(pats), np.array(times), ("decompensation",))
    np.testing.assert_allclose(got, stored, atol=1e-5)
    assert json.loads(manifest.truth_json.read_text())["patients"][0]["hazards"][
        "decompensation"]["beta_portal"] == pytest.approx(np.log(1.11) * 4.5, abs=1e-4)


def test_the_imaging_figures_give_the_share_of_the_gap_to_the_oracle_that_imaging_closes():
    def part(n, w, wo, oracle):
        return {"n_patients": n, "n_events": n // 4,
                "with_imaging": {"c_index": w, "td_auc": {"1": w}},
                "without_imaging": {"c_index": wo, "td_auc": {"1": wo}},
                "difference": {"c_index": w - wo, "c_index_ci": [0.0, 0.02]},
                "references": {"oracle": {"c_index": oracle, "td_auc": {"1": oracle}}}}

    got = imaging_figures({"status": "compared", "all": part(100, 0.70, 0.68, 0.72),
                           "with_scans": part(40, 0.66, 0.62, 0.62)})
    assert got["all"]["gap_closed"] == pytest.approx(0.5)  # 0.02 of 0.04
    assert got["all"]["patients"] == 100 and got["all"]["oracle"] == 0.72
    assert got["all"]["td_auc_with"] == {"1": 0.70}
    assert got["with_scans"]["gap_closed"] is None  # no gap to close
    assert imaging_figures({"status": "nothing_to_compare", "message": "none"}) == {}
