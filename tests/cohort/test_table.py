"""The cohort table: scans and lab draws merged by the documented rule, checked by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from analytics.cohort import build_cohort, cohort_from_frames, import_cohort
from analytics.cohort_types import VISIT_KEYS
from analytics.errors import CohortError
from analytics.models.scores import CLINICAL_SCORES, compute_scores
from analytics.store.schema import Patient
from tests.cohort.conftest import add_patient, add_scan

D = dt.date
Y = 365.25

# Patient HT-A: scans S1 2020-01-01, S2 2020-03-01, S3 2021-01-01; lab draws
#   L1 2019-12-20 bilirubin 1.0, inr 1.1, age 60   (12 d before S1)
#   L2 2020-01-01 albumin 4.0                       (same day as S1: part of the S1 visit)
#   L3 2020-02-20 bilirubin 1.5                     (50 d after S1, 10 d before S2)
#   L4 2020-06-01 platelets 150                     (92 d after S2, 214 d before S3)
#   L5 2020-12-15 bilirubin 2.0, platelets 120      (17 d before S3)
# Baseline = earliest date = L1 (2019-12-20). Days from it: S1 12, L3 62, S2 72, L4 164,
# L5 361, S3 378 (2020 is a leap year).
LABS = """
patient_id,date,bilirubin_mg_dl,inr,albumin_g_dl,platelets_10e9_l,age_years
HT-A,2019-12-20,1.0,1.1,,,60
HT-A,2020-01-01,,,4.0,,
HT-A,2020-02-20,1.5,,,,
HT-A,2020-06-01,,,,150,
HT-A,2020-12-15,2.0,,,120,
"""
OUTCOME = "patient_id,date,event\nHT-A,2022-12-20,death\n"


@pytest.fixture
def cohort_a(store, csvs):
    add_patient(store, "HT-A")
    s1 = add_scan(store, "HT-A", D(2020, 1, 1), {"liver_volume_ml": 1500.0,
                                                  "spleen_volume_ml": 200.0})
    s2 = add_scan(store, "HT-A", D(2020, 3, 1), {"liver_volume_ml": 1550.0})
    s3 = add_scan(store, "HT-A", D(2021, 1, 1), {"liver_volume_ml": 1600.0})
    report = import_cohort(store, *csvs(LABS, OUTCOME))
    assert report.rejected == []
    return store, (s1, s2, s3)


def rows(table) -> list[tuple]:
    cols = ["time", "series_uid", "bilirubin_mg_dl", "inr", "albumin_g_dl",
            "platelets_10e9_l", "age_years", "liver_volume_ml"]
    out = []
    for r in table.visits[cols].itertuples(index=False):
        out.append(tuple(None if (isinstance(x, float) and math.isnan(x)) else x for x in r))
    return out


def test_labs_attach_to_the_nearest_scan_without_crossing_another(cohort_a):
    store, (s1, s2, s3) = cohort_a
    t = build_cohort(store)
    nan = None
    assert rows(t) == [
        # L1 stays a lab-only visit at baseline
        (0.0, None, 1.0, 1.1, nan, nan, 60.0, nan),
        # S1: bilirubin/inr/age from L1 (12 d before, nearer than L3 50 d after); albumin
        # from the same-day L2; age moved to the scan date: 60 + 12/365.25
        (pytest.approx(12 / Y), s1, 1.0, 1.1, 4.0, nan, pytest.approx(60 + 12 / Y), 1500.0),
        (pytest.approx(62 / Y), None, 1.5, nan, nan, nan, nan, nan),  # L3
        # S2: bilirubin from L3 (10 d); albumin from L2 (60 d, on S1's day: not beyond S1);
        # inr and age from L1 would cross S1: missing; platelets L4 is 92 d away: missing
        (pytest.approx(72 / Y), s2, 1.5, nan, 4.0, nan, nan, 1550.0),
        (pytest.approx(164 / Y), None, nan, nan, nan, 150.0, nan, nan),  # L4
        (pytest.approx(361 / Y), None, 2.0, nan, nan, 120.0, nan, nan),  # L5
        (pytest.approx(378 / Y), s3, 2.0, nan, nan, 120.0, nan, 1600.0),  # S3 <- L5 (17 d)
    ]
    assert t.visits["date"].dt.date.tolist() == [
        D(2019, 12, 20), D(2020, 1, 1), D(2020, 2, 20), D(2020, 3, 1), D(2020, 6, 1),
        D(2020, 12, 15), D(2021, 1, 1)]
    assert list(t.visits.columns[:len(VISIT_KEYS)]) == list(VISIT_KEYS)
    assert t.outcomes.to_dict("records") == [
        {"patient": "HT-A", "duration": pytest.approx(1096 / Y), "event": "death"}]
    assert t.feature_meta["liver_volume_ml"] == {"kind": "imaging", "unit": "mL",
                                                 "categorical": False}
    assert t.feature_meta["bilirubin_mg_dl"] == {"kind": "lab", "unit": "mg/dL",
                                                 "categorical": False}


def test_a_narrower_window_attaches_fewer_labs(cohort_a):
    store, (s1, s2, _) = cohort_a
    v = build_cohort(store, lab_window_days=10).visits.set_index("series_uid")
    assert math.isnan(v.loc[s1, "bilirubin_mg_dl"])  # L1 is 12 d away
    assert v.loc[s1, "albumin_g_dl"] == 4.0  # same day
    assert v.loc[s2, "bilirubin_mg_dl"] == 1.5  # L3 exactly 10 d away: inside
    with pytest.raises(CohortError, match="lab_window_days must be >= 0"):
        build_cohort(store, lab_window_days=-1)


def test_equidistant_draws_prefer_the_earlier_one(store, csvs):
    add_patient(store, "HT-B")
    uid = add_scan(store, "HT-B", D(2020, 6, 1), {"liver_volume_ml": 1400.0})
    import_cohort(store, *csvs("patient_id,date,inr\nHT-B,2020-05-22,1.2\nHT-B,2020-06-11,1.5\n",
                               "patient_id,date,event\nHT-B,2021-06-01,censored\n"))
    v = build_cohort(store).visits.set_index("series_uid")
    assert v.loc[uid, "inr"] == 1.2


def test_the_scan_baseline_re_times_labs_imported_before_it(store, csvs):
    add_patient(store, "HT-C")
    import_cohort(store, *csvs("patient_id,date,inr\nHT-C,2020-06-01,1.0\n",
                               "patient_id,date,event\nHT-C,2021-06-01,hcc\n"))
    assert build_cohort(store).visits["time"].tolist() == [0.0]
    # a scan 2020-01-01 ingested later becomes the baseline: the lab moves to 152 d and the
    # outcome to 517 d (2020-01-01 -> 2021-06-01)
    add_scan(store, "HT-C", D(2020, 1, 1), {"liver_volume_ml": 1300.0})
    t = build_cohort(store)
    assert t.visits["time"].tolist() == [0.0, pytest.approx(152 / Y)]
    assert t.outcomes["duration"].tolist() == [pytest.approx(517 / Y)]


def test_time_only_labs_count_from_the_first_scan(store, csvs):
    add_patient(store, "HT-D")
    uid = add_scan(store, "HT-D", D(2020, 1, 1), {"liver_volume_ml": 1300.0})
    import_cohort(store, *csvs("patient_id,time,inr\nHT-D,0,1.1\nHT-D,0.5,1.3\n",
                               "patient_id,time,event\nHT-D,2,censored\n"))
    v = build_cohort(store).visits
    # t = 0 is the scan's day: one visit; t = 0.5 is placed at 2020-01-01 + 183 d
    assert v["series_uid"].tolist() == [uid, None]
    assert v["inr"].tolist() == [1.1, 1.3]
    assert v["date"].dt.date.tolist() == [D(2020, 1, 1), D(2020, 7, 2)]


def test_representative_series_and_newest_extractor_run(store, csvs):
    add_patient(store, "HT-E")
    # study 1: an unenhanced series with 3 features beats a portal-venous one with 2
    add_scan(store, "HT-E", D(2020, 1, 1), {"liver_volume_ml": 1500.0,
                                                 "spleen_volume_ml": 210.0},
                  study_uid="2.25.501")
    un = add_scan(store, "HT-E", D(2020, 1, 1), {"liver_volume_ml": 1490.0,
                                                 "spleen_volume_ml": 205.0,
                                                 "liver_hu_mean": 52.0},
                  phase="unenhanced", study_uid="2.25.501")
    # study 2: equal counts -> portal venous; its volume re-extracted by a newer version
    pv2 = add_scan(store, "HT-E", D(2021, 1, 1), {"liver_volume_ml": 1600.0},
                   study_uid="2.25.502")
    add_scan(store, "HT-E", D(2021, 1, 1), {"liver_volume_ml": 1590.0}, phase="arterial",
             study_uid="2.25.502")
    add_scan(store, "HT-E", D(2021, 1, 1), {"liver_volume_ml": 1610.0}, series_uid=pv2,
             study_uid="2.25.502", version="1.1", minutes=10)
    # an invalid series never counts, and a newer run that could not compute gives NaN
    add_scan(store, "HT-E", D(2022, 1, 1), {"liver_volume_ml": 1700.0}, status="invalid")
    late = add_scan(store, "HT-E", D(2022, 6, 1), {"liver_volume_ml": 1650.0})
    add_scan(store, "HT-E", D(2022, 6, 1), {"liver_volume_ml": None}, series_uid=late,
             version="1.1", minutes=5)
    import_cohort(store, *csvs("patient_id,time\n", "patient_id,time,event\nHT-E,3,censored\n"))
    v = build_cohort(store).visits
    assert v["series_uid"].tolist() == [un, pv2, late]
    assert v["contrast_phase"].tolist() == ["unenhanced", "portal_venous", "portal_venous"]
    assert v["liver_volume_ml"].tolist()[:2] == [1490.0, 1610.0]
    assert math.isnan(v["liver_volume_ml"].iloc[2])
    assert v["liver_hu_mean"].iloc[0] == 52.0 and math.isnan(v["liver_hu_mean"].iloc[1])


def test_a_visit_names_its_automatic_segmentation_values_and_a_withheld_value_is_nan(
        store, csvs):
    add_patient(store, "HT-K")
    auto = {"automatic_segmentation": True, "segmentation_engine": "classical-v3"}
    first = add_scan(store, "HT-K", D(2020, 1, 1),
                     {"liver_volume_ml": 1500.0, "spleen_volume_ml": 300.0},
                     flags={"spleen_volume_ml": auto})
    # the newest run withheld the spleen (its mask was rejected): its value is NaN
    add_scan(store, "HT-K", D(2020, 1, 1), {"spleen_volume_ml": None}, series_uid=first,
             version="1.1", minutes=5,
             flags={"spleen_volume_ml": {**auto, "reason": "spleen mask withheld: rejected"}})
    second = add_scan(store, "HT-K", D(2021, 1, 1),
                      {"liver_volume_ml": 1550.0, "spleen_volume_ml": 340.0},
                      flags={"liver_volume_ml": auto, "spleen_volume_ml": auto})
    import_cohort(store, *csvs("patient_id,time\n", "patient_id,time,event\nHT-K,3,censored\n"))
    v = build_cohort(store).visits
    assert v["series_uid"].tolist() == [first, second]
    assert v["automatic_segmentation"].tolist() == ["spleen_volume_ml",
                                                    "liver_volume_ml,spleen_volume_ml"]
    assert math.isnan(v["spleen_volume_ml"].iloc[0])  # withheld: missing, never 0
    assert v["spleen_volume_ml"].iloc[1] == 340.0


def test_a_scan_before_feature_extraction_is_a_visit_without_biomarkers(store, csvs):
    add_patient(store, "HT-J")
    done = add_scan(store, "HT-J", D(2020, 1, 1), {"liver_volume_ml": 1500.0})
    pending = add_scan(store, "HT-J", D(2021, 1, 1), {})
    add_scan(store, "HT-J", D(2021, 6, 1), {}, status="incomplete")
    import_cohort(store, *csvs("patient_id,time\n", "patient_id,time,event\nHT-J,3,hcc\n"))
    v = build_cohort(store).visits
    assert v["series_uid"].tolist() == [done, pending]
    assert v["liver_volume_ml"].tolist()[0] == 1500.0
    assert math.isnan(v["liver_volume_ml"].tolist()[1])


def test_scan_after_follow_up_is_left_out_and_patients_are_never_dropped(store, csvs):
    add_patient(store, "HT-F")
    add_scan(store, "HT-F", D(2020, 1, 1), {"liver_volume_ml": 1500.0})
    late = add_scan(store, "HT-F", D(2023, 1, 1), {"liver_volume_ml": 1700.0})
    add_patient(store, "HT-G")  # imaging, no outcome yet
    add_scan(store, "HT-G", D(2020, 1, 1), {"liver_volume_ml": 1450.0})
    import_cohort(store, *csvs("patient_id,time\n", "patient_id,time,event\nHT-F,1,death\n"))
    t = build_cohort(store)
    assert t.visits["patient"].tolist() == ["HT-F", "HT-G"]
    assert t.outcomes["patient"].tolist() == ["HT-F"]
    assert any(late in w and "after the end of follow-up" in w for w in t.warnings)
    assert any("have visits but no outcome (e.g. HT-G)" in w for w in t.warnings)


def test_age_from_the_stored_birth_year_when_no_lab_gives_it(store):
    add_patient(store, "HT-H")
    with store.session() as s:
        s.query(Patient).filter(Patient.pseudonym == "HT-H").update({"birth_year": 1960})
    add_scan(store, "HT-H", D(2020, 7, 1), {"liver_volume_ml": 1500.0})
    # 1960-07-01 -> 2020-07-01 is 21915 days = 60.0 years of 365.25 days
    t = build_cohort(store)
    assert t.visits["age_years"].tolist() == [60.0]


def test_sex_from_the_stored_sex_only_when_the_visits_carry_none(store, csvs):
    add_patient(store, "HT-S")  # a CT without labs: the header's sex is the only source
    add_patient(store, "HT-T")  # labs carry F; the stored sex (M) must not mix in
    with store.session() as s:
        s.query(Patient).filter(Patient.pseudonym.in_(["HT-S", "HT-T"])).update(
            {"sex": "M"})
    add_scan(store, "HT-S", D(2020, 7, 1), {"liver_volume_ml": 1500.0})
    add_scan(store, "HT-T", D(2020, 7, 1), {"liver_volume_ml": 1500.0})
    import_cohort(store, *csvs("patient_id,date,sex,albumin_g_dl\n"
                               "HT-T,2020-06-01,F,4.0\nHT-T,2020-08-01,,4.1\n",
                               "patient_id,date,event\nHT-T,2022-01-01,censored\n"))
    v = build_cohort(store).visits.set_index(["patient", "time"])["sex"]
    assert v.loc["HT-S"].tolist() == ["M"]
    assert v.loc["HT-T"].dropna().unique().tolist() == ["F"]


def test_missing_values_stay_nan_and_types_are_stable(cohort_a):
    store, _ = cohort_a
    v = build_cohort(store).visits
    assert v["time"].dtype == "float64" and str(v["date"].dtype).startswith("datetime64")
    for c in ("bilirubin_mg_dl", "inr", "platelets_10e9_l", "liver_volume_ml"):
        assert v[c].dtype == "float64"
    # platelets only from L4, L5 and S3 (<- L5): the other 4 visits stay NaN, not imputed
    assert v["platelets_10e9_l"].isna().sum() == 4


def test_with_scores_adds_the_clinical_scores(cohort_a):
    store, _ = cohort_a
    t = build_cohort(store, with_scores=True)
    expected = compute_scores(t.visits)
    for name in CLINICAL_SCORES:
        pd.testing.assert_series_equal(t.visits[name], expected[name])
        assert t.feature_meta[name]["kind"] == "score"


# ----------------------------------------------------------------------------- frames
def test_cohort_from_frames_matches_the_csv_rows():
    visits = pd.DataFrame({
        "patient_id": ["P2", "P1", "P1"], "time": [0.0, 1.0, 0.0],
        "bilirubin_mg_dl": [0.9, np.nan, 1.2], "stage": ["F1", "F3", None]})
    outcomes = pd.DataFrame({"patient_id": ["P1", "P2"], "time": [2.0, 1.5],
                             "event": ["death", "censored"]})
    t = cohort_from_frames(visits, outcomes)
    assert t.visits[["patient", "time"]].values.tolist() == [["P1", 0.0], ["P1", 1.0],
                                                             ["P2", 0.0]]
    assert t.visits["bilirubin_mg_dl"].tolist()[0] == 1.2
    assert math.isnan(t.visits["bilirubin_mg_dl"].tolist()[1])
    stage = t.visits["stage"].tolist()
    assert pd.isna(stage[0]) and stage[1:] == ["F3", "F1"]
    assert t.feature_meta["stage"]["categorical"] is True
    assert t.outcomes.values.tolist() == [["P1", 2.0, "death"], ["P2", 1.5, "censored"]]
    assert t.event_names == ["death"]


def test_cohort_from_frames_raises_or_drops_rejected_rows(csvs):
    v, o = csvs("patient_id,time,inr\nP1,0,1.0\nP1,x,1.1\n", "patient_id,time,event\nP1,1,hcc\n")
    with pytest.raises(CohortError, match=r"1 rows rejected: visits.csv row 2 \(line 3\): "
                                          r"time 'x'"):
        cohort_from_frames(v, o)
    t = cohort_from_frames(v, o, on_error="drop")
    assert len(t.visits) == 1
    assert t.warnings[0].startswith("visits.csv row 2 (line 3): time 'x'")


def test_the_table_of_some_patients_holds_their_rows_of_the_whole_table(store, csvs):
    """One patient's score needs only that patient's rows: built from them alone, they
    equal that patient's rows of the whole table (a column only others have is absent
    there and NaN for them in the whole table)."""
    add_patient(store, "HT-A")
    add_patient(store, "HT-B")
    add_scan(store, "HT-A", D(2020, 1, 1), {"liver_volume_ml": 1500.0,
                                             "spleen_volume_ml": 200.0})
    add_scan(store, "HT-A", D(2021, 1, 1), {"liver_volume_ml": 1600.0})
    add_scan(store, "HT-B", D(2020, 5, 1), {"liver_volume_ml": 1800.0, "liver_hu_mean": 48.0})
    labs = """
patient_id,date,bilirubin_mg_dl,inr,albumin_g_dl,platelets_10e9_l,age_years,stiffness_kpa
HT-A,2019-12-20,1.0,1.1,,,60,
HT-A,2020-02-20,1.5,,,,,
HT-A,2020-12-15,2.0,,,120,,
HT-B,2020-04-20,0.8,1.0,3.9,210,55,9.5
HT-B,2021-02-01,0.9,,,190,,
"""
    outcomes = OUTCOME + "HT-B,2022-01-01,censored\n"
    report = import_cohort(store, *csvs(labs, outcomes))
    assert report.rejected == []
    whole = build_cohort(store, with_scores=True)
    assert set(whole.visits["patient"]) == {"HT-A", "HT-B"}
    for patient in ("HT-A", "HT-B"):
        part = build_cohort(store, with_scores=True, patients=[patient])
        assert set(part.visits["patient"]) == {patient}
        mine = whole.visits[whole.visits["patient"] == patient].reset_index(drop=True)
        assert len(part.visits) == len(mine) >= 2
        pd.testing.assert_frame_equal(part.visits, mine[list(part.visits.columns)])
        others = [c for c in whole.visits.columns if c not in part.visits.columns]
        assert mine[others].isna().all().all(), others
        assert {c: part.feature_meta[c] for c in part.feature_meta} == {
            c: whole.feature_meta[c] for c in part.feature_meta}
        pd.testing.assert_frame_equal(
            part.outcomes,
            whole.outcomes[whole.outcomes["patient"] == patient].reset_index(drop=True))
    only_b = build_cohort(store, patients=["HT-B"]).visits
    assert only_b["stiffness_kpa"].tolist()[:1] == [9.5]
    assert "stiffness_kpa" not in build_cohort(store, patients=["HT-A"]).visits.columns
    assert build_cohort(store, patients=[]).visits.empty



def test_sex_from_the_header_fills_exactly_the_patients_whose_visits_carry_none():
    from analytics.cohort.table import _sex_from_header

    visits = pd.DataFrame({"patient": ["A", "A", "B", "B", "C", "D", "D"],
                           "sex": [np.nan, "F", np.nan, np.nan, "M", np.nan, np.nan]})
    out, cols = _sex_from_header(visits.copy(), ["sex"], {"A": "M", "B": "F", "C": "F"})
    # A and C keep their own (A's visit without one stays empty), B takes the stored F,
    # D has no stored sex
    assert pd.isna(out["sex"].iloc[0]) and out["sex"].iloc[1] == "F"
    assert out["sex"].iloc[2:5].tolist() == ["F", "F", "M"]
    assert out["sex"].iloc[5:].isna().all() and cols == ["sex"]
    # without a sex column, every patient with a stored sex gets it in a new column
    out, cols = _sex_from_header(visits[["patient"]].copy(), [], {"A": "M", "D": "F"})
    assert out["sex"].iloc[:2].tolist() == ["M", "M"]
    assert out["sex"].iloc[5:].tolist() == ["F", "F"]
    assert out["sex"].iloc[2:5].isna().all() and cols == ["sex"]


def test_sex_from_the_header_equals_the_per_patient_rule_on_a_large_cohort():
    from analytics.cohort.table import _sex_from_header

    rng = np.random.default_rng(3)
    patients = [f"P{i:04d}" for i in rng.integers(0, 800, 5000)]
    sex = rng.choice(np.array(["F", "M", None], dtype=object), 5000, p=[0.05, 0.05, 0.9])
    visits = pd.DataFrame({"patient": patients, "sex": sex})
    stored = {f"P{i:04d}": "F" if i % 3 else "M" for i in range(0, 800, 2)}
    out, _ = _sex_from_header(visits.copy(), ["sex"], stored)
    # the rule, patient by patient: own sexes kept; none at all -> the stored one
    for p, rows in visits.groupby("patient"):
        got = out.loc[rows.index, "sex"]
        if rows["sex"].notna().any():
            assert got.tolist() == rows["sex"].tolist(), p
        elif p in stored:
            assert (got == stored[p]).all(), p
        else:
            assert got.isna().all(), p
