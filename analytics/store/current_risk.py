"""Each patient's current risk per model and horizon, kept in the store.

The cohort list sorts, filters and pages by the active model's current risk in SQL
(:mod:`analytics.store.patient_list`), so the risk must be in a table: ``current_risk``,
one row per model, horizon and patient. The rows of one model and horizon are replaced
whole, in one transaction, whenever that model's cohort risk is computed (training,
``predict --all``, the dashboard's cohort risk: ``analytics.usecases.current_risk``):
a reader sees either the old set or the new one, never a mix. Rows of models that are
no longer registered are dropped at the same time. After an upload, the patients of
the new scans alone are scored again and their rows replaced (the Ingest page), so the
list agrees with the risk the page shows before the whole set is computed again.

A model's rows are only ever read for that model (the query names the model and the
horizon), so a newly trained model shows no risk until its own rows are written, never
the previous model's. The table is not a watched table of the data version
(:mod:`analytics.store.version`): writing it changes no cached cohort data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select

from analytics.errors import StoreError
from analytics.store.schema import CurrentRisk, ModelRecord, Patient

if TYPE_CHECKING:
    from analytics.store.db import Store

__all__ = ["RiskRow", "read_current_risk", "replace_current_risk",
           "replace_patients_current_risk"]

_CHUNK = 10_000


@dataclass(frozen=True)
class RiskRow:
    """One patient's current risk (fractions; ``as_of`` the stored, shifted date)."""

    pseudonym: str
    risk: float | None
    previous_risk: float | None = None
    risk_time_years: float | None = None
    as_of: dt.date | None = None
    reason: str | None = None


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def replace_current_risk(store: Store, model_id: str, horizon_years: float,
                         rows: Iterable[RiskRow], *, data_version: str | None = None) -> int:
    """Replace the current risk of ``model_id`` at ``horizon_years`` by ``rows``, in one
    transaction (rows of unregistered models are dropped in it too).

    Parameters
    ----------
    store
        The open store.
    model_id
        A registered model.
    horizon_years
        The horizon the risks are for (years).
    rows
        One per patient; NaN risks are stored as unknown (``NULL``).
    data_version
        The store's data version the risks were computed from.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    StoreError
        If the model is not registered or a row names a patient not in the store.
    """
    return _write(store, model_id, {float(horizon_years): list(rows)}, data_version,
                  whole=True)


def replace_patients_current_risk(store: Store, model_id: str,
                                  rows: dict[float, Iterable[RiskRow]], *,
                                  data_version: str | None = None) -> int:
    """Replace the current risk of the patients of ``rows`` only, at each of its horizons
    (years -> rows; the other patients' rows stay), in one transaction: a few patients
    scored again after their new scans. Tagged with ``data_version``, a set then holds
    two versions until a reader writes it whole again (:func:`current_risk_version`).

    Raises as :func:`replace_current_risk`.

    Returns
    -------
    int
        Rows written.
    """
    return _write(store, model_id, {float(h): list(r) for h, r in rows.items()},
                  data_version, whole=False)


def _write(store: Store, model_id: str, sets: dict[float, list[RiskRow]],
           data_version: str | None, *, whole: bool) -> int:
    """Per horizon, delete the set (``whole``) or its rows' patients' part, insert the
    rows; one transaction."""
    with store.session() as s:
        # writers of one model's risk take turns (two servers computing it at once would
        # both delete, then both insert the same keys); SQLite has one writer already
        if s.execute(select(ModelRecord.id).where(ModelRecord.model_id == model_id)
                     .with_for_update()).scalar() is None:
            raise StoreError(f"current risk: model {model_id!r} is not registered")
        names = sorted({r.pseudonym for rows in sets.values() for r in rows})
        ids: dict[str, int] = {}
        for a in range(0, len(names), _CHUNK):
            ids |= dict(s.execute(select(Patient.pseudonym, Patient.id)
                                  .where(Patient.pseudonym.in_(names[a:a + _CHUNK]))).all())
        unknown = [n for n in names if n not in ids]
        if unknown:
            raise StoreError(f"current risk of model {model_id}: patient {unknown[0]} is not "
                             f"in the store ({len(unknown)} unknown)")
        s.execute(delete(CurrentRisk).where(
            CurrentRisk.model_id.not_in(select(ModelRecord.model_id))))
        now = dt.datetime.now(dt.UTC)
        for horizon_years, rows in sets.items():
            mine = (CurrentRisk.model_id == model_id, CurrentRisk.horizon_years == horizon_years)
            if whole:
                s.execute(delete(CurrentRisk).where(*mine))
            else:
                patients = sorted({ids[r.pseudonym] for r in rows})
                for a in range(0, len(patients), _CHUNK):
                    s.execute(delete(CurrentRisk).where(
                        *mine, CurrentRisk.patient_id.in_(patients[a:a + _CHUNK])))
            values = [{"model_id": model_id, "horizon_years": horizon_years,
                       "patient_id": ids[r.pseudonym], "risk": _number(r.risk),
                       "previous_risk": _number(r.previous_risk),
                       "risk_time_years": _number(r.risk_time_years), "as_of": r.as_of,
                       "reason": r.reason, "data_version": data_version, "computed_at": now}
                      for r in rows]
            for a in range(0, len(values), _CHUNK):
                s.execute(insert(CurrentRisk), values[a:a + _CHUNK])
    return sum(len(rows) for rows in sets.values())


def read_current_risk(store: Store, model_id: str, horizon_years: float
                      ) -> dict[str, RiskRow]:
    """The stored current risk of ``model_id`` at ``horizon_years``, by pseudonym
    (empty when none was written for this model and horizon)."""
    with store.session() as s:
        got = s.execute(
            select(Patient.pseudonym, CurrentRisk.risk, CurrentRisk.previous_risk,
                   CurrentRisk.risk_time_years, CurrentRisk.as_of, CurrentRisk.reason)
            .join(Patient, Patient.id == CurrentRisk.patient_id)
            .where(CurrentRisk.model_id == model_id,
                   CurrentRisk.horizon_years == float(horizon_years))).all()
    return {r[0]: RiskRow(*r) for r in got}


def current_risk_version(store: Store, model_id: str, horizon_years: float) -> str | None:
    """The data version every stored current risk of ``model_id`` at ``horizon_years`` was
    computed from, or ``None`` when none is stored or the rows disagree (a reader then
    writes the set again)."""
    with store.session() as s:
        got = s.execute(
            select(func.min(CurrentRisk.data_version), func.max(CurrentRisk.data_version),
                   func.count())
            .where(CurrentRisk.model_id == model_id,
                   CurrentRisk.horizon_years == float(horizon_years))).one()
    low, high, n = got
    return low if n and low is not None and low == high else None
