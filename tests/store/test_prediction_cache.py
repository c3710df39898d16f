"""The predictions cache: a batch of patients replaces exactly the rows at the same model,
patient, visit time and horizon, and keeps every other row."""

from __future__ import annotations

from analytics.store import open_store
from analytics.store.models import (
    StoredPrediction,
    prediction_rows,
    replace_patients_predictions,
    replace_predictions,
)
from analytics.store.schema import ModelRecord
from tests.store.seed import seed_small_cohort


def _row(t: float, h: float, risk: float) -> StoredPrediction:
    return StoredPrediction(time_years=t, horizon_years=h, risk=risk, ci_low=None,
                            ci_high=None, reason=None, explanation={"points": {"age": risk}})


def test_a_batch_replaces_the_same_time_and_horizon_and_keeps_the_rest(settings):
    store = open_store(settings)
    seed_small_cohort(store)
    with store.session() as s:
        s.add_all([ModelRecord(model_id=m, kind="cox", event="decompensation", horizons=[1, 3],
                               content_sha256="a" * 64, training_data_sha256="b" * 64,
                               artifact_path=f"models/{m}", features=[], training_ranges={},
                               metrics={}, card={}, active=False) for m in ("m1", "m2")])
    assert replace_predictions(store, "m1", "HT-0001", [_row(0.0, 1.0, 0.1),
                                                        _row(0.0, 3.0, 0.3)]) == 2
    assert replace_predictions(store, "m2", "HT-0002", [_row(0.0, 1.0, 0.9)]) == 1
    written = replace_patients_predictions(store, "m1", {
        "HT-0001": [_row(0.0, 1.0, 0.15), _row(0.5, 1.0, 0.2), _row(0.5, 1.0, 0.25)],
        "HT-0003": [_row(1.0, 1.0, 0.4)],
        "HT-NOBODY": [_row(0.0, 1.0, 0.5)]})
    assert written == 3  # the repeated (0.5, 1.0) row once, the unknown patient not at all
    got = {(r.patient, r.model_id, r.time_years, r.horizon_years): (r.risk, r.explanation)
           for r in prediction_rows(store)}
    store.dispose()
    assert got == {
        ("HT-0001", "m1", 0.0, 1.0): (0.15, {"points": {"age": 0.15}}),  # replaced
        ("HT-0001", "m1", 0.0, 3.0): (0.3, {"points": {"age": 0.3}}),  # other horizon kept
        ("HT-0001", "m1", 0.5, 1.0): (0.25, {"points": {"age": 0.25}}),  # the last one wins
        ("HT-0002", "m2", 0.0, 1.0): (0.9, {"points": {"age": 0.9}}),  # other model kept
        ("HT-0003", "m1", 1.0, 1.0): (0.4, {"points": {"age": 0.4}}),
    }


def test_rows_with_and_without_risk_interval_reason_or_explanation_are_all_written(
        settings):
    from sqlalchemy import text

    store = open_store(settings)
    seed_small_cohort(store)
    with store.session() as s:
        s.add(ModelRecord(model_id="m1", kind="cox", event="decompensation", horizons=[1],
                          content_sha256="a" * 64, training_data_sha256="b" * 64,
                          artifact_path="models/m1", features=[], training_ranges={},
                          metrics={}, card={}, active=False))
    rows = [_row(0.0, 1.0, 0.1),
            StoredPrediction(0.5, 1.0, None, None, None, "lab missing", {"shap": {}}),
            StoredPrediction(1.0, 1.0, 0.2, 0.1, 0.3, None, None),
            _row(1.5, 1.0, 0.3)]
    assert replace_patients_predictions(store, "m1", {"HT-0001": rows}) == 4
    got = {r.time_years: (r.risk, r.ci_low, r.ci_high, r.reason, r.explanation)
           for r in prediction_rows(store)}
    with store.session() as s:
        stamped = s.execute(text("SELECT COUNT(*) FROM predictions "
                                 "WHERE created_at IS NOT NULL")).scalar_one()
    store.dispose()
    assert got == {0.0: (0.1, None, None, None, {"points": {"age": 0.1}}),
                   0.5: (None, None, None, "lab missing", {"shap": {}}),
                   1.0: (0.2, 0.1, 0.3, None, None),
                   1.5: (0.3, None, None, None, {"points": {"age": 0.3}})}
    assert stamped == 4
