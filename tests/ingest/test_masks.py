"""Masks: SEG (binary, fractional, other grid), RTSTRUCT with holes, NIfTI RAS->LPS, synonyms."""

from __future__ import annotations

import io

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from analytics.errors import MaskError
from analytics.ingest.masks import mask_references, match_series, read_mask, referenced_series
from analytics.ingest.series import build_volume
from analytics.ingest.structures import STRUCTURES, SYNONYMS, canonical_structure
from analytics.ingest.volume import Volume
from tests.ingest.conftest import ct_series, hu_phantom, to_bytes

SHAPE = (5, 32, 32)


def seg_bytes(source: list[Dataset], labels: dict[str, np.ndarray], *, fractional=False,
              codes_by_label: dict | None = None, seg_type: str | None = None) -> bytes:
    """A highdicom SEG over ``source`` (sorted by z) with one segment per label ([z, y, x])."""
    source = sorted(source, key=lambda d: float(d.ImagePositionPatient[2]))
    descs, arrays = [], []
    for n, (label, arr) in enumerate(labels.items(), start=1):
        prop = (codes_by_label or {}).get(label, codes.SCT.Tissue)
        descs.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=label,
            segmented_property_category=codes.SCT.Tissue, segmented_property_type=prop,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
        arrays.append(arr.astype(np.float32 if fractional else bool))
    pixel_array = np.stack(arrays, axis=-1)
    if seg_type == "LABELMAP":  # one frame per slice, the segment number as the value
        pixel_array = np.zeros(arrays[0].shape, np.uint8)
        for n, arr in enumerate(arrays, start=1):
            pixel_array[arr.astype(bool)] = n
    seg = hd.seg.Segmentation(
        source_images=source, pixel_array=pixel_array,
        segmentation_type=seg_type or ("FRACTIONAL" if fractional else "BINARY"),
        omit_empty_frames=True,  # as highdicom, dcmqi and most writers do
        segment_descriptions=descs, series_instance_uid=generate_uid(), series_number=99,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="test",
        manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    buf = io.BytesIO()
    seg.save_as(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def ct():
    datasets = ct_series(hu_phantom(SHAPE), spacing=(2.0, 0.8, 0.8))
    return datasets, build_volume(datasets)


def _truth(shape=SHAPE):
    z, y, x = np.indices(shape)
    liver = (x >= 4) & (x < 20) & (y >= 6) & (y < 22) & (z >= 1) & (z < 4)
    spleen = (x >= 24) & (x < 30) & (y >= 10) & (y < 16) & (z == 2)
    tumor = (x >= 8) & (x < 12) & (y >= 10) & (y < 14) & (z == 2)
    return liver, spleen, tumor


def test_binary_seg_on_the_same_grid(ct):
    datasets, vol = ct
    liver, spleen, tumor = _truth()
    data = seg_bytes(datasets, {"Liver": liver, "Milz": spleen, "Tumor": tumor,
                                "Kidney": np.zeros(SHAPE, bool) | (np.indices(SHAPE)[0] == 0)},
                     codes_by_label={"Liver": codes.SCT.Liver})
    ms = read_mask(data, "seg", vol)
    assert sorted(ms.masks) == ["lesion", "liver", "spleen"] and ms.source == "seg"
    np.testing.assert_array_equal(ms.masks["liver"], liver)
    np.testing.assert_array_equal(ms.masks["spleen"], spleen)
    np.testing.assert_array_equal(ms.masks["lesion"], tumor)


def test_fractional_seg_is_thresholded_at_one_half(ct):
    datasets, vol = ct
    frac = np.zeros(SHAPE, np.float32)
    frac[2, 5:9, 5:9] = 0.7
    frac[2, 9:12, 5:9] = 0.3
    ms = read_mask(seg_bytes(datasets, {"liver_total": frac}, fractional=True), "seg", vol)
    np.testing.assert_array_equal(ms.masks["liver"], frac >= 0.5)


def test_seg_on_a_finer_grid_is_resampled_nearest_neighbour(ct):
    datasets, vol = ct
    frame = datasets[0].FrameOfReferenceUID
    # Same origin and frame of reference, twice the in-plane resolution.
    fine_hu = hu_phantom((SHAPE[0], 64, 64))
    fine = ct_series(fine_hu, spacing=(2.0, 0.4, 0.4), frame_uid=frame)
    z, y, x = np.indices(fine_hu.shape)
    blob = (x - 20) ** 2 + (y - 30) ** 2 < 100
    blob &= (z >= 1) & (z <= 3)
    ms = read_mask(seg_bytes(fine, {"Leber": blob}), "seg", vol)
    np.testing.assert_array_equal(ms.masks["liver"], blob[:, ::2, ::2])


def test_seg_with_another_frame_of_reference_is_refused(ct):
    _, vol = ct
    other = ct_series(hu_phantom(SHAPE), spacing=(2.0, 0.8, 0.8))
    data = seg_bytes(other, {"Liver": _truth()[0]})
    with pytest.raises(MaskError, match=r"FrameOfReferenceUID .* does not match the image series"):
        read_mask(data, "seg", vol)


def test_seg_references_point_at_the_image_series(ct):
    import pydicom

    datasets, _ = ct
    ds = pydicom.dcmread(io.BytesIO(seg_bytes(datasets, {"Liver": _truth()[0]})))
    refs = mask_references(ds)
    assert refs["series_uids"] == [datasets[0].SeriesInstanceUID]
    assert set(refs["sop_instance_uids"]) <= {d.SOPInstanceUID for d in datasets}
    assert refs["frame_of_reference_uid"] == datasets[0].FrameOfReferenceUID
    cands = {"other": {"sop_instance_uids": set(), "frame_of_reference_uid": "x"},
             datasets[0].SeriesInstanceUID: {"sop_instance_uids": set()}}
    assert match_series(refs, cands) == datasets[0].SeriesInstanceUID
    only_sops = dict(refs, series_uids=[])
    cands2 = {"s": {"sop_instance_uids": {d.SOPInstanceUID for d in datasets}}}
    assert match_series(only_sops, cands2) == "s"


def test_the_referenced_series_are_read_without_the_frames_references(ct):
    from pydicom.dataelem import RawDataElement

    from analytics.config import IngestLimits
    from analytics.ingest.header import parse_dicom
    from tests.ingest.dicom_samples import Study, encode, rtstruct_for, seg_for
    from tests.ingest.dicom_samples import ct_series as sample_series

    datasets, _ = ct
    images = sample_series(Study(), 3)
    for data in (seg_bytes(datasets, {"Liver": _truth()[0]}), encode(seg_for(images)),
                 encode(rtstruct_for(images))):
        ds = parse_dicom(data, IngestLimits()).dataset
        series = referenced_series(ds)
        frames = ds._dict.get(0x52009230)  # Per-frame Functional Groups Sequence
        assert frames is None or isinstance(frames, RawDataElement)  # not read for it
        assert series == mask_references(ds)["series_uids"] and len(series) == 1


# ------------------------------------------------------------------ SEG frames by position
LESION_SHAPE, LESION_SPACING = (12, 40, 40), (4.0, 1.0, 1.0)  # 4 mm^3 voxels


@pytest.fixture(scope="module")
def lesion_ct():
    datasets = ct_series(hu_phantom(LESION_SHAPE), spacing=LESION_SPACING)
    return datasets, build_volume(datasets)


def _two_lesions() -> np.ndarray:
    """Two 1 mL lesions (250 voxels of 4 mm^3 each) on the non-adjacent slices 3 and 8."""
    truth = np.zeros(LESION_SHAPE, bool)
    truth[3, 5:15, 5:30] = True
    truth[8, 20:30, 10:35] = True
    return truth


@pytest.mark.parametrize("seg_type", ["BINARY", "LABELMAP"])
def test_a_seg_that_omits_empty_frames_keeps_two_small_lesions_on_their_slices(lesion_ct,
                                                                                seg_type):
    datasets, vol = lesion_ct
    truth = _two_lesions()
    liver = np.zeros(LESION_SHAPE, bool)
    liver[1:11, 2:38, 2:38] = True
    data = seg_bytes(datasets, {"Liver": liver & ~truth, "Tumor": truth}, seg_type=seg_type)
    frames = int(pydicom.dcmread(io.BytesIO(data)).NumberOfFrames)
    assert frames == (12 if seg_type == "BINARY" else 10)  # empty frames are left out
    ms = read_mask(data, "seg", vol)
    np.testing.assert_array_equal(ms.masks["lesion"], truth)
    assert ms.masks["lesion"].sum() * vol.voxel_volume_ml == pytest.approx(2.0)
    np.testing.assert_array_equal(ms.masks["liver"], liver & ~truth)


def _drop_plane_positions(data: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    for fg in ds.PerFrameFunctionalGroupsSequence:
        del fg.PlanePositionSequence
    return to_bytes(ds)


def test_seg_frames_without_plane_position_are_placed_on_their_source_image(lesion_ct):
    datasets, vol = lesion_ct
    truth = _two_lesions()
    data = _drop_plane_positions(seg_bytes(datasets, {"Tumor": truth}))
    np.testing.assert_array_equal(read_mask(data, "seg", vol).masks["lesion"], truth)


def test_seg_frames_with_neither_position_nor_source_image_are_refused(lesion_ct):
    datasets, vol = lesion_ct
    ds = pydicom.dcmread(io.BytesIO(_drop_plane_positions(
        seg_bytes(datasets, {"Tumor": _two_lesions()}))))
    for fg in ds.PerFrameFunctionalGroupsSequence:
        del fg.DerivationImageSequence
    with pytest.raises(MaskError, match=r"frame 1 has no Plane Position \(0020,9113\) and its "
                                        r"Derivation Image \(0008,9124\) names no slice"):
        read_mask(to_bytes(ds), "seg", vol)


def test_seg_frames_between_the_image_slices_need_their_slice_spacing(lesion_ct):
    datasets, vol = lesion_ct
    ds = pydicom.dcmread(io.BytesIO(seg_bytes(datasets, {"Tumor": _two_lesions()})))
    for fg in ds.PerFrameFunctionalGroupsSequence:
        pos = fg.PlanePositionSequence[0]
        pos.ImagePositionPatient = [*pos.ImagePositionPatient[:2],
                                    float(pos.ImagePositionPatient[2]) + 1.5]
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SpacingBetweenSlices) == 4.0
    # 1.5 mm off a 4 mm slice grid: each frame's nearest slice is the one it was drawn on
    np.testing.assert_array_equal(read_mask(to_bytes(ds), "seg", vol).masks["lesion"],
                                  _two_lesions())
    del measures.SpacingBetweenSlices
    with pytest.raises(MaskError, match=r"frames lie between the image's slices .* no Spacing "
                                        r"Between Slices"):
        read_mask(to_bytes(ds), "seg", vol)


def test_seg_frames_beyond_the_image_slices_are_refused(lesion_ct):
    datasets, vol = lesion_ct
    ds = pydicom.dcmread(io.BytesIO(seg_bytes(datasets, {"Tumor": _two_lesions()})))
    for fg in ds.PerFrameFunctionalGroupsSequence:
        pos = fg.PlanePositionSequence[0]
        pos.ImagePositionPatient = [*pos.ImagePositionPatient[:2],
                                    float(pos.ImagePositionPatient[2]) + 200.0]
    with pytest.raises(MaskError, match=r"none of its frames lies on the image series' slices "
                                        r"\(frames 212\.0\.\.232\.0 mm along the normal, "
                                        r"slices 0\.0\.\.44\.0 mm"):
        read_mask(to_bytes(ds), "seg", vol)


# --------------------------------------------------------------------------- RTSTRUCT
def _grid(shape=(4, 32, 32)) -> Volume:
    return Volume(array=np.zeros(shape, np.float32), spacing_mm=(1.0, 1.0, 1.0),
                  origin_mm=(0.0, 0.0, 0.0), direction=np.eye(3), frame_of_reference_uid="1.2.3")


def _square(x0, x1, y0, y1, z) -> list[float]:
    return [v for p in ((x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)) for v in p]


def rtstruct_bytes(rois: dict[str, list[list[float]]], frame_uid: str = "1.2.3",
                   series_uid: str = "1.2.3.4") -> bytes:
    ds = Dataset()
    ds.file_meta = Dataset()
    from pydicom.dataset import FileMetaDataset

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    fref = Dataset()
    fref.FrameOfReferenceUID = frame_uid
    study = Dataset()
    ser = Dataset()
    ser.SeriesInstanceUID = series_uid
    study.RTReferencedSeriesSequence = DicomSequence([ser])
    fref.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([fref])
    ssr, rcs = [], []
    for n, (name, contours) in enumerate(rois.items(), start=1):
        r = Dataset()
        r.ROINumber, r.ROIName, r.ReferencedFrameOfReferenceUID = n, name, frame_uid
        ssr.append(r)
        rc = Dataset()
        rc.ReferencedROINumber = n
        items = []
        for pts in contours:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR" if len(pts) > 3 else "POINT"
            c.NumberOfContourPoints = len(pts) // 3
            c.ContourData = [f"{v:g}" for v in pts]
            items.append(c)
        rc.ContourSequence = DicomSequence(items)
        rcs.append(rc)
    ds.StructureSetROISequence = DicomSequence(ssr)
    ds.ROIContourSequence = DicomSequence(rcs)
    return to_bytes(ds)


def test_rtstruct_contours_are_rasterised_with_holes():
    grid = _grid()
    data = rtstruct_bytes({
        "Leber": [_square(4.5, 20.5, 4.5, 20.5, 2.0), _square(8.5, 12.5, 8.5, 12.5, 2.0)],
        "Milz": [_square(24.5, 28.5, 2.5, 5.5, 1.0), [30.0, 30.0, 1.0]],
        "Body": [_square(0.5, 30.5, 0.5, 30.5, 1.0)],
    })
    ms = read_mask(data, "rtstruct", grid)
    assert sorted(ms.masks) == ["liver", "spleen"]
    truth = np.zeros(grid.shape, bool)
    truth[2, 5:21, 5:21] = True
    truth[2, 9:13, 9:13] = False  # the inner contour is a hole
    np.testing.assert_array_equal(ms.masks["liver"], truth)
    assert ms.masks["liver"].sum() == 16 * 16 - 4 * 4
    spleen = np.zeros(grid.shape, bool)
    spleen[1, 3:6, 25:29] = True  # rows are y (3..5), columns x (25..28)
    np.testing.assert_array_equal(ms.masks["spleen"], spleen)


def test_rtstruct_in_patient_coordinates_on_a_shifted_oblique_free_grid():
    grid = Volume(array=np.zeros((3, 20, 20), np.float32), spacing_mm=(2.5, 0.5, 0.5),
                  origin_mm=(-5.0, 10.0, 100.0), direction=np.eye(3),
                  frame_of_reference_uid="1.2.3")
    # x from -3.9 to -1.1 mm -> columns 3..7; y 11.1..12.9 -> rows 3..5; z 105 -> slice 2
    data = rtstruct_bytes({"liver": [_square(-3.9, -1.1, 11.1, 12.9, 105.0)]})
    ms = read_mask(data, "rtstruct", grid)
    truth = np.zeros(grid.shape, bool)
    truth[2, 3:6, 3:8] = True
    np.testing.assert_array_equal(ms.masks["liver"], truth)


def test_rtstruct_contour_between_slices_is_refused():
    data = rtstruct_bytes({"liver": [[4, 4, 1.0, 10, 4, 2.0, 10, 10, 2.0, 4, 10, 1.0]]})
    with pytest.raises(MaskError, match=r"contour that is not in the plane of an image slice"):
        read_mask(data, "rtstruct", _grid())


def test_rtstruct_frame_of_reference_mismatch():
    data = rtstruct_bytes({"liver": [_square(4.5, 8.5, 4.5, 8.5, 1.0)]}, frame_uid="9.9.9")
    with pytest.raises(MaskError, match=r"FrameOfReferenceUID 9\.9\.9 does not match"):
        read_mask(data, "rtstruct", _grid())


# --------------------------------------------------------------------------- NIfTI
def _nifti(arr_ijk: np.ndarray, affine: np.ndarray, gz: bool = True) -> bytes:
    img = nib.Nifti1Image(arr_ijk, affine)
    raw = img.to_bytes()
    if gz:
        import gzip

        return gzip.compress(raw)
    return raw


def test_nifti_ras_affine_is_flipped_to_lps():
    grid = _grid((3, 6, 8))  # LPS identity, origin 0, 1 mm
    nz, ny, nx = grid.shape
    marker = (1, 2, 5)  # (k, j, i) in the DICOM grid: x = 5 mm (L), y = 2 mm (P), z = 1
    # (a) the usual DICOM-derived NIfTI: affine diag(-1, -1, 1): voxel (i, j, k) at RAS
    # (-i, -j, k) == LPS (i, j, k), so the array is simply transposed.
    a = np.zeros((nx, ny, nz), np.uint8)
    a[5, 2, 1] = 1
    ms = read_mask(_nifti(a, np.diag([-1.0, -1.0, 1.0, 1.0])), "nifti", grid, name="liver.nii.gz")
    assert list(zip(*np.nonzero(ms.masks["liver"]), strict=True)) == [marker]
    # (b) a RAS-oriented array: voxel (i, j, k) at RAS (i - 7, j - 5, k) = LPS (7 - i, 5 - j, k),
    # so the same LPS point (5, 2, 1) is voxel i = 2, j = 3.
    b = np.zeros((nx, ny, nz), np.uint8)
    b[2, 3, 1] = 1
    ras = np.eye(4)
    ras[:3, 3] = [-(nx - 1), -(ny - 1), 0]
    ms_b = read_mask(_nifti(b, ras, gz=False), "nifti", grid, name="liver.nii")
    assert list(zip(*np.nonzero(ms_b.masks["liver"]), strict=True)) == [marker]


def test_nifti_label_map_with_names_and_resampling():
    grid = _grid((4, 16, 16))
    lab = np.zeros((8, 8, 2), np.int16)  # 2 mm voxels covering the same extent, LPS-aligned
    lab[1:3, 2:4, 1] = 1
    lab[5, 5, 0] = 2
    aff = np.diag([-2.0, -2.0, 2.0, 1.0])
    aff[:3, 3] = [-0.5, -0.5, 0.5]  # centre of NIfTI voxel 0 = LPS (0.5, 0.5, 0.5)
    ms = read_mask(_nifti(lab, aff), "nifti", grid, labels={1: "Liver", 2: "HCC", 3: "x"})
    liver = np.zeros(grid.shape, bool)
    # ref voxel x -> NIfTI i = round((x - 0.5) / 2): x in 2..5 -> i in 1..2
    liver[2:4, 4:8, 2:6] = True
    np.testing.assert_array_equal(ms.masks["liver"], liver)
    lesion = np.zeros(grid.shape, bool)
    lesion[0:2, 10:12, 10:12] = True
    np.testing.assert_array_equal(ms.masks["lesion"], lesion)


def test_nifti_labels_without_names_are_refused():
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[0, 0, 0], lab[1, 1, 1] = 1, 2
    with pytest.raises(MaskError, match=r"labels \[1, 2\] but no label names"):
        read_mask(_nifti(lab, np.eye(4)), "nifti", _grid((4, 4, 4)), name="seg.nii.gz")


def test_gzip_bomb_in_nifti_is_bounded():
    import gzip
    from dataclasses import replace

    from analytics.config import IngestLimits

    bomb = gzip.compress(b"\0" * (4 << 20))
    with pytest.raises(MaskError, match=r"inflates to more than 1024 bytes"):
        read_mask(bomb, "nifti", _grid(), name="liver.nii.gz",
                  limits=replace(IngestLimits(), max_inflated_bytes=1024))


# --------------------------------------------------------------------------- synonyms
@pytest.mark.parametrize(("name", "code", "expected"), [
    ("Liver", None, "liver"), ("liver_total", None, "liver"), ("LEBER", None, "liver"),
    ("Hepatic vessels", None, "liver_vessels"), ("portal vein and hepatic veins", None,
                                                  "liver_vessels"),
    ("Portal-Vein", None, "liver_vessels"), ("Spleen", None, "spleen"), ("Tumor", None, "lesion"),
    ("HCC", None, "lesion"), ("lesion", None, "lesion"), ("Kidney", None, None),
    ("Segment 1", "SCT:10200004", "liver"), (None, "78961009", "spleen"),
    ("x", "SRT:T-62000", "liver"), ("x", "SCT:32764006", "liver_vessels"),
    ("x", "SCT:108369006", "lesion"), ("x", "SCT:25370001", "lesion"),
    ("Tissue", "SCT:85756007", None),
])
def test_canonical_structure(name, code, expected):
    assert canonical_structure(name, code) == expected


def test_generic_vessel_code_in_the_liver_region():
    assert canonical_structure("Vessels", "SCT:59820001", "SCT:10200004") == "liver_vessels"
    assert canonical_structure("Vessels", "SCT:59820001", "SCT:78961009") is None


def test_synonym_table_maps_only_to_canonical_names():
    assert set(SYNONYMS.values()) == set(STRUCTURES) == {
        "liver", "spleen", "liver_vessels", "lesion", "portal_splenic_vein",
        "inferior_vena_cava", "aorta"}
    assert codes.SCT.Liver.value == "10200004" and codes.SCT.Spleen.value == "78961009"
