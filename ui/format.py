"""Formatting for the dashboard: column configs with units, dates, numbers."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd
import streamlit as st

from analytics.vocabulary import label_with_unit

DATE_FORMAT = "YYYY-MM-DD"
_DATE_COLUMNS = {"first_scan", "last_scan", "outcome_date", "birth_date", "study_date",
                 "visit_date"}
_INT_COLUMNS = {"n_studies", "n_series", "n_visits", "birth_year", "n_instances",
                "n_slices", "rows", "columns", "n_masks", "n_features"}


def column_config(df: pd.DataFrame, *, units: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    """``st.dataframe`` column configuration: labels with units, date and number formats.

    Parameters
    ----------
    df
        The table to show.
    units
        Units stored with feature values (``features.unit``) by column name.
    """
    units = units or {}
    cfg: dict[str, Any] = {}
    for col in df.columns:
        label = label_with_unit(col, units.get(col))
        if col in _DATE_COLUMNS:
            cfg[col] = st.column_config.DateColumn(label, format=DATE_FORMAT)
        elif col in _INT_COLUMNS:
            cfg[col] = st.column_config.NumberColumn(label, format="%d")
        elif col == "follow_up_years" or col == "time_years":
            cfg[col] = st.column_config.NumberColumn(label, format="%.2f")
        elif pd.api.types.is_float_dtype(df[col]):
            cfg[col] = st.column_config.NumberColumn(label, format="%.4g")
        else:
            cfg[col] = st.column_config.Column(label)
    return cfg


def fmt_date(value: dt.date | pd.Timestamp | None) -> str:
    """``YYYY-MM-DD``, or an em dash when unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "—"
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def fmt_years(value: float | None, digits: int = 1) -> str:
    """``"1.5 y"``, or an em dash when unknown."""
    if value is None or pd.isna(value):
        return "—"
    return f"{value:.{digits}f} y"


def fmt_count(n: int, singular: str, plural: str | None = None) -> str:
    """``"1 patient"`` / ``"3 patients"``."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def fmt_horizon(years: float) -> str:
    """``"1 year"``, ``"2 years"``, ``"0.5 years"``."""
    return f"{years:g} year" + ("" if years == 1 else "s")
