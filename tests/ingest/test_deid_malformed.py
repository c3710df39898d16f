"""De-identification of unknown tags, deep nesting and too many elements: unknown public
tags removed, limits refused with a typed error naming the file (never a recursion error),
and a copy that cannot be written refused the same way."""

from __future__ import annotations

import struct

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from analytics.errors import InvalidDicomError, LimitExceededError
from analytics.ingest.deid import MAX_DEID_DEPTH, Deidentifier
from tests.ingest.deid_samples import HOSTILE_NAME, SECRET, sent_as_bytes
from tests.ingest.dicom_samples import Study, ct_series, encode


@pytest.mark.parametrize("vr", ["LO", "UN", "SH"])
def test_an_unknown_public_tag_is_removed_not_a_crash(vr):
    ds = ct_series(Study(), 1)[0]
    ds.add_new(0x00089999, vr, b"SOME TEXT " if vr == "UN" else "SOME TEXT")
    ds.AnatomicRegionSequence[0].add_new(0x00089999, vr,
                                         b"MORE TEXT " if vr == "UN" else "MORE TEXT")
    out, _, clean = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    assert 0x00089999 not in clean and 0x00089999 not in clean.AnatomicRegionSequence[0]
    assert b"SOME TEXT" not in out and b"MORE TEXT" not in out
    assert clean.ImagePositionPatient == ds.ImagePositionPatient


def test_an_unknown_public_tag_in_an_implicit_vr_file_is_removed():
    from pydicom.uid import ImplicitVRLittleEndian

    ds = ct_series(Study(), 1)[0]
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.add_new(0x00089999, "LO", "SOME TEXT")
    out, _, clean = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    assert 0x00089999 not in clean and b"SOME TEXT" not in out


def _nested_items(depth: int) -> Dataset:
    top = Dataset()
    ds = top
    for _ in range(depth):
        item = Dataset()
        ds.ReferencedSeriesSequence = Sequence([item])
        ds = item
    return top


def test_sequences_nested_deeper_than_the_limit_are_malformed():
    ds = ct_series(Study(), 1)[0]
    ds.AnatomicRegionSequence[0].update(_nested_items(40))
    with pytest.raises(InvalidDicomError, match=r"^deep\.dcm: malformed file: sequences "
                                                r"nested deeper than 32 levels$"):
        Deidentifier(SECRET).deidentify_bytes(encode(ds), name="deep.dcm")


def test_sequences_at_the_limit_are_walked():
    ds = ct_series(Study(), 1)[0]
    ds.update(_nested_items(MAX_DEID_DEPTH))
    innermost = ds
    for _ in range(MAX_DEID_DEPTH - 1):
        innermost = innermost.ReferencedSeriesSequence[0]
    innermost.ReferencedSeriesSequence[0].PatientComments = HOSTILE_NAME
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    assert b"HARRIET" not in out


def _undefined_length_nesting(depth: int, tag: tuple[int, int]) -> bytes:
    inner = b""
    for k in range(depth):
        group, elem = tag if k == depth - 1 else (0x0008, 0x1115)
        item = (struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
                + struct.pack("<HHI", 0xFFFE, 0xE00D, 0))
        inner = (struct.pack("<HH2sHI", group, elem, b"SQ", 0, 0xFFFFFFFF) + item
                 + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    return inner


def test_deep_nesting_after_the_pixel_data_is_malformed_not_a_recursion_error():
    # The header parse stops at the pixel data; only de-identification reads what follows.
    data = encode(ct_series(Study(), 1)[0]) + _undefined_length_nesting(300, (0xFFFA, 0xFFFA))
    with pytest.raises(InvalidDicomError,
                       match=r"^tail\.dcm: malformed file: sequences nested too deeply$"):
        Deidentifier(SECRET).deidentify_bytes(data, name="tail.dcm")


def test_elements_after_the_pixel_data_count_towards_the_element_limit(monkeypatch):
    import analytics.ingest.deid as deid

    data = encode(ct_series(Study(), 1)[0])
    monkeypatch.setattr(deid, "MAX_DEID_ELEMENTS", 150)
    Deidentifier(SECRET).deidentify_bytes(data)  # the image alone is under the limit
    trailer = b"".join(struct.pack("<HH2sH", 0x8000, 0x0002 + 2 * k, b"LO", 4) + b"TEXT"
                       for k in range(200))  # unknown public tags after the pixel data
    with pytest.raises(LimitExceededError,
                       match=r"^tail\.dcm: more than 150 elements \(MAX_DEID_ELEMENTS, those "
                             r"after the pixel data included\): refused$"):
        Deidentifier(SECRET).deidentify_bytes(data + trailer, name="tail.dcm")


def test_deep_nesting_inside_a_sequence_sent_as_un_is_malformed_not_a_recursion_error():
    # The header parse does not open a UN value; de-identification reads it as a sequence.
    inner = b""
    for _ in range(300):  # implicit VR little endian, as PS3.5 6.2.2 has UN sequences
        item = (struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
                + struct.pack("<HHI", 0xFFFE, 0xE00D, 0))
        inner = (struct.pack("<HHI", 0x0008, 0x1115, 0xFFFFFFFF) + item
                 + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    ds = ct_series(Study(), 1)[0]
    sent_as_bytes(ds, "ReferencedImageSequence", struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
                   + inner + struct.pack("<HHI", 0xFFFE, 0xE00D, 0))
    with pytest.raises(InvalidDicomError,
                       match=r"^un\.dcm: malformed file: sequences nested too deeply$"):
        Deidentifier(SECRET).deidentify_bytes(encode(ds), name="un.dcm")


def test_a_copy_that_cannot_be_written_is_a_typed_error_naming_the_file(monkeypatch):
    import analytics.ingest.deid as deid

    def fail(ds):  # what pydicom raises for a value it cannot encode
        raise OSError("With tag (0010,0020) got exception: required argument is not a float")

    monkeypatch.setattr(deid, "write_dataset", fail)
    with pytest.raises(InvalidDicomError,
                       match=r"^odd\.dcm: malformed file: its de-identified copy cannot be "
                             r"written \(With tag \(0010,0020\) got exception"):
        Deidentifier(SECRET).deidentify_bytes(encode(ct_series(Study(), 1)[0]), name="odd.dcm")
