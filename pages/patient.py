"""Patient page: timeline, risk trajectory with explanations, biomarkers, key images."""

import streamlit as st

from analytics import auth, masks_review, viz
from analytics.errors import HepaTrackError
from analytics.explain import incidence_curves, why_text
from analytics.models.assessability import imaging_only_note
from analytics.names import clinical_name
from analytics.store.repo import KEY_BIOMARKERS
from analytics.usecases import mask_review
from analytics.usecases.mdt_facts import no_series_text
from analytics.viz.prep import event_text
from analytics.vocabulary import event_label
from ui import dash, loaders, patient_view, shell
from ui.format import column_config, fmt_date, fmt_horizon, fmt_years
from ui.session import PATIENT, adopt_query_param, key, publish_query_param

ctx = shell.page_start()
st.title("Patient")
if shell.empty_state(ctx):
    st.stop()

with shell.guard():
    options, label = loaders.patient_choices(ctx)

missing = adopt_query_param("patient", key(PATIENT, "pseudonym"), options)
if missing:
    st.warning(f"Patient “{missing}” is not in the store.", icon=":material/person_off:")
pseudonym = st.selectbox(
    "Patient", options, key=key(PATIENT, "pseudonym"),
    format_func=label)
publish_query_param("patient", key(PATIENT, "pseudonym"), pseudonym)

with shell.guard():
    model_id = dash.active_model_id(ctx)
    # before any patient data shows: the patient and the risk drawn below, one write
    dash.audit_all_once(ctx, dash.patient_views(
        ctx, pseudonym, model_id, st.session_state.get(key(PATIENT, "horizon"))))
    detail = loaders.patient(ctx, pseudonym)

if detail.identified:
    st.subheader(f"{clinical_name(detail.patient_name) or 'Name not recorded'} · {detail.pseudonym}")
    st.caption(f"Patient ID {detail.patient_id or '—'} · born {fmt_date(detail.birth_date)}")
else:
    st.subheader(detail.pseudonym)
    st.caption("Pseudonymised view: dates are shifted per patient; intervals are exact.")

cols = st.columns(patient_view.HEADER_WEIGHTS)
cols[0].metric("Sex", detail.sex or "—")
born_label, born_value, born_help = patient_view.birth_metric(detail)
cols[1].metric(born_label, born_value, help=born_help)
cols[2].metric("Studies", len(detail.studies))
cols[3].metric("Series", len(detail.series))
outcome = detail.outcome
if outcome is None:
    cols[4].metric("Outcome", "—")
else:
    cols[4].metric("Outcome", event_label(outcome.event),
                   help=f"at {fmt_years(outcome.time_years, 2)} from baseline"
                        f" ({fmt_date(outcome.date)})")

conflict = patient_view.birth_conflict(detail)
if conflict:
    st.warning(conflict, icon=":material/warning:")

# the risk and its explanation are drawn at once; these when chosen (kept across patients)
more = st.pills("More charts", patient_view.MORE_CHARTS, selection_mode="multi",
                key=key(PATIENT, "charts"),
                help="The visit timeline and the change since the last scan are drawn when "
                     "chosen; the choice stays as you switch patients") or []
if patient_view.TIMELINE_CHART in more:
    st.plotly_chart(viz.patient_timeline(
        scans=patient_view.timeline_scans(detail),
        visits=patient_view.lab_visits(detail.visits),
        outcome_event=outcome.event if outcome else None,
        outcome_time=outcome.time_years if outcome else None,
        outcome_date=fmt_date(outcome.date) if outcome else None),
        key=key(PATIENT, "timeline"))

# ----------------------------------------------------------------------------- risk
st.subheader("Risk")
view = model = None
if model_id is None:
    st.info("No trained model yet: train one on the Models page or with `hepatrack train`.",
            icon=":material/model_training:")
else:
    try:
        model = dash.model(ctx, model_id)
        horizon = st.segmented_control(
            "Horizon", model.horizons, default=max(model.horizons),
            format_func=fmt_horizon, key=key(PATIENT, "horizon")
        ) or max(model.horizons)
        dash.audit_once(ctx, "predict", patient=pseudonym, model_version=model_id,
                        detail={"horizon": float(horizon)})
        view = dash.trajectory(ctx, model_id, pseudonym, horizon)
    except HepaTrackError as err:
        shell.show_error(err)

if view is not None:
    pts = view.points
    dates = patient_view.visit_dates(detail)
    idx = st.select_slider(
        "Visit explained", list(range(len(pts))), value=patient_view.default_visit(pts),
        format_func=lambda i: patient_view.visit_label(pts, i, dates),
        key=key(PATIENT, f"visit-{pseudonym}"))
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
    else:
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

# ----------------------------------------------------------------------------- biomarkers
st.subheader("Biomarkers over time")
available = list(dict.fromkeys(detail.biomarkers["name"]))
if not available:
    st.info("No biomarkers computed for this patient yet (run `hepatrack features --all`).")
else:
    default = [n for n in KEY_BIOMARKERS if n in available][:3] or available[:3]
    chosen = st.multiselect("Biomarkers", available, default=default,
                            format_func=viz.label_with_unit, key=key(PATIENT, "biomarkers"))
    st.plotly_chart(viz.biomarker_trajectory(
        detail.biomarkers, chosen,
        outcome_event=outcome.event if outcome and outcome.is_event else None,
        outcome_time_years=outcome.time_years if outcome and outcome.is_event else None,
        normal_ranges=patient_view.normal_ranges(chosen)),
        key=key(PATIENT, "trajectory"))
    st.caption("Dotted green lines: published limits of normal (feature registry), where "
               "a source gives one.")
patient_view.show_summary(detail.biomarkers, detail.visits, key(PATIENT, "summary"))
gaps = patient_view.not_measured(detail.biomarkers)
if not gaps.empty:
    with st.expander(f"Not measured on the latest scan ({len(gaps)})",
                     icon=":material/block:"):
        st.dataframe(gaps, hide_index=True, key=key(PATIENT, "gaps"),
                     column_config={"At (y)": st.column_config.NumberColumn(format="%.1f")})

# ----------------------------------------------------------------------------- images
st.subheader("Key images")
choices = patient_view.series_choices(detail.series)
if not choices:
    st.caption(no_series_text(detail.visits))
else:
    uid = st.selectbox("Scan", list(choices), format_func=choices.get,
                       key=key(PATIENT, f"series-{pseudonym}"))
    try:
        with st.spinner("Reading the series…"):
            stack = dash.key_view(ctx, uid)  # stored; the other slices read when shown
    except HepaTrackError as err:
        shell.show_error(err)
        stack = None
    if stack is not None:
        left, right = st.columns([3, 2])
        with right:
            k = st.slider("Slice", 1, stack.n_slices, stack.key_index + 1,
                          key=key(PATIENT, f"slice-{uid}"),
                          help="Slices around the liver (two beyond it at each end), inferior "
                               "to superior; the default is the largest liver "
                               "cross-section. The scan picker counts every slice of "
                               "the series") - 1
            window = "liver"
            if stack.modality == "CT":
                window = st.radio("Window", list(patient_view.WINDOW_LABELS),
                                  format_func=patient_view.WINDOW_LABELS.get,
                                  key=key(PATIENT, "window"))
            overlay = st.toggle("Organ outlines", value=True, key=key(PATIENT, "overlay"))
            st.caption(patient_view.overlay_legend(stack.structures, stack.labels_text))
            shown = patient_view.slice_text(
                k, stack, patient_view.series_slices(detail.series, uid))
            st.caption(f"{shown} · z {stack.z_mm[k]:.0f} mm · "
                       f"liver {stack.liver_area_cm2(k):.0f} cm² · pixel "
                       f"{stack.pixel_mm:.2f} mm")
            for note in stack.notes:
                st.caption(f"⚠ {note}")
        with left:
            try:
                with st.spinner("Reading the series…"):
                    png = dash.key_png(ctx, stack, k, window, overlay)
                st.image(png,
                         caption="Radiological view: patient's right on the left, anterior "
                                 "at the top" + (" · automatic segmentation" if stack.automatic
                                                 else ""),
                         width="stretch")
            except HepaTrackError as err:
                shell.show_error(err)
        review = patient_view.reviewable_outlines(stack.labels_text)
        if review and auth.allowed(dash.actor(ctx), auth.Permission.REVIEW_MASKS):
            with st.expander("Review the automatic outlines", icon=":material/rule:"):
                organ = st.selectbox("Outline", list(review), format_func=review.get,
                                     key=key(PATIENT, f"review-organ-{uid}"))
                if stack.labels_text[organ].startswith("automatic, rejected"):
                    if st.button("Restore the automatic outline",
                                 key=key(PATIENT, f"restore-{uid}")):
                        with shell.guard():
                            mask_review.restore_mask(dash.use_case_context(ctx),
                                                     mask_review.MaskReviewRequest(uid, organ))
                        dash.clear()
                        st.rerun()
                else:
                    reason = st.text_input(
                        "Why is the outline wrong?", max_chars=masks_review.MAX_REASON,
                        key=key(PATIENT, f"review-reason-{uid}"),
                        help="Rejecting withholds every number measured on this outline: "
                             "here, in exports and in the cohort the models learn from")
                    if st.button("Reject the automatic outline", type="primary",
                                 key=key(PATIENT, f"reject-{uid}")):
                        with shell.guard():
                            mask_review.reject_mask(dash.use_case_context(ctx),
                                                    mask_review.MaskReviewRequest(uid, organ,
                                                                                  reason))
                        dash.clear()
                        st.rerun()

# ----------------------------------------------------------------------------- tables
st.subheader("Studies and series")
if detail.series.empty:
    st.caption("No imaging stored for this patient.")
else:
    series = patient_view.series_table(detail.series)
    st.dataframe(series, hide_index=True, column_config=column_config(series),
                 key=key(PATIENT, "series"))

st.subheader("Visits")
if detail.visits.empty:
    st.caption("No lab visits imported for this patient.")
else:
    visits = patient_view.visits_table(detail.visits)
    st.dataframe(visits, hide_index=True, column_config=column_config(visits),
                 key=key(PATIENT, "visits"))
