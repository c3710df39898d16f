"""Cached loaders: the only way pages read the store.

- The store (engine + connection pool) is a ``st.cache_resource`` keyed by database URL;
  nobody mutates it.
- Patient data is ``st.cache_data`` with ``scope="session"`` and the viewer's cache key in
  the arguments, so one user's (identified) rows are never served to another user. The
  cohort list is the exception (:func:`patients`): one per data version and view
  (pseudonymised or identified), the same rows whoever of that view asks.
- Store reads are keyed by the store's data version (``analytics.store.version``), checked
  at most every :data:`TTL_S` seconds: data ingested from the command line or another
  server shows up within that time, and unchanged data is never read twice. Entries
  also expire after :data:`MAX_AGE_S` (a change the version cannot see); the sidebar's
  refresh button clears them at once. No ``persist="disk"`` anywhere.
- Widgets are never created inside cached functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from analytics.config import Settings, load_settings
from analytics.errors import AuthError
from analytics.store import repo
from analytics.store.db import Store, open_store
from analytics.store.version import data_version as _store_data_version
from ui import tables
from ui.session import Viewer, current_viewer

#: how long a data version is trusted before the store is asked again (seconds)
TTL_S = 5
#: the longest any store read is kept, whatever the version says (seconds)
MAX_AGE_S = 900
MAX_ENTRIES = 64


@dataclass(frozen=True)
class AppContext:
    """What every page needs: settings, the viewer and the open store."""

    settings: Settings
    viewer: Viewer
    store: Store

    @property
    def database_url(self) -> str:
        return self.settings.database_url


@st.cache_resource(max_entries=4, show_spinner=False)
def _store(home: str, database_url: str) -> Store:
    Path(home).mkdir(parents=True, exist_ok=True)
    return open_store(url=database_url, home=Path(home))  # its site secret keys the audit


def context() -> AppContext:
    """Settings from ``HEPATRACK_HOME``, the current viewer and the (cached) open store.

    Raises
    ------
    ConfigError, StoreError
        If the settings are invalid or the store cannot be opened.
    """
    settings = load_settings()
    viewer = current_viewer()
    if viewer is None:  # defence in depth: the shell's login gate runs first
        raise AuthError("not signed in", hint="open the dashboard's start page and sign in")
    return AppContext(settings=settings, viewer=viewer,
                      store=_store(str(settings.home), settings.database_url))


def open_for_login() -> tuple[Settings, Store]:
    """Settings and the cached store for the login gate (no viewer yet, no patient data)."""
    settings = load_settings()
    return settings, _store(str(settings.home), settings.database_url)


@st.cache_data(ttl=TTL_S, max_entries=4, show_spinner=False)
def _data_version(database_url: str, home: str) -> str:
    return _store_data_version(_store(home, database_url))


def data_version(ctx: AppContext) -> str:
    """The store's data version (a fingerprint, no patient data: one cache for everyone),
    at most :data:`TTL_S` seconds old."""
    return _data_version(ctx.database_url, str(ctx.settings.home))


@st.cache_data(ttl=MAX_AGE_S, max_entries=MAX_ENTRIES, show_spinner=False)
def _summary(database_url: str, home: str, version: str) -> dict[str, Any]:
    return repo.cohort_summary(_store(home, database_url))


def summary(ctx: AppContext) -> dict[str, Any]:
    """Headline counts (no patient-level data, so one cache serves every user)."""
    return _summary(ctx.database_url, str(ctx.settings.home), data_version(ctx))


def store_label(ctx: AppContext) -> str:
    """The database in use, without credentials."""
    return repo.describe_store(ctx.store)


@st.cache_resource(ttl=MAX_AGE_S, max_entries=4, show_spinner=False)
def _patients(identified: bool, database_url: str, home: str, version: str) -> pd.DataFrame:
    return repo.list_patients(_store(home, database_url), identified=identified)


def patients(ctx: AppContext) -> pd.DataFrame:
    """The cohort list as this viewer may see it (see ``repo.list_patients``); read-only.

    One list per data version and view, shared by the sessions whose view it is: the
    pseudonymised list (no names, identifiers or real dates) serves every viewer who may
    not see identities, the identified one only viewers who may (``Viewer.identified``);
    neither depends on who else asks, so a new session reads nothing (a second or more
    per session on a 5,000-patient store). The key is the view, never the viewer's
    name: a researcher's session can only ever get the pseudonymised entry.
    """
    return _patients(bool(ctx.viewer.identified), ctx.database_url, str(ctx.settings.home),
                     data_version(ctx))


@st.cache_resource(ttl=MAX_AGE_S, max_entries=16, show_spinner=False)
def _found(identified: bool, search: str, had_event: bool, database_url: str, home: str,
           version: str) -> pd.DataFrame:
    query = repo.PatientQuery(search=search or None, had_event=had_event)
    return repo.find_patients(_store(home, database_url), query, identified=identified)


def find_patients(ctx: AppContext, search: str, *, had_event: bool = False) -> pd.DataFrame:
    """The rows of :func:`patients` whose pseudonym (identified views: also name or real
    patient ID) contains ``search`` and, with ``had_event``, whose follow-up ended in an
    event other than censoring: filtered in the database (``repo.find_patients``), so a
    search reads only the patients it finds. Read-only.

    Shared like :func:`patients`, per data version, view and filter: the key is the
    view, never the viewer, and a pseudonymised view's search never reads identities.
    Without a filter, the whole list of :func:`patients`.
    """
    text = (search or "").strip()
    if not text and not had_event:
        return patients(ctx)
    return _found(bool(ctx.viewer.identified), text, had_event, ctx.database_url,
                  str(ctx.settings.home), data_version(ctx))


@st.cache_resource(ttl=MAX_AGE_S, max_entries=64, show_spinner=False)
def _page(identified: bool, search: str, had_event: bool, sort: str, offset: int,
          limit: int, database_url: str, home: str, version: str,
          risk: tuple[str, float] | None = None) -> tuple[pd.DataFrame, int]:
    store = _store(home, database_url)
    model, horizon = risk if risk is not None else (None, None)
    whole = repo.PatientQuery(search=search or None, had_event=had_event, risk_model=model,
                              risk_horizon=horizon)
    page = dataclasses.replace(whole, sort=sort, offset=offset, limit=limit)
    return (repo.find_patients(store, page, identified=identified),
            repo.count_patients(store, whole, identified=identified))


def patient_page(ctx: AppContext, search: str, *, had_event: bool, sort: str, offset: int,
                 limit: int, risk: tuple[str, float] | None = None
                 ) -> tuple[pd.DataFrame, int]:
    """One page of the rows of :func:`find_patients`, sorted by ``sort`` (a column of
    ``repo.SORT_COLUMNS``), filtered, sorted and paged in the database, and the size of
    the whole filtered list. With ``risk`` (model id, horizon in years) the rows carry
    that model's stored current risk (``repo.RISK_COLUMNS``) and ``sort`` may be
    ``"risk"``: the page is then chosen by risk in the database too. Shared like
    :func:`patients`; read-only."""
    return _page(bool(ctx.viewer.identified), (search or "").strip(), had_event, sort,
                 int(offset), int(limit), ctx.database_url, str(ctx.settings.home),
                 data_version(ctx), None if risk is None else (str(risk[0]), float(risk[1])))


@st.cache_resource(ttl=MAX_AGE_S, max_entries=16, show_spinner=False)
def _pseudonyms(identified: bool, search: str, had_event: bool, database_url: str,
                home: str, version: str) -> list[str]:
    query = repo.PatientQuery(search=search or None, had_event=had_event)
    return repo.find_pseudonyms(_store(home, database_url), query, identified=identified)


def pseudonyms(ctx: AppContext, search: str, *, had_event: bool) -> list[str]:
    """The pseudonyms of :func:`find_patients` (A to Z), without their rows: what an
    order by risk starts from. Shared like :func:`patients`; read-only."""
    return _pseudonyms(bool(ctx.viewer.identified), (search or "").strip(), had_event,
                       ctx.database_url, str(ctx.settings.home), data_version(ctx))


@st.cache_resource(ttl=MAX_AGE_S, max_entries=64, show_spinner=False)
def _named(identified: bool, names: tuple[str, ...], database_url: str, home: str,
           version: str) -> pd.DataFrame:
    rows = repo.find_patients(_store(home, database_url), repo.PatientQuery(pseudonyms=names),
                              identified=identified)
    return rows.set_index("pseudonym", drop=False).loc[list(names)].reset_index(drop=True)


def patients_named(ctx: AppContext, names: tuple[str, ...]) -> pd.DataFrame:
    """The rows of :func:`patients` of these patients, in this order (a page chosen by
    risk). Shared like :func:`patients`; read-only."""
    return _named(bool(ctx.viewer.identified), names, ctx.database_url,
                  str(ctx.settings.home), data_version(ctx))


#: at most this many patients offered by one picker search (the rest: type more)
PICKER_LIMIT = 20


@dataclass(frozen=True)
class Choices:
    """Patients a picker offers (A to Z), each one's label and, in identified views
    only, real patient ID (empty for pseudonymised views)."""

    options: tuple[str, ...] = ()
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    real_ids: dict[str, str] = dataclasses.field(default_factory=dict)


def _choices(rows: pd.DataFrame) -> Choices:
    options, label = tables.patient_choices(rows)
    real = (dict(zip(rows["pseudonym"], rows["patient_id"], strict=True))
            if "patient_id" in rows.columns else {})
    return Choices(tuple(options), {p: label(p) for p in options},
                   {p: v for p, v in real.items() if isinstance(v, str) and v})


@st.cache_resource(ttl=MAX_AGE_S, max_entries=64, show_spinner=False)
def _picker_search(identified: bool, text: str, limit: int, database_url: str, home: str,
                   version: str) -> Choices:
    store = _store(home, database_url)
    rows = repo.find_names(store, repo.PatientQuery(search=text or None, limit=limit),
                           identified=identified)
    return _choices(rows)


def picker_search(ctx: AppContext, text: str, *, limit: int = PICKER_LIMIT) -> Choices:
    """The first ``limit`` patients (A to Z) whose pseudonym (identified views: also
    name or real patient ID) contains ``text``, found in the database with a ``LIMIT``,
    and each one's picker label (``ui.tables.patient_choices``; ``repo.find_names``: no
    counts, dates or biomarkers read). Without text, the first
    ``limit`` patients. Shared per data version, view and text (never per viewer: a
    pseudonymised view's search reads no identities and its labels hold none).
    Read-only."""
    return _picker_search(bool(ctx.viewer.identified), (text or "").strip(), int(limit),
                          ctx.database_url, str(ctx.settings.home), data_version(ctx))


@st.cache_resource(ttl=MAX_AGE_S, max_entries=256, show_spinner=False)
def _picker_named(identified: bool, names: tuple[str, ...], database_url: str, home: str,
                  version: str) -> Choices:
    rows = repo.find_names(_store(home, database_url), repo.PatientQuery(pseudonyms=names),
                           identified=identified)
    return _choices(rows)


def picker_named(ctx: AppContext, names: tuple[str, ...]) -> Choices:
    """Those of ``names`` that are in the store (A to Z) and their picker labels: the
    current and recent patients of a picker, a linked patient. Shared like
    :func:`picker_search`."""
    if not names:
        return Choices()
    return _picker_named(bool(ctx.viewer.identified), tuple(sorted(set(names))),
                         ctx.database_url, str(ctx.settings.home), data_version(ctx))


@st.cache_resource(ttl=MAX_AGE_S, max_entries=2, show_spinner=False)
def _timeline(database_url: str, home: str, version: str) -> pd.DataFrame:
    return repo.cohort_timeline(_store(home, database_url))


def timeline(ctx: AppContext) -> pd.DataFrame:
    """Scans, visits and outcomes in years since each patient's baseline (read-only).

    Built once per data version and shared by the sessions, like the cohort table
    (``ui.dash``): it holds pseudonyms and intervals only, the same rows for every role
    that may open the cohort (``repo.cohort_timeline``), never names, identifiers or
    dates. Seconds on a 5,000-patient cohort that every new session paid before.
    """
    return _timeline(ctx.database_url, str(ctx.settings.home), data_version(ctx))


@st.cache_data(ttl=MAX_AGE_S, max_entries=MAX_ENTRIES, show_spinner=False, scope="session")
def _patient(viewer_key: str, identified: bool, pseudonym: str, database_url: str,
             home: str, version: str) -> repo.PatientDetail:
    return repo.patient_detail(_store(home, database_url), pseudonym, identified=identified)


def patient(ctx: AppContext, pseudonym: str) -> repo.PatientDetail:
    """One patient's detail as this viewer may see it (see ``repo.patient_detail``).

    Raises
    ------
    StoreError
        If no patient has this pseudonym.
    """
    v = ctx.viewer
    return _patient(v.cache_key, v.identified, pseudonym, ctx.database_url,
                    str(ctx.settings.home), data_version(ctx))


def clear_data_caches() -> None:
    """Drop cached store reads (the open store itself is kept)."""
    for fn in (_data_version, _summary, _patients, _picker_search, _picker_named, _timeline,
               _patient):
        fn.clear()
