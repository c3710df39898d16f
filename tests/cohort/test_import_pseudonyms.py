"""Cohort import pseudonymises exactly as image ingest does, whichever comes first
(RELIABILITY.md item 33), and refuses patient IDs with hidden characters (item 37)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from analytics.cohort import import_cohort
from analytics.ingest.deid import date_shift_days, patient_key, patient_pseudonym
from analytics.ingest.pipeline import ingest_sources
from analytics.store import open_store, repo
from analytics.store.schema import IdentityMap, Patient, Study, Visit
from tests.ingest.dicom_samples import Study as SampleStudy
from tests.ingest.dicom_samples import ct_series, write_folder

MRN = "MRN-0012345"  # the Patient ID of tests.ingest.dicom_samples.Study
LABS = f"patient_id,date,bilirubin_mg_dl\n{MRN},2020-01-10,1.4\n{MRN},2020-07-01,2.1\n"
OUTCOME = f"patient_id,date,event\n{MRN},2022-03-01,censored\n"


def _snapshot(store) -> dict:
    with store.session() as s:
        patients = s.execute(select(Patient.pseudonym)).scalars().all()
        identity = s.execute(select(IdentityMap.real_patient_id, IdentityMap.real_patient_id_key,
                                    IdentityMap.date_shift_days)).all()
        visits = sorted(s.execute(select(Visit.visit_date).where(Visit.source == "csv"))
                        .scalars().all())
        studies = s.execute(select(Study.study_date)).scalars().all()
    return {"patients": patients, "identity": [tuple(r) for r in identity],
            "visit_dates": visits, "study_dates": studies}


def test_labs_imported_before_imaging_get_the_image_ingest_pseudonym_and_shifted_dates(
        settings, csvs):
    store = open_store(settings)
    secret = settings.site_secret()
    import_cohort(store, *csvs(LABS, OUTCOME), settings=settings)
    got = _snapshot(store)
    shift = date_shift_days(secret, MRN)
    assert got["patients"] == [patient_pseudonym(secret, MRN)]
    assert MRN not in got["patients"][0]
    assert got["identity"] == [(MRN, patient_key(secret, MRN), shift)]
    assert got["visit_dates"] == [dt.date(2020, 1, 10) + dt.timedelta(days=shift),
                                  dt.date(2020, 7, 1) + dt.timedelta(days=shift)]
    # a researcher sees the pseudonym and shifted dates; a clinician the real ID
    research = repo.list_patients(store, identified=False)
    assert "patient_id" not in research.columns
    clinic = repo.list_patients(store, identified=True)
    assert clinic["patient_id"].tolist() == [MRN]
    store.dispose()


def test_labs_then_imaging_and_imaging_then_labs_give_one_patient_with_the_same_calendar(
        settings, csvs, tmp_path):
    folder = write_folder(tmp_path / "ct", ct_series(SampleStudy(), 3))
    results = []
    for order in ("labs first", "imaging first"):
        s = dataclasses.replace(settings, db_url=f"sqlite:///{tmp_path / (order[0] + '.db')}")
        store = open_store(s)
        steps = [lambda st=store, s=s: import_cohort(st, *csvs(LABS, OUTCOME), settings=s),
                 lambda st=store, s=s: ingest_sources([str(folder)], s, st)]
        for step in steps if order == "labs first" else steps[::-1]:
            step()
        results.append(_snapshot(store))
        store.dispose()
    labs_first, imaging_first = results
    assert labs_first == imaging_first
    assert len(labs_first["patients"]) == 1 and len(labs_first["identity"]) == 1
    shift = date_shift_days(settings.site_secret(), MRN)
    assert labs_first["study_dates"] == [dt.date(2020, 1, 15) + dt.timedelta(days=shift)]


def test_an_id_differing_only_in_case_or_spaces_joins_the_stored_patient(settings, csvs,
                                                                           tmp_path):
    store = open_store(settings)
    ingest_sources([str(write_folder(tmp_path / "ct", ct_series(SampleStudy(), 2)))],
                   settings, store)
    report = import_cohort(store, *csvs(LABS.replace(MRN, "mrn-0012345 "),
                                        OUTCOME.replace(MRN, "mrn-0012345")),
                           settings=settings)
    assert report.rejected == []
    assert len(_snapshot(store)["patients"]) == 1
    store.dispose()


@pytest.mark.parametrize(("pid", "shown"), [
    ("MRN\u200b778899", "U+200B (ZERO WIDTH SPACE) at position 4"),
    ("MRN778899\u2028", "U+2028 (LINE SEPARATOR) at position 10"),
    ("MRN\u00a0778899", "U+00A0 (NO-BREAK SPACE) at position 4"),
    ("\u202eMRN778899", "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 1"),
], ids=["zero-width-space", "line-separator", "no-break-space", "bidi-override"])
def test_patient_ids_with_control_or_invisible_characters_are_rejected_naming_the_row(
        settings, csvs, pid, shown):
    store = open_store(settings)
    report = import_cohort(store, *csvs(f"patient_id,time,inr\nP7,0,1.1\n{pid},0,1.2\n",
                                        "patient_id,time,event\nP7,1,censored\n"),
                           settings=settings)
    (issue,) = report.rejected
    assert (issue.file, issue.row) == ("visits.csv", 2)
    assert f"control or invisible character {shown}" in issue.reason
    assert str(issue).startswith("visits.csv row 2 (line 3): patient_id ")
    assert len(_snapshot(store)["patients"]) == 1
    store.dispose()


def test_two_spellings_of_one_id_in_one_import_keep_the_first(settings, csvs):
    store = open_store(settings)
    report = import_cohort(store, *csvs("patient_id,time,inr\nP7,0,1.1\np 7,1,1.2\n",
                                        "patient_id,time,event\nP7,1,censored\n"),
                           settings=settings)
    (issue,) = report.rejected
    assert issue.row == 2
    assert "patient_id 'p 7' differs from 'P7' only in case or spaces" in issue.reason
    assert _snapshot(store)["patients"] == [patient_pseudonym(settings.site_secret(), "P7")]
    store.dispose()


def test_an_unknown_id_shaped_like_a_pseudonym_is_rejected(settings, csvs):
    store = open_store(settings)
    report = import_cohort(store, *csvs("patient_id,time,inr\nHT-0123456789ABCDEF,0,1.1\n",
                                        "patient_id,time,event\n"), settings=settings)
    (issue,) = report.rejected
    assert "has the form of a HepaTrack pseudonym but no such patient is stored" in issue.reason
    assert _snapshot(store)["patients"] == []
    store.dispose()


def test_images_after_labs_fill_the_name_and_birth_date_the_import_did_not_know(
        settings, csvs, tmp_path):
    store = open_store(settings)
    import_cohort(store, *csvs(LABS, OUTCOME), settings=settings)
    with store.session() as s:
        before = s.execute(select(IdentityMap.patient_name, IdentityMap.birth_date)).one()
    assert tuple(before) == (None, None)
    ingest_sources([str(write_folder(tmp_path / "ct", ct_series(SampleStudy(), 2)))],
                   settings, store)
    other = SampleStudy(patient_name="Other^Name", birth_date="19700101")
    ingest_sources([str(write_folder(tmp_path / "ct2", ct_series(other, 2)))], settings, store)
    with store.session() as s:
        rows = s.execute(select(IdentityMap.patient_name, IdentityMap.birth_date)).all()
    store.dispose()
    # filled from the first images; a later study never replaces what is known
    assert [tuple(r) for r in rows] == [("Doe^Jane^Q", dt.date(1958, 3, 14))]
