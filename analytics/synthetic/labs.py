"""Laboratory values driven by the latent stage, and the visit schedule.

Each patient has personal baselines (drawn once); at a visit every lab is its baseline
moved by the stage and multiplied (or shifted) by visit-to-visit noise of realistic size:

========================  =========================  ==================================
column                    healthy                    cirrhosis (stage 4)
========================  =========================  ==================================
platelets_10e9_l          ~250 (150-400)             ~100 (falls 60 % from stage 1.5)
bilirubin_mg_dl           ~0.6                       ~2 (rises from stage 1.5)
albumin_g_dl              ~4.3                       ~3.2 (falls from stage 2)
inr                       ~1.0                       ~1.45 (rises from stage 2)
alt_u_l / ast_u_l         ~22 / ~24                  ALT peaks in steatohepatitis; AST/ALT > 1
creatinine_mg_dl          ~0.95 M / 0.75 F           +0.3 late (stage 3-4)
sodium_mmol_l             ~140                       ~136
========================  =========================  ==================================

A fraction of values (default 5 %) is left missing at random, as in real lab extracts.

Visit-to-visit noise is the published within-subject biological variation (CVI; Ricos et
al., Scand J Clin Lab Invest 1999;59:491-500, the desirable-specifications database kept at
westgard.com; :data:`WITHIN_SUBJECT_CV`): platelets 9.1 %, AST 11.9 %, ALT 24.3 %, total
bilirubin 23.8 %, albumin 3.1 %, prothrombin time 4.0 % (for the INR), creatinine 5.3 %,
sodium 0.7 %.

How far a patient's platelets and aminotransferases move with the stage differs between
patients at the same stage (the platelet count of cirrhosis depends on thrombopoietin, the
marrow and alcohol as well as on the scar; the aminotransferases on inflammatory
activity): each patient has a ``LabResponse``, one log-normal factor (SD
:data:`RESPONSE_SD`, median 1) per lab scaling the stage's effect on it; the liver
function labs (bilirubin, albumin, INR) follow the stage as before. With every factor 1,
FIB-4 separated advanced fibrosis (stage >= 3) from the rest at the first visit of the
demo cohort with an AUROC of 0.89 and the platelet count alone 0.95, far above the
published accuracy of FIB-4 for >= F3 in biopsied NAFLD: AUROC 0.76 (Han et al., Gut
Liver 2022;16:952-63; 36 studies, 14,992 patients; 0.68 for >= F2). :data:`RESPONSE_SD`
= 1.2 is the spread at which the demo cohort's first-visit FIB-4 gives that AUROC: 0.767
against the latent stage, 0.758 against a biopsy reading of it (the latent stage plus a
sampling error of SD 0.29 stage, at which two biopsies of one liver differ by a stage in
a third of patients, as in Regev et al., Am J Gastroenterol 2002;97:2614-8); 0.79 at SD
1.0 and 0.75 at 1.4. It is a calibration to that published figure, not a measured spread
(tests/synthetic/test_lab_accuracy.py checks the AUROC on a generated cohort). At the
typical response (factor 1) the labs are unchanged: platelets fall 60 % from F1 to F4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.synthetic.elastography import ELASTOGRAPHY_COLUMNS
from analytics.synthetic.fields import smoothstep

LAB_COLUMNS = ("bilirubin_mg_dl", "albumin_g_dl", "inr", "platelets_10e9_l", "ast_u_l",
               "alt_u_l", "creatinine_mg_dl", "sodium_mmol_l")
#: a ``labs.csv`` row: the labs, age and sex, then BMI, diabetes and the transient
#: elastography of the visit (empty where none; :mod:`analytics.synthetic.elastography`)
VISIT_COLUMNS = ("patient_id", "date", *LAB_COLUMNS, "age_years", "sex",
                 *ELASTOGRAPHY_COLUMNS)
_DECIMALS = {"bilirubin_mg_dl": 1, "albumin_g_dl": 1, "inr": 2, "platelets_10e9_l": 0,
             "ast_u_l": 0, "alt_u_l": 0, "creatinine_mg_dl": 2, "sodium_mmol_l": 0}


#: within-subject biological variation (fraction; Ricos et al. 1999, module docstring)
WITHIN_SUBJECT_CV = {"platelets": 0.091, "ast": 0.119, "alt": 0.243, "bilirubin": 0.238,
                     "albumin": 0.031, "inr": 0.040, "creatinine": 0.053, "sodium": 0.007}
#: published AUROC of FIB-4 for advanced fibrosis (>= F3) in biopsied NAFLD (Han 2022)
PUBLISHED_FIB4_AUROC_F3 = 0.76
#: SD (log scale) of a patient's lab response to the stage (module docstring)
RESPONSE_SD = 1.2


@dataclass(frozen=True)
class LabResponse:
    """How strongly a patient's labs follow the stage: factors on the stage's effect."""

    platelets: float = 1.0
    ast: float = 1.0
    alt: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, sd: float | None = None) -> LabResponse:
        """Log-normal factors with SD ``sd`` (default :data:`RESPONSE_SD`)."""
        sd = RESPONSE_SD if sd is None else sd
        return cls(*(float(np.exp(sd * z)) for z in rng.standard_normal(3)))


@dataclass(frozen=True)
class LabBaseline:
    """A patient's healthy lab values."""

    platelets: float
    bilirubin: float
    albumin: float
    inr: float
    alt: float
    ast: float
    creatinine: float
    sodium: float

    @classmethod
    def draw(cls, rng: np.random.Generator, sex: str) -> LabBaseline:
        male = sex == "M"
        return cls(
            platelets=float(np.clip(rng.normal(255.0, 50.0), 150.0, 420.0)),
            bilirubin=float(np.exp(rng.normal(np.log(0.6), 0.3))),
            albumin=float(rng.normal(4.3, 0.22)),
            inr=float(rng.normal(1.0, 0.05)),
            alt=float(np.exp(rng.normal(np.log(26.0 if male else 20.0), 0.3))),
            ast=float(np.exp(rng.normal(np.log(24.0), 0.25))),
            creatinine=float(rng.normal(0.95 if male else 0.75, 0.12)),
            sodium=float(rng.normal(140.0, 1.5)),
        )


def labs_at(stage: float, base: LabBaseline, rng: np.random.Generator,
            response: LabResponse | None = None) -> dict[str, float]:
    """Lab values (rounded to reporting precision) at a visit with latent ``stage``.

    ``response`` scales the stage's effect on each lab (default: every factor 1); the
    visit noise is :data:`WITHIN_SUBJECT_CV`.
    """
    s = float(stage)
    r = response or LabResponse()
    cv = WITHIN_SUBJECT_CV
    portal = smoothstep(1.5, 4.0, s)
    synthetic = smoothstep(2.0, 4.0, s)
    inflammation = smoothstep(0.3, 1.5, s) * (1.0 - 0.5 * smoothstep(2.5, 4.0, s))
    late = smoothstep(3.0, 4.0, s)

    def lognoise(sd: float) -> float:
        return float(np.exp(rng.normal(0.0, sd)))

    alt = base.alt * (1.0 + 1.6 * inflammation * r.alt) * lognoise(cv["alt"])
    # a fall of at most 90 %: a large response cannot make the count negative
    platelet_fall = min(0.9, 0.6 * portal * r.platelets)
    values = {
        "bilirubin_mg_dl": base.bilirubin * np.exp(1.2 * portal)
        * lognoise(cv["bilirubin"]),
        "albumin_g_dl": base.albumin - 1.1 * synthetic
        + rng.normal(0.0, cv["albumin"] * base.albumin),
        "inr": base.inr + 0.45 * synthetic + rng.normal(0.0, cv["inr"] * base.inr),
        "platelets_10e9_l": base.platelets * (1.0 - platelet_fall) * lognoise(cv["platelets"]),
        "ast_u_l": base.ast * (1.0 + (1.0 * inflammation + 0.9 * portal) * r.ast)
        * lognoise(cv["ast"]),
        "alt_u_l": alt,
        "creatinine_mg_dl": (base.creatinine + 0.3 * late) * lognoise(cv["creatinine"]),
        "sodium_mmol_l": base.sodium - 4.0 * late + rng.normal(0.0, cv["sodium"] * base.sodium),
    }
    floors = {"albumin_g_dl": 1.5, "inr": 0.8, "platelets_10e9_l": 20.0,
              "bilirubin_mg_dl": 0.1}
    out: dict[str, float] = {}
    for k, v in values.items():
        x = max(float(v), floors.get(k, 0.0))
        out[k] = round(x) if _DECIMALS[k] == 0 else round(x, _DECIMALS[k])
    return out


def visit_times(rng: np.random.Generator, end_years: float, *, lab_interval: tuple[float, float]
                = (0.25, 0.6), scan_interval: tuple[float, float] = (0.8, 1.6),
                max_scans: int | None = None) -> list[tuple[float, bool]]:
    """Visit times (years since baseline, < ``end_years``) and whether each has a scan.

    The baseline visit (t = 0) has a scan; labs are drawn every 3-7 months and scans
    every 10-19 months, each scan visit also having labs.
    """
    scans = [0.0]
    t = 0.0
    while True:
        t += float(rng.uniform(*scan_interval))
        if t >= end_years or (max_scans is not None and len(scans) >= max_scans):
            break
        scans.append(round(t, 4))
    labs = []
    t = 0.0
    while True:
        t += float(rng.uniform(*lab_interval))
        if t >= end_years:
            break
        labs.append(round(t, 4))
    # a lab-only visit within a month of a scan is merged into it
    lab_only = [x for x in labs if min(abs(x - s) for s in scans) > 1.0 / 12.0]
    visits = [(s, True) for s in scans] + [(x, False) for x in lab_only]
    return sorted(visits)


def blank_missing(rows: list[dict], rng: np.random.Generator, fraction: float) -> int:
    """Set a random ``fraction`` of lab values to None, in place; returns how many."""
    n = 0
    for row in rows:
        for col in LAB_COLUMNS:
            if rng.uniform() < fraction:
                row[col] = None
                n += 1
    return n
