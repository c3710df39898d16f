"""Liver and spleen attenuation, the steatosis grade and the contrast phase.

Attenuation is measured on CT only (HU thresholds never apply to MR). The steatosis grade
uses published unenhanced-CT thresholds and is computed only when the series is
unenhanced; see the registry definition of ``steatosis_grade`` for the sources.
"""

from __future__ import annotations

import numpy as np

from analytics.features.measure import RoiStats

UNENHANCED = "unenhanced"
ARTERIAL = "arterial"
PORTAL_VENOUS = "portal_venous"
DELAYED = "delayed"
PHASES = (UNENHANCED, ARTERIAL, PORTAL_VENOUS, DELAYED)

#: aortic attenuation limits between phases (HU): unenhanced blood is ~30-50 HU, the
#: portal-venous aorta ~120-200 HU and the arterial aorta > 200 HU
AORTA_UNENHANCED_MAX_HU = 100.0
AORTA_ARTERIAL_MIN_HU = 200.0

#: published thresholds (registry ``steatosis_grade``)
LIVER_HU_MODERATE = 40.0  # Boyce et al., AJR 2010
LS_DIFF_MODERATE = -10.0  # Park et al., Radiology 2006
LS_RATIO_MILD = 1.0  # Kodama et al., AJR 2007
LIVER_HU_MILD = 48.0  # Pickhardt et al., AJR 2012
#: below this spleen attenuation the L/S ratio is not reported (unstable ratio)
MIN_SPLEEN_HU_FOR_RATIO = 10.0


def normalise_phase(phase: str | None) -> str | None:
    """Map a phase label from ingest to one of :data:`PHASES` (None if unknown)."""
    if phase is None:
        return None
    p = phase.strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {"non_contrast": UNENHANCED, "noncontrast": UNENHANCED, "native": UNENHANCED,
               "plain": UNENHANCED, "none": UNENHANCED, "pre_contrast": UNENHANCED,
               "venous": PORTAL_VENOUS, "portal": PORTAL_VENOUS, "pv": PORTAL_VENOUS,
               "portalvenous": PORTAL_VENOUS, "late_arterial": ARTERIAL,
               "early_arterial": ARTERIAL, "equilibrium": DELAYED, "late": DELAYED}
    p = aliases.get(p, p)
    return p if p in PHASES else None


def phase_from_aorta_hu(aorta_hu: float) -> str:
    """Contrast phase from the aortic attenuation (HU)."""
    if aorta_hu < AORTA_UNENHANCED_MAX_HU:
        return UNENHANCED
    if aorta_hu > AORTA_ARTERIAL_MIN_HU:
        return ARTERIAL
    return PORTAL_VENOUS


def attenuation_features(liver: RoiStats | None, spleen: RoiStats | None,
                         phase: str | None) -> dict[str, float | None]:
    """HU features from the liver parenchyma and spleen ROI statistics.

    Parameters
    ----------
    liver, spleen
        Statistics inside the eroded ROIs (HU); None when the organ is absent.
    phase
        Normalised contrast phase; the steatosis grade needs ``"unenhanced"``.

    Returns
    -------
    dict
        ``liver_hu_mean/median/sd``, ``spleen_hu_mean/median/sd``,
        ``liver_spleen_hu_diff``, ``liver_spleen_hu_ratio``, ``steatosis_grade`` (None
        where not computable).
    """
    out: dict[str, float | None] = {
        "liver_hu_mean": liver.mean if liver else None,
        "liver_hu_median": liver.median if liver else None,
        "liver_hu_sd": liver.sd if liver else None,
        "spleen_hu_mean": spleen.mean if spleen else None,
        "spleen_hu_median": spleen.median if spleen else None,
        "spleen_hu_sd": spleen.sd if spleen else None,
        "liver_spleen_hu_diff": None,
        "liver_spleen_hu_ratio": None,
        "steatosis_grade": None,
    }
    if liver and spleen:
        out["liver_spleen_hu_diff"] = liver.mean - spleen.mean
        if spleen.mean >= MIN_SPLEEN_HU_FOR_RATIO:
            out["liver_spleen_hu_ratio"] = liver.mean / spleen.mean
    if liver and phase == UNENHANCED:
        out["steatosis_grade"] = float(steatosis_grade(
            liver.mean, out["liver_spleen_hu_diff"], out["liver_spleen_hu_ratio"]))
    return out


def steatosis_grade(liver_hu: float, ls_diff: float | None, ls_ratio: float | None) -> int:
    """Steatosis grade on unenhanced CT: 0 none, 1 mild, 2 moderate-severe.

    Thresholds: liver < 40 HU (Boyce 2010) or L-S < -10 HU (Park 2006) -> 2;
    L/S < 1.0 (Kodama 2007) or liver < 48 HU (Pickhardt 2012) -> 1; else 0.
    """
    if liver_hu < LIVER_HU_MODERATE or (ls_diff is not None and ls_diff < LS_DIFF_MODERATE):
        return 2
    if (ls_ratio is not None and ls_ratio < LS_RATIO_MILD) or liver_hu < LIVER_HU_MILD:
        return 1
    return 0


def aorta_hu(image: np.ndarray, aorta: np.ndarray) -> float | None:
    """Median attenuation inside an aorta mask (None if empty)."""
    values = image[aorta]
    return float(np.median(values)) if values.size else None
