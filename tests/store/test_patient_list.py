"""Filtered and paged cohort lists (``repo.find_patients``) on SQLite and PostgreSQL.

Expected patients are read off tests/store/seed.py by hand: HT-0001 (Doe^Jane, MRN-111,
CT studies, decompensation), HT-0002 (Roe^Richard, MRN-222, one invalid MR series,
censored), HT-0003 (no identity row, no studies, no outcome).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from analytics.errors import StoreError
from analytics.store import open_store, repo
from analytics.store.schema import Feature, Patient, Series, Study
from tests.store.seed import seeded_store

Q = repo.PatientQuery


#: fixture: a store holding the small seeded cohort
store = seeded_store


def _names(store, query: repo.PatientQuery, identified: bool) -> list[str]:
    return repo.find_patients(store, query, identified=identified)["pseudonym"].tolist()


@pytest.mark.parametrize(
    ("query", "identified", "expected"),
    [
        pytest.param(Q(search="ht-000"), False, ["HT-0001", "HT-0002", "HT-0003"],
                     id="pseudonym-prefix"),
        pytest.param(Q(search=" 0003 "), False, ["HT-0003"], id="pseudonym-trimmed"),
        pytest.param(Q(search="DOE"), True, ["HT-0001"], id="name-identified"),
        pytest.param(Q(search="mrn-22"), True, ["HT-0002"], id="real-id-identified"),
        pytest.param(Q(search="doe"), False, [], id="name-not-searched-pseudonymised"),
        pytest.param(Q(search="mrn"), False, [], id="real-id-not-searched-pseudonymised"),
        pytest.param(Q(search="%"), True, [], id="percent-is-literal"),
        pytest.param(Q(search="ht_0"), True, [], id="underscore-is-literal"),
        pytest.param(Q(events=("censored",)), True, ["HT-0002"], id="event-censored"),
        pytest.param(Q(events=("death", "decompensation")), False, ["HT-0001"],
                     id="events-any-of"),
        pytest.param(Q(had_event=True), False, ["HT-0001"], id="had-event"),
        pytest.param(Q(modality="MR"), False, ["HT-0002"], id="modality-mr"),
        pytest.param(Q(modality="CT"), True, ["HT-0001"], id="modality-ct"),
        pytest.param(Q(modality="US"), True, [], id="modality-none"),
        pytest.param(Q(has_scans=False), True, ["HT-0003"], id="no-scans"),
        pytest.param(Q(has_scans=True), False, ["HT-0001", "HT-0002"], id="scanned"),
        pytest.param(Q(limit=2), True, ["HT-0001", "HT-0002"], id="first-page"),
        pytest.param(Q(after="HT-0002", limit=2), True, ["HT-0003"], id="next-page"),
        pytest.param(Q(after="HT-0003", limit=2), True, [], id="past-the-end"),
        pytest.param(Q(search="ht", has_scans=True, limit=1, after="HT-0001"), False,
                     ["HT-0002"], id="filters-combine"),
    ],
)
def test_find_patients_returns_exactly_the_hand_expected_patients(store, query, identified,
                                                                    expected):
    assert _names(store, query, identified) == expected
    # the count in SQL agrees, page and filters alike
    assert repo.count_patients(store, query, identified=identified) == len(expected)


@pytest.mark.parametrize("identified", [False, True])
@pytest.mark.parametrize(
    "query", [Q(search="0002"), Q(has_scans=False), Q(after="HT-0001", limit=1),
              Q(modality="US")],
    ids=["search", "no-scans", "page", "empty"])
def test_filtered_rows_are_the_full_lists_rows_with_the_same_columns(store, query,
                                                                     identified):
    full = repo.list_patients(store, identified=identified)
    got = repo.find_patients(store, query, identified=identified)
    expected = full[full["pseudonym"].isin(_names(store, query, identified))]
    # HT-0002 has no biomarkers: its row still has every key biomarker column of the list
    assert list(got.columns) == list(full.columns)
    pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                  expected.reset_index(drop=True))


def test_pseudonymised_filtered_list_reads_no_identity(store):
    got = repo.find_patients(store, Q(search="ht"), identified=False)
    assert not set(repo.IDENTITY_COLUMNS) & set(got.columns)
    # shifted (stored) dates, not real ones: HT-0001's first scan is stored as 2020-01-01
    assert got.loc[got["pseudonym"] == "HT-0001", "first_scan"].item() == pd.Timestamp(
        "2020-01-01")


def test_find_patients_refuses_a_limit_below_one(store):
    with pytest.raises(StoreError, match=r"patient list limit 0: expected 1 or more"):
        repo.find_patients(store, Q(limit=0), identified=False)
    with pytest.raises(StoreError, match=r"patient list limit 0: expected 1 or more"):
        repo.count_patients(store, Q(limit=0), identified=False)


def test_a_filter_that_selects_nobody_gives_the_full_lists_columns_and_no_rows(store):
    full = repo.list_patients(store, identified=True)
    got = repo.find_patients(store, Q(search="no such patient"), identified=True)
    assert got.empty and list(got.columns) == list(full.columns)
    assert repo.count_patients(store, Q(search="no such patient"), identified=True) == 0


def test_latest_biomarker_prefers_a_dated_study_over_an_undated_later_one(store):
    # an undated study filed later (newer series row) must not displace the dated value
    with store.session() as s:
        p2 = s.query(Patient).filter_by(pseudonym="HT-0002").one()
        dated = Study(study_uid="2.25.40", patient=p2, study_date=dt.date(2019, 8, 1))
        undated = Study(study_uid="2.25.41", patient=p2, study_date=None)
        series = [Series(series_uid=f"2.25.4{i}1", source_key=f"k4{i}", study=st,
                         modality="CT", storage_dir="dicom/x")
                  for i, st in enumerate((dated, undated))]
        s.add_all([dated, undated, *series])
        s.flush()
        s.add_all([Feature(series_id=series[0].id, name="liver_volume_ml", value=1800.0,
                           unit="mL", extractor_version="1.1"),
                   Feature(series_id=series[1].id, name="liver_volume_ml", value=999.0,
                           unit="mL", extractor_version="1.1")])
    row = repo.find_patients(store, Q(search="HT-0002"), identified=False).iloc[0]
    assert row["liver_volume_ml"] == 1800.0
    # three studies, one undated: 2019-05-05 and 2019-08-01 plus the undated one
    assert (row["n_studies"], row["n_series"], row["n_visits"]) == (3, 3, 3)
    assert row["last_scan"] == pd.Timestamp("2019-08-01")


def test_feature_name_index_exists_and_an_older_store_gets_it_back(db_url):
    store = open_store(url=db_url)
    assert "ix_features_name" in {i["name"] for i in inspect(store.engine).get_indexes(
        "features")}
    with store.engine.begin() as conn:  # a store migrated before the index was declared
        conn.execute(text("DROP INDEX ix_features_name"))
    store.dispose()
    reopened = open_store(url=db_url)
    assert "ix_features_name" in {i["name"] for i in inspect(reopened.engine).get_indexes(
        "features")}
    reopened.dispose()


def test_a_filtered_list_read_twice_gives_the_same_rows(store):
    query = Q(search="ht-000", has_scans=True)
    expected = repo.find_patients(store, query, identified=True)
    got = repo.find_patients(store, query, identified=True)
    assert got["pseudonym"].tolist() == ["HT-0001", "HT-0002"]
    pd.testing.assert_frame_equal(got, expected)
    # twice in a row: nothing of the first read's transaction is left behind
    pd.testing.assert_frame_equal(repo.find_patients(store, query, identified=True), expected)


@pytest.mark.parametrize("identified", [False, True])
@pytest.mark.parametrize(
    "query", [Q(), Q(search="roe"), Q(search="ht-000", limit=2), Q(search="mrn-111"),
              Q(pseudonyms=("HT-0003", "HT-0001")), Q(sort="last_scan", limit=2)],
    ids=["all", "name", "page", "real-id", "named", "by-last-scan"])
def test_a_pickers_names_are_the_lists_rows_narrowed(store, query, identified):
    # what a picker reads: the same patients in the same order, only the names it shows
    names = repo.find_names(store, query, identified=identified)
    full = repo.find_patients(store, query, identified=identified)
    columns = ["pseudonym", "patient_name", "patient_id"] if identified else ["pseudonym"]
    assert list(names.columns) == columns
    pd.testing.assert_frame_equal(names, full[columns].astype(object).reset_index(drop=True))
