"""MDT records (``mdt_records`` table): per patient and meeting, the question asked, the
discussion notes and the decision."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from analytics.errors import StoreError
from analytics.store.db import Store
from analytics.store.schema import MdtRecord, Patient

__all__ = ["MdtRecordRow", "records", "save_record"]


@dataclass(frozen=True)
class MdtRecordRow:
    """One patient's record of one meeting, as stored."""

    pseudonym: str
    meeting: str
    question: str
    discussion: str
    decision: str
    author: str
    updated_at: dt.datetime | None


def save_record(store: Store, patient: int, meeting: str, *, question: str, discussion: str,
                decision: str, author: str) -> int:
    """Write the record of patient ``patient`` (store id) for ``meeting``, replacing an
    earlier one of the same meeting; returns the record's id.

    Raises
    ------
    StoreError
        If the record cannot be written.
    """
    try:
        with store.session() as s:
            rec = s.execute(select(MdtRecord).where(MdtRecord.patient_id == patient,
                                                    MdtRecord.meeting == meeting)).scalar()
            if rec is None:
                rec = MdtRecord(patient_id=patient, meeting=meeting)
                s.add(rec)
            rec.question, rec.discussion, rec.decision = question, discussion, decision
            rec.author = author
            rec.updated_at = dt.datetime.now(dt.UTC)
            s.flush()
            return int(rec.id)
    except SQLAlchemyError as e:
        raise StoreError(f"MDT record of meeting {meeting!r} cannot be written: "
                         f"{type(e).__name__}") from e


def records(store: Store, pseudonyms: list[str] | None = None, *,
            meeting: str | None = None) -> list[MdtRecordRow]:
    """Records of the given patients (all when None), of one meeting when given, newest
    first.

    Raises
    ------
    StoreError
        If the records cannot be read.
    """
    try:
        with store.session() as s:
            q = (select(Patient.pseudonym, MdtRecord.meeting, MdtRecord.question,
                        MdtRecord.discussion, MdtRecord.decision, MdtRecord.author,
                        MdtRecord.updated_at)
                 .join(Patient, Patient.id == MdtRecord.patient_id)
                 .order_by(MdtRecord.updated_at.desc(), MdtRecord.id.desc()))
            if pseudonyms is not None:
                q = q.where(Patient.pseudonym.in_(list(pseudonyms)))
            if meeting:
                q = q.where(MdtRecord.meeting == meeting)
            return [MdtRecordRow(*r) for r in s.execute(q).all()]
    except SQLAlchemyError as e:
        raise StoreError(f"MDT records cannot be read: {type(e).__name__}") from e
