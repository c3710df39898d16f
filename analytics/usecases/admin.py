"""Administration use cases: the audit trail, user accounts and the site settings, each
checked against the actor's role and audited (one record per action)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import tomllib
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from analytics import audit, auth
from analytics.auth import Permission
from analytics.csv_safe import write_csv
from analytics.errors import ConfigError
from analytics.features import radiomics_configs
from analytics.features.totalseg import engine_summary
from analytics.store.db import shown_url
from analytics.usecases.context import Context, audited, authorize

__all__ = ["AUDIT_COLUMNS", "EDITABLE_SETTINGS", "AccountStatus", "AuditFilter", "NewUser",
           "PasswordReset", "RoleChange", "SettingChange", "add_user", "audit_trail", "change_role",
           "change_setting", "dumps_toml", "export_audit", "reset_password",
           "set_account_status", "settings_view", "users"]


@dataclass(frozen=True)
class NewUser:
    """A local account (``password``) or an identity-provider one (``password=None``)."""

    username: str
    role: str
    password: str | None
    display_name: str | None = None


@dataclass(frozen=True)
class RoleChange:
    """Give account ``username`` the role ``role``."""

    username: str
    role: str


@dataclass(frozen=True)
class AccountStatus:
    """Disable (``disabled=True``) or enable again account ``username``."""

    username: str
    disabled: bool


@dataclass(frozen=True)
class PasswordReset:
    """A new local password for ``username``; ``password=None`` generates a one-time one."""

    username: str
    password: str | None = None


#: columns of the audit page's table and of its CSV export, in order
AUDIT_COLUMNS = ("seq", "ts", "username", "role", "action", "outcome", "detail",
                 "patient_pseudonym", "model_version", "session_id")


@dataclass(frozen=True)
class AuditFilter:
    """Which audit records to show or export (every field empty: the newest ``limit``).

    ``username`` matches any part of the stored name, ignoring case; ``actions`` and
    ``outcomes`` are sets to keep (empty: all); ``since`` and ``until`` are calendar days
    in UTC, both included.
    """

    username: str | None = None
    actions: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    since: dt.date | None = None
    until: dt.date | None = None
    limit: int = 500

    def criteria(self) -> dict[str, Any]:
        """Keyword arguments of :func:`analytics.audit.recent`."""
        day = dt.timedelta(days=1)
        return {"username": (self.username or "").strip() or None,
                "actions": tuple(self.actions) or None,
                "outcomes": tuple(self.outcomes) or None,
                "since": _utc_midnight(self.since),
                "before": _utc_midnight(self.until + day) if self.until else None}

    def summary(self) -> dict[str, Any]:
        """The filters in use, as small values for an audit record's ``detail``."""
        out: dict[str, Any] = {}
        if (self.username or "").strip():
            out["user"] = self.username.strip()[:128]
        if self.actions:
            out["actions"] = ",".join(self.actions)[:200]
        if self.outcomes:
            out["outcomes"] = ",".join(self.outcomes)
        if self.since:
            out["since"] = self.since.isoformat()
        if self.until:
            out["until"] = self.until.isoformat()
        return out


def _utc_midnight(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@dataclass(frozen=True)
class SettingChange:
    """One setting of :data:`EDITABLE_SETTINGS` and its new value."""

    key: str
    value: object


def audit_trail(ctx: Context, limit: int | AuditFilter = 500) -> dict[str, Any]:
    """The newest audit records matching a filter (or simply the newest ``limit``) and
    the chain's verification, for admins only. Each record has a ``detail`` line
    (:func:`analytics.audit.describe`).

    Raises
    ------
    PermissionDeniedError
        If the actor's role may not view the audit trail (the refusal is audited).
    """
    flt = limit if isinstance(limit, AuditFilter) else AuditFilter(limit=limit)
    authorize(ctx, Permission.VIEW_AUDIT, "audit_view")
    with audited(ctx, "audit_view", detail={"limit": flt.limit, **flt.summary()}):
        report = audit.verify(ctx.store)
        anchor = audit.read_anchor(ctx.store)
        return {"records": _shown(audit.recent(ctx.store, flt.limit, **flt.criteria())),
                "ok": report.ok, "total": report.records, "problems": report.problems,
                "anchor": {"seq": anchor[0], "hash": anchor[1]} if anchor else None}


def export_audit(ctx: Context, flt: AuditFilter) -> bytes:
    """The records matching ``flt`` as CSV (formula cells neutralised), for admins; the
    export itself is audited (``export`` of ``audit_trail`` with the row count and filter).

    Raises
    ------
    PermissionDeniedError
        If the actor may not view the audit trail (refusal audited).
    AuditError
        If the export cannot be audited: then no file is made.
    """
    authorize(ctx, Permission.VIEW_AUDIT, "export")
    rows = _shown(audit.recent(ctx.store, flt.limit, **flt.criteria()))
    with audited(ctx, "export", detail={"step": "download", "what": "audit_trail",
                                        "rows": len(rows), **flt.summary()}):
        table = pd.DataFrame(rows).reindex(columns=list(AUDIT_COLUMNS))
        return (write_csv(table, index=False) or "").encode("utf-8")


def _shown(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as the page shows and exports them: :data:`AUDIT_COLUMNS`, the detail as
    one line saying what was done to what (:func:`analytics.audit.describe`)."""
    return [{c: audit.describe(r) if c == "detail" else r[c] for c in AUDIT_COLUMNS}
            for r in records]


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


def change_role(ctx: Context, req: RoleChange) -> None:
    """Give an account another role (audited ``user_change`` with the old and new role).

    Raises
    ------
    PermissionDeniedError
        If the actor may not manage users (refusal audited).
    AuthError
        No such account, an unknown role, or the last enabled admin would be demoted.
    """
    authorize(ctx, Permission.MANAGE_USERS, "user_change")
    auth.change_role(ctx.store, req.username, req.role,
                     step=functools.partial(audited, ctx, "user_change"))


def set_account_status(ctx: Context, req: AccountStatus) -> None:
    """Disable or enable an account (audited ``user_change``); a disabled account cannot
    sign in and its open sessions end at their next request.

    Raises
    ------
    PermissionDeniedError
        If the actor may not manage users (refusal audited).
    AuthError
        No such account, or the last enabled admin would be disabled.
    """
    authorize(ctx, Permission.MANAGE_USERS, "user_change")
    auth.set_disabled(ctx.store, req.username, req.disabled,
                      step=functools.partial(audited, ctx, "user_change"))


def reset_password(ctx: Context, req: PasswordReset) -> str:
    """Set a new local password (or generate a one-time one) and unlock the account;
    returns the password to show the administrator once (audited ``user_change``, without
    the password).

    Raises
    ------
    PermissionDeniedError
        If the actor may not manage users (refusal audited).
    AuthError
        No such account, an identity-provider account, or a password that is too short.
    """
    authorize(ctx, Permission.MANAGE_USERS, "user_change")
    return auth.reset_password(ctx.store, req.username, req.password,
                               step=functools.partial(audited, ctx, "user_change"))


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
