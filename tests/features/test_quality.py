"""The organ-mask quality gate on real CT: partial organs keep their attenuation but not
their volume; automatic masks that cannot be right are withheld with the reason.

Real scans (tests/data): TotalSegmentator's unenhanced abdominal CT (``example_ct_sm``,
3 mm voxels) and Siemens portal-venous slab (``example_ct_dicom``), both with reference
label maps, and a thigh CT of the IBSI validation set (no abdomen in the field of view).
"""

from __future__ import annotations

import numpy as np
import pytest

from analytics.config import load_settings
from analytics.features.geometry import orientation
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


#: measured Dice of classical-v3 against TotalSegmentator's label maps (the issue's targets,
#: 0.90 liver and 0.85 spleen, are not met on real CT yet: these floors catch a regression)
REAL_DICE_FLOORS = {("example_ct_sm", "liver"): 0.84, ("example_ct_sm", "spleen"): 0.68,
                    ("example_ct_dicom", "liver"): 0.70, ("example_ct_dicom", "spleen"): 0.72}


@pytest.mark.parametrize(("case", "organ"), sorted(REAL_DICE_FLOORS))
def test_automatic_segmentation_on_real_ct_holds_its_measured_dice(real, case, organ):
    _image, _spacing, ref, auto = real[case]
    mask = auto[organ]
    dice = 2.0 * float((mask & ref[organ]).sum()) / float(mask.sum() + ref[organ].sum())
    assert dice >= REAL_DICE_FLOORS[case, organ], dice
