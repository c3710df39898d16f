"""Write a ``SyntheticVolume`` as a CT Image Storage series and a DICOM SEG.

CT: one file per slice, Explicit VR Little Endian, 16-bit allocated / 12-bit stored
unsigned values with RescaleSlope 1 and RescaleIntercept -1024 (so stored 0 is -1024 HU),
ImageOrientationPatient ``[1, 0, 0, 0, 1, 0]``, PixelSpacing ``[row, column]`` spacing =
``[y, x]``. Slices are stored in ascending z (head-first reading order, instance 1 most
inferior) or, with ``slice_order="descending"``, instance 1 most superior.

SEG: highdicom BINARY segmentation of the whole liver (including vessels and lesions), the
spleen, the hepatic vessels and (when present) liver lesions, referencing every CT slice.

All UIDs are ``2.25.`` UIDs of name-based UUIDs of caller-supplied seeds, and no
wall-clock time is written, so output bytes are reproducible.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from analytics.synthetic.phantom import LABELS, SyntheticVolume

__all__ = ["DicomIdentity", "derived_uid", "seg_segments", "write_ct_series", "write_seg"]

GENERATOR = "HepaTrack synthetic cohort"
GENERATOR_VERSION = "1"
MANUFACTURER = "HepaTrack Phantom Works"
MODEL_NAME = "SynthCT 64"
PRIVATE_GROUP, PRIVATE_CREATOR = 0x0099, "HEPATRACK SYNTH"
SLICE_ORDERS = ("ascending", "descending")


def derived_uid(*parts: object) -> str:
    """A deterministic ``2.25.`` UID (PS3.5 B.2) from a name-based UUID of the parts.

    ``generate_uid(prefix=None, entropy_srcs=...)`` ignores its entropy and returns a
    random UUID in pydicom 3, so the UUID is derived here (RFC 4122 version 5).
    """
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, 'hepatrack-synthetic/' + name).int}"


@dataclass(frozen=True)
class DicomIdentity:
    """Patient, study, series and site attributes of one synthetic series."""

    patient_id: str
    patient_name: str
    birth_date: date
    sex: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    study_date: date
    study_time: str  # HHMMSS
    accession_number: str
    study_id: str = "1"
    series_number: int = 2
    institution_name: str = "Synthetic General Hospital"
    station_name: str = "SYNCT01"
    referring_physician: str = "HOUSE^GREGORY^^DR"
    patient_weight_kg: float | None = None
    patient_size_m: float | None = None


def _age_string(birth: date, on: date) -> str:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{max(years, 0):03d}Y"


def _header(vol: SyntheticVolume, ident: DicomIdentity, slice_thickness_mm: float,
            kvp: float) -> Dataset:
    """Attributes shared by every slice of the series."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    day = ident.study_date.strftime("%Y%m%d")
    t0 = ident.study_time
    start = datetime.combine(ident.study_date, datetime.strptime(t0, "%H%M%S").time())
    # the series starts a few minutes after the study (scout first); never past midnight
    series_time = min(start + timedelta(minutes=3),
                      datetime.combine(ident.study_date, time(23, 59, 59))).strftime("%H%M%S")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day
    ds.StudyTime = t0
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = series_time
    ds.AccessionNumber = ident.accession_number
    ds.Modality = "CT"
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = ident.institution_name
    ds.ReferringPhysicianName = ident.referring_physician
    ds.StationName = ident.station_name
    enhanced = vol.contrast_phase == "portal_venous"
    ds.StudyDescription = "CT ABDOMEN"
    ds.SeriesDescription = f"ABD {'PORTAL VENOUS' if enhanced else 'NON-CONTRAST'} " \
                           f"{slice_thickness_mm:g}mm"
    ds.ManufacturerModelName = MODEL_NAME
    ds.PatientName = ident.patient_name
    ds.PatientID = ident.patient_id
    ds.PatientBirthDate = ident.birth_date.strftime("%Y%m%d")
    ds.PatientSex = ident.sex
    ds.PatientAge = _age_string(ident.birth_date, ident.study_date)
    if ident.patient_weight_kg is not None:
        ds.PatientWeight = f"{ident.patient_weight_kg:.1f}"
    if ident.patient_size_m is not None:
        ds.PatientSize = f"{ident.patient_size_m:.2f}"
    if enhanced:
        ds.ContrastBolusAgent = "IOHEXOL 350 MG I/ML"
        ds.ContrastBolusRoute = "IV"
        ds.ContrastBolusVolume = "100"
        ds.ContrastBolusStartTime = t0
    ds.BodyPartExamined = "ABDOMEN"
    ds.SliceThickness = f"{slice_thickness_mm:g}"
    ds.KVP = f"{kvp:g}"
    ds.SpacingBetweenSlices = f"{vol.spacing_mm[0]:g}"
    ds.SoftwareVersions = f"{GENERATOR} {GENERATOR_VERSION}"
    ds.ProtocolName = "LIVER"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = ident.study_uid
    ds.SeriesInstanceUID = ident.series_uid
    ds.StudyID = ident.study_id
    ds.SeriesNumber = ident.series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(vol.hu.shape[1]), int(vol.hu.shape[2])
    ds.PixelSpacing = [f"{vol.spacing_mm[1]:g}", f"{vol.spacing_mm[2]:g}"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", f"{GENERATOR} {GENERATOR_VERSION}")
    return ds


def write_ct_series(vol: SyntheticVolume, out_dir: str | Path, ident: DicomIdentity, *,
                    slice_order: str = "ascending", slice_thickness_mm: float | None = None,
                    kvp: float = 120.0) -> list[Path]:
    """Write ``vol`` as one CT Image Storage file per slice.

    Parameters
    ----------
    vol
        The volume (HU within [-1024, 3071]).
    out_dir
        Directory to write ``IM0001.dcm`` ... into (created).
    ident
        Patient/study/series identity; instance UIDs derive from ``ident.series_uid``
        and the slice's z index.
    slice_order
        ``"ascending"`` (instance 1 most inferior) or ``"descending"`` (instance 1 most
        superior, the order of a feet-first stored series).
    slice_thickness_mm
        Nominal reconstructed thickness (default: the slice spacing).
    kvp
        Tube voltage.

    Returns
    -------
    list of Path
        Written files in instance-number order.

    Raises
    ------
    ValueError
        If ``slice_order`` is unknown or HU values fall outside the 12-bit range.
    """
    return _write_ct_series(vol, out_dir, ident, slice_order=slice_order,
                            slice_thickness_mm=slice_thickness_mm, kvp=kvp)[0]


def _write_ct_series(vol: SyntheticVolume, out_dir: str | Path, ident: DicomIdentity, *,
                     slice_order: str, slice_thickness_mm: float | None,
                     kvp: float) -> tuple[list[Path], list[Dataset]]:
    """``write_ct_series`` that also returns the datasets, headers only (for the SEG)."""
    if slice_order not in SLICE_ORDERS:
        raise ValueError(f"slice_order: expected one of {SLICE_ORDERS}, got {slice_order!r}")
    if vol.hu.min() < -1024 or vol.hu.max() > 3071:
        raise ValueError("hu: values must lie in [-1024, 3071] for 12-bit storage")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    thickness = vol.spacing_mm[0] if slice_thickness_mm is None else slice_thickness_mm
    header = _header(vol, ident, thickness, kvp)
    stored = (vol.hu.astype(np.int32) + 1024).astype(np.uint16)
    nz = stored.shape[0]
    order = range(nz) if slice_order == "ascending" else range(nz - 1, -1, -1)
    ox, oy, oz = vol.origin_mm
    paths, datasets = [], []
    encoder = _SliceEncoder(header)
    for number, k in enumerate(order, start=1):
        ds = Dataset()
        ds.update(header)
        uid = derived_uid("ct-instance", ident.series_uid, k)
        ds.SOPInstanceUID = uid
        ds.InstanceNumber = number
        z = oz + k * vol.spacing_mm[0]
        ds.ImagePositionPatient = [f"{ox:.4f}", f"{oy:.4f}", f"{z:.4f}"]
        ds.SliceLocation = f"{z:.4f}"
        ds.PixelData = stored[k].tobytes()
        ds["PixelData"].VR = "OW"  # 16 bits allocated
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = out / f"IM{number:04d}.dcm"
        path.write_bytes(encoder.encode(ds))
        del ds.PixelData  # the SEG needs the headers only; keep memory down on 512 x 512
        paths.append(path)
        datasets.append(ds)
    return paths, datasets


#: the attributes that differ between the slices of a series, in tag order
_PER_SLICE_TAGS = (0x00080018, 0x00200013, 0x00200032, 0x00201041, 0x7FE00010)


def _encode(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    write_dataset(fp, ds)
    return fp.getvalue()


class _SliceEncoder:
    """Explicit VR Little Endian files of one series with the shared header encoded once.

    Encoding ~70 header elements per slice is most of pydicom's writing time; here the
    header runs between the per-slice tags are encoded once and spliced around each
    slice's own elements, giving the same bytes as ``Dataset.save_as`` (tested).
    """

    def __init__(self, header: Dataset) -> None:
        bounds = (-1, *_PER_SLICE_TAGS)
        self.runs = []
        for lo, hi in itertools.pairwise(bounds):
            part = Dataset()
            for elem in header:
                if lo < elem.tag < hi:
                    part.add(elem)
            self.runs.append(_encode(part))

    def encode(self, ds: Dataset) -> bytes:
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = False, True
        fp.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
        for run, tag in zip(self.runs, _PER_SLICE_TAGS, strict=True):
            fp.write(run)
            one = Dataset()
            one.add(ds[tag])
            fp.write(_encode(one))
        return fp.getvalue()


def _segment(number: int, label: str, category, prop_type,
             region=None) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=category,
        segmented_property_type=prop_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=GENERATOR, version=GENERATOR_VERSION, family=codes.DCM.AnalyticalAlgorithm),
        anatomic_regions=[region] if region is not None else None,
    )


def seg_segments(vol: SyntheticVolume) -> list[tuple[str, tuple[int, ...], object, object,
                                                     object]]:
    """The segments written to the SEG: ``(label, label values, category, type, region)``.

    A segment is the union of the listed ``LABELS`` values; "Liver lesion" only when the
    volume has lesion voxels.
    """
    liver, vessels, lesion = LABELS["liver"], LABELS["liver_vessels"], LABELS["lesion"]
    segs = [
        ("Liver", (liver, vessels, lesion), codes.SCT.Organ, codes.SCT.Liver, None),
        ("Spleen", (LABELS["spleen"],), codes.SCT.Organ, codes.SCT.Spleen, None),
        ("Hepatic vessels", (vessels,), codes.SCT.AnatomicalStructure, codes.SCT.BloodVessel,
         codes.SCT.Liver),
    ]
    if vol.truth.get("lesion_volume_ml", 1.0) > 0 and (vol.labels == lesion).any():
        segs.append(("Liver lesion", (lesion,), codes.SCT.MorphologicallyAbnormalStructure,
                     codes.SCT.Lesion, codes.SCT.Liver))
    return segs


def write_seg(vol: SyntheticVolume, ct_files: Sequence[Path | Dataset], out_path: str | Path,
              ident: DicomIdentity, *, seg_series_uid: str, seg_sop_uid: str,
              series_number: int = 300) -> Path:
    """Write the reference masks of ``vol`` as a BINARY DICOM SEG over ``ct_files``.

    Parameters
    ----------
    vol
        The volume whose label map is written.
    ct_files
        The CT files written by ``write_ct_series`` for ``vol`` (any order), as paths or
        as already-read datasets.
    out_path
        File to write.
    ident
        The CT series' identity (dates and times are reused so output is reproducible).
    seg_series_uid, seg_sop_uid
        UIDs of the SEG series and instance.

    Returns
    -------
    Path
        ``out_path``.
    """
    sources = [p if isinstance(p, Dataset) else pydicom.dcmread(p) for p in ct_files]
    # frame i of the SEG is the plane of sources[i]; map each to its z index in ``vol``
    z0, dz = vol.origin_mm[2], vol.spacing_mm[0]
    z_index = [round((float(ds.ImagePositionPatient[2]) - z0) / dz) for ds in sources]
    segs = seg_segments(vol)
    frames = vol.labels[z_index]
    # filled segment by segment: no full-size boolean mask per segment is kept around
    pixels = np.empty((*frames.shape, len(segs)), np.uint8)
    for j, (_, values, *_) in enumerate(segs):
        pixels[..., j] = np.isin(frames, values)
    del frames
    descriptions = [_segment(i + 1, label, cat, typ, reg)
                    for i, (label, _, cat, typ, reg) in enumerate(segs)]
    day = ident.study_date
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=seg_series_uid,
        series_number=series_number,
        sop_instance_uid=seg_sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=GENERATOR,
        software_versions=GENERATOR_VERSION,
        device_serial_number="SYN-0001",
        content_description="Synthetic ground truth",
        content_label="GROUNDTRUTH",
        series_description="Ground truth segmentation",
        content_date=day,
        content_time=sources[0].ContentTime,
        series_date=day,
        series_time=sources[0].SeriesTime,
    )
    # highdicom stamps the wall clock and a random dimension-organisation UID
    seg.InstanceCreationDate = day.strftime("%Y%m%d")
    seg.InstanceCreationTime = sources[0].ContentTime
    for item in seg.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = f"{day:%Y%m%d}{sources[0].ContentTime}"
    dim_uid = derived_uid("seg-dimension", seg_sop_uid)
    for item in seg.DimensionOrganizationSequence:
        item.DimensionOrganizationUID = dim_uid
    for item in seg.DimensionIndexSequence:
        item.DimensionOrganizationUID = dim_uid
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out, enforce_file_format=True)
    return out
