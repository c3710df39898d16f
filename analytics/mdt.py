"""MDT meetings: the meeting list and the notes kept per patient (``notes`` table).

Notes are free text written by clinicians and may name the patient, so only roles with
the identified view read them and only clinicians write them (``Permission.WRITE_NOTES``).
Every write is audited with the patient's pseudonym and the meeting, never the text.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from analytics import audit
from analytics.audit import Actor
from analytics.auth import Permission, require
from analytics.errors import HepaTrackError, StoreError
from analytics.store.db import Store
from analytics.store.schema import NoteRecord, Patient

__all__ = ["MAX_NOTE_CHARS", "NOTE_COLUMNS", "add_note", "meeting_name", "notes_for",
           "parse_meeting_list"]

MAX_NOTE_CHARS = 10_000
MAX_MEETING_CHARS = 128
NOTE_COLUMNS = ("pseudonym", "meeting", "author", "created_at", "text")


class NoteError(HepaTrackError):
    """A note is empty, too long, or names an unknown patient."""


def meeting_name(date: dt.date, title: str = "") -> str:
    """The meeting's name as stored with its notes: ``"2025-03-14 Hepatology MDT"``."""
    text = f"{date.isoformat()} {title.strip()}".strip()
    return text[:MAX_MEETING_CHARS]


def parse_meeting_list(text: str, known: list[str]) -> tuple[list[str], list[str]]:
    """Pseudonyms from pasted text (commas, spaces or lines), in order, without repeats.

    Returns
    -------
    (list of str, list of str)
        The known pseudonyms and the entries that are not in ``known``.
    """
    known_set = set(known)
    picked, unknown = [], []
    for token in re.split(r"[\s,;]+", text or ""):
        if not token:
            continue
        if token in known_set:
            if token not in picked:
                picked.append(token)
        elif token not in unknown:
            unknown.append(token)
    return picked, unknown


def add_note(store: Store, actor: Actor | None, pseudonym: str, text: str, *,
             meeting: str | None = None) -> int:
    """Store a note for ``pseudonym`` (audited); returns the note's id.

    Raises
    ------
    PermissionDeniedError
        If the actor may not write notes.
    NoteError
        Empty text, text over :data:`MAX_NOTE_CHARS`, or an unknown patient.
    """
    require(actor, Permission.WRITE_NOTES, store, action="note", patient=pseudonym)
    body = (text or "").strip()
    if not body:
        raise NoteError(f"note for {pseudonym}: the text is empty")
    if len(body) > MAX_NOTE_CHARS:
        raise NoteError(f"note for {pseudonym}: {len(body)} characters; at most "
                        f"{MAX_NOTE_CHARS} are kept")
    meeting = (meeting or "").strip()[:MAX_MEETING_CHARS] or None
    with store.session() as s:
        pid = s.execute(select(Patient.id).where(Patient.pseudonym == pseudonym)).scalar()
    if pid is None:
        raise NoteError(f"note: patient {pseudonym!r} is not in the store")
    with audit.audited(store, actor, "note", patient=pseudonym,
                       detail={"meeting": meeting, "chars": len(body)}), \
            store.session() as s:
        note = NoteRecord(patient_id=pid, author=actor.username if actor else "system",
                          meeting=meeting, text=body)
        s.add(note)
        s.flush()
        return int(note.id)


def notes_for(store: Store, actor: Actor | None, pseudonyms: list[str] | None = None, *,
              meeting: str | None = None) -> pd.DataFrame:
    """Notes of the given patients (all when None), newest first.

    Raises
    ------
    PermissionDeniedError
        If the actor may not see identified data (notes are free text).
    """
    require(actor, Permission.VIEW_IDENTIFIED)
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
            rows = [tuple(r) for r in s.execute(q).all()]
    except SQLAlchemyError as e:
        raise StoreError(f"notes cannot be read: {type(e).__name__}") from e
    return pd.DataFrame(rows, columns=list(NOTE_COLUMNS))
