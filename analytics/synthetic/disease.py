"""Latent disease stage, its imaging phenotype, and the event hazards it drives.

Each patient has a latent stage ``s(t) = clip(stage0 + progression_per_year * t, 0, 4)``
(``t`` in years since baseline): 0 healthy, ~1 steatosis, 2-3 fibrosis, 4 cirrhosis.

Imaging phenotype (unenhanced values; see ``imaging_phenotype``):

- liver fat fraction rises over stage 0 -> 1.5 to the patient's own maximum (5-35 %) and
  stays there, and parenchymal attenuation falls 1.6 HU per percent of fat from a healthy
  ~58 HU (so ~10-20 HU with severe steatosis); spleen ~45-50 HU;
- liver volume: hypertrophy up to +18 % with steatosis, atrophy to ~0.77x in cirrhosis,
  with relative sparing of the left/caudate lobes;
- surface nodularity (RMS surface displacement, mm): 0.1 -> 2.0 from stage 1.5 to 4;
- spleen volume: up to 2.6x (portal hypertension) from stage 1.5 to 4;
- vessel pruning: up to 60 % of peripheral branches removed from stage 1.5 to 4;
- parenchymal heterogeneity (fibrous septa, regenerative nodules): a zero-mean texture
  of 5-15 mm grain whose RMS grows from 1 HU to 6 HU from stage 1.5 to 4.

Events: cause-specific hazards per year,
``log h_c(t) = log_h0_c + beta_stage_c * s(t) + beta_age_c * (age(t) - 60) / 10``,
for ``decompensation`` (the event of interest), ``hcc``, ``transplant`` and ``death``;
latent times are drawn per cause by inverting the cumulative hazard and the first one
observed before the end of follow-up ends it (competing risks); otherwise ``censored``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from analytics.synthetic.fields import smoothstep

MAX_STAGE = 4.0
EVENT_OF_INTEREST = "decompensation"
CAUSES = ("decompensation", "hcc", "transplant", "death")
HAZARD_FORMULA = (
    "log h_c(t) = log_h0 + beta_stage * s(t) + beta_age_per_decade * (age_years(t) - "
    "age_ref_years) / 10, with s(t) = clip(stage0 + progression_per_year * t, 0, 4), "
    "h in events per year, t in years since baseline"
)


@dataclass(frozen=True)
class CauseHazard:
    """Parameters of one cause-specific hazard (per year)."""

    log_h0: float
    beta_stage: float
    beta_age_per_decade: float
    age_ref_years: float = 60.0


#: default hazards, tuned so that ~30-45 % of a default cohort decompensates in 5-8 years
DEFAULT_HAZARDS: dict[str, CauseHazard] = {
    "decompensation": CauseHazard(np.log(0.0055), 1.0, 0.10),
    "hcc": CauseHazard(np.log(0.0012), 0.85, 0.30),
    "transplant": CauseHazard(np.log(0.00025), 1.25, -0.30),
    "death": CauseHazard(np.log(0.006), 0.25, 0.60),
}


@dataclass(frozen=True)
class PatientDisease:
    """A patient's latent disease course and stage-independent imaging traits."""

    stage0: float
    progression_per_year: float
    fat_fraction_max_pct: float
    healthy_liver_hu: float
    spleen_hu: float
    age_at_baseline_years: float
    hazards: dict[str, CauseHazard]

    def stage_at(self, t_years: float | np.ndarray) -> float | np.ndarray:
        """Latent stage at ``t_years`` since baseline, clipped to [0, 4]."""
        s = np.clip(self.stage0 + self.progression_per_year * np.asarray(t_years), 0.0,
                    MAX_STAGE)
        return float(s) if np.ndim(s) == 0 else s

    def log_hazards(self, t_years: float | np.ndarray) -> dict[str, float | np.ndarray]:
        """True log hazard (per year) of every cause at ``t_years``."""
        s = np.asarray(self.stage_at(t_years))
        age = self.age_at_baseline_years + np.asarray(t_years)
        out: dict[str, float | np.ndarray] = {}
        for cause, hz in self.hazards.items():
            v = hz.log_h0 + hz.beta_stage * s + hz.beta_age_per_decade * (
                age - hz.age_ref_years) / 10.0
            out[cause] = float(v) if np.ndim(v) == 0 else v
        return out

    def describe(self) -> dict:
        """JSON-able description: enough to recompute every hazard without this code."""
        return {
            "stage0": self.stage0,
            "progression_per_year": self.progression_per_year,
            "fat_fraction_max_pct": self.fat_fraction_max_pct,
            "healthy_liver_hu": self.healthy_liver_hu,
            "spleen_hu_unenhanced": self.spleen_hu,
            "hazards": {c: asdict(h) for c, h in self.hazards.items()},
            "hazard_formula": HAZARD_FORMULA,
        }


def draw_patient_disease(rng: np.random.Generator, age_at_baseline_years: float,
                         hazards: dict[str, CauseHazard] | None = None) -> PatientDisease:
    """Draw a patient's baseline stage, progression rate and imaging traits.

    Baseline stages mix early (steatosis), fibrosis and compensated cirrhosis patients as
    in a hepatology clinic; progression rates are log-normal (median 0.22 stage/year).
    """
    group = rng.choice(3, p=[0.40, 0.40, 0.20])
    stage0 = float(rng.uniform(*[(0.0, 1.5), (1.5, 3.0), (3.0, 3.8)][group]))
    rate = float(np.exp(rng.normal(np.log(0.22), 0.6)))
    fat_max = float(5.0 + 30.0 * rng.beta(2.0, 2.5))
    return PatientDisease(
        stage0=round(stage0, 4),
        progression_per_year=round(rate, 4),
        fat_fraction_max_pct=round(fat_max, 3),
        healthy_liver_hu=round(float(rng.normal(58.0, 3.0)), 2),
        spleen_hu=round(float(rng.normal(47.0, 1.5)), 2),
        age_at_baseline_years=age_at_baseline_years,
        hazards=dict(hazards or DEFAULT_HAZARDS),
    )


@dataclass(frozen=True)
class ImagingPhenotype:
    """Stage-driven imaging parameters of one visit (see the module docstring)."""

    fat_fraction_pct: float
    liver_hu_unenhanced: float
    liver_enhancement_hu: float
    liver_volume_factor: float
    left_lobe_factor: float
    nodularity_mm: float
    spleen_volume_factor: float
    spleen_hu_unenhanced: float
    vessel_pruning: float
    liver_texture_hu: float = 1.0


def imaging_phenotype(stage: float, disease: PatientDisease | None = None) -> ImagingPhenotype:
    """Map a latent stage (0-4) to imaging parameters for a patient (or a typical one)."""
    fat_max = disease.fat_fraction_max_pct if disease else 25.0
    healthy_hu = disease.healthy_liver_hu if disease else 58.0
    spleen_hu = disease.spleen_hu if disease else 47.0
    s = float(np.clip(stage, 0.0, MAX_STAGE))
    fat = fat_max * smoothstep(0.0, 1.5, s)
    portal_htn = smoothstep(1.5, MAX_STAGE, s)
    return ImagingPhenotype(
        fat_fraction_pct=fat,
        liver_hu_unenhanced=healthy_hu - 1.6 * fat,
        liver_enhancement_hu=55.0 * (1.0 - 0.2 * smoothstep(2.0, MAX_STAGE, s)),
        liver_volume_factor=(1.0 + 0.18 * smoothstep(0.0, 1.5, s))
        * (1.0 - 0.30 * smoothstep(2.0, MAX_STAGE, s)),
        left_lobe_factor=1.0 + 0.12 * smoothstep(2.5, MAX_STAGE, s),
        nodularity_mm=0.1 + 1.9 * portal_htn,
        spleen_volume_factor=1.0 + 1.6 * portal_htn,
        spleen_hu_unenhanced=spleen_hu,
        vessel_pruning=0.6 * portal_htn,
        liver_texture_hu=1.0 + 5.0 * portal_htn,
    )


def sample_outcome(rng: np.random.Generator, disease: PatientDisease,
                   follow_up_years: float, dt_years: float = 0.005) -> tuple[str, float]:
    """Draw the first event (or censoring) within follow-up from the cause hazards.

    Returns
    -------
    (event, time_years)
        ``event`` is a cause name or ``"censored"``; ``time_years`` since baseline.
    """
    t = np.arange(0.0, follow_up_years + dt_years, dt_years)
    best_cause, best_time = "censored", follow_up_years
    for cause, log_h in disease.log_hazards(t).items():
        h = np.exp(log_h)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (h[1:] + h[:-1]) * dt_years)])
        target = rng.exponential(1.0)
        if target < cum[-1]:
            time = float(np.interp(target, cum, t))
            if time < best_time:
                best_cause, best_time = cause, time
    return best_cause, best_time
