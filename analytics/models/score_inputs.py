"""Reading the inputs of clinical scores from a visits DataFrame.

Every reader returns a float Series aligned with the frame's index, with NaN where the
input is absent, missing or cannot be what the column's name says (a non-positive
concentration, a liver stiffness outside the device's measuring range, a diabetes code
that is neither yes nor no). A score computed from them is then NaN on that row instead
of a number built from a wrong or made-up input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["binary", "flag", "male", "positive", "within"]

_TRUE = frozenset({"1", "1.0", "true", "yes", "y"})
_FALSE = frozenset({"0", "0.0", "false", "no", "n"})
_MALE = frozenset({"m", "male"})
_FEMALE = frozenset({"f", "female"})


def _absent(df: pd.DataFrame) -> pd.Series:
    return pd.Series(np.nan, index=df.index, dtype="float64")


def _codes(df: pd.DataFrame, name: str, one: frozenset[str], zero: frozenset[str]
           ) -> pd.Series:
    """1.0 for a spelling in ``one``, 0.0 for one in ``zero``, NaN for anything else."""
    if name not in df.columns:
        return _absent(df)
    text = df[name].map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
    out = _absent(df)
    return out.mask(text.isin(one), 1.0).mask(text.isin(zero), 0.0)


def positive(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` as float with non-positive values as NaN; all NaN when absent."""
    if name not in df.columns:
        return _absent(df)
    values = pd.to_numeric(df[name], errors="coerce").astype("float64")
    return values.where(values > 0)


def within(df: pd.DataFrame, name: str, low: float, high: float) -> pd.Series:
    """Column ``name`` as float, NaN outside ``[low, high]`` (bounds included)."""
    values = positive(df, name)
    return values.where((values >= low) & (values <= high))


def binary(df: pd.DataFrame, name: str) -> pd.Series:
    """A yes/no column as 1.0/0.0 (1, true, yes, y / 0, false, no, n); NaN otherwise.

    Missing stays missing: a score that needs the answer is not computed on a guess.
    """
    return _codes(df, name, _TRUE, _FALSE)


def male(df: pd.DataFrame, name: str = "sex") -> pd.Series:
    """1.0 for male (``M``, ``male``), 0.0 for female (``F``, ``female``), NaN otherwise.

    Scores fitted on male/female only have no coefficient for another or unknown sex.
    """
    return _codes(df, name, _MALE, _FEMALE)


def flag(df: pd.DataFrame, name: str) -> pd.Series:
    """Boolean modifier column where missing or absent means False (e.g. ``dialysis``)."""
    if name not in df.columns:
        return pd.Series(False, index=df.index)
    return df[name].map(lambda v: str(v).strip().lower() in _TRUE if pd.notna(v) else False)
