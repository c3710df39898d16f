"""Transient elastography (VCTE), BMI and diabetes in the synthetic cohort.

A fatty-liver clinic stages its patients with vibration-controlled transient
elastography (FibroScan): liver stiffness (``lsm_kpa``) and the controlled attenuation
parameter (``cap_db_m``, steatosis), measured in one examination at the bedside, and
with the patient's BMI and diabetes status. Those are the inputs of the clinical scores
FAST, Agile 3+ / Agile 4, the NAFLD fibrosis score and the Baveno VII rule of five
(:mod:`analytics.models.fibrosis_scores`). This module draws them.

Patient traits (stream of their own, so no other draw moves):

- ``diabetes`` (type 2), fixed over follow-up: 33 % of biopsied NAFLD patients have it
  (Mozes et al., Gut 2022;71:1006-19, individual patient data of 5,735 patients; median
  BMI 30 kg/m^2). It goes with advanced fibrosis: the log odds ratio 1.13 of the NAFLD
  fibrosis score's diabetes term (Angulo et al., Hepatology 2007;45:846-54) is applied to
  the patients who start at stage >= 3, and :data:`DIABETES_LOGIT_BASE` puts the
  cohort's prevalence at 33 % with the generator's stage mix (20 % start at >= 3).
- ``bmi_kg_m2``: log-normal, median 30 (Mozes 2022), SD 0.15 on the log scale (about
  26-35 kg/m^2 between the 17th and 83rd centiles), kept to 19-55; one value a patient,
  recorded at every visit.

Liver stiffness (kPa) at latent stage ``s``: ``ln LSM = ln m(s) + b + e``, with

- ``m(s)`` the typical stiffness of the stage, log-linear between
  :data:`LSM_STAGE_KNOTS` (healthy 4.5, F0 5.5, F1 6.5, F2 8.0, F3 11.0, 3.5 13.6, F4
  25.0 kPa): normal livers measure about 4.5-5.5 kPa; the stage values bracket the
  Youden cut-offs of Eddowes et al., Gastroenterology 2019;156:1717-30 (8.2 kPa for >=
  F2, 9.7 for >= F3), the F4 cut-off 13.6 kPa is the stiffness halfway between F3 and
  F4, and s = 4, cirrhosis with the full portal-hypertension phenotype, measures 25 kPa,
  the stiffness at which Baveno VII rules in clinically significant portal hypertension
  (de Franchis et al., J Hepatol 2022;76:959-74);
- ``b`` the patient's own offset (SD :data:`LSM_PATIENT_SD`, log scale), drawn once:
  patients at one fibrosis stage differ in inflammation, congestion, food and skin-to-
  capsule distance, so stiffness overlaps between stages. Its size is a calibration to
  the published accuracy, not a measured spread: at 0.40 each patient's first valid
  examination in the demo cohort separates >= F3 with an AUROC of 0.83 against a
  biopsy reading of the stage (the latent stage plus the sampling error of SD 0.29
  stage of :mod:`analytics.synthetic.labs`, F3 from 3.0), between Eddowes 2019 (0.80,
  404 patients) and Mozes 2022 (0.85, 5,735 patients), and every valid examination
  separates cirrhosis (latent stage 4, where the stage ends) with 0.89, as in Eddowes
  2019 (0.89); 0.85 and 0.91 at SD 0.36, 0.82 and 0.88 at 0.44.
  tests/synthetic/test_elastography.py checks both;
- ``e`` the examination's own error (SD :data:`LSM_REPEAT_SD`): two operators measuring
  one patient agree with an intraclass correlation of 0.98 (Fraquelli et al., Gut
  2007;56:968-73, 800 examinations). With the spread of ``ln LSM`` between the demo's
  patients at their first examination (SD ~0.57), ICC 0.98 is a repeat SD of 0.08, an
  examination-to-examination coefficient of variation of ~8 %.

Stiffness here reads the fibrosis stage only, not the patient's portal pressure (no
HVPG term): it does not duplicate what the spleen carries.

Controlled attenuation parameter (dB/m): ``CAP = 240 + 4.0 x liver fat (%) + noise``
with the liver fat fraction of the imaging phenotype
(:func:`analytics.synthetic.disease.imaging_phenotype`), so steatosis grades by MRI-PDFF
of 6.4 / 17.4 / 22.1 % sit at 266 / 310 / 328 dB/m, around the NAFLD cut-offs of
Eddowes 2019 (302, 331, 337 dB/m for >= S1, >= S2, S3). The noise (SD
:data:`CAP_SD_DB_M`, drawn afresh at each examination) is a calibration: at 45 dB/m CAP
separates >= S2 from S0-S1 at the first examination with an AUROC of 0.75 (0.78 at
40 dB/m, 0.73 at 50), the figure
of the NAFLD patients of Petroff et al., Lancet Gastroenterol Hepatol 2021;6:185-98
(0.754; individual patient data, M and XL probes). Values are kept to the device's
range, 100-400 dB/m.

Pathway (EASL clinical practice guidelines on non-invasive tests, Berzigotti et al.,
J Hepatol 2021;75:659-89; AASLD practice guidance, Rinella et al., Hepatology
2023;77:1797-835): a patient is sent for transient elastography at the first visit
whose FIB-4 is at least 1.3 (below it advanced fibrosis is ruled out and primary care
repeats FIB-4), and re-examined at a later visit, again only when that visit's FIB-4 is
>= 1.3, once :func:`repeat_interval_years` has passed: 3 years after a stiffness below
8 kPa, 2 years after 8-12 kPa, 1 year after >= 12 kPa (advanced fibrosis under yearly
review). :data:`NEVER_REFERRED` of the patients are never examined whatever their
FIB-4 (no access to a FibroScan or lost to referral: a design choice, not a published
rate); and an examination gives no valid result :data:`FAILED_EXAMINATION` of the time
(Eddowes 2019: 404 of 450 valid, with M and XL probes), when it is tried again a year
later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.synthetic.disease import PatientDisease, imaging_phenotype
from analytics.synthetic.measurements import baseline_fib4

#: columns added to every visit row of ``labs.csv``
ELASTOGRAPHY_COLUMNS = ("bmi_kg_m2", "diabetes", "lsm_kpa", "cap_db_m")
#: FIB-4 at or above which a patient is sent for transient elastography (EASL, AASLD)
FIB4_REFERRAL = 1.3
#: latent stages of healthy, F0, F1, F2, F3, F3-F4, F4 and their typical stiffness (kPa)
LSM_STAGE_KNOTS = (0.0, 1.0, 1.5, 2.0, 3.0, 3.5, 4.0)
LSM_STAGE_KPA = (4.5, 5.5, 6.5, 8.0, 11.0, 13.6, 25.0)
#: SD (log scale) of a patient's stiffness offset: calibrated to the published AUROC
LSM_PATIENT_SD = 0.40
#: SD (log scale) of one examination's error: ICC 0.98 (Fraquelli et al. 2007)
LSM_REPEAT_SD = 0.08
#: published repeatability of transient elastography (Fraquelli et al. 2007)
PUBLISHED_LSM_ICC = 0.98
#: published AUROC of liver stiffness for >= F3 and F4 (Eddowes 2019; Mozes 2022)
PUBLISHED_LSM_AUROC_F3 = 0.825
PUBLISHED_LSM_AUROC_F4 = 0.89
#: CAP (dB/m) = CAP_AT_NO_FAT + CAP_PER_FAT_PCT x liver fat (%), noise CAP_SD_DB_M
CAP_AT_NO_FAT = 240.0
CAP_PER_FAT_PCT = 4.0
CAP_SD_DB_M = 45.0
#: published AUROC of CAP for >= S2 in NAFLD (Petroff et al. 2021)
PUBLISHED_CAP_AUROC_S2 = 0.754
#: MRI-PDFF (%) at which steatosis grades 1, 2, 3 begin (Tang et al., Radiology 2015)
PDFF_GRADE_PCT = (6.4, 17.4, 22.1)
#: device ranges (FibroScan): stiffness 1.5-75 kPa, CAP 100-400 dB/m
LSM_RANGE_KPA = (1.5, 75.0)
CAP_RANGE_DB_M = (100.0, 400.0)
#: diabetes: logit = DIABETES_LOGIT_BASE + DIABETES_LOGIT_ADVANCED x (stage at baseline >= 3)
DIABETES_LOGIT_BASE = -0.96
DIABETES_LOGIT_ADVANCED = 1.13
#: BMI: log-normal, median and SD on the log scale, kept to a range
BMI_MEDIAN = 30.0
BMI_LOG_SD = 0.15
BMI_RANGE = (19.0, 55.0)
#: shares of patients never examined, and of examinations without a valid result
NEVER_REFERRED = 0.10
FAILED_EXAMINATION = 46 / 450


@dataclass(frozen=True)
class ElastographyTraits:
    """A patient's BMI, diabetes status, stiffness offset and whether they are referred."""

    bmi_kg_m2: float
    diabetes: int
    lsm_offset: float
    referred: bool

    @classmethod
    def draw(cls, rng: np.random.Generator, stage0: float) -> ElastographyTraits:
        """Draw the traits of a patient whose latent stage at baseline is ``stage0``."""
        logit = DIABETES_LOGIT_BASE + DIABETES_LOGIT_ADVANCED * (stage0 >= 3.0)
        diabetes = int(rng.uniform() < 1.0 / (1.0 + np.exp(-logit)))
        bmi = float(np.clip(BMI_MEDIAN * np.exp(BMI_LOG_SD * rng.standard_normal()),
                            *BMI_RANGE))
        offset = float(LSM_PATIENT_SD * rng.standard_normal())
        referred = bool(rng.uniform() >= NEVER_REFERRED)
        return cls(round(bmi, 1), diabetes, offset, referred)


def typical_lsm_kpa(stage: float | np.ndarray) -> float | np.ndarray:
    """The typical stiffness (kPa) of latent ``stage``: log-linear between the knots."""
    out = np.exp(np.interp(stage, LSM_STAGE_KNOTS, np.log(LSM_STAGE_KPA)))
    return float(out) if np.ndim(out) == 0 else out


def examine(stage: float, disease: PatientDisease, traits: ElastographyTraits,
            rng: np.random.Generator) -> dict[str, float]:
    """One valid VCTE examination at latent ``stage``: stiffness (0.1 kPa) and CAP (1 dB/m)."""
    lsm = typical_lsm_kpa(stage) * np.exp(traits.lsm_offset
                                          + LSM_REPEAT_SD * rng.standard_normal())
    fat = imaging_phenotype(stage, disease).fat_fraction_pct
    cap = CAP_AT_NO_FAT + CAP_PER_FAT_PCT * fat + CAP_SD_DB_M * rng.standard_normal()
    return {"lsm_kpa": round(float(np.clip(lsm, *LSM_RANGE_KPA)), 1),
            "cap_db_m": float(round(float(np.clip(cap, *CAP_RANGE_DB_M))))}


def repeat_interval_years(lsm_kpa: float | None) -> float:
    """Years until the next examination after one giving ``lsm_kpa`` (None: it failed)."""
    if lsm_kpa is None or lsm_kpa >= 12.0:
        return 1.0
    return 2.0 if lsm_kpa >= 8.0 else 3.0


def add_elastography(visits: list[dict], disease: PatientDisease,
                     rng: np.random.Generator) -> ElastographyTraits:
    """Give every visit (in time order, in place) the patient's BMI and diabetes status,
    and the visits of the pathway a VCTE examination (``visit["elastography"]``: its
    ``lsm_kpa`` and ``cap_db_m``, None when it failed); returns the patient's traits."""
    traits = ElastographyTraits.draw(rng, disease.stage0)
    due = 0.0
    for v in visits:
        v["clinical"] = {"bmi_kg_m2": traits.bmi_kg_m2, "diabetes": traits.diabetes}
        if not traits.referred or v["time_years"] < due - 1e-9:
            continue
        if not baseline_fib4(v) >= FIB4_REFERRAL:  # NaN (a lab missing) is not a referral
            continue
        if rng.uniform() < FAILED_EXAMINATION:
            v["elastography"] = {"lsm_kpa": None, "cap_db_m": None}
            due = v["time_years"] + repeat_interval_years(None)
            continue
        v["elastography"] = examine(v["latent_stage"], disease, traits, rng)
        due = v["time_years"] + repeat_interval_years(v["elastography"]["lsm_kpa"])
    return traits


def visit_values(visit: dict) -> dict[str, float | int | None]:
    """The :data:`ELASTOGRAPHY_COLUMNS` of a visit row (None where not measured)."""
    exam = visit.get("elastography") or {}
    clinical = visit.get("clinical") or {}
    return {"bmi_kg_m2": clinical.get("bmi_kg_m2"), "diabetes": clinical.get("diabetes"),
            "lsm_kpa": exam.get("lsm_kpa"), "cap_db_m": exam.get("cap_db_m")}
