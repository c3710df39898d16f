"""The MDT page's one-screen patient summary: the heading and facts line, the risk
metrics and chart, the latest key image and the "why" line, laid out for a laptop or,
in projector mode, for one patient per screen (:mod:`ui.mdt_view` holds the projector's
style and sizes)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import streamlit as st

from analytics import viz
from analytics.errors import HepaTrackError
from analytics.explain import Trajectory
from analytics.store.repo_patient import PatientDetail
from analytics.usecases.mdt_facts import clinical_facts, no_series_text
from analytics.vocabulary import outcome_words
from ui import dash, mdt_view, patient_view, shell
from ui.format import fmt_horizon
from ui.mdt_view import MDT
from ui.session import key

#: the risk chart's height (px) on a laptop
LAPTOP_FIGURE_HEIGHT = 340


def model_and_horizon(ctx: Any, model_id: str | None) -> tuple[Any, float | None]:
    """The active model and the horizon picked in the set-up (the model's longest by
    default); ``(None, None)`` without a model, or when it cannot be loaded (shown)."""
    if model_id is None:
        return None, None
    try:
        model = dash.model(ctx, model_id)
        horizon = st.segmented_control(
            "Horizon", model.horizons, default=max(model.horizons),
            format_func=fmt_horizon, key=key(MDT, "horizon")) or max(model.horizons)
        return model, horizon
    except HepaTrackError as err:
        shell.show_error(err)
        return None, None


def facts_line(detail: PatientDetail, facts_text: str, pos: int, total: int) -> str:
    """The line under the name: the place in the list, sex, outcome, then the clinical
    facts (``facts_text``: age, aetiology, MELD, Child-Pugh, ALBI)."""
    outcome = detail.outcome
    return (f"Patient {pos} of {total} · sex {detail.sex or '—'} · "
            + (f"outcome {outcome_words(outcome.event, outcome.time_years)} · " if outcome
               else "no outcome recorded · ") + facts_text)


def heading(detail: PatientDetail, pseudonym: str, pos: int, total: int) -> None:
    """The patient's name (when identified) and pseudonym, and the facts line."""
    facts = clinical_facts(detail, dt.date.today())
    name = facts.name or "Name not recorded"
    st.subheader(f"{name} · {pseudonym}" if detail.identified else pseudonym, anchor=False)
    # in its own box: projector mode sets it at the body text's size, not the caption's
    st.container(key=key(MDT, "facts")).caption(facts_line(detail, facts.line, pos, total))


def trajectory(ctx: Any, model_id: str | None, pseudonym: str,
               horizon: float | None) -> Trajectory | None:
    """The patient's audited risk trajectory, or None (no model or no horizon, i.e. the
    model could not be loaded, or an error shown)."""
    if model_id is None or horizon is None:
        return None
    try:
        dash.audit_once(ctx, "predict", patient=pseudonym, model_version=model_id,
                        detail={"horizon": float(horizon)})
        return dash.trajectory(ctx, model_id, pseudonym, horizon)
    except HepaTrackError as err:
        shell.show_error(err)
        return None


def risk_panel(view: Trajectory, horizon: float, detail: PatientDetail, large: bool) -> None:
    """The latest risk, its change since the reference scan and the visits scored, over
    the risk chart (projector mode: large text, sized by the screen)."""
    i = view.latest_index()
    m = st.columns(3)
    if i is None:
        m[0].metric(f"Risk within {horizon:g} y", "not assessable")
    else:
        p = view.points.iloc[i]
        m[0].metric(f"Risk within {horizon:g} y", f"{100 * p['risk']:.0f}%",
                    help=f"at the visit at {p['time']:.1f} y")
        ch = view.change_since_scan(i)
        if ch.risk_change is not None:
            m[1].metric(f"Since the {ch.reference_kind}",
                        f"{100 * ch.risk_change:+.0f} pp", help=ch.text)
    m[2].metric("Visits scored", int(view.points["assessable"].sum()))
    outcome = detail.outcome
    fig = viz.risk_trajectory(view, outcome_event=outcome.event if outcome else None,
                              outcome_time=outcome.time_years if outcome else None,
                              selected_time=float(view.points["time"].iloc[i])
                              if i is not None else None,
                              height=LAPTOP_FIGURE_HEIGHT)
    if large:
        mdt_view.projector_chart(fig, key(MDT, "risk"))
    else:
        st.plotly_chart(fig, key=key(MDT, "risk"))


def key_image(ctx: Any, detail: PatientDetail, large: bool) -> None:
    """The latest series' stored key image with its outlines, or why there is none."""
    choices = patient_view.series_choices(detail.series)
    if not choices:
        st.caption(no_series_text(detail.visits))
        return
    uid = next(iter(choices))
    try:
        with st.spinner("Reading the latest scan…"):
            stack = dash.key_view(ctx, uid)  # the stored key slice, with outlines
        if large:  # sized by mdt_view.LARGE_FONT_CSS, with a short caption
            st.container(key=key(MDT, "keyimage")).image(
                stack.png, caption=mdt_view.projector_caption(detail.series, uid,
                                                              stack.structures))
        else:
            st.image(stack.png, caption=f"{choices[uid]} · " + patient_view.overlay_legend(
                stack.structures, stack.labels_text), width="stretch")
    except HepaTrackError as err:
        shell.show_error(err)
