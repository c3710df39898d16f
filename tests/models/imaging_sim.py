"""A simulated cohort in which part of the patients have CT scans (tests of the imaging
history in the landmark model and of its explanations).

Labs come from :func:`tests.models.sim.simulate_cohort`; every second patient has a CT
scan at every third lab visit, whose spleen volume (mL) and liver surface nodularity (mm)
follow the latent severity ``z`` that drives the hazard; ``liver_hu_mean`` is measured in
only :data:`RARE_PATIENTS` patients (too few to enter the model). The other patients
have no scan at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.cohort_types import CohortTable
from tests.models.sim import H0, simulate_cohort

#: patients with a liver attenuation value: fewer than the default feature floor
RARE_PATIENTS = 4
IMAGING = ("spleen_volume_ml", "liver_surface_nodularity", "liver_hu_mean")


def imaging_cohort(n_patients: int = 160, seed: int = 4) -> CohortTable:
    """Labs for everyone, CT scans for every second patient (module docstring)."""
    cohort, truth = simulate_cohort(n_patients=n_patients, seed=seed)
    rng = np.random.default_rng(seed + 100)
    v = cohort.visits.merge(truth.visits[["patient", "time", "true_log_hazard"]],
                            on=["patient", "time"], how="left")
    z = v["true_log_hazard"].to_numpy(float) - np.log(H0)
    k = v.groupby("patient").cumcount().to_numpy()
    number = v["patient"].str[1:].astype(int).to_numpy()
    scan = (number % 2 == 0) & (k % 3 == 0)
    v["series_uid"] = [f"2.25.{n}.{i}" if s else None
                       for n, i, s in zip(number, k, scan, strict=True)]
    v["modality"] = np.where(scan, "CT", None)
    v["contrast_phase"] = np.where(scan, "portal_venous", None)
    v["automatic_segmentation"] = None
    v["spleen_volume_ml"] = np.where(scan, 300 + 90 * z + rng.normal(0, 25, len(v)), np.nan)
    v["liver_surface_nodularity"] = np.where(scan, 2.0 + 0.4 * z + rng.normal(0, 0.2, len(v)),
                                             np.nan)
    rare = scan & (number < 2 * RARE_PATIENTS)
    v["liver_hu_mean"] = np.where(rare, 55 - 3 * z, np.nan)
    v = v.drop(columns="true_log_hazard")
    meta = dict(cohort.feature_meta)
    meta.update({c: {"kind": "imaging", "unit": "", "categorical": False} for c in IMAGING})
    return CohortTable(visits=v, outcomes=cohort.outcomes, feature_meta=meta)


def scanned_and_unscanned(cohort: CohortTable) -> tuple[str, str]:
    """A patient with at least two scans and one without any scan."""
    v = cohort.visits
    n_scans = v[v["spleen_volume_ml"].notna()].groupby("patient").size()
    scanned = str(n_scans[n_scans >= 2].index[0])
    unscanned = sorted(set(v["patient"]) - set(n_scans.index))[0]
    return scanned, unscanned


def visits_without_imaging(visits: pd.DataFrame) -> pd.DataFrame:
    """The same visits with every imaging column removed."""
    return visits.drop(columns=list(IMAGING))
