"""Identity-provider sign-in (``analytics.auth.sso_login``): which claims open a session.

Claims are what Streamlit keeps from the provider's ID token (``st.user``); the browser
flow against a real provider is tests/e2e/test_oidc.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from analytics import audit, auth
from analytics.errors import AuthError
from analytics.store import open_store
from analytics.store.schema import User

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
EMAIL = "dr.sso@hospital.example"


def claims(age_s: float = 5, **over) -> dict:
    """ID-token claims issued ``age_s`` seconds before T0, valid for an hour."""
    iat = T0.timestamp() - age_s
    return {"iss": "https://idp.example", "sub": "00u-1", "aud": ["hepatrack"],
            "iat": iat, "exp": iat + 3600, "email": EMAIL, "email_verified": True,
            "is_logged_in": True, **over}


@pytest.fixture
def store(db_url):
    st = open_store(url=db_url)
    auth.create_user(st, EMAIL, "clinician", None)
    yield st
    st.dispose()


def _logins(store) -> list[tuple]:
    return [(r["username"], r["role"], r["outcome"], r["detail"])
            for r in reversed(audit.recent(store)) if r["action"] == "login"]


@pytest.mark.parametrize(("age_s", "fresh"), [
    (0, True), (119, True), (120, True), (121, False), (3000, False),
    (-30, True), (-31, False),  # issued "in the future": only within the clock skew
])
def test_only_a_sign_in_made_moments_ago_is_fresh(age_s, fresh):
    assert auth.SSO_FRESH_SECONDS == 120 and auth.SSO_CLOCK_SKEW_SECONDS == 30
    assert auth.sso_fresh(claims(age_s), T0) is fresh


@pytest.mark.parametrize(("drop", "over"), [
    ("iat", {}), (None, {"iat": "1772355595"}), (None, {"iat": True}),
    (None, {"exp": T0.timestamp()}),  # expired at this very second
])
def test_claims_without_a_usable_issue_time_or_expired_are_not_fresh(drop, over):
    c = claims(**over)
    c.pop(drop, None)
    assert not auth.sso_fresh(c, T0)


def test_verified_email_of_an_account_signs_in_with_the_store_role(store):
    actor = auth.sso_login(store, claims(), session_id="s1", now=T0)
    assert (actor.username, actor.role, actor.session_id) == (EMAIL, "clinician", "s1")
    assert _logins(store) == [(EMAIL, "clinician", "ok", {"method": "oidc"})]


@pytest.mark.parametrize("verified", ["true", "TRUE"])
def test_email_verified_sent_as_a_string(store, verified):
    assert auth.sso_login(store, claims(email_verified=verified), session_id="s",
                          now=T0).role == "clinician"


def test_provider_without_an_email_verified_claim_is_trusted(store):
    c = claims()
    del c["email_verified"]  # e.g. an organisation directory that does not send it
    assert auth.sso_login(store, c, session_id="s", now=T0).username == EMAIL


@pytest.mark.parametrize("verified", [False, "false", 0, "yes"])
def test_unverified_email_is_refused_and_audited(store, verified):
    with pytest.raises(AuthError, match="has not verified"):
        auth.sso_login(store, claims(email_verified=verified), session_id="s", now=T0)
    assert _logins(store) == [(EMAIL, "none", "denied", {"reason": "SSO email not verified"})]


def test_a_stale_sign_in_opens_nothing_and_is_not_audited(store):
    before = audit.head(store)
    assert auth.sso_login(store, claims(age_s=121), session_id="s", now=T0) is None
    assert audit.head(store) == before


def test_preferred_username_does_not_stand_in_for_the_email(store):
    c = claims(preferred_username=EMAIL)
    del c["email"]
    with pytest.raises(AuthError, match="did not send an e-mail address"):
        auth.sso_login(store, c, session_id="s", now=T0)
    assert _logins(store) == [("?", "none", "denied", {"reason": "no email from SSO"})]


def test_unknown_and_disabled_accounts_are_refused_and_audited(store):
    with pytest.raises(AuthError, match="no HepaTrack account"):
        auth.sso_login(store, claims(email="someone@elsewhere.example"), session_id="s",
                       now=T0)
    with store.session() as s:
        s.execute(update(User).where(User.username == EMAIL).values(disabled=True))
    with pytest.raises(AuthError, match="is disabled"):
        auth.sso_login(store, claims(), session_id="s", now=T0)
    assert _logins(store) == [
        (audit.unknown_username(store, "someone@elsewhere.example"), "none", "denied",
         {"reason": "no local account for SSO user"}),
        (EMAIL, "clinician", "denied", {"reason": "disabled"}),
    ]


def test_no_claim_but_the_email_reaches_the_audit_trail(store):
    auth.sso_login(store, claims(sub="00u-secretive", nonce="n-0n-ce"), session_id="s",
                   now=T0)
    trail = str(audit.recent(store))
    assert EMAIL in trail
    for value in ("00u-secretive", "n-0n-ce", "idp.example"):
        assert value not in trail


def test_the_email_is_matched_ignoring_case(store):
    """Providers send an address in the case the person typed it; it is one account."""
    actor = auth.sso_login(store, claims(email="Dr.SSO@Hospital.Example"), session_id="s1",
                           now=T0)
    assert (actor.username, actor.role) == (EMAIL, "clinician")


def test_accounts_differing_only_in_case_cannot_be_created(store):
    with pytest.raises(AuthError, match="compared ignoring case"):
        auth.create_user(store, EMAIL.upper(), "researcher", None)
    assert [u["username"] for u in auth.list_users(store)] == [EMAIL]
