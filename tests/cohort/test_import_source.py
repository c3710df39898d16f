"""Each imported visit names its cohort file and import day: recorded in the import's own
transaction, kept when a re-import changes nothing, moved to the import that changes a
visit, and shown only to identified views (the day shifted in pseudonymised ones)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, text

from analytics.cohort import import_cohort
from analytics.cohort.importer import source_file_name
from analytics.errors import StoreError
from analytics.store import open_store
from analytics.store.repo import patient_detail
from analytics.store.schema import CohortImport, Visit
from tests.cohort.conftest import add_patient, write_csv

LABS = """
patient_id,date,bilirubin_mg_dl
MRN-7,2024-01-10,1.2
MRN-7,2024-07-10,1.5
"""
LABS_CHANGED = """
patient_id,date,bilirubin_mg_dl
MRN-7,2024-01-10,1.2
MRN-7,2024-07-10,1.9
"""
OUTCOMES = """
patient_id,time,event
MRN-7,2.0,censored
"""


def _sources(store) -> list[tuple[dt.date, str | None]]:
    """(stored visit date, file name of the visit's import) of every visit, by date."""
    with store.session() as s:
        rows = s.execute(select(Visit.visit_date, CohortImport.file_name)
                         .outerjoin(CohortImport, Visit.import_id == CohortImport.id)
                         .order_by(Visit.visit_date)).all()
    return [tuple(r) for r in rows]


def test_an_import_records_its_file_name_and_day_with_the_visits_it_writes(store, tmp_path):
    add_patient(store, "HT-7", real_id="MRN-7", shift_days=100)
    labs = write_csv(tmp_path, "labs_2024.csv", LABS)
    outcomes = write_csv(tmp_path, "outcomes.csv", OUTCOMES)
    before = dt.datetime.now(dt.UTC).date()
    import_cohort(store, labs, outcomes)
    # stored dates are real + 100 days
    assert _sources(store) == [(dt.date(2024, 4, 19), "labs_2024.csv"),
                               (dt.date(2024, 10, 18), "labs_2024.csv")]
    with store.session() as s:
        imports = s.execute(select(CohortImport)).scalars().all()
    assert [i.file_name for i in imports] == ["labs_2024.csv"]
    assert imports[0].imported_at.date() in {before, dt.datetime.now(dt.UTC).date()}


def test_a_re_import_keeps_the_first_file_and_a_changed_visit_names_the_new_one(
        store, tmp_path):
    add_patient(store, "HT-7", real_id="MRN-7", shift_days=100)
    outcomes = write_csv(tmp_path, "outcomes.csv", OUTCOMES)
    import_cohort(store, write_csv(tmp_path, "labs_2024.csv", LABS), outcomes)
    # the same rows again under another name: nothing changes, no import is recorded
    import_cohort(store, write_csv(tmp_path, "labs_copy.csv", LABS), outcomes)
    assert [f for _d, f in _sources(store)] == ["labs_2024.csv", "labs_2024.csv"]
    # one value changed: that visit names the new file, the other keeps the first
    import_cohort(store, write_csv(tmp_path, "labs_corrected.csv", LABS_CHANGED), outcomes)
    assert [f for _d, f in _sources(store)] == ["labs_2024.csv", "labs_corrected.csv"]
    with store.session() as s:
        names = s.execute(select(CohortImport.file_name).order_by(CohortImport.id)).scalars()
        assert list(names) == ["labs_2024.csv", "labs_corrected.csv"]


def test_a_failed_import_records_no_import(store, tmp_path):
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER no_outcomes BEFORE INSERT ON outcomes "
                          "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    with pytest.raises(StoreError, match="nothing was imported"):
        import_cohort(store, write_csv(tmp_path, "labs.csv", LABS),
                      write_csv(tmp_path, "outcomes.csv", OUTCOMES))
    with store.session() as s:
        assert s.execute(select(CohortImport)).scalars().all() == []


@pytest.mark.parametrize(("source", "name"), [
    ("/data/site/labs 2024.csv", "labs 2024.csv"),
    (Path("exports") / "visits.csv", "visits.csv"),
    ("/data/labs\u200b\n.csv", "labs.csv"),  # invisible and control characters dropped
    ("x" * 300 + ".csv", "x" * 255),
    (pd.DataFrame({"patient_id": ["P1"]}), None),
])
def test_source_file_name_keeps_the_base_name_only(source, name):
    assert source_file_name(source) == name


def test_patient_detail_shows_the_file_and_real_day_identified_and_a_shifted_day_otherwise(
        store, tmp_path):
    add_patient(store, "HT-7", real_id="MRN-7", shift_days=100)
    import_cohort(store, write_csv(tmp_path, "labs_2024.csv", LABS),
                  write_csv(tmp_path, "outcomes.csv", OUTCOMES))
    with store.session() as s:
        day = s.execute(select(CohortImport.imported_at)).scalar().date()
    seen = patient_detail(store, "HT-7", identified=True).visits
    assert seen["source_file"].tolist() == ["labs_2024.csv"] * 2
    assert seen["imported_on"].tolist() == [pd.Timestamp(day)] * 2
    assert seen["visit_date"].tolist() == [pd.Timestamp("2024-01-10"),
                                           pd.Timestamp("2024-07-10")]
    research = patient_detail(store, "HT-7", identified=False).visits
    assert research["source_file"].isna().all()
    # moved by the patient's +100 days like its visit dates, so the gap between a visit
    # and its import stays what it is
    assert research["imported_on"].tolist() == [pd.Timestamp(day + dt.timedelta(days=100))] * 2
    assert research["visit_date"].tolist() == [pd.Timestamp("2024-04-19"),
                                               pd.Timestamp("2024-10-18")]


def test_a_store_from_before_imports_were_recorded_opens_with_its_visits_not_recorded(
        tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url=url)
    add_patient(store, "HT-7", real_id="MRN-7", shift_days=100)
    with store.session() as s:
        pid = s.execute(text("SELECT id FROM patients")).scalar()
    # the visits table as an earlier copy of the initial revision created it
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE visits")
        conn.exec_driver_sql("DROP TABLE cohort_imports")
        conn.exec_driver_sql(
            "CREATE TABLE visits (id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL "
            "REFERENCES patients (id), time_years FLOAT NOT NULL, visit_date DATE, "
            "source VARCHAR(32) NOT NULL, \"values\" JSON NOT NULL, "
            "CONSTRAINT uq_visit UNIQUE (patient_id, time_years, source))")
        conn.exec_driver_sql(
            "INSERT INTO visits (patient_id, time_years, visit_date, source, \"values\") "
            f"VALUES ({pid}, 0.0, '2024-04-19', 'csv', '{{\"inr\": 1.1}}')")
    store.dispose()
    store = open_store(url=url)
    try:
        visits = patient_detail(store, "HT-7", identified=True).visits
        assert visits["source_file"].isna().all() and visits["imported_on"].isna().all()
        assert visits["inr"].tolist() == [1.1]
        # and the next import is recorded
        import_cohort(store, write_csv(tmp_path, "labs_2024.csv", LABS),
                      write_csv(tmp_path, "outcomes.csv", OUTCOMES))
        assert _sources(store)[-2:] == [(dt.date(2024, 4, 19), "labs_2024.csv"),
                                        (dt.date(2024, 10, 18), "labs_2024.csv")]
    finally:
        store.dispose()
