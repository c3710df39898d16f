"""Repository functions on SQLite and PostgreSQL, checked against the rows of tests/store/seed.py.

Expected values are worked out by hand from the seed (see its docstring): real date =
stored date - date_shift_days; years = days / 365.25.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from analytics.errors import StoreError
from analytics.store import open_store, repo
from analytics.store.db import Store
from tests.store.seed import seeded_store

TS = pd.Timestamp
Y_2020_TO_2021 = 366 / 365.25  # 2020 is a leap year


#: fixture: a store holding the small seeded cohort
store = seeded_store


@pytest.fixture
def empty_store(db_url):
    s = open_store(url=db_url)
    yield s
    s.dispose()


def _row(df: pd.DataFrame, pseudonym: str) -> pd.Series:
    rows = df[df["pseudonym"] == pseudonym]
    assert len(rows) == 1
    return rows.iloc[0]


def test_list_patients_pseudonymised_counts_dates_outcomes(store):
    df = repo.list_patients(store, identified=False)
    assert df["pseudonym"].tolist() == ["HT-0001", "HT-0002", "HT-0003"]
    assert not set(repo.IDENTITY_COLUMNS) & set(df.columns)
    assert list(df.columns) == [*repo.PATIENT_COLUMNS, "liver_volume_ml", "spleen_volume_ml",
                                "liver_hu_mean", "liver_spleen_hu_diff"]
    p1, p2, p3 = (_row(df, p) for p in ("HT-0001", "HT-0002", "HT-0003"))
    assert (p1.n_studies, p1.n_series, p1.n_visits) == (2, 3, 3)
    assert (p1.first_scan, p1.last_scan) == (TS("2020-01-01"), TS("2021-01-01"))
    assert (p1.event, p1.follow_up_years, p1.outcome_date) == (
        "decompensation", 1.5, TS("2021-07-02"))
    # latest study's values win; a NULL on the latest study keeps the older value
    assert p1.liver_volume_ml == 1600.0
    assert p1.spleen_volume_ml == 250.0
    assert p1.liver_hu_mean == 55.0
    assert p1.liver_spleen_hu_diff == -4.5
    assert (p2.n_studies, p2.n_series, p2.n_visits) == (1, 1, 1)
    assert p2.first_scan == p2.last_scan == TS("2019-05-05")
    assert (p2.event, p2.follow_up_years) == ("censored", 2.0)
    assert pd.isna(p2.liver_volume_ml)
    # two undated visits with no baseline: two occasions, no scans
    assert (p3.n_studies, p3.n_series, p3.n_visits) == (0, 0, 2)
    assert pd.isna(p3.first_scan) and p3.event is None and pd.isna(p3.follow_up_years)
    assert p3.birth_year == 1970


def test_list_patients_identified_adds_identity_and_real_dates(store):
    df = repo.list_patients(store, identified=True)
    assert list(df.columns[:4]) == ["pseudonym", *repo.IDENTITY_COLUMNS]
    p1, p2, p3 = (_row(df, p) for p in ("HT-0001", "HT-0002", "HT-0003"))
    assert (p1.patient_name, p1.patient_id, p1.birth_date) == (
        "Doe^Jane", "MRN-111", TS("1960-01-02"))
    # shift +100 d: 2020-01-01 - 100 d = 2019-09-23; 2021-01-01 - 100 d = 2020-09-23
    assert (p1.first_scan, p1.last_scan) == (TS("2019-09-23"), TS("2020-09-23"))
    assert p1.outcome_date == TS("2021-03-24")
    # shift -30 d: 2019-05-05 + 30 d = 2019-06-04
    assert p2.first_scan == TS("2019-06-04")
    assert p2.patient_name == "Roe^Richard"
    assert p3.patient_name is None and pd.isna(p3.birth_date)
    # counts and intervals do not depend on the view
    assert p1.n_visits == 3 and p1.follow_up_years == 1.5


def test_list_patients_on_empty_store_has_columns_and_no_rows(empty_store):
    df = repo.list_patients(empty_store, identified=True)
    assert df.empty
    assert list(df.columns) == ["pseudonym", *repo.IDENTITY_COLUMNS,
                                *repo.PATIENT_COLUMNS[1:]]
    assert repo.cohort_summary(empty_store)["patients"] == 0
    assert repo.cohort_timeline(empty_store).empty


def test_cohort_summary_counts(store):
    assert repo.cohort_summary(store) == {
        "patients": 3, "studies": 3, "series": 4,
        "series_by_status": {"complete": 3, "invalid": 1},
        "instances": 3 + 2 + 3 + 1, "series_with_features": 3, "feature_values": 9,
        "visits": 4, "patients_with_outcome": 2,
        "events_by_type": {"censored": 1, "decompensation": 1}, "events": 1,
        "models": 1, "active_model": "cox-0001",
    }


def test_cohort_timeline_times_from_each_patients_baseline(store):
    tl = repo.cohort_timeline(store)
    got = [(r.pseudonym, r.kind, round(r.time_years, 9), r.event) for r in tl.itertuples()]
    assert got == [
        ("HT-0001", "scan", 0.0, None),
        ("HT-0001", "visit", 0.0, None),
        ("HT-0001", "visit", 0.5, None),
        ("HT-0001", "scan", round(Y_2020_TO_2021, 9), None),
        ("HT-0001", "outcome", 1.5, "decompensation"),
        ("HT-0002", "scan", 0.0, None),  # no baseline: earliest scan is time 0
        ("HT-0002", "outcome", 2.0, "censored"),
        ("HT-0003", "visit", 0.0, None),
        ("HT-0003", "visit", 1.0, None),
    ]


def test_series_for_patient(store):
    df = repo.series_for_patient(store, "HT-0001")
    assert list(df.columns) == list(repo.SERIES_COLUMNS)
    assert df["series_uid"].tolist() == ["2.25.11", "2.25.12", "2.25.21"]
    assert df["study_date"].tolist() == [TS("2020-01-01")] * 2 + [TS("2021-01-01")]
    assert df["time_years"].tolist() == pytest.approx([0.0, 0.0, Y_2020_TO_2021])
    assert df["n_masks"].tolist() == [1, 0, 0]
    assert df["mask_formats"].tolist() == [["seg"], [], []]
    assert df["n_features"].tolist() == [4, 1, 4]
    assert df["contrast_phase"].tolist() == ["portal_venous", "arterial", "portal_venous"]
    assert df["spacing_mm"].iloc[0] == [0.8, 0.8, 2.5]
    real = repo.series_for_patient(store, "HT-0001", identified=True)
    assert real["study_date"].tolist() == [TS("2019-09-23")] * 2 + [TS("2020-09-23")]
    invalid = repo.series_for_patient(store, "HT-0002")
    assert invalid[["modality", "status", "status_reason"]].values.tolist() == [
        ["MR", "invalid", "gap"]]
    assert repo.series_for_patient(store, "HT-0003").empty


def test_features_for_series_latest_and_all_versions(store):
    latest = repo.features_for_series(store, "2.25.11")
    assert latest[["name", "value", "unit", "extractor_version"]].values.tolist() == [
        ["liver_hu_mean", 55.0, "HU", "1.1"],
        ["liver_volume_ml", 1510.0, "mL", "1.1"],
        ["spleen_volume_ml", 200.0, "mL", "1.1"],
    ]
    every = repo.features_for_series(store, "2.25.11", latest_only=False)
    vols = every[every["name"] == "liver_volume_ml"]
    assert vols[["value", "extractor_version"]].values.tolist() == [[1510.0, "1.1"],
                                                                   [1500.0, "1.0"]]
    assert repo.features_for_series(store, "2.25.31").empty


def test_patient_detail_pseudonymised(store):
    d = repo.patient_detail(store, "HT-0001", identified=False)
    assert (d.pseudonym, d.identified, d.sex, d.birth_year) == ("HT-0001", False, "F", 1960)
    assert d.patient_name is None and d.patient_id is None and d.birth_date is None
    assert d.baseline_date == dt.date(2020, 1, 1)
    assert d.studies[["study_uid", "n_series"]].values.tolist() == [["2.25.1", 2],
                                                                   ["2.25.2", 1]]
    assert d.studies["time_years"].tolist() == pytest.approx([0.0, Y_2020_TO_2021])
    assert d.visits["time_years"].tolist() == [0.0, 0.5]
    assert d.visits["bilirubin_mg_dl"].tolist() == [1.1, 1.4]
    assert d.visits["albumin_g_dl"].iloc[0] == 3.9 and pd.isna(d.visits["albumin_g_dl"].iloc[1])
    assert d.visits["visit_date"].iloc[0] == TS("2020-01-01")
    assert pd.isna(d.visits["visit_date"].iloc[1])
    vol = d.biomarkers[d.biomarkers["name"] == "liver_volume_ml"]
    # one value per series: the newest extractor run (1510, not 1500) on 2.25.11
    assert vol[["series_uid", "contrast_phase", "value"]].values.tolist() == [
        ["2.25.11", "portal_venous", 1510.0], ["2.25.12", "arterial", 1490.0],
        ["2.25.21", "portal_venous", 1600.0]]
    assert len(d.biomarkers) == 8
    # a missing value carries the extractor's reason; a present one has none
    hu = d.biomarkers[d.biomarkers["name"] == "liver_hu_mean"]
    assert hu["reason"].tolist() == [None, "liver ROI empty after erosion"]
    assert d.outcome == repo.OutcomeInfo("decompensation", 1.5, dt.date(2021, 7, 2))
    assert d.outcome.is_event
    assert d.series["series_uid"].tolist() == ["2.25.11", "2.25.12", "2.25.21"]


def test_patient_detail_identified_gives_real_identity_and_dates(store):
    d = repo.patient_detail(store, "HT-0001", identified=True)
    assert (d.patient_name, d.patient_id, d.birth_date) == (
        "Doe^Jane", "MRN-111", dt.date(1960, 1, 2))
    assert d.baseline_date == dt.date(2019, 9, 23)
    assert d.studies["study_date"].tolist() == [TS("2019-09-23"), TS("2020-09-23")]
    assert d.visits["visit_date"].iloc[0] == TS("2019-09-23")
    assert d.outcome.date == dt.date(2021, 3, 24)
    assert d.biomarkers["study_date"].iloc[0] == TS("2019-09-23")
    # times are intervals: identical in both views
    assert d.studies["time_years"].tolist() == pytest.approx([0.0, Y_2020_TO_2021])
    censored = repo.patient_detail(store, "HT-0002", identified=True)
    assert censored.outcome.date == dt.date(2021, 6, 3) and not censored.outcome.is_event
    no_identity = repo.patient_detail(store, "HT-0003", identified=True)
    assert no_identity.patient_name is None and no_identity.outcome is None
    assert no_identity.visits["inr"].tolist() == [1.0, 1.2]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(lambda s: repo.patient_detail(s, "HT-9999", identified=False),
                     r"patient 'HT-9999': not in the store", id="detail-unknown-patient"),
        pytest.param(lambda s: repo.series_for_patient(s, "nobody"),
                     r"patient 'nobody': not in the store", id="series-unknown-patient"),
        pytest.param(lambda s: repo.features_for_series(s, "9.9.9"),
                     r"series '9.9.9': not in the store", id="features-unknown-series"),
    ],
)
def test_unknown_identifiers_raise_store_error(store, call, match):
    with pytest.raises(StoreError, match=match):
        call(store)


def test_describe_store_never_shows_credentials(tmp_path):
    pg = create_engine("postgresql+psycopg://alice:s3cret@db.example.org:5433/hepatrack")
    label = repo.describe_store(Store(engine=pg, sessions=sessionmaker(pg)))
    assert label == "PostgreSQL: db.example.org:5433/hepatrack"
    lite = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    assert repo.describe_store(Store(engine=lite, sessions=sessionmaker(lite))) == (
        f"SQLite: {tmp_path / 'h.db'}")


def test_patient_page_lists_what_the_latest_scan_could_not_measure(store):
    from ui.patient_view import not_measured

    d = repo.patient_detail(store, "HT-0001", identified=False)
    gaps = not_measured(d.biomarkers)
    # liver HU was measured on the first scan and not on the latest one: it is listed
    # with the stored reason; volumes measured on the latest scan are not
    assert gaps["Biomarker"].tolist() == ["Liver attenuation, mean (HU)"]
    assert gaps["Why not measured"].tolist() == ["liver ROI empty after erosion"]
    assert gaps["At (y)"].tolist() == pytest.approx([Y_2020_TO_2021])
    assert not_measured(d.biomarkers.iloc[0:0]).empty
