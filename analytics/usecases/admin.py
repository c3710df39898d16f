"""Administration use cases: the audit trail, user accounts and the site settings, each
checked against the actor's role and audited (one record per action)."""

from __future__ import annotations

import functools
import json
import os
import tomllib
from dataclasses import asdict, dataclass
from typing import Any

from analytics import audit, auth
from analytics.auth import Permission
from analytics.errors import ConfigError
from analytics.features import radiomics_configs
from analytics.features.totalseg import engine_summary
from analytics.store.db import shown_url
from analytics.usecases.context import Context, audited, authorize

__all__ = ["EDITABLE_SETTINGS", "NewUser", "SettingChange", "add_user", "audit_trail",
           "change_setting", "dumps_toml", "settings_view", "users"]


@dataclass(frozen=True)
class NewUser:
    """A local account (``password``) or an identity-provider one (``password=None``)."""

    username: str
    role: str
    password: str | None
    display_name: str | None = None


@dataclass(frozen=True)
class SettingChange:
    """One setting of :data:`EDITABLE_SETTINGS` and its new value."""

    key: str
    value: object


def audit_trail(ctx: Context, limit: int = 500) -> dict[str, Any]:
    """The newest audit records and the chain's verification, for admins only.

    Raises
    ------
    PermissionDeniedError
        If the actor's role may not view the audit trail (the refusal is audited).
    """
    authorize(ctx, Permission.VIEW_AUDIT, "audit_view")
    with audited(ctx, "audit_view", detail={"limit": limit}):
        report = audit.verify(ctx.store)
        anchor = audit.read_anchor(ctx.store)
        return {"records": audit.recent(ctx.store, limit), "ok": report.ok,
                "total": report.records, "problems": report.problems,
                "anchor": {"seq": anchor[0], "hash": anchor[1]} if anchor else None}


def users(ctx: Context) -> list[dict[str, Any]]:
    """Every account with its role (a read: no record).

    Raises
    ------
    PermissionDeniedError
        If the actor may not manage users (refusal audited).
    """
    authorize(ctx, Permission.MANAGE_USERS, "user_change")
    return auth.list_users(ctx.store)


def add_user(ctx: Context, req: NewUser) -> None:
    """Create an account (audited ``user_add`` with the name and role).

    Raises
    ------
    PermissionDeniedError
        If the actor may not manage users (refusal audited).
    AuthError
        Bad username, unknown role, short password, or the user exists.
    """
    authorize(ctx, Permission.MANAGE_USERS, "user_add")
    auth.create_user(ctx.store, req.username, req.role, req.password,
                     display_name=req.display_name,
                     step=functools.partial(audited, ctx, "user_add"))


#: settings an admin may change from the dashboard, with their type and allowed range
EDITABLE_SETTINGS: dict[str, tuple[type, tuple[float, float] | None]] = {
    "session_timeout_min": (int, (5, 12 * 60)),
    "deidentify": (bool, None),
    "radiomics_config": (str, None),  # a name in analytics.features.radiomics_configs
}


def settings_view(ctx: Context) -> dict[str, Any]:
    """The settings in force, without credentials (admins only), and the segmentation
    engine a feature run would use on CT and MR (``segmentation``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not change settings (refusal audited).
    """
    authorize(ctx, Permission.CHANGE_SETTINGS, "settings_change")
    settings = ctx.settings
    return {
        "home": str(settings.home),
        "database": shown_url(settings.database_url),
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


def _check_setting(key: str, value: object) -> None:
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


def change_setting(ctx: Context, req: SettingChange) -> None:
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
    authorize(ctx, Permission.CHANGE_SETTINGS, "settings_change")
    key, value = req.key, req.value
    _check_setting(key, value)
    path = ctx.settings.home / "config.toml"
    try:
        current = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix it by hand first") from e
    old = current.get(key)
    current[key] = value
    with audited(ctx, "settings_change",
                 detail={"key": key, "old": _short(old), "new": _short(value)}):
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
