"""The Patient page's explained visit: the risk trajectory with the chosen visit, its
risk and change, the waterfall of why, the change since the last scan (when chosen) and
the competing events' cumulative incidence (when asked for)."""

from __future__ import annotations

import streamlit as st

from analytics import viz
from analytics.explain import Trajectory, incidence_curves, why_text
from analytics.models.assessability import imaging_only_note
from analytics.store.repo import PatientDetail
from analytics.viz.prep import event_text
from ui import patient_view, shell
from ui.format import fmt_horizon
from ui.session import PATIENT, key


def show_explained_visit(model, view: Trajectory, detail: PatientDetail, pseudonym: str,
                         more: list[str]) -> None:
    """Draw the visit picker, the risk trajectory and the chosen visit's explanation.

    ``model``: the registered model behind ``view``; ``more``: the charts chosen in the
    page's "More charts" (:data:`ui.patient_view.MORE_CHARTS`).
    """
    outcome = detail.outcome
    pts = view.points
    dates = patient_view.visit_dates(detail)
    labels = patient_view.visit_labels(pts, dates)
    idx = st.select_slider(
        "Visit explained", list(range(len(pts))), value=patient_view.default_visit(pts),
        format_func=labels.__getitem__, key=key(PATIENT, f"visit-{pseudonym}"))
    p = pts.iloc[idx]
    st.plotly_chart(viz.risk_trajectory(
        view, outcome_event=outcome.event if outcome else None,
        outcome_time=outcome.time_years if outcome else None,
        selected_time=float(p["time"])), key=key(PATIENT, "risk"))
    st.caption(f"Model `{view.model_id}` · risk of {event_text(view.event)} within "
               f"{fmt_horizon(view.horizon)} of each visit, from the history up to that visit; "
               "band: 95% interval. Visits outside the model's training domain get no number.")
    if not p["assessable"]:
        st.warning(p["plain_reason"] or p["reason"], icon=":material/block:")
        if p["is_scan"]:
            st.info(imaging_only_note(model.model), icon=":material/radiology:")
        return
    scale = patient_view.explanation_scale(view, st.toggle(
        "Show the model's log scale", key=key(PATIENT, "log_scale"),
        disabled=not patient_view.has_log_scale(view),
        help="Contributions to the log relative hazard the model adds up, instead of "
             "percentage points of the risk"))
    change = view.change_since_scan(idx, scale=scale)
    m = st.columns(3)
    ci = (f"95% CI {100 * p['ci_low']:.1f}-{100 * p['ci_high']:.1f}%"
          if p["ci_low"] == p["ci_low"] else None)
    m[0].metric(f"Risk within {view.horizon:g} y", f"{100 * p['risk']:.1f}%", help=ci)
    if change.risk_change is not None:
        m[1].metric(f"Change since the {change.reference_kind} at "
                    f"{change.reference_time:.1f} y",
                    f"{100 * change.risk_change:+.1f} points")
    m[2].metric("Visit", f"{p['time']:.1f} y", help="years since baseline")
    st.caption(f"Risk as of {patient_view.visit_date(pts, idx, dates) or 'an unknown date'}"
               ": the date of the last visit or scan this score uses.")
    # one under the other at the page's full width: side by side, the long feature
    # labels left each plot ~100 px and pushed the axis titles off the figure
    st.markdown(patient_view.why_heading(view, scale))
    st.plotly_chart(viz.shap_waterfall(view.waterfall(idx, scale=scale)),
                    key=key(PATIENT, "waterfall"))
    st.caption(why_text(view.why(idx, scale=scale)))
    if patient_view.CHANGE_CHART in more:
        st.markdown("**What changed since the last scan**")
        st.plotly_chart(viz.change_chart(change), key=key(PATIENT, "change"))
    show_cif = view.competing and st.toggle(
        f"Cumulative incidence of the competing events ({', '.join(view.competing)})",
        key=key(PATIENT, "cif_on"),
        help="Predicted from this visit by the model's cause-specific hazards; "
             "competing events are not treated as censoring")
    if show_cif:
        with shell.guard():
            curves = incidence_curves(model, view, idx)
        st.plotly_chart(viz.competing_incidence(curves), key=key(PATIENT, "cif"))
