"""The order of patients in a training set: the same in every home holding the same cohort.

Cross-validation deals patients into folds, and the bootstrap draws them, by their
position in the landmark rows. Ordered by pseudonym, that position differed between two
homes built from the same cohort: a pseudonym is a keyed hash of the real patient ID
with the home's own secret (:mod:`analytics.ingest.deid`), so each home put the same
patients into other folds and reported other figures (the demo's share of the imaging
gap moved between 26 % and 31 % from one build to the next).

The key here is a SHA-256 of what the patient's record says and every home stores
identically: the end of follow-up (years since the patient's baseline, which the
per-patient date shift keeps exactly) and its event, and each visit's time and lab
values (the known lab columns, :data:`analytics.cohort.columns.LAB_COLUMNS`), written
with 9 significant digits. It reads neither the pseudonym, nor the real ID, nor a date.
Two patients whose records are identical tie and are ordered by pseudonym: they are
interchangeable, so every metric is the same whichever comes first.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from analytics.cohort.columns import LAB_COLUMNS

__all__ = ["patient_order_keys"]


def _text(values: pd.Series) -> pd.Series:
    """Numbers as canonical text (9 significant digits; empty when missing)."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    return pd.Series(["" if np.isnan(v) else f"{v:.9g}" for v in x], index=values.index)


def patient_order_keys(visits: pd.DataFrame, outcomes: pd.DataFrame) -> pd.Series:
    """A key per patient of ``outcomes`` that orders them the same way in every home.

    Parameters
    ----------
    visits
        Cohort visits (``patient``, ``time`` in years since baseline, lab columns).
    outcomes
        One row per patient: ``patient``, ``duration`` (years), ``event``.

    Returns
    -------
    pandas.Series
        Hex SHA-256 strings indexed by patient (the patients of ``outcomes``).
    """
    labs = [c for c in LAB_COLUMNS if c in visits.columns]
    v = visits.sort_values(["patient", "time"], kind="stable")
    rows = _text(v["time"])
    for c in labs:
        rows = rows + "," + _text(v[c])
    record = rows.groupby(v["patient"].to_numpy(), sort=False).agg(";".join)
    ends = _text(outcomes["duration"]) + "|" + outcomes["event"].astype(str)
    ends.index = outcomes["patient"].to_numpy()
    text = ends + "#" + record.reindex(ends.index).fillna("")
    return pd.Series([hashlib.sha256(t.encode()).hexdigest() for t in text],
                     index=text.index, dtype=object)
