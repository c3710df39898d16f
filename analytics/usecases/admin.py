"""Administration actions, each checked against the actor's role and audited."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict
from typing import Any

from sqlalchemy.engine import make_url

from analytics import audit, auth
from analytics.audit import Actor
from analytics.auth import Permission
from analytics.config import Settings
from analytics.errors import ConfigError
from analytics.features import radiomics_configs
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
    anchor = audit.read_anchor(store)
    return {"records": audit.recent(store, limit), "ok": report.ok,
            "total": report.records, "problems": report.problems,
            "anchor": {"seq": anchor[0], "hash": anchor[1]} if anchor else None}


def users(store: Store, actor: Actor) -> list[dict[str, Any]]:
    auth.require(actor, Permission.MANAGE_USERS, store, action="user_change")
    return auth.list_users(store)


def add_user(store: Store, actor: Actor, username: str, role: str, password: str | None,
             display_name: str | None = None) -> None:
    auth.require(actor, Permission.MANAGE_USERS, store, action="user_add")
    auth.create_user(store, username, role, password, display_name=display_name, actor=actor)


#: settings an admin may change from the dashboard, with their type and allowed range
EDITABLE_SETTINGS: dict[str, tuple[type, tuple[float, float] | None]] = {
    "session_timeout_min": (int, (5, 12 * 60)),
    "deidentify": (bool, None),
    "radiomics_config": (str, None),  # a name in analytics.features.radiomics_configs
}


def settings_view(settings: Settings, actor: Actor, store: Store) -> dict[str, Any]:
    """The settings in force, without credentials (admins only), and the segmentation
    engine a feature run would use on CT and MR (``segmentation``)."""
    from analytics.features.totalseg import engine_summary

    auth.require(actor, Permission.CHANGE_SETTINGS, store, action="settings_change")
    return {
        "home": str(settings.home),
        "database": make_url(settings.database_url).render_as_string(hide_password=True),
        "deidentify": settings.deidentify,
        "session_timeout_min": settings.session_timeout_min,
        "radiomics_config": settings.radiomics_config,
        "radiomics_configs": {c.name: c.description
                              for c in radiomics_configs.CONFIGS.values()},
        "dask_scheduler": settings.dask_scheduler,
        "pacs": [{"name": p.name, "url": p.url,
                  "auth": "bearer" if p.token else "basic" if p.username else "none"}
                 for p in settings.pacs],
        "limits": asdict(settings.limits),
        # which engine feature extraction uses for organs delivered without a mask
        "segmentation": engine_summary("auto"),
    }


def change_setting(store: Store, actor: Actor, settings: Settings, key: str,
                   value: object) -> None:
    """Write one setting to ``HEPATRACK_HOME/config.toml`` (atomically) and audit it.

    Raises
    ------
    PermissionDeniedError
        If the actor is not an admin (refusal audited).
    ConfigError
        Unknown key or a value of the wrong type or out of range.
    AuditError
        If the change cannot be audited; then nothing is written.
    """
    auth.require(actor, Permission.CHANGE_SETTINGS, store, action="settings_change")
    if key not in EDITABLE_SETTINGS:
        raise ConfigError(f"setting {key!r}: not editable here; expected one of "
                          f"{sorted(EDITABLE_SETTINGS)}")
    kind, bounds = EDITABLE_SETTINGS[key]
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"setting {key}: expected true or false, got {value!r}")
    if kind is str and value not in radiomics_configs.CONFIGS:
        raise ConfigError(f"setting {key}: {value!r} is not a radiomics configuration; "
                          f"expected one of: {', '.join(radiomics_configs.names())}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"setting {key}: expected a whole number, got {value!r}")
        if bounds and not bounds[0] <= value <= bounds[1]:
            raise ConfigError(f"setting {key}: expected {bounds[0]:g} to {bounds[1]:g}, "
                              f"got {value}")
    path = settings.home / "config.toml"
    try:
        current = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix it by hand first") from e
    old = current.get(key)
    current[key] = value
    audit.record(store, actor, "settings_change",
                 detail={"key": key, "old": _short(old), "new": _short(value)})
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(dumps_toml(current), encoding="utf-8")
    os.replace(tmp, path)


def _short(v: object) -> object:
    return v if isinstance(v, bool | int | float) or v is None else str(v)[:100]


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list) and all(not isinstance(x, dict) for x in v):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"config.toml: cannot write a value of type {type(v).__name__}")


def dumps_toml(doc: dict[str, Any]) -> str:
    """Serialise the subset of TOML that config.toml uses (scalars, tables, table arrays)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict) and not (isinstance(v, list) and v
                                                 and isinstance(v[0], dict))]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]", *(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items())]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines += ["", f"[[{k}]]",
                          *(f"{kk} = {_toml_value(vv)}" for kk, vv in item.items())]
    return "\n".join(lines) + "\n"
