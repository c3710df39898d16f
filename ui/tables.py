"""Search and sort of the cohort table (plain pandas, no streamlit)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from analytics.names import clinical_name

#: sort choices shown on the cohort page: label -> (column, ascending)
SORTS: dict[str, tuple[str, bool]] = {
    "Pseudonym": ("pseudonym", True),
    "Last scan (newest first)": ("last_scan", False),
    "Follow-up (longest first)": ("follow_up_years", False),
    "Studies (most first)": ("n_studies", False),
    "Visits (most first)": ("n_visits", False),
    "Current risk (highest first)": ("risk_pct", False),
    "Risk change (rising first)": ("risk_change_pct", False),
}

# columns searched, when present: the pseudonym always; names only in identified views
_SEARCHED = ("pseudonym", "patient_name", "patient_id")


def search_patients(patients: pd.DataFrame, query: str | None) -> pd.DataFrame:
    """Rows whose pseudonym (or, when the table has them, name or real ID) contains ``query``.

    Case-insensitive substring match; an empty query returns every row. The query is
    matched literally (no regular expression).
    """
    text = (query or "").strip().lower()
    if not text:
        return patients
    hit = pd.Series(False, index=patients.index)
    for col in _SEARCHED:
        if col in patients.columns:
            hit |= patients[col].fillna("").astype(str).str.lower().str.contains(
                text, regex=False)
    return patients[hit]


def sort_patients(patients: pd.DataFrame, choice: str) -> pd.DataFrame:
    """Sort by one of :data:`SORTS`; missing values last, ties by pseudonym.

    Raises
    ------
    ValueError
        If ``choice`` is not a key of :data:`SORTS`.
    """
    if choice not in SORTS:
        raise ValueError(f"sort {choice!r}: expected one of {list(SORTS)}")
    column, ascending = SORTS[choice]
    if column == "pseudonym":
        return patients.sort_values("pseudonym", ignore_index=True)
    ordered = patients.sort_values("pseudonym", kind="stable")
    return ordered.sort_values(column, ascending=ascending, na_position="last",
                               kind="stable", ignore_index=True)


def only_patients(table: pd.DataFrame, pseudonyms: pd.Series | list[str]) -> pd.DataFrame:
    """Rows of ``table`` (any table with a ``pseudonym`` column) for the given patients."""
    return table[table["pseudonym"].isin(list(pseudonyms))]


def patient_choices(patients: pd.DataFrame) -> tuple[list[str], Callable[[str], str]]:
    """Pseudonyms to offer in a picker, and the label of each: ``"HT-… · Given FAMILY"`` when the
    viewer's patient list carries real names (identified views), ``"HT-… · ID MRN-1"``
    for a patient known by ID only (imported from a visits table), else the pseudonym."""
    options = patients["pseudonym"].tolist()
    names: dict[str, str] = {}
    for col, prefix in (("patient_id", "ID "), ("patient_name", "")):
        if col in patients.columns:
            names |= {p: f"{prefix}{clinical_name(v) if col == 'patient_name' else v}"
                      for p, v in zip(patients["pseudonym"], patients[col], strict=True)
                      if isinstance(v, str) and v}

    # every label made once: the picker formats each of its options on every run
    labels = {p: f"{p} · {n}" for p, n in names.items() if n}

    def label(p: str) -> str:
        return labels.get(p, p)

    return options, label
