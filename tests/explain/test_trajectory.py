"""Per-patient risk view: numbers equal the engine's trajectory; grouped SHAP, waterfall
and change since the last scan add up exactly; cumulative incidence of every cause sums
with event-free survival to one and equals the model's risk for the endpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.errors import ModelError
from analytics.patient_risk import (
    change_since_scan,
    cumulative_incidence_curves,
    feature_groups,
    risk_view,
    waterfall_data,
)
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
    from analytics.models.landmark import LandmarkSettings, build_landmark_data, resolve_events
    from analytics.models.predict import LandmarkModel
    from analytics.models.registry import RegisteredModel
    from analytics.models.settings import ModelSettings

    _t, _m, cohort = loaded
    events = resolve_events(cohort.outcomes, "decompensation")
    assert events.competing, "the synthetic cohort should have deaths"
    data = build_landmark_data(cohort, events, LandmarkSettings(horizons=(1.0, 3.0)))
    return RegisteredModel(LandmarkModel(ModelSettings(kind="cox", horizons=(1.0, 3.0))).fit(data),
                           "cox-in-memory")


def test_risk_view_equals_patient_trajectory(loaded):
    from analytics.models.predict import patient_trajectory

    t, model, cohort = loaded
    p = t.imaging[0]
    view = risk_view(model, cohort.visits, p, 2.0)
    traj = patient_trajectory(model, cohort.visits, p, horizon=2.0)["trajectory"]
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
    view = risk_view(model, cohort.visits, t.imaging[1], 3.0)
    groups = feature_groups(model)
    assert groups["bilirubin_mg_dl_slope"] == "bilirubin_mg_dl"
    assert groups["landmark_years_sq"] == "landmark_years"
    for i, c in enumerate(view.contributions):
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
    view = risk_view(model, cohort.visits, p, 3.0)
    i = view.latest_index()
    c = view.contributions[i].set_index("feature")
    pv = cohort.visits[(cohort.visits["patient"] == p)
                       & (cohort.visits["time"] <= view.points["time"].iloc[i] + 1e-9)]
    last_albumin = pv["albumin_g_dl"].dropna().iloc[-1]
    assert c.loc["albumin_g_dl", "value"] == pytest.approx(last_albumin)
    assert c.loc["albumin_g_dl", "label"] == "Albumin" and c.loc["albumin_g_dl", "unit"] == "g/dL"


def test_waterfall_runs_from_base_to_output(loaded):
    t, model, cohort = loaded
    view = risk_view(model, cohort.visits, t.imaging[0], 3.0)
    i = view.latest_index()
    w = waterfall_data(view, i, top=4)
    assert w["kind"].tolist() == ["base", "feature", "feature", "feature", "feature", "other",
                                  "output"]
    assert w["end"].iloc[-1] == pytest.approx(view.points["model_output"].iloc[i], abs=1e-9)
    steps = w.iloc[1:-1]
    np.testing.assert_allclose(steps["end"] - steps["start"], steps["shap"])
    np.testing.assert_allclose(steps["start"].iloc[1:].to_numpy(), steps["end"].iloc[:-1])
    assert w["label"].iloc[1].startswith(view.contributions[i]["label"].iloc[0] + " = ")


def test_change_since_the_last_scan_adds_up(loaded):
    t, model, cohort = loaded
    view = risk_view(model, cohort.visits, t.imaging[0], 3.0)
    pts = view.points
    ok_scans = pts.index[pts["is_scan"] & pts["assessable"]]
    later = [i for i in pts.index[pts["assessable"]] if i > ok_scans[0]]
    i = later[-1]
    ch = change_since_scan(view, i, top=50)
    ref = [j for j in ok_scans if j < i][-1]
    assert ch.attrs["reference_kind"] == "scan"
    assert ch.attrs["reference_time"] == pytest.approx(pts["time"].iloc[ref])
    assert ch["change"].sum() == pytest.approx(ch.attrs["output_change"], abs=1e-9)
    assert ch.attrs["output_change"] == pytest.approx(
        pts["model_output"].iloc[i] - pts["model_output"].iloc[ref])
    assert ch.attrs["risk_change"] == pytest.approx(pts["risk"].iloc[i] - pts["risk"].iloc[ref])
    short = change_since_scan(view, i, top=3)
    assert short["feature"].iloc[-1] == "__other__"
    assert short["change"].sum() == pytest.approx(ch["change"].sum(), abs=1e-9)


def test_nothing_to_compare_at_the_first_visit(loaded):
    t, model, cohort = loaded
    view = risk_view(model, cohort.visits, t.imaging[0], 3.0)
    first = int(np.flatnonzero(view.points["assessable"])[0])
    ch = change_since_scan(view, first)
    assert ch.empty and ch.attrs["reference_kind"] is None


def test_waterfall_of_an_unassessable_visit_is_refused(loaded):
    from analytics.patient_risk import RiskView

    t, model, cohort = loaded
    view = risk_view(model, cohort.visits, t.imaging[0], 3.0)
    pts = view.points.copy()
    pts.loc[0, ["assessable", "reason"]] = [False, "missing required feature age_years"]
    broken = RiskView(view.patient, view.model_id, view.event, view.horizon, view.scale, pts,
                      view.contributions)
    with pytest.raises(ModelError, match=r"not assessable \(missing required feature age"):
        waterfall_data(broken, 0)


def test_unknown_horizon_is_refused(loaded):
    t, model, cohort = loaded
    with pytest.raises(ModelError, match=r"--horizon 4: the model was trained for horizons"):
        risk_view(model, cohort.visits, t.imaging[0], 4.0)


def test_cumulative_incidence_of_every_cause(loaded, competing_model):
    t, _m, cohort = loaded
    model = competing_model
    p = t.imaging[0]
    pv = cohort.visits[cohort.visits["patient"] == p]
    s = float(pv["time"].iloc[1])
    curves = cumulative_incidence_curves(model, cohort.visits, p, s, [0.5, 1.0, 2.0, 3.0])
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
