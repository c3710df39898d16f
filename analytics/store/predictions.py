"""Cached predictions (``predictions`` table): one row per model, patient, visit time and
horizon, replaced when the same trajectory is predicted again."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select

from analytics.store.db import Store
from analytics.store.schema import Patient, Prediction

__all__ = ["replace_predictions"]


def replace_predictions(store: Store, pseudonym: str, model_id: str,
                        rows: Iterable[dict[str, Any]]) -> int:
    """Store trajectory rows of ``pseudonym`` under ``model_id`` (replacing earlier rows of
    the same visit time and horizon); returns the rows written, 0 for an unknown patient.

    Each row has ``time`` and ``horizon`` (years), ``risk``, ``ci`` (``[low, high]`` or
    None), ``reason`` and ``explanation`` (JSON-ready).
    """
    with store.session() as s:
        pid = s.execute(select(Patient.id).where(Patient.pseudonym == pseudonym)
                        ).scalar_one_or_none()
        if pid is None:
            return 0
        n = 0
        for r in rows:
            s.execute(delete(Prediction).where(
                Prediction.model_id == model_id, Prediction.patient_id == pid,
                Prediction.time_years == r["time"], Prediction.horizon_years == r["horizon"]))
            ci = r.get("ci") or [None, None]
            s.add(Prediction(model_id=model_id, patient_id=pid, time_years=r["time"],
                             horizon_years=r["horizon"], risk=r["risk"], ci_low=ci[0],
                             ci_high=ci[1], reason=r.get("reason"),
                             explanation=r["explanation"]))
            n += 1
        return n
