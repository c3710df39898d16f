"""Ultrasound series, their frames' files and the ROIs placed on them (``ultrasound_rois``).

A save writes the ROIs and the measurements made with them (as the series' features of
extractor ``ULTRASOUND_EXTRACTOR``) in ONE transaction, so the numbers in the cohort are
always those of the stored ROIs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from analytics.errors import StoreError
from analytics.store.db import Store
from analytics.store.features import FeatureRow, replace_features
from analytics.store.schema import Instance, Patient, Series, Study, UltrasoundRoi

__all__ = ["ULTRASOUND_EXTRACTOR", "StoredRoi", "UltrasoundSeriesRow", "frame_files",
           "save_rois", "stored_rois", "ultrasound_series"]

#: the extractor version the ROI measurements are stored under (never the volume batch's)
ULTRASOUND_EXTRACTOR = "us-roi-1"


@dataclass(frozen=True)
class UltrasoundSeriesRow:
    """A stored, complete ultrasound series filed under a patient."""

    series_uid: str
    patient: str
    study_date: dt.date | None
    n_frames: int
    geometry: dict[str, Any]


@dataclass(frozen=True)
class StoredRoi:
    frame_index: int
    role: str
    shape: str
    x_mm: float
    depth_mm: float
    width_mm: float
    height_mm: float
    author: str
    created_at: dt.datetime | None


def ultrasound_series(store: Store, patient: str | None = None) -> list[UltrasoundSeriesRow]:
    """Complete ultrasound series (of one patient's pseudonym when given), oldest first."""
    try:
        with store.session() as s:
            q = (select(Series.series_uid, Patient.pseudonym, Study.study_date,
                        Series.n_slices, Series.geometry)
                 .join(Study, Series.study_id == Study.id)
                 .join(Patient, Study.patient_id == Patient.id)
                 .where(Series.modality == "US", Series.status == "complete")
                 .order_by(Study.study_date, Series.id))
            if patient is not None:
                q = q.where(Patient.pseudonym == patient)
            return [UltrasoundSeriesRow(r.series_uid, r.pseudonym, r.study_date,
                                        int(r.n_slices or 0), dict(r.geometry or {}))
                    for r in s.execute(q).all()]
    except SQLAlchemyError as e:
        raise StoreError(f"ultrasound series cannot be read: {type(e).__name__}") from e


def frame_files(store: Store, series_uid: str) -> list[tuple[str, int]]:
    """``(path relative to the home, frames)`` of each stored file, in frame order."""
    with store.session() as s:
        rows = s.execute(select(Instance.path, Instance.n_frames)
                         .join(Series, Instance.series_id == Series.id)
                         .where(Series.series_uid == series_uid)
                         .order_by(Instance.instance_number, Instance.sop_instance_uid)).all()
    return [(r.path, max(1, int(r.n_frames or 1))) for r in rows]


def stored_rois(store: Store, series_uid: str) -> list[StoredRoi]:
    """The series' current ROIs (liver first)."""
    with store.session() as s:
        rows = s.execute(select(UltrasoundRoi).join(Series, UltrasoundRoi.series_id == Series.id)
                         .where(Series.series_uid == series_uid)
                         .order_by(UltrasoundRoi.role.desc())).scalars().all()
        return [StoredRoi(r.frame_index, r.role, r.shape, r.x_mm, r.depth_mm, r.width_mm,
                          r.height_mm, r.author, r.created_at) for r in rows]


def save_rois(store: Store, series_uid: str, frame_index: int, rois: Sequence[dict[str, Any]],
              author: str, features: Sequence[FeatureRow]) -> None:
    """Replace the series' ROIs and its ultrasound measurements, in one transaction.

    Raises
    ------
    StoreError
        If the series is not stored.
    """
    with store.session() as s:
        sid = s.scalar(select(Series.id).where(Series.series_uid == series_uid))
        if sid is None:
            raise StoreError(f"series {series_uid} is not in the store")
        s.execute(delete(UltrasoundRoi).where(UltrasoundRoi.series_id == sid))
        for r in rois:
            s.add(UltrasoundRoi(series_id=sid, frame_index=int(frame_index), role=r["role"],
                                shape=r["shape"], x_mm=float(r["x_mm"]),
                                depth_mm=float(r["depth_mm"]), width_mm=float(r["width_mm"]),
                                height_mm=float(r["height_mm"]), author=author))
        replace_features(s, sid, ULTRASOUND_EXTRACTOR, features, None)
