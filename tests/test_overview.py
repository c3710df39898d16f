"""Cohort risk overview: current risk and trend equal the engine's per-patient trajectory;
incidence by risk group equals lifelines and hand-computed Kaplan-Meier / Aalen-Johansen."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from analytics.errors import ModelError
from analytics.models.endpoint import EventSpec
from analytics.usecases.overview import (
    TREND_THRESHOLD,
    cohort_risk,
    flags_of,
    incidence_by_group,
    risk_groups,
    trend_of,
)
from tests import dashboard_data


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from analytics.cohort import build_cohort
    from analytics.models.registry import load_model

    t = dashboard_data.template(tmp_path_factory)
    dest = tmp_path_factory.mktemp("overview") / "home"
    with dashboard_data.open_copy(t, dest) as (settings, store):
        yield load_model(store, settings), build_cohort(store), store


def _events(interest=("decompensation",), competing=None):
    # the two facts incidence_by_group reads from a model: its endpoint and horizons
    return SimpleNamespace(events=EventSpec(tuple(interest), competing or {}),
                           horizons=[1.0, 2.0])


@pytest.mark.parametrize(
    ("previous", "current", "trend"),
    [(0.10, 0.12, "up"), (0.10, 0.10 + TREND_THRESHOLD, "up"), (0.10, 0.105, "flat"),
     (0.30, 0.20, "down"), (None, 0.2, None), (0.2, float("nan"), None)],
)
def test_trend(previous, current, trend):
    assert trend_of(previous, current) == trend


def test_cohort_risk_equals_the_engines_trajectory(loaded):
    from analytics.explain import patient_trajectory

    model, cohort, _store = loaded
    risk = cohort_risk(model, cohort.visits, 2.0)
    assert len(risk) == cohort.visits["patient"].nunique()
    for p in risk["pseudonym"].iloc[[0, 3, 7, 20]]:
        traj = patient_trajectory(model, cohort.visits, p, horizon=2.0).to_json()["trajectory"]
        row = risk.set_index("pseudonym").loc[p]
        last, first = traj[-1], traj[0]
        assert row["risk_time"] == pytest.approx(last["time"])
        if last["risk"] is None:
            assert np.isnan(row["risk"]) and row["reason"] == last["reason"]
        else:
            assert row["risk"] == pytest.approx(last["risk"], rel=1e-12)
            assert [row["risk_ci_low"], row["risk_ci_high"]] == pytest.approx(last["ci"])
        prev = traj[-2]["risk"] if len(traj) > 1 else None
        assert row["trend"] == trend_of(prev, last["risk"])
        base = np.nan if first["risk"] is None else first["risk"]
        assert row["baseline_risk"] == pytest.approx(base, nan_ok=True)


def test_cohort_risk_refuses_an_untrained_horizon(loaded):
    model, cohort, _ = loaded
    with pytest.raises(ModelError, match=r"horizon 7: the model was trained for horizons 1, 2, 3"):
        cohort_risk(model, cohort.visits, 7.0)


def test_risk_groups_split_at_tertiles():
    r = pd.Series([0.05, 0.10, 0.20, 0.30, 0.40, 0.50, np.nan, 0.60, 0.70])
    groups, cuts = risk_groups(r)
    assert cuts == pytest.approx([np.quantile(r.dropna(), 1 / 3), np.quantile(r.dropna(), 2 / 3)])
    assert groups.tolist() == ["Low", "Low", "Low", "Intermediate", "Intermediate", "High",
                               None, "High", "High"]


def test_risk_groups_need_distinct_risks():
    with pytest.raises(ModelError, match="2 distinct predicted risks; at least 3"):
        risk_groups(pd.Series([0.1, 0.1, 0.2]))


def _risk_frame(risks, baseline_time=0.0):
    return pd.DataFrame({"pseudonym": [f"P{i}" for i in range(len(risks))],
                         "baseline_time": baseline_time, "baseline_risk": risks})


def test_kaplan_meier_by_group_by_hand():
    # one group per third; the low third: times 1,2,3,4 (events at 1 and 3)
    risks = [0.01, 0.02, 0.03, 0.04, 0.5, 0.5, 0.6, 0.6, 0.9, 0.9, 0.95, 0.95]
    durations = [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]
    events = ["decompensation", "censored", "decompensation", "censored", *["censored"] * 4,
              *["decompensation"] * 4]
    out = pd.DataFrame({"patient": [f"P{i}" for i in range(12)], "duration": durations,
                        "event": events})
    gi = incidence_by_group(_events(), _risk_frame(risks), out)
    assert gi.method == "kaplan_meier" and gi.excluded == 0
    low = gi.curves[gi.curves["group"] == "Low"].set_index("time")["cif"]
    # S(1) = 3/4, S(3) = 3/4 * 1/2 = 3/8: cumulative incidence 1/4 then 5/8
    assert low.loc[1.0] == pytest.approx(0.25) and low.loc[3.0] == pytest.approx(0.625)
    high = gi.curves[gi.curves["group"] == "High"].set_index("time")["cif"]
    assert high.loc[4.0] == pytest.approx(1.0)
    mid = gi.curves[gi.curves["group"] == "Intermediate"]["cif"]
    assert (mid == 0).all()
    at = gi.at_risk[gi.at_risk["group"] == "Low"].set_index("time")["n_at_risk"]
    assert at.to_dict() == {0.0: 4, 1.0: 4, 2.0: 3, 3.0: 2, 4.0: 1}
    assert gi.groups.set_index("group")["events"].to_dict() == {"Low": 2, "Intermediate": 0,
                                                                "High": 4}


def test_aalen_johansen_with_competing_events_by_hand():
    # group "Low": times 1..5 with endpoint, competing, endpoint, censored, competing
    risks = [0.01, 0.02, 0.03, 0.04, 0.05, 0.5, 0.6, 0.7, 0.8, 0.9]
    durations = [1, 2, 3, 4, 5, 1.5, 2.5, 3.5, 4.5, 5.5]
    events = ["decompensation", "death", "decompensation", "censored", "death",
              "censored", "decompensation", "death", "censored", "decompensation"]
    out = pd.DataFrame({"patient": [f"P{i}" for i in range(10)], "duration": durations,
                        "event": events})
    gi = incidence_by_group(_events(competing={"death": ("death",)}), _risk_frame(risks), out,
                            n_groups=2)
    assert gi.method == "aalen_johansen"
    q1 = gi.curves[gi.curves["group"] == "Q1"]
    cif = lambda t: float(q1[q1["time"] <= t]["cif"].iloc[-1])  # noqa: E731
    # 1/5 at t=1; S drops to 3/5 after the competing death at 2; + 3/5 * 1/3 at t=3
    assert cif(1.5) == pytest.approx(0.2, abs=1e-4)
    assert cif(3.5) == pytest.approx(0.4, abs=1e-4)
    assert cif(6.0) == pytest.approx(0.4, abs=1e-4)  # a competing death adds nothing
    assert gi.groups.set_index("group").loc["Q1", ["events", "competing"]].tolist() == [2, 2]


def test_incidence_matches_lifelines_on_the_synthetic_cohort(loaded):
    from lifelines import KaplanMeierFitter

    model, cohort, _ = loaded
    risk = cohort_risk(model, cohort.visits, 3.0)
    gi = incidence_by_group(model, risk, cohort.outcomes)
    df = risk.merge(cohort.outcomes.rename(columns={"patient": "pseudonym"}), on="pseudonym")
    df["t"] = df["duration"] - df["baseline_time"]
    df = df[df["baseline_risk"].notna() & (df["t"] > 0)]
    df["group"], cuts = risk_groups(df["baseline_risk"])
    assert gi.cuts == pytest.approx(cuts)
    assert gi.excluded == len(risk) - len(df)
    for g, part in df.groupby("group"):
        e = part["event"].map(lambda x: model.events.cause_of(x) == "interest")
        km = KaplanMeierFitter().fit(part["t"], e)
        ours = gi.curves[gi.curves["group"] == g]
        np.testing.assert_allclose(ours["cif"], km.cumulative_density_.iloc[:, 0])
        np.testing.assert_allclose(ours["time"], km.cumulative_density_.index)


def test_too_few_patients_to_group():
    out = pd.DataFrame({"patient": ["P0", "P1"], "duration": [1.0, 2.0],
                        "event": ["censored", "decompensation"]})
    with pytest.raises(ModelError, match=r"risk groups: 2 patients .* at least 3"):
        incidence_by_group(_events(), _risk_frame([0.1, 0.2]), out)


def test_flags_name_out_of_domain_and_automatic_segmentation():
    risk = pd.DataFrame({"pseudonym": ["A", "B", "C"], "assessable": [True, False, True],
                         "risk_time": [1.0, 2.0, np.nan]})
    assert flags_of(risk, {"A", "B"}).tolist() == [
        "automatic segmentation", "out of domain · automatic segmentation", ""]
