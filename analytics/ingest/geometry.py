"""Per-frame geometry and rescale of classic and enhanced (multi-frame) CT/MR images.

Classic images carry one frame's geometry at the top level; enhanced images carry it in
functional groups, per frame or shared (PS3.3 C.7.6.16): PlanePositionSequence,
PlaneOrientationSequence, PixelMeasuresSequence and PixelValueTransformationSequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from analytics.errors import InvalidDicomError
from analytics.ingest.header import ENHANCED_SOP_CLASSES, n_frames, raw_strings, tag_name

_UNIT_TOL = 1e-2


@dataclass(frozen=True)
class FrameGeometry:
    """Geometry of one frame (one 2-D slice) in patient (LPS) coordinates, mm."""

    position: np.ndarray  # ImagePositionPatient: centre of the first (top-left) pixel
    row_cosine: np.ndarray  # direction of increasing column index (x)
    col_cosine: np.ndarray  # direction of increasing row index (y)
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    slope: float = 1.0
    intercept: float = 0.0
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cosine, self.col_cosine)


def _numbers(value, n: int, what: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as e:
        raise InvalidDicomError(f"{what} is not {n} numbers ({value!r})") from e
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise InvalidDicomError(f"{what} must hold {n} finite numbers, found {value!r}")
    return arr


def _optional_float(ds: Dataset, kw: str) -> float | None:
    v = raw_strings(ds, kw)
    if not v:
        return None
    try:
        f = float(v[0])
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _orientation(value, what: str) -> tuple[np.ndarray, np.ndarray]:
    iop = _numbers(value, 6, what)
    row, col = iop[:3], iop[3:]
    for v, part in ((row, "row"), (col, "column")):
        if abs(np.linalg.norm(v) - 1.0) > _UNIT_TOL:
            raise InvalidDicomError(f"{what}: {part} direction cosine is not a unit vector")
    if abs(float(row @ col)) > _UNIT_TOL:
        raise InvalidDicomError(f"{what}: row and column direction cosines are not orthogonal")
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def _spacing(value, what: str) -> tuple[float, float]:
    ps = _numbers(value, 2, what)
    if np.any(ps <= 0):
        raise InvalidDicomError(f"{what} must be positive, found {value!r}")
    return float(ps[0]), float(ps[1])


def _rescale(ds: Dataset, where: str) -> tuple[float, float]:
    slope, intercept = raw_strings(ds, "RescaleSlope"), raw_strings(ds, "RescaleIntercept")
    try:
        slope = 1.0 if not slope else float(slope[0])
        intercept = 0.0 if not intercept else float(intercept[0])
    except (TypeError, ValueError) as e:
        raise InvalidDicomError(f"{where}{tag_name('RescaleSlope')}/"
                                f"{tag_name('RescaleIntercept')} are not numbers") from e
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0:
        raise InvalidDicomError(f"{where}{tag_name('RescaleSlope')} must be a finite non-zero "
                                f"number, found {slope!r}")
    return slope, intercept


def functional_group(per_frame: Dataset | None, shared: Dataset | None, seq: str) -> Dataset | None:
    """The first item of functional group ``seq``, per-frame first, then shared."""
    for fg in (per_frame, shared):
        if fg is not None and seq in fg and len(fg[seq].value) > 0:
            return fg[seq].value[0]
    return None


def frame_geometry(ds: Dataset) -> list[FrameGeometry]:
    """Geometry and rescale of every frame of a CT/MR image, in stored frame order.

    Raises
    ------
    InvalidDicomError
        A required geometry attribute is missing or invalid; the message names it (and the
        frame, for enhanced images).
    """
    if str(ds.get("SOPClassUID", "")) not in ENHANCED_SOP_CLASSES:
        ipp, iop, ps = (raw_strings(ds, kw) for kw in
                        ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"))
        for value, kw in ((ipp, "ImagePositionPatient"), (iop, "ImageOrientationPatient"),
                          (ps, "PixelSpacing")):
            if not value:
                raise InvalidDicomError(f"missing required attribute {tag_name(kw)}")
        row, col = _orientation(iop, tag_name("ImageOrientationPatient"))
        slope, intercept = _rescale(ds, "")
        return [FrameGeometry(
            position=_numbers(ipp, 3, tag_name("ImagePositionPatient")),
            row_cosine=row, col_cosine=col,
            pixel_spacing=_spacing(ps, tag_name("PixelSpacing")),
            slope=slope, intercept=intercept,
            slice_thickness=_optional_float(ds, "SliceThickness"),
            spacing_between_slices=_optional_float(ds, "SpacingBetweenSlices"))]
    return functional_group_geometry(ds)


def functional_group_geometry(ds: Dataset) -> list[FrameGeometry]:
    """Per-frame geometry from the functional groups of any multi-frame object (also SEG).

    Raises
    ------
    InvalidDicomError
        A frame lacks its position, orientation or pixel spacing (named with frame and tag).
    """
    frames = n_frames(ds)
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != frames:
        raise InvalidDicomError(f"{tag_name('PerFrameFunctionalGroupsSequence')} has "
                                f"{len(per_frame)} items for {frames} frames "
                                f"({tag_name('NumberOfFrames')})")
    out = []
    for i, fg in enumerate(per_frame):
        where = f"frame {i + 1}: "
        pos = functional_group(fg, shared, "PlanePositionSequence")
        ori = functional_group(fg, shared, "PlaneOrientationSequence")
        meas = functional_group(fg, shared, "PixelMeasuresSequence")
        for item, seq, kw in ((pos, "PlanePositionSequence", "ImagePositionPatient"),
                              (ori, "PlaneOrientationSequence", "ImageOrientationPatient"),
                              (meas, "PixelMeasuresSequence", "PixelSpacing")):
            if item is None or item.get(kw) in (None, ""):
                raise InvalidDicomError(f"{where}missing required attribute {tag_name(kw)} "
                                        f"in {tag_name(seq)}")
        row, col = _orientation(ori.ImageOrientationPatient,
                                where + tag_name("ImageOrientationPatient"))
        transform = functional_group(fg, shared, "PixelValueTransformationSequence")
        slope, intercept = _rescale(transform, where) if transform is not None else (1.0, 0.0)
        out.append(FrameGeometry(
            position=_numbers(pos.ImagePositionPatient, 3,
                              where + tag_name("ImagePositionPatient")),
            row_cosine=row, col_cosine=col,
            pixel_spacing=_spacing(meas.PixelSpacing, where + tag_name("PixelSpacing")),
            slope=slope, intercept=intercept,
            slice_thickness=_optional_float(meas, "SliceThickness"),
            spacing_between_slices=_optional_float(meas, "SpacingBetweenSlices")))
    return out
