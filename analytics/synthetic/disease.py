"""Latent disease stage, its imaging phenotype, and the event hazards it drives.

Each patient has a latent stage ``s(t) = clip(stage0 + progression_per_year * t, 0, 4)``
(``t`` in years since baseline): 0 healthy, ~1 steatosis, 2-3 fibrosis, 4 cirrhosis.

Each patient also has a portal pressure of their own: ``portal_pressure_z``, how many
standard deviations their portal pressure (HVPG) lies above that of patients at the same
fibrosis stage. At a given stage HVPG varies widely (it depends on the intrahepatic
vascular tone and the splanchnic flow as well as on the fibrous scar), and it, not the
stage, drives decompensation: each 1 mmHg of HVPG raises the decompensation hazard by
11 % (Ripoll et al., Gastroenterology 2007;133:481-8, HR 1.11 per mmHg in compensated
cirrhosis), and HVPG spreads with an SD of ~4-5 mmHg at a given stage, so
``beta_portal`` = ln(1.11) * 4.5 = 0.47 per SD, applied in proportion to how far portal
hypertension has developed (``smoothstep(1.5, 4, s)``, the ``portal_knots``). It raises
the HCC hazard too: HR 1.18 per mmHg (Ripoll et al., J Hepatol 2009;50:923-8), so
ln(1.18) * 4.5 = 0.74 per SD. The spleen enlarges with the portal pressure (congestive
splenomegaly) and the liver surface grows more nodular (LSN rises with HVPG; Sartoris et
al., Radiology 2018;289:698-707); the labs here do not see it: this is what imaging
carries beyond the labs. The spleen's size also varies between
healthy people (CV ~25 %) and in how much it grows, so it is a noisy witness, not an
oracle.

Imaging phenotype (unenhanced values; see ``imaging_phenotype``):

- liver fat fraction rises over stage 0 -> 1.5 to the patient's own maximum (5-35 %) and
  stays there, and parenchymal attenuation falls 1.6 HU per percent of fat from a healthy
  ~58 HU (so ~10-20 HU with severe steatosis); spleen ~45-50 HU;
- liver volume: hypertrophy up to +18 % with steatosis, atrophy to ~0.77x in cirrhosis
  (the atrophy scaled by the patient's ``atrophy_response``, log-normal SD 0.25), with
  relative sparing of the left/caudate lobes;
- surface nodularity (RMS surface displacement, mm): 0.1 -> 2.0 from stage 1.5 to 4,
  the rise times the patient's ``nodularity_response`` (log-normal, SD
  :data:`NODULARITY_RESPONSE_SD` = 0.75, a calibration to the published accuracy of the
  LSN score, below) and ``1 + 0.25 * portal_pressure_z`` (at least 0.2);
- spleen volume: the patient's ``spleen_baseline_factor`` (log-normal, SD 0.25, kept to
  0.7-1.45) times
  up to 2.6x (portal hypertension) from stage 1.5 to 4, the growth scaled by the
  patient's ``spleen_response`` (log-normal, SD 0.2) and by ``1 + 0.35 *
  portal_pressure_z`` (at least 0.2);
- vessel pruning: up to 60 % of peripheral branches removed from stage 1.5 to 4;
- parenchymal heterogeneity (fibrous septa, regenerative nodules): a zero-mean texture
  of 5-15 mm grain whose RMS grows from 1 HU to 6 HU from stage 1.5 to 4.

How much a liver's surface roughens with the stage differs between patients at the same
stage (regenerative nodules differ in size with the cause and the activity of the
disease, and part of the surface is smooth in early cirrhosis). With a response SD of
0.25 the demo cohort's nodularity score at the first scan separated advanced fibrosis
(stage >= 3) from the rest with an AUROC of 0.95, sharper than published for the liver
surface nodularity (LSN) score: a summary AUC of 0.89 (95 % CI 0.86-0.91) for >= F3 and
0.87 (0.83-0.89) for F4 in a meta-analysis of six CT and MR studies (Heo et al., Eur
Radiol 2022;32:3377-87), and 0.87 for >= F3 and 0.89 for F4 in a multi-institutional
hepatitis C study of 191 patients (Multiinstitutional Evaluation of the Liver Surface
Nodularity Score on CT for Staging Liver Fibrosis and Predicting Liver-Related Events in
Patients With Hepatitis C, AJR Am J Roentgenol). :data:`NODULARITY_RESPONSE_SD` = 0.75
is the spread at which the demo cohort's first-scan score gives the meta-analysis' 0.89
against the latent stage (0.888; 0.875 against a biopsy reading of the stage with a
sampling error of SD 0.29 stage, as for FIB-4 in :mod:`analytics.synthetic.labs`; 0.87
at SD 0.95). It is a calibration to that published figure, not a measured spread
(tests/synthetic/test_nodularity_accuracy.py checks the AUROC on a generated cohort);
the typical patient (response 1) is unchanged. Two limits of the comparison: no patient
starts in F4 (baseline stages stop at 3.8), so the first-scan advanced group is F3 only,
while 64 of the 110 advanced patients of the multi-institutional study were F4; and the
score separates F4 less well than published (AUROC 0.78 over every imported scan, stage
4 against the rest; 0.84 with the former SD 0.25), because the generator's surface
roughens from F1 on and levels off towards F4, where the published score stays nearly
flat up to F3 and rises at F4 (mean 2.26 at F0-F1, 2.35 at F2, 2.42 at F3, 3.19 at F4 in
that study).

Events: cause-specific hazards per year,

    log h_c(t) = log_h0_c + g_c(s(t)) + beta_age_c * (age(t) - 60) / 10
                 + beta_portal_c * portal_pressure_z * smoothstep(1.5, 4, s(t)),

for ``decompensation`` (the event of interest), ``hcc``, ``transplant`` and ``death``;
latent times are drawn per cause by inverting the cumulative hazard and the first one
observed before the end of follow-up ends it (competing risks); otherwise ``censored``.

The stage effect ``g_c`` is the log of a published relative risk by histological
fibrosis stage, interpolated linearly (in the log) between stage knots. The latent scale
is read as fibrosis stages so (``STAGE_KNOTS``):

=====  ============  ===============================================================
s      stage         why
=====  ============  ===============================================================
0      healthy       no published gradient below F0: the F0 (reference) level
1      F0            steatosis without fibrosis (labs and imaging flat below 1.5)
1.5    F1            onset of fibrosis: where labs and imaging start to move
2      F2            the scale's own anchors (2-3 fibrosis, 4 cirrhosis)
3      F3
4      F4            cirrhosis with the full portal-hypertension phenotype
=====  ============  ===============================================================

Relative risks vs F0 (Dulai et al., Hepatology 2017;65:1557-65, meta-analysis of 1,495
biopsied NAFLD patients, 17,452 patient-years; mortality rate ratios):

- liver-related mortality F1 1.41, F2 9.57, F3 16.69, F4 42.30, used for
  ``decompensation``, ``hcc`` and ``transplant`` (``LIVER_RELATED_RR``);
- all-cause mortality F1 1.58, F2 2.52, F3 3.48, F4 6.40, used for ``death``
  (``ALL_CAUSE_RR``).

The shape (almost flat F0 -> F1, steep from F2) is that of Angulo et al.,
Gastroenterology 2015;149:389-97 (fibrosis stage, not steatohepatitis, predicts
outcomes) and Taylor et al., Gastroenterology 2020;158:1611-25 (13 cohorts, 4,428
patients; risk of liver events rising steeply from F2). A later time-to-event
meta-analysis (Ng et al., Clin Gastroenterol Hepatol 2023;21:931-9) finds smaller
adjusted liver-related hazard ratios (F2 4.07, F3 7.59, F4 15.1) with the same shape.

Absolute rates at s = 4 and age 60 (``log_h0`` is the F0 rate, i.e. these / the F4 RR):

- decompensation 8 %/year: compensated cirrhosis decompensates at ~5-10 %/year
  (D'Amico et al., J Hepatol 2006;44:217-31: ascites 4.4 %/year without varices, ascites
  6.6 % + bleeding 4 %/year with varices; 5-year decompensation 24.5 % over 92 studies,
  D'Amico & Perricone, Curr Hepatol Rep 2019;18:144-56); s = 4 carries the full
  portal-hypertension phenotype (platelets ~100, spleen 2.6x), so the upper half; at
  s = 3.5 it is 5 %/year;
- hcc 1.5 %/year: NAFLD cirrhosis 1.1-2.6 %/year (Kanwal et al., Gastroenterology
  2018;155:1828-37; Ascha et al., Hepatology 2010;51:1972-8);
- transplant (as a first event, before any recorded decompensation or HCC) 1 %/year:
  the s = 4 lab profile has a MELD of ~15, the usual threshold for transplant
  evaluation, and transplant without a prior complication stays rare (a guess of the
  order of magnitude, not a published rate);
- death 3.8 %/year (0.6 %/year at F0 and age 60, the general-population order, times the
  all-cause RR 6.40); D'Amico 2006 reports 1-3.4 %/year in compensated cirrhosis.

The age terms are unchanged from the earlier linear model. On ``sample_data/demo.toml``
(seed 7, 2,000 patients) this gives decompensation as the first event in 15 % of
patients, death in 12 %, HCC in 3 % and transplant in 3 % (see
tests/synthetic/test_cohort.py).

``CauseHazard`` keeps the older linear term ``beta_stage * s`` (0 in the defaults) so a
truth file written with it still recomputes: the stage effect is
``beta_stage * s + ln(interp(s, stage_knots, stage_rr))``, the second term 0 when there
are no knots.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from analytics.synthetic.fields import smoothstep

MAX_STAGE = 4.0
EVENT_OF_INTEREST = "decompensation"
CAUSES = ("decompensation", "hcc", "transplant", "death")
HAZARD_FORMULA = (
    "log h_c(t) = log_h0 + beta_stage * s(t) + ln(RR(s(t))) + beta_age_per_decade * "
    "(age_years(t) - age_ref_years) / 10 + beta_portal * portal_pressure_z * "
    "smoothstep(portal_knots[0], portal_knots[1], s(t)), with s(t) = clip(stage0 + "
    "progression_per_year * t, 0, 4), ln(RR(s)) linear in s between the points "
    "(stage_knots[k], ln(stage_rr[k])), constant beyond the end knots, 0 when stage_knots "
    "is empty, and smoothstep(a, b, s) = u * u * (3 - 2 * u) with u = clip((s - a) / "
    "(b - a), 0, 1); beta_portal 0 when absent; h in events per year, t in years since "
    "baseline"
)
#: shares of patients starting with steatosis (0-1.5), fibrosis (1.5-3) and advanced
#: fibrosis to compensated cirrhosis (3-3.8), as in a hepatology clinic
STAGE_MIX = (0.40, 0.40, 0.20)
#: stages over which portal hypertension develops (imaging and the portal hazard term)
PORTAL_KNOTS = (1.5, 4.0)
#: decompensation log hazard per SD of portal pressure at full portal hypertension:
#: ln(1.11 per mmHg HVPG; Ripoll et al. 2007) * 4.5 mmHg SD
BETA_PORTAL_DECOMPENSATION = round(float(np.log(1.11) * 4.5), 4)
#: HCC log hazard per SD of portal pressure: ln(1.18 per mmHg HVPG; Ripoll et al.,
#: J Hepatol 2009;50:923-8) * 4.5 mmHg SD
BETA_PORTAL_HCC = round(float(np.log(1.18) * 4.5), 4)
#: how much a patient's surface nodularity follows their portal pressure, per SD (LSN
#: rises with HVPG; Sartoris et al., Radiology 2018;289:698-707)
NODULARITY_PER_PORTAL_SD = 0.25
#: SD (log scale) of a patient's surface nodularity response to the stage: a calibration
#: to the published AUROC of the CT LSN score for >= F3 (module docstring)
NODULARITY_RESPONSE_SD = 0.75
#: summary AUROC of the CT/MR LSN score for advanced fibrosis (>= F3; Heo et al., Eur
#: Radiol 2022;32:3377-87, meta-analysis of six studies, 95 % CI 0.86-0.91)
PUBLISHED_LSN_AUROC_F3 = 0.89

#: latent stage of healthy, F0, F1, F2, F3, F4 (see the module docstring)
STAGE_KNOTS = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0)
#: liver-related mortality rate ratios vs F0 (Dulai et al. 2017), at ``STAGE_KNOTS``
LIVER_RELATED_RR = (1.0, 1.0, 1.41, 9.57, 16.69, 42.30)
#: all-cause mortality rate ratios vs F0 (Dulai et al. 2017), at ``STAGE_KNOTS``
ALL_CAUSE_RR = (1.0, 1.0, 1.58, 2.52, 3.48, 6.40)


@dataclass(frozen=True)
class CauseHazard:
    """Parameters of one cause-specific hazard (per year); see ``HAZARD_FORMULA``."""

    log_h0: float
    beta_stage: float
    beta_age_per_decade: float
    age_ref_years: float = 60.0
    stage_knots: tuple[float, ...] = ()
    stage_rr: tuple[float, ...] = ()
    beta_portal: float = 0.0
    portal_knots: tuple[float, float] = PORTAL_KNOTS

    def __post_init__(self) -> None:
        if len(self.stage_knots) != len(self.stage_rr):
            raise ValueError("stage_knots and stage_rr differ in length")
        if np.any(np.diff(self.stage_knots) <= 0):
            raise ValueError("stage_knots must increase")
        if any(r <= 0 for r in self.stage_rr):
            raise ValueError("stage_rr must be positive")

    def stage_effect(self, stage: float | np.ndarray) -> np.ndarray:
        """``beta_stage * s + ln(RR(s))``: the log relative hazard of ``stage`` vs 0."""
        s = np.asarray(stage, dtype=float)
        out = self.beta_stage * s
        if self.stage_knots:
            out = out + np.interp(s, self.stage_knots, np.log(self.stage_rr))
        return out

    def log_hazard(self, stage: float | np.ndarray, age_years: float | np.ndarray,
                   portal_pressure_z: float = 0.0) -> np.ndarray:
        """Log hazard per year at latent ``stage``, ``age_years`` and the patient's
        ``portal_pressure_z`` (SD of portal pressure above others at the same stage)."""
        out = self.log_h0 + self.stage_effect(stage) + self.beta_age_per_decade * (
            np.asarray(age_years, dtype=float) - self.age_ref_years) / 10.0
        if self.beta_portal and portal_pressure_z:
            out = out + self.beta_portal * portal_pressure_z * smoothstep(
                self.portal_knots[0], self.portal_knots[1], np.asarray(stage, dtype=float))
        return out


def _published(rate_at_f4: float, rr: tuple[float, ...], beta_age: float) -> CauseHazard:
    """A hazard with the published RR curve and ``rate_at_f4`` per year at s = 4, age 60."""
    return CauseHazard(float(np.log(rate_at_f4 / rr[-1])), 0.0, beta_age,
                       stage_knots=STAGE_KNOTS, stage_rr=rr)


#: default hazards (module docstring: sources and the resulting rates)
DEFAULT_HAZARDS: dict[str, CauseHazard] = {
    "decompensation": replace(_published(0.08, LIVER_RELATED_RR, 0.10),
                              beta_portal=BETA_PORTAL_DECOMPENSATION),
    "hcc": replace(_published(0.015, LIVER_RELATED_RR, 0.30), beta_portal=BETA_PORTAL_HCC),
    "transplant": _published(0.01, LIVER_RELATED_RR, -0.30),
    "death": _published(0.006 * ALL_CAUSE_RR[-1], ALL_CAUSE_RR, 0.60),
}


@dataclass(frozen=True)
class PatientDisease:
    """A patient's latent disease course and stage-independent imaging traits.

    ``portal_pressure_z`` is part of the latent state (it enters the hazards); the
    ``*_response`` and ``spleen_baseline_factor`` traits only shape the imaging.
    """

    stage0: float
    progression_per_year: float
    fat_fraction_max_pct: float
    healthy_liver_hu: float
    spleen_hu: float
    age_at_baseline_years: float
    hazards: dict[str, CauseHazard]
    portal_pressure_z: float = 0.0
    spleen_baseline_factor: float = 1.0
    spleen_response: float = 1.0
    nodularity_response: float = 1.0
    atrophy_response: float = 1.0

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
            v = hz.log_hazard(s, age, self.portal_pressure_z)
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
            "portal_pressure_z": self.portal_pressure_z,
            "spleen_baseline_factor": self.spleen_baseline_factor,
            "spleen_response": self.spleen_response,
            "nodularity_response": self.nodularity_response,
            "atrophy_response": self.atrophy_response,
            "hazards": {c: {k: list(v) if isinstance(v, tuple) else v
                            for k, v in asdict(h).items()}
                        for c, h in self.hazards.items()},
            "hazard_formula": HAZARD_FORMULA,
        }


def draw_patient_disease(rng: np.random.Generator, age_at_baseline_years: float,
                         hazards: dict[str, CauseHazard] | None = None,
                         portal_rng: np.random.Generator | None = None,
                         stage_mix: tuple[float, float, float] = STAGE_MIX) -> PatientDisease:
    """Draw a patient's baseline stage, progression rate and imaging traits.

    Baseline stages mix early (steatosis, 0-1.5), fibrosis (1.5-3) and advanced fibrosis
    to compensated cirrhosis (3-3.8) patients as in a hepatology clinic; progression rates
    are log-normal (median 0.22 stage/year). ``stage_mix`` gives the shares of the three
    groups (a surveillance cohort of advanced disease has more of the last). ``portal_rng`` (a stream of its own, so the
    other draws do not move) draws the portal pressure and the imaging responses; without
    it the patient is typical (z = 0, responses 1).
    """
    portal: dict[str, float] = {}
    if portal_rng is not None:
        z, base, spleen, nod, atrophy = portal_rng.standard_normal(5)
        portal = {"portal_pressure_z": round(float(z), 4),
                  # healthy spleens vary ~25 %; kept to 0.7-1.45x (about the 8th-93rd
                  # centiles) so that no healthy spleen is already "enlarged"
                  "spleen_baseline_factor": round(float(np.clip(np.exp(0.25 * base), 0.7,
                                                                1.45)), 4),
                  "spleen_response": round(float(np.exp(0.2 * spleen)), 4),
                  "nodularity_response": round(float(np.exp(NODULARITY_RESPONSE_SD * nod)),
                                               4),
                  "atrophy_response": round(float(np.exp(0.25 * atrophy)), 4)}
    group = rng.choice(3, p=list(stage_mix))
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
        **portal,
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
    d = disease or PatientDisease(0.0, 0.0, 25.0, 58.0, 47.0, 60.0, {})
    s = float(np.clip(stage, 0.0, MAX_STAGE))
    fat = d.fat_fraction_max_pct * smoothstep(0.0, 1.5, s)
    portal_htn = smoothstep(*PORTAL_KNOTS, s)
    congestion = max(0.2, 1.0 + 0.35 * d.portal_pressure_z)
    atrophy = min(0.45, 0.30 * d.atrophy_response)
    return ImagingPhenotype(
        fat_fraction_pct=fat,
        liver_hu_unenhanced=d.healthy_liver_hu - 1.6 * fat,
        liver_enhancement_hu=55.0 * (1.0 - 0.2 * smoothstep(2.0, MAX_STAGE, s)),
        liver_volume_factor=(1.0 + 0.18 * smoothstep(0.0, 1.5, s))
        * (1.0 - atrophy * smoothstep(2.0, MAX_STAGE, s)),
        left_lobe_factor=1.0 + 0.12 * smoothstep(2.5, MAX_STAGE, s),
        nodularity_mm=0.1 + 1.9 * portal_htn * d.nodularity_response
        * max(0.2, 1.0 + NODULARITY_PER_PORTAL_SD * d.portal_pressure_z),
        spleen_volume_factor=d.spleen_baseline_factor
        * (1.0 + 1.6 * portal_htn * d.spleen_response * congestion),
        spleen_hu_unenhanced=d.spleen_hu,
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
