"""Time-axis and identity helpers shared by the repository modules.

Stored dates are de-identified: ``stored = real + date_shift_days`` (per patient), so an
identified view gives ``real = stored - date_shift_days``. Years are ``days / 365.25``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import aliased

from analytics.errors import StoreError
from analytics.store.schema import IdentityMap, Patient, Series, Study

DAYS_PER_YEAR = 365.25
CENSORED = "censored"


def shift_date(date: dt.date | None, shift_days: int, identified: bool) -> dt.date | None:
    """The real date (``stored - shift``) for identified views; the stored one otherwise."""
    if date is None or not identified or not shift_days:
        return date
    return date - dt.timedelta(days=int(shift_days))


def view_birth_year(stored_year: int | None, birth_date: dt.date | None,
                    identified: bool) -> int | None:
    """The birth year a view shows: the real birth date's year when identified (None
    without one: the stored year is shifted and would contradict the real dates), else the
    stored, shifted year."""
    if identified:
        return birth_date.year if birth_date is not None else None
    return stored_year


def years_between(later: dt.date | None, earlier: dt.date | None) -> float | None:
    """``(later - earlier)`` in years of 365.25 days; None if either date is unknown."""
    if later is None or earlier is None:
        return None
    return (later - earlier).days / DAYS_PER_YEAR


def as_datetime(values: list[dt.date | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="object"))


def patient_row(s: Any, pseudonym: str) -> Patient:
    patient = s.execute(select(Patient).where(Patient.pseudonym == pseudonym)).scalar()
    if patient is None:
        raise StoreError(f"patient {pseudonym!r}: not in the store",
                         hint="pick a pseudonym from the cohort list")
    return patient


def baseline_of(baseline: dt.date | None, dates: list[dt.date | None],
                fallback: list[dt.date | None] | None = None) -> dt.date | None:
    """The patient's time origin: stored baseline, else the earliest known date.

    ``dates`` are those that may define it (scans with a series that is not invalid,
    visits); ``fallback`` (every scan date) places the scans of a patient who has none
    of those, so a stray broken series never moves the time zero of a patient with data.
    """
    if baseline is not None:
        return baseline
    known = [d for d in dates if d is not None]
    if not known and fallback:
        known = [d for d in fallback if d is not None]
    return min(known) if known else None


def dates_baseline(study: Any = Study) -> ColumnElement[bool]:
    """SQL condition: the study can define its patient's baseline (time zero).

    It is filed under a patient (not held as an identity conflict) and has at least one
    series that is not invalid: a stray broken file never moves a patient's time zero.
    """
    other = aliased(Series)  # the outer query may select series too
    return study.patient_id.is_not(None) & exists().where(
        other.study_id == study.id, other.status != "invalid").correlate(study)


def count_occasions(study_dates: list[dt.date | None], visit_rows: list[tuple[float, dt.date | None]],
               baseline: dt.date | None) -> int:
    """Distinct visit occasions from scan dates and visit rows (see analytics.store.repo)."""
    dated: set[dt.date] = {d for d in study_dates if d is not None}
    undated: set[float] = set()
    for time_years, visit_date in visit_rows:
        if visit_date is None and baseline is not None and time_years is not None:
            visit_date = baseline + dt.timedelta(days=round(time_years * DAYS_PER_YEAR))
        if visit_date is not None:
            dated.add(visit_date)
        else:
            undated.add(round(float(time_years), 6))
    undated_studies = sum(1 for d in study_dates if d is None)
    return len(dated) + len(undated) + undated_studies


def shift_days_of(s: Any, patient_id: int) -> int:
    shift = s.execute(select(IdentityMap.date_shift_days)
                      .where(IdentityMap.patient_id == patient_id)).scalar()
    return int(shift or 0)
