"""Metrics against hand-worked cases and reference implementations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter

from analytics.models.validation import (
    aalen_johansen,
    brier,
    calibration,
    harrell_c,
    landmark_metrics,
    lowess,
    net_benefit,
    pseudo_observations,
    td_auc,
    uno_c,
)


def test_harrell_c_four_patients_by_hand():
    # times 1, 2, 3, 4; events at 1, 3 (patient 2 censored at 2, patient 4 at 4)
    t = np.array([1.0, 2.0, 3.0, 4.0])
    cause = np.array([1, 0, 1, 0])
    risk = np.array([0.9, 0.5, 0.7, 0.6])
    # comparable pairs (i had the event first): (1,2) (1,3) (1,4) (3,4)
    # concordant: 0.9>0.5, 0.9>0.7, 0.9>0.6, 0.7>0.6 -> 4/4
    c, num, den = harrell_c(t, cause, risk)
    assert c == 1.0 and (num, den) == (8, 8)
    risk2 = np.array([0.5, 0.6, 0.7, 0.7])  # (1,2) (1,3) (1,4) discordant, (3,4) tied
    c2, num2, den2 = harrell_c(t, cause, risk2)
    assert c2 == pytest.approx(0.5 / 4) and (num2, den2) == (1, 8)


def test_competing_events_are_censored_in_discrimination():
    t = np.array([1.0, 2.0, 3.0])
    risk = np.array([0.9, 0.1, 0.5])
    # patient 2's competing event at 2 makes it censored: pairs (1,2), (1,3) only
    assert harrell_c(t, np.array([1, 2, 0]), risk)[0] == 1.0


def test_uno_c_equals_harrell_without_censoring():
    rng = np.random.default_rng(0)
    t = rng.exponential(size=80)
    risk = -t + rng.normal(0, 0.5, 80)
    cause = np.ones(80, int)
    assert uno_c(t, cause, risk, tau=t.max() + 1) == pytest.approx(harrell_c(t, cause, risk)[0])


def test_td_auc_by_hand_without_censoring():
    t = np.array([0.5, 1.5, 2.5, 3.5, 4.5])
    cause = np.ones(5, int)
    risk = np.array([0.9, 0.3, 0.8, 0.2, 0.1])
    # at h = 2: cases {0.5, 1.5}, controls {2.5, 3.5, 4.5}
    # pairs: 0.9 beats all 3; 0.3 beats 0.2 and 0.1 but not 0.8 -> 5/6
    assert td_auc(t, cause, risk, 2.0) == pytest.approx(5 / 6)


def test_brier_without_censoring_is_the_mean_squared_error():
    t = np.array([0.5, 1.5, 2.5, 3.5])
    cause = np.ones(4, int)
    risk = np.array([0.8, 0.6, 0.3, 0.1])
    alive = (t > 2.0).astype(float)
    expected = np.mean((alive - (1 - risk)) ** 2)
    assert brier(t, cause, risk, 2.0) == pytest.approx(expected)


@pytest.fixture(scope="module")
def competing_sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    n = 300
    t1, t2, c = rng.exponential(3, n), rng.exponential(5, n), rng.uniform(0, 6, n)
    t = np.round(np.minimum.reduce([t1, t2, c]), 2)  # rounding makes ties
    cause = np.where(t1 <= np.minimum(t2, c), 1, np.where(t2 <= c, 2, 0))
    return t, cause


def test_aalen_johansen_matches_lifelines(competing_sample):
    t, cause = competing_sample
    # lifelines' estimator cannot take tied times: break ties by a tiny order-keeping shift
    t = t + np.arange(len(t)) * 1e-7
    ajf = AalenJohansenFitter(calculate_variance=False, jitter_level=0).fit(t, cause, 1)
    ref = ajf.cumulative_density_.loc[:2.0].iloc[-1, 0]
    assert aalen_johansen(t, cause, 2.0) == pytest.approx(ref, rel=1e-9)


def test_pseudo_observations_match_leave_one_out(competing_sample):
    t, cause = competing_sample
    n = len(t)
    po = pseudo_observations(t, cause, 2.0)
    full = aalen_johansen(t, cause, 2.0)
    for i in (0, 7, 150, 299):
        keep = np.arange(n) != i
        loo = aalen_johansen(t[keep], cause[keep], 2.0)
        assert po[i] == pytest.approx(n * full - (n - 1) * loo, abs=1e-9)
    # without censoring the pseudo-value is the event indicator itself
    t0 = np.array([0.5, 1.0, 2.5, 3.0])
    np.testing.assert_allclose(pseudo_observations(t0, np.array([1, 2, 1, 1]), 2.0),
                               [1, 0, 0, 0], atol=1e-12)
    # single cause: 1 - Kaplan-Meier
    single = np.where(cause == 2, 0, cause)
    km = KaplanMeierFitter().fit(t, single == 1)
    assert aalen_johansen(t, single, 2.0) == pytest.approx(
        1 - float(km.survival_function_at_times(2.0).iloc[0]), rel=1e-9)


def test_lowess_reproduces_a_line():
    x = np.linspace(0, 1, 50)
    np.testing.assert_allclose(lowess(x, 2 * x + 1, np.array([0.2, 0.5])), [1.4, 2.0],
                               atol=1e-12)


def test_calibration_of_calibrated_and_overconfident_risks():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.7, 5000)
    y = (rng.random(5000) < p).astype(float)  # outcomes without censoring = pseudo-values
    good = calibration(p, y, 1.0)
    assert good.slope == pytest.approx(1.0, abs=0.1)
    assert good.ici < 0.02 and good.e90 < 0.04
    # spread the predictions around the logit mean: slope < 1 and a larger ICI
    logit = np.log(p / (1 - p))
    over = 1 / (1 + np.exp(-(2 * (logit - logit.mean()) + logit.mean())))
    bad = calibration(over, y, 1.0)
    assert bad.slope < 0.7 and bad.ici > 2 * good.ici


def test_net_benefit_by_hand_without_censoring():
    t = np.array([0.5, 1.5, 3.0, 4.0])
    cause = np.array([1, 1, 1, 0])  # events by h=2: patients 1, 2
    risk = np.array([0.6, 0.2, 0.4, 0.1])
    nb = net_benefit(t, cause, risk, 2.0, np.array([0.3])).iloc[0]
    # treated (risk >= 0.3): patients 1 and 3 -> TP 1, FP 1; NB = 1/4 - 1/4 * 0.3/0.7
    assert nb["net_benefit"] == pytest.approx(0.25 - 0.25 * 0.3 / 0.7)
    assert nb["treat_all"] == pytest.approx(0.5 - 0.5 * 0.3 / 0.7)


def test_landmark_pooling_compares_pairs_within_a_landmark_only():
    fr = pd.DataFrame({"patient": ["a", "b", "a", "b"], "landmark": [0.0, 0.0, 1.0, 1.0],
                       "duration": [1.0, 2.0, 1.0, 2.0], "code": [1, 0, 0, 1],
                       "cs_risk_2": [0.9, 0.1, 0.9, 0.1]})
    m = landmark_metrics(fr, [], 2.0, score="cs_risk_2")
    # landmark 0: a before b, a riskier -> concordant; landmark 1: b's event is after a's
    # censoring -> no comparable pair. Across landmarks nothing is compared.
    assert m["c_index"] == 1.0
