"""The vectorised IPCW metrics equal scikit-survival's on random data with ties and censoring."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import (
    brier_score,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import CensoringDistributionEstimator
from sksurv.util import Surv

from analytics.models import ipcw

CASES = [(40, 0), (40, 1), (300, 2), (300, 3), (1500, 4)]  # 1,500 rows: the sorted pairs


def random_rows(n: int, seed: int):
    """Times rounded to 0.1 y (many ties), risks rounded (tied risks), ~45% censored."""
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(3.0, n), 1) + 0.1
    e = rng.random(n) < 0.55
    r = np.round(rng.normal(size=n) - 0.3 * t, 1)
    return t, e, r


@pytest.mark.parametrize(("n", "seed"), CASES)
def test_censoring_survival_equals_scikit_survival(n, seed):
    t, e, _ = random_rows(n, seed)
    ref = CensoringDistributionEstimator().fit(Surv.from_arrays(e, t))
    got = ipcw.CensoringSurvival.fit(t, e)
    np.testing.assert_array_equal(got.unique_time, ref.unique_time_)
    np.testing.assert_array_equal(got.prob, ref.prob_)
    probe = np.r_[t[:20], 0.05, 1.234]
    np.testing.assert_array_equal(got.at(probe), ref.predict_proba(probe))


@pytest.mark.parametrize(("n", "seed"), CASES)
@pytest.mark.parametrize("horizon", [0.5, 2.0, 3.05])
def test_td_auc_equals_scikit_survival(n, seed, horizon):
    t, e, r = random_rows(n, seed)
    s = Surv.from_arrays(e, t)
    want = cumulative_dynamic_auc(s, s, r, [horizon])[0][0]
    assert ipcw.cumulative_dynamic_auc(t, e, r, horizon) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(("n", "seed"), CASES)
def test_brier_and_integrated_brier_equal_scikit_survival(n, seed):
    t, e, r = random_rows(n, seed)
    s = Surv.from_arrays(e, t)
    grid = np.linspace(0.5, 3.0, 6)
    surv = 1.0 / (1.0 + np.exp(r[:, None] + 0.3 * grid[None, :]))
    np.testing.assert_allclose(ipcw.brier_scores(t, e, surv, grid),
                               brier_score(s, s, surv, grid)[1], rtol=1e-12)
    assert ipcw.integrated_brier(t, e, surv, grid) == pytest.approx(
        integrated_brier_score(s, s, surv, grid), rel=1e-12)


@pytest.mark.parametrize(("n", "seed"), CASES)
@pytest.mark.parametrize("tau", [1.0, 2.5, 100.0])
def test_uno_c_equals_scikit_survival(n, seed, tau):
    t, e, r = random_rows(n, seed)
    s = Surv.from_arrays(e, t)
    want = concordance_index_ipcw(s, s, r, tau=tau)[0] if tau < t.max() else \
        concordance_index_ipcw(s, s, r)[0]
    assert ipcw.uno_concordance(t, e, r, tau) == pytest.approx(want, rel=1e-12)


def test_one_fitted_censoring_survival_serves_every_metric_of_the_rows():
    t, e, r = random_rows(300, 5)
    cens = ipcw.CensoringSurvival.fit(t, e)
    assert ipcw.cumulative_dynamic_auc(t, e, r, 2.0, cens) == \
        ipcw.cumulative_dynamic_auc(t, e, r, 2.0)
    assert ipcw.uno_concordance(t, e, r, 2.0, cens) == ipcw.uno_concordance(t, e, r, 2.0)


def test_times_outside_follow_up_raise_as_scikit_survival_does():
    t, e, r = random_rows(50, 6)
    with pytest.raises(ValueError, match="within follow-up time"):
        ipcw.cumulative_dynamic_auc(t, e, r, t.max())
    with pytest.raises(ValueError, match="NaN or infinity"):
        ipcw.cumulative_dynamic_auc(t, e, np.r_[np.nan, r[1:]], 1.0)
