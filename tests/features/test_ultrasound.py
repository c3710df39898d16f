"""Ultrasound frame measurements against the synthetic generator's truth and hand-computed
values (hepatorenal index, echo texture, depth slope; mm from the region calibration)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from analytics.errors import FeatureError
from analytics.features.ultrasound import (
    Roi,
    UltrasoundFrame,
    frame_of,
    glcm_2d,
    measure_frame,
    roi_mask,
)
from analytics.ingest.deid import write_dataset
from analytics.synthetic.ultrasound import default_truth, render_frame, ultrasound_dataset

DATA = Path(__file__).parents[1] / "data" / "pydicom-us"


@pytest.fixture(scope="module")
def synthetic():
    truth = default_truth()
    frames = [render_frame(truth, np.random.default_rng(k)) for k in range(2)]
    ds = dcmread(io.BytesIO(write_dataset(ultrasound_dataset(frames, truth))))
    return truth, ds


def _rois(truth, *, liver_depth=None):
    kx, kd = truth.kidney_centre_mm
    return [Roi("liver", "box", 20.0, kd if liver_depth is None else liver_depth, 20.0, 12.0),
            Roi("kidney", "circle", kx, kd, 10.0, 0.0)]


def test_region_calibration_gives_millimetres(synthetic):
    truth, ds = synthetic
    frame = frame_of(ds, 1)
    assert frame.dx_mm == pytest.approx(0.2) and frame.dy_mm == pytest.approx(0.2)
    # a 10 mm circle at 0.2 mm pixels holds about pi * 25^2 pixels
    mask = roi_mask(frame, Roi("kidney", "circle", *truth.kidney_centre_mm, 10.0, 0.0))
    assert mask.sum() == pytest.approx(np.pi * 25 ** 2, rel=0.02)
    # a 20 x 12 mm box holds 101 x 61 pixel centres
    assert roi_mask(frame, Roi("liver", "box", 20.0, 30.0, 20.0, 12.0)).sum() == 101 * 61


@pytest.mark.parametrize("k", [0, 1])
def test_hepatorenal_index_matches_truth_within_two_percent(synthetic, k):
    truth, ds = synthetic
    m = measure_frame(frame_of(ds, k), _rois(truth))
    assert m.values["us_hepatorenal_index"] == pytest.approx(truth.hepatorenal_index, rel=0.02)
    assert m.values["us_kidney_grey_mean"] == pytest.approx(truth.kidney_level, rel=0.02)
    assert m.warnings == []


def test_rois_at_different_depths_warn(synthetic):
    truth, ds = synthetic
    kd = truth.kidney_centre_mm[1]
    m = measure_frame(frame_of(ds, 0), _rois(truth, liver_depth=kd + 15.0))
    assert m.values["us_roi_depth_difference_mm"] == pytest.approx(15.0)
    assert m.warnings and "15 mm apart in depth" in m.warnings[0]
    # the index then follows the liver's level at its own depth (attenuation bias)
    expected = truth.liver_level_at(kd + 15.0) / truth.kidney_level
    assert m.values["us_hepatorenal_index"] == pytest.approx(expected, rel=0.02)


def test_liver_texture_matches_the_speckle_truth(synthetic):
    truth, ds = synthetic
    m = measure_frame(frame_of(ds, 0), _rois(truth))
    level = truth.liver_level_at(truth.kidney_centre_mm[1])
    sd = level / np.sqrt(truth.speckle_shape)  # gamma speckle of mean 1
    assert m.values["us_liver_grey_sd"] == pytest.approx(sd, rel=0.05)
    assert m.values["us_liver_grey_skewness"] == pytest.approx(
        2 / np.sqrt(truth.speckle_shape), abs=0.1)
    # independent speckle: neighbours uncorrelated, contrast = 2 var of the bin index
    assert abs(m.values["us_liver_glcm_correlation"]) < 0.05
    assert m.values["us_liver_glcm_contrast"] == pytest.approx(2 * (sd / 8) ** 2, rel=0.1)


def test_depth_slope_matches_the_attenuation_truth(synthetic):
    truth, ds = synthetic
    m = measure_frame(frame_of(ds, 0), [Roi("liver", "box", 20.0, 25.0, 20.0, 40.0)])
    assert m.values["us_liver_depth_slope"] == pytest.approx(truth.liver_slope_per_cm, abs=0.5)
    assert "uncalibrated" in m.notes["us_liver_depth_slope"]
    assert "us_hepatorenal_index" not in m.values and "no kidney ROI" in m.warnings[0]


def test_glcm_of_a_small_image_matches_hand_computed_values():
    levels = np.array([[1, 1, 2], [1, 2, 2]])
    # in-plane pairs: (1,1) x3, (2,2) x3, (1,2) x5 -> symmetric [[6, 5], [5, 6]] / 22
    got = glcm_2d(levels, np.ones_like(levels, dtype=bool))
    assert got["us_liver_glcm_contrast"] == pytest.approx(10 / 22)
    assert got["us_liver_glcm_homogeneity"] == pytest.approx(17 / 22)
    assert got["us_liver_glcm_energy"] == pytest.approx(122 / 484)
    assert got["us_liver_glcm_correlation"] == pytest.approx(2 / 22)


@pytest.mark.parametrize(("roi", "match"), [
    (Roi("liver", "box", -5.0, 20.0, 10.0, 10.0), "outside the image region"),
    (Roi("liver", "box", 20.0, 20.0, 0.5, 0.5), "at least 25 are needed"),
])
def test_rois_outside_the_region_or_too_small_are_refused(synthetic, roi, match):
    with pytest.raises(FeatureError, match=match):
        measure_frame(frame_of(synthetic[1], 0), [roi])


@pytest.mark.parametrize(("kw", "match"), [
    ({"role": "spleen"}, "expected one of liver, kidney"),
    ({"shape": "polygon"}, "expected 'box' or 'circle'"),
    ({"width_mm": 0.0}, "size must be positive"),
])
def test_invalid_rois_name_the_field(kw, match):
    base = {"role": "liver", "shape": "box", "x_mm": 1.0, "depth_mm": 1.0, "width_mm": 5.0,
            "height_mm": 5.0}
    with pytest.raises(FeatureError, match=match):
        Roi(**{**base, **kw})


def test_a_missing_frame_is_named(synthetic):
    with pytest.raises(FeatureError, match="frame 3 does not exist: the image has 2 frame"):
        frame_of(synthetic[1], 2)


def test_real_palette_ultrasound_is_measured_in_mm_from_its_region():
    ds = dcmread(DATA / "OBXXXX1A_rle.dcm")
    frame = frame_of(ds, 0)
    assert isinstance(frame, UltrasoundFrame)
    assert frame.dx_mm == pytest.approx(0.2622878766)
    assert frame.grey.shape == (600, 800) and 0 <= frame.grey.min() <= frame.grey.max() <= 255
    # reference pixel row 36 below the region top is depth 0 (the sector apex)
    assert frame.region.depth_mm(60 + 36) == pytest.approx(0.0)
    m = measure_frame(frame, [Roi("liver", "box", 90.0, 10.0, 10.0, 6.0)])
    assert m.values["us_liver_grey_mean"] > 0


def test_frames_without_a_calibrated_region_cannot_be_measured():
    with pytest.raises(FeatureError, match="no 2-D ultrasound region with physical delta"):
        frame_of(dcmread(DATA / "US1_J2KR.dcm"), 0)
