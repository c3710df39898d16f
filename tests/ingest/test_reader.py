"""SafeParser and ParsedInstance: what a parsed file carries, and how the pool behaves."""

from __future__ import annotations

import copy
import gzip
import hashlib

import nibabel as nib
import numpy as np
import pytest
from pydicom.uid import RLELossless

from analytics.ingest.findings import Rejection
from analytics.ingest.reader import (
    GROUP_FILES,
    HEADER_PREFIX_BYTES,
    ParsedInstance,
    parse_trusted,
)
from tests.ingest.conftest import ct_series, ct_slice, hu_phantom, item, to_bytes


@pytest.fixture(scope="module")
def slice_ds():
    return ct_series(hu_phantom((1, 32, 32)), description="Abd PV 1.0")[0]


def test_parsed_instance_fields(parse_bytes, slice_ds):
    data = to_bytes(slice_ds)
    inst = parse_bytes(data, "ct.dcm")
    assert isinstance(inst, ParsedInstance)
    assert (inst.name, inst.kind, inst.modality) == ("ct.dcm", "image", "CT")
    assert inst.sop_instance_uid == slice_ds.SOPInstanceUID
    assert inst.series_uid == slice_ds.SeriesInstanceUID
    assert inst.study_uid == slice_ds.StudyInstanceUID
    assert inst.patient_id == "PAT001" and inst.sop_class_uid == slice_ds.SOPClassUID
    assert inst.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert inst.frame_of_reference_uid == slice_ds.FrameOfReferenceUID
    assert inst.data == data and inst.sha256 == hashlib.sha256(data).hexdigest()
    assert inst.notes == [] and inst.pixel_problem is None
    # the pixel data starts where the parser says it does
    start = inst.pixel.offset
    assert inst.data[start:start + inst.pixel.length] == slice_ds.PixelData
    assert "PixelData" not in inst.header and inst.header.PatientID == "PAT001"
    assert inst.info["contrast_phase"] == "portal_venous"
    assert inst.geometry[0].pixel_spacing == (0.8, 0.8)


def test_a_header_larger_than_the_first_request_is_read_whole(parse_bytes, slice_ds):
    ds = copy.deepcopy(slice_ds)
    ds.add_new(0x00091010, "OB", b"\x01" * (HEADER_PREFIX_BYTES + 1000))
    inst = parse_bytes(to_bytes(ds), "big-header.dcm")
    assert isinstance(inst, ParsedInstance) and inst.pixel_problem is None


def test_pixel_tag_bytes_inside_an_earlier_value_do_not_confuse_the_prefix(parse_bytes,
                                                                           slice_ds):
    ds = copy.deepcopy(slice_ds)
    ds.add_new(0x00091010, "OB", b"\xe0\x7f\x10\x00" * 8)  # looks like the pixel data tag
    inst = parse_bytes(to_bytes(ds), "decoy.dcm")
    assert isinstance(inst, ParsedInstance)
    assert inst.data[inst.pixel.offset:inst.pixel.offset + 2048] == slice_ds.PixelData


def test_parse_trusted_equals_the_worker_result(parse_bytes, slice_ds):
    data = to_bytes(slice_ds)
    a, b = parse_bytes(data, "x.dcm"), parse_trusted("x.dcm", data)
    assert a.info == b.info and a.pixel == b.pixel


def test_nifti_files_are_recognised(parse_bytes):
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    for data, name in ((img.to_bytes(), "a.nii"), (gzip.compress(img.to_bytes()), "a.nii.gz")):
        inst = parse_bytes(data, name)
        assert isinstance(inst, ParsedInstance) and inst.kind == "nifti"


def test_two_workers_return_every_item_once(parser):
    assert parser.n_workers == 2
    blobs = {f"{n}.dcm": to_bytes(ds) for n, ds in enumerate(ct_series(hu_phantom((9, 8, 8))))}
    blobs["bad.txt"] = b"not dicom"
    results = list(parser.parse_many([item(k, v) for k, v in blobs.items()]))
    names = sorted(r.file if isinstance(r, Rejection) else r.name for r in results)
    assert names == sorted(blobs)


def test_abandoning_a_batch_leaves_the_pool_usable(parser, slice_ds):
    good = to_bytes(slice_ds)
    gen = parser.parse_many([item(f"{n}.dcm", good) for n in range(6)])
    next(gen)
    gen.close()  # replies still owed by the workers must not leak into the next batch
    results = list(parser.parse_many([item("again.dcm", good)]))
    assert [r.name for r in results] == ["again.dcm"]


def test_decoding_while_a_batch_is_in_flight(parser):
    ds = ct_slice(np.arange(64, dtype=np.uint16).reshape(8, 8), (0, 0, 0))
    ds.compress(RLELossless)
    data = to_bytes(ds)
    compressed = parser.parse(item("rle.dcm", data))
    n_files = 3 * GROUP_FILES  # headers go in groups: enough for every worker, twice
    gen = parser.parse_many([item(f"{n}.dcm", data) for n in range(n_files)])
    first = next(gen)  # the next requests are already on every worker
    assert len(parser._busy) == parser.n_workers
    arr = parser.decode(compressed)
    rest = list(gen)
    assert sorted(r.name for r in [first, *rest]) == sorted(f"{n}.dcm" for n in range(n_files))
    np.testing.assert_array_equal(arr[0], np.arange(64).reshape(8, 8))
