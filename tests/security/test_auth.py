"""Local accounts, throttling, roles enforced in the engine."""

from __future__ import annotations

import datetime as dt
import re

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


@pytest.mark.parametrize("typed", ["correct horse battery", "DOE^JANE", "vic\u200btim\n"],
                         ids=["a-password", "a-patient-name", "invisible-characters"])
def test_what_is_typed_as_an_unknown_username_is_kept_only_as_a_keyed_hash(store, typed):
    with pytest.raises(AuthError, match="unknown user or wrong password"):
        auth.authenticate(store, typed, PW)
    last = audit.recent(store, 1)[0]
    assert last["username"] == audit.unknown_username(store, typed)
    assert re.fullmatch(r"unknown:[0-9a-f]{16}", last["username"])
    assert typed.strip() not in str(audit.recent(store))


def test_the_unknown_username_hash_is_keyed_by_the_site_secret(store, tmp_path):
    other = open_store(url=f"sqlite:///{tmp_path / 'other.db'}", home=tmp_path / "other")
    assert audit.unknown_username(store, "DOE^JANE") != audit.unknown_username(other,
                                                                                "DOE^JANE")
    assert audit.unknown_username(store, "DOE^JANE") == audit.unknown_username(store,
                                                                                " doe^jane")
    other.dispose()


@pytest.mark.parametrize("name", ["victim\n", "vic\u200btim", "victim\u2028", "vic\ttim",
                                  "\u00a0victim", "victim\x00"],
                         ids=["newline", "zero-width-space", "line-separator", "tab",
                              "no-break-space", "nul"])
def test_usernames_with_control_or_invisible_characters_are_refused(store, name):
    with pytest.raises(AuthError, match=r"username .*control or invisible character U\+"):
        auth.create_user(store, name, "clinician", PW)
    assert [u["username"] for u in auth.list_users(store)] == ["dr.who", "res"]


@pytest.mark.parametrize("name", ["DR.WHO", " dr.who", "Dr.Who  "],
                         ids=["case", "leading-space", "trailing-spaces"])
def test_a_username_differing_only_in_case_or_spaces_names_the_same_account(store, name):
    with pytest.raises(AuthError, match="already exists"):
        auth.create_user(store, name, "admin", PW)
    assert auth.authenticate(store, name, PW).username == "dr.who"


def test_users_add_command_refuses_a_name_with_a_newline(tmp_path, monkeypatch, capsys):
    from analytics.cli import main

    monkeypatch.setenv("HEPATRACK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    assert main(["users", "add", "victim", "--role", "clinician", "--password", PW]) == 0
    assert main(["users", "add", "victim\n", "--role", "admin", "--password", PW]) == 2
    assert "U+000A (LINE FEED) at position 7" in capsys.readouterr().err
    assert main(["users", "add", "Victim", "--role", "admin", "--password", PW]) == 2
    assert main(["users", "list"]) == 0
    assert capsys.readouterr().out.split() == ["victim", "clinician"]
