"""Ultrasound at ingest: image regions, pixel blanking outside them, and the series check.

Ultrasound frames are 2-D pictures with no slice geometry: they are never built into a
volume. What a scanner draws around the image (patient name, date, hospital, settings) lies
outside the image region the Sequence of Ultrasound Regions (0018,6011) declares, so
instead of quarantining every ultrasound file as a possible carrier of burned-in text,
ingest keeps only the pixels inside the 2-D tissue regions and blanks (sets to 0)
everything else in the stored copy. A file without a usable 2-D region is quarantined,
as every image that may show identifiers in its pixels.

Text drawn *inside* the image region (caliper labels, body markers) is not removed: the
region is where the scanner puts the tissue image, and nothing in the header says where
such overlays are.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless

from analytics.errors import InvalidDicomError
from analytics.ingest.deid import write_dataset
from analytics.ingest.deid_vr import READ_ERRORS, as_list, first_line

#: Region Spatial Format (0018,6012) of a 2-D tissue image (PS3.3 C.8.5.5.1.1)
SPATIAL_2D = 1
#: Physical Units X/Y Direction (0018,6024/6026): 3 = cm
UNITS_CM = 3
#: (0012,0064) code of the PS3.15 Clean Pixel Data Option
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
CLEAN_PIXEL_TEXT = "Clean Pixel Data: blanked outside ultrasound regions"
QUARANTINE_NO_REGION = (
    "ultrasound without a 2-D image region in the Sequence of Ultrasound Regions (0018,6011) "
    "and without Burned In Annotation (0028,0301) = NO: the text band around the image may "
    "show identifiers and cannot be told apart")


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of the Sequence of Ultrasound Regions, bounds in pixels (inclusive).

    ``delta_x_mm``/``delta_y_mm`` are the physical size of a pixel in mm, None when the
    region's units are not cm (then nothing on it is measured in mm).
    ``reference_row`` and ``reference_depth_mm`` tie a row to a depth below the transducer.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    spatial_format: int
    data_type: int
    delta_x_mm: float | None
    delta_y_mm: float | None
    reference_row: float
    reference_depth_mm: float

    @property
    def calibrated(self) -> bool:
        return bool(self.delta_x_mm and self.delta_y_mm)

    def depth_mm(self, row: float) -> float:
        """Depth below the transducer face of pixel row ``row`` (mm)."""
        if not self.delta_y_mm:
            raise InvalidDicomError("the ultrasound region has no physical delta Y in cm")
        return self.reference_depth_mm + (row - self.reference_row) * self.delta_y_mm

    def as_dict(self) -> dict[str, Any]:
        return {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1,
                "spatial_format": self.spatial_format, "data_type": self.data_type,
                "delta_x_mm": self.delta_x_mm, "delta_y_mm": self.delta_y_mm,
                "reference_row": self.reference_row,
                "reference_depth_mm": self.reference_depth_mm}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UltrasoundRegion:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def _num(item: Dataset, keyword: str, default: float = 0.0) -> float:
    value = item.get(keyword)
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _mm(units: float, delta: float) -> float | None:
    return abs(delta) * 10.0 if int(units) == UNITS_CM and delta else None


def regions(ds: Dataset) -> list[UltrasoundRegion]:
    """Every region of the Sequence of Ultrasound Regions whose bounds lie in the image.

    Bounds past the last row or column (scanners write Columns for the last index) are
    clipped; a region with no pixel inside the image is left out.
    """
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions") or ():
        if not isinstance(item, Dataset):
            continue
        x0, y0 = int(_num(item, "RegionLocationMinX0")), int(_num(item, "RegionLocationMinY0"))
        x1 = min(int(_num(item, "RegionLocationMaxX1", -1)), cols - 1)
        y1 = min(int(_num(item, "RegionLocationMaxY1", -1)), rows - 1)
        if x0 < 0 or y0 < 0 or x1 < x0 or y1 < y0:
            continue
        dy = _mm(_num(item, "PhysicalUnitsYDirection"), _num(item, "PhysicalDeltaY"))
        ref_y = _num(item, "ReferencePixelY0")
        ref_value = _num(item, "ReferencePixelPhysicalValueY")
        out.append(UltrasoundRegion(
            x0=x0, y0=y0, x1=x1, y1=y1,
            spatial_format=int(_num(item, "RegionSpatialFormat")),
            data_type=int(_num(item, "RegionDataType")),
            delta_x_mm=_mm(_num(item, "PhysicalUnitsXDirection"), _num(item, "PhysicalDeltaX")),
            delta_y_mm=dy, reference_row=y0 + ref_y,
            reference_depth_mm=ref_value * 10.0 if dy else 0.0))
    return out


def tissue_regions(ds: Dataset) -> list[UltrasoundRegion]:
    """The 2-D tissue regions: the only pixels kept in a stored ultrasound frame."""
    return [r for r in regions(ds) if r.spatial_format == SPATIAL_2D]


def region_mask(shape: tuple[int, int], kept: list[UltrasoundRegion]) -> np.ndarray:
    """Boolean (rows, cols): True inside any of ``kept``."""
    mask = np.zeros(shape, dtype=bool)
    for r in kept:
        mask[r.y0:r.y1 + 1, r.x0:r.x1 + 1] = True
    return mask


def quarantine_reason(ds: Dataset) -> str | None:
    """Why an ultrasound file cannot be stored, or None when its pixels can be cleaned.

    A file with a 2-D image region is stored with everything outside the region blanked
    (:func:`blank_outside_regions`); without one it is quarantined unless Burned In
    Annotation (0028,0301) is NO, as for secondary captures.
    """
    if tissue_regions(ds):
        return None
    if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "NO":
        return None
    return QUARANTINE_NO_REGION


def _record_cleaning(ds: Dataset) -> None:
    """Say in the stored file that its pixels were cleaned (PS3.15 Clean Pixel Data)."""
    ds.BurnedInAnnotation = "NO"
    text = [str(v) for v in as_list(ds.get("DeidentificationMethod"))]
    if CLEAN_PIXEL_TEXT not in text:
        ds.add_new(0x00120063, "LO", [*text, CLEAN_PIXEL_TEXT])
    codes = list(ds.get("DeidentificationMethodCodeSequence") or [])
    if not any(str(c.get("CodeValue", "")) == CLEAN_PIXEL_CODE[0] for c in codes):
        item = Dataset()
        item.add_new(0x00080100, "SH", CLEAN_PIXEL_CODE[0])
        item.add_new(0x00080102, "SH", "DCM")
        item.add_new(0x00080104, "LO", CLEAN_PIXEL_CODE[1])
        ds.add_new(0x00120064, "SQ", Sequence([*codes, item]))


def blank_outside_regions(ds: Dataset, *, name: str = "instance") -> int:
    """Set every pixel outside the 2-D tissue regions to 0, in place, and re-encode.

    The pixel data is written RLE Lossless (whatever it was received in); colour data
    decoded from YBR is stored as RGB. Burned In Annotation becomes NO and the
    de-identification method records the Clean Pixel Data Option.

    Returns
    -------
    int
        The number of pixels blanked per frame.

    Raises
    ------
    InvalidDicomError
        No 2-D region, or the pixel data cannot be decoded or re-encoded (named by file).
    """
    kept = tissue_regions(ds)
    if not kept:
        raise InvalidDicomError(f"{name}: {QUARANTINE_NO_REGION}")
    try:
        arr = np.array(ds.pixel_array)  # writable copy; YBR is converted to RGB
    except (*READ_ERRORS, RuntimeError) as e:
        raise InvalidDicomError(f"{name}: ultrasound pixel data cannot be decoded "
                                f"({first_line(e)})") from e
    rows, cols = int(ds.Rows), int(ds.Columns)
    mask = region_mask((rows, cols), kept)
    samples = int(ds.get("SamplesPerPixel") or 1)
    frames = arr.reshape((-1, rows, cols, samples) if samples > 1 else (-1, rows, cols))
    frames[:, ~mask] = 0
    if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
        ds.PhotometricInterpretation = "RGB"
    if samples > 1:
        ds.PlanarConfiguration = 0
    try:
        ds.compress(RLELossless, arr, encoding_plugin="pydicom", generate_instance_uid=False)
    except (*READ_ERRORS, RuntimeError) as e:
        raise InvalidDicomError(f"{name}: the cleaned ultrasound pixels cannot be written "
                                f"({first_line(e)})") from e
    _record_cleaning(ds)
    return int((~mask).sum())


def blank_bytes(data: bytes, *, name: str = "instance") -> bytes:
    """:func:`blank_outside_regions` on a whole file's bytes (run in a parse worker).

    Raises
    ------
    InvalidDicomError
        As :func:`blank_outside_regions`, or the file cannot be read or written.
    """
    try:
        ds = dcmread(io.BytesIO(data))
    except READ_ERRORS as e:
        raise InvalidDicomError(f"{name}: malformed file: {first_line(e)}") from e
    if not tissue_regions(ds) and str(ds.get("BurnedInAnnotation", "")).upper() == "NO":
        return data  # declared free of burned-in text and no region to clean by
    blank_outside_regions(ds, name=name)
    try:
        return write_dataset(ds)
    except (*READ_ERRORS, OSError) as e:
        raise InvalidDicomError(f"{name}: malformed file: its cleaned copy cannot be "
                                f"written ({first_line(e)})") from e


# --------------------------------------------------------------------------- series
def calibration(ds: Dataset) -> dict[str, Any]:
    """What a series keeps of one file's regions (JSON): the 2-D regions, their pixel size
    in mm and whether the frame can be measured in mm."""
    kept = tissue_regions(ds)
    return {"regions": [r.as_dict() for r in kept],
            "calibrated": bool(kept) and all(r.calibrated for r in kept)}
