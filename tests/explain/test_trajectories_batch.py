"""Every patient scored together gives each patient's trajectory exactly as scored alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.errors import ModelError
from analytics.explain import patient_trajectories, patient_trajectory
from tests import dashboard_data


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from analytics.cohort import build_cohort
    from analytics.models.registry import load_model

    t = dashboard_data.template(tmp_path_factory)
    dest = tmp_path_factory.mktemp("pbatch") / "home"
    with dashboard_data.open_copy(t, dest) as (settings, store):
        yield load_model(store, settings), build_cohort(store)


@pytest.fixture(scope="module")
def gbm_model(loaded):
    """A gradient-boosted endpoint model with death competing (fitted in memory)."""
    from analytics.models.landmark import LandmarkSettings, build_landmark_data, resolve_events
    from analytics.models.predict import LandmarkModel
    from analytics.models.registry import RegisteredModel
    from analytics.models.settings import ModelSettings

    _m, cohort = loaded
    events = resolve_events(cohort.outcomes, "decompensation")
    data = build_landmark_data(cohort, events, LandmarkSettings(horizons=(1.0, 3.0)))
    ms = ModelSettings(kind="gbm", horizons=(1.0, 3.0), interval_refits=3)
    return RegisteredModel(LandmarkModel(ms).fit(data), "gbm-in-memory")


def assert_same(got, want, where="") -> None:
    """Equal JSON: the same keys, lists and texts, numbers to 1e-9 (relative)."""
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for k in want:
            assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, float) and ((math.isnan(want) and math.isnan(got))
                                          or got == pytest.approx(want, rel=1e-9, abs=1e-12)
                                          ), where
    else:
        assert got == want, where


@pytest.mark.parametrize(("which", "horizon", "at"), [("active", None, None),
                                                      ("active", 2.0, 1.5),
                                                      ("gbm", 3.0, 0.7)])
def test_patients_scored_together_equal_each_patient_scored_alone(loaded, gbm_model, which,
                                                                   horizon, at):
    model, cohort = loaded
    model = gbm_model if which == "gbm" else model
    patients = sorted(set(cohort.visits["patient"]))[:30]
    together = patient_trajectories(model, cohort.visits, patients, horizon, at)
    assert [t.patient for t in together] == patients
    alone = [patient_trajectory(model, cohort.visits, p, horizon, at) for p in patients]
    assert any(r["risk"] is not None for t in alone for r in t.to_json()["trajectory"])
    for a, b in zip(together, alone, strict=True):
        assert_same(a.to_json(), b.to_json(), a.patient)
        np.testing.assert_allclose(a.in_points.values, b.in_points.values, rtol=1e-9,
                                   atol=1e-12)
        assert a.why(len(a.points) - 1) == b.why(len(b.points) - 1)


def test_a_patient_without_visits_is_named(loaded):
    model, cohort = loaded
    first = sorted(set(cohort.visits["patient"]))[0]
    with pytest.raises(ModelError, match="patient 'HT-NOBODY': no visits"):
        patient_trajectories(model, cohort.visits, [first, "HT-NOBODY"])
