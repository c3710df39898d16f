"""Single sign-on (``st.login``, OpenID Connect) in real Chromium against a real provider.

``oidc-provider-mock`` runs on 127.0.0.1 as the organisation's identity provider; the
dashboard (``hepatrack serve``) gets an ``[auth]`` section in a secrets file under a
temporary ``$HOME`` (``~/.streamlit/secrets.toml``), never in the checkout. The provider's
authorization page lets the browser pick the subject; the claims of each subject are set
through the provider's ``PUT /users/<sub>``.

Checked: a clinician whose account name is the e-mail the provider returns lands on the
dashboard with the clinician's pages and identified view, audited as ``login ok`` with
method ``oidc``; signing out ends the session (here and at the provider); no token or
authorization code reaches the server log or the audit trail. An identity without an
account, and one whose e-mail the provider has not verified, are refused with no page
content and audited as ``login denied``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics import audit
from analytics.config import Settings
from analytics.store import open_store
from tests import services
from tests.app.conftest import seed_without_model
from tests.e2e.conftest import MENU, UI_TIMEOUT_MS, VIEWPORT, add_users, shot
from tests.e2e.test_browser import hepatrack_server

pytestmark = [pytest.mark.e2e, pytest.mark.services]

START_TIMEOUT_S = 30
CLIENT_ID = "hepatrack-test"
CLIENT_SECRET = "idp-client-secret-for-tests"
COOKIE_SECRET = "cookie-secret-for-tests-only-0123456789abcdef"
CLINICIAN = {"sub": "00u-clin-7f3a", "email": "dr.sso@hospital.example",
             "email_verified": True, "name": "Dr Sso"}
STRANGER = {"sub": "00u-strange-19c", "email": "visitor@elsewhere.example",
            "email_verified": True, "name": "Visiting Person"}
#: another subject asserting the clinician's address, which the provider has not verified
IMPOSTOR = {"sub": "00u-self-signup-4d2", "email": CLINICIAN["email"],
            "email_verified": False, "name": "Someone Else"}
SIGN_IN_SSO = "Sign in with your organisation"
REAL_NAME = "Doe"  # tests/store/seed.py identity map: clinicians see it, nobody else


@contextlib.contextmanager
def oidc_provider(log: Path) -> Iterator[str]:
    """``oidc-provider-mock`` on 127.0.0.1 and a free port; yields its issuer URL."""
    try:
        import oidc_provider_mock  # noqa: F401
    except ImportError:
        services.unavailable("OpenID provider", "oidc-provider-mock is not installed "
                             "(pip install -e '.[test]')")
    port = services.free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1",
             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(
                        f"{issuer}/.well-known/openid-configuration", timeout=2) as r:
                    if json.load(r)["issuer"] == issuer:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"OpenID provider did not start: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield issuer
    finally:
        services.stop(proc)


def set_claims(issuer: str, user: dict) -> None:
    """Register a subject and its claims with the provider (``PUT /users/<sub>``)."""
    claims = {k: v for k, v in user.items() if k != "sub"}
    req = urllib.request.Request(f"{issuer}/users/{urllib.parse.quote(user['sub'])}",
                                 data=json.dumps(claims).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204


def write_secrets(home_dir: Path, issuer: str) -> Path:
    """``~/.streamlit/secrets.toml`` with the ``[auth]`` section, under a temporary home."""
    path = home_dir / ".streamlit" / "secrets.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "[auth]\n"
        # Streamlit fills in its own server port
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{COOKIE_SECRET}"\n'
        f'client_id = "{CLIENT_ID}"\n'
        f'client_secret = "{CLIENT_SECRET}"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n')
    path.chmod(0o600)
    return path


def sign_in_at_provider(page, url: str, sub: str) -> None:
    """From the login page: the organisation button, then the provider's page as ``sub``."""
    page.goto(url)
    page.get_by_role("button", name=SIGN_IN_SSO).click()
    page.wait_for_url("**/oauth2/authorize**", timeout=UI_TIMEOUT_MS)
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()


def auth_cookie(context, name: str) -> dict:
    """A Streamlit auth cookie (``_streamlit_user``, ``_streamlit_user_tokens``), decoded
    with the cookie secret the way the server reads it."""
    from streamlit.auth_util import get_cookie_with_chunks
    from streamlit.web.server.starlette.starlette_app_utils import decode_signed_value

    jar = {c["name"]: c["value"] for c in context.cookies()}

    def one(cookie: str) -> bytes | None:
        raw = jar.get(cookie)
        return None if raw is None else decode_signed_value(COOKIE_SECRET, cookie, raw)

    value = get_cookie_with_chunks(one, name)
    assert value is not None, f"no valid {name} cookie"
    return json.loads(value)


@pytest.fixture
def sso(settings: Settings, tmp_path: Path, monkeypatch) -> Iterator[tuple[str, str]]:
    """``(dashboard url, issuer)``: the provider and a dashboard signed in through it."""
    services.chromium_path()
    store = open_store(settings)
    seed_without_model(store)
    from analytics.auth import create_user

    create_user(store, CLINICIAN["email"], "clinician", None)  # an SSO-only account
    add_users(store, {"ana": "researcher"})
    store.dispose()
    with contextlib.ExitStack() as stack:
        issuer = stack.enter_context(oidc_provider(tmp_path / "idp.log"))
        for user in (CLINICIAN, STRANGER, IMPOSTOR):
            set_claims(issuer, user)
        with monkeypatch.context() as m:
            # the server's ~ is a temporary directory holding the secrets; the provider is
            # plain http on 127.0.0.1, which Authlib refuses unless told it is a test
            server_home = tmp_path / "server-home"
            write_secrets(server_home, issuer)
            m.setenv("HOME", str(server_home))
            m.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
            url = stack.enter_context(hepatrack_server(settings.home, tmp_path / "serve.log"))
        yield url, issuer


@pytest.mark.timeout(300)
def test_sign_in_with_the_organisation(sso, settings: Settings, chromium_browser,
                                       tmp_path: Path):
    url, _issuer = sso
    context = chromium_browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/oauth2callback" in r.url
            else None)
    try:
        page.goto(url)
        page.get_by_role("button", name=SIGN_IN_SSO).wait_for(timeout=UI_TIMEOUT_MS)
        shot(page, "oidc_login")
        page.get_by_role("button", name=SIGN_IN_SSO).click()
        page.wait_for_url("**/oauth2/authorize**", timeout=UI_TIMEOUT_MS)
        shot(page, "oidc_provider")
        page.get_by_placeholder("sub").fill(CLINICIAN["sub"])
        page.get_by_role("button", name="Authorize").click()

        # back on the dashboard, signed in with the store's role
        nav = page.locator(MENU)
        nav.wait_for(timeout=UI_TIMEOUT_MS)
        nav.get_by_text("MDT meeting", exact=True).wait_for(timeout=UI_TIMEOUT_MS)
        assert "Users" not in nav.inner_text().split()
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert f"Viewing as {CLINICIAN['email']} (clinician, identified)" in \
            sidebar.inner_text()
        cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"]')
        cells.filter(has_text=REAL_NAME).first.wait_for(state="attached",
                                                        timeout=UI_TIMEOUT_MS)
        shot(page, "oidc_signed_in")
        nav.get_by_text("MDT meeting", exact=True).click()
        page.get_by_role("heading", name="MDT meeting").wait_for(timeout=UI_TIMEOUT_MS)
        tokens = auth_cookie(context, "_streamlit_user_tokens")
        assert set(tokens) >= {"id_token", "access_token"}

        # signing out ends the session here and at the provider
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="End session").click()  # the provider's page
        page.get_by_role("button", name=SIGN_IN_SSO).wait_for(timeout=UI_TIMEOUT_MS)
        page.wait_for_function(f"() => !document.body.innerText.includes('{REAL_NAME}')",
                               timeout=UI_TIMEOUT_MS)
        assert not page.locator(MENU).count()
        assert not any(c["name"].startswith("_streamlit_user") for c in context.cookies())
        shot(page, "oidc_signed_out")
    finally:
        context.close()

    store = open_store(settings)
    try:
        records = audit.recent(store)
    finally:
        store.dispose()
    logins = [r for r in records if r["action"] == "login"
              and r["username"] == CLINICIAN["email"]]
    assert [(r["outcome"], r["role"], r["detail"]) for r in logins] == \
        [("ok", "clinician", {"method": "oidc"})]
    assert any(r["action"] == "logout" and r["username"] == CLINICIAN["email"]
               for r in records)
    codes = [urllib.parse.parse_qs(urllib.parse.urlsplit(c).query).get("code", [""])[0]
             for c in callbacks]
    secrets_seen = [t for t in (*tokens.values(), *codes) if t]
    assert len(secrets_seen) >= 3, "expected an id token, an access token and a code"
    trail = json.dumps(records, default=str)
    log = (tmp_path / "serve.log").read_text(errors="replace")
    for secret in secrets_seen:
        assert secret not in trail and secret not in log


def _refused(page, url: str, sub: str, message: str, name: str) -> None:
    sign_in_at_provider(page, url, sub)
    page.get_by_text(message).wait_for(timeout=UI_TIMEOUT_MS)
    body = page.locator("body").inner_text()
    assert "HT-000" not in body and REAL_NAME not in body
    assert not page.locator(MENU).count()
    assert not page.locator('[data-testid="stDataFrame"]').count()
    shot(page, name)
    page.get_by_role("button", name="Sign out of the identity provider").click()
    page.get_by_role("button", name="End session").click()  # the provider's page
    page.get_by_role("button", name=SIGN_IN_SSO).wait_for(timeout=UI_TIMEOUT_MS)
    page.wait_for_function(f"() => !document.body.innerText.includes({message!r})",
                           timeout=UI_TIMEOUT_MS)


@pytest.mark.timeout(300)
def test_identities_without_a_verified_account_are_refused(sso, settings: Settings,
                                                           chromium_browser):
    url, _issuer = sso
    context = chromium_browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        _refused(page, url, STRANGER["sub"],
                 f"'{STRANGER['email']}' signed in with the identity provider but has no "
                 "HepaTrack account", "oidc_refused_no_account")
        # the clinician's address, asserted but not verified by the provider
        _refused(page, url, IMPOSTOR["sub"],
                 f"the identity provider has not verified '{CLINICIAN['email']}'",
                 "oidc_refused_unverified")
        assert not any(c["name"].startswith("_streamlit_user") for c in context.cookies())
    finally:
        context.close()

    store = open_store(settings)
    try:
        logins = [(r["username"], r["outcome"], r["role"], r["detail"])
                  for r in reversed(audit.recent(store)) if r["action"] == "login"]
        # an address that names no account is kept only as a keyed hash
        stranger = audit.unknown_username(store, STRANGER["email"])
    finally:
        store.dispose()
    assert stranger.startswith("unknown:") and STRANGER["email"] not in str(logins)
    assert logins == [
        (stranger, "denied", "none", {"reason": "no local account for SSO user"}),
        (CLINICIAN["email"], "denied", "none", {"reason": "SSO email not verified"}),
    ]
