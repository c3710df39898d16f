"""Clinical baselines in the validation table: which scores appear, and when."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analytics.cohort_types import CohortTable
from analytics.models import baselines, crossval, score_cache, scores
from analytics.models.crossval import clinical_baselines, oof_predictions
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import build_landmark_data
from analytics.models.settings import ModelSettings
from tests.models.sim import simulate_cohort

#: the registry before the elastography and metabolic scores were added
ORIGINAL_SCORES = ("meld", "meld_na", "fib4", "apri", "albi", "albi_grade", "mayo_pbc")
NEW_SCORES = ("fast", "agile_3plus", "agile_4", "nfs", "baveno_vii_lsm_band")
CV = ModelSettings(kind="cox", folds=3, repeats=1, n_bootstrap=0, seed=2)


def _folds(cohort: CohortTable):
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"))
    return data, oof_predictions(data, CV)


def _baselines(cohort: CohortTable) -> dict:
    data, frames = _folds(cohort)
    return clinical_baselines(data, frames, CV)


def _with_elastography(cohort: CohortTable, seed: int) -> CohortTable:
    """The cohort with stiffness, CAP, transaminases, BMI and diabetes on every visit,
    rising with the simulated severity (read back from the platelet count)."""
    rng = np.random.default_rng(seed)
    v = cohort.visits.copy()
    severity = ((190 - v["platelets_10e9_l"].fillna(190)) / 35).to_numpy()
    n = len(v)
    v["lsm_kpa"] = np.clip(np.exp(2.2 + 0.35 * severity + rng.normal(0, 0.2, n)), 2, 70)
    v["cap_db_m"] = np.clip(280 + 20 * severity + rng.normal(0, 15, n), 110, 390)
    v["ast_u_l"] = 35 * np.exp(0.3 * severity + rng.normal(0, 0.1, n))
    v["alt_u_l"] = 40 * np.exp(0.1 * severity + rng.normal(0, 0.1, n))
    patient_dm = {p: float(rng.random() < 0.4) for p in v["patient"].unique()}
    v["diabetes"] = v["patient"].map(patient_dm)
    v["bmi_kg_m2"] = 31 + rng.normal(0, 3, n)
    meta = dict(cohort.feature_meta)
    for c in ("lsm_kpa", "cap_db_m", "ast_u_l", "alt_u_l", "diabetes", "bmi_kg_m2"):
        meta[c] = {"kind": "lab", "unit": "", "categorical": False}
    return CohortTable(visits=v, outcomes=cohort.outcomes, feature_meta=meta)


@pytest.fixture(scope="module")
def labs_only():
    return simulate_cohort(80, seed=4)[0]


def test_a_cohort_without_elastography_shows_the_same_baselines_as_before(
        labs_only, monkeypatch):
    data, frames = _folds(labs_only)
    now = clinical_baselines(data, frames, CV)
    assert set(now) == {"albi", "albi_grade"}  # bilirubin and albumin only
    original = {k: scores.CLINICAL_SCORES[k] for k in ORIGINAL_SCORES}
    monkeypatch.setattr(scores, "CLINICAL_SCORES", original)
    monkeypatch.setattr(crossval, "CLINICAL_SCORES", original)
    before = clinical_baselines(data, frames, CV)
    assert json.dumps(now, sort_keys=True, default=str) == json.dumps(
        before, sort_keys=True, default=str)


def test_elastography_and_metabolic_inputs_add_their_scores_as_baselines(labs_only):
    out = _baselines(_with_elastography(labs_only, seed=4))
    assert set(NEW_SCORES) <= set(out)
    assert {"fib4", "apri", "albi"} <= set(out)  # AST and ALT now present too
    for name in NEW_SCORES:
        b = out[name]
        assert b["label"] == scores.CLINICAL_SCORES[name].label
        assert b["reference"] == scores.CLINICAL_SCORES[name].reference
        assert b["coverage"] > 0.9  # a few first visits lack albumin or platelets
        assert 0.5 < b["c_index"] <= 1.0  # every score rises with the simulated severity
    assert list(out) == [n for n in scores.CLINICAL_SCORES if n in out]  # registry order


def test_stiffness_alone_adds_only_the_baveno_band(labs_only):
    v = labs_only.visits.assign(lsm_kpa=np.linspace(4.0, 40.0, len(labs_only.visits)))
    meta = {**labs_only.feature_meta, "lsm_kpa": {"kind": "lab", "unit": "",
                                                  "categorical": False}}
    out = _baselines(CohortTable(visits=v, outcomes=labs_only.outcomes, feature_meta=meta))
    assert set(out) == {"albi", "albi_grade", "baveno_vii_lsm_band"}


def test_a_second_model_on_the_same_cohort_reuses_the_scores_recalibrations(monkeypatch):
    cohort, _ = simulate_cohort(120, seed=4)
    data, frames = _folds(cohort)
    baselines._score_metrics_cache.clear()
    first = clinical_baselines(data, frames, CV)
    calls = []
    refit = baselines._recalibrated_risk
    monkeypatch.setattr(baselines, "_recalibrated_risk",
                        lambda *a, **k: calls.append(1) or refit(*a, **k))
    again = clinical_baselines(data, frames, CV)
    assert calls == []  # nothing refitted: the scores' metrics do not depend on the model
    assert json.dumps(again, default=str) == json.dumps(first, default=str)
    baselines._score_metrics_cache.clear()
    assert json.dumps(clinical_baselines(data, frames, CV), default=str) == \
        json.dumps(first, default=str)
    assert len(calls) == len(first)  # one recalibration per score and repeat when not cached


def test_a_second_training_in_another_process_reads_the_scores_figures_from_the_home(
        tmp_path, monkeypatch):
    cohort, _ = simulate_cohort(120, seed=4)
    data, frames = _folds(cohort)
    cv = ModelSettings(kind="cox", folds=3, repeats=1, n_bootstrap=20, seed=2)
    cache = score_cache.clinical_cache_dir(tmp_path)
    baselines._score_metrics_cache.clear()
    baselines._marker_ci_cache.clear()
    first = clinical_baselines(data, frames, cv, cache_dir=cache)
    assert len(list(cache.glob("metrics-*.json"))) == len(first)  # one file per score
    assert len(list(cache.glob("ci-*.json"))) == len(first)
    # a new process: nothing in memory, the home's files are read instead of refitting
    baselines._score_metrics_cache.clear()
    baselines._marker_ci_cache.clear()
    calls = []
    monkeypatch.setattr(baselines, "_recalibrated_risk", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(baselines, "ConcordancePairs", None)
    again = clinical_baselines(data, frames, cv, cache_dir=cache)
    assert calls == []
    assert json.dumps(again, default=str) == json.dumps(first, default=str)
    some = next(iter(first.values()))
    assert np.isfinite(some["ci"]["c_index"]).all()
    assert some["calibration"]["3"]["curve"]["predicted"]  # the curve came back


def test_an_unreadable_cache_file_is_computed_again(tmp_path):
    cohort, _ = simulate_cohort(120, seed=4)
    data, frames = _folds(cohort)
    cache = score_cache.clinical_cache_dir(tmp_path)
    baselines._score_metrics_cache.clear()
    first = clinical_baselines(data, frames, CV, cache_dir=cache)
    for f in cache.glob("metrics-*.json"):
        f.write_text("{not json", encoding="utf-8")
    baselines._score_metrics_cache.clear()
    assert json.dumps(clinical_baselines(data, frames, CV, cache_dir=cache),
                      default=str) == json.dumps(first, default=str)
    assert all(json.loads(f.read_text()) for f in cache.glob("metrics-*.json"))


def test_the_model_c_index_on_a_scores_rows_is_the_pooled_c_of_landmark_metrics():
    cohort, _ = simulate_cohort(120, seed=4)
    data, frames = _folds(cohort)
    h_max = data.settings.horizon_max
    sub = frames[0].iloc[::3]
    want = crossval.landmark_metrics(sub, [1.0], h_max, with_calibration=False)["c_index"]
    assert baselines.pooled_harrell_c(sub, f"cs_risk_{h_max:g}") == want
