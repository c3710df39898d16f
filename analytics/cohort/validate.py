"""Row-level validation of a cohort import: what is rejected, what is only a warning.

The rules (each rejection names the file, the 1-based data row, the CSV line and the
reason; the other rows go on):

Rejected visit rows
    empty or over-long ``patient_id``; no ``time``/``date``; a negative ``time``; a
    ``date`` that is not ISO (``YYYY-MM-DD``) or lies before the patient's stored
    baseline date; an unparseable value (the column and the value are named); a
    physically impossible value (negative concentration, zero INR, age over 130); an
    unknown code in ``sex``/``dialysis``/``edema``; a duplicate (same patient and same
    time, or same date: the later row is rejected); a visit after the end of follow-up
    (visit time > outcome time); a patient without an outcome (no usable row in
    outcomes.csv and none stored: "unknown patient").
Rejected outcome rows
    empty ``patient_id``; no or bad ``time``/``date``; an end of follow-up before the
    patient's first visit; an empty or numeric ``event`` (0/1 codes are ambiguous); an
    event that is a spelling of "no event" (``alive``, ``none``...: write ``censored``);
    an event that is not a name (letters, digits, underscores); a second row for the same
    patient; a patient with no visit rows in visits.csv and no scans or visits stored
    ("unknown patient").
Warnings (the row is imported as given)
    a value outside its column's plausible range (with a unit hint; see
    :mod:`analytics.cohort.columns`); a censored lab value such as ``<0.2`` (the bound is
    imported); an event name HepaTrack does not know (imported as its own event type); a
    generic column with a few non-numeric values (kept as text); a patient whose ``sex``
    differs between rows; times above 50 years (days or months?).

Row order in the file carries no meaning: visits are sorted by time, so rows out of time
order are accepted. Missing values are normal and never reject a row.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analytics.cohort.columns import (
    CENSORED,
    CENSORING_SYNONYMS,
    CODED_COLUMNS,
    CODED_MISSING,
    DATE_COLUMN,
    EVENT_COLUMN,
    EVENT_NAME,
    ID_COLUMN,
    KNOWN_EVENTS,
    LAB_COLUMNS,
    RESERVED,
    RESERVED_FEATURE_NAMES,
    TIME_COLUMN,
    UNIT_ALIASES,
    ColumnDef,
    normalise_event,
)
from analytics.cohort.reader import (
    RawRow,
    RawTable,
    cell_text,
    is_missing,
    parse_date,
    parse_number,
)
from analytics.errors import CohortError

DAYS_PER_YEAR = 365.25
#: two visit times closer than this (years, about 30 s) are the same visit
TIME_EPS = 1e-6
MAX_PSEUDONYM = 64
#: per column, at most this many row-level plausibility warnings; the rest are counted
MAX_ROW_WARNINGS = 10
LONG_TIME_YEARS = 50.0


@dataclass(frozen=True)
class Issue:
    """A rejected row or a warning, located in its file."""

    file: str
    row: int | None
    line: int | None
    reason: str
    column: str | None = None

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file} row {self.row} (line {self.line})"
        return f"{where}: {self.reason}"

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


# --------------------------------------------------------------------------- helpers
def _require(table: RawTable, needed: tuple[str, ...], what: str) -> None:
    for col in needed:
        if col not in table.columns:
            raise CohortError(f"{table.name}: missing column {col!r}; expected {what}",
                              hint="see 'Cohort CSV format' in the documentation")
    if TIME_COLUMN not in table.columns and DATE_COLUMN not in table.columns:
        raise CohortError(f"{table.name}: needs a 'time' column (years since baseline) or a "
                          f"'date' column (ISO dates); found {table.columns}")


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _plausibility(col: ColumnDef, value: float, source: str = ""
                  ) -> tuple[str, str | None] | None:
    """(message, unit hint) when ``value`` is outside the plausible range, else None."""
    lo, hi = col.plausible
    if lo <= value <= hi:
        return None
    side = "below" if value < lo else "above"
    msg = (f"{col.name} = {_fmt(value)}{source} is {side} the plausible range "
           f"{_fmt(lo)}-{_fmt(hi)} {col.unit}")
    for alt in col.alt_units:
        if alt.factor is not None:
            converted = value / alt.factor
            if lo <= converted <= hi:
                return (f"{msg}; looks like {alt.unit} ({_fmt(value)} {alt.unit} = "
                        f"{converted:.3g} {col.unit}); imported as given", alt.unit)
        elif alt.low is not None and alt.high is not None and alt.low <= value <= alt.high:
            note = f" ({alt.note})" if alt.note else ""
            return f"{msg}; looks like {alt.unit}{note}; imported as given", alt.unit
    return f"{msg}; check the value and unit ({col.source}); imported as given", None


class _Collector:
    """Per-row rejections and warnings, kept until the row's fate is known."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.rejected: dict[int, Issue] = {}
        self.row_warnings: dict[int, list[Issue]] = defaultdict(list)
        self.plausibility: dict[str, list[tuple[int, Issue, str | None]]] = defaultdict(list)

    def reject(self, r: RawRow | VisitRecord | OutcomeRecord, reason: str) -> None:
        if r.row not in self.rejected:
            self.rejected[r.row] = Issue(self.file, r.row, r.line, reason)

    def warn(self, r: RawRow, reason: str, column: str | None = None) -> None:
        self.row_warnings[r.row].append(Issue(self.file, r.row, r.line, reason, column))

    def warn_value(self, r: RawRow, column: str, reason: str, hint: str | None) -> None:
        self.plausibility[column].append(
            (r.row, Issue(self.file, r.row, r.line, reason, column), hint))

    def finish(self, n_values: Counter[str]) -> tuple[list[Issue], list[Issue]]:
        rejected = sorted(self.rejected.values(), key=lambda i: i.row or 0)
        warnings = [w for row, ws in self.row_warnings.items() if row not in self.rejected
                    for w in ws]
        for column, items in self.plausibility.items():
            items = [it for it in items if it[0] not in self.rejected]
            hints = Counter(h for _, _, h in items if h is not None)
            total = n_values[column]
            if hints:
                hint, n = hints.most_common(1)[0]
                if n >= 3 and n * 2 > total:
                    warnings.append(Issue(
                        self.file, None, None, column=column,
                        reason=f"column {column}: {n} of {total} values look like {hint}, "
                               f"not {LAB_COLUMNS[column].unit}; check the column's unit"))
            warnings += [issue for _, issue, _ in items[:MAX_ROW_WARNINGS]]
            if len(items) > MAX_ROW_WARNINGS:
                warnings.append(Issue(self.file, None, None, column=column,
                                      reason=f"column {column}: {len(items) - MAX_ROW_WARNINGS}"
                                             " more values outside the plausible range"))
        warnings.sort(key=lambda i: (i.row is not None, i.row or 0))
        return rejected, warnings


def _parse_when(table: RawTable, r: RawRow, col: _Collector
                ) -> tuple[float | None, dt.date | None] | None:
    """(time, date) of a row, or None after rejecting it."""
    date_cell = r.cells.get(DATE_COLUMN)
    time_cell = r.cells.get(TIME_COLUMN)
    if DATE_COLUMN in r.cells and not is_missing(date_cell):
        try:
            return None, parse_date(date_cell)
        except ValueError as e:
            col.reject(r, f"date {cell_text(date_cell)!r}: {e}")
            return None
    if TIME_COLUMN in r.cells and not is_missing(time_cell):
        try:
            t, censor = parse_number(time_cell, decimal_comma=table.decimal_comma)
        except ValueError as e:
            col.reject(r, f"time {cell_text(time_cell)!r}: {e} (years since baseline)")
            return None
        if censor is not None:
            col.reject(r, f"time {cell_text(time_cell)!r}: expected a number of years")
            return None
        if t < 0:
            col.reject(r, f"time {_fmt(t)}: negative; expected years since baseline >= 0")
            return None
        return t, None
    col.reject(r, "no time or date given")
    return None


def patient_key(cell: Any) -> str | None:
    """The patient id of a cell as text (None when missing); 12.0 from a DataFrame is "12"."""
    if is_missing(cell):
        return None
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def _patient_key(r: RawRow, col: _Collector, contexts: Mapping[str, PatientContext]
                 ) -> str | None:
    key = patient_key(r.cells.get(ID_COLUMN))
    if key is None:
        col.reject(r, "patient_id is empty")
        return None
    if len(key) > MAX_PSEUDONYM:
        col.reject(r, f"patient_id {cell_text(key)!r} is {len(key)} characters; at most "
                      f"{MAX_PSEUDONYM} are allowed")
        return None
    ctx = contexts.get(key)
    if ctx is not None and ctx.error:
        col.reject(r, ctx.error)
        return None
    return key


def _generic_types(table: RawTable, columns: list[str]) -> tuple[set[str], list[Issue]]:
    """Generic columns that hold text (a column is numeric only if every value is)."""
    categorical: set[str] = set()
    warnings: list[Issue] = []
    for c in columns:
        numeric, text = 0, []
        for r in table.rows:
            cell = r.cells[c]
            if is_missing(cell):
                continue
            try:
                parse_number(cell, decimal_comma=table.decimal_comma)
                numeric += 1
            except ValueError:
                text.append(r)
        if text:
            categorical.add(c)
            if numeric > len(text):
                examples = ", ".join(f"{cell_text(r.cells[c])!r} (row {r.row})"
                                     for r in text[:3])
                warnings.append(Issue(
                    table.name, None, None, column=c,
                    reason=f"column {c}: {numeric} numeric values but {len(text)} "
                           f"non-numeric ones such as {examples}; the column is kept as text"))
    return categorical, warnings


def _parse_values(table: RawTable, r: RawRow, value_cols: list[str], categorical: set[str],
                  col: _Collector, aliases: Mapping[str, tuple[str, float]]
                  ) -> dict[str, float | str] | None:
    values: dict[str, float | str] = {}
    errors: list[str] = []
    for c in value_cols:
        cell = r.cells[c]
        if is_missing(cell):
            continue
        if c in CODED_COLUMNS:
            key = str(cell).strip().lower()
            if isinstance(cell, float) and cell.is_integer():
                key = str(int(cell))
            if key in CODED_MISSING:
                continue
            if key not in CODED_COLUMNS[c]:
                accepted = sorted({str(v) for v in CODED_COLUMNS[c].values()})
                errors.append(f"{c} {cell_text(cell)!r}: expected one of {accepted}")
                continue
            values[c] = CODED_COLUMNS[c][key]  # type: ignore[assignment]
            continue
        if c in categorical:
            values[c] = str(cell).strip()
            continue
        try:
            value, censor = parse_number(cell, decimal_comma=table.decimal_comma)
        except ValueError as e:
            errors.append(f"{c} {cell_text(cell)!r}: {e}")
            continue
        target, factor = aliases.get(c, (c, 1.0))
        source = "" if target == c else f" (from {c} = {_fmt(value)})"
        raw, value = value, value / factor
        spec = LAB_COLUMNS.get(target)
        if spec is not None:
            if value < spec.reject_below or (spec.positive and value <= spec.reject_below):
                bound = "> 0" if spec.positive else ">= 0"
                unit = f" {spec.unit}" if target == c else ""
                errors.append(f"{c} {_fmt(raw)}: impossible; expected {bound}{unit}")
                continue
            if spec.reject_above is not None and value > spec.reject_above:
                errors.append(f"{c} {_fmt(raw)}: impossible; expected <= "
                              f"{_fmt(spec.reject_above)} {spec.unit}")
                continue
            found = _plausibility(spec, value, source)
            if found is not None:
                col.warn_value(r, target, found[0], found[1])
        if censor is not None:
            col.warn(r, f"{c} {cell_text(cell)!r}: a censored value; the bound {_fmt(raw)} "
                        "is imported", column=c)
        values[target] = value
    if errors:
        col.reject(r, "; ".join(errors))
        return None
    return values


def _parse_event(cell: Any) -> tuple[str | None, str | None]:
    """(event, None) or (None, rejection reason)."""
    if is_missing(cell):
        return None, "event is empty; expected an event name (e.g. death, hcc) or 'censored'"
    raw = str(cell).strip()
    try:
        parse_number(raw)
        return None, (f"event {raw!r} is a numeric code; expected an event name (death, "
                      "transplant, decompensation, hcc...) or 'censored'")
    except ValueError:
        pass
    event = normalise_event(raw)
    if event == CENSORED:
        return event, None
    if event in CENSORING_SYNONYMS:
        return None, f"event {raw!r} means no event: write 'censored'"
    if not EVENT_NAME.match(event):
        return None, (f"event {cell_text(raw)!r} is not an event name; expected letters, "
                      "digits and underscores (e.g. variceal_bleeding) or 'censored'")
    return event, None


def _shift(date: dt.date | None, ctx: PatientContext | None) -> dt.date | None:
    if date is None or ctx is None or not ctx.shift_days:
        return date
    return date + dt.timedelta(days=int(ctx.shift_days))


def _years(later: dt.date, earlier: dt.date) -> float:
    return (later - earlier).days / DAYS_PER_YEAR


# --------------------------------------------------------------------------- main
def validate(visits: RawTable, outcomes: RawTable,
             contexts: Mapping[str, PatientContext] | None = None) -> ValidatedCohort:
    """Check both tables row by row and across files; resolve every time.

    Parameters
    ----------
    visits, outcomes
        The read tables (see :func:`analytics.cohort.reader.read_table`).
    contexts
        Store knowledge per CSV ``patient_id`` (date shift, baseline, stored outcome);
        None or missing keys mean a patient the store does not know.

    Returns
    -------
    ValidatedCohort
        Accepted visit and outcome records with ``time_years`` in years since the
        patient's baseline (see :mod:`analytics.cohort.table` for the baseline rule) and
        dates shifted into the store's de-identified calendar.

    Raises
    ------
    CohortError
        If a table lacks a required column (nothing is validated then).
    """
    contexts = contexts or {}
    _require(visits, (ID_COLUMN,), "patient_id, time or date, then feature columns")
    _require(outcomes, (ID_COLUMN, EVENT_COLUMN), "patient_id, time or date, event")
    vcol, ocol = _Collector(visits.name), _Collector(outcomes.name)
    for table, col in ((visits, vcol), (outcomes, ocol)):
        for row, line, msg in table.malformed:
            col.rejected[row] = Issue(table.name, row, line, msg)
    warnings: list[Issue] = []
    for table in (visits, outcomes):
        if TIME_COLUMN in table.columns and DATE_COLUMN in table.columns:
            warnings.append(Issue(table.name, None, None, "both 'time' and 'date' columns: "
                                  "the date is used where given, the time elsewhere"))
    extra = [c for c in outcomes.columns if c not in (*RESERVED, EVENT_COLUMN)]
    if extra:
        warnings.append(Issue(outcomes.name, None, None, f"columns {extra} are not part of "
                              "the outcomes format and are ignored"))

    value_cols: list[str] = []
    aliases: dict[str, tuple[str, float]] = {}
    for c in visits.columns:
        if c in RESERVED:
            continue
        if c in RESERVED_FEATURE_NAMES:
            warnings.append(Issue(visits.name, None, None, column=c, reason=(
                f"column {c!r} is reserved for the cohort table (scans, outcomes) and is "
                "ignored")))
            continue
        if c in UNIT_ALIASES:
            target, factor = UNIT_ALIASES[c]
            if target in visits.columns:
                warnings.append(Issue(visits.name, None, None, column=c, reason=(
                    f"columns {c} and {target} both present: {c} is kept as a generic "
                    f"column, the scores use {target}")))
            else:
                aliases[c] = (target, factor)
                warnings.append(Issue(visits.name, None, None, column=c, reason=(
                    f"column {c} is imported as {target} (divided by {factor:.6g})")))
        value_cols.append(c)
    generic = [c for c in value_cols
               if c not in LAB_COLUMNS and c not in CODED_COLUMNS and c not in aliases]
    categorical, type_warnings = _generic_types(visits, generic)
    warnings += type_warnings

    # ---- parse rows
    vrecs: list[VisitRecord] = []
    all_visit_keys: set[str] = set()
    n_values: Counter[str] = Counter()
    for r in visits.rows:
        key = _patient_key(r, vcol, contexts)
        if key is None:
            continue
        all_visit_keys.add(key)
        when = _parse_when(visits, r, vcol)
        values = _parse_values(visits, r, value_cols, categorical, vcol, aliases)
        if when is None or values is None:
            continue
        n_values.update(values.keys())
        vrecs.append(VisitRecord(key, r.row, r.line, when[0], _shift(when[1],
                                 contexts.get(key)), values))

    orecs: dict[str, OutcomeRecord] = {}
    first_outcome: dict[str, RawRow] = {}
    rejected_outcome_row: dict[str, int] = {}
    unknown_events: Counter[str] = Counter()
    for r in outcomes.rows:
        key = _patient_key(r, ocol, contexts)
        if key is None:
            continue
        if key in first_outcome:
            first = first_outcome[key]
            ocol.reject(r, f"second outcome row for patient {key!r} (first at row "
                           f"{first.row}, line {first.line}); one row per patient")
            continue
        first_outcome[key] = r
        when = _parse_when(outcomes, r, ocol)
        event, why = _parse_event(r.cells.get(EVENT_COLUMN))
        if why is not None:
            ocol.reject(r, why)
        if when is None or event is None:
            rejected_outcome_row.setdefault(key, r.row)
            continue
        if event != CENSORED and event not in KNOWN_EVENTS:
            unknown_events[event] += 1
        orecs[key] = OutcomeRecord(key, r.row, r.line, when[0],
                                   _shift(when[1], contexts.get(key)), event)
    for event, n in sorted(unknown_events.items()):
        warnings.append(Issue(outcomes.name, None, None, column=EVENT_COLUMN,
                              reason=f"event {event!r} ({n} rows) is not a known event name "
                                     f"({', '.join(sorted(KNOWN_EVENTS))}); imported as its "
                                     "own event type"))

    # ---- baselines and times
    dated: dict[str, list[dt.date]] = defaultdict(list)
    for v in vrecs:
        if v.date is not None:
            dated[v.key].append(v.date)
    baselines: dict[str, dt.date | None] = {}
    for key in {v.key for v in vrecs} | set(orecs):
        ctx = contexts.get(key)
        if ctx is not None and ctx.baseline_date is not None:
            baselines[key] = ctx.baseline_date
            continue
        candidates = list(dated.get(key, []))
        if ctx is not None and ctx.earliest_date is not None:
            candidates.append(ctx.earliest_date)
        baselines[key] = min(candidates) if candidates else None

    for v in vrecs:
        base = baselines[v.key]
        if v.date is None:
            v.time_years = float(v.time_given)  # type: ignore[arg-type]
        elif base is not None and v.date < base:
            vcol.reject(v, f"date {v.date.isoformat()} (de-identified calendar) is before the "
                           f"patient's baseline date {base.isoformat()}")
        else:
            v.time_years = _years(v.date, base)  # type: ignore[arg-type]

    first_time: dict[str, float] = {}
    for v in vrecs:
        if v.row not in vcol.rejected:
            first_time[v.key] = min(first_time.get(v.key, math.inf), v.time_years)
    outcome_time: dict[str, tuple[float, str, str]] = {}  # key -> (time, event, where)
    for key, o in orecs.items():
        base = baselines.get(key)
        if o.date is None:
            o.time_years = float(o.time_given)  # type: ignore[arg-type]
        elif base is None:
            ocol.reject(o, "the outcome has a date but the patient's visits have only times "
                           "and no baseline date is stored; give 'time' (years since "
                           "baseline) instead")
            rejected_outcome_row.setdefault(key, o.row)
            continue
        else:
            o.time_years = _years(o.date, base)
        if o.time_years < 0:
            ocol.reject(o, f"end of follow-up on {o.date} (de-identified calendar) is before "
                           f"the patient's baseline date {base}")
            rejected_outcome_row.setdefault(key, o.row)
            continue
        if key in first_time and o.time_years < first_time[key] - TIME_EPS:
            ocol.reject(o, f"end of follow-up at {_fmt(o.time_years)} years is before the "
                           f"patient's first visit at {_fmt(first_time[key])} years")
            rejected_outcome_row.setdefault(key, o.row)
            continue
        if key not in all_visit_keys and not (contexts.get(key) and contexts[key].has_records):
            ocol.reject(o, f"unknown patient {key!r}: no rows in {visits.name} and no scans or "
                           "visits stored")
            continue
        outcome_time[key] = (o.time_years, o.event, f"{outcomes.name} row {o.row}")
    for key, ctx in contexts.items():
        # a stored outcome stands unless this file replaces it with an accepted row
        if key not in outcome_time and ctx.outcome is not None:
            base = baselines.get(key)
            t = (_years(ctx.outcome.date, base) if ctx.outcome.date is not None and base
                 else ctx.outcome.time_years)
            outcome_time[key] = (t, ctx.outcome.event, "the stored outcome")

    # ---- duplicates, unknown patients, visits after the end of follow-up
    seen: dict[tuple[str, float], VisitRecord] = {}
    for v in sorted(vrecs, key=lambda v: v.row):
        if v.row in vcol.rejected:
            continue
        slot = (v.key, round(v.time_years / TIME_EPS))
        if slot in seen:
            first = seen[slot]
            vcol.reject(v, f"duplicated visit: patient {v.key!r} at {_fmt(v.time_years)} years "
                           f"is already on row {first.row} (line {first.line})")
            continue
        seen[slot] = v
        if v.key not in outcome_time:
            if v.key in rejected_outcome_row:
                why = (f"the patient's outcome row ({outcomes.name} row "
                       f"{rejected_outcome_row[v.key]}) was rejected")
            else:
                why = f"no row in {outcomes.name} and no outcome stored"
            vcol.reject(v, f"unknown patient {v.key!r}: {why}; every patient needs an end of "
                           "follow-up")
            continue
        t_end, event, where = outcome_time[v.key]
        if v.time_years > t_end + TIME_EPS:
            vcol.reject(v, f"visit at {_fmt(v.time_years)} years is after the end of follow-up "
                           f"at {_fmt(t_end)} years ({event}, {where})")

    # ---- patient-level warnings
    sex: dict[str, str] = {}
    for v in vrecs:
        s = v.values.get("sex")
        if v.row in vcol.rejected or not isinstance(s, str):
            continue
        if v.key in sex and sex[v.key] != s:
            vcol.warn(RawRow(v.row, v.line, {}), f"sex {s!r} differs from {sex[v.key]!r} on an "
                      f"earlier row of patient {v.key!r}; the first is kept", column="sex")
            continue
        sex.setdefault(v.key, s)
    for table, times in ((visits, [v.time_given for v in vrecs]),
                         (outcomes, [o.time_given for o in orecs.values()])):
        given = [t for t in times if t is not None]
        if given and max(given) > LONG_TIME_YEARS:
            warnings.append(Issue(table.name, None, None, column=TIME_COLUMN,
                                  reason=f"times up to {_fmt(max(given))} years: 'time' is in "
                                         "years since baseline; are these days or months?"))

    v_rejected, v_warnings = vcol.finish(n_values)
    o_rejected, o_warnings = ocol.finish(Counter())
    accepted_v = [v for v in vrecs if v.row not in vcol.rejected]
    accepted_o = [o for o in orecs.values() if o.row not in ocol.rejected]
    accepted_v.sort(key=lambda v: (v.key, v.time_years))
    return ValidatedCohort(
        visits_file=visits.name, outcomes_file=outcomes.name,
        visits=accepted_v, outcomes=accepted_o,
        value_columns=[aliases.get(c, (c,))[0] for c in value_cols],
        categorical=categorical, rejected=v_rejected + o_rejected,
        warnings=warnings + v_warnings + o_warnings, sex=sex,
        baselines={k: b for k, b in baselines.items()},
    )
