"""A small cohort where an imaging feature carries (or does not carry) risk by construction.

Each patient has a latent severity ``z(t) = z0 + r t`` that the labs measure with noise,
and a second, fixed latent ``u`` that no lab sees. Scanned patients (a share of them) have
a CT at baseline and about yearly, giving ``liver_surface_nodularity`` (an imaging column
of the vocabulary). With ``informative=True`` the hazard of ``decompensation`` is
``h0 exp(z(t) + effect * u)`` and the scan measures ``u``; otherwise the hazard is
``h0 exp(z(t) + effect * u)`` still, but the scan measures an independent draw (pure
noise), so imaging can add nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.cohort_types import CohortTable
from analytics.models.history_spec import IMAGING_STATS
from analytics.models.landmark import LandmarkSettings
from analytics.models.settings import ModelSettings
from analytics.models.training import Truth

IMAGING = "liver_surface_nodularity"
H0 = 0.08
#: small cohorts: a short landmark range keeps validation fast; every feature enters,
#: imaging with its whole scan history
LANDMARKS = LandmarkSettings(horizons=(1.0, 2.0, 3.0), landmark_max=2.0,
                             min_feature_patients=2, min_feature_events=1,
                             stats=(), imaging_stats=IMAGING_STATS)
SETTINGS = ModelSettings(kind="cox", horizons=(1.0, 2.0, 3.0), folds=3, repeats=1,
                         n_bootstrap=200, seed=1, landmark=LANDMARKS)


def _lab_row(pid: str, t: float, z: float, age: float, sex: str,
             rng: np.random.Generator) -> dict:
    return {"patient": pid, "time": t, "date": pd.NaT, "series_uid": None, "modality": None,
            "contrast_phase": None,
            "bilirubin_mg_dl": float(np.exp(0.1 + 0.45 * z + rng.normal(0, 0.2))),
            "albumin_g_dl": float(4.0 - 0.35 * z + rng.normal(0, 0.2)),
            "age_years": age + t, "sex": sex, IMAGING: np.nan}


def _event_time(z0: float, r: float, u: float, effect: float, end: float,
                rng: np.random.Generator) -> tuple[float, str]:
    dt, t = 0.02, 0.0
    while t < end:
        if rng.random() < 1 - np.exp(-H0 * np.exp(z0 + r * t + effect * u) * dt):
            return t + rng.random() * dt, "decompensation"
        t += dt
    return end, "censored"


def simulate_imaging_cohort(n_patients: int = 240, seed: int = 0, informative: bool = True,
                            scanned: float = 0.7, effect: float = 1.2,
                            follow_up: float = 6.0) -> tuple[CohortTable, Truth]:
    """A CohortTable with labs every half year and CT scans for ``scanned`` of the
    patients, and the truth (the decompensation log hazard at every visit)."""
    rng = np.random.default_rng(seed)
    visits, outcomes, truth = [], [], []
    for i in range(n_patients):
        pid = f"I{i:04d}"
        z0, r, u = rng.normal(0, 1), rng.normal(0.2, 0.2), rng.normal(0, 1)
        seen = u if informative else rng.normal(0, 1)
        age, sex = rng.uniform(40, 75), str(rng.choice(["F", "M"]))
        duration, event = _event_time(z0, r, u, effect, rng.uniform(0.6, 1.0) * follow_up,
                                      rng)
        outcomes.append({"patient": pid, "duration": duration, "event": event})
        t = 0.0
        while t < duration:
            visits.append(_lab_row(pid, t, z0 + r * t, age, sex, rng))
            truth.append({"patient": pid, "time": t,
                          "true_log_hazard": np.log(H0) + z0 + r * t + effect * u})
            t = round(t + 0.5 * rng.uniform(0.8, 1.2), 6)
        if rng.random() < scanned:
            s = 0.05
            while s < duration:
                visits.append({"patient": pid, "time": s, "date": pd.NaT,
                               "series_uid": f"{pid}-{s:.2f}", "modality": "CT",
                               "contrast_phase": "portal_venous",
                               IMAGING: float(2.5 + 0.4 * seen + rng.normal(0, 0.08))})
                s = round(s + rng.uniform(0.8, 1.3), 6)
    v = pd.DataFrame(visits).sort_values(["patient", "time"], kind="stable")
    v = v.reset_index(drop=True)
    meta = {c: {"kind": "lab", "unit": "", "categorical": c == "sex"}
            for c in ("bilirubin_mg_dl", "albumin_g_dl", "age_years", "sex")}
    meta[IMAGING] = {"kind": "imaging", "unit": "mm", "categorical": False}
    cohort = CohortTable(visits=v, outcomes=pd.DataFrame(outcomes), feature_meta=meta)
    return cohort, Truth(pd.DataFrame(truth), event_of_interest="decompensation")


def train_imaging_model(store, settings, *, n_patients: int = 160, seed: int = 0,
                        n_bootstrap: int = 50, activate: bool = False) -> dict:
    """Train and register (not activated by default) a Cox model on an informative
    imaging cohort, with its truth for the oracle; the ``train --json`` payload."""
    from analytics.models.training import train_model

    cohort, truth = simulate_imaging_cohort(n_patients=n_patients, seed=seed)
    ms = ModelSettings(kind="cox", horizons=(1.0, 2.0, 3.0), folds=3, repeats=1,
                       n_bootstrap=n_bootstrap, seed=1, landmark=LANDMARKS)
    return train_model(store, settings, cohort, ms, truth=truth, activate=activate)
