"""De-identification against DICOM PS3.15 Table E.1-1, nested sequences included: every
rule of the table, the markers, the safe default for unlisted attributes, no identifier left
in the stored bytes, consistent UIDs across a series and its masks, the preamble, the
quarantine of burned-in annotation and the refusal of a file without a Patient ID."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from analytics.errors import InvalidDicomError
from analytics.ingest.deid import (
    Deidentifier,
    hmac_uid,
    patient_pseudonym,
    quarantine_reason,
    shift_da,
    write_dataset,
)
from analytics.ingest.deid_profile import RULES, Rule
from tests.ingest.deid_samples import PATIENT, SECRET, SHIFT, sample_dataset
from tests.ingest.dicom_samples import (
    CT_IMAGE,
    Study,
    ct_series,
    encode,
    rtstruct_for,
    secondary_capture,
    seg_for,
)

UID_RE = re.compile(r"^2\.25\.[1-9][0-9]*$")

#: a value for each VR that is "safe" for cleaning (vocabulary words), so C keeps text
SAMPLE = {"PN": "Doe^John", "LO": "Liver", "SH": "Liver", "ST": "Liver", "LT": "Liver",
          "UT": "Liver", "UC": "Liver", "CS": "LIVER", "DA": "20200115",
          "DT": "20200115101500", "TM": "101500", "AS": "061Y", "DS": "71.5", "IS": "7",
          "UI": "1.2.3.4.5.6.7", "US": 7, "FD": 1.5, "AE": "AETITLE", "OB": b"\x01\x02",
          "UR": "http://example.org/x"}


def _set(ds: Dataset, rule: Rule) -> object:
    vr = dictionary_VR(rule.tag).split(" ")[0]
    if vr == "SQ":
        inner = Dataset()
        inner.ReferencedSOPInstanceUID = "1.2.3.77"
        ds.add_new(rule.tag, "SQ", Sequence([inner]))
        return "1.2.3.77"
    value = SAMPLE[vr]
    ds.add_new(rule.tag, vr, value)
    return value


def _check(ds: Dataset, rule: Rule, original: object, where: str) -> None:
    vr = dictionary_VR(rule.tag).split(" ")[0]
    present = rule.tag in ds
    value = ds[rule.tag].value if present else None
    a = rule.applied
    if a == "X":
        assert not present, f"{rule.keyword} {where}: expected removed (X)"
    elif a == "Z":
        assert present and value in ("", None, []), f"{rule.keyword} {where}: expected empty"
    elif a == "K":
        assert present and value == original, f"{rule.keyword} {where}: expected kept (K)"
    elif a == "P":
        assert value == patient_pseudonym(SECRET, PATIENT), f"{rule.keyword} {where}"
    elif a == "U":
        assert value == hmac_uid(SECRET, str(original)), f"{rule.keyword} {where}: expected U"
        assert UID_RE.match(value) and len(value) <= 64
    elif a == "S":
        assert present and value[0].ReferencedSOPInstanceUID == hmac_uid(SECRET, "1.2.3.77")
    elif a == "C":
        if vr == "DA":
            expected = (dt.date(2020, 1, 15) + dt.timedelta(days=SHIFT)).strftime("%Y%m%d")
            assert value == expected, f"{rule.keyword} {where}: expected shifted date"
        elif vr == "DT":
            expected = (dt.date(2020, 1, 15) + dt.timedelta(days=SHIFT)).strftime("%Y%m%d")
            assert value == expected + "101500", f"{rule.keyword} {where}"
        elif vr == "TM":
            assert value == original, f"{rule.keyword} {where}: times kept (whole-day shift)"
        else:  # a vocabulary-clean descriptor survives cleaning
            assert value == original, f"{rule.keyword} {where}: clean descriptor kept"
    else:
        pytest.fail(f"{rule.keyword}: unexpected applied action {a}")


@pytest.mark.parametrize("rule", [r for r in RULES if r.tag >> 16 != 0x0002],
                         ids=lambda r: f"{r.keyword}-{r.applied}")
def test_table_e11_rule_top_level_and_nested(rule: Rule):
    ds = sample_dataset()
    top = rule.keyword not in ("PatientID", "PatientName")  # these carry the identity itself
    original = _set(ds, rule) if top else None
    item = Dataset()  # the same attribute two levels down, in an unlisted sequence
    _set(item, rule)
    holder = Dataset()
    holder.ReferencedInstanceSequence = Sequence([item])
    ds.ReferencedSeriesSequence = Sequence([holder])
    Deidentifier(SECRET).deidentify(ds)
    nested = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    _check(nested, rule, original if top else SAMPLE["LO"], "nested")
    if top:
        _check(ds, rule, original, "top level")


def test_media_storage_uid_follows_the_new_sop_instance_uid():
    ds = ct_series(Study(), 1)[0]
    original = ds.SOPInstanceUID
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    stored = dcmread(io.BytesIO(out))
    assert stored.file_meta.MediaStorageSOPInstanceUID == hmac_uid(SECRET, original)
    assert stored.SOPInstanceUID == stored.file_meta.MediaStorageSOPInstanceUID
    assert "SourceApplicationEntityTitle" not in stored.file_meta


def test_required_deidentification_markers():
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ct_series(Study(), 1)[0]))
    ds = dcmread(io.BytesIO(out))
    assert ds.PatientIdentityRemoved == "YES"
    assert ds[0x00280303].value == "MODIFIED"  # Longitudinal Temporal Information Modified
    codes = {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}
    assert {"113100", "113107", "113108"} <= codes
    assert all(c.CodingSchemeDesignator == "DCM" for c in ds.DeidentificationMethodCodeSequence)
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)


def test_unlisted_attributes_follow_the_safe_default():
    ds = ct_series(Study(), 1)[0]
    ds.EvaluatorName = "Smith^Ann"  # PN not in the table
    ds.ExtendedCodeMeaning = "free text about Jane Doe"  # LT not in the table
    ds.DateOfLastDetectorCalibration = "20191201"  # DA not in the table
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)  # overlay data
    ds.add_new(0x60000010, "US", 16)
    _, _, clean = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    assert "EvaluatorName" not in clean
    assert "ExtendedCodeMeaning" not in clean
    assert clean.DateOfLastDetectorCalibration == shift_da("20191201", SHIFT)
    assert not any((int(e.tag) >> 16) & 0xFF00 == 0x6000 for e in clean)
    assert not any(e.tag.is_private for e in clean)
    assert not any(e.tag.is_private for e in clean.AnatomicRegionSequence[0])
    # technical strings readers need are kept
    assert clean.Manufacturer == "ACME" and clean.ConvolutionKernel == "B30f"
    assert clean.AnatomicRegionSequence[0].CodeMeaning == "Liver"


def test_no_identifier_survives_anywhere_in_the_stored_bytes():
    study = Study()
    images = ct_series(study, 2)
    for ds in (*images, seg_for(images), rtstruct_for(images)):
        out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
        for secret_text in (study.patient_id, "Doe", "Jane", study.birth_date, study.accession,
                            "St Mary", "House", "Wilson", "Tech", "CT01", "SN-77812",
                            "OLD-445566", "Harbour", "ST-MARYS", "Reader", study.study_uid,
                            study.study_date, "SCANNER_AE", "ACME PRIVATE"):
            assert secret_text.encode() not in out, f"{secret_text!r} left in {ds.Modality}"
        assert out[:128] == b"\0" * 128


def test_uids_consistent_across_instances_seg_and_rtstruct():
    images = ct_series(Study(), 3)
    seg, rt = seg_for(images), rtstruct_for(images)
    d = Deidentifier(SECRET)
    clean = [d.deidentify_bytes(encode(x))[2] for x in (*images, seg, rt)]
    cts, cseg, crt = clean[:3], clean[3], clean[4]
    series_uid, frame_uid = cts[0].SeriesInstanceUID, cts[0].FrameOfReferenceUID
    assert {c.SeriesInstanceUID for c in cts} == {series_uid}
    assert {c.StudyInstanceUID for c in clean} == {cts[0].StudyInstanceUID}
    assert series_uid == hmac_uid(SECRET, images[0].SeriesInstanceUID)
    ct_sops = {c.SOPInstanceUID for c in cts}
    assert len(ct_sops) == 3
    ref_series = cseg.ReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == series_uid
    assert {r.ReferencedSOPInstanceUID for r in ref_series.ReferencedInstanceSequence} == ct_sops
    sources = {fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
               for fg in cseg.PerFrameFunctionalGroupsSequence}
    assert sources <= ct_sops
    assert cseg.FrameOfReferenceUID == frame_uid
    fr = crt.ReferencedFrameOfReferenceSequence[0]
    assert fr.FrameOfReferenceUID == frame_uid
    rt_series = fr.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert rt_series.SeriesInstanceUID == series_uid
    assert {c.ReferencedSOPInstanceUID for c in rt_series.ContourImageSequence} == ct_sops
    assert crt.StructureSetROISequence[0].ReferencedFrameOfReferenceUID == frame_uid
    contour_ref = crt.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0]
    assert contour_ref.ReferencedSOPInstanceUID in ct_sops
    # the descriptors masks are read by survive cleaning
    assert crt.StructureSetROISequence[0].ROIName == "Liver"
    assert [s.SegmentLabel for s in cseg.SegmentSequence] == ["Liver", "Spleen"]
    for c in clean:
        for uid in (c.SOPInstanceUID, c.SeriesInstanceUID, c.StudyInstanceUID):
            assert UID_RE.match(uid) and len(uid) <= 64
        assert c.SOPClassUID in (CT_IMAGE, seg.SOPClassUID, rt.SOPClassUID)  # classes kept


@pytest.mark.parametrize(("case", "make", "quarantined"), [
    ("sc_without_flag", lambda s: secondary_capture(s, None), True),
    ("sc_flag_yes", lambda s: secondary_capture(s, "YES"), True),
    ("sc_flag_no", lambda s: secondary_capture(s, "NO"), False),
    ("ct_flag_yes", lambda s: _with(ct_series(s, 1)[0], BurnedInAnnotation="YES"), True),
    ("ct_without_flag", lambda s: ct_series(s, 1)[0], False),
])
def test_quarantine_rule(case, make, quarantined):
    reason = quarantine_reason(make(Study()))
    assert (reason is not None) == quarantined, case
    if quarantined:
        assert "Burned In Annotation (0028,0301)" in reason


def _with(ds: Dataset, **kw) -> Dataset:
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_preamble_with_an_executable_is_zeroed():
    ds = ct_series(Study(), 1)[0]
    elf = b"\x7fELF" + b"\x02" * 124
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds, preamble=elf))
    assert out[:128] == b"\0" * 128 and out[128:132] == b"DICM"


@pytest.mark.parametrize("patient_id", ["", "   "], ids=["empty", "blank"])
def test_missing_patient_id_is_refused(patient_id):
    ds = sample_dataset()
    ds.PatientID = patient_id
    with pytest.raises(InvalidDicomError, match=r"Patient ID \(0010,0020\)"):
        Deidentifier(SECRET).deidentify(ds)


def test_implicit_vr_files_keep_pixels_and_lose_identifiers():
    from pydicom.uid import ImplicitVRLittleEndian

    ds = ct_series(Study(), 1)[0]
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    original_pixels = ds.PixelData
    out, _, _ = Deidentifier(SECRET).deidentify_bytes(encode(ds))
    back = dcmread(io.BytesIO(out))
    assert back.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert back.PixelData == original_pixels
    assert back.PatientID == patient_pseudonym(SECRET, PATIENT)
    assert back.SeriesInstanceUID == hmac_uid(SECRET, ds.SeriesInstanceUID)
    assert back.ImagePositionPatient == ds.ImagePositionPatient
    assert "InstitutionName" not in back and b"St Mary" not in out


def test_file_meta_elements_inside_the_data_set_are_removed():
    ds = ct_series(Study(), 1)[0]
    item = ds.AnatomicRegionSequence[0]
    item[0x00020016] = DataElement(0x00020016, "AE", "HARRIET")  # Source AE Title, misplaced
    assert 0x00020016 in item
    Deidentifier(SECRET).deidentify(ds)
    assert 0x00020016 not in ds.AnatomicRegionSequence[0]
    assert b"HARRIET" not in write_dataset(ds)
