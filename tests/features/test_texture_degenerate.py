"""HepaTrack's own texture features are withheld, with the reason, where a region cannot
have texture at the extraction settings, instead of being reported as 0 bits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.features import texture
from analytics.features.extract import extract_series_features
from analytics.ingest.volume import MaskSet, Volume
from tests.features.test_ibsi import MASK, PHANTOM, SPACING

ONE_LEVEL_CT = "texture: only one grey level in the liver after 25 HU binning"


def test_ibsi_phantom_at_25_hu_bins_is_withheld_as_one_grey_level() -> None:
    """The phantom's intensities 1..9 all fall in the 25 HU bin [0, 25) HU."""
    vol = Volume(array=PHANTOM.copy(), spacing_mm=SPACING, modality="CT",
                 series_uid="1.2.826.0.1.3680043.8.498.420")
    res = extract_series_features(vol, MaskSet(masks={"liver": MASK.copy()}, source="seg"))
    for name in ("liver_entropy", "liver_glcm_entropy"):
        fv = res.values[name]
        assert fv.value is None
        assert fv.flags["reason"] == ONE_LEVEL_CT
        assert fv.flags["mask_source"] == "seg"


def test_ibsi_phantom_without_binning_keeps_its_ibsi_entropies() -> None:
    """At bin width 1 from 0.5 the levels stay 1..9: IBSI ih_entropy 1.27, joint 2.57."""
    values, reasons = texture.texture_with_reasons(PHANTOM, MASK, "CT", bin_width=1.0,
                                                   lower=0.5)
    assert reasons == {}
    assert round(values["liver_entropy"], 2) == 1.27
    assert round(values["liver_glcm_entropy"], 2) == 2.57


@pytest.mark.parametrize(("modality", "reason"), [
    ("CT", ONE_LEVEL_CT),
    ("MR", "texture: only one grey level in the liver after discretisation into 32 bins"),
], ids=["ct", "mr"])
def test_uniform_region_is_withheld_as_one_grey_level(modality, reason) -> None:
    image = np.full((8, 8, 8), 60.0, dtype=np.float32)
    roi = np.zeros(image.shape, dtype=bool)
    roi[1:7, 1:7, 1:7] = True
    values, reasons = texture.texture_with_reasons(image, roi, modality)
    assert values == {"liver_entropy": None, "liver_glcm_entropy": None}
    assert reasons == {"liver_entropy": reason, "liver_glcm_entropy": reason}


def test_uniform_liver_is_withheld_through_the_extraction() -> None:
    image = np.full((12, 12, 12), 60.0, dtype=np.float32)
    liver = np.zeros(image.shape, dtype=bool)
    liver[2:10, 2:10, 2:10] = True
    vol = Volume(array=image, spacing_mm=(2.0, 2.0, 2.0), modality="CT",
                 series_uid="1.2.826.0.1.3680043.8.498.421", contrast_phase="portal_venous")
    res = extract_series_features(vol, MaskSet(masks={"liver": liver}, source="seg"))
    assert res.values["liver_hu_mean"].value == 60.0  # the intensity itself is still known
    assert res.values["liver_entropy"].value is None
    assert res.values["liver_entropy"].flags["reason"] == ONE_LEVEL_CT


def test_too_few_voxels_are_withheld_with_the_count() -> None:
    image = np.zeros((2, 2, 2), dtype=np.float32)
    image[0] = 30.0  # two levels, but only 8 voxels
    values, reasons = texture.texture_with_reasons(image, np.ones(image.shape, bool), "CT")
    assert values == {"liver_entropy": None, "liver_glcm_entropy": None}
    assert reasons["liver_entropy"] == (
        "texture: 8 voxels in the liver parenchyma, fewer than the 27 needed")


def test_voxels_without_neighbours_withhold_only_the_glcm() -> None:
    """64 voxels two apart in every axis: no pair at distance 1; half at 0, half at 30 HU."""
    image = np.zeros((7, 7, 7), dtype=np.float32)
    roi = np.zeros(image.shape, dtype=bool)
    roi[::2, ::2, ::2] = True
    image[::4] = 30.0  # slices z = 0, 4 (of the ROI's z = 0, 2, 4, 6)
    values, reasons = texture.texture_with_reasons(image, roi, "CT")
    assert values["liver_entropy"] == pytest.approx(1.0)  # 32 + 32 voxels: one bit
    assert values["liver_glcm_entropy"] is None
    assert reasons == {"liver_glcm_entropy":
                       "texture: no two neighbouring voxels in the liver parenchyma"}


def test_two_level_cube_gives_the_hand_computed_entropies() -> None:
    """A 3x3x3 cube, slices z = 0 and 2 at 0 HU (bin 41), z = 1 at 30 HU (bin 42).

    Histogram: 18 and 9 voxels -> H = -(2/3 log2 2/3 + 1/3 log2 1/3).
    GLCM, 13 directions, distance 1, symmetric:
    - in-plane (4 directions): per 3x3 slice 6 + 6 + 4 + 4 = 20 pairs of equal level, so
      40 pairs (41, 41) and 20 pairs (42, 42);
    - through-plane (9 directions (1, dy, dx)): (3 - |dy|)(3 - |dx|) pairs per slice pair,
      7 x 7 = 49, over 2 slice pairs = 98 pairs, all (41, 42).
    Counted both ways: 80, 40, 98, 98 of 316.
    """
    image = np.zeros((3, 3, 3), dtype=np.float32)
    image[1] = 30.0
    values, reasons = texture.texture_with_reasons(image, np.ones(image.shape, bool), "CT")
    assert reasons == {}
    hist = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert values["liver_entropy"] == pytest.approx(hist, rel=1e-12)
    joint = -sum(c / 316 * math.log2(c / 316) for c in (80, 40, 98, 98))
    assert values["liver_glcm_entropy"] == pytest.approx(joint, rel=1e-12)
