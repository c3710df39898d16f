"""Who is looking, and page-prefixed session-state keys.

The login gate (``ui.auth.gate``) puts the logged-in user under :data:`VIEWER_KEY`;
everything downstream (loaders, cache keys, pages) reads the viewer from here. With nobody
logged in there is no viewer, and the loaders refuse to run.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

#: session-state key under which the login gate stores the logged-in :class:`Viewer`
VIEWER_KEY = "auth:viewer"

#: page prefixes for session-state and widget keys ("<page>:<name>")
COHORT = "cohort"
PATIENT = "patient"
SHELL = "shell"

#: roles that see real names and dates (mirrors the engine's VIEW_IDENTIFIED permission)
IDENTIFIED_ROLES = frozenset({"clinician"})


@dataclass(frozen=True)
class Viewer:
    """The user a page renders for; same field names as the engine's audit ``Actor``.

    Attributes
    ----------
    username
        Account name ("local" before the login gate exists).
    role
        ``clinician``, ``researcher`` or ``admin``.
    session_id
        The browser session, for the audit trail.
    """

    username: str
    role: str
    session_id: str = "local"

    @property
    def identified(self) -> bool:
        """True when this viewer may see real names and dates."""
        return self.role in IDENTIFIED_ROLES

    @property
    def cache_key(self) -> str:
        """Key that scopes cached patient data to this user and role."""
        return f"{self.username}|{self.role}"


def current_viewer() -> Viewer | None:
    """The logged-in viewer, or None when nobody logged in."""
    viewer = st.session_state.get(VIEWER_KEY)
    if viewer is None:
        return None
    return Viewer(username=viewer.username, role=viewer.role,
                  session_id=getattr(viewer, "session_id", "local"))


def key(page: str, name: str) -> str:
    """Session-state / widget key ``"<page>:<name>"``, so pages never collide."""
    if ":" in page or not page or not name:
        raise ValueError(f"session key: page {page!r} and name {name!r} must be non-empty; "
                         "the page must not contain ':'")
    return f"{page}:{name}"


def adopt_query_param(param: str, widget_key: str, options: list[str]) -> str | None:
    """Preselect a widget from the URL (``?param=value``) once per new URL value.

    A link such as ``?patient=HT-0001`` selects that option; later choices in the widget
    are kept (the URL value is adopted only when it changes). Returns the URL value when
    it is not among ``options`` (so the page can say so), else None.
    """
    wanted = st.query_params.get(param)
    seen_key = f"{widget_key}:url"
    if not wanted or st.session_state.get(seen_key) == wanted:
        return None
    st.session_state[seen_key] = wanted
    if wanted not in options:
        return wanted
    st.session_state[widget_key] = wanted
    return None


def publish_query_param(param: str, widget_key: str, value: str) -> None:
    """Write the current choice to the URL so the page can be bookmarked or shared."""
    st.query_params[param] = value
    st.session_state[f"{widget_key}:url"] = value
