"""Ultrasound measurement: list a patient's ultrasound series, show a frame, measure ROIs,
save them with the series (``Permission.REVIEW_MASKS``, audited ``ultrasound_roi``).

A save stores the ROIs and the measurements made with them as the series' features in one
transaction (:func:`analytics.store.ultrasound.save_rois`), so they join the cohort table
at the study date like CT and MR biomarkers, and can be reviewed and repeated later.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import dcmread

from analytics.auth import Permission
from analytics.errors import FeatureError, StoreError
from analytics.features.ultrasound import Measurement, Roi, UltrasoundFrame, frame_of, measure_frame
from analytics.store import ultrasound as us_store
from analytics.store.features import FeatureRow
from analytics.store.ultrasound import UltrasoundSeriesRow
from analytics.usecases.context import Context, audited, authorize
from analytics.vocabulary import unit

__all__ = [
    "RoiRequest",
    "SavedRois",
    "load_frame",
    "measure",
    "save",
    "saved_rois",
    "series_list",
]

ACTION = "ultrasound_roi"


@dataclass(frozen=True)
class RoiRequest:
    """ROIs placed on frame ``frame`` (0-based over the series' frames) of a series."""

    series_uid: str
    frame: int
    rois: tuple[Roi, ...]


@dataclass(frozen=True)
class SavedRois:
    frame: int
    rois: tuple[Roi, ...]
    author: str


def series_list(ctx: Context, patient: str | None = None) -> list[UltrasoundSeriesRow]:
    """Complete ultrasound series (a read of pseudonymised data: no audit record)."""
    authorize(ctx, Permission.VIEW_PSEUDONYMISED, "view_patient", patient=patient)
    return us_store.ultrasound_series(ctx.store, patient)


def _frame(ctx: Context, series_uid: str, frame: int) -> UltrasoundFrame:
    files = us_store.frame_files(ctx.store, series_uid)
    if not files:
        raise StoreError(f"ultrasound series {series_uid} has no stored files")
    total = sum(n for _, n in files)
    if not 0 <= frame < total:
        raise FeatureError(f"frame {frame + 1} does not exist: the series has {total} "
                           "frame(s)")
    start = 0
    for path, n in files:
        if frame < start + n:
            # a file HepaTrack wrote itself (RLE, cleaned at ingest): read in-process
            return frame_of(dcmread(ctx.settings.home / path), frame - start)
        start += n
    raise AssertionError("unreachable: the frame lies in one of the files")  # pragma: no cover


def load_frame(ctx: Context, series_uid: str, frame: int) -> UltrasoundFrame:
    """Frame ``frame`` (0-based) of a stored ultrasound series, in grey, with its region.

    Raises
    ------
    FeatureError
        The frame does not exist or has no calibrated region.
    """
    authorize(ctx, Permission.VIEW_PSEUDONYMISED, "view_patient")
    return _frame(ctx, series_uid, frame)


def measure(ctx: Context, req: RoiRequest) -> Measurement:
    """The measurements the ROIs give on the frame, not stored (a preview)."""
    authorize(ctx, Permission.VIEW_PSEUDONYMISED, "view_patient")
    return measure_frame(_frame(ctx, req.series_uid, req.frame), list(req.rois))


def _rows(m: Measurement, frame: int) -> list[FeatureRow]:
    flags = {"frame": frame + 1, "rois": m.rois, "source": "ultrasound ROI"}
    if m.warnings:
        flags["warnings"] = list(m.warnings)
    return [FeatureRow(name, value, unit(name),
                       {**flags, **({"note": m.notes[name]} if name in m.notes else {})})
            for name, value in m.values.items()]


def save(ctx: Context, req: RoiRequest) -> Measurement:
    """Measure and store the ROIs with the series (replacing the ones stored before).

    Raises
    ------
    PermissionDeniedError
        If the actor may not place ROIs (``review_masks``; refusal audited).
    FeatureError
        If the ROIs cannot be measured (nothing is stored then).
    """
    authorize(ctx, Permission.REVIEW_MASKS, ACTION)
    detail = {"frame": req.frame + 1, "rois": [r.as_dict() for r in req.rois]}
    with audited(ctx, ACTION, uids=[req.series_uid], detail=detail):
        m = measure_frame(_frame(ctx, req.series_uid, req.frame), list(req.rois))
        us_store.save_rois(ctx.store, req.series_uid, req.frame, m.rois, ctx.username,
                           _rows(m, req.frame))
    return m


def saved_rois(ctx: Context, series_uid: str) -> SavedRois | None:
    """The ROIs stored with the series, None if none were saved."""
    authorize(ctx, Permission.VIEW_PSEUDONYMISED, "view_patient")
    rows = us_store.stored_rois(ctx.store, series_uid)
    if not rows:
        return None
    rois = tuple(Roi(r.role, r.shape, r.x_mm, r.depth_mm, r.width_mm, r.height_mm)
                 for r in rows)  # type: ignore[arg-type]
    return SavedRois(frame=rows[0].frame_index, rois=rois, author=rows[0].author)
