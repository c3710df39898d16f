"""MDT meetings: the meeting list, the notes kept per patient (``notes`` table) and the
record of each patient's discussion in a meeting (``mdt_records``: question, discussion
notes, decision).

Notes are free text written by clinicians and may name the patient, so only roles with
the identified view read them and only clinicians write them (``Permission.WRITE_NOTES``).
Every write is audited with the patient's pseudonym and the meeting, never the text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import astuple, dataclass

import pandas as pd

from analytics.auth import Permission
from analytics.errors import HepaTrackError
from analytics.store import mdt_records
from analytics.store import notes as note_store
from analytics.store.mdt_records import MdtRecordRow
from analytics.usecases.context import Context, audited, authorize

__all__ = ["MAX_NOTE_CHARS", "NOTE_COLUMNS", "MdtRecordRequest", "MdtRecordRow", "NoteRequest",
           "add_note", "meeting_name", "notes_for", "parse_meeting_list", "record_discussion",
           "records_for"]

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


@dataclass(frozen=True)
class NoteRequest:
    """A note's text for one patient, and the meeting it was written in."""

    pseudonym: str
    text: str
    meeting: str | None = None


def add_note(ctx: Context, req: NoteRequest) -> int:
    """Store a note (audited ``note`` with the pseudonym and meeting, never the text);
    returns the note's id.

    Raises
    ------
    PermissionDeniedError
        If the actor may not write notes (refusal audited).
    NoteError
        Empty text, text over :data:`MAX_NOTE_CHARS`, or an unknown patient.
    """
    pseudonym = req.pseudonym
    actor = authorize(ctx, Permission.WRITE_NOTES, "note", patient=pseudonym)
    body = (req.text or "").strip()
    if not body:
        raise NoteError(f"note for {pseudonym}: the text is empty")
    if len(body) > MAX_NOTE_CHARS:
        raise NoteError(f"note for {pseudonym}: {len(body)} characters; at most "
                        f"{MAX_NOTE_CHARS} are kept")
    meeting = (req.meeting or "").strip()[:MAX_MEETING_CHARS] or None
    pid = note_store.patient_id(ctx.store, pseudonym)
    if pid is None:
        raise NoteError(f"note: patient {pseudonym!r} is not in the store")
    with audited(ctx, "note", patient=pseudonym,
                 detail={"meeting": meeting, "chars": len(body)}):
        return note_store.add_note(ctx.store, pid, actor.username, meeting, body)


def notes_for(ctx: Context, pseudonyms: list[str] | None = None, *,
              meeting: str | None = None) -> pd.DataFrame:
    """Notes of the given patients (all when None), newest first (a read: no record).

    Raises
    ------
    PermissionDeniedError
        If the actor may not see identified data (notes are free text).
    """
    authorize(ctx, Permission.VIEW_IDENTIFIED, "view_patient")
    rows = note_store.notes(ctx.store, pseudonyms, meeting=meeting)
    return pd.DataFrame([astuple(r) for r in rows], columns=list(NOTE_COLUMNS))


@dataclass(frozen=True)
class MdtRecordRequest:
    """What a meeting asked, discussed and decided about one patient (any part may be
    empty, not all three)."""

    pseudonym: str
    meeting: str
    question: str = ""
    discussion: str = ""
    decision: str = ""


def record_discussion(ctx: Context, req: MdtRecordRequest) -> int:
    """Store the patient's record of this meeting, replacing an earlier save of the same
    meeting (one audited ``note`` with the pseudonym, the meeting and the length of each
    part, never the text); returns the record's id.

    Raises
    ------
    PermissionDeniedError
        If the actor may not write notes (refusal audited).
    NoteError
        No meeting, all three parts empty, a part over :data:`MAX_NOTE_CHARS`, or an
        unknown patient.
    """
    pseudonym = req.pseudonym
    actor = authorize(ctx, Permission.WRITE_NOTES, "note", patient=pseudonym)
    meeting = (req.meeting or "").strip()[:MAX_MEETING_CHARS]
    if not meeting:
        raise NoteError(f"MDT record for {pseudonym}: no meeting; expected the meeting's "
                        "date and title")
    parts = {k: (getattr(req, k) or "").strip() for k in ("question", "discussion", "decision")}
    if not any(parts.values()):
        raise NoteError(f"MDT record for {pseudonym}: question, discussion and decision are "
                        "all empty")
    for k, v in parts.items():
        if len(v) > MAX_NOTE_CHARS:
            raise NoteError(f"MDT record for {pseudonym}: the {k} has {len(v)} characters; "
                            f"at most {MAX_NOTE_CHARS} are kept")
    pid = note_store.patient_id(ctx.store, pseudonym)
    if pid is None:
        raise NoteError(f"MDT record: patient {pseudonym!r} is not in the store")
    with audited(ctx, "note", patient=pseudonym,
                 detail={"meeting": meeting, "what": "mdt_record",
                         "chars": {k: len(v) for k, v in parts.items()}}):
        return mdt_records.save_record(ctx.store, pid, meeting, author=actor.username,
                                       **parts)


def records_for(ctx: Context, pseudonyms: list[str] | None = None, *,
                meeting: str | None = None) -> list[MdtRecordRow]:
    """MDT records of the given patients (all when None), of one meeting when given,
    newest first (a read: no record).

    Raises
    ------
    PermissionDeniedError
        If the actor may not see identified data (the records are free text).
    """
    authorize(ctx, Permission.VIEW_IDENTIFIED, "view_patient")
    return mdt_records.records(ctx.store, pseudonyms, meeting=meeting)
