"""User accounts in the store: lookup by name key, creation, the changes an administrator
makes (role, disabled, password) and the failure counter the login lockout runs on
(conditional UPDATEs, so concurrent attempts take distinct slots).

The rules (roles, password policy, lock lengths, auditing) live in :mod:`analytics.auth`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from analytics.store.db import Store
from analytics.store.schema import User

__all__ = ["ADMIN_ROLE", "Account", "add_account", "find_account", "list_accounts",
           "login_state", "other_active_admins", "release_failures", "reserve_failure",
           "reset_password_hash", "set_password_hash", "update_account", "username_with_key"]

#: the role whose last active holder must stay (someone has to manage the accounts)
ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Account:
    """One user account as stored (``password_hash`` None for an SSO-only account)."""

    id: int
    username: str
    role: str
    display_name: str | None
    disabled: bool
    password_hash: str | None

    @classmethod
    def of(cls, row: User) -> Account:
        return cls(id=row.id, username=row.username, role=row.role,
                   display_name=row.display_name, disabled=bool(row.disabled),
                   password_hash=row.password_hash)


def username_with_key(store: Store, key: str) -> str | None:
    """The username stored under name key ``key``, or None."""
    with store.session() as s:
        return s.execute(select(User.username).where(User.username_key == key)).scalar()


def add_account(store: Store, username: str, key: str, role: str, *,
                display_name: str | None, password_hash: str | None) -> Account | None:
    """Create an account; None when one with that name key was created at the same moment."""
    try:
        with store.session() as s:
            user = User(username=username, username_key=key, role=role,
                        display_name=display_name, password_hash=password_hash)
            s.add(user)
            s.flush()
            account = Account.of(user)
    except IntegrityError:
        return None
    return account


def find_account(store: Store, key: str) -> Account | None:
    """The account stored under name key ``key``, or None."""
    with store.session() as s:
        row = s.execute(select(User).where(User.username_key == key)).scalar()
        return Account.of(row) if row is not None else None


def list_accounts(store: Store) -> list[Account]:
    """Every account, by username."""
    with store.session() as s:
        return [Account.of(u) for u in s.execute(select(User).order_by(User.username)).scalars()]


def login_state(store: Store, user_id: int) -> tuple[int, dt.datetime | None]:
    """``(failed logins, locked until)`` of an account."""
    with store.session() as s:
        failures, locked = s.execute(select(User.failed_logins, User.locked_until)
                                     .where(User.id == user_id)).one()
    return failures, locked


def reserve_failure(store: Store, user_id: int, seen: int, failures: int,
                    locked_until: dt.datetime | None, now: dt.datetime) -> bool:
    """Set the counter to ``failures`` (and the lock) only while it still holds ``seen`` and
    the account is not locked at ``now``; True if this call took the slot."""
    with store.session() as s:
        done = s.execute(
            update(User)
            .where(User.id == user_id, User.failed_logins == seen,
                   (User.locked_until.is_(None)) | (User.locked_until <= now))
            .values(failed_logins=failures, locked_until=locked_until)
            .execution_options(synchronize_session=False)).rowcount
    return done == 1


def release_failures(store: Store, user_id: int, slot: int, now: dt.datetime) -> bool:
    """Clear the failures counted up to ``slot`` and the lock, unless failures counted
    after it have locked the account meanwhile; True if released."""
    with store.session() as s:
        done = s.execute(
            update(User)
            .where(User.id == user_id,
                   (User.failed_logins == slot) | User.locked_until.is_(None)
                   | (User.locked_until <= now))
            .values(failed_logins=case((User.failed_logins > slot,
                                        User.failed_logins - slot), else_=0),
                    locked_until=None)
            .execution_options(synchronize_session=False)).rowcount
    return done == 1


def set_password_hash(store: Store, user_id: int, password_hash: str) -> None:
    """Replace an account's password hash (a rehash with current parameters)."""
    with store.session() as s:
        s.get(User, user_id).password_hash = password_hash


def _other_active_admins(user_id: int):
    return (select(func.count()).select_from(User)
            .where(User.role == ADMIN_ROLE, User.disabled.is_(False), User.id != user_id)
            .scalar_subquery())


def other_active_admins(store: Store, user_id: int) -> int:
    """How many enabled admin accounts there are besides account ``user_id``."""
    with store.session() as s:
        return int(s.execute(select(_other_active_admins(user_id))).scalar_one())


def update_account(store: Store, user_id: int, *, role: str | None = None,
                   disabled: bool | None = None, keep_an_admin: bool = False) -> bool:
    """Set an account's ``role`` and/or ``disabled`` flag; True if the row was changed.

    With ``keep_an_admin`` the change is made only while another enabled admin account
    exists, checked in the same UPDATE (two admins demoting each other at once cannot
    leave the site without one); False when it was refused for that reason.
    """
    values: dict[str, object] = {}
    if role is not None:
        values["role"] = role
    if disabled is not None:
        values["disabled"] = disabled
    stmt = update(User).where(User.id == user_id)
    if keep_an_admin:
        stmt = stmt.where(_other_active_admins(user_id) > 0)
    with store.session() as s:
        done = s.execute(stmt.values(**values)
                         .execution_options(synchronize_session=False)).rowcount
    return done == 1


def reset_password_hash(store: Store, user_id: int, password_hash: str) -> None:
    """Replace an account's password hash after an administrator's reset, and clear its
    failed logins and lock (the old password's failures do not count against the new)."""
    with store.session() as s:
        s.execute(update(User).where(User.id == user_id)
                  .values(password_hash=password_hash, failed_logins=0, locked_until=None)
                  .execution_options(synchronize_session=False))
