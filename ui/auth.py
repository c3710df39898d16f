"""The login gate, logout, and audit of what a user views.

Nothing but the login form renders until a user has logged in: ``app.py`` calls
:func:`gate` before the navigation is built, so no page script runs for an anonymous
session. Local accounts log in with a password (``analytics.auth.authenticate``: Argon2,
throttled, audited); when an identity provider is configured in ``.streamlit/secrets.toml``
(``[auth]`` section), a "Sign in with ..." button uses ``st.login`` and the identity must
match a HepaTrack account (``analytics.auth.sso_login``: the ``email`` claim, verified if
the provider says, from a sign-in made moments ago), which sets the role. Sessions expire
after an idle period and an absolute lifetime; signing out also signs out of the provider.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets

import streamlit as st

from analytics import audit
from analytics import auth as engine_auth
from analytics.config import Settings
from analytics.errors import HepaTrackError
from analytics.store.db import Store
from ui.session import VIEWER_KEY, Viewer

CLOCK_KEY = "auth:clock"
SESSION_ID_KEY = "auth:session_id"
LOGIN_FORM = "auth:login"
#: why the session was ended by an account change, shown once on the login form
ENDED_KEY = "auth:ended"


def _session_id() -> str:
    sid = st.session_state.get(SESSION_ID_KEY)
    if sid is None:
        sid = st.session_state[SESSION_ID_KEY] = secrets.token_hex(12)
    return sid


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError, st.errors.StreamlitSecretNotFoundError):
        return False


def _start_session(viewer: Viewer, settings: Settings) -> None:
    now = dt.datetime.now(dt.UTC)
    st.session_state[VIEWER_KEY] = viewer
    st.session_state[CLOCK_KEY] = engine_auth.SessionClock(
        started=now, last_seen=now, idle_minutes=settings.session_timeout_min)


def _end_session() -> None:
    # everything the user left in the session (selections, audit dedup, widget values) goes
    # too, so the next person to sign in on this browser starts clean
    for k in list(st.session_state.keys()):
        if k != SESSION_ID_KEY:
            del st.session_state[k]
    st.cache_data.clear()  # session-scoped entries of this user go with the session


def current(settings: Settings) -> Viewer | None:
    """The logged-in, unexpired viewer of this session, or None."""
    viewer = st.session_state.get(VIEWER_KEY)
    if viewer is None:
        return None
    clock = st.session_state.get(CLOCK_KEY)
    if clock is None:  # a viewer set server-side without a clock: start one now
        _start_session(viewer, settings)
        return viewer
    if clock.expired():
        _end_session()
        st.session_state["auth:expired"] = True
        return None
    clock.touch()
    return viewer


def _login_form(store: Store, settings: Settings) -> None:
    with st.columns([1, 2, 1])[1]:
        _login_widgets(store, settings)


def _login_widgets(store: Store, settings: Settings) -> None:
    st.title("HepaTrack")
    st.caption("Longitudinal risk stratification in liver disease - decision support for "
               "hepatology teams. Sign in to continue.")
    if st.session_state.pop("auth:expired", False):
        st.info("Your session expired. Please sign in again.", icon=":material/timer_off:")
    ended = st.session_state.pop(ENDED_KEY, None)
    if ended:
        st.warning(f"Your session has ended: {ended}.", icon=":material/person_off:")
    if _oidc_configured():
        if getattr(st.user, "is_logged_in", False):
            # the claims of the provider's ID token; tokens themselves are not exposed
            # (no ``expose_tokens`` in the [auth] section) and nothing here is logged
            try:
                actor = engine_auth.sso_login(store, st.user.to_dict(),
                                              session_id=_session_id())
            except HepaTrackError as e:
                st.error(str(e), icon=":material/lock:")
                if e.hint:
                    st.caption(e.hint)
                st.button("Sign out of the identity provider", on_click=st.logout)
                return
            if actor is not None:
                _start_session(Viewer(actor.username, actor.role, actor.session_id),
                               settings)
                st.rerun()
            # an earlier sign-in, kept by the browser: it does not reopen a session
            st.caption("Your earlier sign-in with your organisation has lapsed; sign in "
                       "again to continue.")
        st.button("Sign in with your organisation", on_click=st.login, type="primary")
        st.divider()
    with st.form(LOGIN_FORM):
        username = st.text_input("Username", key="auth:username")
        password = st.text_input("Password", type="password", key="auth:password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            actor = engine_auth.authenticate(store, username.strip(), password,
                                             session_id=_session_id())
        except HepaTrackError as e:
            st.error(str(e), icon=":material/lock:")
            return
        st.session_state.pop("auth:password", None)
        _start_session(Viewer(actor.username, actor.role, actor.session_id), settings)
        st.rerun()


def _still_allowed(store: Store, viewer: Viewer) -> bool:
    """False (and the session ended, audited) when the viewer's account was disabled or
    given another role since the sign-in: a change takes effect at the next request."""
    refusal = engine_auth.session_refusal(store, viewer.username, viewer.role)
    if refusal is None:
        return True
    with contextlib.suppress(HepaTrackError):
        audit.record(store, actor(viewer), "logout", detail={"reason": "account changed"})
    _end_session()
    st.session_state[ENDED_KEY] = refusal
    return False


def gate(settings: Settings, store: Store) -> Viewer:
    """Return the logged-in viewer; otherwise show the login form and stop the script.

    An open session of an account that has since been disabled, or given another role,
    ends here with a message on the login form.
    """
    viewer = current(settings)
    if viewer is not None and _still_allowed(store, viewer):
        return viewer
    _login_form(store, settings)
    st.stop()
    raise AssertionError("unreachable")  # pragma: no cover


def logout(store: Store, viewer: Viewer) -> None:
    """End the session; signing out is never blocked, even if its audit record fails."""
    with contextlib.suppress(HepaTrackError):
        audit.record(store, actor(viewer), "logout")
    _end_session()
    if _oidc_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()


def actor(viewer: Viewer) -> audit.Actor:
    """The engine's audit Actor for a viewer."""
    return audit.Actor(viewer.username, viewer.role, viewer.session_id)
