"""Per-patient trajectory: its table equals its JSON; grouped SHAP, waterfall and change
since the last scan add up exactly (on the log-hazard scale and in percentage points of
the risk); cumulative incidence of every cause sums with event-free survival to one and
equals the model's risk for the endpoint; the sentences come from the one writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.errors import ModelError
from analytics.explain import feature_groups, incidence_curves, patient_trajectory
from tests import dashboard_data


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from analytics.cohort import build_cohort
    from analytics.models.registry import load_model

    t = dashboard_data.template(tmp_path_factory)
    dest = tmp_path_factory.mktemp("prisk") / "home"
    with dashboard_data.open_copy(t, dest) as (settings, store):
        yield t, load_model(store, settings), build_cohort(store)


@pytest.fixture(scope="module")
def competing_model(loaded):
    """Decompensation as the endpoint, death a competing cause (fitted in memory)."""
    from analytics.models.endpoint import resolve_events
    from analytics.models.landmark import LandmarkSettings, build_landmark_data
    from analytics.models.predict import LandmarkModel
    from analytics.models.registry import RegisteredModel
    from analytics.models.settings import ModelSettings

    _t, _m, cohort = loaded
    events = resolve_events(cohort.outcomes, "decompensation")
    assert events.competing, "the synthetic cohort should have deaths"
    data = build_landmark_data(cohort, events, LandmarkSettings(horizons=(1.0, 3.0)))
    return RegisteredModel(LandmarkModel(ModelSettings(kind="cox", horizons=(1.0, 3.0))).fit(data),
                           "cox-in-memory")


def test_trajectory_table_equals_its_json(loaded):
    t, model, cohort = loaded
    p = t.imaging[0]
    view = patient_trajectory(model, cohort.visits, p, 2.0)
    traj = patient_trajectory(model, cohort.visits, p, horizon=2.0).to_json()["trajectory"]
    pts = view.points
    assert pts["time"].tolist() == pytest.approx([r["time"] for r in traj])
    for (_, row), r in zip(pts.iterrows(), traj, strict=True):
        if r["risk"] is None:
            assert not row["assessable"] and row["reason"] == r["reason"]
        else:
            assert row["risk"] == pytest.approx(r["risk"], rel=1e-12)
            assert [row["ci_low"], row["ci_high"]] == pytest.approx(r["ci"])
    # the patient's two CT studies are marked as scans, with their stored series
    scans = pts[pts["is_scan"]]
    assert len(scans) == 2 and scans["series_uid"].notna().all()
    assert set(scans["series_uid"]) <= set(cohort.visits["series_uid"].dropna())


def test_grouped_contributions_add_up_to_the_model_output(loaded):
    t, model, cohort = loaded
    view = patient_trajectory(model, cohort.visits, t.imaging[1], 3.0)
    groups = feature_groups(model)
    assert groups["bilirubin_mg_dl_slope"] == "bilirubin_mg_dl"
    assert groups["landmark_years_sq"] == "landmark_years"
    for i in range(len(view.points)):
        c = view.contribution_table(i)
        p = view.points.iloc[i]
        if not p["assessable"]:
            assert c.empty
            continue
        assert p["base_value"] + c["shap"].sum() == pytest.approx(p["model_output"], abs=1e-9)
        assert c["shap"].abs().is_monotonic_decreasing
        assert c["feature"].is_unique


def test_contribution_values_are_the_patients_history(loaded):
    t, model, cohort = loaded
    p = t.imaging[0]
    view = patient_trajectory(model, cohort.visits, p, 3.0)
    i = view.latest_index()
    c = view.contribution_table(i).set_index("feature")
    pv = cohort.visits[(cohort.visits["patient"] == p)
                       & (cohort.visits["time"] <= view.points["time"].iloc[i] + 1e-9)]
    last_albumin = pv["albumin_g_dl"].dropna().iloc[-1]
    assert c.loc["albumin_g_dl", "value"] == pytest.approx(last_albumin)
    assert c.loc["albumin_g_dl", "label"] == "Albumin" and c.loc["albumin_g_dl", "unit"] == "g/dL"


def test_waterfall_runs_from_base_to_output(loaded):
    t, model, cohort = loaded
    view = patient_trajectory(model, cohort.visits, t.imaging[0], 3.0)
    i = view.latest_index()
    waterfall = view.waterfall(i, top=4, scale="log_hazard")
    w = waterfall.steps
    assert waterfall.output == pytest.approx(view.points["model_output"].iloc[i])
    assert w["kind"].tolist() == ["base", "feature", "feature", "feature", "feature", "other",
                                  "output"]
    assert w["end"].iloc[-1] == pytest.approx(view.points["model_output"].iloc[i], abs=1e-9)
    steps = w.iloc[1:-1]
    np.testing.assert_allclose(steps["end"] - steps["start"], steps["shap"])
    np.testing.assert_allclose(steps["start"].iloc[1:].to_numpy(), steps["end"].iloc[:-1])
    assert w["label"].iloc[1].startswith(view.contribution_table(i)["label"].iloc[0] + " = ")


def test_change_since_the_last_scan_adds_up(loaded):
    t, model, cohort = loaded
    view = patient_trajectory(model, cohort.visits, t.imaging[0], 3.0)
    pts = view.points
    ok_scans = pts.index[pts["is_scan"] & pts["assessable"]]
    later = [i for i in pts.index[pts["assessable"]] if i > ok_scans[0]]
    i = later[-1]
    ch = view.change_since_scan(i, top=50, scale="log_hazard")
    ref = [j for j in ok_scans if j < i][-1]
    assert ch.reference_kind == "scan"
    assert ch.reference_time == pytest.approx(pts["time"].iloc[ref])
    assert ch.changes["change"].sum() == pytest.approx(ch.output_change, abs=1e-9)
    assert ch.output_change == pytest.approx(
        pts["model_output"].iloc[i] - pts["model_output"].iloc[ref])
    assert ch.risk_change == pytest.approx(pts["risk"].iloc[i] - pts["risk"].iloc[ref])
    short = view.change_since_scan(i, top=3, scale="log_hazard")
    assert short.changes["feature"].iloc[-1] == "__other__"
    assert short.changes["change"].sum() == pytest.approx(ch.changes["change"].sum(), abs=1e-9)
    assert ch.text == (f"Since the scan at {pts['time'].iloc[ref]:.1f} y: risk "
                       f"{100 * ch.risk_change:+.1f} percentage points")


def test_nothing_to_compare_at_the_first_visit(loaded):
    t, model, cohort = loaded
    view = patient_trajectory(model, cohort.visits, t.imaging[0], 3.0)
    first = int(np.flatnonzero(view.points["assessable"])[0])
    ch = view.change_since_scan(first)
    assert ch.changes.empty and ch.reference_kind is None and ch.text is None


def test_waterfall_of_an_unassessable_visit_is_refused(loaded):
    import dataclasses

    t, model, cohort = loaded
    view = patient_trajectory(model, cohort.visits, t.imaging[0], 3.0)
    pts = view.points.copy()
    pts.loc[0, ["assessable", "reason"]] = [False, "missing required feature age_years"]
    broken = dataclasses.replace(view, points=pts)
    with pytest.raises(ModelError, match=r"not assessable \(missing required feature age"):
        broken.waterfall(0)
    assert broken.contributions(0) == [] and broken.why(0) == []


def test_unknown_horizon_is_refused(loaded):
    t, model, cohort = loaded
    with pytest.raises(ModelError, match=r"--horizon 4: the model was trained for horizons"):
        patient_trajectory(model, cohort.visits, t.imaging[0], 4.0)


def test_cumulative_incidence_of_every_cause(loaded, competing_model):
    t, _m, cohort = loaded
    model = competing_model
    p = t.imaging[0]
    pv = cohort.visits[cohort.visits["patient"] == p]
    s = float(pv["time"].iloc[1])
    trajectory = patient_trajectory(model, cohort.visits, p)
    i = int(np.flatnonzero(np.isclose(trajectory.points["time"], s))[0])
    incidence = incidence_curves(model, trajectory, i, [0.5, 1.0, 2.0, 3.0])
    assert incidence.visit_time == pytest.approx(s)
    curves = incidence.curves
    assert set(curves["cause"]) == {"interest", *model.events.competing}
    endpoint = curves[curves["cause"] == "interest"].set_index("time")["cif"]
    fitted = model.model
    X = fitted.matrix(fitted.history(pv, pd.DataFrame({"patient": [p], "landmark": [s]})))
    np.testing.assert_allclose(endpoint.loc[[1.0, 3.0]].to_numpy(),
                               fitted.risk(X, [1.0, 3.0])[0], rtol=1e-10)
    # causes plus event-free survival: exactly one at every time
    grid = fitted.event_grid(np.array([0.5, 1.0, 2.0, 3.0]))
    a_all = sum(e.cumulative_hazard(X, grid)[0] for e in fitted.estimators_.values())
    surv = np.exp(-a_all[np.searchsorted(grid, [0.5, 1.0, 2.0, 3.0])])
    total = curves.groupby("time")["cif"].sum().to_numpy()
    np.testing.assert_allclose(total + surv, 1.0, atol=1e-12)
    assert (np.diff(endpoint.to_numpy()) >= 0).all()


def test_json_follows_the_predict_contract_and_skips_the_requested_time(loaded):
    t, model, cohort = loaded
    p = t.imaging[0]
    pv = cohort.visits[cohort.visits["patient"] == p]
    at = float(pv["time"].iloc[0] + pv["time"].iloc[1]) / 2
    res = patient_trajectory(model, cohort.visits, p, horizon=2.0, at=at).to_json()
    assert list(res) == ["patient", "model_id", "horizon", "event", "trajectory", "at"]
    rows = res["trajectory"]
    assert list(rows[0]) == ["time", "date", "horizon", "model_id", "requested", "shap_scale",
                             "risk", "ci", "shap", "base_value", "model_output", "reason",
                             "contributions", "change", "base_risk", "points"]
    assert res["at"]["time"] == at and res["at"]["requested"]
    k = next(i for i, r in enumerate(rows) if r["requested"])
    after = rows[k + 1]
    # the visit after the requested time is compared with the visit before it
    assert after["change"]["since_time"] == rows[k - 1]["time"]
    for r in rows:
        if r["risk"] is not None:
            assert r["base_value"] + sum(r["shap"].values()) == pytest.approx(
                r["model_output"], abs=1e-9)
            assert len(r["contributions"]) == 5


def test_sentences_come_from_the_one_writer(loaded):
    from analytics.explain import contribution_sentence, why_text

    t, model, cohort = loaded
    view = patient_trajectory(model, cohort.visits, t.imaging[0], 3.0)
    i = view.latest_index()
    cs = view.contributions(i)
    assert view.why(i, 2) == [c.text for c in cs[:2]]
    assert view.to_json()["trajectory"][i]["contributions"] == [c.text for c in cs[:5]]
    for c in cs:
        assert c.text == contribution_sentence(c.label, c.unit, c.value, c.change, c.points,
                                               c.feature, c.since)
        assert c.sentence("log_hazard") == contribution_sentence(
            c.label, c.unit, c.value, c.change, c.shap, c.feature, c.since, "log_hazard")
    assert view.why(i, 2, scale="log_hazard") == [c.sentence("log_hazard") for c in cs[:2]]
    assert why_text(view.why(i, 2)) == "Why: " + "; ".join(view.why(i, 2)) + "."
    assert why_text([]) == ""


@pytest.mark.parametrize(("args", "text"), [
    # a low count that adds risk: the contribution is the value's (against the base
    # risk), so the sentence leads with the value and gives the previous one beside it
    pytest.param(("Platelets", "×10⁹/L", 123.0, -57.0, 3.14, "platelets_10e9_l"),
                 "Platelets 123 ×10⁹/L (180 at the previous visit): +3.1 points",
                 id="value-unit-change"),
    pytest.param(("Platelets", "×10⁹/L", 141.0, 28.0, -0.2, "platelets_10e9_l"),
                 "Platelets 141 ×10⁹/L (113 at the previous visit): -0.2 points",
                 id="rise-lowers"),
    pytest.param(("Albumin", "g/dL", None, None, -0.3, "albumin_g_dl"),
                 "Albumin not measured yet: -0.3 points", id="not-measured"),
    pytest.param(("Bilirubin", "mg/dL", 1.2, None, 0.04, "bilirubin_mg_dl"),
                 "Bilirubin 1.2 mg/dL: +0.04 points", id="first-value-small"),
    pytest.param(("Sex", "", "F", None, 0.0004, "sex"),
                 "Sex F: 0.0 points", id="category-negligible"),
    pytest.param(("Follow-up", "", "2.5 years since baseline, 6 visits", None, 1.26,
                  "follow_up"),
                 "Follow-up (2.5 years since baseline, 6 visits): +1.3 points",
                 id="follow-up-has-no-change"),
    pytest.param(("Spleen volume", "mL", 2734.0, 1500.0, 0.1, "spleen_volume_ml",
                  "previous scan"),
                 "Spleen volume 2,734 mL (1,234 at the previous scan): +0.1 points", id="thousands"),
    pytest.param(("Albumin", "g/dL", 3.1, 0.0, -0.8, "albumin_g_dl"),
                 "Albumin 3.1 g/dL (unchanged since the previous visit): -0.8 points",
                 id="unchanged"),
    pytest.param(("INR", "", 1.14, 0.05, 0.11, "inr", "previous visit", "log_hazard"),
                 "INR 1.14 (1.09 at the previous visit): +0.11 log hazard",
                 id="log-scale"),
    # a change below the shown precision is written with its sign
    pytest.param(("INR", "", 2.0, 0.001, 0.2, "inr"),
                 "INR 2 (+0.001 since the previous visit): +0.2 points", id="tiny-change"),
])
def test_contribution_sentence(args, text):
    from analytics.explain import contribution_sentence

    assert contribution_sentence(*args) == text


def test_risk_sentence_names_endpoint_horizon_visit_and_interval():
    from analytics.explain import risk_sentence

    assert risk_sentence("decompensation", 3.0, 2.04, 0.1234, (0.08, 0.17)) == (
        "Risk of decompensation within 3 y at the visit at 2.0 y: 12.3% "
        "(95% CI 8.0%-17.0%).")
    assert risk_sentence("death", 1.0, 0.0, 0.05, (float("nan"), float("nan"))) == (
        "Risk of death within 1 y at the visit at 0.0 y: 5.0%.")
