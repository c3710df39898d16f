"""Automatic masks kept as DICOM SEG: what was measured is what is stored, voxel for voxel.

The SEG written after feature extraction is read back with HepaTrack's own SEG reader
(frames placed by their Plane Position, :mod:`analytics.ingest.seg_frames`) and compared
with the automatic masks extraction measured on, on the real unenhanced CT and on a
synthetic feet-first series stored in descending slice order.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from sqlalchemy import delete, select

from analytics.features import batch
from analytics.features.automask import mask_digest, write_auto_seg
from analytics.features.extract import EXTRACTOR_VERSION, extract_series_features
from analytics.features.segmentation import CLASSICAL_METHOD
from analytics.ingest.loader import load_series, stored_file
from analytics.ingest.masks import read_mask
from analytics.store import open_store
from analytics.store.schema import FeatureRun, Instance, Mask, Series
from tests.features.automask_data import measured_home


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    settings, uids = measured_home(tmp_path_factory.mktemp("automask"))
    store = open_store(settings)
    yield settings, store, uids
    store.dispose()


def _mask_rows(store, uid: str) -> list[Mask]:
    with store.session() as s:
        sid = s.scalar(select(Series.id).where(Series.series_uid == uid))
        return list(s.scalars(select(Mask).where(Mask.series_id == sid).order_by(Mask.id)))


@pytest.mark.parametrize("case", ["real", "synthetic"])
def test_the_stored_seg_read_back_equals_the_measured_automatic_masks_voxel_for_voxel(
        measured, case):
    settings, store, uids = measured
    (row,) = _mask_rows(store, uids[case])
    assert (row.format, row.automatic, row.method) == (
        "seg", True, f"{CLASSICAL_METHOD} (HepaTrack extractor {EXTRACTOR_VERSION})")
    volume, delivered = load_series(store, settings, uids[case])
    assert delivered is None  # the automatic SEG is never taken for a delivered mask
    measured_masks = extract_series_features(volume, None).auto_masks.masks
    back = read_mask(stored_file(settings, row.path), "seg", volume).masks
    assert sorted(back) == sorted(measured_masks) == ["liver", "spleen"]
    for organ, mask in measured_masks.items():
        assert mask.any()
        np.testing.assert_array_equal(back[organ], mask, err_msg=organ)
        assert row.segments[organ]["voxels"] == int(mask.sum())


def test_the_seg_names_organs_by_snomed_code_and_the_algorithm_and_references_the_ct(
        measured):
    settings, store, uids = measured
    (row,) = _mask_rows(store, uids["real"])
    ds = pydicom.dcmread(stored_file(settings, row.path))
    seg = hd.seg.Segmentation.from_dataset(ds)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.SegmentationType == "BINARY"
    codes = {str(d.SegmentLabel): d.SegmentedPropertyTypeCodeSequence[0].CodeValue
             for d in ds.SegmentSequence}
    assert codes == {"Liver": "10200004", "Spleen": "78961009"}
    for d in ds.SegmentSequence:
        assert d.SegmentAlgorithmType == "AUTOMATIC"
        algo = d.SegmentationAlgorithmIdentificationSequence[0]
        assert (algo.AlgorithmName, algo.AlgorithmVersion) == (f"HepaTrack {CLASSICAL_METHOD}",
                                                                EXTRACTOR_VERSION)
    with store.session() as s:
        sid = s.scalar(select(Series.id).where(Series.series_uid == uids["real"]))
        stored = set(s.scalars(select(Instance.sop_instance_uid)
                               .where(Instance.series_id == sid)))
    refs = ds.ReferencedSeriesSequence[0]
    assert refs.SeriesInstanceUID == uids["real"]
    assert {str(r.ReferencedSOPInstanceUID) for r in refs.ReferencedInstanceSequence} <= stored
    assert seg.SOPInstanceUID == row.sop_instance_uid
    assert str(ds.PatientID).startswith("HT-")  # the stored, pseudonymised identity


def test_running_the_same_extraction_again_adds_no_mask_and_a_new_version_adds_one(
        measured, monkeypatch):
    settings, store, uids = measured
    uid = uids["synthetic"]
    (first,) = _mask_rows(store, uid)
    with store.session() as s:
        s.execute(delete(FeatureRun))
    batch.run_batch(store, settings, [uid])
    (again,) = _mask_rows(store, uid)
    assert (again.id, again.path, again.content_sha256) == (first.id, first.path,
                                                             first.content_sha256)
    monkeypatch.setattr(batch, "EXTRACTOR_VERSION", "99.0.0")
    batch.run_batch(store, settings, [uid])
    rows = _mask_rows(store, uid)
    assert len(rows) == 2 and rows[1].path != rows[0].path
    with store.session() as s:
        run = s.scalar(select(FeatureRun).where(FeatureRun.extractor_version == "99.0.0"))
        assert run.settings["auto_mask_id"] == rows[1].id
    ds = pydicom.dcmread(stored_file(settings, rows[1].path))
    assert ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0] \
        .AlgorithmVersion == "99.0.0"


def test_the_digest_changes_with_one_voxel_the_method_or_the_version():
    m = np.zeros((3, 4, 4), bool)
    m[1, 1, 1] = True
    base = mask_digest({"liver": m}, "classical-v3", "1.3.0")
    other = m.copy()
    other[2, 2, 2] = True
    assert len({base, mask_digest({"liver": other}, "classical-v3", "1.3.0"),
                mask_digest({"liver": m}, "totalsegmentator", "1.3.0"),
                mask_digest({"liver": m}, "classical-v3", "1.4.0")}) == 4
    assert mask_digest({"liver": m.copy()}, "classical-v3", "1.3.0") == base


@pytest.mark.parametrize(
    ("masks", "n_sources", "match"),
    [pytest.param({"kidney": np.ones((2, 4, 4), bool)}, 2, "no SNOMED code for kidney",
                  id="unknown-organ"),
     pytest.param({"liver": np.zeros((2, 4, 4), bool)}, 2, "every mask is empty",
                  id="empty"),
     pytest.param({"liver": np.ones((3, 4, 4), bool)}, 2,
                  "2 single-frame source instances expected 3 slices", id="slice-count")],
)
def test_a_seg_that_cannot_be_right_is_refused_with_the_reason(masks, n_sources, match):
    from analytics.errors import FeatureError

    sources = []
    for _ in range(n_sources):
        ds = pydicom.Dataset()
        ds.Rows, ds.Columns = 4, 4
        sources.append(ds)
    with pytest.raises(FeatureError, match=match):
        write_auto_seg(masks, sources, method="classical-v3", version="1.3.0", digest="0" * 64)
