"""Local accounts, throttling, roles enforced in the engine."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics import audit, auth
from analytics.audit import Actor
from analytics.errors import AuthError, PermissionDeniedError
from analytics.store import open_store

PW = "correct horse battery"


@pytest.fixture
def store(db_url):
    st = open_store(url=db_url)
    auth.create_user(st, "dr.who", "clinician", PW)
    auth.create_user(st, "res", "researcher", PW)
    yield st
    st.dispose()


def test_password_is_hashed_with_argon2(store):
    from sqlalchemy import select

    from analytics.store.schema import User
    with store.session() as s:
        h = s.execute(select(User.password_hash).where(User.username == "dr.who")).scalar()
    assert h.startswith("$argon2id$") and PW not in h


def test_login_ok_and_audited(store):
    actor = auth.authenticate(store, "dr.who", PW, session_id="abc")
    assert actor == Actor("dr.who", "clinician", "abc")
    last = audit.recent(store, 1)[0]
    assert (last["action"], last["outcome"], last["username"]) == ("login", "ok", "dr.who")


@pytest.mark.parametrize(("user", "pw"), [("dr.who", "wrong password!"), ("nobody", PW)],
                         ids=["wrong-password", "unknown-user"])
def test_login_failure_is_one_message_and_audited(store, user, pw):
    with pytest.raises(AuthError, match="unknown user or wrong password"):
        auth.authenticate(store, user, pw)
    assert audit.recent(store, 1)[0]["outcome"] == "denied"


def test_throttling_locks_then_expires(store):
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for _ in range(auth.LOCK_AFTER):
        with pytest.raises(AuthError, match="wrong password"):
            auth.authenticate(store, "dr.who", "bad password 123", now=t0)
    with pytest.raises(AuthError, match="locked for"):
        auth.authenticate(store, "dr.who", PW, now=t0 + dt.timedelta(seconds=10))
    later = t0 + dt.timedelta(seconds=auth.LOCK_SECONDS + 1)
    assert auth.authenticate(store, "dr.who", PW, now=later).role == "clinician"


def test_lock_doubles_and_is_capped():
    assert auth._lock_seconds(auth.LOCK_AFTER) == auth.LOCK_SECONDS
    assert auth._lock_seconds(auth.LOCK_AFTER + 1) == 2 * auth.LOCK_SECONDS
    assert auth._lock_seconds(auth.LOCK_AFTER + 30) == auth.LOCK_MAX_SECONDS


@pytest.mark.parametrize(
    ("username", "role", "pw", "match"),
    [("a", "clinician", PW, "username"), ("x y", "clinician", PW, "username"),
     ("newbie", "god", PW, "role"), ("newbie", "clinician", "short", "at least 12"),
     ("dr.who", "clinician", PW, "already exists")],
    ids=["too-short-name", "space-in-name", "unknown-role", "short-password", "duplicate"],
)
def test_create_user_rejects(store, username, role, pw, match):
    with pytest.raises(AuthError, match=match):
        auth.create_user(store, username, role, pw)


def test_researcher_is_refused_identified_access_and_it_is_audited(store):
    res = auth.authenticate(store, "res", PW)
    with pytest.raises(PermissionDeniedError, match="may not view identified"):
        auth.require(res, auth.Permission.VIEW_IDENTIFIED, store, action="view_patient",
                     patient="HT-1")
    last = audit.recent(store, 1)[0]
    assert (last["action"], last["outcome"], last["patient_pseudonym"]) == (
        "view_patient", "denied", "HT-1")


@pytest.mark.parametrize(
    ("role", "permission", "ok"),
    [("clinician", "view_identified", True), ("clinician", "manage_users", False),
     ("researcher", "view_identified", False), ("researcher", "export_identified", False),
     ("researcher", "view_pseudonymised", True), ("admin", "manage_users", True),
     ("admin", "view_identified", False), ("intruder", "view_pseudonymised", False)],
)
def test_role_matrix(role, permission, ok):
    assert auth.allowed(Actor("u", role), auth.Permission(permission)) is ok


def test_session_clock_idle_and_absolute_expiry():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    c = auth.SessionClock(started=t0, last_seen=t0, idle_minutes=30, absolute_minutes=120)
    assert not c.expired(t0 + dt.timedelta(minutes=29))
    assert c.expired(t0 + dt.timedelta(minutes=31))
    for m in (25, 50, 75, 100):
        c.touch(t0 + dt.timedelta(minutes=m))
    assert not c.expired(t0 + dt.timedelta(minutes=110))
    assert c.expired(t0 + dt.timedelta(minutes=121))


def test_disabled_and_sso_only_accounts(store):
    auth.create_user(store, "sso.user", "researcher", None)
    with pytest.raises(AuthError, match="unknown user or wrong password"):
        auth.authenticate(store, "sso.user", "")
    assert auth.sso_actor(store, "sso.user", session_id="z").role == "researcher"
    with pytest.raises(AuthError, match="no HepaTrack account"):
        auth.sso_actor(store, "stranger@example.org", session_id="z")
