"""Cohort-table search and sort (plain pandas)."""

from __future__ import annotations

import pandas as pd
import pytest

from ui import tables


def _patients() -> pd.DataFrame:
    return pd.DataFrame({
        "pseudonym": ["HT-03", "HT-01", "HT-02"],
        "last_scan": pd.to_datetime(["2021-01-01", None, "2022-05-01"]),
        "follow_up_years": [1.0, 3.0, 3.0],
        "n_studies": [2, 0, 1],
        "n_visits": [1, 1, 4],
    })


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("Pseudonym", ["HT-01", "HT-02", "HT-03"]),
        ("Last scan (newest first)", ["HT-02", "HT-03", "HT-01"]),  # unknown date last
        ("Follow-up (longest first)", ["HT-01", "HT-02", "HT-03"]),  # tie by pseudonym
        ("Studies (most first)", ["HT-03", "HT-02", "HT-01"]),
        ("Visits (most first)", ["HT-02", "HT-01", "HT-03"]),
    ],
)
def test_sort(choice, expected):
    assert tables.sort_patients(_patients(), choice)["pseudonym"].tolist() == expected


def test_unknown_sort_is_refused():
    with pytest.raises(ValueError, match=r"sort 'Age': expected one of \['Pseudonym'"):
        tables.sort_patients(_patients(), "Age")


def test_search_is_literal_and_covers_names_only_when_present():
    df = _patients().assign(patient_name=["Doe^Jane", None, "Roe^R"])
    assert tables.search_patients(df, "doe")["pseudonym"].tolist() == ["HT-03"]
    assert tables.search_patients(df, "^")["pseudonym"].tolist() == ["HT-03", "HT-02"]
    assert tables.search_patients(_patients(), "doe").empty
    assert tables.search_patients(_patients(), "HT-0[12]").empty  # no regex
