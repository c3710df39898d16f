"""CT series and SEG written by the generator, read back with pydicom, SimpleITK, highdicom."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sr.codedict import codes

from analytics.synthetic import (
    LABELS,
    DicomIdentity,
    SyntheticVolume,
    synthesize_visit_volume,
    write_ct_series,
    write_seg,
)
from analytics.synthetic.dicom_writer import derived_uid

REQUIRED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
            "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID",
            "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime",
            "AccessionNumber", "InstitutionName", "Manufacturer", "KVP", "BodyPartExamined",
            "ImageType", "SliceThickness", "SpacingBetweenSlices", "PixelSpacing",
            "ImagePositionPatient", "ImageOrientationPatient", "RescaleSlope",
            "RescaleIntercept", "Modality", "InstanceNumber", "SeriesNumber")


def _identity(tag: str) -> DicomIdentity:
    return DicomIdentity(
        patient_id="SYN-0042", patient_name="DOE^JANE", birth_date=date(1961, 4, 9), sex="F",
        study_uid=derived_uid("study", tag), series_uid=derived_uid("series", tag),
        frame_of_reference_uid=derived_uid("for", tag), study_date=date(2019, 5, 14),
        study_time="101530", accession_number="A0420001")


@pytest.fixture(scope="module", params=[
    pytest.param(("ascending", "unenhanced", (44, 128, 128), (5.0, 3.0, 3.0)), id="head-first"),
    pytest.param(("descending", "portal_venous", (30, 100, 120), (4.0, 3.6, 3.0)),
                 id="feet-first-anisotropic-pv"),
])
def written(request, tmp_path_factory):
    order, phase, shape, spacing = request.param
    vol = synthesize_visit_volume(2.5, np.random.default_rng(17), shape=shape,
                                  spacing_mm=spacing, contrast_phase=phase, lesions=2,
                                  scanner_offset_mm=(0.0, 12.0, -210.0))
    out = tmp_path_factory.mktemp(f"dicom-{order}")
    ident = _identity(order)
    files = write_ct_series(vol, out / "CT", ident, slice_order=order,
                            slice_thickness_mm=5.0 if order == "descending" else None)
    seg = write_seg(vol, files, out / "SEG" / "SEG0001.dcm", ident,
                    seg_series_uid=derived_uid("seg-series", order),
                    seg_sop_uid=derived_uid("seg", order))
    return vol, files, seg, order, ident


def test_ct_headers_are_complete_and_consistent(written):
    vol, files, _, order, ident = written
    datasets = [pydicom.dcmread(f) for f in files]
    assert len(datasets) == vol.hu.shape[0]
    for ds in datasets:
        assert ds.preamble == b"\0" * 128
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        for kw in REQUIRED:
            assert kw in ds, kw
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert [float(v) for v in ds.PixelSpacing] == [vol.spacing_mm[1], vol.spacing_mm[2]]
        assert float(ds.SpacingBetweenSlices) == vol.spacing_mm[0]
        assert (ds.Rows, ds.Columns) == vol.hu.shape[1:]
        assert float(ds.RescaleSlope) == 1 and float(ds.RescaleIntercept) == -1024
        assert ds.PixelRepresentation == 0 and ds.BitsStored == 12
        assert ("ContrastBolusAgent" in ds) == (vol.contrast_phase == "portal_venous")
        assert ds.PatientName == "DOE^JANE" and ds.PatientID == "SYN-0042"
        assert len(ds.SOPInstanceUID) <= 64 and ds.SOPInstanceUID.startswith("2.25.")
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    assert {ds.SeriesInstanceUID for ds in datasets} == {ident.series_uid}
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert [ds.InstanceNumber for ds in datasets] == list(range(1, len(files) + 1))
    steps = np.diff(z)
    expected = vol.spacing_mm[0] if order == "ascending" else -vol.spacing_mm[0]
    assert np.allclose(steps, expected, atol=1e-3)


def test_spliced_encoding_equals_pydicom_save_as(written):
    """The writer splices a once-encoded header around each slice's own elements."""
    _, files, _, _, _ = written
    for f in (files[0], files[len(files) // 2], files[-1]):
        ds = pydicom.dcmread(f)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        assert buf.getvalue() == f.read_bytes()


def test_ct_pixels_read_back_as_the_volume(written):
    vol, files, _, _, _ = written
    z0 = vol.origin_mm[2]
    for f in files:
        ds = pydicom.dcmread(f)
        k = round((float(ds.ImagePositionPatient[2]) - z0) / vol.spacing_mm[0])
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        assert np.array_equal(hu, vol.hu[k])
        assert [float(v) for v in ds.ImagePositionPatient[:2]] == pytest.approx(
            vol.origin_mm[:2], abs=1e-3)


def test_simpleitk_series_reader_recovers_geometry_and_values(written):
    vol, files, _, _, ident = written
    folder = str(files[0].parent)
    reader = sitk.ImageSeriesReader()
    assert reader.GetGDCMSeriesIDs(folder) == (ident.series_uid,)
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder, ident.series_uid))
    img = reader.Execute()
    assert img.GetSize() == (vol.hu.shape[2], vol.hu.shape[1], vol.hu.shape[0])
    assert img.GetSpacing() == pytest.approx(vol.spacing_mm[::-1], abs=1e-4)
    assert img.GetOrigin() == pytest.approx(vol.origin_mm, abs=1e-3)
    assert np.allclose(np.asarray(img.GetDirection()).reshape(3, 3), np.eye(3))
    assert np.array_equal(sitk.GetArrayFromImage(img).astype(np.int32), vol.hu)


def test_seg_segments_match_the_label_map(written):
    vol, files, seg_path, _, ident = written
    seg = hd.seg.segread(seg_path)
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert labels == ["Liver", "Spleen", "Hepatic vessels", "Liver lesion"]
    types = [hd.sr.CodedConcept.from_dataset(s.SegmentedPropertyTypeCodeSequence[0])
             for s in seg.SegmentSequence]
    assert types[:3] == [codes.SCT.Liver, codes.SCT.Spleen, codes.SCT.BloodVessel]
    assert types[3] == codes.SCT.Lesion
    assert seg.SegmentationType == "BINARY"
    assert seg.FrameOfReferenceUID == ident.frame_of_reference_uid
    sources = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in files}
    referenced = {item.ReferencedSOPInstanceUID
                  for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == set(sources)
    masks = vol.masks()
    z0 = vol.origin_mm[2]
    uids = list(sources)
    arr = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids,
                                            segment_numbers=[1, 2, 3, 4])
    for i, uid in enumerate(uids):
        ds = pydicom.dcmread(sources[uid], stop_before_pixels=True)
        k = round((float(ds.ImagePositionPatient[2]) - z0) / vol.spacing_mm[0])
        for j, name in enumerate(["liver", "spleen", "liver_vessels", "lesion"]):
            assert np.array_equal(arr[i, :, :, j] > 0, masks[name][k]), (name, k)


def _tiny_volume() -> SyntheticVolume:
    """A 6 x 32 x 32 volume with a liver block, vessels inside it and a spleen block."""
    labels = np.zeros((6, 32, 32), np.uint8)
    labels[1:5, 4:20, 4:16] = LABELS["liver"]
    labels[2:4, 8:12, 8:10] = LABELS["liver_vessels"]
    labels[1:5, 10:20, 22:28] = LABELS["spleen"]
    hu = np.where(labels > 0, 55, -1000).astype(np.int16)
    return SyntheticVolume(hu=hu, labels=labels, spacing_mm=(5.0, 2.0, 2.0),
                           origin_mm=(-31.0, -31.0, -100.0), contrast_phase="unenhanced")


def test_writing_is_byte_for_byte_reproducible(tmp_path: Path):
    vol = _tiny_volume()
    blobs = []
    for run in ("a", "b"):
        files = write_ct_series(vol, tmp_path / run / "CT", _identity("same"))
        seg = write_seg(vol, files, tmp_path / run / "seg.dcm", _identity("same"),
                        seg_series_uid=derived_uid("s"), seg_sop_uid=derived_uid("i"))
        blobs.append([f.read_bytes() for f in [*files, seg]])
    assert blobs[0] == blobs[1]


@pytest.mark.parametrize(("kwargs", "match"), [
    pytest.param({"slice_order": "sideways"}, "slice_order", id="unknown-slice-order"),
])
def test_invalid_series_options_are_rejected(tmp_path: Path, kwargs, match):
    vol = _tiny_volume()
    with pytest.raises(ValueError, match=match):
        write_ct_series(vol, tmp_path / "CT", _identity("x"), **kwargs)
    assert not (tmp_path / "CT").exists()
