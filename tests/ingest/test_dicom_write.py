"""The de-identified copy's encoder writes the bytes pydicom's ``save_as`` writes."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset

from analytics.ingest.deid import Deidentifier
from analytics.ingest.dicom_write import encode_file
from tests.ingest.dicom_samples import Study, ct_series, encode, seg_for

CORPUS = sorted(p for p in map(Path, get_testdata_files()) if p.is_file()
                and p.read_bytes()[128:132] == b"DICM")
SECRET = b"s" * 32


def _refusal(e: Exception) -> str:
    """The error's type and first line (ingest reports the first line; the rest of
    pydicom's message is a traceback that names the writing function)."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _save_as(ds: Dataset) -> bytes | str:
    ds.preamble = b"\0" * 128
    buf = io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=True)
    except Exception as e:  # the encoder must refuse what save_as refuses, the same way
        return _refusal(e)
    return buf.getvalue()


def _encode_file(ds: Dataset) -> bytes | str:
    try:
        return encode_file(ds)
    except Exception as e:
        return _refusal(e)


def _two_reads(data: bytes) -> tuple[Dataset, Dataset]:
    return pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(io.BytesIO(data))


def _compare_corpus(deidentify: bool) -> tuple[int, list[str]]:
    """(files compared, names whose encodings differ) over the bundled corpus."""
    compared, differ = 0, []
    for path in CORPUS:
        try:
            plain, ours = _two_reads(path.read_bytes())
            if deidentify:
                Deidentifier(SECRET).deidentify(plain, name=path.name)
                Deidentifier(SECRET).deidentify(ours, name=path.name)
        except Exception:  # unreadable, or refused by de-identification for its own reason
            continue
        compared += 1
        if _encode_file(ours) != _save_as(plain):
            differ.append(path.name)
    return compared, differ


def test_every_bundled_pydicom_file_is_written_as_save_as_writes_it():
    compared, differ = _compare_corpus(deidentify=False)
    assert differ == []
    assert compared >= 150  # implicit VR, big endian, deflated, character sets, JPEG ...


def test_every_de_identified_bundled_file_is_written_as_save_as_writes_it():
    compared, differ = _compare_corpus(deidentify=True)
    assert differ == []
    assert compared >= 120


def test_a_de_identified_ct_slice_and_its_seg_are_written_byte_for_byte_as_save_as():
    images = ct_series(Study(), n=3, rows=32, cols=32)
    for ds in (*images, seg_for(images)):
        plain, ours = _two_reads(encode(ds))
        Deidentifier(SECRET).deidentify(plain, name="x")
        Deidentifier(SECRET).deidentify(ours, name="x")
        written = _encode_file(ours)
        assert isinstance(written, bytes)
        assert written == _save_as(plain)
        assert written[:128] == b"\0" * 128 and written[128:132] == b"DICM"


def test_odd_length_pixel_data_is_padded_as_save_as_pads_it():
    ds = ct_series(Study(), n=1, rows=3, cols=3)[0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    plain, ours = _two_reads(encode(ds))
    plain.PixelData = ours.PixelData = bytes(range(9))  # written with one pad byte
    written = _encode_file(ours)
    assert written == _save_as(plain)
    assert pydicom.dcmread(io.BytesIO(written)).PixelData == bytes(range(9)) + b"\0"
