"""Contributions in percentage points of the risk: they add up exactly to the shown risk
(Cox, GBM and the random survival forest, with a competing cause), keep the sign of the log-hazard contribution,
match a hand computation without competing causes, and explain the change since the last
scan only by what changed; time since baseline and the visit count are one "Follow-up"
group; sentences follow the direction of the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.explain import FOLLOW_UP, patient_trajectory
from analytics.explain.points import apportion, points_explanation
from analytics.explain.wording import number_text, points_text
from analytics.models.endpoint import resolve_events
from analytics.models.estimators import step_at
from analytics.models.explanation import Explanation
from analytics.models.history_spec import GLOBAL_FEATURES
from analytics.models.landmark import LandmarkSettings, build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.registry import RegisteredModel
from analytics.models.settings import ModelSettings
from tests.models.imaging_sim import imaging_cohort, scanned_and_unscanned


@pytest.fixture(scope="module")
def cohort():
    return imaging_cohort()


def _fit(cohort, kind: str, event: str) -> RegisteredModel:
    events = resolve_events(cohort.outcomes, event)
    data = build_landmark_data(cohort, events, LandmarkSettings())
    return RegisteredModel(LandmarkModel(ModelSettings(kind=kind, interval_refits=0)).fit(data),
                           f"{kind}-points")


@pytest.fixture(scope="module")
def models(cohort):
    """Decompensation with death competing, Cox, GBM and RSF; and a Cox model of the combined
    endpoint (no competing cause: the risk is 1 - exp(-H0(h) exp(eta)))."""
    return {"cox": _fit(cohort, "cox", "decompensation"),
            "gbm": _fit(cohort, "gbm", "decompensation"),
            "rsf": _fit(cohort, "rsf", "decompensation"),
            "plain": _fit(cohort, "cox", "decompensation,death")}


def _views(cohort, reg, horizon=3.0):
    scanned, unscanned = scanned_and_unscanned(cohort)
    return [patient_trajectory(reg, cohort.visits, p, horizon) for p in (scanned, unscanned)]


@pytest.mark.parametrize("kind", ["cox", "gbm", "rsf"])
def test_points_add_up_exactly_to_the_shown_risk_and_keep_the_sign(cohort, models, kind):
    reg = models[kind]
    assert reg.model.events_.competing  # death competes: the base risk depends on the visit
    for view in _views(cohort, reg):
        ok = view.points["assessable"].to_numpy(bool)
        assert ok.sum() >= 2
        risk = view.points["risk"].to_numpy(float)
        ip = view.in_points
        assert ip.scale == "points"
        for i in np.flatnonzero(ok):
            # base risk + points == the risk shown, to float precision
            assert ip.base_values[i] + ip.values[i].sum() == pytest.approx(100 * risk[i],
                                                                           abs=1e-10)
            assert view.base_risk(i) + ip.values[i].sum() / 100 == pytest.approx(risk[i],
                                                                                abs=1e-12)
            # every group keeps the sign of its log-hazard contribution
            logv, pts = view.grouped.values[i], ip.values[i]
            assert (np.sign(pts) == np.sign(logv))[np.abs(logv) > 1e-9].all()
            # the waterfall runs from the base risk to the risk, in points
            w = view.waterfall(i, top=4)
            assert w.scale == "points" and w.steps["kind"].iloc[0] == "base"
            assert w.steps["label"].iloc[0] == "Base risk"
            assert w.base_value == pytest.approx(100 * view.base_risk(i))
            assert w.steps["end"].iloc[-1] == pytest.approx(100 * risk[i], abs=1e-10)
            # the JSON carries the same numbers (added keys; the old ones unchanged)
            row = view.to_json()["trajectory"][i]
            assert row["base_risk"] + sum(row["points"].values()) / 100 == pytest.approx(
                row["risk"], abs=1e-12)
            assert row["shap_scale"] == "log_hazard"
            assert row["base_value"] + sum(row["shap"].values()) == pytest.approx(
                row["model_output"], abs=1e-5)


def test_points_match_the_hand_computed_risk_without_competing_causes(cohort, models):
    reg = models["plain"]
    fitted = reg.model
    assert not fitted.events_.competing
    est = fitted.estimators_["interest"]
    view = _views(cohort, reg)[0]
    i = view.latest_index()
    h0 = float(step_at(est.baseline_times_, est.baseline_cumhaz_, np.array([3.0]))[0])
    eta = float(view.points["model_output"].iloc[i])  # Cox: base value 0
    assert view.points["base_value"].iloc[i] == 0.0
    risk = 1 - np.exp(-h0 * np.exp(eta))
    base = 1 - np.exp(-h0)
    assert view.points["risk"].iloc[i] == pytest.approx(risk, rel=1e-12)
    assert view.base_risk(i) == pytest.approx(base, rel=1e-12)
    # each group: its log-hazard contribution times the secant slope of the risk
    slope = (risk - base) / eta
    np.testing.assert_allclose(view.in_points.values[i], 100 * slope * view.grouped.values[i],
                               rtol=1e-9, atol=1e-12)


def test_the_residual_is_spread_in_proportion_to_the_contributions():
    # raw 0.2, -0.1, 0.05 (sum 0.15); the total is 0.1535: 0.0035 over |c| = 3.5
    out = apportion(np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]]), np.array([0.1, 0.3]),
                    np.array([0.1535, 0.0]))
    np.testing.assert_allclose(out, [[0.202, -0.099, 0.0505], [0.0, 0.0, 0.0]], atol=1e-15)


def test_risk_scale_contributions_become_points_of_the_same_risk():
    # a model-agnostic (sampling) explanation on the risk scale: base 0.10, contributions 0.05 and -0.02
    data = pd.DataFrame({"a": [1.0], "b": [2.0]})
    grouped = Explanation(np.array([[0.05, -0.02]]), np.array([0.10]), np.array([0.13]),
                          data, "risk", 2.0)
    pts = points_explanation(None, grouped, data, np.array([0.13]), 2.0)
    np.testing.assert_allclose(pts.values, [[5.0, -2.0]], atol=1e-12)
    assert pts.base_values[0] == pytest.approx(10.0) and pts.output[0] == pytest.approx(13.0)


@pytest.mark.parametrize("kind", ["cox", "gbm", "rsf"])
def test_change_since_the_scan_in_points_adds_up_and_only_changed_groups_move(cohort, models,
                                                                             kind):
    reg = models[kind]
    for view in _views(cohort, reg):
        pts = view.points
        for i in np.flatnonzero(pts["assessable"].to_numpy(bool))[1:]:
            ch = view.change_since_scan(int(i), top=50)
            assert ch.scale == "points"
            assert ch.changes["change"].sum() == pytest.approx(100 * ch.risk_change, abs=1e-9)
            assert ch.output_change == pytest.approx(100 * ch.risk_change)
            log = view.change_since_scan(int(i), top=50, scale="log_hazard").changes
            log = log.set_index("feature")["change"]
            by = ch.changes.set_index("feature")["change"]
            for f, v in log.items():
                # a group whose log-hazard contribution did not move gets no points
                if v == 0.0:
                    assert by[f] == 0.0
                elif abs(v) > 1e-9:
                    assert np.sign(by[f]) == np.sign(v)


def test_time_since_baseline_and_visits_are_one_follow_up_group(cohort, models):
    reg = models["cox"]
    view = _views(cohort, reg)[0]
    names = view.grouped.feature_names
    assert FOLLOW_UP in names
    assert not set(GLOBAL_FEATURES) & set(names)
    cols = [c for c, g in reg.model.feature_groups_.items() if g in GLOBAL_FEATURES]
    assert {"landmark_years", "landmark_years_sq", "n_visits"} <= set(cols)
    i = view.latest_index()
    fu = {c.feature: c for c in view.contributions(i)}[FOLLOW_UP]
    assert fu.label == "Follow-up"
    assert fu.shap == pytest.approx(view.explanation.frame()[cols].iloc[i].sum(), abs=1e-12)
    t = float(view.points["time"].iloc[i])
    pv = cohort.visits[(cohort.visits["patient"] == view.patient)
                       & (cohort.visits["time"] <= t + 1e-9)]
    # the follow-up in words: years since the first visit, visits so far
    years = t - float(pv["time"].min())
    assert fu.value == f"{years:.1f} years since baseline, {len(pv)} visits"
    assert fu.text == f"Follow-up ({fu.value}): {points_text(fu.points)}"
    labels = [c.label for c in view.contributions(i)]
    assert "Time since baseline" not in labels and "Number of visits" not in labels


def test_sentences_follow_the_direction_of_the_data(cohort, models):
    view = _views(cohort, models["cox"])[0]
    i = view.latest_index()
    j = view.previous_visit(i)
    t_i, t_j = (float(view.points["time"].iloc[k]) for k in (i, j))
    pv = cohort.visits[cohort.visits["patient"] == view.patient]
    checked = 0
    for c in view.contributions(i):
        if c.imaging or c.feature == FOLLOW_UP or not isinstance(c.value, float) \
                or c.change in (None, 0.0):
            continue
        now = pv[pv["time"] <= t_i + 1e-9][c.feature].dropna().iloc[-1]
        before = pv[pv["time"] <= t_j + 1e-9][c.feature].dropna().iloc[-1]
        if number_text(now) == number_text(before):
            continue  # below the shown precision: written as a signed change instead
        unit = f" {c.unit}" if c.unit else ""
        assert c.text == (f"{c.label} {number_text(now)}{unit} ({number_text(before)} at "
                          f"the previous visit): {points_text(c.points)}")
        checked += 1
    assert checked >= 2


def test_global_drivers_in_points_match_the_hand_computed_mean_absolute_contribution(
        models):
    from analytics.explain import clinical_importance

    reg = models["plain"]
    fitted = reg.model
    est = fitted.estimators_["interest"]
    drivers = clinical_importance(reg, 3.0, max_rows=40)
    assert drivers.horizon == 3.0 and drivers.n_rows == 40
    # by hand: each row's log-hazard contributions summed per clinical feature (the
    # bookkeeping columns as Follow-up), times the secant slope of its risk
    # r(eta) = 1 - exp(-H0(3) exp(eta)) from the base value 0 (Cox), in percent
    X = fitted.background_[reg.features].head(40)
    expl = fitted.explain(X, horizon=3.0)
    h0 = float(step_at(est.baseline_times_, est.baseline_cumhaz_, np.array([3.0]))[0])
    eta = np.asarray(expl.output, float)
    assert np.allclose(expl.base_values, 0.0)
    slope = ((1 - np.exp(-h0 * np.exp(eta))) - (1 - np.exp(-h0))) / eta
    by_group: dict[str, np.ndarray] = {}
    for j, col in enumerate(expl.feature_names):
        g = fitted.feature_groups_.get(col, col)
        g = FOLLOW_UP if g in GLOBAL_FEATURES else g
        by_group[g] = by_group.get(g, np.zeros(len(X))) + expl.values[:, j]
    table = drivers.table.set_index("feature")
    assert FOLLOW_UP in table.index and table.loc[FOLLOW_UP, "label"] == "Follow-up"
    for g, c in by_group.items():
        assert table.loc[g, "mean_abs_points"] == pytest.approx(
            np.mean(np.abs(100 * slope * c)), rel=1e-6, abs=1e-9), g
        assert table.loc[g, "mean_abs_shap"] == pytest.approx(np.mean(np.abs(c)), rel=1e-9)
    # one row worked through: its points add up from its base risk to its risk
    row = {g: 100 * slope[0] * c[0] for g, c in by_group.items()}
    assert sum(row.values()) == pytest.approx(100 * ((1 - np.exp(-h0 * np.exp(eta[0])))
                                                     - (1 - np.exp(-h0))), rel=1e-9)
