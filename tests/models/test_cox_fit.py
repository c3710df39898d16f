"""The vectorised Efron Cox fit against lifelines' CoxPHFitter (the reference), alone and
in cross-validation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from analytics.errors import ModelError
from analytics.models import baselines, estimators
from analytics.models.cox import CoxFit, efron_derivatives, fit_efron_cox, sorted_rows
from analytics.models.crossval import cross_validate
from analytics.models.endpoint import resolve_events
from analytics.models.estimators import CoxPH, breslow
from analytics.models.landmark import build_landmark_data
from analytics.models.settings import ModelSettings
from tests.models.sim import simulate_cohort

PBC_SAMPLE = Path(__file__).parents[1] / "data" / "mayo-pbc" / "pbcseq_first20.csv"


def lifelines_fit(x: np.ndarray, t: np.ndarray, e: np.ndarray, penalizer: float = 0.0,
                  l1_ratio: float = 0.0) -> CoxPHFitter:
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])]).assign(T=t, E=e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # low-variance columns in the small sets
        return CoxPHFitter(penalizer=penalizer, l1_ratio=l1_ratio).fit(df, "T", "E")


def assert_same_fit(x, t, e, penalizer=0.0, l1_ratio=0.0) -> None:
    ours = fit_efron_cox(x, t, e, penalizer, l1_ratio)
    ref = lifelines_fit(x, t, e, penalizer, l1_ratio)
    np.testing.assert_allclose(ours.coef, ref.params_.to_numpy(), rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.variance, ref.variance_matrix_.to_numpy(), rtol=1e-6,
                               atol=1e-12)
    np.testing.assert_allclose(np.sqrt(np.diag(ours.variance)),
                               ref.standard_errors_.to_numpy(), rtol=1e-6)
    assert ours.log_likelihood == pytest.approx(ref.log_likelihood_, rel=1e-9)
    # the Breslow baseline on the centred linear predictor is lifelines' baseline
    xc = x - x.mean(axis=0)
    times, cumhaz = breslow(xc @ ours.coef, t, e.astype(bool))
    ref_h0 = ref.baseline_cumulative_hazard_.iloc[:, 0]
    np.testing.assert_allclose(cumhaz, ref_h0.loc[times].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.exp(-cumhaz), ref.baseline_survival_.iloc[:, 0]
                               .loc[times].to_numpy(), rtol=1e-6)


def simulated(n: int, p: int, seed: int, days: int | None) -> tuple[np.ndarray, ...]:
    """Exponential survival with a linear hazard; times on a grid of ``days`` (ties)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * rng.uniform(0.5, 3, p) + rng.uniform(-2, 2, p)
    lp = (x - x.mean(axis=0)) @ rng.normal(0, 0.4, p)
    event_t = rng.exponential(np.exp(-lp))
    cens_t = rng.exponential(2.0, n)
    t = np.minimum(event_t, cens_t)
    if days:
        t = np.ceil(t * days) / days
    return x, t, event_t <= cens_t


@pytest.mark.parametrize(("n", "p", "days", "penalizer", "l1_ratio"), [
    (150, 3, None, 0.0, 0.0),     # no ties, no penalty
    (400, 4, 20, 0.0, 0.0),       # many tied event and censoring times
    (600, 6, 50, 0.1, 0.0),       # ridge
    (300, 5, 10, 0.05, 0.5),      # elastic net (lifelines' smoothed |b|)
    (250, 3, 5, 0.02, 1.0),       # lasso, heavy ties
    (2000, 12, 365, 0.01, 0.0),   # day grid, as the landmark rows are fitted
])
def test_fast_fit_equals_lifelines_on_simulated_data(n, p, days, penalizer, l1_ratio):
    x, t, e = simulated(n, p, seed=n + p, days=days)
    assert_same_fit(x, t, e, penalizer, l1_ratio)


def test_fast_fit_equals_lifelines_when_every_death_is_tied():
    # three times only; every event at a time shares it with others (Efron's correction)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 2))
    t = np.repeat([1.0, 2.0, 3.0], 20)
    e = rng.uniform(size=60) < 0.5
    assert_same_fit(x, t, e)
    assert_same_fit(x, t, e, penalizer=0.3)


def test_fast_fit_of_a_hand_computed_data_set():
    # one binary covariate, no ties: times 1..4, events at 1 (x = 1) and 2 (x = 0),
    # x = 1, 0, 1, 0. With u = e^b: log PL = b - log(2u + 2) - log(u + 2), score
    # 1/(u + 1) - u/(u + 2) = 0 at u^2 = 2, so b = ln(2) / 2; information
    # u/(u + 1)^2 + 2u/(u + 2)^2
    x = np.array([[1.0], [0.0], [1.0], [0.0]])
    t = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([True, True, False, False])
    u = np.sqrt(2)
    information = u / (u + 1) ** 2 + 2 * u / (u + 2) ** 2
    h, g, ll = efron_derivatives(sorted_rows(x, t, e), np.array([np.log(2) / 2]))
    assert g[0] == pytest.approx(0.0, abs=1e-12)
    assert h[0, 0] == pytest.approx(-information, rel=1e-12)
    assert ll == pytest.approx(np.log(u) - np.log(2 * u + 2) - np.log(u + 2), rel=1e-12)
    # lifelines stops once the Newton decrement is under 1e-7 and keeps the point before
    # that last step: with four rows (information 0.45) that is 6e-4 short of ln(2) / 2
    fit = fit_efron_cox(x, t, e)
    assert fit.coef[0] == pytest.approx(np.log(2) / 2, abs=1e-3)
    assert fit.variance[0, 0] == pytest.approx(1 / information, rel=1e-3)
    assert_same_fit(x, t, e)


def test_all_censored_rows_give_a_null_ridge_fit_and_an_error_without_penalty():
    x, t, _ = simulated(80, 3, seed=2, days=10)
    censored = np.zeros(80, bool)
    fit = fit_efron_cox(x, t, censored, penalizer=0.5)
    np.testing.assert_array_equal(fit.coef, 0.0)
    ref = lifelines_fit(x, t, censored, penalizer=0.5)
    np.testing.assert_allclose(fit.coef, ref.params_.to_numpy(), atol=1e-12)
    with pytest.raises(ModelError, match=r"did not converge \(singular Hessian"):
        fit_efron_cox(x, t, censored)


def test_collinear_columns_without_penalty_raise_a_clear_error():
    x, t, e = simulated(200, 2, seed=4, days=30)
    x = np.column_stack([x, x[:, 0] * 2 + 1])
    with pytest.raises(ModelError, match=r"did not converge.*raise the penalizer or drop "
                                          r"collinear features"):
        fit_efron_cox(x, t, e)


def test_separated_data_without_penalty_raise_instead_of_diverging():
    # the covariate orders the event times perfectly: the likelihood has no maximum
    t = np.arange(1.0, 41.0)
    x = -t[:, None]
    e = np.ones(40, bool)
    with pytest.raises(ModelError, match="Cox model did not converge"):
        fit_efron_cox(x, t, e)


def test_a_constant_column_is_named():
    x, t, e = simulated(100, 2, seed=7, days=None)
    x[:, 1] = 3.0
    with pytest.raises(ModelError, match=r"columns \[1\] are constant"):
        fit_efron_cox(x, t, e, penalizer=0.1)


def pbc_design() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 20 real Mayo PBC patients' baseline visit: death against the classic markers."""
    raw = pd.read_csv(PBC_SAMPLE)
    base = raw.sort_values("day").groupby("id").first()
    X = pd.DataFrame({"log_bili": np.log(base["bili"]), "albumin": base["albumin"],
                      "age": base["age"], "edema": base["edema"]})
    y = pd.DataFrame({"duration": base["futime"] / 365.25, "event": base["status"] == 2})
    return X, y


def test_fast_fit_equals_lifelines_on_the_real_mayo_pbc_patients():
    X, y = pbc_design()
    x, t, e = X.to_numpy(float), y["duration"].to_numpy(), y["event"].to_numpy()
    for penalizer in (0.05, 0.5):
        assert_same_fit(x, t, e, penalizer)
    # every visit as a row (tied follow-up within a patient), as stacked rows are fitted
    raw = pd.read_csv(PBC_SAMPLE).dropna(subset=["bili", "albumin", "protime"])
    xs = np.column_stack([np.log(raw["bili"]), raw["albumin"], raw["protime"]])
    ts = ((raw["futime"] - raw["day"]).clip(lower=1) / 365.25).to_numpy()
    es = (raw["status"] == 2).to_numpy()
    assert_same_fit(xs, ts, es, 0.1)


def test_the_cox_estimator_gives_lifelines_coefficients_and_model_variance():
    X, y = pbc_design()
    ours = CoxPH(penalizer=0.1, robust=False, time_resolution=None).fit(X, y)
    ref = CoxPHFitter(penalizer=0.1).fit(X.assign(T=y["duration"], E=y["event"]), "T", "E")
    np.testing.assert_allclose(ours.coef_, ref.params_.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.se_, ref.standard_errors_.to_numpy(), rtol=1e-6)
    # at an event time (between them lifelines interpolates, our baseline is a step)
    at = float(ours.baseline_times_[5])
    surv = ref.predict_survival_function(X, times=[at]).to_numpy()[0]
    np.testing.assert_allclose(ours.predict_risk(X, at), 1 - surv, rtol=1e-6)


def lifelines_as_fitter(x, t, e, penalizer=0.0, l1_ratio=0.0) -> CoxFit:
    """lifelines' CoxPHFitter behind :func:`fit_efron_cox`'s signature (the old fitter)."""
    ref = lifelines_fit(x, t, e, penalizer, l1_ratio)
    return CoxFit(ref.params_.to_numpy(float), ref.variance_matrix_.to_numpy(float),
                  float(ref.log_likelihood_), 0)


def test_cross_validated_metrics_are_those_of_lifelines_fits(monkeypatch):
    cohort = simulate_cohort(90, seed=6)[0]
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"))
    cv = ModelSettings(kind="cox", folds=3, repeats=2, n_bootstrap=10, seed=1)
    fast = cross_validate(data, cv, baselines=True, imaging_comparison=False)
    calls = []
    monkeypatch.setattr(estimators, "fit_efron_cox",
                        lambda *a, **k: calls.append(1) or lifelines_as_fitter(*a, **k))
    baselines._score_metrics_cache.clear()  # the recalibration fits must run again
    slow = cross_validate(data, cv, baselines=True, imaging_comparison=False)
    assert fast["baselines"], "clinical scores were validated"
    # 6 folds x 2 causes of the model, 6 folds per clinical score recalibrated
    assert len(calls) >= 6 * (1 + len(fast["baselines"]))

    def same(a, b, where=""):
        if isinstance(b, dict):
            assert set(a) == set(b), where
            for k in b:
                same(a[k], b[k], f"{where}.{k}")
        elif isinstance(b, list | tuple):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                same(x, y, f"{where}[{i}]")
        elif isinstance(b, float):
            # calibration slopes are least-squares fits stopped at xtol 1e-8
            rel = 1e-6 if where.rsplit(".", 1)[-1] in ("slope", "intercept",
                                                       "calibration_slope") else 1e-9
            assert a == pytest.approx(b, rel=rel, abs=1e-12, nan_ok=True), where
        elif isinstance(b, pd.DataFrame):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6)
        elif hasattr(b, "to_json"):
            same(a.to_json(), b.to_json(), where)
        else:
            assert a == b, where

    same(fast["cv"], slow["cv"], "cv")
    same(fast["baselines"], slow["baselines"], "baselines")
