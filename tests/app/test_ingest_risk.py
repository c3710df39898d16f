"""The Ingest page shows the new risk of the patients of an upload once their features
are extracted: the number the predict use case gives for the patient's latest visit, its
change since the previous scored visit, the largest reasons, and a way to the Patient
page; the stored current risk (the Cohort page's) is the same value. Without a model the
section says why; a role without the identified view sees no name or ID in it. Features
failed, a held series, extraction switched off, a role that may not predict and a visit
the model cannot assess each give their reason, never a number."""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from analytics import auth
from analytics.audit import Actor
from analytics.config import load_settings
from analytics.errors import ModelError
from analytics.explain.wording import points_text
from analytics.store import open_store, repo
from analytics.store.current_risk import read_current_risk
from analytics.usecases.context import Context
from analytics.usecases.models import PredictRequest, predict
from tests import dashboard_data
from tests.app import test_ingest_features
from tests.app.conftest import new_app
from ui import ingest_risk
from ui.ingest_risk import CONTAINER_KEY, HELD, NO_MODEL, NO_PREDICT, NOT_EXTRACTED, new_risk
from ui.ingest_view import FeatureSummary
from ui.session import Viewer

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")
#: fixture: a synthetic CT with its SEG of a new patient, as uploaded files
phantom_upload = test_ingest_features.upload_files
ADMIN = Viewer("root.admin", "admin", "s-admin")
ADMIN_ACTOR = Actor("root.admin", "admin", "s-admin")
#: fixture: the template, then settings and an open store on a private copy of it
opened_copy = dashboard_data.opened_copy


@pytest.fixture
def trained(tmp_path_factory, tmp_path, monkeypatch):
    """The template (its held-out study: a new scan of a cohort patient) and a private
    copy of its home, with the trained model, as ``HEPATRACK_HOME``."""
    t = dashboard_data.template(tmp_path_factory)
    home = dashboard_data.copy_home(t, tmp_path / "home")
    monkeypatch.setenv("HEPATRACK_HOME", str(home))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    return t, home


def _holdout_files(t) -> list[tuple[str, bytes, str]]:
    return [(p.relative_to(t.holdout).as_posix(), p.read_bytes(), "application/dicom")
            for p in sorted(t.holdout.rglob("*.dcm"))]


def _upload(viewer: Viewer, files, *, extract: bool = True):
    at = new_app(viewer).run()
    at.switch_page("pages/ingest.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="ingest:files").set_value(files).run()
    if not extract:
        at.checkbox(key="ingest:extract").uncheck().run()
    at.button(key="ingest:go").click().run()
    deadline = time.monotonic() + 900.0
    while at.session_state["ingest:job"].running:
        assert time.monotonic() < deadline, "ingest still running after 900 s"
        time.sleep(0.5)
    at.run()
    job = at.session_state["ingest:job"]
    assert job.error is None and job.bug is None, (job.error, job.bug_trace)
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at, job


def _texts(block) -> str:
    """Every text the section shows (labels, values, captions, warnings)."""
    out = []
    for e in block:
        for attr in ("value", "label", "body"):
            v = getattr(e, attr, None)
            if isinstance(v, str):
                out.append(v)
    return "\n".join(out)


def _last_visit(t, patient_id: str) -> str:
    """The real date of the patient's last visit, from the generator's truth."""
    (patient,) = [p for p in t.truth["patients"] if p["patient_id"] == patient_id]
    return max(v["date"] for v in patient["visits"])


def _truth(home: Path, pseudonym: str):
    """The predict use case's trajectory of the patient (no cache write), the store's
    real identity of the patient, and per horizon its stored current risk and the
    predict use case's latest visit at that horizon."""
    settings = load_settings(home)
    store = open_store(settings)
    try:
        (res,) = predict(Context.cli(store, settings),
                         PredictRequest(patients=[pseudonym], cache=False))
        names = repo.find_names(store, repo.PatientQuery(pseudonyms=(pseudonym,)),
                                identified=True).iloc[0]
        stored = {}
        for h in (1.0, 2.0, 3.0):
            (at_h,) = predict(Context.cli(store, settings),
                              PredictRequest(patients=[pseudonym], horizon=h, cache=False))
            row = read_current_risk(store, res["model_id"], h).get(pseudonym)
            stored[h] = (row, [r for r in at_h["trajectory"] if not r["requested"]][-1])
    finally:
        store.dispose()
    return res, names, stored


def test_a_new_scan_shows_the_patients_new_risk_and_opens_the_patient(trained):
    t, home = trained
    pseudonym = t.pseudonyms[t.holdout_truth["patient_id"]]
    at, job = _upload(CLINICIAN, _holdout_files(t))
    assert job.result["features"].series_done  # scored after its features
    res, names, stored = _truth(home, pseudonym)
    rows = [r for r in res["trajectory"] if not r["requested"]]
    latest = rows[-1]
    previous = next(r for r in reversed(rows[:-1]) if r["risk"] is not None)
    assert latest["risk"] is not None

    section = at.main.get_by_key(CONTAINER_KEY)
    metrics = {m.label: m.value for m in section.metric}
    horizon = res["horizon"]
    assert metrics[f"Risk within {horizon:g} y"] == f"{100 * latest['risk']:.1f}%"
    (change_label,) = [k for k in metrics if k.startswith("Change since")]
    assert metrics[change_label] == points_text(100 * (latest["risk"] - previous["risk"]))
    text = _texts(section)
    # the clinician sees the patient's name and the real dates: of the latest visit (the
    # generator's labs go on after the held-out scan) and of the new scan, said apart
    assert pseudonym in text and names["patient_name"].split("^")[0].title() in text.title()
    assert f"visit {_last_visit(t, t.holdout_truth['patient_id'])}" in text
    assert f"The new scan ({t.holdout_truth['study_date']}) is not this patient's" in text
    # and the risk at the scan's own visit (the generator's time of the held-out scan)
    at_scan = min(rows, key=lambda r: abs(r["time"] - t.holdout_truth["time_years"]))
    assert abs(at_scan["time"] - t.holdout_truth["time_years"]) < 1e-5
    assert f"at the scan's own visit it was {100 * at_scan['risk']:.1f}%" in text
    assert latest["contributions"][0] in text  # the largest reason, as the Patient page
    # one fact, one value: the stored current risk (the Cohort page's) is the same, at
    # every horizon of the model
    assert math.isclose(stored[horizon][0].risk, latest["risk"], rel_tol=1e-9)
    for h, (row, want) in stored.items():
        assert row is not None and math.isclose(row.risk, want["risk"], rel_tol=1e-9), h

    at.button(key=f"ingest:open-{pseudonym}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="patient:pseudonym").value == pseudonym
    assert any(t.value == "Patient" for t in at.title)


def test_without_a_trained_model_the_section_says_why(seeded_home, phantom_upload):
    files, _liver_ml = phantom_upload
    at, job = _upload(CLINICIAN, [(n, b, "application/dicom") for n, b in files])
    assert job.result["features"].series_done  # extracted, but nothing to score with
    section = at.main.get_by_key(CONTAINER_KEY)
    assert NO_MODEL in _texts(section)
    assert not [m for m in section.metric if m.label.startswith("Risk within")]
    assert "%" not in _texts(section)  # never a number


def test_a_role_without_the_identified_view_sees_no_name_or_id(trained):
    t, home = trained
    real_id = t.holdout_truth["patient_id"]
    pseudonym = t.pseudonyms[real_id]
    at, _job = _upload(ADMIN, _holdout_files(t))
    res, names, _stored = _truth(home, pseudonym)
    section = at.main.get_by_key(CONTAINER_KEY)
    text = _texts(section)
    latest = [r for r in res["trajectory"] if not r["requested"]][-1]
    assert pseudonym in text and f"{100 * latest['risk']:.1f}%" in text
    assert real_id not in text
    for part in str(names["patient_name"]).replace("^", " ").split():
        assert part.lower() not in text.lower()
    # the stored (shifted) date, never the real one
    assert f"visit {latest['date']}" in text
    assert t.holdout_truth["study_date"] not in text


# --------------------------------------------------------------------------- withheld
def _report(series=(), held=()):
    return SimpleNamespace(series=list(series), held=list(held))


def _new(uid: str, patient: str, day: str = "2020-01-01") -> dict:
    return {"series_uid": uid, "status": "complete", "modality": "CT", "patient": patient,
            "study_date": day}


def test_no_number_where_there_is_no_score_and_each_reason_is_named(opened_copy, monkeypatch):
    t, settings, store = opened_copy
    a, b, c = sorted(t.pseudonyms.values())[:3]
    report = _report([_new("1.1", a), _new("1.2", b)],
                     held=[{"series_uid": "1.3", "patient": c}])
    batch = FeatureSummary(series_failed=[{"series_uid": "1.1", "reason": "no liver mask"},
                                          {"series_uid": "1.2", "reason": "worker failed"}])
    got = new_risk(store, settings, ADMIN_ACTOR, report, batch)
    reasons = {p.pseudonym: p.reason for p in got.patients}
    assert reasons == {a: "Feature extraction failed: no liver mask. No new risk.",
                       b: "Feature extraction failed: worker failed. No new risk.", c: HELD}
    assert all(p.risk is None for p in got.patients)
    off = new_risk(store, settings, ADMIN_ACTOR, _report([_new("1.1", a)]), None,
                   extract=False)
    assert [(p.pseudonym, p.reason) for p in off.patients] == [(a, NOT_EXTRACTED)]
    assert new_risk(store, settings, ADMIN_ACTOR, _report(), None) is None


def test_a_role_that_may_not_predict_gets_the_reason_and_no_prediction(
        opened_copy, monkeypatch):
    t, settings, store = opened_copy
    patient = t.imaging[0]
    roles = dict(auth.ROLE_PERMISSIONS)
    monkeypatch.setitem(auth.ROLE_PERMISSIONS, auth.Role.ADMIN,
                        roles[auth.Role.ADMIN] - {auth.Permission.PREDICT})
    monkeypatch.setattr(ingest_risk.models_uc, "predict", _never)
    got = new_risk(store, settings, ADMIN_ACTOR, _report([_new("1.1", patient)]),
                   FeatureSummary(series_done=["1.1"]))
    assert got.reason == NO_PREDICT
    assert [(p.pseudonym, p.risk, p.reason) for p in got.patients] == [
        (patient, None, NO_PREDICT)]


def _never(*_a, **_k):
    raise AssertionError("predict called")


def test_the_latest_visit_not_assessable_gives_its_reason_and_the_change_skips_such_visits():
    rows = [{"time": 0.0, "date": "2020-01-01", "risk": 0.25, "requested": False,
             "reason": None, "contributions": ["A"]},
            {"time": 0.5, "date": "2020-07-01", "risk": None, "requested": False,
             "reason": "inr outside the training range", "contributions": []},
            {"time": 1.0, "date": "2021-01-01", "risk": 0.30, "requested": False,
             "reason": None, "contributions": ["B", "C", "D", "E"]}]
    one = ingest_risk._one({"patient": "HT-1", "trajectory": rows})
    # the change since the last visit with a risk (0.30 - 0.25, by hand), three reasons
    assert one.risk == 0.30 and math.isclose(one.change, 0.05, abs_tol=1e-15)
    assert one.since == "2020-01-01" and one.date == "2021-01-01"
    assert one.why == ("B", "C", "D")
    unscored = ingest_risk._one({"patient": "HT-1", "trajectory": rows[:2]})
    assert unscored.risk is None and unscored.change is None
    assert unscored.reason == "Not assessable: inr outside the training range"


def test_a_patient_that_cannot_be_scored_stops_no_other(opened_copy, monkeypatch):
    t, settings, store = opened_copy
    good, bad = t.imaging
    real = ingest_risk.models_uc.predict

    def predict_but_not_bad(ctx, req):
        if req.patients == [bad]:
            raise ModelError(f"--patient {bad}: no visits for this patient in the cohort")
        return real(ctx, req)

    monkeypatch.setattr(ingest_risk.models_uc, "predict", predict_but_not_bad)
    got = new_risk(store, settings, ADMIN_ACTOR,
                   _report([_new("1.1", bad), _new("1.2", good)]),
                   FeatureSummary(series_done=["1.1", "1.2"]))
    by = {p.pseudonym: p for p in got.patients}
    assert by[bad].risk is None and by[bad].reason == (
        f"No risk could be computed: --patient {bad}: no visits for this patient in the cohort")
    (want,) = real(Context.cli(store, settings), PredictRequest(patients=[good], cache=False))
    latest = [r for r in want["trajectory"] if not r["requested"]][-1]
    assert by[good].risk == latest["risk"] and got.model_id == want["model_id"]
