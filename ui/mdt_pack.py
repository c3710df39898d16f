"""The MDT page's PDF pack: built in a background job from the meeting list, its
progress polled, and downloaded once per click (audited) without a reusable media URL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from analytics.audit import Actor
from analytics.config import Settings
from analytics.store.db import Store
from analytics.usecases.context import Context
from analytics.usecases.report import ReportRequest, build_mdt_report, download_pack
from ui import dash, jobs, webguard
from ui.jobs import Job
from ui.mdt_view import MDT
from ui.session import key

JOB_KEY = key(MDT, "job")


def pack_controls(ctx: Any, who: Actor, chosen: list[str], *, model: Any,
                  horizon: float | None, meeting: str, day: dt.date) -> None:
    """The "Build the PDF pack" button (greyed out while a pack is being built), the
    job's progress and, once built, the download button."""
    left, right = st.columns([2, 3])
    busy = bool(st.session_state.get(JOB_KEY)) and st.session_state[JOB_KEY].running
    if left.button(f"Build the PDF pack ({len(chosen)} page(s))", type="primary",
                   disabled=busy, key=key(MDT, "export"), icon=":material/picture_as_pdf:"):
        visits = dash.cohort(ctx).visits if model is not None else None
        st.session_state[JOB_KEY] = jobs.start("MDT pack", lambda job: pdf_job(
            job, ctx.store, ctx.settings, who, chosen, model=model, visits=visits,
            horizon=horizon, meeting=meeting))
    with right:
        export_panel(JOB_KEY)
        pack = st.session_state.get(JOB_KEY)
        if pack is not None and pack.status == jobs.DONE:
            download_button(pack.result, ctx.store, who, day)


@st.fragment(run_every=1.0)
def export_panel(job_key: str) -> None:
    """The pack job's progress, polled every second; once it ends, one rerun of the page
    draws the download button (:func:`download_button`) outside this fragment."""
    job: Job | None = st.session_state.get(job_key)
    if job is None:
        return
    if not job.running and not st.session_state.get(key(MDT, f"drawn-{job.id}")):
        # a button inside this fragment would be redrawn every second, revoking its
        # click-time file before a click reached it
        st.session_state[key(MDT, f"drawn-{job.id}")] = True
        st.rerun(scope="app")
    result = dash.settled_job(job, done_text="ready")
    for w in result.warnings if result is not None else []:
        st.caption(f"⚠ {w}")


def pdf_job(job: Job, store: Store, settings: Settings, actor: Actor, patients: list[str], *,
            model: Any, visits: pd.DataFrame | None, horizon: float | None,
            meeting: str | None) -> Any:
    """Build the MDT pack in memory (``analytics.usecases.report.build_mdt_report``)."""
    job.report(f"drawing {len(patients)} page(s)", 0.0)
    return build_mdt_report(Context(actor, store, settings), ReportRequest(
        patients, model=model, visits=visits, horizon=horizon, meeting=meeting,
        progress=job.report))


def download_once(result: Any, store: Store, actor: Actor) -> Callable[[], bytes]:
    """The ``data`` callable of the pack's download button: run on the click, it audits
    the download and grants this browser one fetch of the PDF (``ui.webguard``).

    The PDF is never left at a reusable media URL: Streamlit stores it only when the
    user clicks, and the guard serves it once, to the browser cookie of this session.

    Raises
    ------
    AuditError
        (on the click) If the download cannot be audited: then no file is offered.
    """
    cookie = webguard.browser_cookie()  # read here: the callable runs off the script thread

    def data() -> bytes:
        return webguard.grant(download_pack(Context(actor, store), result), cookie)

    return data


def download_button(result: Any, store: Store, actor: Actor, day: dt.date) -> None:
    """The pack's download button: the file is made on the click (:func:`download_once`),
    with no rerun, so nothing is left at a reusable media URL."""
    kind = "identified" if result.identified else "pseudonymised"
    st.download_button(f"Download the pack ({result.pages} pages, {kind})",
                       download_once(result, store, actor),
                       file_name=f"hepatrack-mdt-{day.isoformat()}.pdf",
                       mime="application/pdf", key=key(MDT, "download"), on_click="ignore",
                       icon=":material/download:")
