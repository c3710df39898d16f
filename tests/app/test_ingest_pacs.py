"""The Ingest page's PACS tab against a real Orthanc (DICOMweb): search by patient ID
(names only for identified viewers, audited), then linking the found study ingests it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from analytics.audit import Actor
from analytics.config import load_settings
from analytics.store import open_store
from analytics.store.current_risk import read_current_risk
from analytics.store.schema import AuditRecord
from analytics.usecases.context import Context
from analytics.usecases.models import PredictRequest, predict
from tests import dashboard_data
from tests.app.conftest import new_app
from ui import ingest_view, jobs
from ui.session import Viewer

pytestmark = pytest.mark.services


@pytest.fixture
def pacs_home(tmp_path_factory, tmp_path, monkeypatch, orthanc):
    t = dashboard_data.template(tmp_path_factory)
    home = dashboard_data.copy_home(t, tmp_path / "home")
    orthanc.clear()
    orthanc.upload_dir(t.holdout)  # the held-out study, as the hospital's PACS has it
    monkeypatch.setenv("HEPATRACK_HOME", str(home))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    monkeypatch.setenv("HEPATRACK_PACS_URL", orthanc.dicomweb_url)
    monkeypatch.setenv("HEPATRACK_PACS_USER", orthanc.username)
    monkeypatch.setenv("HEPATRACK_PACS_PASSWORD", orthanc.password)
    return t, home


def _search(viewer: Viewer, patient_id: str):
    at = new_app(viewer).run()
    at.switch_page("pages/ingest.py").run()
    at.text_input(key="ingest:patient_id").input(patient_id)
    next(b for b in at.button if b.label == "Search").click().run()
    return at


def test_clinician_finds_the_study_with_its_patient(pacs_home):
    t, home = pacs_home
    real = t.holdout_truth["patient_id"]
    at = _search(Viewer("dr.grey", "clinician", "s1"), real)
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert table["patient_id"].tolist() == [real]
    assert table["n_series"].tolist() == [2]  # the CT and its SEG
    assert table["modalities"].iloc[0] in ("CT, SEG", "SEG, CT")
    store = open_store(load_settings(home))
    with store.session() as s:
        rec = s.execute(select(AuditRecord.detail).where(AuditRecord.action == "pacs_link")
                        ).scalars().all()
    store.dispose()
    assert rec == [{"step": "search", "pacs": "env", "results": 1}]


def test_admin_sees_no_identifiers_and_no_match_says_so(pacs_home):
    t, _home = pacs_home
    at = _search(Viewer("root.admin", "admin", "s2"), t.holdout_truth["patient_id"])
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert "patient_name" not in table.columns and "patient_id" not in table.columns
    none = _search(Viewer("root.admin", "admin", "s3"), "NOBODY-42")
    assert "No study matches." in [w.value for w in none.warning]


def test_linking_the_found_study_ingests_it(pacs_home):
    t, home = pacs_home
    settings = load_settings(home)
    store = open_store(settings)
    actor = Actor("dr.grey", "clinician", "s4")
    found = ingest_view.search_pacs(store, actor, settings.pacs[0],
                                    patient_id=t.holdout_truth["patient_id"])
    job = jobs.start("PACS link", lambda job: ingest_view.link_pacs_job(
        job, store, settings, actor, found["url"].tolist(), "env", extract=False))
    assert job.wait(240)
    assert job.error is None and job.bug is None, (job.error, job.bug_trace)
    table = ingest_view.result_table(job.result)
    assert table["outcome"].tolist() == ["accepted"]
    assert table["slices"].tolist() == [t.holdout_truth["shape"][0]]
    assert table["masks"].tolist() == [1]
    with store.session() as s:
        steps = s.execute(select(AuditRecord.detail["step"].as_string())
                          .where(AuditRecord.action == "pacs_link")
                          .order_by(AuditRecord.seq)).scalars().all()
    assert steps == ["search", "retrieve"]
    store.dispose()


def test_a_linked_study_gets_its_patients_new_risk_as_an_upload_does(pacs_home):
    """The PACS link runs the same scoring step as an upload: the held-out study's
    patient gets the risk the predict use case gives for the latest visit, and the stored
    current risk (the Cohort page's) holds the same value."""
    t, home = pacs_home
    settings = load_settings(home)
    store = open_store(settings)
    actor = Actor("dr.grey", "clinician", "s5")
    try:
        found = ingest_view.search_pacs(store, actor, settings.pacs[0],
                                        patient_id=t.holdout_truth["patient_id"])
        job = jobs.start("PACS link", lambda job: ingest_view.link_pacs_job(
            job, store, settings, actor, found["url"].tolist(), "env"))
        assert job.wait(300)
        assert job.error is None and job.bug is None, (job.error, job.bug_trace)
        assert job.result["features"].series_done  # scored after its features
        pseudonym = t.pseudonyms[t.holdout_truth["patient_id"]]
        new = job.result["risk"]
        (shown,) = [p for p in new.patients if p.pseudonym == pseudonym]
        (res,) = predict(Context.cli(store, settings),
                         PredictRequest(patients=[pseudonym], cache=False))
        latest = [r for r in res["trajectory"] if not r["requested"]][-1]
        assert latest["risk"] is not None and shown.reason is None
        assert shown.risk == pytest.approx(latest["risk"], rel=1e-9)
        stored = read_current_risk(store, res["model_id"], res["horizon"])[pseudonym]
        assert stored.risk == pytest.approx(latest["risk"], rel=1e-9)
    finally:
        store.dispose()
