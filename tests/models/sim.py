"""A small cohort simulator with a known, time-varying hazard (tests and benchmarks).

Each patient has a latent liver-disease severity ``z(t) = z0 + r t``. Labs are noisy
functions of ``z``; the hazard of ``decompensation`` is ``h0 exp(beta z(t))``; ``death``
is a competing risk with a hazard rising with age; ``transplant`` happens at a small
constant rate. The true log hazard of decompensation at each visit is returned so an
oracle C-index can be computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.cohort_types import CohortTable
from analytics.models.training import Truth

BETA = 1.0
H0 = 0.08


def simulate_cohort(n_patients: int = 200, seed: int = 0, follow_up: float = 6.0,
                    visit_every: float = 0.5, death_rate: float = 0.03,
                    transplant_rate: float = 0.0, missing: float = 0.1,
                    noise: float = 0.15) -> tuple[CohortTable, Truth]:
    """A CohortTable and the truth (decompensation log hazard at every visit)."""
    rng = np.random.default_rng(seed)
    dt = 0.02
    visits, outcomes, truth = [], [], []
    for i in range(n_patients):
        pid = f"P{i:05d}"
        z0, r = rng.normal(0, 1), rng.normal(0.3, 0.25)
        age0 = rng.uniform(40, 75)
        sex = rng.choice(["F", "M"])
        end = rng.uniform(0.6, 1.0) * follow_up
        t, event = 0.0, "censored"
        while t < end:
            z = z0 + r * t
            h1 = H0 * np.exp(BETA * z)
            h2 = death_rate * np.exp(0.05 * (age0 + t - 60))
            h3 = transplant_rate
            htot = h1 + h2 + h3
            if rng.random() < 1 - np.exp(-htot * dt):
                u = rng.random() * htot
                event = "decompensation" if u < h1 else ("death" if u < h1 + h2 else "transplant")
                t += rng.random() * dt
                break
            t += dt
        duration = min(t, end)
        outcomes.append({"patient": pid, "duration": duration, "event": event})
        vt = 0.0
        while vt < duration:
            z = z0 + r * vt
            row = {
                "patient": pid, "time": vt, "date": pd.NaT, "series_uid": None,
                "modality": None, "contrast_phase": None,
                "bilirubin_mg_dl": float(np.exp(0.1 + 0.45 * z + rng.normal(0, noise))),
                "albumin_g_dl": float(4.0 - 0.35 * z + rng.normal(0, noise)),
                "platelets_10e9_l": float(max(20.0, 190 - 35 * z + rng.normal(0, 15 * noise / 0.15))),
                "inr": float(1.1 + 0.12 * max(z, -1) + rng.normal(0, 0.05)),
                "age_years": age0 + vt, "sex": sex,
            }
            for k in ("albumin_g_dl", "platelets_10e9_l", "inr"):
                if rng.random() < missing:
                    row[k] = np.nan
            visits.append(row)
            truth.append({"patient": pid, "time": vt, "true_log_hazard": np.log(H0) + BETA * z,
                          "log_hazard:decompensation": np.log(H0) + BETA * z})
            vt = round(vt + visit_every * rng.uniform(0.8, 1.2), 6)
    v = pd.DataFrame(visits).sort_values(["patient", "time"]).reset_index(drop=True)
    meta = {c: {"kind": "lab", "unit": "", "categorical": c == "sex"}
            for c in v.columns if c not in ("patient", "time", "date", "series_uid",
                                            "modality", "contrast_phase")}
    cohort = CohortTable(visits=v, outcomes=pd.DataFrame(outcomes), feature_meta=meta)
    return cohort, Truth(pd.DataFrame(truth), event_of_interest="decompensation")
