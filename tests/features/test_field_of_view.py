"""The quality gate withholds the liver's and spleen's numbers where the scan shows no
abdomen, and measures where it does: real CTs through the whole path (ingest as DICOM,
load, ``extract_series_features`` with classical segmentation).

Real scans (tests/data): a head CT (dcm_qa_ct, gantry tilt resolved), a chest-only CT
(a CT angiogram cut above the liver dome, 18 cm field of view), a thigh CT (IBSI
validation set) and the two abdominal CTs with TotalSegmentator's label maps. The chest
file is the honest way to a real chest-only CT here: real slices of a real CT, all of
them above the diaphragm (its README says which).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from analytics.config import load_settings
from analytics.features.extract import FeatureSettings, extract_series_features
from analytics.features.field_of_view import field_of_view, level_findings
from analytics.features.quality import check_pair
from analytics.ingest.loader import load_series
from analytics.ingest.masks import read_mask
from analytics.ingest.pipeline import ingest_sources, ingest_uploads
from analytics.store import open_store
from tests.realdata import (
    CHEST_CT,
    CT_DICOM,
    CT_DICOM_LABELS,
    CT_SM_LABELS,
    HEAD_CT,
    THIGH_CT,
    nifti_ct_as_dicom,
)

REAL_ABDOMEN = {"example_ct_sm": CT_SM_LABELS, "example_ct_dicom": CT_DICOM_LABELS}
#: |automatic - reference| liver and spleen attenuation allowed: on the Siemens slab both
#: differ by 6.3 HU (its automatic Dice is 0.70-0.72); these catch a regression
HU_TOLERANCE = {"example_ct_sm": 5.0, "example_ct_dicom": 8.0}
ORGAN_FEATURES = ("liver_volume_ml", "liver_hu_mean", "spleen_volume_ml", "spleen_hu_mean")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """FeatureResult of every real CT, from its DICOM files through ingest and extraction;
    for the abdominal CTs also with TotalSegmentator's masks delivered (``name/reference``)."""
    settings = load_settings(tmp_path_factory.mktemp("home"))
    settings.ensure_home()
    store = open_store(settings)
    uids = {
        "head": ingest_uploads(nifti_ct_as_dicom(HEAD_CT, patient_id="HEAD-1"), settings,
                               store).series[0]["series_uid"],
        "chest": ingest_uploads(nifti_ct_as_dicom(CHEST_CT, patient_id="CHEST-1"), settings,
                                store).series[0]["series_uid"],
        "thigh": ingest_uploads(nifti_ct_as_dicom(THIGH_CT, patient_id="STS-019"), settings,
                                store).series[0]["series_uid"],
        "example_ct_sm": ingest_uploads(nifti_ct_as_dicom(), settings,
                                        store).series[0]["series_uid"],
        "example_ct_dicom": ingest_sources([CT_DICOM], settings, store,
                                           assign_patient="B1").series[0]["series_uid"],
    }
    out = {}
    for name, uid in uids.items():
        volume, masks = load_series(store, settings, uid)
        settings_ = FeatureSettings(segmentation="classical")
        out[name] = extract_series_features(volume, masks, settings_)
        if name in REAL_ABDOMEN:
            labels = REAL_ABDOMEN[name]
            ref = read_mask(labels.read_bytes(), "nifti", volume,
                            labels={5: "liver", 1: "spleen"}, name=labels.name)
            out[f"{name}/reference"] = extract_series_features(volume, ref, settings_)
    store.dispose()
    return out


def _no_organ_number(res) -> dict[str, str]:
    """Every liver and spleen feature has no value; returns the reason of each."""
    reasons = {}
    for name, fv in res.values.items():
        if name.startswith(("liver", "spleen")):
            assert fv.value is None, (name, fv.value)
            reasons[name] = fv.flags.get("reason") or ""
    return reasons


def test_a_head_ct_shows_no_liver_or_spleen_number_and_says_there_is_no_abdomen(extracted):
    reasons = _no_organ_number(extracted["head"])
    for name in ORGAN_FEATURES:
        assert "no abdomen in the field of view" in reasons[name], (name, reasons[name])
    # the brain was taken for a spleen: the skull around it is what gives it away
    assert "a closed ring of bone encloses it" in reasons["spleen_hu_mean"]
    assert extracted["head"].mask_sources == {"liver": "withheld", "spleen": "withheld"}


def test_a_chest_only_ct_shows_no_liver_or_spleen_number_and_says_it_is_the_chest(extracted):
    reasons = _no_organ_number(extracted["chest"])
    for name in ORGAN_FEATURES:
        assert "no abdomen in the field of view" in reasons[name], (name, reasons[name])
        assert "the chest, above the diaphragm" in reasons[name], (name, reasons[name])


def test_a_thigh_ct_shows_no_liver_or_spleen_number_and_says_the_field_is_too_small(
        extracted):
    reasons = _no_organ_number(extracted["thigh"])
    # 136 x 134 pixels of 0.977 mm: 13.3 x 13.1 cm, 174 cm²
    assert "no abdomen in the field of view: it is 13 x 13 cm (174 cm²)" in reasons[
        "liver_hu_mean"]


@pytest.mark.parametrize("case", sorted(REAL_ABDOMEN))
@pytest.mark.parametrize("organ", ["liver", "spleen"])
def test_both_real_abdominal_cts_are_measured_near_the_reference_masks_attenuation(
        extracted, case, organ):
    res, ref = extracted[case], extracted[f"{case}/reference"]
    assert res.mask_sources[organ] == "automatic" and ref.mask_sources[organ] == "nifti"
    difference = abs(res.value(f"{organ}_hu_mean") - ref.value(f"{organ}_hu_mean"))
    assert difference < HU_TOLERANCE[case], difference
    assert not any("no abdomen" in w for w in res.warnings), res.warnings
    # both scans cut the organs (a 90 mm and a 38 mm slab): volume withheld, said why
    assert res.value(f"{organ}_volume_ml") is None
    assert "continues outside the scan" in res.values[f"{organ}_volume_ml"].flags["reason"]


def _trunk(shape=(12, 120, 160), spacing=(5.0, 2.5, 2.5)) -> np.ndarray:
    """An adult trunk: a 36 x 26 cm soft-tissue ellipse (735 cm²) in air."""
    image = np.full(shape, -1000.0)
    y, x = np.ogrid[:shape[1], :shape[2]]
    cy, cx = (shape[1] - 1) / 2, (shape[2] - 1) / 2
    inside = ((x - cx) * spacing[2] / 180.0) ** 2 + ((y - cy) * spacing[1] / 130.0) ** 2 <= 1
    image[:, inside] = 40.0
    return image


def _organ(shape, z=(2, 10), y=(40, 80), x=(100, 130)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = True
    return mask


def test_aerated_lung_beside_an_organ_is_the_chest_but_bowel_gas_is_not():
    spacing = (5.0, 2.5, 2.5)
    image = _trunk()
    image[:, 35:85, 25:65] = -850.0  # 10 x 12.5 cm on each side, inside the chest wall
    image[:, 35:85, 95:135] = -850.0
    organ = _organ(image.shape, x=(65, 95))
    found = level_findings("spleen", organ, image, field_of_view(image, spacing))
    lung_percent = 100 * 2 * 50 * 40 / float((_trunk()[0] > -400).sum())  # 4000 / 11 762
    assert found == [f"no abdomen in the field of view: aerated lung fills {lung_percent:.0f}% "
                     "of the body's cross-section at the spleen's level: the chest, above the "
                     "diaphragm"]
    assert round(lung_percent) == 34
    image[image == -850.0] = -1000.0  # the same regions as gas: bowel, not lung
    assert level_findings("spleen", organ, image, field_of_view(image, spacing)) == []


def test_an_organ_inside_a_closed_ring_of_bone_is_withheld_but_one_beside_ribs_is_not():
    spacing = (5.0, 2.5, 2.5)
    image = _trunk()
    y, x = np.ogrid[:120, :160]
    ring = np.abs(np.hypot(y - 60, x - 80) - 30) <= 1.5  # a 15 cm skull, 7 mm thick
    image[:, ring] = 900.0
    organ = _organ(image.shape, y=(50, 70), x=(70, 90))
    found = level_findings("spleen", organ, image, field_of_view(image, spacing))
    assert found == ["no abdomen in the field of view: in slices holding 100% of the "
                     "spleen, a closed ring of bone encloses it, as the skull encloses the "
                     "brain"]
    image[:, 55:66, :] = np.where(ring[55:66], 40.0, image[:, 55:66, :])  # gaps: ribs
    assert level_findings("spleen", organ, image, field_of_view(image, spacing)) == []


def test_a_body_smaller_than_an_adult_abdomen_is_a_neck_or_limb():
    spacing = (5.0, 2.5, 2.5)
    image = np.full((12, 120, 160), -1000.0)
    y, x = np.ogrid[:120, :160]
    image[:, np.hypot(y - 60, x - 80) <= 32] = 40.0  # 16 cm across: 201 cm²
    organ = _organ(image.shape, y=(50, 70), x=(70, 90))
    found = level_findings("liver", organ, image, field_of_view(image, spacing))
    area = float((np.hypot(y - 60, x - 80) <= 32).sum()) * 2.5 * 2.5 / 100.0
    assert found == [f"no abdomen in the field of view: the body's cross-section at the "
                     f"liver's level is {area:.0f} cm², smaller than an adult abdomen's "
                     "(over 250 cm²): a head, neck or limb"]
    assert 195 < area < 205  # pi x 8 cm x 8 cm = 201 cm²


@pytest.fixture(scope="module")
def reference():
    """TotalSegmentator's liver and spleen of ``example_ct_sm``, canonical (S, P, L)."""
    labels = np.asanyarray(nib.load(str(CT_SM_LABELS)).dataobj)  # RAS: i to the right
    canon = np.transpose(labels, (2, 1, 0))[:, ::-1, ::-1]
    return canon == 5, canon == 1


def test_the_reference_liver_and_spleen_agree(reference):
    liver, spleen = reference
    assert np.argwhere(liver)[:, 2].mean() < np.argwhere(spleen)[:, 2].mean()  # liver right
    assert check_pair(liver, spleen, liver_trusted=True, spleen_automatic=True,
                      liver_automatic=True) == {}


def test_a_spleen_on_the_right_of_the_liver_withholds_both(reference):
    liver, spleen = reference
    mirrored = spleen[:, :, ::-1]  # the image's columns reversed: now right of the liver
    assert np.argwhere(mirrored)[:, 2].mean() < np.argwhere(liver)[:, 2].mean()
    found = check_pair(liver, mirrored, liver_trusted=True, spleen_automatic=True,
                       liver_automatic=True)
    why = ["the liver's centre lies on the patient's left of the spleen's: the two masks "
           "disagree on the sides"]
    assert found == {"spleen": why, "liver": why}


def test_a_spleen_with_no_liver_at_its_level_or_none_at_all_is_withheld(reference):
    liver, spleen = reference
    low_liver, high_spleen = liver.copy(), spleen.copy()
    low_liver[10:] = False
    high_spleen[:15] = False
    found = check_pair(low_liver, high_spleen, liver_trusted=True, spleen_automatic=True,
                       liver_automatic=True)
    assert found == {"spleen": ["it shares no axial slice with the liver, whereas the spleen "
                                "always lies at the level of the liver"]}
    for absent in (None, liver):  # no liver, or one found where there is no abdomen
        found = check_pair(absent, spleen, liver_trusted=False, spleen_automatic=True,
                           liver_automatic=True)
        assert found == {"spleen": ["no liver was found to confirm it: the spleen lies "
                                    "beside the liver, under the left hemidiaphragm"]}


def test_a_delivered_spleen_is_not_doubted(reference):
    _liver, spleen = reference
    assert check_pair(None, spleen, liver_trusted=False, spleen_automatic=False,
                      liver_automatic=True) == {}
