"""Keep each patient's current risk in the store whenever a model's cohort risk is
computed, so the cohort list can sort, filter and page by risk in SQL.

Written by training (the new model, every horizon), ``predict --all`` (its horizon) and
the dashboard's cohort risk (the horizon shown): each time the whole set of the model
and horizon, in one transaction (``analytics.store.current_risk``). After an upload, the
patients of its new scans alone, at every horizon (:func:`record_patients_risk`, from the
predict use case asked to).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from analytics.models.scoring import resolve_horizon
from analytics.store.current_risk import (
    RiskRow,
    replace_current_risk,
    replace_patients_current_risk,
)
from analytics.store.version import data_version as store_data_version
from analytics.usecases.overview import cohort_risk

if TYPE_CHECKING:
    from analytics.models.registry import RegisteredModel
    from analytics.store.db import Store

__all__ = ["record_cohort_risk", "record_patients_risk", "record_risk_frame"]


def _rows(risk: pd.DataFrame) -> list[RiskRow]:
    dates = pd.to_datetime(risk["risk_date"])
    return [RiskRow(pseudonym=str(p), risk=r, previous_risk=pr, risk_time_years=t,
                    as_of=None if pd.isna(d) else d.date(),
                    # a reason only where there is no risk (NaN: not assessable)
                    reason=why if r != r and isinstance(why, str) else None)
            for p, r, pr, t, d, why in zip(
                risk["pseudonym"], risk["risk"].astype(float), risk["previous_risk"].astype(float),
                risk["risk_time"].astype(float), dates, risk["reason"], strict=True)]


def record_risk_frame(store: Store, model_id: str, horizon: float, risk: pd.DataFrame,
                      *, data_version: str | None = None) -> int:
    """Store a computed cohort risk (:func:`analytics.usecases.overview.cohort_risk`
    output, stored dates) as the current risk of ``model_id`` at ``horizon``.

    Returns
    -------
    int
        Patients written.
    """
    return replace_current_risk(store, model_id, float(horizon), _rows(risk),
                                data_version=data_version)


def record_cohort_risk(store: Store, model: RegisteredModel, visits: pd.DataFrame,
                       horizons: list[float] | None = None) -> int:
    """Score every patient's latest visit with ``model`` at each of ``horizons`` (default
    every horizon of the model) and store it as the model's current risk.

    Parameters
    ----------
    store
        The open store.
    model
        A registered model.
    visits
        ``CohortTable.visits`` of the whole cohort.
    horizons
        Years; each one the model was trained for.

    Returns
    -------
    int
        Rows written (patients times horizons).

    Raises
    ------
    ModelError
        If a horizon is not one the model was trained for.
    """
    version = store_data_version(store)
    return sum(replace_current_risk(store, model.model_id, h, rows, data_version=version)
               for h, rows in _latest_risk(model, visits, horizons).items())


def _latest_risk(model: RegisteredModel, visits: pd.DataFrame,
                 horizons: list[float] | None = None) -> dict[float, list[RiskRow]]:
    """Each patient's latest-visit risk per horizon (default every one of the model)."""
    out = {}
    for h in horizons if horizons is not None else model.horizons:
        h = resolve_horizon(model.model, h)
        out[h] = _rows(cohort_risk(model, visits, h, intervals=False))
    return out


def record_patients_risk(store: Store, model: RegisteredModel, visits: pd.DataFrame) -> int:
    """:func:`record_cohort_risk` at every horizon for the patients of ``visits`` only
    (``build_cohort(patients=...)``; the other patients' rows stay), every horizon in one
    transaction: a few patients after their new scans (``PredictRequest(record_current=
    True)``). Returns the rows written; raises ``StoreError`` for a patient not in the
    store or a model not registered."""
    version = store_data_version(store)
    # one transaction: the Cohort page never sees half of the update
    return replace_patients_current_risk(store, model.model_id, _latest_risk(model, visits),
                                         data_version=version)
