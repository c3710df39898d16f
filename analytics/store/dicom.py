"""Reads of stored series, instances and delivered masks (the writes are
:mod:`analytics.store.instances`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from analytics.store.db import Store
from analytics.store.schema import IdentityHold, Instance, Mask, Patient, Series, Study

__all__ = ["DeliveredMask", "SeriesFiles", "SeriesSummary", "delivered_masks", "mask_counts",
           "series_files", "series_for_refs", "series_frame_of_reference",
           "series_geometries", "series_summary", "stored_hashes", "stored_instances",
           "study_siblings"]


@dataclass(frozen=True)
class SeriesFiles:
    """A stored series' status, geometry record and instance files (in stored order)."""

    status: str
    status_reason: str | None
    geometry: dict[str, Any]
    paths: list[str]


@dataclass(frozen=True)
class DeliveredMask:
    """A mask file delivered with the images."""

    format: str
    path: str
    segments: dict[str, Any] | None
    automatic: bool
    method: str | None


@dataclass(frozen=True)
class SeriesSummary:
    """What the ingest report says of a stored series."""

    series_uid: str
    modality: str
    n_slices: int | None
    status: str
    status_reason: str | None
    study_date: dt.date | None
    pseudonym: str
    geometry: dict[str, Any] | None


def series_files(store: Store, series_uid: str) -> SeriesFiles | None:
    """The series' status and instance paths, None if it is not in the store."""
    with store.session() as s:
        series = s.scalar(select(Series).where(Series.series_uid == series_uid))
        if series is None:
            return None
        paths = list(s.scalars(select(Instance.path).where(Instance.series_id == series.id)
                               .order_by(Instance.id)))
        return SeriesFiles(series.status, series.status_reason, dict(series.geometry or {}),
                           paths)


def delivered_masks(store: Store, series_uid: str, formats: Sequence[str]
                    ) -> list[DeliveredMask]:
    """The series' stored delivered masks of ``formats``, newest first."""
    with store.session() as s:
        series_id = s.scalar(select(Series.id).where(Series.series_uid == series_uid))
        rows = s.execute(
            select(Mask.format, Mask.path, Mask.segments, Mask.automatic, Mask.method)
            .where(Mask.series_id == series_id, Mask.path.is_not(None),
                   Mask.automatic.is_(False), Mask.format.in_(formats))
            .order_by(Mask.created_at.desc(), Mask.id.desc())).all()
    return [DeliveredMask(r.format, r.path, r.segments, bool(r.automatic), r.method)
            for r in rows]


def series_for_refs(store: Store, series_uids: Sequence[str], sop_instance_uids: Sequence[str],
                    frame_of_reference_uid: str | None) -> tuple[str, str] | None:
    """(stored series UID, patient pseudonym) of the image series references name.

    By referenced series UID, else the series holding referenced instances (the first
    500), else the only series on the referenced frame of reference. A series held as an
    identity conflict gives the pseudonym its files were stored under (its hold's patient).
    """
    held_patient = aliased(Patient)
    with store.session() as s:
        q = (select(Series.series_uid, func.coalesce(Patient.pseudonym, held_patient.pseudonym))
             .join(Study, Series.study_id == Study.id)
             .outerjoin(Patient, Study.patient_id == Patient.id)
             .outerjoin(IdentityHold, IdentityHold.study_id == Study.id)
             .outerjoin(held_patient, IdentityHold.patient_id == held_patient.id))
        if series_uids:
            row = s.execute(q.where(Series.series_uid.in_(series_uids))).first()
            if row:
                return row[0], row[1]
        if sop_instance_uids:
            row = s.execute(q.join(Instance, Instance.series_id == Series.id)
                            .where(Instance.sop_instance_uid.in_(sop_instance_uids[:500]))
                            ).first()
            if row:
                return row[0], row[1]
        if frame_of_reference_uid:
            rows = s.execute(q.where(Series.frame_of_reference_uid
                                     == frame_of_reference_uid)).all()
            if len(rows) == 1:
                return rows[0][0], rows[0][1]
    return None


def mask_counts(store: Store, series_uids: Sequence[str]) -> dict[str, int]:
    """Series UID -> number of stored masks (series without masks left out)."""
    with store.session() as s:
        return {uid: int(n) for uid, n in s.execute(
            select(Series.series_uid, func.count(Mask.id))
            .join(Mask, Mask.series_id == Series.id).where(Series.series_uid.in_(series_uids))
            .group_by(Series.series_uid)).all()}


def series_geometries(store: Store, series_uids: Sequence[str]
                      ) -> list[tuple[str, dict[str, Any] | None]]:
    """``(series UID, geometry record)`` of the stored series among ``series_uids``."""
    with store.session() as s:
        return [(uid, geo) for uid, geo in s.execute(
            select(Series.series_uid, Series.geometry)
            .where(Series.series_uid.in_(series_uids))).all()]


def stored_instances(store: Store, series_uid: str) -> list[tuple[str, str]]:
    """(source_key, path) of the instances already stored for a series."""
    with store.session() as s:
        return [(k, p) for k, p in s.execute(
            select(Instance.source_key, Instance.path).join(Series)
            .where(Series.series_uid == series_uid)).all()]


def stored_hashes(store: Store, series_uid: str) -> dict[str, str]:
    """source_key -> content hash of the instances already stored for a series."""
    with store.session() as s:
        return dict(s.execute(
            select(Instance.source_key, Instance.content_sha256).join(Series)
            .where(Series.series_uid == series_uid)).all())


def series_summary(store: Store, series_uid: str) -> SeriesSummary | None:
    """The stored series with its study date and patient, None if not stored."""
    with store.session() as s:
        row = s.execute(select(Series.series_uid, Series.modality, Series.n_slices,
                               Series.status, Series.status_reason, Study.study_date,
                               Patient.pseudonym, Series.geometry)
                        .join(Study, Series.study_id == Study.id)
                        .join(Patient, Study.patient_id == Patient.id)
                        .where(Series.series_uid == series_uid)).one_or_none()
    return SeriesSummary(*row) if row is not None else None


def delivered_segments(store: Store, series_uids: Sequence[str]
                       ) -> list[tuple[str, str, list[dict[str, Any] | None]]]:
    """``(series UID, modality, segments of each delivered mask)`` of the stored series
    among ``series_uids``."""
    with store.session() as s:
        rows = s.execute(select(Series.id, Series.series_uid, Series.modality).where(
            Series.series_uid.in_(list(series_uids)))).all()
        return [(uid, modality, list(s.scalars(select(Mask.segments).where(
                    Mask.series_id == sid, Mask.automatic.is_(False))).all()))
                for sid, uid, modality in rows]


def study_siblings(store: Store, series_uid: str) -> list[tuple[str, str, str | None, str]]:
    """``(series UID, modality, frame of reference UID, status)`` of the other series of
    the study that holds ``series_uid`` (empty if it is not stored)."""
    with store.session() as s:
        study_id = s.scalar(select(Series.study_id).where(Series.series_uid == series_uid))
        if study_id is None:
            return []
        rows = s.execute(select(Series.series_uid, Series.modality,
                                Series.frame_of_reference_uid, Series.status)
                         .where(Series.study_id == study_id,
                                Series.series_uid != series_uid)
                         .order_by(Series.id)).all()
    return [tuple(r) for r in rows]


def series_frame_of_reference(store: Store, series_uid: str) -> str | None:
    """The stored series' Frame of Reference UID (None if unknown or not stored)."""
    with store.session() as s:
        return s.scalar(select(Series.frame_of_reference_uid)
                        .where(Series.series_uid == series_uid))
