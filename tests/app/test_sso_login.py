"""The login gate with an identity provider configured (``[auth]`` in the secrets).

``AppTest.user`` stands for the claims Streamlit keeps from the provider's ID token after
``st.login``; the real round trip through a provider is tests/e2e/test_oidc.py.
"""

from __future__ import annotations

import time

import pytest

from analytics import audit, auth
from analytics.store import open_store
from tests.app.conftest import new_app
from ui.session import VIEWER_KEY

EMAIL = "dr.sso@hospital.example"
SECRETS = {"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback",
                    "cookie_secret": "not-a-real-secret-0123456789",
                    "client_id": "hepatrack", "client_secret": "not-a-real-secret",
                    "server_metadata_url":
                        "https://idp.example/.well-known/openid-configuration"}}


@pytest.fixture
def accounts(seeded_home, settings):
    store = open_store(settings)
    auth.create_user(store, EMAIL, "clinician", None)
    yield store
    store.dispose()


def _app(age_s: float, **claims):
    """The dashboard for a browser whose provider sign-in is ``age_s`` seconds old."""
    at = new_app(viewer=None)
    at.secrets = SECRETS
    iat = int(time.time() - age_s)
    at.user = {"is_logged_in": True, "iss": "https://idp.example", "sub": "00u-1",
               "iat": iat, "exp": iat + 3600, "email": EMAIL, "email_verified": True,
               **claims}
    return at.run()


def _logins(store) -> list[tuple]:
    return [(r["username"], r["outcome"]) for r in audit.recent(store) if r["action"] == "login"]


def test_without_a_provider_sign_in_the_organisation_button_is_offered(accounts):
    at = new_app(viewer=None)
    at.secrets = SECRETS
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in with your organisation", "Sign in"]
    assert VIEWER_KEY not in at.session_state


def test_a_fresh_provider_sign_in_opens_the_accounts_identified_view(accounts):
    at = _app(age_s=2)
    assert not at.exception
    viewer = at.session_state[VIEWER_KEY]
    assert (viewer.username, viewer.role) == (EMAIL, "clinician")
    assert "Jane DOE" in at.dataframe[0].value["patient_name"].tolist()
    assert _logins(accounts) == [(EMAIL, "ok")]


def test_an_old_provider_sign_in_kept_by_the_browser_opens_nothing(accounts):
    at = _app(age_s=auth.SSO_FRESH_SECONDS + 60)
    assert not at.exception
    assert VIEWER_KEY not in at.session_state
    assert not at.dataframe
    assert "lapsed" in at.caption[1].value
    assert at.button[0].label == "Sign in with your organisation"
    assert _logins(accounts) == []


@pytest.mark.parametrize(("claims", "message"), [
    ({"email": "visitor@elsewhere.example"}, "has no HepaTrack account"),
    ({"email_verified": False}, "has not verified"),
])
def test_a_refused_identity_sees_the_reason_and_no_content(accounts, claims, message):
    at = _app(age_s=2, **claims)
    assert not at.exception
    assert message in at.error[0].value
    assert VIEWER_KEY not in at.session_state
    assert not at.dataframe
    assert [b.label for b in at.button] == ["Sign out of the identity provider"]
    assert [o for _, o in _logins(accounts)] == ["denied"]
