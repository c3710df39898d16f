"""The stage-to-hazard link: published relative risks, absolute rates, event sampling."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.synthetic import disease as D
from analytics.synthetic.disease import CauseHazard, PatientDisease, sample_outcome

# Dulai et al., Hepatology 2017;65:1557-65: mortality rate ratios vs F0 for F1..F4
LIVER_MRR = (1.41, 9.57, 16.69, 42.30)
ALL_CAUSE_MRR = (1.58, 2.52, 3.48, 6.40)
F_STAGE = {"F0": 1.0, "F1": 1.5, "F2": 2.0, "F3": 3.0, "F4": 4.0}


def _rr(h: CauseHazard, stage: float) -> float:
    return float(np.exp(h.stage_effect(stage) - h.stage_effect(F_STAGE["F0"])))


@pytest.mark.parametrize("cause", ["decompensation", "hcc", "transplant"])
def test_liver_events_carry_the_published_liver_related_rate_ratios(cause):
    h = D.DEFAULT_HAZARDS[cause]
    got = [_rr(h, F_STAGE[f]) for f in ("F1", "F2", "F3", "F4")]
    assert got == pytest.approx(LIVER_MRR, rel=1e-9)
    # healthy carries the F0 risk, and half-way F2 -> F3 is the geometric mean
    assert _rr(h, 0.0) == pytest.approx(1.0)
    assert _rr(h, 2.5) == pytest.approx(np.sqrt(9.57 * 16.69), rel=1e-9)


def test_death_carries_the_published_all_cause_rate_ratios():
    h = D.DEFAULT_HAZARDS["death"]
    got = [_rr(h, F_STAGE[f]) for f in ("F1", "F2", "F3", "F4")]
    assert got == pytest.approx(ALL_CAUSE_MRR, rel=1e-9)


def test_absolute_rates_in_cirrhosis_and_at_f0():
    """Per year at age 60: decompensation 8 % in cirrhosis (D'Amico 2006: 5-10 %)."""
    rate = {c: float(np.exp(h.log_hazard(4.0, 60.0))) for c, h in D.DEFAULT_HAZARDS.items()}
    assert rate == pytest.approx({"decompensation": 0.08, "hcc": 0.015, "transplant": 0.01,
                                  "death": 0.006 * 6.40}, rel=1e-9)
    death_f0 = float(np.exp(D.DEFAULT_HAZARDS["death"].log_hazard(1.0, 60.0)))
    assert death_f0 == pytest.approx(0.006)
    # the age term: one decade older multiplies the hazard by exp(beta_age_per_decade)
    h = D.DEFAULT_HAZARDS["hcc"]
    assert float(h.log_hazard(3.0, 70.0) - h.log_hazard(3.0, 60.0)) == pytest.approx(0.30)


def test_stage_effect_is_monotone_and_flat_below_f0():
    s = np.linspace(0.0, 4.0, 401)
    for h in D.DEFAULT_HAZARDS.values():
        g = h.stage_effect(s)
        assert np.all(np.diff(g) >= -1e-12)
        assert np.all(g[s <= 1.0] == 0.0)


def test_linear_stage_term_of_older_truth_files_still_applies():
    h = CauseHazard(np.log(0.01), 0.8, 0.2)
    assert float(h.log_hazard(2.5, 70.0)) == pytest.approx(np.log(0.01) + 0.8 * 2.5 + 0.2)
    with pytest.raises(ValueError, match="length"):
        CauseHazard(0.0, 0.0, 0.0, stage_knots=(0.0, 1.0), stage_rr=(1.0,))
    with pytest.raises(ValueError, match="increase"):
        CauseHazard(0.0, 0.0, 0.0, stage_knots=(1.0, 1.0), stage_rr=(1.0, 2.0))


def _patient(stage0: float, rate: float, hazard: CauseHazard) -> PatientDisease:
    return PatientDisease(stage0=stage0, progression_per_year=rate, fat_fraction_max_pct=20.0,
                          healthy_liver_hu=58.0, spleen_hu=47.0, age_at_baseline_years=60.0,
                          hazards={"decompensation": hazard})


def test_sampled_events_follow_the_piecewise_hazard():
    """Event fraction of patients crossing F0 -> F3 matches 1 - exp(-integral of h)."""
    hz = CauseHazard(np.log(0.08 / 42.30), 0.0, 0.0, stage_knots=D.STAGE_KNOTS,
                     stage_rr=D.LIVER_RELATED_RR)
    p = _patient(1.0, 0.5, hz)  # stage 1 -> 3 over 4 years
    # exact integral: h is exponential-linear in t on each knot segment
    h0 = 0.08 / 42.30
    cum = 0.0
    for (s0, r0), (s1, r1) in zip([(1.0, 1.0), (1.5, 1.41), (2.0, 9.57)],
                                  [(1.5, 1.41), (2.0, 9.57), (3.0, 16.69)], strict=True):
        dt = (s1 - s0) / 0.5
        cum += h0 * dt * (r1 - r0) / np.log(r1 / r0)
    expected = 1.0 - np.exp(-cum)
    rng = np.random.default_rng(3)
    n = 4000
    hits = sum(sample_outcome(rng, p, 4.0)[0] == "decompensation" for _ in range(n))
    se = np.sqrt(expected * (1 - expected) / n)
    assert abs(hits / n - expected) < 4 * se


def test_sampled_rate_at_stage_4_is_the_cirrhosis_rate():
    hz = CauseHazard(np.log(0.08 / 42.30), 0.0, 0.0, stage_knots=D.STAGE_KNOTS,
                     stage_rr=D.LIVER_RELATED_RR)
    p = _patient(4.0, 0.0, hz)
    rng = np.random.default_rng(4)
    draws = [sample_outcome(rng, p, 5.0) for _ in range(4000)]
    events = sum(e == "decompensation" for e, _ in draws)
    person_years = sum(t for _, t in draws)
    rate = events / person_years
    assert rate == pytest.approx(0.08, abs=4 * 0.08 / np.sqrt(events))
