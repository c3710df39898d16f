"""A fingerprint of the data the dashboard reads, to key its caches on.

The dashboard caches the cohort table, the patient list and every patient's risk; they
must be rebuilt when the data changes, whoever changed it (this server, another worker,
``hepatrack ingest`` or ``import-cohort`` in a shell), and only then. The fingerprint
aggregates each watched table in one cheap query: the row count, the sum of every
numeric column, and for every other column (text, JSON, dates) its length and how often
each digit occurs in it, weighted by the row id, so an insert, a delete and almost
every in-place update (a new lab value, status, event or active flag) changes it. A
change that keeps all of these (digits permuted within one value) is caught by the
caches' time-to-live and the sidebar's refresh button.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Boolean, Float, Integer, Numeric, String, cast, func, literal, select

from analytics.store.db import Store
from analytics.store.schema import (
    Feature,
    FeatureRun,
    IdentityHold,
    IdentityMap,
    Mask,
    MaskRejection,
    ModelRecord,
    Outcome,
    Patient,
    Series,
    Study,
    Visit,
)

__all__ = ["data_version"]

#: what the cohort table, the patient list, the timeline and the risk columns read
WATCHED = (Patient, IdentityMap, IdentityHold, Study, Series, Mask, MaskRejection, Feature,
           FeatureRun, Visit, Outcome, ModelRecord)
#: large columns that never change once written (model artifacts' metadata)
_SKIPPED = {"models": {"metrics", "card", "training_ranges", "features"}}


#: one weight per digit 0-9 (distinct primes), so a changed digit changes the signature
_DIGIT_WEIGHTS = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)


def _digit_signature(text):
    """SQL: the weighted count of each digit in ``text`` (portable: length and replace)."""
    return sum((func.length(text) - func.length(func.replace(text, str(d), ""))) * w
               for d, w in enumerate(_DIGIT_WEIGHTS))


def _aggregates(table) -> list:
    pk = list(table.primary_key.columns)
    row_id = pk[0] if len(pk) == 1 and isinstance(pk[0].type, Integer) else literal(1)
    out = [func.count()]
    for col in table.columns:
        if col.name in _SKIPPED.get(table.name, ()):
            continue
        if isinstance(col.type, Boolean):
            out.append(func.sum(row_id * cast(col, Integer)))
        elif isinstance(col.type, Integer | Float | Numeric):
            out.append(func.sum(col))
        else:
            text = func.coalesce(cast(col, String), "")
            out.append(func.sum(func.length(text)))
            out.append(func.sum(row_id * _digit_signature(text)))
    return out


def data_version(store: Store) -> str:
    """A short hex fingerprint that changes when the watched tables' data changes.

    Parameters
    ----------
    store
        The open store.

    Returns
    -------
    str
        16 hex digits; equal fingerprints mean (almost surely) unchanged data.
    """
    h = hashlib.sha256()
    with store.session() as s:
        for model in WATCHED:
            row = s.execute(select(*_aggregates(model.__table__))).one()
            h.update(repr((model.__tablename__, tuple(row))).encode())
    return h.hexdigest()[:16]
