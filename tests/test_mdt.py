"""MDT notes and meeting lists: permissions, validation, audit without the note text."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from analytics.audit import Actor, verify
from analytics.errors import PermissionDeniedError
from analytics.store import open_store
from analytics.store.schema import AuditRecord
from analytics.usecases.context import Context
from analytics.usecases.mdt import (
    MAX_NOTE_CHARS,
    MdtRecordRequest,
    NoteError,
    NoteRequest,
    add_note,
    meeting_name,
    notes_for,
    parse_meeting_list,
    record_discussion,
    records_for,
)
from tests.store.seed import seed_small_cohort

CLINICIAN = Actor("dr.grey", "clinician", "s1")
RESEARCHER = Actor("ana.res", "researcher", "s2")


@pytest.fixture
def store(db_url):
    s = open_store(url=db_url)
    seed_small_cohort(s)
    yield s
    s.dispose()


def test_notes_are_kept_per_patient_newest_first(store):
    m = meeting_name(dt.date(2025, 3, 14), "Hepatology MDT")
    assert m == "2025-03-14 Hepatology MDT"
    clinician = Context(CLINICIAN, store)
    a = add_note(clinician, NoteRequest("HT-0001", "  Refer for TIPS assessment.  ", m))
    b = add_note(Context(CLINICIAN, store), NoteRequest("HT-0001", "Repeat CT in 6 months."))
    add_note(Context(CLINICIAN, store), NoteRequest("HT-0002", "Stable.", m))
    assert b > a
    notes = notes_for(Context(CLINICIAN, store), ["HT-0001"])
    assert notes["text"].tolist() == ["Repeat CT in 6 months.", "Refer for TIPS assessment."]
    assert notes["meeting"].tolist() == [None, m]
    assert notes["author"].tolist() == ["dr.grey", "dr.grey"]
    assert notes_for(clinician, meeting=m)["pseudonym"].tolist() == ["HT-0002",
                                                                      "HT-0001"]


def test_note_writes_are_audited_without_the_text(store):
    add_note(Context(CLINICIAN, store),
             NoteRequest("HT-0002", "Patient says: call my daughter", "m1"))
    with store.session() as s:
        rec = s.execute(select(AuditRecord).where(AuditRecord.action == "note")).scalars().all()
    assert [(r.username, r.outcome, r.patient_pseudonym) for r in rec] == [
        ("dr.grey", "ok", "HT-0002")]
    assert rec[0].detail == {"meeting": "m1", "chars": 30}
    assert "daughter" not in str(rec[0].detail)
    assert verify(store).ok


@pytest.mark.parametrize(
    ("actor", "pseudonym", "text", "error", "match"),
    [
        pytest.param(RESEARCHER, "HT-0001", "x", PermissionDeniedError,
                     r"ana.res \(researcher\) may not write notes", id="researcher"),
        pytest.param(CLINICIAN, "HT-0001", "   ", NoteError, "the text is empty", id="empty"),
        pytest.param(CLINICIAN, "HT-0001", "x" * (MAX_NOTE_CHARS + 1), NoteError,
                     f"{MAX_NOTE_CHARS + 1} characters; at most {MAX_NOTE_CHARS}",
                     id="too-long"),
        pytest.param(CLINICIAN, "HT-9999", "x", NoteError, "patient 'HT-9999' is not in",
                     id="unknown-patient"),
    ],
)
def test_bad_notes_are_refused(store, actor, pseudonym, text, error, match):
    with pytest.raises(error, match=match):
        add_note(Context(actor, store), NoteRequest(pseudonym, text))
    with store.session() as s:
        assert not s.execute(select(AuditRecord).where(AuditRecord.action == "note",
                                                       AuditRecord.outcome == "ok")).first()


def test_researchers_cannot_read_notes(store):
    add_note(Context(CLINICIAN, store), NoteRequest("HT-0001", "Identified remark"))
    with pytest.raises(PermissionDeniedError, match="may not view identified"):
        notes_for(Context(RESEARCHER, store), ["HT-0001"])


def test_meeting_list_from_pasted_text():
    known = ["HT-0001", "HT-0002", "HT-0003"]
    found, unknown = parse_meeting_list("HT-0003, HT-0001\nHT-0001;HT-0404  HT-0002", known)
    assert found == ["HT-0003", "HT-0001", "HT-0002"]
    assert unknown == ["HT-0404"]
    assert parse_meeting_list("", known) == ([], [])


def test_the_meeting_records_question_discussion_and_decision_per_patient(store):
    m1, m2 = "2025-03-14 Hepatology MDT", "2025-04-11 Hepatology MDT"
    clinician = Context(CLINICIAN, store)
    a = record_discussion(clinician, MdtRecordRequest(
        "HT-0001", m1, question="Is the spleen growth portal hypertension?",
        discussion="Spleen +50 mL in a year.", decision=""))
    # a second save in the same meeting replaces the first; another meeting is its own row
    b = record_discussion(clinician, MdtRecordRequest(
        "HT-0001", m1, question="Is the spleen growth portal hypertension?",
        discussion="Spleen +50 mL in a year; platelets 140.", decision="  Refer for OGD.  "))
    record_discussion(clinician, MdtRecordRequest("HT-0001", m2, decision="Repeat CT."))
    assert a == b
    rows = records_for(clinician, ["HT-0001"], meeting=m1)
    assert [(r.question, r.discussion, r.decision, r.author) for r in rows] == [
        ("Is the spleen growth portal hypertension?",
         "Spleen +50 mL in a year; platelets 140.", "Refer for OGD.", "dr.grey")]
    assert [r.meeting for r in records_for(clinician, ["HT-0001"])] == [m2, m1]
    assert records_for(clinician, ["HT-0002"]) == []
    # each save is one audited note: the meeting and the lengths, never the text
    with store.session() as s:
        rec = s.execute(select(AuditRecord).where(AuditRecord.action == "note")
                        .order_by(AuditRecord.seq)).scalars().all()
    assert [(r.username, r.outcome, r.patient_pseudonym) for r in rec] == [
        ("dr.grey", "ok", "HT-0001")] * 3
    assert rec[1].detail == {"meeting": m1, "what": "mdt_record",
                             "chars": {"question": 41, "discussion": 39, "decision": 14}}
    assert "OGD" not in str([r.detail for r in rec])
    assert verify(store).ok


@pytest.mark.parametrize(
    ("actor", "req", "error", "match"),
    [
        pytest.param(RESEARCHER, MdtRecordRequest("HT-0001", "m", decision="x"),
                     PermissionDeniedError, r"ana.res \(researcher\) may not write notes",
                     id="researcher"),
        pytest.param(CLINICIAN, MdtRecordRequest("HT-0001", " ", decision="x"), NoteError,
                     "no meeting", id="no-meeting"),
        pytest.param(CLINICIAN, MdtRecordRequest("HT-0001", "m", " ", "", " "), NoteError,
                     "all empty", id="empty"),
        pytest.param(CLINICIAN, MdtRecordRequest("HT-0001", "m", decision="x" * (
            MAX_NOTE_CHARS + 1)), NoteError, f"the decision has {MAX_NOTE_CHARS + 1} char",
            id="too-long"),
        pytest.param(CLINICIAN, MdtRecordRequest("HT-9999", "m", decision="x"), NoteError,
                     "patient 'HT-9999' is not in", id="unknown-patient"),
    ],
)
def test_bad_mdt_records_are_refused(store, actor, req, error, match):
    with pytest.raises(error, match=match):
        record_discussion(Context(actor, store), req)
    assert records_for(Context(CLINICIAN, store)) == []
    with store.session() as s:
        assert not s.execute(select(AuditRecord).where(AuditRecord.action == "note",
                                                       AuditRecord.outcome == "ok")).first()


def test_researchers_cannot_read_mdt_records(store):
    with pytest.raises(PermissionDeniedError, match="may not view identified"):
        records_for(Context(RESEARCHER, store), ["HT-0001"])


@pytest.mark.parametrize(("stored", "shown"), [
    ("LOPEZ^CHARLES", "Charles LOPEZ"),
    ("Doe^Jane", "Jane DOE"),
    ("LOPEZ^CHARLES^ANDREW", "Charles Andrew LOPEZ"),
    ("van der Berg^Anna^^Dr^MD", "Dr Anna VAN DER BERG MD"),
    ("MACDONALD^McKenzie", "McKenzie MACDONALD"),
    ("YAMADA^TARO=山田^太郎", "Taro YAMADA"),
    ("Charles Lopez", "Charles Lopez"),
    ("^^", None),
    ("", None),
    (None, None),
])
def test_dicom_person_names_are_shown_in_clinical_form(stored, shown):
    from analytics.names import clinical_name

    assert clinical_name(stored) == shown


def test_projector_chart_labels_an_unscored_visit_once_and_draws_it_whole():
    from analytics import viz
    from tests.viz.test_risk_figures import _trajectory
    from ui import mdt_view

    # visits at 0.5 and 1.0 y could not be scored: one "not scored" label, both markers
    view = _trajectory()
    view.points.loc[1, ["assessable", "risk"]] = [False, float("nan")]
    view.points.loc[1, "reason"] = "missing required feature albumin_g_dl"
    fig = viz.risk_trajectory(view)
    mdt_view.projector_figure(fig, mdt_view.LARGE_FIGURE_FONT)
    unscored = next(tr for tr in fig.data if tr.name == "Not assessable")
    assert list(unscored.x) == [0.5, 1.0] and list(unscored.y) == [0, 0]
    assert list(unscored.text) == ["not scored", ""]
    assert unscored.mode == "markers+text" and unscored.cliponaxis is False
    assert fig.layout.showlegend is False
    assert fig.layout.height == mdt_view.PROJECTOR_FIGURE_HEIGHT
    assert fig.layout.font.size == 18


def test_projector_caption_is_one_short_line_with_the_outlined_organs():
    import pandas as pd

    from ui import mdt_view

    series = pd.DataFrame({"series_uid": ["1.2"], "study_date": [pd.Timestamp("2020-04-22")],
                           "modality": ["CT"], "contrast_phase": ["portal_venous"]})
    text = mdt_view.projector_caption(series, "1.2", ("liver", "spleen", "liver_vessels"))
    assert text == ("2020-04-22 · CT · portal venous · liver green, spleen orange, "
                    "hepatic vessels blue")
    assert mdt_view.projector_caption(series, "1.2", ()) == "2020-04-22 · CT · portal venous"
