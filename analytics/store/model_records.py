"""Registered models as the Models page and model administration read and change them:
the active flag and the stored metrics and card (``models`` table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from analytics.store.db import Store
from analytics.store.schema import ModelRecord

__all__ = ["ModelSummary", "model_exists", "model_summary", "set_active_model"]


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
