"""What a cohort import rejects, warns about and accepts (no store involved)."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from analytics.cohort.reader import read_table
from analytics.cohort.validate import (
    PatientContext,
    StoredOutcome,
    _baseline_date,
    validate,
)
from analytics.errors import CohortError

OUT_A = "patient_id,time,event\nA,5,death\n"
V_HEAD = "patient_id,time,bilirubin_mg_dl,inr,age_years,sex,note\n"


def run(csvs, visits: str, outcomes: str = OUT_A, contexts=None):
    v, o = csvs(visits, outcomes)
    return validate(read_table(v, "visits"), read_table(o, "outcomes"), contexts)


def rejected_at(result, file: str) -> dict[int, tuple[int, str]]:
    return {i.row: (i.line, i.reason) for i in result.rejected if i.file == file}


# ----------------------------------------------------------------------------- rejections
REJECTIONS = [
    # name, visits data rows (after V_HEAD), outcomes text, file, row, line, reason pattern
    ("empty_patient_id", ",0,1,1,50,M,\n", OUT_A, "visits.csv", 1, 2, "patient_id is empty"),
    ("negative_time", "A,-0.5,1,1,50,M,\n", OUT_A, "visits.csv", 1, 2,
     r"time -0.5: negative; expected years since baseline >= 0"),
    ("unparseable_time", "A,soon,1,1,50,M,\n", OUT_A, "visits.csv", 1, 2,
     r"time 'soon': expected a number"),
    ("unparseable_value", "A,0,1.2x,1,50,M,\n", OUT_A, "visits.csv", 1, 2,
     r"bilirubin_mg_dl '1.2x': expected a number"),
    ("negative_concentration", "A,0,-1,1,50,M,\n", OUT_A, "visits.csv", 1, 2,
     r"bilirubin_mg_dl -1: impossible; expected >= 0 mg/dL"),
    ("zero_inr", "A,0,1,0,50,M,\n", OUT_A, "visits.csv", 1, 2,
     r"inr 0: impossible; expected > 0"),
    ("impossible_age", "A,0,1,1,150,M,\n", OUT_A, "visits.csv", 1, 2,
     r"age_years 150: impossible; expected <= 130 years"),
    ("infinite_value", "A,0,inf,1,50,M,\n", OUT_A, "visits.csv", 1, 2,
     r"bilirubin_mg_dl 'inf': expected a number"),
    ("duplicated_visit", "A,1,1,1,50,M,\nA,1,2,1,50,M,\n", OUT_A, "visits.csv", 2, 3,
     r"duplicated visit: patient 'A' at 1 years is already on row 1 \(line 2\)"),
    ("visit_after_end_of_follow_up", "A,0,1,1,50,M,\nA,6,1,1,51,M,\n", OUT_A, "visits.csv",
     2, 3, r"visit at 6 years is after the end of follow-up at 5 years \(death, "
           r"outcomes.csv row 1\)"),
    ("unknown_patient_visit", "A,0,1,1,50,M,\nB,0,1,1,50,M,\n", OUT_A, "visits.csv", 2, 3,
     r"unknown patient 'B': no row in outcomes.csv and no outcome stored"),
    ("unknown_patient_outcome", "A,0,1,1,50,M,\n", OUT_A + "C,2,censored\n", "outcomes.csv",
     2, 3, r"unknown patient 'C': no rows in visits.csv"),
    ("numeric_event", "A,0,1,1,50,M,\n", "patient_id,time,event\nA,5,1\n", "outcomes.csv", 1,
     2, r"event '1' is a numeric code; expected an event name"),
    ("censoring_synonym", "A,0,1,1,50,M,\n", "patient_id,time,event\nA,5,Alive\n",
     "outcomes.csv", 1, 2, r"event 'Alive' means no event: write 'censored'"),
    ("empty_event", "A,0,1,1,50,M,\n", "patient_id,time,event\nA,5,\n", "outcomes.csv", 1, 2,
     r"event is empty"),
    ("not_an_event_name", "A,0,1,1,50,M,\n", "patient_id,time,event\nA,5,death; hcc\n",
     "outcomes.csv", 1, 2, r"event 'death; hcc' is not an event name"),
    ("second_outcome_row", "A,0,1,1,50,M,\n", OUT_A + "A,4,hcc\n", "outcomes.csv", 2, 3,
     r"second outcome row for patient 'A' \(first at row 1, line 2\)"),
    ("outcome_before_first_visit", "A,2,1,1,50,M,\n", "patient_id,time,event\nA,1,death\n",
     "outcomes.csv", 1, 2, r"end of follow-up at 1 years is before the patient's first visit "
                           r"at 2 years"),
    ("wrong_field_count", "A,0,1,1,50,M,,extra\n", OUT_A, "visits.csv", 1, 2,
     r"has 8 fields, the header has 7"),
    ("overlong_patient_id", "P" + "x" * 64 + ",0,1,1,50,M,\n", OUT_A, "visits.csv", 1, 2,
     r"is 65 characters; at most 64 are allowed"),
]


@pytest.mark.parametrize("visit_rows, outcomes, file, row, line, pattern",
                         [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_bad_row_is_rejected_with_row_line_and_reason(csvs, visit_rows, outcomes, file, row,
                                                      line, pattern):
    result = run(csvs, V_HEAD + visit_rows, outcomes)
    found = rejected_at(result, file)
    assert row in found, f"expected {file} row {row} rejected, got {result.rejected}"
    assert found[row][0] == line
    assert re.search(pattern, found[row][1]), found[row][1]


@pytest.mark.parametrize("visits, outcomes, pattern", [
    ("patient_id,time\nA,0\n", "patient_id,time\nA,1\n", r"outcomes.csv: missing column "
                                                         r"'event'"),
    ("time,inr\n0,1\n", OUT_A, r"visits.csv: missing column 'patient_id'"),
    ("patient_id,inr\nA,1\n", OUT_A, r"visits.csv: needs a 'time' column .* or a 'date'"),
    ("patient_id,time,inr,INR\nA,0,1,1\n", OUT_A, r"column 'inr' appears twice"),
], ids=["outcomes_without_event", "visits_without_patient_id", "visits_without_time_or_date",
        "duplicate_header"])
def test_file_level_errors_raise(csvs, visits, outcomes, pattern):
    with pytest.raises(CohortError, match=pattern):
        run(csvs, visits, outcomes)


def test_good_rows_go_on_after_bad_ones(csvs):
    result = run(csvs, V_HEAD + "A,0,1.0,1.1,50,M,\nA,x,1,1,50,M,\nA,1,1.4,1.2,51,M,\n")
    assert [v.row for v in result.visits] == [1, 3]
    assert [i.row for i in result.rejected] == [2]
    assert result.outcomes[0].event == "death"


def test_a_rejected_outcome_rejects_the_patients_visits_with_the_reason(csvs):
    result = run(csvs, V_HEAD + "A,0,1,1,50,M,\n", "patient_id,time,event\nA,5,alive\n")
    assert result.visits == [] and result.outcomes == []
    assert "outcome row (outcomes.csv row 1) was rejected" in rejected_at(
        result, "visits.csv")[1][1]


def test_line_numbers_follow_blank_lines_and_multiline_cells(csvs):
    text = (V_HEAD + 'A,0,1,1,50,M,"two\nlines"\n' + "\n" + "A,1,1,1,51,M,ok\n"
            + "A,1,1,1,51,M,dup\n")
    result = run(csvs, text)
    # header line 1; row 1 spans lines 2-3; line 4 is blank; row 2 = line 5; row 3 = line 6
    assert rejected_at(result, "visits.csv") == {
        3: (6, "duplicated visit: patient 'A' at 1 years is already on row 2 (line 5)")}


def test_rows_out_of_time_order_are_accepted_and_sorted(csvs):
    result = run(csvs, V_HEAD + "A,2,1,1,52,M,\nA,0,1,1,50,M,\nA,1,1,1,51,M,\n")
    assert result.rejected == []
    assert [v.time_years for v in result.visits] == [0.0, 1.0, 2.0]


def test_unknown_sex_code_loses_the_value_not_the_row(csvs):
    result = run(csvs, V_HEAD + "A,0,1,1,50,Z,\n")
    assert result.rejected == []
    assert result.visits[0].values == {"bilirubin_mg_dl": 1.0, "inr": 1.0, "age_years": 50.0}
    [w] = result.warnings
    assert (w.file, w.row, w.line, w.column) == ("visits.csv", 1, 2, "sex")
    assert re.search(r"sex 'Z' is not a known code; expected M \(male\), F \(female\), "
                     r"O \(other\)", w.reason), w.reason


def test_missing_values_never_reject(csvs):
    result = run(csvs, V_HEAD + "A,0,,,,,\nA,1,NA,n/a,NaN,unknown,\n")
    assert result.rejected == []
    assert [v.values for v in result.visits] == [{}, {}]


# ----------------------------------------------------------------------------- warnings
@pytest.mark.parametrize("column, value, hint", [
    ("bilirubin_mg_dl", "34", "looks like umol/L (34 umol/L = 1.99 mg/dL)"),
    ("albumin_g_dl", "35", "looks like g/L (35 g/L = 3.5 g/dL)"),
    ("creatinine_mg_dl", "90", "looks like umol/L (90 umol/L = 1.02 mg/dL)"),
    ("platelets_10e9_l", "150000", "looks like /uL (150000 /uL = 150 ×10⁹/L)"),
    ("inr", "75", "looks like a Quick ratio in % or a prothrombin time in s"),
    ("ast_u_l", "0.5", "looks like ukat/L (0.5 ukat/L = 30 U/L)"),
], ids=["bilirubin_umol", "albumin_g_l", "creatinine_umol", "platelets_per_ul",
        "inr_quick_percent", "ast_ukat"])
def test_implausible_value_for_the_unit_is_imported_with_a_warning(csvs, column, value, hint):
    result = run(csvs, f"patient_id,time,{column}\nA,0,{value}\n")
    assert result.rejected == []
    assert result.visits[0].values == {column: float(value)}
    [w] = result.warnings
    assert (w.row, w.line, w.column) == (1, 2, column)
    assert hint in w.reason and "imported as given" in w.reason


def test_extreme_but_real_values_import_without_warnings(csvs):
    # acute liver failure / ischaemic hepatitis / profound hyponatraemia / severe ITP /
    # renal failure: all inside the wide plausible ranges
    result = run(csvs, "patient_id,time,bilirubin_mg_dl,inr,ast_u_l,alt_u_l,sodium_mmol_l,"
                       "platelets_10e9_l,creatinine_mg_dl,albumin_g_dl\n"
                       "A,0,25,8.5,12000,9000,112,8,12,1.6\n")
    assert result.rejected == [] and result.warnings == []


def test_bilirubin_40_in_acute_liver_failure_is_imported(csvs):
    result = run(csvs, "patient_id,time,bilirubin_mg_dl\nA,0,40\n")
    assert result.rejected == []
    assert result.visits[0].values["bilirubin_mg_dl"] == 40.0


def test_a_column_in_the_wrong_unit_gets_one_column_warning(csvs):
    rows = "".join(f"A,{t},{v}\n" for t, v in enumerate([34, 51, 68, 85, 1.2]))
    result = run(csvs, "patient_id,time,bilirubin_mg_dl\n" + rows)
    column_level = [w for w in result.warnings if w.row is None]
    assert [w.reason for w in column_level] == [
        "column bilirubin_mg_dl: 4 of 5 values look like umol/L, not mg/dL; check the "
        "column's unit"]
    assert len([w for w in result.warnings if w.row is not None]) == 4


def test_censored_lab_value_imports_its_bound_with_a_warning(csvs):
    result = run(csvs, "patient_id,time,bilirubin_mg_dl,alt_u_l\nA,0,<0.2,> 3000\n")
    assert result.visits[0].values == {"bilirubin_mg_dl": 0.2, "alt_u_l": 3000.0}
    assert sorted(w.column for w in result.warnings) == ["alt_u_l", "bilirubin_mg_dl"]
    assert all("a censored value" in w.reason for w in result.warnings)


def test_unknown_event_name_is_imported_with_a_warning(csvs):
    result = run(csvs, "patient_id,time\nA,0\n",
                 "patient_id,time,event\nA,2,Spontaneous bacterial peritonitis\n")
    assert result.outcomes[0].event == "spontaneous_bacterial_peritonitis"
    assert "is not a known event name" in result.warnings[0].reason


def test_generic_columns_numeric_or_text(csvs):
    result = run(csvs, "patient_id,time,lsm_kpa,fibrosis_stage,alcohol\n"
                       "A,0,7.5,F2,1\nA,1,12.1,F3,2\nA,2,,F4,heavy\nA,3,,,3\n")
    assert result.categorical == {"fibrosis_stage", "alcohol"}
    assert result.visits[0].values == {"lsm_kpa": 7.5, "fibrosis_stage": "F2", "alcohol": "1"}
    [w] = result.warnings
    assert w.column == "alcohol" and "'heavy' (row 3)" in w.reason


def test_si_unit_columns_are_converted_to_the_known_columns(csvs):
    result = run(csvs, "patient_id,time,bilirubin_umol_l,albumin_g_l,creatinine_umol_l,"
                       "alt_ukat_l\nA,0,34.2,35,88.4,0.5\nA,1,-1,,,\n")
    # 34.2 / 17.1 = 2.0 mg/dL; 35 / 10 = 3.5 g/dL; 88.4 / 88.4 = 1.0 mg/dL; 0.5 x 60 = 30 U/L
    assert result.visits[0].values == pytest.approx(
        {"bilirubin_mg_dl": 2.0, "albumin_g_dl": 3.5, "creatinine_mg_dl": 1.0, "alt_u_l": 30.0})
    assert "bilirubin_mg_dl" in result.value_columns
    assert rejected_at(result, "visits.csv") == {
        2: (3, "bilirubin_umol_l -1: impossible; expected >= 0")}
    assert {w.column for w in result.warnings} == {"bilirubin_umol_l", "albumin_g_l",
                                                  "creatinine_umol_l", "alt_ukat_l"}


def test_si_value_outside_the_range_names_its_source_column(csvs):
    result = run(csvs, "patient_id,time,bilirubin_umol_l\nA,0,900\n")
    [w] = [w for w in result.warnings if w.row == 1]
    assert w.reason.startswith("bilirubin_mg_dl = 52.6316 (from bilirubin_umol_l = 900) is "
                               "above the plausible range 0.1-30 mg/dL")


def test_both_unit_spellings_keep_the_known_column(csvs):
    result = run(csvs, "patient_id,time,bilirubin_mg_dl,bilirubin_umol_l\nA,0,1.0,17.1\n")
    assert result.visits[0].values == {"bilirubin_mg_dl": 1.0, "bilirubin_umol_l": 17.1}
    assert "both present" in result.warnings[0].reason


def test_reserved_column_names_are_ignored_with_a_warning(csvs):
    result = run(csvs, "patient_id,time,series_uid,event,inr\nA,0,1.2.3,death,1.1\n")
    assert result.visits[0].values == {"inr": 1.1}
    assert sorted(w.column for w in result.warnings) == ["event", "series_uid"]
    assert result.value_columns == ["inr"]


def test_semicolon_file_with_decimal_commas(csvs):
    result = run(csvs, "patient_id;time;bilirubin_mg_dl\nA;0,5;1,25\n",
                 "patient_id;time;event\nA;2,5;censored\n")
    assert result.visits[0].time_years == 0.5
    assert result.visits[0].values == {"bilirubin_mg_dl": 1.25}
    assert result.outcomes[0].time_years == 2.5


def test_sex_differing_between_rows_warns(csvs):
    result = run(csvs, "patient_id,time,sex\nA,0,F\nA,1,male\n")
    assert result.sex == {"A": "F"}
    assert "differs from 'F'" in result.warnings[0].reason


def test_times_that_look_like_days_warn(csvs):
    result = run(csvs, "patient_id,time\nA,0\nA,365\n", "patient_id,time,event\nA,730,death\n")
    assert {w.file for w in result.warnings} == {"visits.csv", "outcomes.csv"}
    assert all("are these days or months" in w.reason for w in result.warnings)


# ----------------------------------------------------------------------------- dates
def test_dates_become_years_since_the_earliest_visit(csvs):
    result = run(csvs, "patient_id,date,inr\nA,2020-03-01,1\nA,2021-03-01,1.1\n",
                 "patient_id,date,event\nA,2022-03-01,hcc\n")
    # 2020-03-01 -> 2021-03-01 is 365 days; -> 2022-03-01 is 730 days
    assert [v.time_years for v in result.visits] == [0.0, 365 / 365.25]
    assert result.outcomes[0].time_years == pytest.approx(730 / 365.25)


def test_dates_of_a_patient_in_the_identity_map_are_shifted(csvs):
    ctx = {"MRN-1": PatientContext(pseudonym="HT-1", shift_days=-40,
                                   earliest_date=dt.date(2020, 1, 1), has_records=True)}
    result = run(csvs, "patient_id,date,inr\nMRN-1,2020-03-01,1\n",
                 "patient_id,date,event\nMRN-1,2021-02-09,death\n", contexts=ctx)
    # real 2020-03-01 - 40 days = 2020-01-21 (shifted); baseline = stored scan 2020-01-01
    assert result.visits[0].date == dt.date(2020, 1, 21)
    assert result.visits[0].time_years == pytest.approx(20 / 365.25)
    assert result.outcomes[0].date == dt.date(2020, 12, 31)
    assert result.outcomes[0].time_years == pytest.approx(365 / 365.25)


def test_visit_before_a_stored_baseline_date_is_rejected(csvs):
    ctx = {"A": PatientContext(pseudonym="A", baseline_date=dt.date(2020, 6, 1),
                               has_records=True)}
    result = run(csvs, "patient_id,date\nA,2020-05-01\nA,2020-07-01\n",
                 "patient_id,time,event\nA,3,death\n", contexts=ctx)
    assert "is before the patient's baseline date 2020-06-01" in rejected_at(
        result, "visits.csv")[1][1]
    assert [v.row for v in result.visits] == [2]


def test_stored_outcome_bounds_new_visits(csvs):
    ctx = {"A": PatientContext(pseudonym="A", has_records=True,
                               outcome=StoredOutcome(2.0, None, "censored"))}
    v, o = csvs("patient_id,time\nA,1\nA,3\n", "patient_id,time,event\n")
    result = validate(read_table(v, "v"), read_table(o, "o"), ctx)
    assert [x.row for x in result.visits] == [1]
    assert "after the end of follow-up at 2 years (censored, the stored outcome)" in \
        result.rejected[0].reason


def test_bad_date_is_rejected(csvs):
    result = run(csvs, "patient_id,date\nA,03/04/2020\nA,2020-04-03\n",
                 "patient_id,time,event\nA,3,death\n")
    assert rejected_at(result, "visits.csv") == {
        1: (2, "date '03/04/2020': expected an ISO date YYYY-MM-DD")}


def test_outcome_date_needs_a_baseline(csvs):
    result = run(csvs, "patient_id,time\nA,0\n", "patient_id,date,event\nA,2021-01-01,death\n")
    assert "give 'time' (years since baseline) instead" in rejected_at(
        result, "outcomes.csv")[1][1]


def test_dataframe_input_is_numbered_like_a_csv():
    visits = pd.DataFrame({"patient_id": [1.0, 1.0], "time": [0.0, -1.0]})
    outcomes = pd.DataFrame({"patient_id": [1], "time": [2.0], "event": ["death"]})
    result = validate(read_table(visits, "visits"), read_table(outcomes, "outcomes"))
    assert [(i.file, i.row, i.line) for i in result.rejected] == [("visits", 2, 3)]
    assert result.visits[0].key == "1"


# ------------------------------------------------------------------- baseline of a patient
D1, D2, D3 = dt.date(2020, 1, 1), dt.date(2020, 6, 1), dt.date(2021, 1, 1)


@pytest.mark.parametrize(("ctx", "visit_dates", "expected"), [
    pytest.param(None, [], None, id="new_patient_with_times_only_has_none"),
    pytest.param(None, [D3, D2], D2, id="new_patient_starts_at_the_earliest_visit_date"),
    pytest.param(PatientContext("A", earliest_date=D1), [D3, D2], D1,
                 id="a_stored_study_before_the_visits_comes_first"),
    pytest.param(PatientContext("A", earliest_date=D3), [D2], D2,
                 id="a_visit_before_the_stored_studies_comes_first"),
    pytest.param(PatientContext("A", baseline_date=D3, earliest_date=D1), [D2], D3,
                 id="the_stored_baseline_date_wins_over_every_date"),
])
def test_baseline_date_is_the_stored_one_else_the_earliest_date_known(
        ctx, visit_dates, expected):
    assert _baseline_date(ctx, visit_dates) == expected



# ----------------------------------------------------------------- elastography and MR fat
ELASTO_HEAD = ("patient_id,time,lsm_kpa,cap_db_m,spleen_stiffness_kpa,mre_kpa,mri_pdff_pct,"
               "elf_score,bmi_kg_m2,diabetes\n")


def test_elastography_mr_fat_elf_bmi_and_diabetes_are_known_columns(csvs):
    result = run(csvs, ELASTO_HEAD + "A,0,12.4,310,38,3.9,17.5,10.1,31.2,yes\n"
                                     "A,1,14.0,295,41,4.2,15.0,10.4,30.8,no\n")
    assert result.rejected == [] and result.warnings == []
    assert result.visits[0].values == {
        "lsm_kpa": 12.4, "cap_db_m": 310.0, "spleen_stiffness_kpa": 38.0, "mre_kpa": 3.9,
        "mri_pdff_pct": 17.5, "elf_score": 10.1, "bmi_kg_m2": 31.2, "diabetes": 1.0}
    assert result.visits[1].values["diabetes"] == 0.0


@pytest.mark.parametrize("column, value, pattern", [
    ("lsm_kpa", "0", r"lsm_kpa 0: impossible; expected > 0 kPa"),
    ("mri_pdff_pct", "120", r"mri_pdff_pct 120: impossible; expected <= 100 %"),
    ("mri_pdff_pct", "-2", r"mri_pdff_pct -2: impossible; expected >= 0 %"),
], ids=["zero_stiffness", "pdff_above_100", "negative_pdff"])
def test_impossible_elastography_and_fat_values_reject_the_row(csvs, column, value, pattern):
    result = run(csvs, f"patient_id,time,{column}\nA,0,{value}\nA,1,\n")
    [(row, (line, reason))] = rejected_at(result, "visits.csv").items()
    assert (row, line) == (1, 2)
    assert re.search(pattern, reason), reason


def test_unknown_diabetes_code_is_left_empty_with_a_warning_and_the_row_kept(csvs):
    result = run(csvs, "patient_id,time,diabetes,lsm_kpa\nA,0,maybe,12.4\nA,1,,\n")
    assert result.rejected == []
    assert [v.values for v in result.visits] == [{"lsm_kpa": 12.4}, {}]
    [w] = result.warnings
    assert (w.row, w.line, w.column) == (1, 2, "diabetes")
    assert re.search(r"diabetes 'maybe' is not a known code; expected 0 \(no\), 1 \(yes\)",
                     w.reason), w.reason


@pytest.mark.parametrize("column, value, hint", [
    ("mre_kpa", "35", "looks like a transient-elastography value (use lsm_kpa)"),
    ("cap_db_m", "40", "below the plausible range 100-400 dB/m"),
    ("mri_pdff_pct", "65", "above the plausible range 0-50 %"),
], ids=["mre_holding_vcte", "cap_too_low", "pdff_above_50"])
def test_implausible_elastography_values_import_with_a_hint(csvs, column, value, hint):
    result = run(csvs, f"patient_id,time,{column}\nA,0,{value}\n")
    assert result.rejected == []
    [w] = result.warnings
    assert w.column == column
    assert hint in w.reason, w.reason
