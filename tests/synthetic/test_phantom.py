"""Synthetic volumes against their own ground truth (no DICOM involved)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from analytics.errors import ConfigError
from analytics.synthetic import LABELS, synthesize_visit_volume
from analytics.synthetic.anatomy import draw_anatomy
from analytics.synthetic.disease import imaging_phenotype


@pytest.fixture(scope="module")
def anatomy():
    return draw_anatomy(np.random.default_rng(2024), sex="F", n_cysts=0,
                        solid_lesion_stage=99.0)


@pytest.fixture(scope="module")
def stage_series(anatomy):
    """The same patient rendered at stages 0-4 (unenhanced, default grid)."""
    return [synthesize_visit_volume(s, np.random.default_rng(int(s * 10)), anatomy=anatomy,
                                    lesions=0) for s in (0.0, 1.0, 2.0, 3.0, 4.0)]


@pytest.fixture(scope="module")
def lesion_volume():
    return synthesize_visit_volume(1.0, np.random.default_rng(5), lesions=2,
                                   contrast_phase="portal_venous")


def _eroded(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    return ndimage.binary_erosion(mask, structure=np.ones((3, 3, 3)), iterations=iterations)


def test_volumes_are_label_counts_times_voxel_volume(lesion_volume):
    v = lesion_volume
    voxel_ml = float(np.prod(v.spacing_mm)) / 1000.0
    liver = np.isin(v.labels, [LABELS["liver"], LABELS["liver_vessels"], LABELS["lesion"]])
    assert v.truth["liver_volume_ml"] == pytest.approx(liver.sum() * voxel_ml, rel=1e-12)
    assert v.truth["spleen_volume_ml"] == pytest.approx(
        (v.labels == LABELS["spleen"]).sum() * voxel_ml, rel=1e-12)
    assert v.truth["lesion_volume_ml"] == pytest.approx(
        (v.labels == LABELS["lesion"]).sum() * voxel_ml, rel=1e-12)
    assert v.truth["liver_vessel_fraction"] == pytest.approx(
        (v.labels == LABELS["liver_vessels"]).sum() / liver.sum(), rel=1e-12)
    masks = v.masks()
    assert np.array_equal(masks["liver"], liver)
    # vessels and lesions are subsets of the whole liver, spleen disjoint from it
    assert not (masks["liver_vessels"] & ~masks["liver"]).any()
    assert not (masks["lesion"] & ~masks["liver"]).any()
    assert not (masks["spleen"] & masks["liver"]).any()


def test_plausible_adult_organ_sizes(stage_series):
    healthy = stage_series[0].truth
    assert 1000.0 < healthy["liver_volume_ml"] < 2200.0
    assert 80.0 < healthy["spleen_volume_ml"] < 350.0
    assert 0.02 < healthy["liver_vessel_fraction"] < 0.15


@pytest.mark.parametrize("phase", ["unenhanced", "portal_venous"])
def test_parenchymal_hu_matches_truth_within_noise(anatomy, phase):
    v = synthesize_visit_volume(1.5, np.random.default_rng(9), anatomy=anatomy, lesions=0,
                                contrast_phase=phase)
    for organ, key in (("liver", "liver_hu_mean"), ("spleen", "spleen_hu_mean")):
        core = _eroded(v.labels == LABELS[organ])
        values = v.hu[core].astype(float)
        # correlated noise: allow 4 standard errors with an effective sample of n / 4
        tol = 4 * v.truth["noise_sd_hu"] / np.sqrt(core.sum() / 4)
        assert values.mean() == pytest.approx(v.truth[key], abs=max(tol, 0.5))
    core = _eroded(v.labels == LABELS["liver"], 2)
    assert v.hu[core].std() == pytest.approx(v.truth["noise_sd_hu"], rel=0.15)
    assert v.truth["liver_spleen_hu_diff"] == pytest.approx(
        v.truth["liver_hu_mean"] - v.truth["spleen_hu_mean"])


def test_contrast_phase_enhances_vessels_parenchyma_and_aorta(anatomy):
    pre = synthesize_visit_volume(1.0, np.random.default_rng(1), anatomy=anatomy, lesions=0)
    post = synthesize_visit_volume(1.0, np.random.default_rng(1), anatomy=anatomy, lesions=0,
                                   contrast_phase="portal_venous")
    phen = imaging_phenotype(1.0)
    assert post.truth["liver_hu_mean"] - pre.truth["liver_hu_mean"] == pytest.approx(
        phen.liver_enhancement_hu)
    aorta_pre = pre.hu[_eroded(pre.labels == LABELS["aorta"])].mean()
    aorta_post = post.hu[_eroded(post.labels == LABELS["aorta"])].mean()
    assert 30 < aorta_pre < 55 and aorta_post > 140
    vessels = post.labels == LABELS["liver_vessels"]
    assert post.hu[vessels].mean() > post.truth["liver_hu_mean"] + 30


def test_liver_on_patient_right_spleen_on_left(stage_series):
    v = stage_series[0]
    liver_col = np.argwhere(v.masks()["liver"])[:, 2].mean()
    spleen_col = np.argwhere(v.masks()["spleen"])[:, 2].mean()
    # LPS +x is the patient's left: the liver has the lower column index
    assert liver_col < v.hu.shape[2] / 2 < spleen_col
    liver_x = v.origin_mm[0] + liver_col * v.spacing_mm[2]
    assert liver_x < 0


def test_disease_stage_drives_imaging_monotonically(stage_series):
    t = [v.truth for v in stage_series]
    liver_hu = [x["liver_hu_mean"] for x in t]
    spleen_ml = [x["spleen_volume_ml"] for x in t]
    nodularity = [x["liver_surface_nodularity"] for x in t]
    vessel_fraction = [x["liver_vessel_fraction"] for x in t]
    assert all(a >= b for a, b in itertools.pairwise(liver_hu))
    assert liver_hu[0] - liver_hu[-1] > 15
    assert all(a < b for a, b in itertools.pairwise(spleen_ml[1:]))
    assert spleen_ml[-1] > 1.8 * spleen_ml[0]
    assert all(a <= b for a, b in itertools.pairwise(nodularity))
    assert nodularity[-1] >= 1.5 > nodularity[0]
    assert vessel_fraction[-1] < vessel_fraction[0]
    texture = [x["liver_texture_rms_hu"] for x in t]
    assert all(a <= b + 1e-6 for a, b in itertools.pairwise(texture)) and texture[-1] > 4.0
    # heterogeneity shows in the measured parenchymal SD on top of the image noise
    sd = [v.hu[_eroded(v.labels == LABELS["liver"], 2)].std() for v in stage_series]
    assert sd[-1] == pytest.approx(np.hypot(t[-1]["noise_sd_hu"], texture[-1]), rel=0.15)
    assert sd[-1] > sd[0] + 1.0
    # hypertrophy with steatosis, atrophy in cirrhosis
    assert t[1]["liver_volume_ml"] > t[0]["liver_volume_ml"] > t[-1]["liver_volume_ml"]


def test_nodularity_roughens_the_liver_surface(anatomy):
    def boundary_voxels(nod: float) -> tuple[int, float]:
        v = synthesize_visit_volume(3.0, np.random.default_rng(0), anatomy=anatomy, lesions=0,
                                    nodularity_mm=nod, noise_sd_hu=0.0,
                                    shape=(30, 96, 96), spacing_mm=(2.0, 2.5, 2.5),
                                    body_offset_mm=(-55.0, -10.0, 40.0))
        liver = v.masks()["liver"]
        return int((liver & ~_eroded(liver)).sum()), v.truth["liver_volume_ml"]

    smooth, vol_smooth = boundary_voxels(0.0)
    rough, vol_rough = boundary_voxels(2.5)
    assert rough > 1.1 * smooth
    assert vol_rough == pytest.approx(vol_smooth, rel=0.08)


def test_lesions_are_inside_the_liver_and_counted(lesion_volume):
    v = lesion_volume
    assert v.truth["lesion_count"] == 2
    _, n = ndimage.label(v.labels == LABELS["lesion"])
    assert n == 2
    assert v.truth["lesion_volume_ml"] > 0


def test_anisotropic_grid_keeps_volumes(anatomy):
    a = synthesize_visit_volume(2.0, np.random.default_rng(3), anatomy=anatomy, lesions=0)
    b = synthesize_visit_volume(2.0, np.random.default_rng(3), anatomy=anatomy, lesions=0,
                                shape=(55, 116, 142), spacing_mm=(4.0, 3.3, 2.7))
    assert b.hu.shape == (55, 116, 142)
    # the same continuous anatomy sampled on another grid: volumes agree to a few percent
    assert b.truth["liver_volume_ml"] == pytest.approx(a.truth["liver_volume_ml"], rel=0.04)
    assert b.truth["spleen_volume_ml"] == pytest.approx(a.truth["spleen_volume_ml"], rel=0.08)


def test_same_seed_same_volume_different_seed_differs(anatomy):
    a = synthesize_visit_volume(2.0, np.random.default_rng(1), anatomy=anatomy)
    b = synthesize_visit_volume(2.0, np.random.default_rng(1), anatomy=anatomy)
    c = synthesize_visit_volume(2.0, np.random.default_rng(2), anatomy=anatomy)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.hu, c.hu)


def test_to_volume_and_maskset_hand_over_types(lesion_volume):
    vol = lesion_volume.to_volume()
    ms = lesion_volume.to_maskset()
    assert vol.array.dtype == np.float32 and vol.shape == lesion_volume.hu.shape
    assert vol.voxel_volume_ml == pytest.approx(0.045)
    assert vol.contrast_phase == "portal_venous"
    assert set(ms.masks) == {"liver", "spleen", "liver_vessels", "lesion"}
    assert ms.get("liver").sum() * vol.voxel_volume_ml == pytest.approx(
        lesion_volume.truth["liver_volume_ml"])


@pytest.mark.parametrize(("kwargs", "match"), [
    pytest.param({"shape": (0, 64, 64)}, "shape", id="empty-shape"),
    pytest.param({"spacing_mm": (5.0, -3.0, 3.0)}, "spacing_mm", id="negative-spacing"),
    pytest.param({"contrast_phase": "arterial"}, "contrast_phase", id="unknown-phase"),
    pytest.param({"noise_sd_hu": -1.0}, "noise_sd_hu", id="negative-noise"),
])
def test_invalid_arguments_are_rejected(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        synthesize_visit_volume(1.0, np.random.default_rng(0), **kwargs)
