"""Patient page: timeline, risk trajectory with explanations, biomarkers, key images."""

import streamlit as st

from analytics import viz
from analytics.errors import HepaTrackError
from analytics.store.repo import KEY_BIOMARKERS
from ui import dash, loaders, patient_header, patient_images, patient_risk, patient_view, shell
from ui.format import column_config, fmt_date, fmt_horizon
from ui.picker import choose_patient
from ui.session import PATIENT, key

ctx = shell.page_start()
st.title("Patient")
if shell.empty_state(ctx):
    st.stop()

with shell.guard():
    pseudonym = choose_patient(ctx)
if pseudonym is None:
    st.stop()

with shell.guard():
    model_id = dash.active_model_id(ctx)
    # before any patient data shows: the patient and the risk drawn below, one write
    dash.audit_all_once(ctx, dash.patient_views(
        ctx, pseudonym, model_id, st.session_state.get(key(PATIENT, "horizon"))))
    detail = loaders.patient(ctx, pseudonym)

patient_header.show_header(detail)
outcome = detail.outcome

# the risk and its explanation are drawn at once; these when chosen (kept across patients)
more = st.pills("More charts", patient_view.MORE_CHARTS, selection_mode="multi",
                key=key(PATIENT, "charts"),
                help="The visit timeline, the change since the last scan and the biomarker "
                     "trends are drawn when chosen; the choice stays as you switch "
                     "patients") or []
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
    patient_risk.show_explained_visit(model, view, detail, pseudonym, more)

# ----------------------------------------------------------------------------- biomarkers
st.subheader("Biomarkers over time")
available = list(dict.fromkeys(detail.biomarkers["name"]))
if not available:
    st.info("No biomarkers computed for this patient yet (run `hepatrack features --all`).")
elif patient_view.BIOMARKER_CHART not in more:
    st.caption(f"Trends drawn when chosen: “{patient_view.BIOMARKER_CHART}” in More charts "
               "above.")
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
patient_images.show_key_images(ctx, detail, pseudonym)

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
