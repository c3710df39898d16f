"""Estimators against lifelines / hand-computed values; the competing-risk combination."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from analytics.errors import ModelError
from analytics.models.endpoint import EventSpec
from analytics.models.estimators import (
    RSF,
    CoxPH,
    Design,
    GBMCox,
    breslow,
    resolve_penalizer,
    step_at,
)
from analytics.models.history_spec import FeatureSpec
from analytics.models.landmark import LandmarkSettings
from analytics.models.predict import LandmarkModel
from analytics.models.settings import ModelSettings


@pytest.fixture(scope="module")
def ph_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    n = 400
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": rng.uniform(0, 2, n)})
    lp = 0.8 * X["a"] - 0.5 * X["b"] + 0.3 * X["c"]
    t = rng.exponential(1 / (0.2 * np.exp(lp)))
    cens = rng.uniform(0, 8, n)
    # durations in whole days, as dates give
    days = np.maximum(np.ceil(np.minimum(t, cens) * 365.25), 1)
    y = pd.DataFrame({"duration": days / 365.25, "event": t <= cens})
    return X, y


def test_auto_penalty_is_fifty_per_patient_with_an_event(ph_data):
    # stacked rows: patient 1 has an event in two landmark rows, patient 3 in one
    e = np.array([1, 1, 0, 0, 1, 0], bool)
    groups = np.array([1, 1, 2, 2, 3, 4])
    assert resolve_penalizer("auto", e, groups) == pytest.approx(2.0)  # 50/2, clipped to 2
    g40 = np.repeat(np.arange(40), 2)  # 40 patients, 2 rows each, all with the event
    assert resolve_penalizer("auto", np.ones(80, bool), g40) == pytest.approx(50 / 40)
    assert resolve_penalizer("auto", np.ones(80, bool), None) == pytest.approx(50 / 80)
    many = np.ones(20000, bool)
    assert resolve_penalizer("auto", many, np.arange(20000)) == pytest.approx(0.005)
    assert resolve_penalizer("auto", many[:400], np.arange(400)) == pytest.approx(0.125)
    assert resolve_penalizer(0.3, e, groups) == 0.3
    for bad in ("strong", -1.0, float("nan")):
        with pytest.raises(ModelError, match="penalizer"):
            resolve_penalizer(bad, e, groups)
    X, y = ph_data
    fitted = CoxPH().fit(X, y)
    assert fitted.penalizer_ == pytest.approx(50 / y["event"].sum())
    same = CoxPH(penalizer=fitted.penalizer_).fit(X, y)
    np.testing.assert_allclose(fitted.coef_, same.coef_)


def test_breslow_matches_hand_computation():
    # times 1, 2, 2, 3 with events 1, 1, 0, 1 and lp 0, ln 2, 0, 0
    lp = np.array([0.0, np.log(2), 0.0, 0.0])
    t = np.array([1.0, 2.0, 2.0, 3.0])
    e = np.array([True, True, False, True])
    times, h0 = breslow(lp, t, e)
    # risk sets: at 1 all (1+2+1+1=5), at 2 three (2+1+1=4), at 3 one (1)
    np.testing.assert_allclose(times, [1, 2, 3])
    np.testing.assert_allclose(h0, [1 / 5, 1 / 5 + 1 / 4, 1 / 5 + 1 / 4 + 1])
    np.testing.assert_allclose(step_at(times, h0, np.array([0.5, 1.0, 2.5, 9])),
                               [0, 0.2, 0.45, 1.45])


def test_cox_matches_lifelines(ph_data):
    X, y = ph_data
    ours = CoxPH(penalizer=0.0).fit(X, y)
    ref = CoxPHFitter().fit(X.assign(T=y["duration"], E=y["event"]), "T", "E")
    np.testing.assert_allclose(ours.coef_, ref.params_.to_numpy(), rtol=1e-6, atol=1e-8)
    # times within the day: fitted on the day grid by default (the same model as on y),
    # as given with time_resolution=None (lifelines' model of the exact times)
    jitter = np.random.default_rng(3).uniform(0, 0.999, len(y)) / 365.25
    yc = y.assign(duration=y["duration"] - jitter)
    np.testing.assert_allclose(CoxPH(penalizer=0.0).fit(X, yc).coef_, ours.coef_, rtol=1e-9)
    exact = CoxPH(penalizer=0.0, time_resolution=None).fit(X, yc)
    ref_c = CoxPHFitter().fit(X.assign(T=yc["duration"], E=yc["event"]), "T", "E")
    np.testing.assert_allclose(exact.coef_, ref_c.params_.to_numpy(), rtol=1e-6, atol=1e-8)
    # risk by 2 years equals lifelines' survival function
    surv = ref.predict_survival_function(X.head(20), times=[2.0]).to_numpy()[0]
    np.testing.assert_allclose(ours.predict_risk(X.head(20), 2.0), 1 - surv, rtol=1e-6)
    # and the truth is recovered
    np.testing.assert_allclose(ours.coef_, [0.8, -0.5, 0.3], atol=0.2)


def test_cox_penalty_shrinks_and_robust_variance_is_clustered(ph_data):
    X, y = ph_data
    free = CoxPH(penalizer=0.0).fit(X, y)
    ridge = CoxPH(penalizer=1.0).fit(X, y)
    assert np.all(np.abs(ridge.coef_) < np.abs(free.coef_))
    # duplicating every row under the same patient: clustered SE stays honest (~ same)
    X2, y2 = pd.concat([X, X], ignore_index=True), pd.concat([y, y], ignore_index=True)
    groups = np.tile(np.arange(len(X)), 2)
    clustered = CoxPH(penalizer=0.0).fit(X2, y2, groups=groups)
    naive = CoxPH(penalizer=0.0, robust=False).fit(X2, y2, groups=groups)
    assert np.all(clustered.se_ > 1.3 * naive.se_)
    np.testing.assert_allclose(clustered.se_, free.se_, rtol=0.1)


def test_cluster_sandwich_variance_matches_lifelines(ph_data):
    X, y = ph_data
    groups = np.arange(len(X)) // 3
    # untied times: the same sandwich as lifelines
    jitter = np.random.default_rng(3).uniform(0, 0.999, len(y)) / 365.25
    yc = y.assign(duration=y["duration"] - jitter)
    exact = CoxPH(penalizer=0.0, time_resolution=None).fit(X, yc, groups=groups)
    ref_c = CoxPHFitter().fit(X.assign(T=yc["duration"], E=yc["event"], G=groups), "T", "E",
                              cluster_col="G")
    np.testing.assert_allclose(exact.se_, ref_c.standard_errors_.to_numpy(), rtol=1e-6)
    # tied day times: our score residuals use Breslow risk sets, lifelines' Efron's
    ours = CoxPH(penalizer=0.0).fit(X, y, groups=groups)
    ref = CoxPHFitter().fit(X.assign(T=y["duration"], E=y["event"], G=groups), "T", "E",
                            cluster_col="G")
    np.testing.assert_allclose(ours.se_, ref.standard_errors_.to_numpy(), rtol=0.01)
    # the full matrix gives the delta-method SE of a linear predictor
    se = ours.log_hazard_se(X.head(3))
    xc = X.head(3).to_numpy() - ours.mean_
    np.testing.assert_allclose(se, np.sqrt(np.einsum("ij,jk,ik->i", xc, ours.variance_, xc)))


def test_gbm_margin_is_a_log_hazard_with_breslow_baseline(ph_data):
    X, y = ph_data
    gbm = GBMCox(n_estimators=150, validation_fraction=0).fit(X, y)
    lp = gbm.predict_log_hazard(X)
    times, h0 = breslow(lp, y["duration"].to_numpy(), y["event"].to_numpy())
    np.testing.assert_allclose(gbm.baseline_cumhaz_, h0)
    h = gbm.cumulative_hazard(X.head(5), np.array([1.5]))[:, 0]
    np.testing.assert_allclose(h, np.exp(lp[:5]) * step_at(times, h0, np.array([1.5]))[0])
    # ranks like the true linear predictor
    truth = 0.8 * X["a"] - 0.5 * X["b"] + 0.3 * X["c"]
    assert np.corrcoef(lp, truth)[0, 1] > 0.8


def test_design_imputes_with_training_medians_and_indicators():
    rows = pd.DataFrame({"x": [1.0, np.nan, 3.0, 5.0], "bili": [0.5, 1.0, 8.0, 30.0],
                         "k": [2.0, 2.0, 2.0, 2.0], "sex": ["F", "M", None, "F"]})
    d = Design.fit(rows, ["x", "bili", "k"], ["sex"])
    m = d.transform(pd.DataFrame({"x": [np.nan], "bili": [1.0], "k": [2.0], "sex": ["X"]}))
    assert "k" not in d.columns  # constant in training
    assert m.loc[0, "x"] == 3.0 and m.loc[0, "x_missing"] == 1.0
    assert "bili" in d.log_columns and m.loc[0, "bili"] == pytest.approx(0.0)
    assert m.loc[0, "sex=F"] == 0.0 and m.loc[0, "sex=M"] == 0.0  # unseen level
    assert Design.from_json(d.to_json()).transform(rows).equals(d.transform(rows))


def _y(n: int, events: int) -> pd.DataFrame:
    return pd.DataFrame({"duration": np.linspace(0.5, 3, n), "event": np.arange(n) < events})


@pytest.mark.parametrize(("X", "y", "match"), [
    pytest.param(np.zeros((4, 2)), _y(4, 2), "expected a pandas DataFrame", id="not-frame"),
    pytest.param(pd.DataFrame({"a": [1, np.nan, 2, 3]}), _y(4, 2), "non-finite values",
                 id="nan"),
    pytest.param(pd.DataFrame({"a": [1.0, 2, 3, 4]}), _y(4, 1), "at least 2 are needed",
                 id="one-event"),
    pytest.param(pd.DataFrame({"a": [1.0, 2, 3]}), _y(4, 2), "3 rows but y has 4",
                 id="length"),
    pytest.param(pd.DataFrame({"a": [1.0, 2, 3, 4]}), _y(4, 2).rename(columns={"event": "e"}),
                 "expected columns duration and event", id="columns"),
])
def test_fit_refuses_bad_input(X, y, match):
    with pytest.raises(ModelError, match=match):
        CoxPH().fit(X, y)


@pytest.mark.parametrize("max_features", ["all", 0.0, 1.5, -2, True])
def test_rsf_refuses_a_feature_share_it_cannot_draw(ph_data, max_features):
    X, y = ph_data
    with pytest.raises(ModelError, match=r"rsf max_features: expected 'sqrt', 'log2', a "
                                         r"fraction in \(0, 1\] or a count >= 1"):
        RSF(max_features=max_features, n_estimators=5).fit(X, y)


def test_predict_before_fit_is_refused():
    with pytest.raises(ModelError, match="not fitted"):
        CoxPH().predict_log_hazard(pd.DataFrame({"a": [1.0]}))


class _ConstantHazard(CoxPH):
    """A fitted stand-in with a constant hazard ``rate`` (cumulative ``rate * t``)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate
        self.feature_names_in_ = ["x"]
        self.mean_ = np.zeros(1)
        self.coef_ = np.zeros(1)
        self.baseline_times_ = np.linspace(0.001, 5, 5000)
        self.baseline_cumhaz_ = rate * self.baseline_times_


def test_cumulative_incidence_matches_the_closed_form():
    h1, h2, t = 0.3, 0.5, 2.0
    spec = FeatureSpec(numeric=["x"], categorical=[], low_is_worse={})
    design = Design(numeric=["x"], columns=["x"], medians={"x": 0.0})
    model = LandmarkModel.from_fitted(
        ModelSettings(kind="cox", horizons=(t,)), events=EventSpec(("a",), {"b": ("b",)}),
        landmark_settings=LandmarkSettings(horizons=(t,)), spec=spec, design=design,
        estimators={"interest": _ConstantHazard(h1), "b": _ConstantHazard(h2)},
        landmarks=[0.0])
    X = pd.DataFrame({"x": [0.0]})
    expected = h1 / (h1 + h2) * (1 - np.exp(-(h1 + h2) * t))
    assert model.risk(X, [t])[0, 0] == pytest.approx(expected, rel=2e-3)
    assert model.risk(X, [t], cause_specific=True)[0, 0] == pytest.approx(1 - np.exp(-h1 * t))
    alone = LandmarkModel.from_fitted(
        model.settings, events=EventSpec(("a",)), landmark_settings=model.landmark_settings_,
        spec=spec, design=design, estimators={"interest": _ConstantHazard(h1)},
        landmarks=[0.0])
    assert alone.risk(X, [t])[0, 0] == pytest.approx(1 - np.exp(-h1 * t), rel=1e-9)
