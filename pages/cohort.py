"""Cohort page: every patient with current risk and trend, flags, follow-up and outcomes."""

import pandas as pd
import streamlit as st

from analytics import viz
from analytics.errors import HepaTrackError
from analytics.store.repo import KEY_BIOMARKERS
from ui import cohort_view, dash, downloads, loaders, shell
from ui.format import column_config, fmt_horizon
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
sort = mid.selectbox("Sort by", cohort_view.sort_choices(has_risk=risk is not None),
                     key=key(COHORT, "sort"))
view = cohort_view.CohortView(query, cohort_view.EVENT in shown_flags, sort,
                              tuple(f for f in shown_flags if f in cohort_view.RISK_FILTERS))
size = st.session_state.get(key(COHORT, "page_size"), cohort_view.PAGE_SIZES[0])
page_key = key(COHORT, "page")
if st.session_state.get(key(COHORT, "view")) != view:  # a new search, filter or sort
    st.session_state[key(COHORT, "view")] = view
    st.session_state[page_key] = 1
page = st.session_state.get(page_key, 1)
# the search, the outcome filter, the sort (also by current risk, which the store keeps) and
# the page run in the database; other orders or filters on risk are applied to the risk
# frame, and only the page's rows are read
stored = (model_id, float(horizon)) if risk is not None else None
with shell.guard():
    shown, total = cohort_view.page_of(ctx, view, risk, page - 1, size, stored=stored)
    pages = cohort_view.page_count(total, size)
    if page > pages:  # fewer rows than before (new data): the last page
        st.session_state[page_key] = page = pages
        shown, total = cohort_view.page_of(ctx, view, risk, page - 1, size,
                                           stored=stored)
st.caption(cohort_view.rows_caption(total, counts["patients"], page - 1, size))

if total == 0:
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
paging = st.columns([1, 1, 3])
paging[0].selectbox("Rows per page", cohort_view.PAGE_SIZES, key=key(COHORT, "page_size"))
if pages > 1:
    paging[1].number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1,
                           key=page_key)
downloads.table_button(ctx, cohort_view.whole_table_reader(ctx, view, risk), rows=total,
                       what="cohort_table", key=key(COHORT, "download"))


def whole() -> pd.DataFrame:
    """Every row the viewer's search, filters and sort keep (for the charts)."""
    with shell.guard():
        found = loaders.find_patients(ctx, query, had_event=view.had_event)
    return cohort_view.whole_table(found, view, risk)

# charts are drawn when chosen: the first plotly chart of a page costs the browser its
# bundle and each chart a moment on a large cohort, so the first paint is the table
# the biomarkers measured among the rows kept (the store's, when the rows span pages)
measured = [n for n in KEY_BIOMARKERS if n in shown.columns
            and (shown[n].notna().any() if total <= len(shown) else True)]
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
    st.plotly_chart(dash.swimmer_figure(ctx, timeline, (
        shown if total <= len(shown) else whole())["pseudonym"]),
                    key=key(COHORT, "swimmer"))

if cohort_view.BIOMARKER_CHART in chosen:
    st.subheader("Latest biomarkers by outcome")
    name = st.selectbox("Biomarker", measured, format_func=viz.label_with_unit,
                        key=key(COHORT, "biomarker"))
    st.plotly_chart(viz.biomarker_distribution(shown if total <= len(shown) else whole(), name),
                    key=key(COHORT, "distribution"))
