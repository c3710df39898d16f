"""Accounts, roles and permissions, enforced in the engine (not only hidden in the UI).

Roles:
- ``clinician``: identified view (real names and dates), MDT exports, uploads.
- ``researcher``: pseudonymised view only; no names, no real dates, no identified export.
- ``admin``: users, models and settings; pseudonymised patient view.

Local accounts keep an Argon2id hash. Failed logins are throttled per account: after
``LOCK_AFTER`` consecutive failures the account is locked for ``LOCK_SECONDS`` doubling at
every further failure (capped). Every attempt first reserves a failure in one conditional
UPDATE (compare-and-set on the counter, refused while the account is locked) and only then
checks the password; a right password releases the reservation. So however many attempts
run at once, at most ``LOCK_AFTER`` passwords are checked before the lock holds, and a right
password whose check ends after the account was locked by concurrent wrong ones does not
open a session. Every login, success or failure, is audited (an unknown username as a keyed
hash, never as typed); if the audit write fails the login does not happen.

Usernames are NFC without control or invisible characters (:mod:`analytics.names`) and are
compared ignoring case and spaces (``users.username_key``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from analytics import audit
from analytics.audit import Actor
from analytics.errors import AuthError, HepaTrackError, PermissionDeniedError
from analytics.names import clean_name, name_key
from analytics.store import accounts
from analytics.store.accounts import Account
from analytics.store.db import Store

LOCK_AFTER = 5
LOCK_SECONDS = 60
LOCK_MAX_SECONDS = 3600
MIN_PASSWORD_LENGTH = 12
#: compare-and-set rounds of one attempt's reservation before it gives up as "busy"
_RESERVE_TRIES = 100
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{2,128}$")
_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both paths cost the same.

    Computed on first use, not at import: every CLI command imports this module and most
    never log anyone in.
    """
    return _hasher.hash(secrets.token_hex(16))


class Role(StrEnum):
    CLINICIAN = "clinician"
    RESEARCHER = "researcher"
    ADMIN = "admin"


class Permission(StrEnum):
    VIEW_PSEUDONYMISED = "view_pseudonymised"
    VIEW_IDENTIFIED = "view_identified"
    EXPORT_IDENTIFIED = "export_identified"
    EXPORT_PSEUDONYMISED = "export_pseudonymised"
    INGEST = "ingest"
    PREDICT = "predict"
    TRAIN = "train"
    ACTIVATE_MODEL = "activate_model"
    MANAGE_USERS = "manage_users"
    CHANGE_SETTINGS = "change_settings"
    VIEW_AUDIT = "view_audit"
    WRITE_NOTES = "write_notes"
    REVIEW_MASKS = "review_masks"


_ALL_VIEW = {Permission.VIEW_PSEUDONYMISED, Permission.PREDICT,
             Permission.EXPORT_PSEUDONYMISED}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CLINICIAN: frozenset(_ALL_VIEW | {
        Permission.VIEW_IDENTIFIED, Permission.EXPORT_IDENTIFIED, Permission.INGEST,
        Permission.WRITE_NOTES, Permission.REVIEW_MASKS}),
    Role.RESEARCHER: frozenset(_ALL_VIEW | {Permission.TRAIN}),
    Role.ADMIN: frozenset(_ALL_VIEW | {
        Permission.TRAIN, Permission.ACTIVATE_MODEL, Permission.MANAGE_USERS,
        Permission.CHANGE_SETTINGS, Permission.VIEW_AUDIT, Permission.INGEST}),
}


def allowed(actor: Actor | None, permission: Permission) -> bool:
    if actor is None:
        return False
    try:
        return permission in ROLE_PERMISSIONS[Role(actor.role)]
    except ValueError:
        return False


def require(actor: Actor | None, permission: Permission, store: Store | None = None, *,
            action: str | None = None, patient: str | None = None) -> Actor:
    """Return ``actor`` if its role grants ``permission``; otherwise refuse.

    A refusal is audited (when a store is given) and raised as PermissionDeniedError.
    """
    if allowed(actor, permission):
        return actor  # type: ignore[return-value]
    who = f"{actor.username} ({actor.role})" if actor else "an anonymous user"
    if store is not None and action:
        audit.record(store, actor, action, "denied", patient=patient,
                     detail={"permission": str(permission)})
    raise PermissionDeniedError(f"{who} may not {permission.value.replace('_', ' ')}",
                                hint="ask an administrator for the right role")


def clean_username(username: object) -> str:
    """The username in NFC without surrounding spaces, checked against the allowed form.

    Raises
    ------
    AuthError
        Control or invisible characters, or not 2-128 letters, digits and ``. _ @ -``.
    """
    try:
        name = clean_name(username, "username")
    except ValueError as e:
        raise AuthError(str(e), hint="type the name again without hidden characters") from None
    if not _USERNAME.fullmatch(name):  # fullmatch: ``$`` would accept a final newline
        raise AuthError(f"username {name!r}: expected 2-128 characters of letters, "
                        "digits and . _ @ -")
    return name


def create_user(store: Store, username: str, role: str, password: str | None, *,
                display_name: str | None = None,
                step: Callable[..., AbstractContextManager[Any]] = audit.unaudited) -> Account:
    """Create a local (or, with ``password=None``, SSO-only) account.

    ``step`` is called with the audit record's ``detail`` around the insert: the use
    case's audited step (:func:`analytics.usecases.admin.add_user`); none by default.

    Raises
    ------
    AuthError
        Bad username, unknown role, short password, or the user exists (names are
        compared ignoring case and spaces).
    """
    username = clean_username(username)
    key = name_key(username)
    try:
        role_v = Role(role)
    except ValueError as e:
        raise AuthError(f"role {role!r}: expected one of {[r.value for r in Role]}") from e
    if password is not None:
        check_password(username, password)

    def exists(other: str) -> AuthError:
        return AuthError(f"user {username!r} already exists" if other == username else
                         f"user {username!r}: {other!r} already exists (names are "
                         "compared ignoring case and spaces)")

    # e-mail addresses (the single sign-on account names) differ in case only on paper,
    # so two accounts that differ only in case would be one person
    other = accounts.username_with_key(store, key)
    if other is not None:
        raise exists(other)
    with step(detail={"username": username, "role": role_v.value}):
        user = accounts.add_account(store, username, key, role_v.value,
                                    display_name=display_name,
                                    password_hash=_hasher.hash(password) if password else None)
        if user is None:  # created at the same moment by someone else
            raise exists(username)
    return user


def check_password(username: str, password: str) -> None:
    """The password policy of local accounts (on creation and on a reset).

    Raises
    ------
    AuthError
        If ``password`` is shorter than :data:`MIN_PASSWORD_LENGTH` characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"password for {username!r}: at least {MIN_PASSWORD_LENGTH} "
                        "characters expected")


def _existing(store: Store, username: str) -> Account:
    user = find_user(store, username)
    if user is None:
        raise AuthError(f"user {username!r}: no such account")
    return user


def _last_admin(user: Account, what: str) -> AuthError:
    return AuthError(f"{user.username!r} is the last active administrator: {what} would "
                     "leave nobody to manage accounts",
                     hint="add or enable another admin account first")


def change_role(store: Store, username: str, role: str, *,
                step: Callable[..., AbstractContextManager[Any]] = audit.unaudited) -> Account:
    """Give an account another role; sessions open under the old role end at their next
    request (:func:`session_refusal`).

    Raises
    ------
    AuthError
        No such account, an unknown role, or the account is the last enabled admin and
        would no longer be one.
    """
    user = _existing(store, username)
    try:
        new = Role(role).value
    except ValueError as e:
        raise AuthError(f"role {role!r}: expected one of {[r.value for r in Role]}") from e
    demotes = user.role == Role.ADMIN and new != Role.ADMIN and not user.disabled
    if demotes and not accounts.other_active_admins(store, user.id):
        raise _last_admin(user, f"making it {new}")
    with step(detail={"username": user.username, "change": "role", "old": user.role,
                      "new": new}):
        if not accounts.update_account(store, user.id, role=new, keep_an_admin=demotes):
            raise _last_admin(user, f"making it {new}")  # another admin went meanwhile
    return replace(user, role=new)


def set_disabled(store: Store, username: str, disabled: bool, *,
                 step: Callable[..., AbstractContextManager[Any]] = audit.unaudited
                 ) -> Account:
    """Disable (or enable again) an account: a disabled account cannot sign in, and its
    open sessions end at their next request (:func:`session_refusal`).

    Raises
    ------
    AuthError
        No such account, or disabling the last enabled admin.
    """
    user = _existing(store, username)
    guard = disabled and user.role == Role.ADMIN and not user.disabled
    if guard and not accounts.other_active_admins(store, user.id):
        raise _last_admin(user, "disabling it")
    with step(detail={"username": user.username,
                      "change": "disable" if disabled else "enable"}):
        if not accounts.update_account(store, user.id, disabled=disabled, keep_an_admin=guard):
            raise _last_admin(user, "disabling it")
    return replace(user, disabled=disabled)


#: length in characters of a generated one-time password (URL-safe base64, ~96 bits)
GENERATED_PASSWORD_LENGTH = 16


def reset_password(store: Store, username: str, password: str | None = None, *,
                   step: Callable[..., AbstractContextManager[Any]] = audit.unaudited
                   ) -> str:
    """Set a local account's password (``None``: generate one) and unlock the account.

    Returns the password set, to be shown once to the administrator; it is stored only as
    its Argon2id hash and never written to the audit trail.

    Raises
    ------
    AuthError
        No such account, an identity-provider account (no local password), or a password
        against the policy (:func:`check_password`).
    """
    user = _existing(store, username)
    if user.password_hash is None:
        raise AuthError(f"user {user.username!r} signs in with the identity provider and "
                        "has no local password to reset")
    if password is None:
        password = secrets.token_urlsafe(GENERATED_PASSWORD_LENGTH)[:GENERATED_PASSWORD_LENGTH]
    check_password(user.username, password)
    with step(detail={"username": user.username, "change": "password_reset"}):
        accounts.reset_password_hash(store, user.id, _hasher.hash(password))
    return password


def session_refusal(store: Store, username: str, role: str) -> str | None:
    """Why a session opened as ``username`` with ``role`` may no longer act, or None.

    An open session ends when its account was disabled or given another role since the
    sign-in. A name with no account at all is left to the sign-in that made the session.
    """
    user = find_user(store, username)
    if user is None:
        return None
    if user.disabled:
        return f"account {user.username!r} has been disabled"
    if user.role != role:
        return f"the role of {user.username!r} changed to {user.role}; sign in again"
    return None


def find_user(store: Store, username: str) -> Account | None:
    """The account named ``username`` (ignoring case and spaces), or None."""
    try:
        key = name_key(clean_name(username, "username"))
    except ValueError:
        return None
    return accounts.find_account(store, key)


def list_users(store: Store) -> list[dict]:
    return [{"username": u.username, "role": u.role, "disabled": u.disabled,
             "sso_only": u.password_hash is None} for u in accounts.list_accounts(store)]


def _lock_seconds(failures: int) -> int:
    over = failures - LOCK_AFTER
    return min(LOCK_SECONDS * (2 ** max(over, 0)), LOCK_MAX_SECONDS)


def _as_utc(t: dt.datetime | None) -> dt.datetime | None:
    return t.replace(tzinfo=dt.UTC) if t is not None and t.tzinfo is None else t


def _reserve_attempt(store: Store, user_id: int, now: dt.datetime
                     ) -> tuple[int | None, dt.datetime | None]:
    """Count one failure before the password is checked; ``(failures, None)`` if reserved.

    One conditional UPDATE per round: it matches only while the counter still holds the
    value read and the account is not locked, so concurrent attempts take distinct slots.
    The attempt that reaches ``LOCK_AFTER`` locks the account itself, so attempts after
    it are refused without a check. Returns ``(None, locked_until)`` when the account is
    locked.
    """
    for _ in range(_RESERVE_TRIES):
        failures, locked = accounts.login_state(store, user_id)
        locked = _as_utc(locked)
        if locked is not None and locked > now:
            return None, locked
        n = failures + 1
        until = now + dt.timedelta(seconds=_lock_seconds(n)) if n >= LOCK_AFTER else None
        if accounts.reserve_failure(store, user_id, failures, n, until, now):
            return n, None
    raise AuthError("too many sign-in attempts at once for this account; try again shortly")


def _release_attempt(store: Store, user_id: int, slot: int, now: dt.datetime) -> bool:
    """After a right password: clear the failures counted up to ``slot`` and the lock.

    Refused (False) when concurrent wrong attempts, counted after ``slot``, have locked
    the account meanwhile: a right guess among a burst does not open a locked account.
    """
    return accounts.release_failures(store, user_id, slot, now)


def authenticate(store: Store, username: str, password: str, *,
                 session_id: str | None = None, now: dt.datetime | None = None) -> Actor:
    """Check a local password and return the logged-in ``Actor``.

    The failure is counted before the password is checked (see the module docstring).

    Raises
    ------
    AuthError
        Wrong user or password (one message for both), locked or disabled account.
    AuditError
        The login could not be audited; the user is not logged in.
    """
    now = now or dt.datetime.now(dt.UTC)
    session_id = session_id or secrets.token_hex(16)
    fail = AuthError("unknown user or wrong password")
    dummy = _dummy_hash()  # on both paths, so the first login costs the same either way
    user = find_user(store, username)
    if user is None or user.password_hash is None:
        with contextlib.suppress(VerificationError):  # same cost as a real check
            _hasher.verify(dummy, password)
        # what was typed may be a password or a patient's name: keep only a keyed hash
        audit.record(store, Actor(audit.unknown_username(store, username), "none",
                                  session_id),
                     "login", "denied", detail={"reason": "unknown user"})
        raise fail
    actor = Actor(user.username, user.role, session_id)
    if user.disabled:
        audit.record(store, actor, "login", "denied", detail={"reason": "disabled"})
        raise AuthError(f"account {user.username!r} is disabled")
    slot, locked = _reserve_attempt(store, user.id, now)
    if slot is None:
        audit.record(store, actor, "login", "denied", detail={"reason": "locked"})
        wait = int((locked - now).total_seconds()) + 1
        raise AuthError(f"too many failed logins: account {user.username!r} is locked "
                        f"for {wait} s")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        audit.record(store, actor, "login", "denied",
                     detail={"reason": "wrong password", "failures": slot})
        raise fail from None
    if not _release_attempt(store, user.id, slot, now):
        audit.record(store, actor, "login", "denied",
                     detail={"reason": "locked during the attempt"})
        raise AuthError(f"too many failed logins: account {user.username!r} is locked")
    audit.record(store, actor, "login", "ok")  # must succeed before the user is let in
    if _hasher.check_needs_rehash(user.password_hash):
        accounts.set_password_hash(store, user.id, _hasher.hash(password))
    return actor


#: an identity-provider sign-in opens a HepaTrack session only while its ID token is this
#: fresh (seconds since ``iat``): the provider's assertion is kept by the browser for weeks,
#: and must not reopen a session after sign-out, idle expiry or a reload of the page
SSO_FRESH_SECONDS = 120
#: tolerated clock difference between the identity provider and this server
SSO_CLOCK_SKEW_SECONDS = 30


def sso_fresh(claims: Mapping[str, Any], now: dt.datetime | None = None) -> bool:
    """Whether the identity provider issued these claims moments ago (a sign-in just made).

    False when ``iat`` is missing or older than :data:`SSO_FRESH_SECONDS`, lies in the
    future beyond the clock skew, or the token's ``exp`` has passed.
    """
    now_s = (now or dt.datetime.now(dt.UTC)).timestamp()
    iat, exp = claims.get("iat"), claims.get("exp")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        return False
    if isinstance(exp, int | float) and not isinstance(exp, bool) and exp <= now_s:
        return False
    return -SSO_CLOCK_SKEW_SECONDS <= now_s - iat <= SSO_FRESH_SECONDS


def _verified(value: object) -> bool:
    # some providers send the boolean as a string
    return value is True or (isinstance(value, str) and value.lower() == "true")


def sso_actor(store: Store, username: str, *, session_id: str,
              email_verified: object = None) -> Actor:
    """The Actor for an identity-provider login; the account must exist (role from store).

    ``username`` is the e-mail address the provider asserts; ``email_verified`` its claim
    of that name: when the provider sends it, it must be true (an unverified address is
    anyone's to type). Success and refusal are both audited.

    Raises
    ------
    AuthError
        No e-mail, an unverified e-mail, no such account, or a disabled account.
    AuditError
        The login could not be audited; the user is not logged in.
    """
    # providers differ in the case they send an address in: compared by username_key
    user = find_user(store, username) if username else None
    # an address that names no account is kept as a keyed hash only
    who = Actor(user.username if user else
                audit.unknown_username(store, username) if username else "?", "none",
                session_id)
    if not username:
        audit.record(store, who, "login", "denied", detail={"reason": "no email from SSO"})
        raise AuthError("the identity provider did not send an e-mail address",
                        hint="ask an administrator to release the 'email' claim to HepaTrack")
    if email_verified is not None and not _verified(email_verified):
        audit.record(store, who, "login", "denied",
                     detail={"reason": "SSO email not verified"})
        raise AuthError(f"the identity provider has not verified {username!r}",
                        hint="verify the address with your organisation, then sign in again")
    if user is None:
        audit.record(store, who, "login", "denied",
                     detail={"reason": "no local account for SSO user"})
        raise AuthError(f"{username!r} signed in with the identity provider but has no "
                        "HepaTrack account", hint="ask an administrator to add you")
    actor = Actor(user.username, user.role, session_id)
    if user.disabled:
        audit.record(store, actor, "login", "denied", detail={"reason": "disabled"})
        raise AuthError(f"account {username!r} is disabled")
    audit.record(store, actor, "login", "ok", detail={"method": "oidc"})
    return actor


def sso_login(store: Store, claims: Mapping[str, Any], *, session_id: str,
              now: dt.datetime | None = None) -> Actor | None:
    """Map an identity provider's ID-token claims (``st.user``) to a HepaTrack login.

    The account is the one named by the ``email`` claim (only that claim: the OpenID
    Connect ``preferred_username`` is neither unique nor stable). Returns None, without an
    audit record, when the claims are not fresh (:func:`sso_fresh`): the user has to sign
    in with the provider again. Otherwise as :func:`sso_actor`.
    """
    if not sso_fresh(claims, now):
        return None
    email = claims.get("email")
    return sso_actor(store, email if isinstance(email, str) else "", session_id=session_id,
                     email_verified=claims.get("email_verified"))


@dataclass
class SessionClock:
    """Idle and absolute expiry of a logged-in session."""

    started: dt.datetime
    last_seen: dt.datetime
    idle_minutes: int = 30
    absolute_minutes: int = 12 * 60

    def expired(self, now: dt.datetime | None = None) -> bool:
        now = now or dt.datetime.now(dt.UTC)
        return (now - self.last_seen > dt.timedelta(minutes=self.idle_minutes)
                or now - self.started > dt.timedelta(minutes=self.absolute_minutes))

    def touch(self, now: dt.datetime | None = None) -> None:
        self.last_seen = now or dt.datetime.now(dt.UTC)


__all__ = ["Actor", "AuthError", "HepaTrackError", "Permission", "Role", "SessionClock",
           "allowed", "authenticate", "change_role", "check_password", "clean_username",
           "create_user", "find_user", "list_users", "require", "reset_password",
           "session_refusal", "set_disabled", "sso_actor", "sso_fresh", "sso_login"]
