"""One fact, one value per role, on a copy of the trained synthetic home
(tests/dashboard_data.py): a CT uploaded without labs (MUELLER^MICHAEL, born 1977-04-12,
sex M, scanned 2021-03-01) gets one plain sentence saying what to add and no claim that
the sex its header carries is missing; the Ingest result shows a clinician the study date
of the file and an administrator the shifted one; the Patient page shows one birth fact per
role and says when imported ages contradict it; every cohort row has an identity for
clinicians (labs-only patients too) and a pseudonym only for researchers, and every risk
shows the date it is as of."""

from __future__ import annotations

import datetime as dt
import re
import time

import pandas as pd
from sqlalchemy import delete, select

from analytics.config import load_settings
from analytics.ingest.deid import date_shift_days, patient_pseudonym
from analytics.ingest.pipeline import ingest_uploads
from analytics.models.assessability import required_inputs
from analytics.models.registry import load_model
from analytics.store import open_store
from analytics.store.schema import IdentityMap, Patient
from analytics.vocabulary import label
from tests.app.conftest import new_app
from tests.dashboard_data import copied_home, template_home
from tests.ingest.identity_samples import Person, RealStudy, real_slices
from ui.session import Viewer

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")
RESEARCHER = Viewer("ana.res", "researcher", "s-res")
ADMIN = Viewer("root.admin", "admin", "s-admin")
MUELLER = Person()  # MRN-4711, MUELLER^MICHAEL, born 1977-04-12, sex M
SCAN_DATE = dt.date(2021, 3, 1)  # RealStudy's StudyDate
JOB = "ingest:job"


def _secret(home) -> bytes:
    return load_settings(home).site_secret()


def _ingest(home, person: Person = MUELLER) -> str:
    """Store one CT of ``person`` (no labs) and return its pseudonym."""
    settings = load_settings(home)
    store = open_store(settings)
    try:
        report = ingest_uploads(real_slices(RealStudy(person)), settings, store)
        assert [s["status"] for s in report.series] == ["complete"], report.as_dict()
    finally:
        store.dispose()
    return patient_pseudonym(settings.site_secret(), person.patient_id)


def _patient_page(viewer: Viewer, pseudonym: str):
    at = new_app(viewer)
    at.query_params["patient"] = pseudonym
    at.run()
    at.switch_page("pages/patient.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _texts(at) -> str:
    parts = [m.label + " " + str(m.value) for m in at.metric]
    for kind in (at.caption, at.markdown, at.warning, at.info, at.subheader, at.title):
        parts += [str(e.value) for e in kind]
    return "\n".join(parts)


# --------------------------------------------------------------------------- item 6
def test_a_scan_without_labs_says_in_one_sentence_which_labs_to_add(home):
    pseudonym = _ingest(home)
    at = _patient_page(CLINICIAN, pseudonym)
    (warning,) = [w.value for w in at.warning if "score" in w.value]
    assert warning.startswith("No score for this visit: ")
    # every lab the active model needs at each visit, by its clinical label
    settings = load_settings(home)
    store = open_store(settings)
    model = load_model(store, settings).model
    store.dispose()
    labs = [label(f) for f in required_inputs(model) if f not in ("age_years", "sex")]
    assert len(labs) >= 4 and {"Bilirubin", "Albumin", "Platelets"} <= set(labs), labs
    for lab in labs:
        assert lab in warning, (lab, warning)
    assert " are not on record; add them (" in warning
    assert "up to 90 days after a scan" in warning  # the cohort's lab window
    # one sentence, in clinical words: no column names, no internal statistics
    assert warning.count(".") == 1 and warning.endswith(".")
    assert not re.search(r"[a-z]+_[a-z0-9_]+", warning), warning
    assert "always measured" not in warning and "worst" not in warning
    # the DICOM header gives sex M and the birth date: neither is claimed missing
    assert "sex" not in warning.lower() and "age" not in warning.lower()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sex"] == "M"
    # no number for the scan, and why there is no imaging-only one
    assert not [m for m in at.metric if m.label.startswith("Risk within")]
    (note,) = [i.value for i in at.info if "imaging-only" in i.value]
    assert note.startswith("No imaging-only score: this model was trained with Bilirubin")


# --------------------------------------------------------------------------- item 3
def _upload(viewer: Viewer, person: Person):
    at = new_app(viewer).run()
    at.switch_page("pages/ingest.py").run()
    files = [(n, b, "application/dicom") for n, b in real_slices(RealStudy(person))]
    at.file_uploader(key="ingest:files").set_value(files).run()
    at.checkbox(key="ingest:extract").uncheck().run()
    at.button(key="ingest:go").click().run()
    deadline = time.monotonic() + 240
    while at.session_state[JOB].running:
        assert time.monotonic() < deadline, "ingest still running"
        time.sleep(0.5)
    at.run()
    assert at.session_state[JOB].error is None, at.session_state[JOB].error
    assert not at.exception and not at.error, [e.value for e in at.error]
    return next(d.value for d in at.dataframe if "outcome" in d.value.columns)


def test_the_ingest_result_shows_a_clinician_the_files_study_date_and_an_admin_the_shifted_one(
        home):
    clinician = _upload(CLINICIAN, MUELLER)
    assert clinician["outcome"].tolist() == ["accepted"]
    assert clinician["study_date"].tolist() == ["2021-03-01"]  # as in the file (the PACS)
    other = Person(patient_id="MRN-0815", name="ROE^RICHARD", birth_date="19600102")
    admin = _upload(ADMIN, other)
    shift = date_shift_days(_secret(home), "MRN-0815")
    assert shift < 0
    assert admin["study_date"].tolist() == [(SCAN_DATE + dt.timedelta(days=shift)).isoformat()]


def test_the_patient_page_shows_one_birth_fact_per_role(home):
    pseudonym = _ingest(home)
    clinician = _patient_page(CLINICIAN, pseudonym)
    metrics = {m.label: m.value for m in clinician.metric}
    assert metrics["Born"] == "1977-04-12" and "Birth year" not in metrics
    assert "born 1977-04-12" in _texts(clinician)
    shift = date_shift_days(_secret(home), MUELLER.patient_id)
    shifted_year = (dt.date(1977, 4, 12) + dt.timedelta(days=shift)).year
    researcher = _patient_page(RESEARCHER, pseudonym)
    metrics = {m.label: m.value for m in researcher.metric}
    assert metrics["Birth year"] == str(shifted_year) and "Born" not in metrics
    assert "1977-04-12" not in _texts(researcher) and "MUELLER" not in _texts(researcher)
    assert not [w for w in clinician.warning if "imported visits give an age" in w.value]


def test_an_imported_age_that_contradicts_the_birth_date_is_shown_as_a_conflict(home):
    from analytics.cohort import import_cohort

    pseudonym = _ingest(home)
    settings = load_settings(home)
    store = open_store(settings)
    try:
        import_cohort(store, pd.DataFrame({"patient_id": [MUELLER.patient_id],
                                           "date": ["2021-03-01"], "age_years": [60.0]}),
                      pd.DataFrame({"patient_id": [MUELLER.patient_id],
                                    "date": ["2022-01-01"], "event": ["censored"]}),
                      settings=settings)
    finally:
        store.dispose()
    at = _patient_page(CLINICIAN, pseudonym)
    (conflict,) = [w.value for w in at.warning if "imported visits" in w.value]
    # 2021-03-01 - 1977-04-12 = 16,029 days = 43.9 years
    assert conflict == ("The imported visits give an age of 60.0 years on 2021-03-01, but "
                        "the birth date in the DICOM header (1977-04-12) gives 43.9: check "
                        "that both belong to this patient (the model uses the visits' age).")


# --------------------------------------------------------------------------- item 5
def _labs_only(template) -> dict[str, str]:
    """pseudonym -> real ID of the patients imported from labs.csv without a scan."""
    return {ps: pid for pid, ps in template.pseudonyms.items() if ps not in template.imaging}


def _scored_labs_only(home, template) -> str:
    """A labs-only patient whose latest visit the model scores (the truth, read directly)."""
    from analytics.cohort import build_cohort
    from analytics.models.registry import load_model
    from analytics.usecases.overview import cohort_risk

    settings = load_settings(home)
    store = open_store(settings)
    try:
        risk = cohort_risk(load_model(store, settings), build_cohort(store).visits, 3.0)
    finally:
        store.dispose()
    ok = set(risk.loc[risk["assessable"], "pseudonym"])
    return next(p for p in sorted(_labs_only(template)) if p in ok)


def _last_lab_date(template, pid: str) -> dt.date:
    labs = pd.read_csv(template.synth / "labs.csv")
    return dt.date.fromisoformat(labs.loc[labs["patient_id"] == pid, "date"].max())


def test_every_cohort_row_has_an_identity_and_every_risk_an_as_of_date(home, template):
    labs_only = _labs_only(template)
    named = _scored_labs_only(home, template)
    anonymous = next(p for p in sorted(labs_only) if p != named)  # without any identity
    store = open_store(load_settings(home))
    with store.session() as s:
        pid = s.execute(select(Patient.id).where(Patient.pseudonym == anonymous)).scalar()
        s.execute(delete(IdentityMap).where(IdentityMap.patient_id == pid))
    store.dispose()

    at = new_app(CLINICIAN).run()
    at.selectbox(key="cohort:sort").select("Current risk (highest first)").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    for col in ("patient_name", "patient_id", "last_scan"):
        assert table[col].notna().all(), col
        assert "None" not in table[col].astype(str).tolist(), col
    rows = table.set_index("pseudonym")
    assert rows.loc[anonymous, "patient_name"] == "name not recorded"
    assert rows.loc[anonymous, "patient_id"] == "ID not recorded"
    assert rows.loc[named, "patient_id"] == labs_only[named]
    assert rows.loc[named, "last_scan"] == "no scan"
    # the risk is as of the patient's last lab draw: its real date for the clinician
    scored = rows[rows["risk_pct"].notna()]
    assert len(scored) > 0 and scored["risk_as_of"].notna().all()
    assert rows.loc[named, "risk_as_of"].date() == _last_lab_date(template, labs_only[named])

    res = new_app(RESEARCHER).run()
    assert not res.exception and not res.error
    rtable = res.dataframe[0].value
    assert "patient_name" not in rtable.columns and "patient_id" not in rtable.columns
    assert rtable["pseudonym"].str.fullmatch(r"HT-[0-9A-F]{16}").all()
    assert not rtable.astype(str).apply(lambda c: c.str.contains("SYN3-")).any().any()
    shift = date_shift_days(_secret(home), labs_only[named])
    rrows = rtable.set_index("pseudonym")
    assert rrows.loc[named, "risk_as_of"].date() == (
        _last_lab_date(template, labs_only[named]) + dt.timedelta(days=shift))


def test_the_patient_page_says_what_date_a_risk_is_as_of(home, template):
    labs_only = _labs_only(template)
    named = _scored_labs_only(home, template)
    at = _patient_page(CLINICIAN, named)
    last = _last_lab_date(template, labs_only[named])
    captions = [c.value for c in at.caption if c.value.startswith("Risk as of")]
    assert captions == [f"Risk as of {last.isoformat()}: the date of the last visit or scan "
                        "this score uses."]
    # the picker names a patient known by ID only by that ID, for clinicians only
    assert f"{named} · ID {labs_only[named]}" in at.selectbox(key="patient:pseudonym").options
    shift = date_shift_days(_secret(home), labs_only[named])
    res = _patient_page(RESEARCHER, named)
    assert named in res.selectbox(key="patient:pseudonym").options
    assert not [o for o in res.selectbox(key="patient:pseudonym").options if "·" in o]
    captions = [c.value for c in res.caption if c.value.startswith("Risk as of")]
    assert captions == [f"Risk as of {(last + dt.timedelta(days=shift)).isoformat()}: the "
                        "date of the last visit or scan this score uses."]
