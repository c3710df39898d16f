"""Delivered masks on real scans, through ingest and then feature extraction.

TotalSegmentator's label maps and per-structure files with its real CTs (volumes against
the published voxel-count references), the same maps re-oriented, on a wrong grid, without
label names; pydicom-data's real SEG files (plain, RLE 1-bit, big endian).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from sqlalchemy import select

from analytics.features.batch import extract_stored_series
from analytics.features.extract import FeatureSettings
from analytics.ingest.loader import load_series
from analytics.ingest.nifti_masks import parse_label_table
from analytics.ingest.pipeline import ingest_sources, ingest_uploads
from analytics.store.schema import Mask
from tests.realdata import (
    CT_DICOM_LABELS,
    CT_SM,
    CT_SM_LABELS,
    REFERENCE_ML,
    TOTAL_V2,
    ct_dicom_files,
    label_volume_ml,
    nifti_ct_as_dicom,
)

PYDICOM_DATA = Path(__file__).resolve().parents[1] / "data" / "pydicom-data"
SM = REFERENCE_ML["example_ct_sm"]
LIVER, SPLEEN = 5, 1  # TotalSegmentator v2 ids (TOTAL_V2)


@pytest.fixture
def upload(settings, store, parser):
    def go(files, **kw):
        return ingest_uploads(files, settings, store, parser=parser, **kw)
    return go


def _label_map() -> nib.Nifti1Image:
    return nib.load(str(CT_SM_LABELS))


def _nifti_bytes(img: nib.Nifti1Image, gz: bool = True) -> bytes:
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


def _binary(value: int, affine: np.ndarray | None = None, gz: bool = True) -> bytes:
    img = _label_map()
    data = (np.asanyarray(img.dataobj) == value).astype(np.uint8)
    return _nifti_bytes(nib.Nifti1Image(data, img.affine if affine is None else affine), gz)


def _without_names(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """The same voxels and affine with no label table in the file."""
    return nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)


def _volumes_ml(store, settings, report) -> dict[str, float]:
    (series,) = report.series
    volume, masks = load_series(store, settings, series["series_uid"])
    assert "mask_errors" not in volume.meta
    return {k: round(float(m.sum()) * volume.voxel_volume_ml, 1) for k, m in masks.masks.items()}


def _partial_volume(values: dict, organ: str) -> None:
    """The organ reaches the scan's edge: its volume is withheld with the reason, never a
    partial volume shown as the organ's (the mask's own volume is checked separately)."""
    fv = values[f"{organ}_volume_ml"]
    assert fv["value"] is None
    assert fv["flags"]["reason"].startswith(f"{organ} volume not measurable: the {organ} "
                                            "reaches the scan's"), fv["flags"]["reason"]


def _features(settings, report) -> dict:
    (series,) = report.series
    out = extract_stored_series(series["series_uid"], settings,
                                FeatureSettings(segmentation="classical"))
    assert out["ok"], out.get("reason")
    return out["result"]


# --------------------------------------------------------------------------- NIfTI
def test_the_reference_volumes_hold_for_the_published_label_map():
    assert label_volume_ml(CT_SM_LABELS, LIVER) == pytest.approx(SM["liver"], abs=0.05)
    assert label_volume_ml(CT_SM_LABELS, SPLEEN) == pytest.approx(SM["spleen"], abs=0.05)
    assert TOTAL_V2[LIVER] == "liver" and TOTAL_V2[SPLEEN] == "spleen"


def test_totalsegmentator_label_map_gives_the_reference_volumes_through_ingest_and_features(
        store, settings, upload):
    report = upload([*nifti_ct_as_dicom(), ("example_seg.nii.gz", CT_SM_LABELS.read_bytes())])
    assert report.rejected == [] and report.masks == 1 and report.series[0]["masks"] == 1
    ml = _volumes_ml(store, settings, report)
    assert (ml["liver"], ml["spleen"]) == (SM["liver"], SM["spleen"])
    result = _features(settings, report)
    values = result["values"]
    _partial_volume(values, "liver")  # the liver continues above and below this CT
    _partial_volume(values, "spleen")
    assert values["liver_hu_mean"]["value"] == pytest.approx(45.3, abs=1.5)  # eroded ROI
    assert result["mask_source"] == "nifti" and result["mask_automatic"] is False
    assert "automatic_segmentation" not in values["liver_hu_mean"]["flags"]


def _reoriented(codes: tuple[str, str, str]) -> nib.Nifti1Image:
    img = _label_map()
    now = nib.orientations.io_orientation(img.affine)
    return img.as_reoriented(nib.orientations.ornt_transform(
        now, nib.orientations.axcodes2ornt(codes)))


@pytest.mark.parametrize(("codes", "gz"), [
    (("L", "A", "S"), True), (("L", "P", "S"), True), (("P", "I", "R"), False),
    (("S", "L", "A"), True),
], ids=["LAS", "LPS", "PIR-uncompressed", "SLA-axes-permuted"])
def test_a_reoriented_label_map_lands_on_the_same_anatomy(store, settings, upload, codes, gz):
    img = _reoriented(codes)
    assert "".join(nib.aff2axcodes(img.affine)) == "".join(codes)
    name = "seg.nii" + (".gz" if gz else "")
    report = upload([*nifti_ct_as_dicom(), (name, _nifti_bytes(_without_names(img), gz))],
                    labels=parse_label_table("totalsegmentator-v2"))
    assert report.rejected == [] and report.masks == 1
    ml = _volumes_ml(store, settings, report)
    assert (ml["liver"], ml["spleen"]) == (SM["liver"], SM["spleen"])


def test_totalsegmentator_output_folder_of_per_structure_files(tmp_path, settings, store,
                                                              parser):
    folder = tmp_path / "case"
    (folder / "ct").mkdir(parents=True)
    for name, data in nifti_ct_as_dicom():
        (folder / "ct" / Path(name).name).write_bytes(data)
    seg = folder / "segmentations"
    seg.mkdir()
    for value, name in TOTAL_V2.items():
        (seg / f"{name}.nii.gz").write_bytes(_binary(value))
    (seg / "kidney_left.nii").write_bytes(_binary(3, gz=False))
    report = ingest_sources([folder], settings, store, parser=parser)
    assert report.masks == len(TOTAL_V2) and report.series[0]["masks"] == len(TOTAL_V2)
    (refused,) = report.rejected
    assert refused.file.endswith("kidney_left.nii")
    assert "a binary mask named 'kidney_left', which is not a structure HepaTrack reads" in (
        refused.reason)
    with store.session() as s:
        names = sorted(k for seg_ in s.scalars(select(Mask.segments)) for k in seg_)
    assert names == ["aorta", "inferior_vena_cava", "liver", "portal_splenic_vein", "spleen"]
    ml = _volumes_ml(store, settings, report)
    assert (ml["liver"], ml["spleen"]) == (SM["liver"], SM["spleen"])
    values = _features(settings, report)["values"]
    _partial_volume(values, "liver")
    _partial_volume(values, "spleen")
    # the portal/splenic vein and cava lie outside the liver: withheld, never a 0.0
    fraction = values["liver_vessel_fraction"]
    assert "vessel trunks outside the liver" in fraction["flags"][
        "delivered_vessel_mask_withheld"]
    assert fraction["flags"].get("vessel_source") != "delivered_mask"
    assert fraction["value"] is None or fraction["value"] > 0.0


def test_a_portal_vein_mask_renamed_by_hand_is_withheld_not_a_zero_fraction(settings, upload):
    report = upload([*nifti_ct_as_dicom(), ("liver.nii.gz", _binary(LIVER)),
                     ("spleen.nii.gz", _binary(SPLEEN)), ("portal_vein.nii.gz", _binary(64))])
    assert report.rejected == [] and report.masks == 3
    fraction = _features(settings, report)["values"]["liver_vessel_fraction"]
    assert "lies entirely outside the liver" in fraction["flags"][
        "delivered_vessel_mask_withheld"]
    assert fraction["value"] != 0.0
    if fraction["value"] is None:
        assert fraction["flags"]["reason"]


def test_a_mask_on_another_grid_is_refused_naming_both_grids(upload):
    img = _label_map()
    shifted = img.affine.copy()
    shifted[0, 3] += 30.0  # 30 mm to the right (RAS x): LPS x edges -186.5..179.5 -> -216.5..149.5
    report = upload([*nifti_ct_as_dicom(), ("liver.nii.gz", _binary(LIVER, shifted))])
    (refused,) = report.rejected
    assert refused.file == "liver.nii.gz" and report.masks == 0
    assert "its grid (122x101x30 voxels of 3x3x3 mm RAS, field of view x -216.5..149.5" in (
        refused.reason)
    assert "the batch has 122x101x30 voxels of 3x3x3 mm, field of view x -186.5..179.5" in (
        refused.reason)


def test_a_label_map_without_names_is_refused_and_taken_with_the_users_table(store, settings,
                                                                            upload):
    plain = _nifti_bytes(_without_names(_label_map()))
    refused = upload([*nifti_ct_as_dicom(), ("seg.nii.gz", plain)])
    (why,) = refused.rejected
    assert why.file == "seg.nii.gz" and "but no label names: pass a label table" in why.reason
    taken = upload([("seg.nii.gz", plain), *nifti_ct_as_dicom()],
                   labels=parse_label_table("5=liver, 1=Milz"))
    assert taken.rejected == [] and taken.masks == 1
    assert _volumes_ml(store, settings, taken) == {"liver": SM["liver"], "spleen": SM["spleen"]}


@pytest.mark.parametrize(("text", "message"), [
    ("5=liverr", r"'liverr' is not a structure HepaTrack reads"),
    ("five=liver", r"'five=liver' is not value=name \(expected e\.g\. 5=liver,1=spleen"),
    ("totalsegmentator-v9", r"'totalsegmentator-v9' is not value=name"),
], ids=["unknown-structure", "not-a-pair", "unknown-table"])
def test_a_bad_label_table_says_what_was_expected(text, message):
    from analytics.errors import MaskError

    with pytest.raises(MaskError, match=message):
        parse_label_table(text)


def _siemens_with_uids() -> list[tuple[str, bytes]]:
    """The real Siemens series with its emptied UIDs and Patient ID filled in, every other
    byte as published: this test checks mask placement alone (tests/ingest/test_identifiers
    covers ingesting the series as published)."""
    out = []
    for path in ct_dicom_files():
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.7001", "2.25.7002"
        ds.PatientID = "REAL-CT-DICOM"
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append((path.name, buf.getvalue()))
    return out


def test_the_real_siemens_series_with_its_las_label_map(store, settings, upload):
    assert "".join(nib.aff2axcodes(nib.load(str(CT_DICOM_LABELS)).affine)) == "LAS"
    report = upload([*_siemens_with_uids(), ("seg.nii.gz", CT_DICOM_LABELS.read_bytes())])
    assert report.rejected == [] and report.masks == 1
    ref = REFERENCE_ML["example_ct_dicom"]
    ml = _volumes_ml(store, settings, report)
    assert ml["liver"] == pytest.approx(ref["liver"], abs=0.05)
    assert ml["spleen"] == pytest.approx(ref["spleen"], abs=0.05)
    values = _features(settings, report)["values"]
    _partial_volume(values, "liver")  # a 40 mm slab: both organs run past its ends
    _partial_volume(values, "spleen")
    assert values["liver_hu_mean"]["value"] == pytest.approx(89.3, abs=3.0)


# --------------------------------------------------------------------------- real SEG
def _ct_for_seg(seg: Dataset) -> list[tuple[str, bytes]]:
    """A CT series with the UIDs, frame of reference and slice geometry ``seg`` references
    (the published SEG comes without its images); uniform 40 HU."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    out = []
    for k, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):
        sop = fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = pydicom.uid.CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.StudyInstanceUID = seg.StudyInstanceUID
        ds.SeriesInstanceUID = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
        ds.FrameOfReferenceUID = seg.FrameOfReferenceUID
        ds.PatientID, ds.PatientName, ds.StudyDate = seg.PatientID, seg.PatientName, "20030417"
        ds.Modality, ds.InstanceNumber, ds.ImageType = "CT", k + 1, ["ORIGINAL", "PRIMARY"]
        ds.ImagePositionPatient = list(fg.PlanePositionSequence[0].ImagePositionPatient)
        ds.ImageOrientationPatient = list(
            shared.PlaneOrientationSequence[0].ImageOrientationPatient)
        ds.PixelSpacing = list(shared.PixelMeasuresSequence[0].PixelSpacing)
        ds.SliceThickness, ds.Rows, ds.Columns = 1, seg.Rows, seg.Columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.BurnedInAnnotation = 1, 0, "NO"
        ds.PixelData = np.full((seg.Rows, seg.Columns), 40, np.int16).tobytes()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append((f"ct/{k}.dcm", buf.getvalue()))
    return out


@pytest.fixture(scope="module")
def real_seg_ct() -> list[tuple[str, bytes]]:
    return _ct_for_seg(pydicom.dcmread(PYDICOM_DATA / "liver.dcm"))


def test_real_segs_decoded_at_ingest_undecodable_ones_refused_with_their_reason(
        store, settings, upload, real_seg_ct):
    files = [(n, (PYDICOM_DATA / n).read_bytes()) for n in ("liver_rle.dcm", "liver.dcm")]
    report = upload(real_seg_ct + files)
    (refused,) = report.rejected
    assert refused.file == "liver_rle.dcm"
    assert "cannot decode its pixel data (RLE Lossless): RuntimeError" in refused.reason
    assert "1 bits allocated" in refused.reason
    assert report.masks == 1  # the readable SEG of the same batch is stored
    (series,) = report.series
    volume, masks = load_series(store, settings, series["series_uid"])
    assert int(masks.masks["liver"].sum()) == 107098  # the SEG's own liver pixels
    assert float(masks.masks["liver"].sum()) * volume.voxel_volume_ml == pytest.approx(
        107098 * 0.810547**2 / 1000.0, rel=1e-6)


def test_a_big_endian_seg_is_read_like_its_little_endian_twin(store, settings, upload,
                                                               real_seg_ct):
    report = upload([*real_seg_ct, ("liver_expb.dcm",
                                    (PYDICOM_DATA / "liver_expb.dcm").read_bytes())])
    assert report.rejected == [] and report.masks == 1
    (series,) = report.series
    _volume, masks = load_series(store, settings, series["series_uid"])
    assert int(masks.masks["liver"].sum()) == 107098  # as its little-endian twin
    result = _features(settings, report)
    assert result["mask_source"] == "seg" and result["mask_automatic"] is False
    _partial_volume(result["values"], "liver")  # 3 frames of a liver: not the whole organ


def test_a_stored_mask_that_fails_is_reported_and_not_replaced_by_automatic_segmentation(
        store, settings, upload, real_seg_ct):
    # stored as received, so the replacement below still names the stored frame of reference
    report = upload([*real_seg_ct, ("liver.dcm", (PYDICOM_DATA / "liver.dcm").read_bytes())],
                    deidentify=False)
    assert report.masks == 1
    with store.session() as s:
        rel = s.scalar(select(Mask.path))
    # as a mask stored before ingest decoded every mask would be: an RLE 1-bit SEG
    (settings.home / rel).write_bytes((PYDICOM_DATA / "liver_rle.dcm").read_bytes())
    (series,) = report.series
    out = extract_stored_series(series["series_uid"], settings, FeatureSettings())
    assert out["ok"] and out["auto_mask"] is None
    result = out["result"]
    assert result["mask_source"] == "failed" and result["mask_automatic"] is False
    liver = result["values"]["liver_volume_ml"]
    assert liver["value"] is None
    assert liver["flags"]["reason"].startswith("no liver mask: the delivered mask failed (")
    assert "cannot decode its pixel data (RLE Lossless)" in liver["flags"]["reason"]
    assert "automatic segmentation is not used in its place" in result["warnings"][0]


@pytest.mark.parametrize("table", ["totalsegmentator-v1", "totalsegmentator-v2"])
def test_totalsegmentator_v1_and_v2_class_ids_name_the_same_structures(store, settings,
                                                                       upload, table):
    from analytics.ingest.nifti_masks import TOTALSEGMENTATOR_LABELS

    img = _label_map()
    v2 = np.asanyarray(img.dataobj)
    by_name = {name: v for v, name in TOTALSEGMENTATOR_LABELS[table].items()}
    relabelled = np.zeros_like(v2)
    for value, name in TOTAL_V2.items():  # the published v2 map, written with the table's ids
        relabelled[v2 == value] = by_name[name]
    data = _nifti_bytes(nib.Nifti1Image(relabelled, img.affine))
    report = upload([*nifti_ct_as_dicom(), ("seg.nii.gz", data)],
                    labels=parse_label_table(table))
    assert report.rejected == [] and report.masks == 1
    ml = _volumes_ml(store, settings, report)
    voxel_ml = 27.0 / 1000.0  # 3 mm voxels
    assert ml == {
        "liver": SM["liver"], "spleen": SM["spleen"],
        **{k: round(float(np.count_nonzero(v2 == v)) * voxel_ml, 1)
           for k, v in (("aorta", 52), ("inferior_vena_cava", 63), ("portal_splenic_vein", 64))}}


def test_a_real_nifti_ct_image_is_refused_as_an_image_not_as_an_unnamed_label_map(upload):
    report = upload([("example_ct_sm.nii.gz", CT_SM.read_bytes())])
    (refused,) = report.rejected
    assert refused.file == "example_ct_sm.nii.gz"
    assert "a NIfTI image (values -1100 to 1207, 1710 distinct), not a mask" in refused.reason
    assert "images are taken as DICOM series and NIfTI files only as masks" in refused.reason
