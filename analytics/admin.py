"""Administration actions, each checked against the actor's role and audited."""

from __future__ import annotations

from typing import Any

from analytics import audit, auth
from analytics.audit import Actor
from analytics.auth import Permission
from analytics.store.db import Store


def audit_trail(store: Store, actor: Actor, limit: int = 500) -> dict[str, Any]:
    """The newest audit records and the chain's verification, for admins only.

    Raises
    ------
    PermissionDeniedError
        If the actor's role may not view the audit trail (the refusal is audited).
    """
    auth.require(actor, Permission.VIEW_AUDIT, store, action="audit_view")
    audit.record(store, actor, "audit_view", detail={"limit": limit})
    report = audit.verify(store)
    return {"records": audit.recent(store, limit), "ok": report.ok,
            "total": report.records, "problems": report.problems}


def users(store: Store, actor: Actor) -> list[dict[str, Any]]:
    auth.require(actor, Permission.MANAGE_USERS, store, action="user_change")
    return auth.list_users(store)


def add_user(store: Store, actor: Actor, username: str, role: str, password: str | None,
             display_name: str | None = None) -> None:
    auth.require(actor, Permission.MANAGE_USERS, store, action="user_add")
    auth.create_user(store, username, role, password, display_name=display_name, actor=actor)
