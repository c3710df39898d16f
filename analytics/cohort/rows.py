"""Per-row checks of a cohort import: patient ids, times, values, events.

Each function either returns the parsed item or records why the row is rejected (or
what to warn about) in a :class:`Collector`, which keeps a row's warnings until its fate
is known. The rules are listed in :mod:`analytics.cohort.validate`.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from analytics.cohort.columns import (
    CENSORING_SYNONYMS,
    CODED_COLUMNS,
    DATE_COLUMN,
    EVENT_NAME,
    ID_COLUMN,
    IMPORTED_IMAGING_COLUMNS,
    LAB_COLUMNS,
    TIME_COLUMN,
    ColumnDef,
    accepted_codes,
    code_key,
    normalise_event,
    read_code,
)
from analytics.cohort.reader import (
    RawRow,
    RawTable,
    cell_text,
    is_missing,
    parse_date,
    parse_number,
)
from analytics.cohort.records import Issue, OutcomeRecord, PatientContext, VisitRecord
from analytics.cohort_types import CENSORED
from analytics.names import bad_character

MAX_PSEUDONYM = 64
#: per column, at most this many row-level plausibility warnings; the rest are counted
MAX_ROW_WARNINGS = 10


def fmt(x: float) -> str:
    return f"{x:.6g}"


def plausibility(col: ColumnDef, value: float, source: str = ""
                  ) -> tuple[str, str | None] | None:
    """(message, unit hint) when ``value`` is outside the plausible range, else None."""
    lo, hi = col.plausible
    if lo <= value <= hi:
        return None
    side = "below" if value < lo else "above"
    msg = (f"{col.name} = {fmt(value)}{source} is {side} the plausible range "
           f"{fmt(lo)}-{fmt(hi)} {col.unit}")
    for alt in col.alt_units:
        if alt.factor is not None:
            converted = value / alt.factor
            if lo <= converted <= hi:
                return (f"{msg}; looks like {alt.unit} ({fmt(value)} {alt.unit} = "
                        f"{converted:.3g} {col.unit}); imported as given", alt.unit)
        elif alt.low is not None and alt.high is not None and alt.low <= value <= alt.high:
            note = f" ({alt.note})" if alt.note else ""
            return f"{msg}; looks like {alt.unit}{note}; imported as given", alt.unit
    return f"{msg}; check the value and unit ({col.source}); imported as given", None


class Collector:
    """Per-row rejections and warnings, kept until the row's fate is known."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.rejected: dict[int, Issue] = {}
        self.row_warnings: dict[int, list[Issue]] = defaultdict(list)
        self.plausibility: dict[str, list[tuple[int, Issue, str | None]]] = defaultdict(list)
        self.unknown_codes: dict[str, list[tuple[int, Issue, str]]] = defaultdict(list)

    def reject(self, r: RawRow | VisitRecord | OutcomeRecord, reason: str) -> None:
        if r.row not in self.rejected:
            self.rejected[r.row] = Issue(self.file, r.row, r.line, reason)

    def warn(self, r: RawRow, reason: str, column: str | None = None) -> None:
        self.row_warnings[r.row].append(Issue(self.file, r.row, r.line, reason, column))

    def warn_value(self, r: RawRow, column: str, reason: str, hint: str | None) -> None:
        self.plausibility[column].append(
            (r.row, Issue(self.file, r.row, r.line, reason, column), hint))

    def warn_code(self, r: RawRow, column: str, reason: str, value: str) -> None:
        """An unknown code left empty; ``value`` is its compared form."""
        self.unknown_codes[column].append(
            (r.row, Issue(self.file, r.row, r.line, reason, column), value))

    def _code_warnings(self) -> list[Issue]:
        """Each column's first unknown codes row by row, then one line for the rest."""
        warnings: list[Issue] = []
        for column, items in self.unknown_codes.items():
            items = [it for it in items if it[0] not in self.rejected]
            warnings += [issue for _, issue, _ in items[:MAX_ROW_WARNINGS]]
            if len(items) > MAX_ROW_WARNINGS:
                seen = Counter(v for _, _, v in items)
                values = ", ".join(f"{v!r} ({n})" for v, n in seen.most_common(5))
                warnings.append(Issue(
                    self.file, None, None, column=column,
                    reason=f"column {column}: {len(items)} values are unknown codes and were "
                           f"left empty ({values}); expected {accepted_codes(column)}"))
        return warnings

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
        warnings += self._code_warnings()
        warnings.sort(key=lambda i: (i.row is not None, i.row or 0))
        return rejected, warnings


def parse_when(table: RawTable, r: RawRow, col: Collector
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
            col.reject(r, f"time {fmt(t)}: negative; expected years since baseline >= 0")
            return None
        return t, None
    col.reject(r, "no time or date given")
    return None


def patient_key(cell: Any) -> str | None:
    """The patient id of a cell as NFC text without surrounding spaces (None when missing);
    12.0 from a DataFrame is "12"."""
    if is_missing(cell):
        return None
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return unicodedata.normalize("NFC", str(cell)).strip(" ")


def row_patient_key(r: RawRow, col: Collector, contexts: Mapping[str, PatientContext]
                 ) -> str | None:
    key = patient_key(r.cells.get(ID_COLUMN))
    if key is None:
        col.reject(r, "patient_id is empty")
        return None
    bad = bad_character(key)
    if bad:  # two IDs that look alike on screen would be two patients
        col.reject(r, f"patient_id {cell_text(key)!r}: control or invisible character {bad}; "
                      "expected visible characters only")
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


def generic_types(table: RawTable, columns: list[str]) -> tuple[set[str], list[Issue]]:
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


def parse_values(table: RawTable, r: RawRow, value_cols: list[str], categorical: set[str],
                  col: Collector, aliases: Mapping[str, tuple[str, float]],
                  sex_coding: Mapping[str, str] | None = None
                  ) -> dict[str, float | str] | None:
    """A visit row's values, or None after rejecting the row (an unparseable or impossible
    number); an unknown code only leaves its value empty, with a warning."""
    values: dict[str, float | str] = {}
    errors: list[str] = []
    for c in value_cols:
        cell = r.cells[c]
        if is_missing(cell):
            continue
        if c in CODED_COLUMNS:
            code, unknown = read_code(c, cell, sex_coding)
            if unknown is not None:  # the one value is lost, never the row
                col.warn_code(r, c, unknown, code_key(cell))
            elif code is not None:
                values[c] = code  # type: ignore[assignment]
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
        source = "" if target == c else f" (from {c} = {fmt(value)})"
        raw, value = value, value / factor
        spec = LAB_COLUMNS.get(target) or IMPORTED_IMAGING_COLUMNS.get(target)
        if spec is not None:
            if value < spec.reject_below or (spec.positive and value <= spec.reject_below):
                bound = (f"> {fmt(spec.reject_below)}" if spec.positive
                         else f">= {fmt(spec.reject_below)}")
                unit = f" {spec.unit}" if target == c else ""
                errors.append(f"{c} {fmt(raw)}: impossible; expected {bound}{unit}")
                continue
            if spec.reject_above is not None and value > spec.reject_above:
                errors.append(f"{c} {fmt(raw)}: impossible; expected <= "
                              f"{fmt(spec.reject_above)} {spec.unit}")
                continue
            found = plausibility(spec, value, source)
            if found is not None:
                col.warn_value(r, target, found[0], found[1])
        if censor is not None:
            col.warn(r, f"{c} {cell_text(cell)!r}: a censored value; the bound {fmt(raw)} "
                        "is imported", column=c)
        values[target] = value
    if errors:
        col.reject(r, "; ".join(errors))
        return None
    return values


def parse_event(cell: Any) -> tuple[str | None, str | None]:
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
