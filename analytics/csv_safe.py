"""CSV that a spreadsheet opens as data: formula cells neutralised (OWASP "CSV injection").

Every CSV the engine writes goes through :func:`write_csv`. A text cell (or column name)
that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be run as a
formula by Excel, LibreOffice or Sheets (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``); it
gets a leading ``'`` so it shows as the text it is. Numbers are left alone: a numeric
column's ``-1.5`` stays ``-1.5``. Cells holding a line break are quoted, so a carriage
return inside a cell cannot start a new row whose first cell is a formula.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

__all__ = ["FORMULA_STARTS", "neutralise_cell", "neutralise_formulas", "write_csv"]

#: first characters that make a spreadsheet read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text starting like a formula, else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells and column names cannot run as formulas.

    Only text is changed: numeric, boolean and datetime columns, and numbers inside
    mixed columns, are kept as they are.
    """
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
                or isinstance(s.dtype, pd.CategoricalDtype)):
            out[col] = s.astype(object).map(neutralise_cell)
    out.columns = [neutralise_cell(c) for c in out.columns]
    return out


def write_csv(df: pd.DataFrame, path_or_buf: str | os.PathLike[str] | Any = None,
              **to_csv: Any) -> str | None:
    """``df.to_csv(path_or_buf, **to_csv)`` after :func:`neutralise_formulas`.

    Parameters
    ----------
    df
        The table to write.
    path_or_buf
        File path or buffer; None returns the CSV text (as ``DataFrame.to_csv``).
    **to_csv
        Passed on to ``DataFrame.to_csv`` (``index``, ``date_format`` …). Rows end in
        CRLF (RFC 4180) unless ``lineterminator`` says otherwise.
    """
    # with a CRLF terminator the csv module quotes any cell holding a CR or LF; with "\n"
    # alone it leaves a bare CR unquoted, which a spreadsheet reads as a new row
    to_csv.setdefault("lineterminator", "\r\n")
    return neutralise_formulas(df).to_csv(path_or_buf, **to_csv)
