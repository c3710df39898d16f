"""MDT notes (``notes`` table): free text per patient and meeting, newest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from analytics.errors import StoreError
from analytics.store.db import Store
from analytics.store.schema import NoteRecord, Patient

__all__ = ["NoteRow", "add_note", "notes", "patient_id"]


@dataclass(frozen=True)
class NoteRow:
    """One stored note as shown: the patient's pseudonym, meeting, author, time, text."""

    pseudonym: str
    meeting: str | None
    author: str
    created_at: dt.datetime | None
    text: str


def patient_id(store: Store, pseudonym: str) -> int | None:
    """The store id of the patient with this pseudonym, or None."""
    with store.session() as s:
        return s.execute(select(Patient.id).where(Patient.pseudonym == pseudonym)).scalar()


def add_note(store: Store, patient: int, author: str, meeting: str | None, text: str) -> int:
    """Store one note for the patient with store id ``patient``; returns the note's id."""
    with store.session() as s:
        note = NoteRecord(patient_id=patient, author=author, meeting=meeting, text=text)
        s.add(note)
        s.flush()
        return int(note.id)


def notes(store: Store, pseudonyms: list[str] | None = None, *,
          meeting: str | None = None) -> list[NoteRow]:
    """Notes of the given patients (all when None), of one meeting when given, newest
    first.

    Raises
    ------
    StoreError
        If the notes cannot be read.
    """
    try:
        with store.session() as s:
            q = (select(Patient.pseudonym, NoteRecord.meeting, NoteRecord.author,
                        NoteRecord.created_at, NoteRecord.text)
                 .join(Patient, Patient.id == NoteRecord.patient_id)
                 .order_by(NoteRecord.created_at.desc(), NoteRecord.id.desc()))
            if pseudonyms is not None:
                q = q.where(Patient.pseudonym.in_(list(pseudonyms)))
            if meeting:
                q = q.where(NoteRecord.meeting == meeting)
            return [NoteRow(*r) for r in s.execute(q).all()]
    except SQLAlchemyError as e:
        raise StoreError(f"notes cannot be read: {type(e).__name__}") from e
