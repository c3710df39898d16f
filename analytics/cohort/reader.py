"""Reading cohort CSVs (or DataFrames) into numbered rows, and parsing single cells.

Rows are numbered as users see them: ``row`` is the 1-based data row (header excluded,
blank lines skipped) and ``line`` the physical line where the record starts in the file
(the header is line 1). A file that cannot be read at all (missing, not UTF-8 text, no
header, a required column missing) raises :class:`~analytics.errors.CohortError`; a bad
row is the validator's business.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import numbers
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analytics.errors import CohortError

#: refuse larger cohort files before reading them (a visits table of a million rows is
#: far below this)
MAX_CSV_BYTES = 512 * 1024 * 1024
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "missing", "-", ".",
                            "#n/a", "nr"})
_DELIMITERS = (",", ";", "\t")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_CENSORED_NUMBER = re.compile(r"^([<>]=?)\s*(.+)$")

Source = str | Path | pd.DataFrame


@dataclass
class RawRow:
    row: int
    line: int
    cells: dict[str, Any]


@dataclass
class RawTable:
    """One input table: a display name, normalised column names and numbered rows."""

    name: str
    columns: list[str]
    rows: list[RawRow] = field(default_factory=list)
    decimal_comma: bool = False
    #: rows with the wrong number of fields: (row, line, message)
    malformed: list[tuple[int, int, str]] = field(default_factory=list)

    def where(self, row: int, line: int) -> str:
        return f"{self.name} row {row} (line {line})"


def normalise_column(name: object) -> str:
    """Header cell -> column name: trimmed, lower case, inner spaces as underscores."""
    return re.sub(r"\s+", "_", str(name).strip().lower())


def _check_columns(name: str, raw: Iterable[object]) -> list[str]:
    cols = [normalise_column(c) for c in raw]
    if not cols or all(c == "" for c in cols):
        raise CohortError(f"{name}: no header row; expected column names on line 1")
    seen: dict[str, int] = {}
    for i, c in enumerate(cols, start=1):
        if c == "":
            raise CohortError(f"{name}: header column {i} has no name")
        if c in seen:
            raise CohortError(f"{name}: column {c!r} appears twice in the header "
                              f"(columns {seen[c]} and {i})")
        seen[c] = i
    return cols


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def read_table(source: Source, name: str) -> RawTable:
    """Read a CSV file, or take a DataFrame, as numbered rows of cells.

    Parameters
    ----------
    source
        Path of a UTF-8 CSV (comma, semicolon or tab separated; a semicolon or tab file
        may use decimal commas), or a DataFrame (row ``i`` is data row ``i + 1``, line
        ``i + 2`` as if written with a header).
    name
        Display name used in messages when ``source`` is a DataFrame.

    Raises
    ------
    CohortError
        If the file is missing, too large, not UTF-8 text or has no usable header.
    """
    if isinstance(source, pd.DataFrame):
        cols = _check_columns(name, source.columns)
        table = RawTable(name=name, columns=cols)
        for i, values in enumerate(source.itertuples(index=False, name=None)):
            table.rows.append(RawRow(i + 1, i + 2, dict(zip(cols, values, strict=True))))
        return table

    path = Path(source)
    label = path.name
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CohortError(f"{path}: cannot read ({e.strerror or e})") from e
    if size > MAX_CSV_BYTES:
        raise CohortError(f"{label}: {size} bytes is over the {MAX_CSV_BYTES}-byte limit "
                          "for a cohort CSV")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise CohortError(f"{label}: not UTF-8 text (byte {e.start}, line {line}); "
                          "save the file as UTF-8 CSV") from e
    except OSError as e:
        raise CohortError(f"{path}: cannot read ({e.strerror or e})") from e
    if "\x00" in text:
        raise CohortError(f"{label}: contains NUL bytes; expected a text CSV file")
    first = text.split("\n", 1)[0]
    delimiter = _sniff_delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise CohortError(f"{label}: the file is empty; expected a header row") from None
    except csv.Error as e:
        raise CohortError(f"{label} line 1: unreadable header ({e})") from e
    cols = _check_columns(label, header)
    table = RawTable(name=label, columns=cols, decimal_comma=delimiter != ",")
    row = 0
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            row += 1
            table.malformed.append((row, start, f"unreadable CSV record ({e})"))
            continue
        if not fields or all(f.strip() == "" for f in fields):
            continue  # blank line
        row += 1
        if len(fields) != len(cols):
            table.malformed.append((row, start, f"has {len(fields)} fields, the header has "
                                                f"{len(cols)}"))
            continue
        table.rows.append(RawRow(row, start, dict(zip(cols, fields, strict=True))))
    return table


# --------------------------------------------------------------------------- cells
def is_missing(cell: Any) -> bool:
    """True for an empty cell, a missing-value token (NA, NaN, null...) or a NaN."""
    if cell is None:
        return True
    if isinstance(cell, str):
        return cell.strip().lower() in MISSING_TOKENS
    try:
        return bool(pd.isna(cell))
    except (TypeError, ValueError):
        return False


def parse_number(cell: Any, *, decimal_comma: bool = False) -> tuple[float, str | None]:
    """A numeric cell as a finite float, plus ``"<"``/``">"`` for a censored lab value.

    ``"<0.2"`` (below the detection limit) gives ``(0.2, "<")``: the bound is imported
    and the caller warns.

    Raises
    ------
    ValueError
        With a message saying what was expected, if the cell is not a finite number.
    """
    if isinstance(cell, bool):
        raise ValueError("expected a number, got a true/false value")
    if isinstance(cell, numbers.Real):
        value = float(cell)
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value, None
    text = str(cell).strip()
    censor = None
    m = _CENSORED_NUMBER.match(text)
    if m:
        censor, text = m.group(1)[0], m.group(2).strip()
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    if not _NUMBER.match(text):
        raise ValueError("expected a number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value, censor


def parse_date(cell: Any) -> dt.date:
    """An ISO 8601 date (``YYYY-MM-DD``, ``YYYYMMDD``, or a datetime whose date is used).

    Raises
    ------
    ValueError
        If the cell is not an ISO date.
    """
    if isinstance(cell, pd.Timestamp):
        return cell.date()
    if isinstance(cell, dt.datetime):
        return cell.date()
    if isinstance(cell, dt.date):
        return cell
    text = str(cell).strip()
    try:
        if len(text) <= 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace(" ", "T", 1)).date()
    except ValueError:
        raise ValueError("expected an ISO date YYYY-MM-DD") from None


def cell_text(cell: Any) -> str:
    """How a cell is quoted back to the user in a message."""
    text = str(cell).strip() if isinstance(cell, str) else repr(cell)
    return text if len(text) <= 40 else text[:37] + "..."
