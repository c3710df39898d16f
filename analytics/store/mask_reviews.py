"""Clinicians' rejections of automatic masks, and the feature rows they withhold.

The rules (which feature depends on which organ, what a withheld row says) live in
:mod:`analytics.masks_review`; these functions read and write the rows, in the caller's
transaction where they take a session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.store.db import Store
from analytics.store.features import StoredMask
from analytics.store.schema import Feature, Mask, MaskRejection, Patient, Series, Study

__all__ = ["ActiveRejection", "FeatureState", "MaskListing", "active_rejection",
           "active_rejections", "add_rejection", "feature_states", "list_masks",
           "rejections_of", "restore_rejections", "series_of_mask", "series_with_patient",
           "set_feature_state"]


@dataclass(frozen=True)
class FeatureState:
    """A stored feature row as the review sees it."""

    id: int
    name: str
    mask_id: int | None
    value: float | None
    flags: dict[str, Any] | None


@dataclass(frozen=True)
class ActiveRejection:
    """The newest active rejection of one organ of a series' mask."""

    id: int
    mask_id: int
    series_id: int
    pseudonym: str


@dataclass(frozen=True)
class MaskListing:
    """A stored mask with its series, patient and active rejections (organ -> reason)."""

    mask: StoredMask
    series_uid: str
    pseudonym: str
    rejected: dict[str, str]


def active_rejections(s: Session, series_id: int) -> dict[tuple[int, str], str]:
    """``(mask id, organ) -> reason`` of the series' active rejections."""
    rows = s.execute(select(MaskRejection.mask_id, MaskRejection.organ, MaskRejection.reason)
                     .join(Mask, MaskRejection.mask_id == Mask.id)
                     .where(Mask.series_id == series_id, MaskRejection.restored_at.is_(None))
                     .order_by(MaskRejection.id)).all()
    return {(r.mask_id, r.organ): r.reason for r in rows}


def feature_states(s: Session, series_id: int) -> list[FeatureState]:
    """Every stored feature row of the series."""
    return [FeatureState(f.id, f.name, f.mask_id, f.value,
                         dict(f.flags) if f.flags is not None else None)
            for f in s.scalars(select(Feature).where(Feature.series_id == series_id))]


def set_feature_state(s: Session, feature_id: int, value: float | None,
                      flags: dict[str, Any] | None) -> None:
    """Set one feature row's value and flags (in the caller's transaction)."""
    row = s.get(Feature, feature_id)
    row.flags, row.value = flags, value


def series_with_patient(s: Session, series_uid: str) -> tuple[int, str] | None:
    """``(series id, patient pseudonym)`` of a stored series, None if unknown."""
    row = s.execute(select(Series.id, Patient.pseudonym)
                    .join(Study, Series.study_id == Study.id)
                    .join(Patient, Study.patient_id == Patient.id)
                    .where(Series.series_uid == series_uid)).first()
    return (row.id, row.pseudonym) if row is not None else None


def add_rejection(s: Session, mask_id: int, organ: str, reason: str, by: str) -> None:
    """Record an active rejection (in the caller's transaction)."""
    s.add(MaskRejection(mask_id=mask_id, organ=organ, reason=reason, rejected_by=by))
    s.flush()


def series_of_mask(s: Session, mask_id: int) -> int:
    """The series id a mask belongs to."""
    return s.scalar(select(Mask.series_id).where(Mask.id == mask_id))


def active_rejection(store: Store, series_uid: str, organ: str) -> ActiveRejection | None:
    """The newest active rejection of ``organ`` in a mask of ``series_uid``, or None."""
    with store.session() as s:
        row = s.execute(select(MaskRejection.id, MaskRejection.mask_id, Series.id.label("sid"),
                               Patient.pseudonym)
                        .join(Mask, MaskRejection.mask_id == Mask.id)
                        .join(Series, Mask.series_id == Series.id)
                        .join(Study, Series.study_id == Study.id)
                        .join(Patient, Study.patient_id == Patient.id)
                        .where(Series.series_uid == series_uid, MaskRejection.organ == organ,
                               MaskRejection.restored_at.is_(None))
                        .order_by(MaskRejection.id.desc())).first()
    if row is None:
        return None
    return ActiveRejection(row.id, row.mask_id, row.sid, row.pseudonym)


def restore_rejections(s: Session, mask_id: int, organ: str, by: str,
                       reason: str | None) -> None:
    """Lift every active rejection of ``organ`` in the mask (in the caller's transaction)."""
    for rej in s.scalars(select(MaskRejection).where(
            MaskRejection.mask_id == mask_id, MaskRejection.organ == organ,
            MaskRejection.restored_at.is_(None))):
        rej.restored_by, rej.restored_at = by, dt.datetime.now(dt.UTC)
        rej.restore_reason = reason
    s.flush()


def rejections_of(s: Session, mask_id: int) -> dict[str, str]:
    """Organ -> reason of the mask's active rejections."""
    rows = s.execute(select(MaskRejection.organ, MaskRejection.reason)
                     .where(MaskRejection.mask_id == mask_id,
                            MaskRejection.restored_at.is_(None))).all()
    return {r.organ: r.reason for r in rows}


def list_masks(store: Store, series_uid: str | None = None) -> list[MaskListing]:
    """Every stored mask (of one series, or all), oldest first."""
    with store.session() as s:
        q = (select(Mask, Series.series_uid, Patient.pseudonym)
             .join(Series, Mask.series_id == Series.id)
             .join(Study, Series.study_id == Study.id)
             .join(Patient, Study.patient_id == Patient.id).order_by(Mask.id))
        if series_uid is not None:
            q = q.where(Series.series_uid == series_uid)
        return [MaskListing(StoredMask.of(m), uid, pseudonym,
                            rejections_of(s, m.id) if m.automatic else {})
                for m, uid, pseudonym in s.execute(q).all()]
