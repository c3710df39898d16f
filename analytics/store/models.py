"""Registered models and cached predictions in the store (the artifacts themselves are
files under ``HEPATRACK_HOME/models``, written by :mod:`analytics.models.registry`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, select, tuple_, update

from analytics.store.db import Store
from analytics.store.schema import IdentityMap, ModelRecord, Patient, Prediction

__all__ = ["ModelRow", "ModelSummary", "PredictionRow", "StoredPrediction", "add_model",
           "find_model", "list_models", "model_exists", "model_summary", "prediction_rows",
           "real_id_pseudonyms", "replace_patients_predictions", "replace_predictions",
           "set_active_model"]

#: pseudonyms per ``IN (...)`` query (under SQLite's bound-parameter limit)
_IN_CHUNK = 500


@dataclass(frozen=True)
class ModelRow:
    """One ``models`` row: what the registry knows of a trained model."""

    model_id: str
    kind: str
    event: str
    horizons: list[Any]
    content_sha256: str
    training_data_sha256: str
    artifact_path: str
    features: list[Any]
    training_ranges: dict[str, Any]
    metrics: dict[str, Any]
    card: dict[str, Any]
    active: bool = False
    created_by: str | None = None
    created_at: dt.datetime | None = None

    @classmethod
    def of(cls, r: ModelRecord) -> ModelRow:
        return cls(model_id=r.model_id, kind=r.kind, event=r.event, horizons=r.horizons,
                   content_sha256=r.content_sha256, training_data_sha256=r.training_data_sha256,
                   artifact_path=r.artifact_path, features=r.features,
                   training_ranges=r.training_ranges, metrics=r.metrics, card=r.card,
                   active=bool(r.active), created_by=r.created_by, created_at=r.created_at)


def add_model(store: Store, row: ModelRow, *, activate: bool) -> None:
    """Insert a model's row; with ``activate`` it becomes the only active one (one
    transaction)."""
    with store.session() as s:
        if activate:
            s.execute(update(ModelRecord).values(active=False))
        s.add(ModelRecord(
            model_id=row.model_id, kind=row.kind, event=row.event, horizons=row.horizons,
            content_sha256=row.content_sha256, training_data_sha256=row.training_data_sha256,
            artifact_path=row.artifact_path, features=row.features,
            training_ranges=row.training_ranges, metrics=row.metrics, card=row.card,
            active=activate, created_by=row.created_by))


def find_model(store: Store, model_id: str | None) -> ModelRow | None:
    """The model ``model_id``; without one, the newest active model, else the newest."""
    with store.session() as s:
        q = select(ModelRecord)
        if model_id:
            q = q.where(ModelRecord.model_id == model_id)
        else:
            q = q.where(ModelRecord.active.is_(True)).order_by(ModelRecord.created_at.desc())
        rec = s.execute(q.limit(1)).scalar_one_or_none()
        if rec is None and not model_id:
            rec = s.execute(select(ModelRecord).order_by(ModelRecord.created_at.desc())
                            .limit(1)).scalar_one_or_none()
        return ModelRow.of(rec) if rec is not None else None


def list_models(store: Store) -> list[ModelRow]:
    """Every registered model, newest first."""
    with store.session() as s:
        return [ModelRow.of(r) for r in s.execute(
            select(ModelRecord).order_by(ModelRecord.created_at.desc())).scalars()]


@dataclass(frozen=True)
class ModelSummary:
    """What training stored with one model: its metrics and card, who made it, when."""

    model_id: str
    kind: str
    event: str
    horizons: list[float]
    active: bool
    created_by: str | None
    created_at: str | None  # ISO 8601
    metrics: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)


def model_exists(store: Store, model_id: str) -> bool:
    """Whether ``model_id`` is registered."""
    with store.session() as s:
        return s.execute(select(ModelRecord.id).where(ModelRecord.model_id == model_id)
                         ).scalar() is not None


def set_active_model(store: Store, model_id: str) -> None:
    """Mark ``model_id`` the one active model (every other one inactive), in one
    transaction."""
    with store.session() as s:
        s.execute(update(ModelRecord).values(active=False))
        s.execute(update(ModelRecord).where(ModelRecord.model_id == model_id)
                  .values(active=True))


def model_summary(store: Store, model_id: str) -> ModelSummary | None:
    """The stored summary of ``model_id``, or None when it is not registered."""
    with store.session() as s:
        rec = s.execute(select(ModelRecord).where(ModelRecord.model_id == model_id)).scalar()
        if rec is None:
            return None
        return ModelSummary(
            model_id=rec.model_id, kind=rec.kind, event=rec.event,
            horizons=[float(h) for h in rec.horizons], active=bool(rec.active),
            created_by=rec.created_by,
            created_at=rec.created_at.isoformat() if rec.created_at else None,
            metrics=dict(rec.metrics or {}), card=dict(rec.card or {}))


def real_id_pseudonyms(store: Store) -> list[tuple[str, str]]:
    """``(real patient id, pseudonym)`` of every patient in the identity map."""
    with store.session() as s:
        return [(a, b) for a, b in s.execute(
            select(IdentityMap.real_patient_id, Patient.pseudonym)
            .join(Patient, Patient.id == IdentityMap.patient_id)).all()]


@dataclass(frozen=True)
class StoredPrediction:
    """One cached risk of a patient at a visit time and horizon."""

    time_years: float
    horizon_years: float
    risk: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str | None
    explanation: dict[str, Any] | None


def replace_predictions(store: Store, model_id: str, pseudonym: str,
                        rows: Iterable[StoredPrediction]) -> int:
    """Store a patient's predictions by ``model_id``, replacing those at the same time and
    horizon (one transaction); rows written, 0 for an unknown patient."""
    return replace_patients_predictions(store, model_id, {pseudonym: rows})


def replace_patients_predictions(store: Store, model_id: str,
                                 rows: Mapping[str, Iterable[StoredPrediction]]) -> int:
    """:func:`replace_predictions` of several patients (pseudonym -> rows) in one
    transaction; rows written (none for unknown patients)."""
    with store.session() as s:
        names = sorted(rows)
        pids: dict[str, int] = {}
        for a in range(0, len(names), _IN_CHUNK):
            pids.update((name, pid) for name, pid in s.execute(
                select(Patient.pseudonym, Patient.id).where(
                    Patient.pseudonym.in_(names[a:a + _IN_CHUNK]))))
        latest = {(pids[pseudonym], r.time_years, r.horizon_years): r  # the last one wins
                  for pseudonym, patient_rows in rows.items() if pseudonym in pids
                  for r in patient_rows}
        keys = list(latest)
        new = [{"model_id": model_id, "patient_id": pid, "time_years": t,
                "horizon_years": h, "risk": r.risk, "ci_low": r.ci_low, "ci_high": r.ci_high,
                "reason": r.reason, "explanation": r.explanation}
               for (pid, t, h), r in latest.items()]
        for a in range(0, len(keys), _IN_CHUNK):  # the rows these replace, a chunk at a time
            s.execute(delete(Prediction).where(
                Prediction.model_id == model_id,
                tuple_(Prediction.patient_id, Prediction.time_years,
                       Prediction.horizon_years).in_(keys[a:a + _IN_CHUNK])))
        if new:  # one executemany of the table's insert: the ORM's bulk insert left out
            # each row's None values and so issued one statement per run of rows alike
            s.execute(insert(Prediction.__table__), new)
        return len(new)


class PredictionRow(NamedTuple):
    patient: str
    model_id: str
    time_years: float
    horizon_years: float
    risk: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str | None
    explanation: dict[str, Any] | None
    created_at: dt.datetime


def prediction_rows(store: Store) -> list[PredictionRow]:
    """Every cached prediction with its patient's pseudonym, in a stable order."""
    with store.session() as s:
        rows = s.execute(
            select(Patient.pseudonym, Prediction.model_id, Prediction.time_years,
                   Prediction.horizon_years, Prediction.risk, Prediction.ci_low,
                   Prediction.ci_high, Prediction.reason, Prediction.explanation,
                   Prediction.created_at)
            .join(Patient, Prediction.patient_id == Patient.id)
            .order_by(Patient.pseudonym, Prediction.model_id, Prediction.time_years,
                      Prediction.horizon_years)).all()
    return [PredictionRow(*r) for r in rows]
