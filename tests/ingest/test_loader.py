"""load_series: stored instance files and masks back to a Volume and MaskSet."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from analytics.errors import IngestError, InvalidSeriesError
from analytics.ingest.loader import load_series
from analytics.store.db import open_store
from analytics.store.schema import Instance, Mask, Patient, Series, Study
from tests.ingest.conftest import ct_series, hu_phantom, to_bytes
from tests.ingest.test_masks import seg_bytes

SHAPE = (4, 16, 16)


@pytest.fixture
def stored(settings):
    hu = hu_phantom(SHAPE)
    datasets = ct_series(hu, spacing=(2.0, 0.8, 0.8), origin=(0.0, 0.0, 0.0))
    uid = datasets[0].SeriesInstanceUID
    liver = np.zeros(SHAPE, bool)
    liver[1:3, 4:10, 3:9] = True
    seg = seg_bytes(datasets, {"Liver": liver})
    # NIfTI spleen label 2 at LPS voxel (k=2, j=5, i=12); DICOM-style affine diag(-.8,-.8,2)
    lab = np.zeros((16, 16, 4), np.uint8)
    lab[12, 5, 2] = 2
    nii = gzip.compress(nib.Nifti1Image(lab, np.diag([-0.8, -0.8, 2.0, 1.0])).to_bytes())
    files = {f"dicom/ab/s1/{n}.dcm": to_bytes(ds) for n, ds in enumerate(datasets)}
    files["dicom/ab/s1/masks/m1.dcm"] = seg
    files["dicom/ab/s1/masks/m2.nii.gz"] = nii
    for rel, data in files.items():
        p = settings.home / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    store = open_store(settings)
    with store.session() as s:
        pat = Patient(pseudonym="P1")
        s.add(pat)
        s.flush()
        st = Study(study_uid="1.2", patient_id=pat.id)
        s.add(st)
        s.flush()
        ser = Series(series_uid=uid, source_key="k", study_id=st.id, modality="CT",
                     storage_dir="dicom/ab/s1")
        s.add(ser)
        s.flush()
        for n, ds in enumerate(datasets):
            s.add(Instance(sop_instance_uid=ds.SOPInstanceUID, source_key=f"k{n}",
                           content_sha256="x", series_id=ser.id, sop_class_uid=ds.SOPClassUID,
                           path=f"dicom/ab/s1/{n}.dcm", size_bytes=1))
        s.add(Mask(series_id=ser.id, format="seg", path="dicom/ab/s1/masks/m1.dcm",
                   content_sha256="m1", segments={"liver": {"source_name": "Liver"}}))
        s.add(Mask(series_id=ser.id, format="nifti", path="dicom/ab/s1/masks/m2.nii.gz",
                   content_sha256="m2", segments={"spleen": {"label": 2}}))
        s.add(Mask(series_id=ser.id, format="auto", path=None, content_sha256="m3",
                   automatic=True, method="classical"))
    yield store, uid, hu, liver
    store.dispose()


def test_load_series_returns_volume_and_delivered_masks(stored, settings):
    store, uid, hu, liver = stored
    vol, masks = load_series(store, settings, uid)
    np.testing.assert_array_equal(vol.array, hu.astype(np.float32))
    assert vol.series_uid == uid and vol.spacing_mm == pytest.approx((2.0, 0.8, 0.8))
    assert sorted(masks.masks) == ["liver", "spleen"]
    np.testing.assert_array_equal(masks.masks["liver"], liver)
    spleen = np.zeros(SHAPE, bool)
    spleen[2, 5, 12] = True
    np.testing.assert_array_equal(masks.masks["spleen"], spleen)
    assert masks.automatic is False and "mask_errors" not in vol.meta


def test_unreadable_mask_is_reported_and_the_volume_still_loads(stored, settings):
    store, uid, _, _ = stored
    (settings.home / "dicom/ab/s1/masks/m1.dcm").write_bytes(b"garbage")
    vol, masks = load_series(store, settings, uid)
    assert sorted(masks.masks) == ["spleen"]
    assert vol.meta["mask_errors"][0].startswith("dicom/ab/s1/masks/m1.dcm: ")


def test_incomplete_series_is_not_loaded(stored, settings):
    store, uid, _, _ = stored
    with store.session() as s:
        ser = s.query(Series).filter_by(series_uid=uid).one()
        ser.status, ser.status_reason = "incomplete", "3 of 4 instances retrieved"
    with pytest.raises(InvalidSeriesError, match=r"is incomplete: 3 of 4 instances retrieved$"):
        load_series(store, settings, uid)


@pytest.mark.parametrize(("path", "match"), [
    ("../outside.dcm", r"stored path '\.\./outside\.dcm' is outside HEPATRACK_HOME"),
    ("/etc/passwd", r"stored path '/etc/passwd' is outside HEPATRACK_HOME"),
    ("dicom/ab/s1/missing.dcm", r"stored file 'dicom/ab/s1/missing\.dcm' is missing"),
])
def test_stored_paths_must_stay_inside_home(stored, settings, path, match):
    store, uid, _, _ = stored
    with store.session() as s:
        inst = s.query(Instance).order_by(Instance.id).first()
        inst.path = path
    with pytest.raises(IngestError, match=match):
        load_series(store, settings, uid)


def test_unknown_series(stored, settings):
    store, _, _, _ = stored
    with pytest.raises(IngestError, match=r"^series 9\.9 is not in the store$"):
        load_series(store, settings, "9.9")


def test_nifti_label_values_come_from_the_mask_row_one_or_several_per_structure():
    from analytics.ingest.loader import _labels

    segments = {"liver": {"label": 1, "labels": [1, 2], "source_name": "liver"},
                "spleen": {"label": 3, "source_name": "Milz"}, "note": "not a segment"}
    assert _labels(segments) == {1: "liver", 2: "liver", 3: "spleen"}
    assert _labels({}) is None and _labels(None) is None
