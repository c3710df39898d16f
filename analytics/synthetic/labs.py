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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.synthetic.fields import smoothstep

LAB_COLUMNS = ("bilirubin_mg_dl", "albumin_g_dl", "inr", "platelets_10e9_l", "ast_u_l",
               "alt_u_l", "creatinine_mg_dl", "sodium_mmol_l")
VISIT_COLUMNS = ("patient_id", "date", *LAB_COLUMNS, "age_years", "sex")
_DECIMALS = {"bilirubin_mg_dl": 1, "albumin_g_dl": 1, "inr": 2, "platelets_10e9_l": 0,
             "ast_u_l": 0, "alt_u_l": 0, "creatinine_mg_dl": 2, "sodium_mmol_l": 0}


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


def labs_at(stage: float, base: LabBaseline, rng: np.random.Generator) -> dict[str, float]:
    """Lab values (rounded to reporting precision) at a visit with latent ``stage``."""
    s = float(stage)
    portal = smoothstep(1.5, 4.0, s)
    synthetic = smoothstep(2.0, 4.0, s)
    inflammation = smoothstep(0.3, 1.5, s) * (1.0 - 0.5 * smoothstep(2.5, 4.0, s))
    late = smoothstep(3.0, 4.0, s)

    def lognoise(cv: float) -> float:
        return float(np.exp(rng.normal(0.0, cv)))

    alt = base.alt * (1.0 + 1.6 * inflammation) * lognoise(0.2)
    values = {
        "bilirubin_mg_dl": base.bilirubin * np.exp(1.2 * portal) * lognoise(0.2),
        "albumin_g_dl": base.albumin - 1.1 * synthetic + rng.normal(0.0, 0.15),
        "inr": base.inr + 0.45 * synthetic + rng.normal(0.0, 0.05),
        "platelets_10e9_l": base.platelets * (1.0 - 0.6 * portal) * lognoise(0.1),
        "ast_u_l": base.ast * (1.0 + 1.0 * inflammation + 0.9 * portal) * lognoise(0.2),
        "alt_u_l": alt,
        "creatinine_mg_dl": (base.creatinine + 0.3 * late) * lognoise(0.08),
        "sodium_mmol_l": base.sodium - 4.0 * late + rng.normal(0.0, 1.5),
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
