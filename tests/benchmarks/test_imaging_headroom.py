"""The imaging-headroom benchmark's true columns and how they enter the labs-only model,
on a small simulated cohort with a hand-set latent state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analytics.models.endpoint import resolve_events
from analytics.models.landmark import build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.settings import ModelSettings
from benchmarks.imaging_headroom import true_state, with_columns
from tests.models.sim import simulate_cohort


@pytest.fixture(scope="module")
def small():
    cohort, truth = simulate_cohort(n_patients=120, seed=3)
    ms = ModelSettings(interval_refits=0)
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, None),
                               ms.landmark_settings())
    pats = sorted(data.rows["patient"].unique())
    # stage 3.5 at baseline rising 0.5/year; portal pressure +1 SD for every other patient;
    # every endpoint cause a constant hazard of exp(-3) per year
    hazards = {c: {"log_h0": -3.0, "beta_age_per_decade": 0.0}
               for c in data.events.of_interest}
    params = {p: {"stage0": 3.5, "progression_per_year": 0.5, "age_at_baseline_years": 60.0,
                  "hazards": hazards, "portal_pressure_z": 1.0 if i % 2 else 0.0}
              for i, p in enumerate(pats)}
    return data, dataclasses.replace(truth, params=params), ms


def test_true_state_is_the_stage_portal_term_and_log_hazard_at_each_landmark(small):
    data, truth, _ms = small
    st = true_state(data, truth)
    t = data.rows["landmark"].to_numpy()
    stage = np.minimum(3.5 + 0.5 * t, 4.0)
    assert st["true_stage"].to_numpy() == pytest.approx(stage)
    # smoothstep(1.5, 4, s) = u^2 (3 - 2u), u = (s - 1.5) / 2.5: 0.896 at 3.5, 1 from 4
    u = (stage - 1.5) / 2.5
    z = np.array([truth.params[p]["portal_pressure_z"] for p in data.rows["patient"]])
    assert st["true_portal_term"].to_numpy() == pytest.approx(z * u * u * (3 - 2 * u))
    at0 = (t == 0.0) & (z == 1.0)
    assert st.loc[at0, "true_portal_term"].to_numpy() == pytest.approx(0.896)
    # the endpoint's hazard is the sum over its causes
    n = len(data.events.of_interest)
    assert st["true_log_hazard"].to_numpy() == pytest.approx(-3.0 + np.log(n))


def test_each_true_column_enters_the_labs_only_model_as_one_column(small):
    data, truth, ms = small
    st = true_state(data, truth)
    plus = with_columns(data, st[["true_stage", "true_portal_term"]])
    assert len(plus.spec.columns) == len(data.spec.columns) + 2
    assert [c for c in plus.spec.columns if c not in data.spec.columns] == [
        "true_stage", "true_portal_term"]
    model = LandmarkModel(ms, intervals=False).fit(plus)
    assert "true_portal_term" in model.matrix(plus.rows).columns
