"""Cached loaders of the risk dashboard (model, cohort table, trajectories, key images) and
small page helpers (audit of views, the actor, job progress).

Caching follows ``ui.loaders``:

- A loaded model holds no patient data: one ``st.cache_resource`` per model id serves
  every user (nobody mutates it).
- The pseudonymised cohort table and every patient's current risk (the Cohort page's
  heavy work: seconds on a 2,000-patient cohort) are built once per store data version
  (``ui.loaders.data_version``) and shared by the sessions: they hold pseudonyms,
  shifted dates and measurements only, the same rows for every role that may open the
  cohort, never names or identifiers (those come from the viewer-keyed patient list).
  A write to the store gives a new version, so they are rebuilt on the next run. So are
  the Cohort page's figures drawn from them (risk histogram, incidence by risk group,
  follow-up swimmer). The server builds these as it starts (``ui.warmup``).
- So is each patient's risk trajectory (pseudonymised like the table it scores).
- Other patient-level objects (key image stacks) are
  ``st.cache_resource(scope="session")`` with the viewer's cache key among the
  arguments: never shared between sessions or users, not copied on every rerun,
  bounded in number and age. Nothing is persisted to disk.
- After a shared build the process's objects are moved out of the garbage collector's
  reach (``gc.freeze``): the cached tables are hundreds of thousands of long-lived
  objects that every full collection would otherwise walk again (Streamlit's
  after-run collection is off in ``.streamlit/config.toml``).
"""

from __future__ import annotations

import gc
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit import runtime

from analytics import audit, auth, viz
from analytics.errors import HepaTrackError, ModelError
from analytics.explain import (
    ClinicalImportance,
    Trajectory,
    clinical_importance,
    patient_trajectory,
)
from analytics.store import key_images
from analytics.store.pseudonyms import view_dates
from analytics.usecases.context import Context, record_views
from ui import jobs, loaders, tables
from ui.loaders import AppContext

MAX_AGE_S = loaders.MAX_AGE_S
_AUDITED_KEY = "dash:audited"


@dataclass(frozen=True)
class CohortData:
    """The cohort table split by patient (read-only)."""

    visits: pd.DataFrame
    outcomes: pd.DataFrame
    by_patient: dict[str, pd.DataFrame] = field(default_factory=dict)

    def visits_of(self, pseudonym: str) -> pd.DataFrame:
        return self.by_patient.get(pseudonym, self.visits.iloc[0:0])


def actor(ctx: AppContext) -> audit.Actor:
    """The engine's audit actor for the current viewer."""
    v = ctx.viewer
    return audit.Actor(v.username, v.role, v.session_id)


def use_case_context(ctx: AppContext) -> Context:
    """The use cases' context (``analytics.usecases``) for the current viewer."""
    return Context(actor(ctx), ctx.store, ctx.settings)


def page_allowed(ctx: AppContext, path: str) -> bool:
    """Whether the viewer's role may open the page registered at ``path`` (defence in depth:
    the navigation only lists allowed pages, and a page checks again)."""
    from ui.shell import PAGES

    spec = next((p for p in PAGES if p.path == path), None)
    return spec is not None and ctx.viewer.role in spec.roles


def deny(ctx: AppContext, what: str) -> None:
    """Say that this viewer may not use the page, and stop it."""
    st.error(f"{ctx.viewer.username} ({ctx.viewer.role}) may not {what}.",
             icon=":material/lock:")
    st.caption("Ask an administrator for an account with the right role.")
    st.stop()


def audit_once(ctx: AppContext, action: str, *, patient: str | None = None,
               model_version: str | None = None, detail: dict | None = None) -> None:
    """Audit ``action`` when what it concerns changed since the last record of that action
    in this session (a rerun of the same view writes nothing).

    Raises
    ------
    AuditError
        If the record cannot be written (the caller's ``guard()`` stops the page before
        the data renders).
    """
    audit_all_once(ctx, [audit.Event(action, patient=patient, model_version=model_version,
                                     detail=detail)])


def audit_all_once(ctx: AppContext, views: list[audit.Event]) -> None:
    """:func:`audit_once` of each view, the changed ones written together (one durable
    write: ``analytics.usecases.context.record_views``).

    Raises
    ------
    PermissionDeniedError, AuditError
        If a view is refused or the records cannot be written (none is then marked as
        audited, so the next run tries again).
    """
    seen = st.session_state.setdefault(_AUDITED_KEY, {})

    def what(v: audit.Event):
        return (v.patient, v.model_version, tuple(sorted((v.detail or {}).items())))

    new = [v for v in views if seen.get(v.action) != what(v)]
    if not new:
        return
    record_views(use_case_context(ctx), new)
    for v in new:
        seen[v.action] = what(v)


# --------------------------------------------------------------------------- model
# Cached functions take the context as ``_ctx``: Streamlit does not hash arguments whose
# name starts with an underscore, so the key is the viewer, database, home and ids.
@st.cache_resource(max_entries=4, show_spinner=False)
def _model(home: str, database_url: str, model_id: str, _ctx: AppContext):
    from analytics.models.registry import load_model

    return load_model(_ctx.store, _ctx.settings, model_id)


def active_model_id(ctx: AppContext) -> str | None:
    """The id of the active model (the newest when none is marked active), or None."""
    mid = loaders.summary(ctx).get("active_model")
    if mid:
        return str(mid)
    from analytics.models.registry import list_models

    models = list_models(ctx.store)
    return str(models[0]["model_id"]) if models else None


def model(ctx: AppContext, model_id: str | None = None):
    """The loaded model ``model_id`` (default the active one), or None when none exists.

    Raises
    ------
    ModelIntegrityError
        If the stored artifact fails its integrity checks.
    """
    mid = model_id or active_model_id(ctx)
    if mid is None:
        return None
    return _model(str(ctx.settings.home), ctx.database_url, mid, ctx)


def patient_views(ctx: AppContext, pseudonym: str, model_id: str | None,
                  horizon: Any = None) -> list[audit.Event]:
    """What the Patient page shows of ``pseudonym``, to audit before any of it is drawn:
    the patient view, and the prediction of ``model_id`` at ``horizon`` (the horizon
    picker's value, default the model's longest) when the model loads and the viewer may
    predict. The page audits the prediction again where it is drawn: a no-op when this
    guess was right, the record of the horizon actually shown when it was not."""
    views = [audit.Event("view_patient", patient=pseudonym)]
    if model_id is None or not auth.allowed(actor(ctx), auth.Permission.PREDICT):
        return views
    try:
        horizons = model(ctx, model_id).horizons
    except HepaTrackError:  # the Risk section shows the error; the view is still audited
        return views
    h = horizon if horizon in horizons else max(horizons)
    return [*views, audit.Event("predict", patient=pseudonym, model_version=model_id,
                                detail={"horizon": float(h)})]


# --------------------------------------------------------------------------- cohort
def _freeze_long_lived() -> None:
    """In the server: collect once (what an earlier freeze kept included), then exempt
    everything alive, the caches just built among it, from later collections. Builds are
    rare (once per data version), so the one full walk here replaces one per run."""
    if not runtime.exists():  # AppTest and scripts: leave the test process's GC alone
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@st.cache_resource(ttl=MAX_AGE_S, max_entries=2, show_spinner=False)
def _cohort(database_url: str, home: str, version: str, _ctx: AppContext) -> CohortData:
    from analytics.cohort import build_cohort

    table = build_cohort(_ctx.store)
    v = table.visits
    by = {str(k): g for k, g in v.groupby("patient", sort=False)} if not v.empty else {}
    data = CohortData(visits=v, outcomes=table.outcomes, by_patient=by)
    _freeze_long_lived()
    return data


def cohort(ctx: AppContext) -> CohortData:
    """The pseudonymised cohort table (``analytics.cohort.build_cohort``), built once per
    store data version (read-only)."""
    return _cohort(ctx.database_url, str(ctx.settings.home), loaders.data_version(ctx), ctx)


# Shared like the cohort table it scores (pseudonyms, stored dates, risks and SHAP values:
# the same for every viewer; the identified view maps dates itself): a patient opened in
# one session is not scored again in the next, by any role.
@st.cache_resource(ttl=MAX_AGE_S, max_entries=128, show_spinner=False)
def _trajectory(database_url: str, home: str, version: str, model_id: str,
                pseudonym: str, horizon: float, _ctx: AppContext) -> Trajectory:
    m = _model(home, database_url, model_id, _ctx)
    data = _cohort(database_url, home, version, _ctx)
    return patient_trajectory(m, data.visits_of(pseudonym), pseudonym, horizon)


def trajectory(ctx: AppContext, model_id: str, pseudonym: str, horizon: float) -> Trajectory:
    """One patient's :class:`analytics.explain.Trajectory`, built once per data version,
    model, patient and horizon and shared by the sessions (read-only).

    Raises
    ------
    ModelError
        If the patient has no visit in the cohort table or the horizon is unknown.
    """
    if pseudonym not in cohort(ctx).by_patient:
        raise ModelError(f"patient {pseudonym}: no visits in the cohort table to score",
                         hint="import labs with `hepatrack import-cohort` or extract "
                              "imaging features")
    return _trajectory(ctx.database_url, str(ctx.settings.home), loaders.data_version(ctx),
                       model_id, pseudonym, float(horizon), ctx)


@st.cache_resource(ttl=MAX_AGE_S, max_entries=8, show_spinner=False)
def _cohort_risk(database_url: str, home: str, version: str, model_id: str,
                 horizon: float, _ctx: AppContext) -> pd.DataFrame:
    from analytics.store.current_risk import current_risk_version
    from analytics.store.patient_flags import automatic_segmentation_patients
    from analytics.usecases.current_risk import record_risk_frame
    from analytics.usecases.overview import cohort_risk, flags_of

    m = _model(home, database_url, model_id, _ctx)
    data = _cohort(database_url, home, version, _ctx)
    risk = cohort_risk(m, data.visits, horizon)
    # kept in the store too, so the cohort list sorts and pages by risk in SQL
    # (unless training or `predict --all` already stored it from the same data)
    if current_risk_version(_ctx.store, model_id, horizon) != version:
        record_risk_frame(_ctx.store, model_id, horizon, risk, data_version=version)
    risk["flags"] = flags_of(risk, automatic_segmentation_patients(_ctx.store))
    _freeze_long_lived()
    return risk


def _view_dates(ctx: AppContext, pseudonyms: pd.Series, stored: pd.Series) -> pd.Series:
    """Stored dates as this viewer sees them (real for the identified view)."""
    dates = [d.date() if pd.notna(d) else None for d in pd.to_datetime(stored)]
    shown = view_dates(ctx.store, pseudonyms.tolist(), dates,
                       identified=ctx.viewer.identified)
    return pd.Series(pd.to_datetime(pd.Series(shown, dtype=object)).to_numpy(),
                     index=stored.index)


def cohort_risk(ctx: AppContext, model_id: str, horizon: float) -> pd.DataFrame:
    """Every patient's current risk, trend and flags (``analytics.usecases.overview``); read-only."""
    args = (ctx.database_url, str(ctx.settings.home), loaders.data_version(ctx), model_id,
            float(horizon))
    if not ctx.viewer.identified:  # the shared table holds stored (shifted) dates
        return _cohort_risk(*args, ctx)
    return _identified_cohort_risk(ctx.viewer.cache_key, *args, ctx)


@st.cache_resource(ttl=MAX_AGE_S, max_entries=8, show_spinner=False)
def _identified_cohort_risk(viewer_key: str, database_url: str, home: str, version: str,
                            model_id: str, horizon: float, _ctx: AppContext) -> pd.DataFrame:
    """The shared cohort risk with real "as of" dates, per identified viewer and data
    version (a copy: the shared entry keeps the stored dates); read once, not per rerun."""
    risk = _cohort_risk(database_url, home, version, model_id, horizon, _ctx).copy()
    risk["risk_date"] = _view_dates(_ctx, risk["pseudonym"], risk["risk_date"])
    return risk


@st.cache_resource(ttl=MAX_AGE_S, max_entries=8, show_spinner=False)
def _incidence(database_url: str, home: str, version: str, model_id: str,
               horizon: float, _ctx: AppContext):
    from analytics.usecases.overview import incidence_by_group

    m = _model(home, database_url, model_id, _ctx)
    data = _cohort(database_url, home, version, _ctx)
    return incidence_by_group(m, _cohort_risk(database_url, home, version, model_id,
                                              horizon, _ctx), data.outcomes)


def incidence(ctx: AppContext, model_id: str, horizon: float):
    """Observed incidence by predicted-risk group (``GroupIncidence``).

    Raises
    ------
    ModelError
        If too few patients can be grouped.
    """
    return _incidence(ctx.database_url, str(ctx.settings.home), loaders.data_version(ctx),
                      model_id, float(horizon), ctx)


# --------------------------------------------------------------------------- cohort charts
# Shared like the builds they draw (pseudonyms, intervals and risks only): a figure is
# made once per data version and choice, not on every rerun of every session (plotly's
# figure construction and validation cost ~0.1-0.4 s per chart on a 5,000-patient
# cohort). Read-only: ``st.plotly_chart`` serialises a copy.
@st.cache_resource(ttl=MAX_AGE_S, max_entries=8, show_spinner=False)
def _risk_figure(database_url: str, home: str, version: str, model_id: str, horizon: float,
                 cuts: tuple[float, ...] | None, _ctx: AppContext) -> go.Figure:
    m = _model(home, database_url, model_id, _ctx)
    risk = _cohort_risk(database_url, home, version, model_id, horizon, _ctx)
    return viz.risk_distribution(risk, event=m.events.label, horizon=horizon,
                                 cuts=list(cuts) if cuts is not None else None)


def risk_figure(ctx: AppContext, model_id: str, horizon: float, gi=None) -> go.Figure:
    """The current-risk histogram of the cohort, with the cut points of the risk groups
    ``gi`` (``incidence``) when there are groups."""
    cuts = tuple(float(c) for c in gi.cuts) if gi is not None else None
    return _risk_figure(ctx.database_url, str(ctx.settings.home), loaders.data_version(ctx),
                        model_id, float(horizon), cuts, ctx)


@st.cache_resource(ttl=MAX_AGE_S, max_entries=8, show_spinner=False)
def _incidence_figure(database_url: str, home: str, version: str, model_id: str,
                      horizon: float, _ctx: AppContext) -> go.Figure:
    return viz.incidence_by_risk_group(_incidence(database_url, home, version, model_id,
                                                  horizon, _ctx))


def incidence_figure(ctx: AppContext, model_id: str, horizon: float) -> go.Figure:
    """The observed incidence by predicted-risk group (raises as :func:`incidence`)."""
    return _incidence_figure(ctx.database_url, str(ctx.settings.home),
                             loaders.data_version(ctx), model_id, float(horizon), ctx)


@st.cache_resource(ttl=MAX_AGE_S, max_entries=8, show_spinner=False)
def _swimmer_figure(database_url: str, home: str, version: str, patients: str,
                    _timeline: pd.DataFrame) -> go.Figure:
    return viz.follow_up_swimmer(_timeline)


def swimmer_figure(ctx: AppContext, timeline: pd.DataFrame, pseudonyms: pd.Series
                   ) -> go.Figure:
    """The follow-up swimmer of the patients ``pseudonyms`` (the rows the table shows),
    from the shared ``ui.loaders.timeline``; one figure per data version and patient set."""
    chosen = tables.only_patients(timeline, pseudonyms)
    which = hashlib.sha256("\n".join(sorted(map(str, pseudonyms))).encode()).hexdigest()
    return _swimmer_figure(ctx.database_url, str(ctx.settings.home),
                           loaders.data_version(ctx), which, chosen)


# --------------------------------------------------------------------------- images
@st.cache_resource(ttl=MAX_AGE_S, max_entries=6, show_spinner=False, scope="session")
def _key_stack(viewer_key: str, database_url: str, home: str, series_uid: str,
               _ctx: AppContext):
    from analytics.usecases.keyimage import load_key_image

    return load_key_image(_ctx.store, _ctx.settings, series_uid)


def key_stack(ctx: AppContext, series_uid: str):
    """The display stack of one series (``analytics.usecases.keyimage``), per series and user.

    Raises
    ------
    IngestError, InvalidSeriesError, FeatureError
        If the series cannot be loaded or oriented.
    """
    return _key_stack(ctx.viewer.cache_key, ctx.database_url, str(ctx.settings.home),
                      series_uid, ctx)


@st.cache_data(ttl=MAX_AGE_S, max_entries=16, show_spinner=False, scope="session")
def _key_view(viewer_key: str, database_url: str, home: str, series_uid: str,
              version: str | None, _ctx: AppContext):
    from analytics.usecases.keyview import key_view

    return key_view(_ctx.store, _ctx.settings, series_uid)


def key_view(ctx: AppContext, series_uid: str):
    """The stored key view of one series (``analytics.usecases.keyview``: the key slice
    rendered and the slider's facts), rendered and stored on its first view; per series,
    inputs' version and user.

    Raises
    ------
    IngestError, InvalidSeriesError, FeatureError
        If the series cannot be loaded or oriented.
    """
    version = key_images.inputs_version(ctx.store, series_uid)
    return _key_view(ctx.viewer.cache_key, ctx.database_url, str(ctx.settings.home),
                     series_uid, version, ctx)


def key_png(ctx: AppContext, view, k: int, window: str, overlay: bool) -> bytes:
    """PNG of slice ``k`` of the series of ``view``: the stored key slice when that is
    what is asked for (default window, outlines on), else rendered from the series."""
    if k == view.key_index and window == "liver" and overlay:
        return view.png
    return slice_png(ctx, view.series_uid, k, window, overlay)


@st.cache_data(ttl=MAX_AGE_S, max_entries=256, show_spinner=False, scope="session")
def _slice_png(viewer_key: str, database_url: str, home: str, series_uid: str, k: int,
               window: str, overlay: bool, _ctx: AppContext) -> bytes:
    from analytics.usecases.keyimage import WINDOWS, png_bytes, render_slice

    stack = _key_stack(viewer_key, database_url, home, series_uid, _ctx)
    win = WINDOWS.get(window) if stack.modality == "CT" else None
    return png_bytes(render_slice(stack, k, win, overlay=overlay))


def slice_png(ctx: AppContext, series_uid: str, k: int, window: str, overlay: bool) -> bytes:
    """PNG of slice ``k`` of a series in a named window (``analytics.usecases.keyimage.WINDOWS``)."""
    return _slice_png(ctx.viewer.cache_key, ctx.database_url, str(ctx.settings.home),
                      series_uid, int(k), window, bool(overlay), ctx)


# --------------------------------------------------------------------------- models
@st.cache_data(ttl=MAX_AGE_S, max_entries=8, show_spinner=False)
def _drivers(home: str, database_url: str, model_id: str, horizon: float | None,
             _ctx: AppContext) -> ClinicalImportance:
    return clinical_importance(_model(home, database_url, model_id, _ctx), horizon)


def drivers(ctx: AppContext, model_id: str, horizon: float | None = None
            ) -> ClinicalImportance:
    """Global drivers of a model, on its scale and in percentage points of the risk at
    ``horizon`` (default its longest); aggregates over its training sample, no patient
    rows, so one cache serves every user."""
    return _drivers(str(ctx.settings.home), ctx.database_url, model_id, horizon, ctx)


def clear() -> None:
    """Drop the cached cohort-level data and key images (after ingest, training,
    activation or a mask review)."""
    for fn in (_cohort, _trajectory, _cohort_risk, _incidence, _risk_figure,
               _incidence_figure, _swimmer_figure, _key_stack, _key_view, _slice_png):
        fn.clear()
    loaders.clear_data_caches()


# --------------------------------------------------------------------------- jobs
def job_status(job: jobs.Job, *, done_text: str | None = None) -> dict[str, Any]:
    """Draw a job's progress (status box, bar, last log lines); returns its snapshot."""
    snap = job.snapshot()
    state = {"queued": "running", "running": "running", "done": "complete",
             "failed": "error"}[snap["status"]]
    label = (f"{job.label}: {snap['message'] or snap['status']}" if job.running
             else f"{job.label}: {done_text or 'done'} in {snap['seconds']:.0f} s"
             if snap["status"] == "done" else f"{job.label}: failed")
    with st.status(label, state=state, expanded=job.running):
        if snap["fraction"] is not None:
            st.progress(snap["fraction"], text=f"{100 * snap['fraction']:.0f}%")
        elif job.running:
            st.caption(f"{snap['seconds']:.0f} s elapsed")
        for line in snap["lines"][-12:]:
            st.text(line)
    return snap


def settled_job(job: jobs.Job, *, done_text: str | None = None) -> Any | None:
    """Draw a job's status; return its result once it finished, else None.

    A typed engine error is shown with its hint (``None`` returned); any other exception
    in the job is a bug and is re-raised here so it surfaces.
    """
    from ui import shell  # shell imports the loaders this module builds on

    job_status(job, done_text=done_text)
    if job.running:
        return None
    job.raise_bug()
    if job.error is not None:
        shell.show_error(job.error)
        return None
    return job.result
