"""What every use case starts from: who acts, on which store, with which settings.

A use case is a function ``(context, request) -> result``. It first checks the actor's
permission (:func:`authorize`; a refusal is audited and raised) and then runs its work
inside ONE audited step (:func:`audited`): one ``ok`` record written before the work, so
that if the record cannot be written the work never happens, and one ``failed`` record
only when the work raises. The stages it calls (ingest, cohort, features, models) take no
actor and write no audit record.

The command line acts as :data:`analytics.audit.SYSTEM` (an administrator without the
identified view) through :meth:`Context.cli`; the dashboard as the signed-in user.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from analytics import audit
from analytics.audit import SYSTEM, Actor
from analytics.auth import Permission, require
from analytics.config import Settings
from analytics.store.db import Store

__all__ = ["Context", "audited", "authorize", "record_view", "record_views"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Context:
    """Who acts (``actor``), the open ``store``, the site ``settings`` and a ``clock``."""

    actor: Actor
    store: Store
    settings: Settings | None = None
    clock: Callable[[], dt.datetime] = field(default=_utc_now, repr=False)

    @classmethod
    def cli(cls, store: Store, settings: Settings | None = None) -> Context:
        """The command line's context: the system account acts."""
        return cls(actor=SYSTEM, store=store, settings=settings)

    @property
    def username(self) -> str:
        return self.actor.username


def authorize(ctx: Context, permission: Permission, action: str, *,
              patient: str | None = None) -> Actor:
    """The context's actor if its role grants ``permission``.

    Raises
    ------
    PermissionDeniedError
        Otherwise; the refusal is audited as ``action`` with outcome ``denied``.
    """
    return require(ctx.actor, permission, ctx.store, action=action, patient=patient)


@contextlib.contextmanager
def audited(ctx: Context, action: str, *, patient: str | None = None,
            uids: list[str] | None = None, model_version: str | None = None,
            detail: dict[str, Any] | None = None) -> Iterator[None]:
    """The one audited step of a use case (:func:`analytics.audit.audited`).

    Raises
    ------
    AuditError
        If the record cannot be written: the block never runs.
    """
    with audit.audited(ctx.store, ctx.actor, action, patient=patient, uids=uids,
                       model_version=model_version, detail=detail):
        yield


#: the permission each view record needs (default: the pseudonymised view)
_VIEW_PERMISSIONS = {"predict": Permission.PREDICT}


def record_view(ctx: Context, action: str, *, patient: str | None = None,
                model_version: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Audit that the actor is shown something (``view_patient``, ``view_cohort``,
    ``predict``): one record, written before the data is drawn.

    Raises
    ------
    PermissionDeniedError
        If the actor may not view pseudonymised data, or for ``predict`` may not predict
        (refusal audited).
    AuditError
        If the record cannot be written (the page stops before the data renders).
    """
    authorize(ctx, _VIEW_PERMISSIONS.get(action, Permission.VIEW_PSEUDONYMISED), action,
              patient=patient)
    audit.record(ctx.store, ctx.actor, action, patient=patient, model_version=model_version,
                 detail=detail)


def record_views(ctx: Context, views: Sequence[audit.Event]) -> None:
    """Audit several views shown together (a patient and the model's prediction for them)
    as :func:`record_view` does each, with one write for all of them: every view is
    authorised first (a refusal is audited and raised, and nothing is recorded as shown),
    then one record per view is written before any of them is drawn.

    Raises
    ------
    PermissionDeniedError, AuditError
        As :func:`record_view`.
    """
    for v in views:
        authorize(ctx, _VIEW_PERMISSIONS.get(v.action, Permission.VIEW_PSEUDONYMISED),
                  v.action, patient=v.patient)
    audit.record_all(ctx.store, ctx.actor, views)
