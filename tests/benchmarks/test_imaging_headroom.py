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
from benchmarks.imaging_headroom import rcs_terms, true_state, with_columns, with_spline
from tests.models.imaging_sim import imaging_cohort
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


@pytest.mark.parametrize(("x", "terms"), [
    # knots 0, 1, 2, 3; by hand from Harrell's formula, over (3 - 0)^2 = 9
    (-1.0, (0.0, 0.0)),
    (0.5, (0.125 / 9, 0.0)),
    (2.5, ((15.625 - 0.125 * 3) / 9, (3.375 - 0.125 * 2) / 9)),
    (4.0, ((64 - 8 * 3 + 2) / 9, (27 - 8 * 2 + 1) / 9)),
    (5.0, ((125 - 27 * 3 + 8 * 2) / 9, (64 - 27 * 2 + 8) / 9)),
])
def test_restricted_cubic_spline_terms_match_the_hand_computed_values(x, terms):
    assert rcs_terms(np.array([x]), np.array([0.0, 1.0, 2.0, 3.0]))[0] == pytest.approx(
        terms, rel=1e-12)


def test_a_spline_of_an_imaging_feature_is_zero_in_the_design_before_the_first_scan():
    cohort = imaging_cohort(n_patients=80, seed=4)
    ms = ModelSettings(interval_refits=0)
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, None),
                               ms.landmark_settings())
    plus = with_spline(data, "liver_surface_nodularity")
    names = ["liver_surface_nodularity_rcs1", "liver_surface_nodularity_rcs2"]
    assert [c for c in plus.spec.numeric if c not in data.spec.numeric] == names
    model = LandmarkModel(ms, intervals=False).fit(plus)
    x = model.matrix(plus.rows)
    unscanned = data.rows["liver_surface_nodularity"].isna().to_numpy()
    assert 0 < unscanned.sum() < len(unscanned)
    for n in names:
        assert (x.loc[unscanned, n] == 0.0).all()
        assert x.loc[~unscanned, n].std() > 0
        assert f"{n}_measured" not in x.columns  # constant, so the design drops it
