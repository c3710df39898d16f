"""MDT meetings: the meeting list and the notes kept per patient (``notes`` table).

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
from analytics.store import notes as note_store
from analytics.usecases.context import Context, audited, authorize

__all__ = ["MAX_NOTE_CHARS", "NOTE_COLUMNS", "NoteRequest", "add_note", "meeting_name",
           "notes_for", "parse_meeting_list"]

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
