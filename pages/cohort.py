"""Cohort page: every patient with current risk and trend, flags, follow-up and outcomes."""

import streamlit as st

from analytics import viz
from analytics.errors import HepaTrackError
from analytics.store.repo import KEY_BIOMARKERS
from ui import cohort_view, dash, downloads, loaders, shell, tables
from ui.format import column_config, fmt_count, fmt_horizon
from ui.session import COHORT, key

ctx = shell.page_start()
st.title("Cohort")
if shell.empty_state(ctx):
    st.stop()

with shell.guard():
    counts = loaders.summary(ctx)

cols = st.columns(4)
cols[0].metric("Patients", counts["patients"])
cols[1].metric("Studies", counts["studies"])
cols[2].metric("Series", counts["series"])
cols[3].metric("Outcome events", counts["events"],
               help="Patients whose follow-up ended in an event other than censoring")

# current risk from the active model (a model that fails to load is shown, not hidden)
risk = model = None
with shell.guard():
    model_id = dash.active_model_id(ctx)
if model_id is not None:
    try:
        model = dash.model(ctx, model_id)
        horizon = st.segmented_control(
            "Risk horizon", model.horizons, default=max(model.horizons),
            format_func=fmt_horizon, key=key(COHORT, "horizon"),
            help="Risk of the model's endpoint within this many years of each visit")
        horizon = horizon or max(model.horizons)
        risk = dash.cohort_risk(ctx, model_id, horizon)
    except HepaTrackError as err:
        shell.show_error(err)
        model = risk = None
else:
    st.info("No trained model yet: risk columns appear once a model is trained "
            "(Models page or `hepatrack train`).", icon=":material/model_training:")

left, mid, right = st.columns([3, 2, 2])
search_label = ("Search by name, patient ID or pseudonym" if ctx.viewer.identified
                else "Search by pseudonym")
query = left.text_input(search_label, key=key(COHORT, "search"),
                        placeholder="e.g. Doe or HT-0001" if ctx.viewer.identified
                        else "e.g. HT-0001")
shown_flags = right.multiselect("Show only", cohort_view.FILTERS, key=key(COHORT, "filters"),
                                placeholder="all patients")
# the search and the outcome filter run in the database; the risk flags need the model
with shell.guard():
    found = loaders.find_patients(ctx, query, had_event=cohort_view.EVENT in shown_flags)
table = cohort_view.patient_table(found, risk)
sorts = cohort_view.sort_choices(table)
sort = mid.selectbox("Sort by", sorts, key=key(COHORT, "sort"))
shown = cohort_view.apply_filters(
    tables.sort_patients(table, sort),
    [f for f in shown_flags if f != cohort_view.EVENT])
st.caption(f"{len(shown)} of {fmt_count(counts['patients'], 'patient')}")

if shown.empty:
    what = f"“{query.strip()}”" if query.strip() else "these filters"
    st.warning(f"No patient matches {what}.", icon=":material/search_off:")
    st.stop()

picked = st.dataframe(cohort_view.for_display(shown), hide_index=True,
                      column_config=column_config(shown)
                      | cohort_view.risk_column_config(shown)
                      | cohort_view.display_config(shown),
                      column_order=cohort_view.column_order(shown),
                      on_select="rerun", selection_mode="single-row", key=key(COHORT, "table"))
rows = picked.selection.rows if picked is not None else []
if rows:
    pseudonym = str(shown.iloc[rows[0]]["pseudonym"])
    st.page_link("pages/patient.py", label=f"Open patient {pseudonym}",
                 icon=":material/person:", query_params={"patient": pseudonym})
else:
    st.caption("Select a row to open the patient.")
downloads.table_button(ctx, shown, what="cohort_table", key=key(COHORT, "download"))

# charts are drawn when chosen: the first plotly chart of a page costs the browser its
# bundle and each chart a moment on a large cohort, so the first paint is the table
measured = [n for n in KEY_BIOMARKERS if n in shown.columns and shown[n].notna().any()]
offered = cohort_view.chart_choices(has_risk=risk is not None and model is not None,
                                    has_biomarkers=bool(measured))
chosen = st.pills("Charts", offered, selection_mode="multi",
                  key=key(COHORT, "charts"),
                  help="Choose the charts to draw; the table above is always shown") or []

if cohort_view.RISK_CHART in chosen or cohort_view.INCIDENCE_CHART in chosen:
    st.subheader("Risk across the cohort")
    try:
        gi = dash.incidence(ctx, model_id, horizon)
    except HepaTrackError as err:
        gi = None
        st.info(f"No risk groups: {err}", icon=":material/info:")
    left, right = st.columns(2)
    if cohort_view.RISK_CHART in chosen:
        with left:
            st.markdown("**Current risk**")
            st.plotly_chart(dash.risk_figure(ctx, model_id, horizon, gi),
                            key=key(COHORT, "risk_hist"))
            st.caption(cohort_view.risk_caption(gi))
    if gi is not None and cohort_view.INCIDENCE_CHART in chosen:
        with right if cohort_view.RISK_CHART in chosen else left:
            st.markdown("**Cumulative incidence by predicted-risk group**")
            st.plotly_chart(dash.incidence_figure(ctx, model_id, horizon),
                            key=key(COHORT, "incidence"))
            st.caption(cohort_view.incidence_caption(gi))

if cohort_view.FOLLOW_UP_CHART in chosen:
    st.subheader("Follow-up")
    with shell.guard():
        timeline = loaders.timeline(ctx)
    st.plotly_chart(dash.swimmer_figure(ctx, timeline, shown["pseudonym"]),
                    key=key(COHORT, "swimmer"))

if cohort_view.BIOMARKER_CHART in chosen:
    st.subheader("Latest biomarkers by outcome")
    name = st.selectbox("Biomarker", measured, format_func=viz.label_with_unit,
                        key=key(COHORT, "biomarker"))
    st.plotly_chart(viz.biomarker_distribution(shown, name), key=key(COHORT, "distribution"))
