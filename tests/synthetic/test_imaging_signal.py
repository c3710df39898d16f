"""What the demo's imaging can see that its labs cannot: the portal pressure at a stage.

The README's account of what imaging adds on the demo cohort rests on these properties of
the generator, each checked against values computed by hand from the formulas in
:mod:`analytics.synthetic.disease`, :mod:`analytics.synthetic.labs` and
:mod:`analytics.synthetic.measurements`.
"""

from __future__ import annotations

import numpy as np
import pytest

from analytics.synthetic.disease import PatientDisease, imaging_phenotype
from analytics.synthetic.labs import LabBaseline, labs_at
from analytics.synthetic.measurements import LSN_FLOOR_MM, LSN_PER_MM, OrganSizes, measure_visit


def _patient(z: float) -> PatientDisease:
    """A typical patient (every imaging response 1) with portal pressure ``z`` SD."""
    return PatientDisease(stage0=4.0, progression_per_year=0.0, fat_fraction_max_pct=20.0,
                          healthy_liver_hu=58.0, spleen_hu=47.0, age_at_baseline_years=60.0,
                          hazards={}, portal_pressure_z=z)


@pytest.mark.parametrize(("stage", "z", "spleen", "nodularity"), [
    # s = 4: full portal hypertension; spleen 1 + 1.6 (1 + 0.35 z), RMS 0.1 + 1.9 (1 + 0.25 z)
    (4.0, 0.0, 2.6, 2.0),
    (4.0, 1.0, 1.0 + 1.6 * 1.35, 0.1 + 1.9 * 1.25),
    (4.0, -1.0, 1.0 + 1.6 * 0.65, 0.1 + 1.9 * 0.75),
    # congestion and nodularity factors are floored at 0.2
    (4.0, -4.0, 1.0 + 1.6 * 0.2, 0.1 + 1.9 * 0.2),
    # half-way between the portal knots (1.5, 4) the smoothstep is 0.5
    (2.75, 1.0, 1.0 + 1.6 * 0.5 * 1.35, 0.1 + 1.9 * 0.5 * 1.25),
    # below the knots the portal pressure leaves no trace
    (1.5, 2.0, 1.0, 0.1),
])
def test_spleen_and_surface_nodularity_follow_the_portal_pressure_at_a_stage(
        stage, z, spleen, nodularity):
    ph = imaging_phenotype(stage, _patient(z))
    assert ph.spleen_volume_factor == pytest.approx(spleen, rel=1e-12)
    assert ph.nodularity_mm == pytest.approx(nodularity, rel=1e-12)


def test_labs_follow_the_stage_and_not_the_portal_pressure():
    """Platelets fall 60 % from F1 (stage 1.5) to F4 (stage 4), whatever the pressure:
    ``labs_at`` reads only the stage, so equal draws give a ratio of exactly 0.4."""
    base = LabBaseline.draw(np.random.default_rng(0), "M")
    f1 = labs_at(1.5, base, np.random.default_rng(1))
    f4 = labs_at(4.0, base, np.random.default_rng(1))
    assert f4["platelets_10e9_l"] == pytest.approx(0.4 * f1["platelets_10e9_l"], abs=1.0)
    assert f1["platelets_10e9_l"] == pytest.approx(base.platelets, rel=0.4)


def test_imported_measurements_carry_the_published_repeat_noise():
    """Spleen volume CV 5 %, liver volume 4 %, attenuation SD 2 HU, LSN SD 0.04 mm around
    the phenotype's truth (measurements module docstring)."""
    d = _patient(1.0)
    organs = OrganSizes(liver_ml=1450.0, spleen_ml=200.0)
    ph = imaging_phenotype(4.0, d)
    rng = np.random.default_rng(5)
    m = [measure_visit(4.0, d, organs, rng) for _ in range(4000)]
    spleen = np.log([x["spleen_volume_ml"] for x in m])
    liver = np.log([x["liver_volume_ml"] for x in m])
    lsn = np.array([x["liver_surface_nodularity"] for x in m])
    hu = np.array([x["liver_hu_mean"] for x in m])
    assert np.exp(spleen.mean()) == pytest.approx(200.0 * 3.16, rel=0.01)
    assert spleen.std() == pytest.approx(0.05, rel=0.06)
    assert np.exp(liver.mean()) == pytest.approx(1450.0 * ph.liver_volume_factor, rel=0.01)
    assert liver.std() == pytest.approx(0.04, rel=0.06)
    assert lsn.mean() == pytest.approx(LSN_FLOOR_MM + LSN_PER_MM * (0.1 + 1.9 * 1.25), abs=0.003)
    assert lsn.std() == pytest.approx(0.04, rel=0.1)
    assert hu.mean() == pytest.approx(58.0 - 1.6 * 20.0, abs=0.1)
    assert hu.std() == pytest.approx(2.0, rel=0.06)
