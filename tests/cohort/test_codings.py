"""Coded columns as real files write them: text labels, letters, yes/no, a declared numeric
sex convention; an unknown code loses its value, never the row."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from analytics import vocabulary as V
from analytics.cli import main
from analytics.cohort import cohort_from_frames
from analytics.cohort.columns import (
    CODE_ALIASES,
    CODED_COLUMNS,
    code_key,
    parse_sex_coding,
)
from analytics.cohort.reader import read_table
from analytics.cohort.rows import MAX_ROW_WARNINGS
from analytics.cohort.validate import validate
from analytics.config import load_settings
from analytics.errors import CohortError
from analytics.store import open_store
from analytics.store.schema import Patient, Visit

PBC_SAMPLE = Path(__file__).parents[1] / "data" / "mayo-pbc" / "pbcseq_first20.csv"
OUT_A = "patient_id,time,event\nA,5,death\n"
#: the edema labels of the Mayo PBC data as JM's pbc2 publishes them
PBC2_EDEMA = {0.0: "No edema", 0.5: "edema no diuretics", 1.0: "edema despite diuretics"}


def run(csvs, visits: str, outcomes: str = OUT_A, sex_coding=None):
    v, o = csvs(visits, outcomes)
    return validate(read_table(v, "visits"), read_table(o, "outcomes"),
                    sex_coding=sex_coding)


def _every_spelling() -> list[tuple[str, str, object]]:
    return [(column, spelling, code) for column, spellings in CODED_COLUMNS.items()
            for spelling, code in spellings.items()]


# ------------------------------------------------------------------- accepted spellings
@pytest.mark.parametrize("column, spelling, code", _every_spelling(),
                         ids=[f"{c}={s}" for c, s, _ in _every_spelling()])
def test_every_spelling_of_every_coded_column_is_accepted_in_any_case_and_spacing(
        csvs, column, spelling, code):
    written = [spelling, spelling.upper(), f"  {spelling.title()} ",
               spelling.replace(" ", "_"), spelling.replace(" ", "  ")]
    rows = "".join(f'A,{t},"{w}"\n' for t, w in enumerate(written))
    result = run(csvs, f"patient_id,time,{column}\n{rows}")
    assert result.rejected == [] and result.warnings == []
    assert [v.values for v in result.visits] == [{column: code}] * len(written)


def test_the_vocabulary_is_the_one_place_a_code_means_something():
    for column, spellings in CODED_COLUMNS.items():
        codes = V.column(column).codes
        assert set(spellings.values()) == set(codes), column
        for code, meaning in codes.items():  # each code and its meaning are spellings
            assert spellings[code_key(code)] == code
            assert spellings[code_key(meaning)] == code
        for spelling, code in CODE_ALIASES.get(column, {}).items():
            assert code in codes, (column, spelling)


@pytest.mark.parametrize("column, spelling, code", [
    ("sex", "Female", "F"), ("sex", "MALE", "M"), ("sex", "woman", "F"), ("sex", "Man", "M"),
    ("sex", " f ", "F"),
    ("dialysis", "Yes", 1.0), ("dialysis", "FALSE", 0.0), ("dialysis", "y", 1.0),
    ("dialysis", "0.0", 0.0),
    ("diabetes", "True", 1.0), ("diabetes", "N", 0.0), ("diabetes", "1", 1.0),
    ("edema", "No edema", 0.0), ("edema", "edema no diuretics", 0.5),
    ("edema", "edema despite diuretics", 1.0), ("edema", "No oedema", 0.0),
    ("edema", "Oedema_despite_diuretics", 1.0), ("edema", ".5", 0.5), ("edema", "S", 0.5),
    ("edema", "Y", 1.0), ("edema", "N", 0.0), ("edema", "0.50", 0.5),
], ids=lambda x: str(x))
def test_common_text_codings_read_as_the_vocabulary_codes(csvs, column, spelling, code):
    result = run(csvs, f"patient_id,time,{column}\nA,0,{spelling}\n")
    assert result.warnings == [] and result.visits[0].values == {column: code}


def test_the_mayo_pbc_edema_labels_import_as_0_0_5_and_1(csvs):
    rows = "".join(f"A,{t},{label}\n" for t, label in enumerate(PBC2_EDEMA.values()))
    result = run(csvs, f"patient_id,time,edema\n{rows}")
    assert result.rejected == [] and result.warnings == []
    assert [v.values["edema"] for v in result.visits] == [0.0, 0.5, 1.0]


def test_a_decimal_comma_file_reads_edema_0_5(csvs):
    result = run(csvs, "patient_id;time;edema\nA;0;0,5\n", "patient_id;time;event\nA;5;death\n")
    assert result.visits[0].values == {"edema": 0.5}


def test_not_recorded_spellings_are_missing_without_a_warning(csvs):
    result = run(csvs, "patient_id,time,sex,edema\nA,0,unknown,not recorded\nA,1,U,unk\n")
    assert result.rejected == [] and result.warnings == []
    assert [v.values for v in result.visits] == [{}, {}]


# ------------------------------------------------------------------- unknown codes
@pytest.mark.parametrize("column, value, accepted", [
    ("sex", "Z", r"M \(male\), F \(female\), O \(other\)"),
    ("dialysis", "sometimes", r"0 \(no\), 1 \(yes\)"),
    ("diabetes", "2", r"0 \(no\), 1 \(yes\)"),
    # "yes" does not say whether diuretics resolved the edema
    ("edema", "yes", r"0 \(no edema\), 0.5 \(edema without diuretics, or resolved by "
                     r"diuretics\), 1 \(edema despite diuretics\)"),
], ids=["sex", "dialysis", "diabetes", "edema_yes"])
def test_an_unknown_code_keeps_the_row_and_its_other_values(csvs, column, value, accepted):
    result = run(csvs, f"patient_id,time,bilirubin_mg_dl,{column},age_years\n"
                       f"A,0,1.4,{value},61\nA,1,1.6,,62\n")
    assert result.rejected == []
    assert [v.values for v in result.visits] == [
        {"bilirubin_mg_dl": 1.4, "age_years": 61.0}, {"bilirubin_mg_dl": 1.6, "age_years": 62.0}]
    [w] = result.warnings
    assert (w.file, w.row, w.line, w.column) == ("visits.csv", 1, 2, column)
    assert re.search(rf"^{column} '{value}' is not a known code; expected {accepted}", w.reason)
    assert w.reason.endswith("left empty")


def test_many_unknown_codes_give_a_few_row_warnings_and_one_summary(csvs):
    n = MAX_ROW_WARNINGS + 5
    rows = "".join(f"A,{t},maybe\n" for t in range(n))
    result = run(csvs, f"patient_id,time,diabetes\n{rows}", "patient_id,time,event\nA,40,death\n")
    assert result.rejected == [] and len(result.visits) == n
    row_warnings = [w for w in result.warnings if w.row is not None]
    assert [w.row for w in row_warnings] == list(range(1, MAX_ROW_WARNINGS + 1))
    [summary] = [w for w in result.warnings if w.row is None]
    assert summary.column == "diabetes"
    assert re.search(rf"column diabetes: {n} values are unknown codes and were left empty "
                     rf"\('maybe' \({n}\)\); expected 0 \(no\), 1 \(yes\)", summary.reason)


def test_a_rejected_row_carries_no_code_warning(csvs):
    result = run(csvs, "patient_id,time,edema\nA,x,yes\n")
    assert [i.row for i in result.rejected] == [1]
    assert result.warnings == []


# ------------------------------------------------------------------- numeric sex codes
def test_numeric_sex_codes_without_a_declaration_warn_and_are_left_empty(csvs):
    result = run(csvs, "patient_id,time,sex,inr\nA,0,1,1.1\nB,0,2,1.2\n",
                 OUT_A + "B,5,censored\n")
    assert result.rejected == []
    assert [v.values for v in result.visits] == [{"inr": 1.1}, {"inr": 1.2}]
    assert result.sex == {}
    assert [(w.row, w.line, w.column) for w in result.warnings] == [(1, 2, "sex"), (2, 3, "sex")]
    assert all("is a numeric code and no convention is declared for the file; declare it "
               "(import-cohort --sex-coding 1=M,2=F)" in w.reason for w in result.warnings)
    assert result.warnings[0].reason.startswith("sex '1' ")


def test_a_declared_sex_convention_reads_the_numbers(csvs):
    declared = parse_sex_coding("1=M,2=F")
    result = run(csvs, "patient_id,time,sex\nA,0,1\nB,0,2.0\nC,0,female\n",
                 OUT_A + "B,5,censored\nC,5,censored\n", sex_coding=declared)
    assert result.warnings == [] and result.sex == {"A": "M", "B": "F", "C": "F"}


def test_a_number_outside_the_declared_convention_is_unknown(csvs):
    result = run(csvs, "patient_id,time,sex\nA,0,3\n", sex_coding=parse_sex_coding("1=F,2=M"))
    [w] = result.warnings
    assert w.reason.startswith("sex '3' is not one of the declared numeric codes (1=F,2=M)")


@pytest.mark.parametrize("text, declared", [
    ("1=M,2=F", {"1": "M", "2": "F"}),
    (" 0 = female , 1 = male ", {"0": "F", "1": "M"}),
    ("1=F", {"1": "F"}),
    ("1=m,2=f,9=o", {"1": "M", "2": "F", "9": "O"}),
], ids=["usual", "words_and_spaces", "one_code", "other"])
def test_sex_coding_declarations_read(text, declared):
    assert parse_sex_coding(text) == declared


@pytest.mark.parametrize("text, why", [
    ("", r"'' is not CODE=SEX"),
    ("1=M,2", r"'2' is not CODE=SEX"),
    ("1:M,2:F", r"'1:M' is not CODE=SEX"),
    ("a=M", r"'a' is not a whole number"),
    ("1.5=M", r"'1.5' is not a whole number"),
    ("1=Q", r"'Q' is not a sex code \(M \(male\), F \(female\), O \(other\)\)"),
    ("1=2", r"'2' is not a sex code \(M \(male\), F \(female\), O \(other\)\)"),
    ("1=M,1=F", r"1 is declared twice"),
    ("1=M,2=male", r"two numbers mean M"),
], ids=["empty", "missing_sex", "colon", "letter_code", "fraction", "unknown_sex",
        "number_for_sex", "twice", "same_sex_twice"])
def test_a_malformed_sex_coding_is_refused_with_what_is_expected(text, why):
    with pytest.raises(CohortError, match=rf"^--sex-coding {re.escape(repr(text))}: {why}; "
                                          r"expected CODE=SEX pairs separated by commas, "
                                          r"e\.g\. 1=M,2=F$"):
        parse_sex_coding(text, name="--sex-coding")


# ------------------------------------------------------------------- the command line
def _stored_sex_and_edema(home: Path) -> tuple[list, list]:
    store = open_store(load_settings(home))
    try:
        with store.session() as s:
            sex = sorted(s.execute(select(Patient.sex)).scalars().all())
            values = s.execute(select(Visit.values).order_by(Visit.time_years)).scalars().all()
    finally:
        store.dispose()
    return sex, [v.get("edema") for v in values]


def test_a_file_whose_edema_values_are_all_labels_imports_with_no_rejections(
        home, csvs, capsys):
    rows = "".join(f"P1,{t},{label},F\n" for t, label in enumerate(PBC2_EDEMA.values()))
    v, o = csvs(f"patient_id,time,edema,sex\n{rows}", "patient_id,time,event\nP1,4,death\n")
    code = main(["--home", str(home), "import-cohort", "--visits", str(v), "--outcomes",
                 str(o), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (payload["visits"], payload["rejected"], payload["warnings"]) == (3, [], [])
    assert _stored_sex_and_edema(home) == (["F"], [0.0, 0.5, 1.0])


def test_the_sex_convention_is_declared_on_the_command_line(home, csvs, capsys):
    v, o = csvs("patient_id,time,sex\nP1,0,1\nP2,0,2\n",
                "patient_id,time,event\nP1,1,death\nP2,1,censored\n")
    args = ["--home", str(home), "import-cohort", "--visits", str(v), "--outcomes", str(o),
            "--json"]
    assert main([*args, "--sex-coding", "1=M,2=F"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["rejected"], payload["warnings"]) == ([], [])
    assert _stored_sex_and_edema(home)[0] == ["F", "M"]


def test_without_the_declaration_the_cli_imports_and_says_how_to_declare(home, csvs, capsys):
    v, o = csvs("patient_id,time,sex,inr\nP1,0,1,1.1\n", "patient_id,time,event\nP1,1,death\n")
    assert main(["--home", str(home), "import-cohort", "--visits", str(v), "--outcomes",
                 str(o), "--json"]) == 0
    [w] = json.loads(capsys.readouterr().out)["warnings"]
    assert (w["file"], w["row"], w["line"], w["column"]) == ("visits.csv", 1, 2, "sex")
    assert "--sex-coding 1=M,2=F" in w["reason"]
    assert _stored_sex_and_edema(home)[0] == [None]


@pytest.mark.parametrize("text", ["1=M,2", "M=1,F=2", "1=M,1=F"])
def test_a_malformed_declaration_exits_2_with_one_clear_line_and_imports_nothing(
        home, csvs, capsys, text):
    v, o = csvs("patient_id,time,sex\nP1,0,1\n", "patient_id,time,event\nP1,1,death\n")
    code = main(["--home", str(home), "import-cohort", "--visits", str(v), "--outcomes",
                 str(o), "--sex-coding", text])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"hepatrack import-cohort: --sex-coding {text!r}: ")
    assert err.strip().endswith("expected CODE=SEX pairs separated by commas, e.g. 1=M,2=F")
    assert not (home / "hepatrack.db").exists()  # refused before the store is opened


# ------------------------------------------------------------------- a real public file
def _site_mapping(raw: pd.DataFrame, *, labels: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Mayo PBC visits in HepaTrack's columns, as a site maps its export; with
    ``labels``, sex and edema written as JM's pbc2 writes them."""
    years = raw["day"] / 365.25
    visits = pd.DataFrame({
        "patient_id": "PBC-" + raw["id"].astype(str), "time": years,
        "age_years": raw["age"] + years,
        "sex": raw["sex"].map({"f": "female", "m": "male"}) if labels else raw["sex"],
        "edema": raw["edema"].map(PBC2_EDEMA) if labels else raw["edema"],
        "bilirubin_mg_dl": raw["bili"], "albumin_g_dl": raw["albumin"],
        "alp_u_l": raw["alk.phos"], "ast_u_l": raw["ast"],
        "platelets_10e9_l": raw["platelet"], "prothrombin_s": raw["protime"],
        "ascites": raw["ascites"], "hepatomegaly": raw["hepato"], "spiders": raw["spiders"],
    })
    ends = raw.drop_duplicates("id")
    outcomes = pd.DataFrame({
        "patient_id": "PBC-" + ends["id"].astype(str), "time": ends["futime"] / 365.25,
        "event": ends["status"].map({0: "censored", 1: "transplant", 2: "death"})})
    return visits, outcomes


def test_the_mayo_pbc_sample_imports_the_same_with_numeric_codes_and_with_labels(
        home, tmp_path, capsys):
    raw = pd.read_csv(PBC_SAMPLE)
    assert (len(raw), raw["id"].nunique()) == (137, 20)
    frames = {}
    for labels in (False, True):
        visits, outcomes = _site_mapping(raw, labels=labels)
        if labels:
            assert set(visits["edema"]) == set(PBC2_EDEMA.values())
        v, o = tmp_path / f"visits_{labels}.csv", tmp_path / f"outcomes_{labels}.csv"
        visits.to_csv(v, index=False)
        outcomes.to_csv(o, index=False)
        code = main(["--home", str(home), "import-cohort", "--visits", str(v), "--outcomes",
                     str(o), "--json"])
        payload = json.loads(capsys.readouterr().out)
        assert code == 0 and payload["rejected"] == []
        assert (payload["patients"], payload["visits"], payload["events"]) == (20, 137, 15)
        assert not [w for w in payload["warnings"] if w["column"] in CODED_COLUMNS]
        frames[labels] = cohort_from_frames(v, o, with_scores=True).visits
    # the second import (labels) changes no stored value: the same codes, the same visits
    assert payload["visits_unchanged"] == 137
    numeric, labelled = frames[False], frames[True]
    pd.testing.assert_frame_equal(numeric, labelled)
    first = numeric[numeric["patient"] == "PBC-1"].iloc[0]
    assert (first["edema"], first["sex"], first["bilirubin_mg_dl"]) == (1.0, "F", 14.5)
    assert sorted(numeric["edema"].dropna().unique()) == [0.0, 0.5, 1.0]
    assert numeric.loc[numeric["patient"] == "PBC-3", "sex"].unique().tolist() == ["M"]
    # Mayo risk score of patient 1 at entry (Dickson 1989), edema 1 from the file
    expected = (0.871 * math.log(14.5) - 2.53 * math.log(2.6) + 0.039 * 58.76522929500342
                + 2.38 * math.log(12.2) + 0.859 * 1.0)
    assert first["mayo_pbc"] == pytest.approx(expected, abs=1e-9)
