"""``patient_summary`` equals a recomputation after every kind of write (ORM objects, DML
statements, moves between patients, removal, rollback), on SQLite and PostgreSQL; a home
made before the table existed gets it built when opened.

Hand values come from tests/store/seed.py: HT-0001 has studies on 2020-01-01 (two
series) and 2021-01-01 (one), liver volume 1600 mL last, visits at 2020-01-01 and t=0.5
(placed at 2020-07-02): three occasions. HT-0002: one (invalid) MR series on 2019-05-05,
no visits. HT-0003: no studies, two undated visits that cannot be placed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, inspect, select, text, update

from analytics.store import open_store, repo
from analytics.store.features import FeatureRow, replace_features
from analytics.store.patient_summary import SUMMARY_BUILT_KEY
from analytics.store.schema import (
    Feature,
    Outcome,
    Patient,
    Series,
    StoreInfo,
    Study,
    Visit,
)
from tests.store.seed import seeded_store
from tests.store.summary_check import assert_summary_fresh

#: fixture: a store holding the small seeded cohort
store = seeded_store


def _pid(s, name: str) -> int:
    return s.execute(select(Patient.id).where(Patient.pseudonym == name)).scalar_one()


def test_the_seeded_cohorts_summary_holds_the_hand_computed_values(store):
    got = assert_summary_fresh(store)
    assert (got["HT-0001"]["n_studies"], got["HT-0001"]["n_series"],
            got["HT-0001"]["n_visits"]) == (2, 3, 3)
    assert got["HT-0001"]["liver_volume_ml"] == 1600.0
    assert (got["HT-0001"]["first_scan"], got["HT-0001"]["last_scan"]) == (
        dt.date(2020, 1, 1), dt.date(2021, 1, 1))
    assert (got["HT-0002"]["n_studies"], got["HT-0002"]["n_series"],
            got["HT-0002"]["n_visits"]) == (1, 1, 1)
    assert got["HT-0002"]["liver_volume_ml"] is None
    assert (got["HT-0003"]["n_studies"], got["HT-0003"]["n_visits"],
            got["HT-0003"]["last_scan"]) == (0, 2, None)


def test_a_feature_rewrite_by_a_delete_statement_updates_the_latest_value(store):
    with store.session() as s:
        sid = s.execute(select(Series.id).join(Study).where(
            Study.study_date == dt.date(2021, 1, 1))).scalar_one()
        replace_features(s, sid, "1.1", [FeatureRow("liver_volume_ml", 1450.0, "mL")], None)
    got = assert_summary_fresh(store)
    assert got["HT-0001"]["liver_volume_ml"] == 1450.0
    with store.session() as s:  # a DML delete of every value of the newest series
        s.execute(delete(Feature).where(Feature.series_id == sid))
    got = assert_summary_fresh(store)
    assert got["HT-0001"]["liver_volume_ml"] not in (None, 1450.0)  # the older study's


def test_a_study_moved_to_another_patient_updates_both_patients(store):
    with store.session() as s:  # what resolving an identity hold or a merge does
        study = s.execute(select(Study).where(Study.study_date == dt.date(2021, 1, 1))
                          ).scalar_one()
        study.patient_id = _pid(s, "HT-0003")
    got = assert_summary_fresh(store)
    assert (got["HT-0001"]["n_studies"], got["HT-0003"]["n_studies"]) == (1, 1)
    assert got["HT-0003"]["liver_volume_ml"] == 1600.0
    assert got["HT-0003"]["last_scan"] == dt.date(2021, 1, 1)


def test_a_series_status_visit_outcome_and_baseline_change_are_summarised(store):
    with store.session() as s:
        s.execute(update(Series).where(Series.modality == "MR").values(status="complete"))
        p3 = s.get(Patient, _pid(s, "HT-0003"))
        p3.baseline_date = dt.date(2020, 3, 1)  # now HT-0003's undated visits can be placed
        s.add(Visit(patient_id=_pid(s, "HT-0002"), time_years=0.0,
                    visit_date=dt.date(2019, 5, 5), values={}))
        s.execute(delete(Outcome).where(Outcome.patient_id == _pid(s, "HT-0002")))
    got = assert_summary_fresh(store)
    assert got["HT-0003"]["n_visits"] == 2  # 2020-03-01 and 2021-03-01
    assert got["HT-0002"]["n_visits"] == 1  # the visit is on the scan's day
    assert repo.find_patients(store, repo.PatientQuery(search="0002"), identified=False
                              )["event"].isna().all()


def test_removing_a_patient_removes_its_summary_row(store):
    with store.session() as s:
        pid = _pid(s, "HT-0003")
        s.execute(delete(Visit).where(Visit.patient_id == pid))
        s.delete(s.get(Patient, pid))
    got = assert_summary_fresh(store)
    assert "HT-0003" not in got


def test_a_rolled_back_write_leaves_the_summary_and_the_next_write_as_they_should_be(store):
    before = assert_summary_fresh(store)
    try:
        with store.session() as s:
            s.execute(delete(Feature))
            raise RuntimeError("abandoned")
    except RuntimeError:
        pass
    assert assert_summary_fresh(store) == before
    with store.session() as s:
        s.add(Visit(patient_id=_pid(s, "HT-0002"), time_years=1.0,
                    visit_date=dt.date(2020, 5, 5), values={}))
    assert assert_summary_fresh(store)["HT-0002"]["n_visits"] == 2


def test_a_home_made_before_the_summary_existed_gets_it_built_on_open(db_url):
    from tests.store.seed import seed_small_cohort

    store = open_store(url=db_url)
    seed_small_cohort(store)
    expected = assert_summary_fresh(store)
    with store.engine.begin() as conn:  # the schema and state of such a home
        conn.execute(text("DROP TABLE patient_summary"))
        conn.execute(text("DROP INDEX ix_series_modality"))
        conn.execute(delete(StoreInfo).where(StoreInfo.key == SUMMARY_BUILT_KEY))
    store.dispose()
    reopened = open_store(url=db_url)
    assert assert_summary_fresh(reopened) == expected
    assert "ix_series_modality" in {i["name"] for i in inspect(
        reopened.engine).get_indexes("series")}
    rows = repo.list_patients(reopened, identified=False)
    assert rows["n_visits"].tolist() == [3, 1, 2]
    reopened.dispose()
