"""DICOM-building helpers and fixtures for the ingest tests (reusable by other ingest tests).

Everything is built here with pydicom/highdicom: small CT/MR series (32x32 by default) with
known geometry and HU values, enhanced multi-frame CT, SEG, RTSTRUCT and NIfTI.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from analytics.config import IngestLimits
from analytics.ingest.reader import SafeParser
from analytics.ingest.sources import SourceItem

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def to_bytes(ds: Dataset) -> bytes:
    """Encode a dataset as a DICOM Part 10 file (preamble, DICM, file meta)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def item(name: str, data: bytes) -> SourceItem:
    return SourceItem.from_bytes(name, data)


def _meta(sop_class: str, sop_uid: str, ts: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ts
    return meta


def ct_slice(pixels: np.ndarray, position: Sequence[float], *, orientation=AXIAL,
             pixel_spacing=(0.8, 0.8), slope: float = 1.0, intercept: float = -1024.0,
             series_uid: str | None = None, study_uid: str | None = None,
             frame_uid: str | None = None, instance_number: int = 1, modality: str = "CT",
             description: str = "", patient_id: str = "PAT001",
             ts: str = ExplicitVRLittleEndian) -> Dataset:
    """One classic CT (or MR) image; ``pixels`` are stored values (uint16 or int16)."""
    sop_class = CT_IMAGE if modality == "CT" else MR_IMAGE
    ds = Dataset()
    ds.file_meta = _meta(sop_class, generate_uid(), ts)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = frame_uid or generate_uid()
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = "Test^Patient"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = "A1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.Manufacturer = "HepaTrack tests"
    ds.SeriesDescription = description
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [f"{float(v):.4f}" for v in position]
    ds.ImageOrientationPatient = [f"{float(v):.6f}" for v in orientation]
    ds.PixelSpacing = [f"{float(v):.4f}" for v in pixel_spacing]
    ds.SliceThickness = "2.5"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    if modality == "CT" or slope != 1.0 or intercept != 0.0:
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def hu_phantom(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Known HU values [z, y, x]: a gradient plus a bright cube, integers in [-1000, 1500]."""
    z, y, x = np.indices(shape)
    vol = -1000 + 10 * x + 3 * y + 40 * z
    vol[shape[0] // 4: shape[0] // 2, 4:12, 6:14] = 1500
    rng = np.random.default_rng(seed)
    return (vol + rng.integers(0, 3, size=shape)).astype(np.int32)


def ct_series(hu: np.ndarray, *, spacing=(2.5, 0.8, 0.8), origin=(-12.0, -20.0, 100.0),
              orientation=AXIAL, slope: float = 1.0, intercept: float = -1024.0,
              positions: Sequence[Sequence[float]] | None = None, shuffle: bool = True,
              **kw) -> list[Dataset]:
    """A classic single-frame series whose rescaled values are ``hu`` ([z, y, x]).

    Slices lie along the normal of ``orientation`` at ``spacing[0]``; InstanceNumbers are
    deliberately scrambled (and the list shuffled) so sorting must use positions.
    """
    series_uid, study_uid = generate_uid(), generate_uid()
    frame_uid = kw.pop("frame_uid", None) or generate_uid()
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    out = []
    n = hu.shape[0]
    for k in range(n):
        stored = np.round((hu[k] - intercept) / slope)
        dtype = np.int16 if stored.min() < 0 else np.uint16
        pos = (positions[k] if positions is not None
               else np.asarray(origin) + normal * spacing[0] * k)
        out.append(ct_slice(stored.astype(dtype), pos, orientation=orientation,
                            pixel_spacing=spacing[1:], slope=slope, intercept=intercept,
                            series_uid=series_uid, study_uid=study_uid, frame_uid=frame_uid,
                            instance_number=n - k, **kw))
    if shuffle:
        np.random.default_rng(1).shuffle(out)
    return out


def enhanced_ct(hu: np.ndarray, *, spacing=(2.5, 0.8, 0.8), origin=(-12.0, -20.0, 100.0),
                orientation=AXIAL, slope: float = 1.0, intercept: float = -1024.0,
                shared_geometry: bool = True, frame_order: Sequence[int] | None = None
                ) -> Dataset:
    """An Enhanced CT Image (multi-frame) holding ``hu`` with per-frame positions.

    Orientation, pixel measures and rescale are in the shared functional groups when
    ``shared_geometry`` is True, else repeated per frame. ``frame_order`` stores the slices
    in that (non-spatial) order.
    """
    n = hu.shape[0]
    order = list(frame_order) if frame_order is not None else list(range(n))
    ds = Dataset()
    ds.file_meta = _meta(ENHANCED_CT, generate_uid(), ExplicitVRLittleEndian)
    ds.SOPClassUID = ENHANCED_CT
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientID = "PAT002"
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.Rows, ds.Columns = hu.shape[1:]
    ds.NumberOfFrames = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1

    def measures() -> Dataset:
        m = Dataset()
        m.PixelSpacing = [f"{v:g}" for v in spacing[1:]]
        m.SliceThickness = f"{spacing[0]:g}"
        return m

    def plane_orientation() -> Dataset:
        o = Dataset()
        o.ImageOrientationPatient = [f"{v:g}" for v in orientation]
        return o

    def transform() -> Dataset:
        t = Dataset()
        t.RescaleSlope, t.RescaleIntercept, t.RescaleType = f"{slope:g}", f"{intercept:g}", "HU"
        return t

    shared = Dataset()
    if shared_geometry:
        shared.PixelMeasuresSequence = DicomSequence([measures()])
        shared.PlaneOrientationSequence = DicomSequence([plane_orientation()])
        shared.PixelValueTransformationSequence = DicomSequence([transform()])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    normal = np.cross(orientation[:3], orientation[3:])
    frames, stored = [], []
    for k in order:
        fg = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [f"{v:.4f}" for v in np.asarray(origin) + normal * spacing[0] * k]
        fg.PlanePositionSequence = DicomSequence([pos])
        if not shared_geometry:
            fg.PixelMeasuresSequence = DicomSequence([measures()])
            fg.PlaneOrientationSequence = DicomSequence([plane_orientation()])
            fg.PixelValueTransformationSequence = DicomSequence([transform()])
        frames.append(fg)
        stored.append(np.round((hu[k] - intercept) / slope).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = np.stack(stored).tobytes()
    return ds


def write_files(folder: Path, blobs: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in blobs.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def limits() -> IngestLimits:
    """Small limits so hostile cases trip quickly; parse memory stays generous for numpy."""
    return IngestLimits(max_upload_bytes=64 << 20, max_series_bytes=32 << 20,
                        max_file_bytes=16 << 20, max_zip_entries=200, max_zip_ratio=50.0,
                        max_pixel_bytes=8 << 20, max_inflated_bytes=8 << 20,
                        parse_memory_bytes=1 << 30, parse_timeout_s=20.0)


@pytest.fixture
def store(settings):
    """The open store of the test's home (disposed afterwards)."""
    from analytics.store import open_store

    s = open_store(settings)
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def parser(limits: IngestLimits) -> Iterator[SafeParser]:
    """One worker pool for the whole session (worker start-up costs ~0.1 s)."""
    with SafeParser(limits, workers=2) as p:
        yield p


@pytest.fixture(scope="session")
def parse_bytes(parser: SafeParser) -> Callable:
    def run(data: bytes, name: str = "file.dcm"):
        return parser.parse(item(name, data))

    return run
