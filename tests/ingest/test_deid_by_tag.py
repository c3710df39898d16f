"""De-identification by tag, whatever VR the file claims: names, dates and UIDs sent under
a wrong VR or as UN are removed, shifted or replaced, kept values read as their tag's VR,
and UN sequences are walked."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from analytics.errors import InvalidDicomError
from analytics.ingest.deid import Deidentifier, date_shift_days, hmac_uid, shift_da
from tests.ingest.deid_samples import HOSTILE_NAME, SECRET, SHIFT, sent_as_bytes
from tests.ingest.dicom_samples import CT_IMAGE, Study, ct_series, encode


def _sent_as(ds: Dataset, keyword: str, vr: str, text: str) -> None:
    """Put ``text`` in ``keyword`` encoded under ``vr`` (``UN``: the raw bytes)."""
    tag = tag_for_keyword(keyword)
    raw = text.encode("latin-1")
    if vr == "UN":
        elem = DataElement(tag, "OB", raw + b" " * (len(raw) % 2))
        elem.VR = "UN"  # set after construction: pydicom would replace UN on a known tag
    else:
        elem = DataElement(tag, "OB", b"")
        elem.VR = vr
        elem.value = text
    ds[tag] = elem


def _file_vr(data: bytes, keyword: str, where=lambda ds: ds) -> str | None:
    """The VR a stored file wrote for ``keyword`` (read raw, as another reader would)."""
    ds = where(dcmread(io.BytesIO(data)))
    raw = ds.get_item(tag_for_keyword(keyword))
    return None if raw is None else raw.VR


@pytest.mark.parametrize(("keyword", "vr", "nested"), [
    ("PatientName", "CS", False),
    ("PatientName", "LO", False),
    ("PatientName", "UN", False),
    ("PatientName", "UT", False),
    ("OtherPatientNames", "CS", False),
    ("PatientBirthName", "UN", False),
    ("EvaluatorName", "CS", False),  # a PN attribute not in the table
    ("EvaluatorName", "UT", True),
    ("PerformingPhysicianName", "UN", True),
    ("ContentCreatorName", "LO", True),  # Z in the table
    ("PatientComments", "CS", False),
    ("StudyComments", "UN", True),
    ("BodyPartExamined", "LO", False),  # a kept code string must read as one
    ("PatientWeight", "LT", False),  # a kept number must read as one
])
def test_a_name_sent_under_a_wrong_vr_is_removed_by_tag(keyword, vr, nested):
    ds = ct_series(Study(), 1)[0]
    holder = ds.AnatomicRegionSequence[0] if nested else ds
    _sent_as(holder, keyword, vr, HOSTILE_NAME)
    data = encode(ds)
    assert HOSTILE_NAME.encode() in data  # the hostile value is really in the input
    assert _file_vr(data, keyword, (lambda d: d.AnatomicRegionSequence[0]) if nested
                    else (lambda d: d)) == vr
    out, _, clean = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    assert b"HARRIET" not in out and b"12345" not in out
    assert clean.AnatomicRegionSequence[0].CodeMeaning == "Liver"  # the item survives


def test_dates_sent_as_un_are_shifted_by_tag_at_every_depth():
    ds = ct_series(Study(), 1)[0]
    _sent_as(ds, "StudyDate", "UN", "20200115")
    _sent_as(ds, "DateOfLastDetectorCalibration", "UN", "20191201")  # not in the table
    _sent_as(ds.ReferencedImageSequence[0], "ContentDate", "UN", "20200116")
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    back = dcmread(io.BytesIO(out))
    assert back.StudyDate == shift_da("20200115", SHIFT)
    assert back.DateOfLastDetectorCalibration == shift_da("20191201", SHIFT)
    assert back.ReferencedImageSequence[0].ContentDate == shift_da("20200116", SHIFT)
    assert _file_vr(out, "StudyDate") == "DA"  # stored under the VR of its tag
    for real in (b"20200115", b"20191201", b"20200116"):
        assert real not in out


def test_uids_sent_as_un_are_replaced_and_references_stay_consistent():
    ds = ct_series(Study(), 1)[0]
    series_uid, sop_uid = ds.SeriesInstanceUID, ds.SOPInstanceUID
    concat_source = "1.2.3.4.5.6.7.8.9.10"
    _sent_as(ds, "SeriesInstanceUID", "UN", series_uid + "\0" * (len(series_uid) % 2))
    _sent_as(ds.ReferencedImageSequence[0], "ReferencedSOPInstanceUID", "UN", sop_uid)
    _sent_as(ds, "SOPInstanceUIDOfConcatenationSource", "UN", concat_source)  # unlisted UI
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    back = dcmread(io.BytesIO(out))
    assert back.SeriesInstanceUID == hmac_uid(SECRET, series_uid)
    assert back.ReferencedImageSequence[0].ReferencedSOPInstanceUID == back.SOPInstanceUID
    assert back.SOPInstanceUID == hmac_uid(SECRET, sop_uid)
    assert back.SOPInstanceUIDOfConcatenationSource == hmac_uid(SECRET, concat_source)
    for real in (series_uid, sop_uid, concat_source):
        assert real.encode() not in out


def test_a_coded_or_numeric_value_sent_as_un_is_kept_when_it_reads_as_its_vr():
    ds = ct_series(Study(), 1)[0]
    _sent_as(ds, "BodyPartExamined", "UN", "ABDOMEN")
    _sent_as(ds, "PatientWeight", "UN", "71.5")
    _sent_as(ds, "SliceThickness", "UN", "2.5")
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    back = dcmread(io.BytesIO(out))
    assert (back.BodyPartExamined, back.PatientWeight, back.SliceThickness) == ("ABDOMEN", 71.5,
                                                                                2.5)
    assert [_file_vr(out, k) for k in ("BodyPartExamined", "PatientWeight")] == ["CS", "DS"]


UN_FILE = Path(__file__).resolve().parents[1] / "data" / "pydicom-data" / "explicit_VR-UN.dcm"
#: attributes of explicit_VR-UN.dcm sent as UN that a series needs to be built and scored
UN_GEOMETRY = {
    "ImagePositionPatient": [0, 0, -121], "ImageOrientationPatient": [1, 0, 0, 0, -1, 0],
    "PixelSpacing": [0.859375, 0.859375], "RescaleIntercept": 0, "RescaleSlope": 1,
    "InstanceNumber": 122, "Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    "SOPClassUID": CT_IMAGE, "BodyPartExamined": "PANCREAS",
}


def test_the_real_file_with_standard_tags_sent_as_un_keeps_its_geometry():
    data = UN_FILE.read_bytes()
    original = dcmread(io.BytesIO(data))
    assert {k: original.get_item(k).VR for k in UN_GEOMETRY} == dict.fromkeys(UN_GEOMETRY, "UN")
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(data, name="explicit_VR-UN.dcm")
    back = dcmread(io.BytesIO(out))
    for keyword, value in UN_GEOMETRY.items():
        got = back[keyword].value
        assert (list(got) if isinstance(got, MultiValue) else got) == value, keyword
        stored_vr = back.get_item(keyword).VR
        assert stored_vr == dictionary_VR(tag_for_keyword(keyword)), keyword
    assert back.SOPInstanceUID == hmac_uid(SECRET, original.SOPInstanceUID)
    assert back.StudyDate == shift_da("20151124", date_shift_days(SECRET, "PANCREAS_0001"))
    assert b"PANCREAS_0001" not in out and b"NIH" not in out
    assert back.pixel_array[142, 260:270].tolist() == [21, 287, 797, 863, 813, 428, 55, -7, 37,
                                                       -22]  # GDCM's values


def test_a_needed_attribute_unreadable_as_its_vr_refuses_the_instance():
    ds = ct_series(Study(), 1)[0]
    _sent_as(ds, "PixelSpacing", "LT", "zero point eight")
    with pytest.raises(InvalidDicomError,
                       match=r"^bad\.dcm: PixelSpacing \(0028,0030\) does not read as DS, the "
                             r"VR of its tag; expected a valid DS value"):
        Deidentifier(SECRET).deidentify_bytes(encode(ds), name="bad.dcm")


def test_a_reference_sequence_sent_as_un_is_walked_and_remapped():
    ds = ct_series(Study(), 1)[0]
    sop = ds.SOPInstanceUID
    uid = sop.encode() + b"\0" * (len(sop) % 2)
    cls = CT_IMAGE.encode() + b"\0" * (len(CT_IMAGE) % 2)
    body = (struct.pack("<HHI", 0x0008, 0x1150, len(cls)) + cls
            + struct.pack("<HHI", 0x0008, 0x1155, len(uid)) + uid)  # implicit VR, PS3.5 6.2.2
    sent_as_bytes(ds, "ReferencedImageSequence",
                   struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body)
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    back = dcmread(io.BytesIO(out))
    assert back.get_item("ReferencedImageSequence").VR == "SQ"
    ref = back.ReferencedImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (
        CT_IMAGE, hmac_uid(SECRET, sop))
    assert sop.encode() not in out


def test_an_ambiguous_pixel_value_sent_as_un_is_resolved_from_pixel_representation():
    ds = ct_series(Study(), 1)[0]
    assert ds.PixelRepresentation == 1
    sent_as_bytes(ds, "SmallestImagePixelValue", struct.pack("<h", -5))
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    back = dcmread(io.BytesIO(out))
    assert (back.get_item("SmallestImagePixelValue").VR, back.SmallestImagePixelValue) == ("SS",
                                                                                          -5)
