"""Synthetic quantitative MR of the liver with known truth.

One study of one patient, written as the vendors write it:

- ``pdff``: proton-density fat fraction map. ``pdff_encoding="rwvm"`` stores per mille
  with a Real World Value Mapping to percent (UCUM ``%``, slope 0.1), Image Type
  ``DERIVED\\PRIMARY\\PDFF``; ``"per_mille"`` stores per mille without any unit in the
  header (Image Type ``DERIVED\\PRIMARY\\DIXON\\FF``, description ``FF``), as fat-fraction
  maps often arrive, so the reader must establish the scale itself.
- ``r2star``: R2* map, stored in 0.1/s with a mapping to ``/s``.
- ``mre``: MR elastography stiffness map, four 10 mm slices through the liver, stored in
  Pa with a mapping to ``kPa`` (slope 0.001).
- ``dixon_fat`` and ``dixon_water``: two-point Dixon magnitude images; their signal fat
  fraction F/(F+W) equals the PDFF here (the phantom has no T1 or T2* bias, no noise floor).
- ``t1``: an anatomical T1-weighted series without a mask.

The body is an elliptical cylinder with a 15 mm subcutaneous fat layer (fat fraction
95 %, as real subcutaneous fat reads on PDFF maps); the liver an ellipsoid. Each map
except ``t1`` gets a DICOM SEG of the liver on its own grid. Voxel values carry small
Gaussian noise with a fixed seed; the truth is the value every liver voxel was drawn
around, and the liver volume is the mask's voxel count times the voxel volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from analytics.synthetic.dicom_writer import GENERATOR, GENERATOR_VERSION, MANUFACTURER, derived_uid

__all__ = ["MR_SERIES", "MrMapTruth", "MrStudy", "write_mr_study"]

#: the series of a study, in writing order
MR_SERIES = ("pdff", "r2star", "mre", "dixon_fat", "dixon_water", "t1")
#: in-plane grid (rows = columns) and pixel size; 3-D series slices
_N, _PIXEL_MM = 80, 4.0
_SLICES_3D, _SLICE_3D_MM = 20, 5.0
_SLICES_MRE, _SLICE_MRE_MM = 4, 10.0
#: liver ellipsoid centre (x, y, z) and radii, mm, in LPS patient coordinates
_LIVER_C = (-40.0, 10.0, 0.0)
_LIVER_R = (70.0, 60.0, 42.0)
_BODY_R = (150.0, 110.0)
_SUBCUT_MM = 15.0
_SUBCUT_FF = 95.0


@dataclass(frozen=True)
class MrMapTruth:
    """What the liver of the phantom holds (every liver voxel is drawn around these)."""

    pdff_pct: float
    r2star_per_s: float
    stiffness_kpa: float
    signal_fat_fraction_pct: float
    liver_volume_ml: float  # on the 3-D grid (PDFF, R2*, Dixon)

    def as_dict(self) -> dict[str, float]:
        return {"pdff_pct": self.pdff_pct, "r2star_per_s": self.r2star_per_s,
                "stiffness_kpa": self.stiffness_kpa,
                "signal_fat_fraction_pct": self.signal_fat_fraction_pct,
                "liver_volume_ml": self.liver_volume_ml}


@dataclass
class MrStudy:
    """Files written by :func:`write_mr_study`: images and masks by series key."""

    truth: MrMapTruth
    images: dict[str, list[Path]] = field(default_factory=dict)
    masks: dict[str, Path] = field(default_factory=dict)
    series_uids: dict[str, str] = field(default_factory=dict)

    def files(self, *keys: str, with_masks: bool = True) -> list[Path]:
        """The image files (and SEGs) of ``keys`` (every series when none is named)."""
        out: list[Path] = []
        for k in keys or MR_SERIES:
            out += self.images.get(k, [])
            if with_masks and k in self.masks:
                out.append(self.masks[k])
        return out


def _grid(n_slices: int, thickness: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient (x, y, z) of every voxel centre, each [z, y, x]; centred on the liver."""
    half = (_N - 1) / 2.0
    xy = (np.arange(_N) - half) * _PIXEL_MM
    z = _LIVER_C[2] + (np.arange(n_slices) - (n_slices - 1) / 2.0) * thickness
    return np.meshgrid(z, xy, xy, indexing="ij")[::-1]  # x, y, z


def _tissues(n_slices: int, thickness: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(liver, subcutaneous fat, other body) masks on a grid."""
    x, y, z = _grid(n_slices, thickness)
    body = (x / _BODY_R[0]) ** 2 + (y / _BODY_R[1]) ** 2 <= 1.0
    inner = ((x / (_BODY_R[0] - _SUBCUT_MM)) ** 2 + (y / (_BODY_R[1] - _SUBCUT_MM)) ** 2
             <= 1.0)
    liver = sum(((c - c0) / r) ** 2 for c, c0, r in zip((x, y, z), _LIVER_C, _LIVER_R,
                                                        strict=True)) <= 1.0
    return liver & inner, body & ~inner, inner & ~liver


def _map(n_slices: int, thickness: float, liver_v: float, sd: float, fat_v: float,
         other_v: float, seed: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    liver, fat, other = _tissues(n_slices, thickness)
    out = np.zeros(liver.shape, np.float64)
    out[liver], out[fat], out[other] = liver_v, fat_v, other_v
    body = liver | fat | other
    rng = np.random.default_rng(list(seed))
    out[body] += rng.normal(0.0, sd, size=int(body.sum()))
    return out, liver


def _rwvm(slope: float, code: str, meaning: str, label: str, top: int) -> Dataset:
    units = Dataset()
    units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning = code, "UCUM", meaning
    item = Dataset()
    item.RealWorldValueFirstValueMapped, item.RealWorldValueLastValueMapped = 0, top
    item.RealWorldValueIntercept, item.RealWorldValueSlope = 0.0, slope
    item.LUTExplanation, item.LUTLabel = label, label
    item.MeasurementUnitsCodeSequence = [units]
    return item


def _write_series(out_dir: Path, key: str, values: np.ndarray, thickness: float, *,
                  patient_id: str, study_uid: str, frame_uid: str, study_date: date,
                  number: int, image_type: list[str], description: str,
                  rwvm: Dataset | None) -> tuple[str, list[Path]]:
    series_uid = derived_uid("mr-series", patient_id, study_uid, key)
    stored = np.clip(np.rint(values), 0, 65535).astype(np.uint16)
    n_slices = stored.shape[0]
    _, _, z = _grid(n_slices, thickness)
    half = (_N - 1) / 2.0 * _PIXEL_MM
    paths = []
    day = study_date.strftime("%Y%m%d")
    for k in range(n_slices):
        ds = Dataset()
        sop_uid = derived_uid("mr-sop", series_uid, k)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = image_type
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day
        ds.StudyTime, ds.SeriesTime = "090000", f"09{number:02d}00"
        ds.AcquisitionTime = ds.ContentTime = ds.SeriesTime
        ds.AccessionNumber = f"ACC{int(derived_uid('acc', study_uid)[-6:]):06d}"
        ds.Modality, ds.Manufacturer = "MR", MANUFACTURER
        ds.ManufacturerModelName = GENERATOR
        ds.SoftwareVersions = f"{GENERATOR} {GENERATOR_VERSION}"
        ds.StudyDescription, ds.SeriesDescription = "MR LIVER", description
        ds.PatientName, ds.PatientID = f"SYNTHETIC^{patient_id}", patient_id
        ds.PatientBirthDate, ds.PatientSex = "19600101", "O"
        ds.BodyPartExamined = "ABDOMEN"
        ds.MagneticFieldStrength, ds.EchoTime, ds.RepetitionTime = "1.5", "2.4", "6.0"
        ds.SliceThickness = ds.SpacingBetweenSlices = f"{thickness:g}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", number, k + 1
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-half, -half, float(z[k, 0, 0])]
        ds.SliceLocation = float(z[k, 0, 0])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = _N
        ds.PixelSpacing = [_PIXEL_MM, _PIXEL_MM]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if rwvm is not None:
            ds.RealWorldValueMappingSequence = [rwvm]
        ds.PixelData = stored[k].tobytes()
        path = out_dir / key / f"{k + 1:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return series_uid, paths


def _write_seg(paths: list[Path], liver: np.ndarray, out: Path, patient_id: str,
               key: str) -> Path:
    sources = [pydicom.dcmread(p) for p in paths]
    desc = hd.seg.SegmentDescription(
        segment_number=1, segment_label="Liver",
        segmented_property_category=codes.SCT.Organ, segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    uid = sources[0].SeriesInstanceUID
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=liver.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[desc],
        series_instance_uid=derived_uid("mr-seg-series", uid),
        series_number=100 + int(sources[0].SeriesNumber),
        sop_instance_uid=derived_uid("mr-seg", uid), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=GENERATOR,
        software_versions=GENERATOR_VERSION, device_serial_number="SYN-0001",
        content_label="LIVER", series_description="Liver segmentation")
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out, enforce_file_format=True)
    return out


def _series_spec(pdff_encoding: str) -> dict[str, tuple[list[str], str, Dataset | None,
                                                      float]]:
    """Series key -> (Image Type, description, Real World Value Mapping, slice mm)."""
    pdff_rwvm = _rwvm(0.1, "%", "percent", "PDFF", 1000) if pdff_encoding == "rwvm" else None
    return {
        "pdff": (["DERIVED", "PRIMARY", "PDFF"] if pdff_rwvm is not None else
                 ["DERIVED", "PRIMARY", "DIXON", "FF"],
                 "PDFF" if pdff_rwvm is not None else "FF", pdff_rwvm, _SLICE_3D_MM),
        "r2star": (["DERIVED", "PRIMARY", "R2STAR"], "R2STAR",
                   _rwvm(0.1, "/s", "per second", "R2STAR", 10000), _SLICE_3D_MM),
        "mre": (["DERIVED", "PRIMARY", "STIFFNESS"], "MRE STIFFNESS",
                _rwvm(0.001, "kPa", "kilopascal", "STIFFNESS", 20000), _SLICE_MRE_MM),
        "dixon_fat": (["DERIVED", "PRIMARY", "DIXON", "FAT"], "DIXON FAT", None, _SLICE_3D_MM),
        "dixon_water": (["DERIVED", "PRIMARY", "DIXON", "WATER"], "DIXON WATER", None,
                        _SLICE_3D_MM),
        "t1": (["ORIGINAL", "PRIMARY", "M", "NORM"], "T1 VIBE", None, _SLICE_3D_MM),
    }


def write_mr_study(out_dir: str | Path, *, patient_id: str = "MR-SYN-001",
                   study_date: date = date(2024, 3, 1), pdff_pct: float = 18.0,
                   r2star_per_s: float = 45.0, stiffness_kpa: float = 4.2, seed: int = 0,
                   pdff_encoding: str = "rwvm", series: tuple[str, ...] = MR_SERIES,
                   masks: bool = True) -> MrStudy:
    """Write one synthetic quantitative MR study of the liver.

    Parameters
    ----------
    out_dir
        Folder; each series goes into a sub-folder named after its key, its SEG into
        ``<key>_seg.dcm``.
    patient_id, study_date
        Identity of the study.
    pdff_pct, r2star_per_s, stiffness_kpa
        The liver's true PDFF (%), R2* (1/s) and MRE stiffness (kPa).
    seed
        Noise seed.
    pdff_encoding
        ``"rwvm"`` (per mille with a mapping to percent) or ``"per_mille"`` (per mille,
        no unit in the header).
    series
        Which of :data:`MR_SERIES` to write.
    masks
        Write a liver SEG for every series but ``t1``.

    Returns
    -------
    MrStudy
        The files, the series UIDs and the truth.
    """
    if pdff_encoding not in ("rwvm", "per_mille"):
        raise ValueError(f"pdff_encoding must be 'rwvm' or 'per_mille', got {pdff_encoding!r}")
    out = Path(out_dir)
    study_uid = derived_uid("mr-study", patient_id, study_date.isoformat())
    frame_uid = derived_uid("mr-frame", study_uid)
    liver3d = _tissues(_SLICES_3D, _SLICE_3D_MM)[0]
    voxel_ml = _PIXEL_MM * _PIXEL_MM * _SLICE_3D_MM / 1000.0
    truth = MrMapTruth(pdff_pct, r2star_per_s, stiffness_kpa, pdff_pct,
                       float(liver3d.sum()) * voxel_ml)
    study = MrStudy(truth)
    ff = pdff_pct / 100.0
    maps = {
        "pdff": lambda: _map(_SLICES_3D, _SLICE_3D_MM, pdff_pct * 10, 15.0, _SUBCUT_FF * 10,
                             20.0, (seed, 0)),
        "r2star": lambda: _map(_SLICES_3D, _SLICE_3D_MM, r2star_per_s * 10, 30.0, 600.0,
                               300.0, (seed, 1)),
        "mre": lambda: _map(_SLICES_MRE, _SLICE_MRE_MM, stiffness_kpa * 1000, 300.0, 1500.0,
                            1800.0, (seed, 2)),
        "dixon_fat": lambda: _map(_SLICES_3D, _SLICE_3D_MM, 1000 * ff, 8.0,
                                  1000 * _SUBCUT_FF / 100, 30.0, (seed, 3)),
        "dixon_water": lambda: _map(_SLICES_3D, _SLICE_3D_MM, 1000 * (1 - ff), 8.0,
                                    1000 * (1 - _SUBCUT_FF / 100), 800.0, (seed, 4)),
        "t1": lambda: _map(_SLICES_3D, _SLICE_3D_MM, 600.0, 20.0, 900.0, 400.0, (seed, 5)),
    }
    spec = _series_spec(pdff_encoding)
    for number, key in enumerate(MR_SERIES, start=2):
        if key not in series:
            continue
        values, liver = maps[key]()
        image_type, description, rwvm, thickness = spec[key]
        uid, paths = _write_series(out, key, values, thickness, patient_id=patient_id,
                                   study_uid=study_uid, frame_uid=frame_uid,
                                   study_date=study_date, number=number,
                                   image_type=image_type, description=description, rwvm=rwvm)
        study.series_uids[key], study.images[key] = uid, paths
        if masks and key != "t1":
            study.masks[key] = _write_seg(paths, liver, out / f"{key}_seg.dcm", patient_id, key)
    return study
