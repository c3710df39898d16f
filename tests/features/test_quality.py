"""The organ-mask quality gate on real CT: partial organs keep their attenuation but not
their volume; automatic masks that cannot be right are withheld with the reason.

Real scans (tests/data): TotalSegmentator's unenhanced abdominal CT (``example_ct_sm``,
3 mm voxels) and Siemens portal-venous slab (``example_ct_dicom``), both with reference
label maps, and a thigh CT of the IBSI validation set (no abdomen in the field of view).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from analytics.config import load_settings
from analytics.features.abdomen import GRID_MM, body_wall, paraspinal_zone
from analytics.features.geometry import orientation
from analytics.features.landmarks import body_mask, to_grid
from analytics.features.quality import check_organ
from analytics.features.segmentation import segment_canonical
from analytics.ingest.loader import load_series
from analytics.ingest.masks import read_mask
from analytics.ingest.pipeline import ingest_sources, ingest_uploads
from analytics.store import open_store
from tests.realdata import (
    CT_DICOM,
    CT_DICOM_LABELS,
    CT_SM_LABELS,
    DATA,
    nifti_ct_as_dicom,
)

LABELS = {5: "liver", 1: "spleen"}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Canonical image, spacing, reference masks and automatic masks of each real CT."""
    settings = load_settings(tmp_path_factory.mktemp("home"))
    settings.ensure_home()
    store = open_store(settings)
    uids = {
        "example_ct_sm": (ingest_uploads(nifti_ct_as_dicom(), settings, store)
                          .series[0]["series_uid"], CT_SM_LABELS),
        "example_ct_dicom": (ingest_sources([CT_DICOM], settings, store, assign_patient="B1")
                             .series[0]["series_uid"], CT_DICOM_LABELS),
        "thigh": (ingest_uploads(nifti_ct_as_dicom(
            DATA / "ibsi-validation-sts019" / "CT_image.nii.gz", patient_id="STS-019"),
            settings, store).series[0]["series_uid"], None),
    }
    out = {}
    for name, (uid, labels) in uids.items():
        volume, _ = load_series(store, settings, uid)
        o = orientation(volume)
        image = np.ascontiguousarray(o.to_canonical(volume.array))
        ref = None
        if labels is not None:
            ref = read_mask(labels.read_bytes(), "nifti", volume, labels=LABELS,
                            name=labels.name)
            ref = {k: o.to_canonical(v) for k, v in ref.masks.items()}
        auto = segment_canonical(image, o.spacing_mm, method="classical").masks
        out[name] = (image, o.spacing_mm, ref, auto)
    store.dispose()
    return out


@pytest.mark.parametrize("case", ["example_ct_sm", "example_ct_dicom"])
@pytest.mark.parametrize("organ", ["liver", "spleen"])
def test_a_delivered_mask_of_an_organ_cut_by_the_scan_keeps_attenuation_not_volume(
        real, case, organ):
    image, spacing, ref, _auto = real[case]
    q = check_organ(organ, ref[organ], image, spacing, automatic=False)
    assert q.withhold_all == []
    assert q.withhold_volume and "continues outside the scan" in q.withhold_volume[0]
    assert q.reason(volume=True).startswith(f"{organ} volume not measurable: the {organ} "
                                            "reaches the scan's")
    assert q.reason(volume=False) is None


def test_automatic_masks_of_the_real_unenhanced_ct_give_attenuation_within_3_hu(real):
    image, spacing, ref, auto = real["example_ct_sm"]
    for organ in ("liver", "spleen"):
        q = check_organ(organ, auto[organ], image, spacing, automatic=True)
        assert q.withhold_all == [], q.withhold_all
        assert q.withhold_volume, "the organ continues above the scan: volume withheld"
        assert abs(image[auto[organ]].mean() - image[ref[organ]].mean()) < 3.0


def test_a_cropped_slab_withholds_every_automatic_volume(real):
    image, spacing, _ref, auto = real["example_ct_sm"]
    slab = slice(10, 18)
    for organ in ("liver", "spleen"):
        q = check_organ(organ, auto[organ][slab], image[slab], spacing, automatic=True)
        assert q.reason(volume=True) is not None
        assert "lowest slice" in q.reason(volume=True) and "highest slice" in q.reason(
            volume=True)


def test_no_liver_or_spleen_is_measured_on_a_thigh_ct(real):
    image, spacing, _ref, auto = real["thigh"]
    for organ in ("liver", "spleen"):
        mask = auto.get(organ)
        if mask is not None and mask.any():  # found something: the gate must withhold it
            q = check_organ(organ, mask, image, spacing, automatic=True)
            assert q.withhold_all, (organ, int(mask.sum()))


def _phantom(shape=(40, 64, 64)):
    image = np.full(shape, -1000.0)
    image[:, 8:56, 8:56] = 40.0  # body
    return image


def test_an_implausible_automatic_volume_is_withheld_with_its_size():
    image = _phantom()
    mask = np.zeros(image.shape, dtype=bool)
    mask[5:35, 10:54, 10:30] = True  # right half (low column index = patient's right)
    q = check_organ("liver", mask, image, (10.0, 10.0, 10.0), automatic=True)
    assert any(r.startswith("volume 26.40 L outside 0.6-4 L") for r in q.withhold_all)
    assert q.reason(volume=False).startswith(
        "automatic liver segmentation failed its quality check: volume 26.40 L")


def test_a_spleen_on_the_patients_right_with_bone_inside_is_withheld():
    image = _phantom()
    mask = np.zeros(image.shape, dtype=bool)
    mask[10:30, 20:40, 12:30] = True
    image[10:30, 20:40, 12:16] = 700.0  # bone
    q = check_organ("spleen", mask, image, (2.0, 2.0, 2.0), automatic=True)
    joined = " | ".join(q.withhold_all)
    assert "above 250 HU (fat, air or bone" in joined
    assert "its centre lies on the patient's right, expected the left" in joined


def test_a_mask_in_pieces_is_withheld_but_a_whole_one_passes():
    image = _phantom()
    whole = np.zeros(image.shape, dtype=bool)
    whole[10:30, 20:40, 12:30] = True
    assert check_organ("liver", whole, image, (5.0, 5.0, 5.0), automatic=True).ok
    pieces = whole.copy()
    pieces[20, :, :] = False
    pieces[10:20] = False
    pieces[31:36, 20:40, 12:30] = True
    q = check_organ("liver", pieces, image, (5.0, 5.0, 5.0), automatic=True)
    assert any("pieces" in r for r in q.withhold_all), q.withhold_all


#: measured Dice of classical-v4 against TotalSegmentator's label maps: liver 0.895 and
#: 0.908, spleen 0.939 and 0.913 (classical-v3: 0.845 / 0.703, 0.691 / 0.734); the issue's
#: targets are 0.90 (liver) and 0.85 (spleen), which the unenhanced liver just misses
REAL_DICE_FLOORS = {("example_ct_sm", "liver"): 0.89, ("example_ct_sm", "spleen"): 0.93,
                    ("example_ct_dicom", "liver"): 0.90, ("example_ct_dicom", "spleen"): 0.90}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))


@pytest.mark.parametrize(("case", "organ"), sorted(REAL_DICE_FLOORS))
def test_automatic_segmentation_on_real_ct_holds_its_measured_dice(real, case, organ):
    _image, _spacing, ref, auto = real[case]
    dice = _dice(auto[organ], ref[organ])
    assert dice >= REAL_DICE_FLOORS[case, organ], dice


def _thick_slices(image, ref, spacing, thickness_mm):
    """The scan resampled to slices of ``thickness_mm``: each new slice the mean of the old
    ones it covers (a thick reconstruction), reference masks by the nearest old slice."""
    step = thickness_mm / spacing[0]
    centres = np.arange(0.5 * step - 0.5, image.shape[0] - 0.5, step)
    lo = np.floor(centres - 0.5 * step + 0.5).astype(int)
    hi = np.floor(centres + 0.5 * step + 0.5).astype(int)
    thick = np.stack([image[max(0, a):max(a + 1, b)].mean(axis=0) for a, b in zip(lo, hi,
                                                                                  strict=True)])
    near = np.clip(np.rint(centres).astype(int), 0, image.shape[0] - 1)
    return (thick.astype(np.float32), {k: v[near] for k, v in ref.items()},
            (thickness_mm, spacing[1], spacing[2]))


#: slabs of each real CT (slice ranges) and its 5 mm resampling: classical-v4 measured
#: liver 0.80-0.91 (0.80: the lower 45 mm of the unenhanced liver, 287 mL), spleen
#: 0.91-0.95; classical-v3 found no liver in five of them and no spleen in one
VARIANTS = [("example_ct_sm", (0, 15)), ("example_ct_sm", (8, 23)), ("example_ct_sm", (15, 30)),
            ("example_ct_sm", 5.0), ("example_ct_dicom", (0, 10)),
            ("example_ct_dicom", (10, 20)), ("example_ct_dicom", 5.0)]


@pytest.mark.parametrize(("case", "variant"), VARIANTS)
def test_a_slab_cut_at_any_level_or_in_5_mm_slices_keeps_its_dice(real, case, variant):
    image, spacing, ref, _auto = real[case]
    if isinstance(variant, tuple):
        cut = slice(*variant)
        image, ref = image[cut], {k: v[cut] for k, v in ref.items()}
    else:
        image, ref, spacing = _thick_slices(image, ref, spacing, variant)
    auto = segment_canonical(np.ascontiguousarray(image), spacing, method="classical").masks
    assert _dice(auto["liver"], ref["liver"]) >= 0.78
    assert _dice(auto["spleen"], ref["spleen"]) >= 0.88


@pytest.mark.parametrize("case", ["example_ct_sm", "example_ct_dicom"])
def test_the_excluded_wall_and_paraspinal_zone_hold_almost_none_of_the_organs(real, case):
    """On real CT the subcutaneous fat reaches the visceral fat and the lung through gaps of
    one voxel; the excluded wall must still stay outside the abdominal cavity, and the
    paraspinal zone behind the spine (classical-v3 excluded 14-37 % of these organs)."""
    image, spacing, ref, _auto = real[case]
    coarse = to_grid(image.astype(np.float32), spacing, GRID_MM)
    smooth = ndi.median_filter(coarse, size=3)
    body = body_mask(coarse)
    excluded = body_wall(smooth, body) | paraspinal_zone(coarse, smooth, body)
    for organ in ("liver", "spleen"):
        truth = to_grid(ref[organ].astype(np.float32), spacing, GRID_MM) > 0.5
        assert (truth & excluded).sum() < 0.05 * truth.sum(), organ
