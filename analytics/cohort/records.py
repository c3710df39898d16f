"""Records of a cohort import: located issues, store context, accepted rows."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

DAYS_PER_YEAR = 365.25

#: two visit times closer than this (years, about 30 s) are the same visit
TIME_EPS = 1e-6


@dataclass(frozen=True)
class Issue:
    """A rejected row or a warning, located in its file."""

    file: str
    row: int | None
    line: int | None
    reason: str
    column: str | None = None

    def __str__(self) -> str:
        if self.row is None:
            return f"{self.file}: {self.reason}"
        return f"{self.file} row {self.row} (line {self.line}): {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "line": self.line,
                "column": self.column, "reason": self.reason}


@dataclass(frozen=True)
class StoredOutcome:
    time_years: float
    date: dt.date | None
    event: str


@dataclass
class PatientContext:
    """What the store already knows about a CSV ``patient_id``.

    Attributes
    ----------
    pseudonym
        The patient's pseudonym (existing, or the CSV id for a new patient).
    shift_days
        De-identification date shift (stored = real + shift) from the identity map.
    baseline_date
        ``patients.baseline_date`` when set (shifted).
    earliest_date
        Earliest stored study or visit date (shifted), used as the baseline otherwise.
    has_records
        True when scans or visits are stored for the patient.
    outcome
        The stored outcome, if any.
    error
        Set when the id cannot be used (e.g. it matches several patients): every row of
        the id is rejected with this reason.
    """

    pseudonym: str
    shift_days: int = 0
    baseline_date: dt.date | None = None
    earliest_date: dt.date | None = None
    has_records: bool = False
    outcome: StoredOutcome | None = None
    error: str | None = None


@dataclass
class VisitRecord:
    key: str
    row: int
    line: int
    time_given: float | None
    date: dt.date | None  # shifted
    values: dict[str, float | str]
    time_years: float = math.nan


@dataclass
class OutcomeRecord:
    key: str
    row: int
    line: int
    time_given: float | None
    date: dt.date | None  # shifted
    event: str
    time_years: float = math.nan


@dataclass
class ValidatedCohort:
    """Accepted rows with resolved times, plus what was rejected or warned about.

    ``value_columns`` are the visits file's feature columns (all of them, so an import
    can tell "this file says the value is missing" from "this file has no such column").
    """

    visits_file: str
    outcomes_file: str
    visits: list[VisitRecord]
    outcomes: list[OutcomeRecord]
    value_columns: list[str]
    categorical: set[str]
    rejected: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    sex: dict[str, str] = field(default_factory=dict)
    baselines: dict[str, dt.date | None] = field(default_factory=dict)
