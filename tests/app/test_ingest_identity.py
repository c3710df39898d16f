"""The Ingest page, used as a person would: a study of GARCIA^DAVID^Q sent under the
Patient ID of the stored MUELLER^MICHAEL is shown held, a clinician resolves it as the same
or a different patient, an administrator sees it by pseudonym only and cannot resolve it,
a researcher never reaches the page; a series stored with a broken slice is completed with
the re-sent slice, or removed."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select

from analytics.config import load_settings
from analytics.ingest.deid import date_shift_days, patient_pseudonym
from analytics.ingest.pipeline import ingest_uploads
from analytics.store import open_store, repo
from analytics.store.schema import AuditRecord
from tests.app.conftest import RESEARCHER, new_app, open_page
from tests.ingest.identity_samples import Person, RealStudy, real_slices
from ui.session import Viewer

CLINICIAN = Viewer("dr.grey", "clinician", "s-identity")
ADMIN = Viewer("root", "admin", "s-admin")
JOB = "ingest:job"
GARCIA = Person(name="GARCIA^DAVID^Q", birth_date="19700101")


def _store(home):
    settings = load_settings(home)
    settings.ensure_home()
    return settings, open_store(settings)


def _ingest(home, files) -> dict:
    settings, store = _store(home)
    try:
        return ingest_uploads(files, settings, store).as_dict()
    finally:
        store.dispose()


def _wait(at, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while at.session_state[JOB].running:
        assert time.monotonic() < deadline, "ingest still running"
        time.sleep(0.5)
    at.run()
    return at.session_state[JOB]


def _page(viewer: Viewer):
    return open_page("pages/ingest.py", viewer)


def _table(at, column: str):
    return next((d.value for d in at.dataframe if column in d.value.columns), None)


def _upload_garcia(home):
    _ingest(home, real_slices(RealStudy(Person())))
    at = _page(CLINICIAN)
    files = [(n, b, "application/dicom") for n, b in real_slices(RealStudy(GARCIA))]
    at.file_uploader(key="ingest:files").set_value(files).run()
    at.checkbox(key="ingest:extract").uncheck().run()
    at.button(key="ingest:go").click().run()
    job = _wait(at)
    assert job.error is None, job.error
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def _audited(home, action: str) -> list[tuple[str, str]]:
    _, store = _store(home)
    try:
        with store.session() as s:
            return [tuple(r) for r in s.execute(
                select(AuditRecord.outcome, AuditRecord.username)
                .where(AuditRecord.action == action)).all()]
    finally:
        store.dispose()


def _patients(home):
    _, store = _store(home)
    try:
        return repo.list_patients(store, identified=True)
    finally:
        store.dispose()


@pytest.mark.parametrize(("button", "n_patients"), [("same", 1), ("different", 2)])
def test_a_held_study_shows_on_the_ingest_page_and_a_clinician_resolves_it(
        home, button, n_patients):
    at = _upload_garcia(home)
    result = _table(at, "outcome")
    (held,) = result[result["outcome"] == "held"].itertuples()
    assert held.reason.startswith("held: identity conflict with stored patient HT-")
    assert "(name, birth date differ)" in held.reason and "GARCIA" not in held.reason
    assert any("held as identity conflicts" in w.value for w in at.warning)
    assert [w.value for w in at.warning if "Patient ID of a stored patient" in w.value] == [
        "1 study carries the Patient ID of a stored patient but other identity fields. It is "
        "stored, but filed under no patient and not scored until a clinician decides."]
    # three slices held for review, none filed: not "0 series" beside "3 instances"
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Series stored"], metrics["Instances"]) == ("0", "0")
    assert metrics["Held for identity review"] == "3 instances"
    # no mask count for a held series: a dash, never "None"
    assert result["masks"].tolist() == ["—"]
    holds = _table(at, "differs")
    assert holds["differs"].tolist() == ["name, birth date"]
    # names in clinical form, as everywhere else a clinician reads them
    assert holds["received name"].tolist() == ["David Q GARCIA"]
    assert holds["stored name"].tolist() == ["Michael MUELLER"]
    # what differs first, stored and received values side by side, before anything else
    assert list(holds.columns[:6]) == ["hold", "differs", "stored name", "received name",
                                       "stored birth date", "received birth date"]
    assert holds["received birth date"].tolist() == ["1970-01-01"]
    assert holds["stored birth date"].tolist() == ["1977-04-12"]
    # one study date per role: the file's, as in the ingest result above
    assert holds["study date"].tolist() == ["2021-03-01"] == [held.study_date]
    # the picker names each held study by what was received and whom it collides with
    stored = patient_pseudonym(load_settings(home).site_secret(), Person().patient_id)
    assert at.selectbox(key="ingest:hold").options == [
        f"hold {holds['hold'][0]}: David Q GARCIA, born 1970-01-01, study 2021-03-01 · "
        f"stored as {stored} (Michael MUELLER, born 1977-04-12)"]
    at.button(key=f"ingest:resolve-{button}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (ok,) = at.success
    assert ok.value.startswith("Filed under")
    assert _table(at, "differs") is None  # nothing waits any more
    assert _audited(home, "identity_resolve") == [("ok", "dr.grey")]
    patients = _patients(home)
    assert len(patients) == n_patients and patients["n_studies"].sum() == 2
    assert ("GARCIA^DAVID^Q" in patients["patient_name"].tolist()) == (button == "different")
    # the ingest result above says what became of the study, not "held" any more
    after = _table(at, "outcome")
    filed = patients["pseudonym"].tolist() if button == "same" else [
        p for p in patients["pseudonym"] if p != stored]
    assert after["outcome"].tolist() == [
        "filed: same patient" if button == "same" else "filed: other patient"]
    assert after["patient"].tolist() == filed and len(filed) == 1
    assert not any("held as identity conflicts" in w.value for w in at.warning)
    assert "Held for identity review" not in {m.label for m in at.metric}


def test_an_administrator_sees_held_studies_by_pseudonym_only_and_cannot_resolve(home):
    _ingest(home, real_slices(RealStudy(Person())))
    _ingest(home, real_slices(RealStudy(GARCIA)))
    at = _page(ADMIN)
    holds = _table(at, "differs")
    assert list(holds.columns) == ["hold", "stored patient", "study date", "series", "differs"]
    assert "GARCIA" not in holds.to_string() and "MUELLER" not in holds.to_string()
    assert "Garcia" not in holds.to_string() and "1970-01-01" not in holds.to_string()
    # the stored (shifted) study date, as the ingest result shows this role
    shift = date_shift_days(load_settings(home).site_secret(), Person().patient_id)
    assert holds["study date"].tolist() == [
        (dt.date(2021, 3, 1) + dt.timedelta(days=shift)).isoformat()]
    assert shift != 0
    assert not [b for b in at.button if b.key and b.key.startswith("ingest:resolve")]
    assert any("A clinician resolves these" in c.value for c in at.caption)


def test_a_researcher_cannot_reach_the_held_studies(home):
    _ingest(home, real_slices(RealStudy(Person())))
    _ingest(home, real_slices(RealStudy(GARCIA)))
    at = new_app(RESEARCHER).run()
    assert not at.exception
    with pytest.raises(ValueError, match=r"Could not find a navigation page for .*ingest\.py"):
        at.switch_page("pages/ingest.py")  # not in a researcher's navigation at all
    assert _table(at, "differs") is None
    assert _audited(home, "identity_resolve") == []


def test_a_series_with_a_broken_slice_is_completed_with_the_resent_slice(home):
    study = RealStudy(Person())
    (series,) = _ingest(home, real_slices(study, broken=frozenset({1})))["series"]
    at = _page(CLINICIAN)
    unfinished = _table(at, "instances")
    assert unfinished["series_uid"].tolist() == [series["series_uid"]]
    assert unfinished["status"].tolist() == ["invalid"]
    good = [(n, b, "application/dicom") for n, b in real_slices(study)[1:2]]
    at.file_uploader(key="ingest:repair_files").set_value(good).run()
    at.button(key="ingest:complete").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (ok,) = at.success
    assert "1 broken instances replaced" in ok.value and "the series is now complete" in ok.value
    assert _table(at, "instances") is None  # nothing left to mend
    assert _audited(home, "series_complete") == [("ok", "dr.grey")]


def test_a_stray_broken_series_is_removed_after_confirming(home):
    (series,) = _ingest(home, real_slices(RealStudy(Person()), broken=frozenset({0, 1, 2}))
                        )["series"]
    at = _page(ADMIN)
    assert at.button(key="ingest:remove").disabled
    at.checkbox(key="ingest:remove_ok").check().run()
    at.button(key="ingest:remove").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (ok,) = at.success
    assert ok.value.startswith("Removed the series: 3 instances")
    assert _audited(home, "series_remove") == [("ok", "root")]
    assert _patients(home)["n_studies"].tolist() == [0]  # the patient stays, the junk goes
    assert _table(at, "instances") is None
    assert series["status"] == "invalid"
