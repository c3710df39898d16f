"""The MDT page's record of a patient's discussion (question, discussion, decision of
one meeting) and the patient's notes: forms for those who may write notes, the saved
text for those who may see identified data."""

from __future__ import annotations

import streamlit as st

from analytics.audit import Actor
from analytics.auth import Permission, allowed
from analytics.errors import HepaTrackError
from analytics.usecases.context import Context
from analytics.usecases.mdt import (
    MdtRecordRequest,
    NoteRequest,
    add_note,
    notes_for,
    record_discussion,
    records_for,
)
from ui import mdt_view, shell
from ui.mdt_view import MDT, RECORD_PARTS
from ui.session import key


def saved_record(uc: Context, pseudonym: str, meeting: str):
    """The patient's saved record of ``meeting``, or None (nothing saved yet)."""
    with shell.guard():
        saved = records_for(uc, [pseudonym], meeting=meeting)
    return saved[0] if saved else None


def question_and_decision(record) -> None:
    """The meeting's question and decision, under the chart: the screen's left column
    has room for them, so a projected patient still fits one screen."""
    if record is not None and record.question:
        st.markdown(f"**Question:** {record.question}")
    if record is not None and record.decision:
        st.markdown(f"**Decision:** {record.decision}")


def record_section(uc: Context, who: Actor, pseudonym: str, meeting: str, record,
                   large: bool) -> None:
    """The question, discussion and decision form (folded away in projector mode) and who
    saved the record last."""
    box = st.expander("Question, discussion and decision", icon=":material/edit_note:",
                      expanded=False) if large else st.container()
    with box:
        if not large:
            st.subheader("Question, discussion and decision", anchor=False)
        if allowed(who, Permission.WRITE_NOTES):
            with st.form(mdt_view.record_key("form", pseudonym, meeting)):
                texts = {part: st.text_area(
                    f"{part.capitalize()} ({meeting})", height=68,
                    value=getattr(record, part) if record is not None else "",
                    key=mdt_view.record_key(part, pseudonym, meeting))
                    for part in RECORD_PARTS}
                if st.form_submit_button("Save the MDT record", icon=":material/save:"):
                    try:
                        record_discussion(uc, MdtRecordRequest(pseudonym, meeting, **texts))
                        st.rerun()
                    except HepaTrackError as err:
                        shell.show_error(err)
        if record is not None:
            st.caption(f"Saved by {record.author} · {str(record.updated_at)[:16]}")
        else:
            st.caption(f"Nothing recorded for {pseudonym} in {meeting} yet.")


def notes_section(uc: Context, who: Actor, pseudonym: str, meeting: str) -> None:
    """The patient's notes, newest first, and a form to add one of this meeting."""
    st.subheader("Notes", anchor=False)
    with shell.guard():
        notes = notes_for(uc, [pseudonym])
    if allowed(who, Permission.WRITE_NOTES):
        with st.form(key(MDT, f"note-{pseudonym}"), clear_on_submit=True):
            text = st.text_area(f"Note for {pseudonym} ({meeting})", key=key(MDT, "note"))
            if st.form_submit_button("Save note", icon=":material/save:"):
                with shell.guard():
                    add_note(uc, NoteRequest(pseudonym, text, meeting))
                st.rerun()
    for r in notes.itertuples():
        st.markdown(f"**{r.meeting or 'no meeting'}** · {r.author} · "
                    f"{str(r.created_at)[:16]}  \n{r.text}")
    if notes.empty:
        st.caption("No notes yet for this patient.")
