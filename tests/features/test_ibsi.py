"""IBSI conformance on the IBSI 1 digital phantom.

Phantom and reference values: Image Biomarker Standardisation Initiative reference
manual (Zwanenburg et al., Radiology 2020; arXiv:1612.07003), digital phantom CC BY 4.0.
Configuration: no resampling, no discretisation (levels 1..9 already), distance 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.features import texture
from analytics.features.radiomics import RadiomicsSettings, ibsi_features

# [z][y][x], 5 (x) x 4 (y) x 4 (z) voxels, 2.0 mm isotropic
PHANTOM = np.array([
    [[1, 4, 4, 1, 1], [1, 4, 6, 1, 1], [4, 1, 6, 4, 1], [4, 4, 6, 4, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 6, 1, 1], [1, 1, 3, 1, 1], [4, 4, 6, 1, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 1, 1, 1], [1, 1, 9, 1, 1], [1, 1, 6, 1, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 6, 1, 1]],
], dtype=np.float32)
MASK = np.array([
    [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]],
    [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]],
    [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 1, 1], [1, 1, 1, 1, 1]],
    [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]],
], dtype=bool)
SPACING = (2.0, 2.0, 2.0)

# (MIRP feature name, reference value, tolerance); tolerance 0: equal at 3 significant digits
REFERENCE = [
    ("morph_volume", 556.0, 4.0),
    ("morph_vol_approx", 592.0, 4.0),
    ("morph_area_mesh", 388.0, 3.0),
    ("morph_sphericity", 0.843, 0.005),
    ("morph_diam", 13.1, 0.1),
    ("stat_mean", 2.15, 0),
    ("stat_var", 3.05, 0),
    ("stat_skew", 1.08, 0),
    ("stat_kurt", -0.355, 0),
    ("stat_median", 1.0, 0),
    ("stat_p10", 1.0, 0),
    ("stat_p90", 4.0, 0),
    ("stat_iqr", 3.0, 0),
    ("stat_mad", 1.55, 0),
    ("stat_energy", 567.0, 0),
    ("stat_rms", 2.77, 0),
    ("ih_entropy", 1.27, 0),
    ("ih_uniformity", 0.512, 0),
    ("cm_joint_max_d1_3d_v_mrg", 0.509, 0),
    ("cm_joint_entr_d1_3d_v_mrg", 2.57, 0),
    ("cm_contrast_d1_3d_v_mrg", 5.12, 0),
    ("cm_corr_d1_3d_v_mrg", 0.183, 0),
    ("cm_inv_diff_d1_3d_v_mrg", 0.688, 0),
    ("cm_joint_entr_d1_3d_avg", 2.40, 0),
    ("cm_contrast_d1_3d_avg", 5.32, 0),
    ("rlm_sre_3d_v_mrg", 0.729, 0),
    ("rlm_lre_3d_v_mrg", 2.76, 0),
    ("rlm_rlnu_3d_v_mrg", 328.0, 0),
    ("szm_sze_3d", 0.255, 0),
    ("szm_lze_3d", 550.0, 0),
    ("szm_zs_entr_3d", 2.32, 0),
]


def _sig3(x: float) -> float:
    if x == 0:
        return 0.0
    return round(x, 2 - math.floor(math.log10(abs(x))))


def _matches(value: float, ref: float, tol: float) -> bool:
    if tol == 0:
        return _sig3(value) == _sig3(ref)
    return abs(value - ref) <= tol


@pytest.fixture(scope="module")
def mirp_values() -> dict[str, float]:
    settings = RadiomicsSettings(
        families=("morphology", "statistics", "intensity_histogram", "glcm", "glrlm", "glszm"),
        discretisation="none", new_spacing_mm=None,
        glcm_spatial_method=("3d_average", "3d_volume_merge"),
        glrlm_spatial_method=("3d_volume_merge",), glszm_spatial_method="3d")
    return ibsi_features(PHANTOM, MASK, SPACING, modality="CT", settings=settings)


def test_phantom_roi_has_74_voxels() -> None:
    assert int(MASK.sum()) == 74


@pytest.mark.parametrize(("name", "reference", "tolerance"), REFERENCE,
                         ids=[r[0] for r in REFERENCE])
def test_radiomics_wrapper_matches_ibsi_reference(mirp_values, name, reference,
                                                  tolerance) -> None:
    assert name in mirp_values, f"MIRP did not return {name}"
    assert _matches(mirp_values[name], reference, tolerance), (
        f"{name}: {mirp_values[name]} vs IBSI {reference} (tol {tolerance})")


def test_own_first_order_entropy_matches_ibsi() -> None:
    levels = PHANTOM[MASK].astype(np.int64)
    assert _sig3(texture.histogram_entropy(levels)) == 1.27


def test_own_glcm_matches_ibsi_3d_merged() -> None:
    levels = PHANTOM.astype(np.int64)
    p = texture.glcm_3d_merged(levels, MASK)
    assert _sig3(float(p.max())) == 0.509  # joint maximum
    assert _sig3(texture.glcm_joint_entropy(levels, MASK)) == 2.57
    present = np.unique(levels[MASK]).astype(float)
    i, j = np.meshgrid(present, present, indexing="ij")
    assert _sig3(float((p * (i - j) ** 2).sum())) == 5.12  # contrast
