"""SHAP explanations: exactness, additivity, stability, wording, deltas and global views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.errors import ModelError
from analytics.explain import (
    beeswarm_data,
    change_since_previous,
    clinical_contributions,
    dependence_data,
    explain,
    global_importance,
    permutation_shap,
    points_text,
)
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.settings import ModelSettings
from tests.models.sim import simulate_cohort


@pytest.fixture(scope="module")
def data():
    cohort, _ = simulate_cohort(120, seed=8, transplant_rate=0.03)
    return cohort, build_landmark_data(cohort, resolve_events(cohort.outcomes,
                                                             "decompensation"))


@pytest.fixture(scope="module")
def models(data):
    _, d = data
    return {"cox": LandmarkModel(ModelSettings(kind="cox")).fit(d),
            "gbm": LandmarkModel(ModelSettings(kind="gbm", params={"n_estimators": 120},
                                               interval_refits=0)).fit(d),
            "rsf": LandmarkModel(ModelSettings(kind="rsf", params={"n_estimators": 30})).fit(d)}


def test_cox_shap_is_beta_times_centred_value(data, models):
    _, d = data
    m = models["cox"]
    X = m.matrix(d.rows.head(40))
    e = explain(m, X)
    est = m.estimators_["interest"]
    np.testing.assert_allclose(e.values, (X.to_numpy() - est.mean_) * est.coef_)
    np.testing.assert_allclose(e.base_values + e.values.sum(axis=1), m.log_hazard(X),
                               atol=1e-9)
    assert e.scale == "log_hazard"


def test_gbm_treeshap_is_exact_and_additive(data, models):
    import shap

    _, d = data
    m = models["gbm"]
    X = m.matrix(d.rows.head(60))
    e = explain(m, X)
    np.testing.assert_allclose(e.base_values + e.values.sum(axis=1), e.output, atol=1e-6)
    np.testing.assert_allclose(e.output, m.log_hazard(X), atol=1e-12)
    ref = shap.TreeExplainer(m.estimators_["interest"].booster_).shap_values(X.to_numpy())
    np.testing.assert_allclose(e.values, ref, atol=1e-5)


def test_permutation_shap_is_exact_for_a_linear_function():
    rng = np.random.default_rng(1)
    beta = np.array([0.5, -1.0, 2.0, 0.0])
    bg = rng.normal(size=(15, 4))
    x = rng.normal(size=(3, 4))
    vals, base, out = permutation_shap(lambda a: a @ beta, x, bg, n_permutations=2)
    np.testing.assert_allclose(vals, (x - bg.mean(axis=0)) * beta, atol=1e-12)
    np.testing.assert_allclose(base + vals.sum(axis=1), out, atol=1e-12)
    np.testing.assert_allclose(out, x @ beta, atol=1e-12)


def test_rsf_treeshap_is_exact_additive_and_stable(data, models):
    import shap

    _, d = data
    m = models["rsf"]
    X = m.matrix(d.rows.head(30))
    e1 = explain(m, X, horizon=2.0)
    e2 = explain(m, X, horizon=2.0)
    # the forest explains its log relative hazard exactly, whatever the horizon
    assert e1.scale == "log_hazard" and e1.horizon is None
    np.testing.assert_allclose(e1.base_values + e1.values.sum(axis=1), e1.output, atol=1e-5)
    np.testing.assert_allclose(e1.output, m.log_hazard(X), atol=1e-12)
    np.testing.assert_array_equal(e1.values, e2.values)
    ref = shap.TreeExplainer(m.estimators_["interest"].booster_).shap_values(X.to_numpy())
    np.testing.assert_allclose(e1.values, ref, atol=1e-5)


def test_the_sampling_explainer_serves_any_estimator_exactly_for_a_linear_output(data, models):
    from analytics.models.estimators import SAMPLED_BACKGROUND, SurvivalEstimator

    _, d = data
    m = models["cox"]
    est = m.estimators_["interest"]
    X = m.matrix(d.rows.head(4))
    cols = list(est.feature_names_in_)

    def log_hazard(a: np.ndarray) -> np.ndarray:
        return est.predict_log_hazard(pd.DataFrame(a, columns=cols))

    # the base-class (model-agnostic) explainer, here on a linear output: exact SHAP is
    # beta_j (x_j - background mean_j) over the same seeded background rows
    e = SurvivalEstimator.explain(est, X, horizon=2.0, output=log_hazard,
                                  background=m.background_, seed=3)
    bg = m.background_[cols].sample(n=SAMPLED_BACKGROUND, random_state=3)
    np.testing.assert_allclose(e.values, (X[cols].to_numpy() - bg.to_numpy().mean(axis=0))
                               * est.coef_, atol=1e-12)
    # by default it explains the estimator's own risk by the horizon
    r = SurvivalEstimator.explain(est, X, horizon=2.0, background=m.background_)
    np.testing.assert_allclose(r.base_values + r.values.sum(axis=1), r.output, atol=1e-12)
    np.testing.assert_allclose(r.output, 1 - np.exp(-est.cumulative_hazard(X, [2.0])[:, 0]),
                               atol=1e-12)
    with pytest.raises(ModelError, match="no background sample to explain against"):
        SurvivalEstimator.explain(est, X, horizon=2.0)
    with pytest.raises(ModelError, match="give a horizon"):
        SurvivalEstimator.explain(est, X, background=m.background_)


def test_same_input_gives_the_same_explanation(data, models):
    _, d = data
    for kind in ("cox", "gbm"):
        X = models[kind].matrix(d.rows.head(10))
        np.testing.assert_array_equal(explain(models[kind], X).values,
                                      explain(models[kind], X).values)


def test_change_since_previous_adds_up_to_the_output_change(data, models):
    _, d = data
    rows = d.rows[d.rows["patient"] == d.rows["patient"].min()]  # the first patient by name, as before
    for kind in ("cox", "gbm"):
        m = models[kind]
        e = explain(m, m.matrix(rows))
        ch = change_since_previous(e, 2, 1)
        assert ch.changes["change"].sum() == pytest.approx(e.output[2] - e.output[1], abs=1e-6)
        assert ch.output_change == pytest.approx(e.output[2] - e.output[1])
        assert abs(ch.changes["change"].iloc[0]) >= abs(ch.changes["change"].iloc[-1])


def test_clinical_wording_names_value_unit_change_and_points(data, models):
    _, d = data
    m = models["cox"]
    # the first patient by name, as before
    rows = d.rows[d.rows["patient"] == d.rows["patient"].min()].reset_index(drop=True)
    e = explain(m, m.matrix(rows))
    contribs = clinical_contributions(m, e, rows, 2, previous=1, horizon=2.0)
    bili = next(c for c in contribs if c.feature == "bilirubin_mg_dl")
    assert bili.unit == "mg/dL" and bili.value == pytest.approx(rows["bilirubin_mg_dl"][2])
    assert bili.change == pytest.approx(rows["bilirubin_mg_dl"][2] - rows["bilirubin_mg_dl"][1])
    assert bili.text.startswith(f"Bilirubin {rows['bilirubin_mg_dl'][2]:.3g} mg/dL "
                                f"({rows['bilirubin_mg_dl'][1]:.3g} at")
    assert bili.text.endswith(f" at the previous visit): {points_text(bili.points)}")
    assert np.sign(bili.points) == np.sign(bili.shap)
    # grouped contributions (last value, trend, worst) still add up to the output
    assert sum(c.shap for c in contribs) == pytest.approx(e.output[2] - e.base_values[2])
    assert abs(contribs[0].shap) >= abs(contribs[-1].shap)


def test_global_views_are_data(data, models):
    _, d = data
    m = models["gbm"]
    e = explain(m, m.matrix(d.rows))
    imp = global_importance(e)
    np.testing.assert_allclose(imp["mean_abs_shap"].iloc[0], np.abs(e.frame()).mean().max())
    assert imp["mean_abs_shap"].is_monotonic_decreasing
    sub = global_importance(e, rows=(d.rows["landmark"] == 0).to_numpy())
    assert set(sub["feature"]) == set(imp["feature"])
    bee = beeswarm_data(e, max_features=3)
    assert bee["feature"].nunique() == 3 and len(bee) == 3 * len(d.rows)
    assert bee["value_rank"].between(0, 1).all()
    dep = dependence_data(e, "bilirubin_mg_dl", color_by="albumin_g_dl")
    assert list(dep.columns) == ["value", "shap", "color"] and len(dep) == len(d.rows)
    with pytest.raises(ModelError, match="is not a model feature"):
        dependence_data(e, "spleen_volume_ml")
    assert isinstance(imp, pd.DataFrame)
