"""The dashboard shell: page registry, shared sidebar, typed-error display.

Pages are registered in :data:`PAGES` with the roles allowed to open them; the login gate
and the Ingest / Models / MDT pages add entries here without touching ``app.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st

from analytics.errors import HepaTrackError
from ui import auth, loaders
from ui.format import fmt_count
from ui.session import SHELL, Viewer, key

ALL_ROLES = frozenset({"clinician", "researcher", "admin"})


@dataclass(frozen=True)
class PageSpec:
    """One dashboard page: its file, title, icon and who may open it."""

    path: str  # relative to app.py
    title: str
    icon: str
    roles: frozenset[str] = ALL_ROLES
    default: bool = False


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/cohort.py", "Cohort", ":material/groups:", default=True),
    PageSpec("pages/patient.py", "Patient", ":material/person:"),
    PageSpec("pages/ultrasound.py", "Ultrasound", ":material/straighten:"),
    PageSpec("pages/mdt.py", "MDT meeting", ":material/co_present:",
             roles=frozenset({"clinician"})),
    PageSpec("pages/ingest.py", "Ingest", ":material/upload_file:",
             roles=frozenset({"clinician", "admin"})),
    PageSpec("pages/models.py", "Models", ":material/model_training:"),
    PageSpec("pages/users.py", "Users", ":material/manage_accounts:",
             roles=frozenset({"admin"})),
    PageSpec("pages/audit.py", "Audit trail", ":material/policy:",
             roles=frozenset({"admin"})),
    PageSpec("pages/settings.py", "Settings", ":material/settings:",
             roles=frozenset({"admin"})),
)


def pages_for(viewer: Viewer) -> list[st.Page]:
    """The ``st.Page`` objects this viewer may open, in menu order."""
    return [st.Page(p.path, title=p.title, icon=p.icon, default=p.default)
            for p in PAGES if viewer.role in p.roles]


def show_error(err: HepaTrackError) -> None:
    """An expected error as ``st.error`` plus its hint; never a traceback."""
    st.error(str(err), icon=":material/error:")
    if err.hint:
        st.caption(err.hint)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Show a typed engine error raised inside the block, then stop the page.

    Only :class:`HepaTrackError` is caught: anything else is a bug and must surface.
    """
    try:
        yield
    except HepaTrackError as err:
        show_error(err)
        st.stop()


#: session flag set by app.py; a page run without it did not come through the shell
SHELL_RAN_KEY = key(SHELL, "ran")


def start() -> loaders.AppContext:
    """For app.py: settings, viewer and store; a typed error stops the app with a message."""
    st.session_state[SHELL_RAN_KEY] = True
    with guard():
        settings, store = loaders.open_for_login()
    auth.gate(settings, store)  # shows the login form and stops for anonymous sessions
    with guard():
        return loaders.context()
    raise AssertionError("unreachable: guard() stops the script")  # pragma: no cover


def page_start() -> loaders.AppContext:
    """For page files: like :func:`start`, but only when the page runs inside the shell.

    Until some session has run app.py, Streamlit's legacy multipage mode (a ``pages/``
    folder beside the entry script) can run a page file on its own when the first visitor
    opens its URL directly, skipping app.py and with it the shell (and, later, the login
    gate). Such a run is sent to app.py instead of rendering anything.
    """
    if not st.session_state.get(SHELL_RAN_KEY):
        st.switch_page("app.py")
    with guard():
        settings, store = loaders.open_for_login()
    auth.gate(settings, store)  # again here: a page must never render for an expired session
    with guard():
        return loaders.context()
    raise AssertionError("unreachable: guard() stops the script")  # pragma: no cover


def sidebar(ctx: loaders.AppContext, pages: list[st.Page] | None = None) -> None:
    """Shared sidebar: the page menu, who is viewing, home and database, cohort size."""
    with st.sidebar:
        if pages:
            with st.container(key=key(SHELL, "menu")):
                for page in pages:
                    st.page_link(page)
            st.divider()
        view = "identified" if ctx.viewer.identified else "pseudonymised"
        st.caption(f"Viewing as **{ctx.viewer.username}** ({ctx.viewer.role}, {view})")
        # a callback: it runs before the next script run, whichever page that run renders
        st.button("Sign out", key=key(SHELL, "logout"), icon=":material/logout:",
                  on_click=auth.logout, args=(ctx.store, ctx.viewer))
        with guard():
            counts = loaders.summary(ctx)
        st.metric("Cohort", fmt_count(counts["patients"], "patient"))
        st.caption(f"{fmt_count(counts['studies'], 'study', 'studies')} · "
                   f"{fmt_count(counts['series'], 'series', 'series')} · "
                   f"{fmt_count(counts['events'], 'event')}")
        st.caption(f"Home: `{ctx.settings.home}`")
        st.caption(f"Database: `{loaders.store_label(ctx)}`")
        if st.button("Refresh data", key=key(SHELL, "refresh"), icon=":material/refresh:",
                     help="Re-read the store (data ingested from the command line appears "
                          f"by itself within {loaders.TTL_S} s)"):
            loaders.clear_data_caches()
            st.rerun()


EMPTY_STORE_MESSAGE = (
    "The store is empty: no patients yet. Run `hepatrack demo` to build and load the "
    "synthetic sample cohort, or load your own data with `hepatrack ingest SOURCE` "
    "(DICOM files, folders, zips or a DICOMweb URL) and "
    "`hepatrack import-cohort --visits CSV --outcomes CSV`."
)


def empty_state(ctx: loaders.AppContext) -> bool:
    """Show the empty-store message and return True when the store holds no patients."""
    with guard():
        if loaders.summary(ctx)["patients"]:
            return False
    st.info(EMPTY_STORE_MESSAGE, icon=":material/inbox:")
    st.caption(f"Home in use: `{ctx.settings.home}`")
    return True
