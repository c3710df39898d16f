"""Training reports its progress: every fold, bootstrap replicate and clinical score, in
order, then the final fit; the clinical scores' bootstrap interval equals the resampled
rows' interval and is computed once per cohort and bootstrap setting."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.models import baselines
from analytics.models.baselines import marker_c_index_ci
from analytics.models.crossval import bootstrap_ci, cross_validate, oof_predictions
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import build_landmark_data
from analytics.models.progress import TrainingStep
from analytics.models.settings import ModelSettings
from analytics.models.validation import harrell_c
from tests.models.sim import simulate_cohort

CV = ModelSettings(kind="cox", folds=3, repeats=2, n_bootstrap=7, seed=5)


@pytest.fixture(scope="module")
def data():
    cohort = simulate_cohort(70, seed=9)[0]
    return build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"))


def test_cross_validation_reports_every_fold_and_replicate_in_order(data):
    steps: list[TrainingStep] = []
    cross_validate(data, CV, baselines=True, imaging_comparison=False,
                   progress=steps.append)
    seen = [(s.stage, s.done, s.total) for s in steps]
    n_scores = seen[-1][2]
    assert n_scores >= 2  # clinical scores from the simulated labs
    assert seen == ([("folds", i, 6) for i in range(7)]
                    + [("bootstrap", i, 7) for i in range(8)]
                    + [("baselines", i, n_scores) for i in range(n_scores + 1)])
    folds = [s.detail for s in steps if s.stage == "folds" and s.done]
    assert folds == [f"fold {f} of 3, repeat {r} of 2" for r in (1, 2) for f in (1, 2, 3)]
    assert steps[3].describe() == ("cross-validation: 3 of 6 folds done "
                                   "(fold 3 of 3, repeat 1 of 2)")
    # six stages count one sixth each: half the folds done is 1/12 of the whole
    assert steps[3].fraction == pytest.approx(1 / 12)
    fractions = [s.fraction for s in steps]
    assert fractions == sorted(fractions)


def _resampled_marker_c(fr):
    """The statistic on resampled rows (a patient drawn twice counts twice)."""
    num = den = 0
    for _, g in fr.groupby("landmark", sort=False):
        _, a, b = harrell_c(g["duration"].to_numpy(), g["code"].to_numpy(),
                            g["score"].to_numpy())
        num, den = num + a, den + b
    return {"c_index": num / den if den else float("nan")}


def test_the_score_interval_equals_the_bootstrap_of_resampled_rows_and_is_cached(
        data, monkeypatch):
    frame = oof_predictions(data, CV)[0]
    rng = np.random.default_rng(1)
    marked = frame[["patient", "landmark", "duration", "code"]].assign(
        score=-frame["duration"].to_numpy() + rng.normal(0, 1.0, len(frame)).round(1))
    expected = bootstrap_ci([marked], _resampled_marker_c, 40, CV.seed)
    baselines._marker_ci_cache.clear()
    got = marker_c_index_ci(marked, 40, CV.seed)
    assert got == expected
    assert np.isfinite(got["c_index"]).all() and got["c_index"][0] < got["c_index"][1]
    # the second call (another model, the same rows and scores) reuses the interval
    monkeypatch.setattr(baselines, "ConcordancePairs", None)
    assert marker_c_index_ci(marked.copy(), 40, CV.seed) == expected
    changed = marked.assign(score=marked["score"] * -1)
    with pytest.raises(TypeError, match="not callable"):
        marker_c_index_ci(changed, 40, CV.seed)  # other scores: computed again
