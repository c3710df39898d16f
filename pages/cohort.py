"""Cohort page: every patient in the store, searchable and sortable, with follow-up."""

import streamlit as st

from analytics import viz
from analytics.store.repo import KEY_BIOMARKERS
from ui import loaders, shell, tables
from ui.format import column_config, fmt_count
from ui.session import COHORT, key

ctx = shell.page_start()
st.title("Cohort")
if shell.empty_state(ctx):
    st.stop()

with shell.guard():
    counts = loaders.summary(ctx)
    patients = loaders.patients(ctx)
    timeline = loaders.timeline(ctx)

cols = st.columns(4)
cols[0].metric("Patients", counts["patients"])
cols[1].metric("Studies", counts["studies"])
cols[2].metric("Series", counts["series"])
cols[3].metric("Outcome events", counts["events"],
               help="Patients whose follow-up ended in an event other than censoring")

left, right = st.columns([3, 2])
query = left.text_input("Search by pseudonym", key=key(COHORT, "search"),
                        placeholder="e.g. HT-0001")
sort = right.selectbox("Sort by", list(tables.SORTS), key=key(COHORT, "sort"))
shown = tables.sort_patients(tables.search_patients(patients, query), sort)
st.caption(f"{len(shown)} of {fmt_count(len(patients), 'patient')}")

if shown.empty:
    st.warning(f"No patient matches “{query.strip()}”.", icon=":material/search_off:")
else:
    picked = st.dataframe(shown, hide_index=True, column_config=column_config(shown),
                          on_select="rerun", selection_mode="single-row",
                          key=key(COHORT, "table"))
    rows = picked.selection.rows if picked is not None else []
    if rows:
        pseudonym = str(shown.iloc[rows[0]]["pseudonym"])
        st.page_link("pages/patient.py", label=f"Open patient {pseudonym}",
                     icon=":material/person:", query_params={"patient": pseudonym})
    else:
        st.caption("Select a row to open the patient.")

    st.subheader("Follow-up")
    st.plotly_chart(viz.follow_up_swimmer(tables.only_patients(timeline, shown["pseudonym"])),
                    key=key(COHORT, "swimmer"))

    measured = [n for n in KEY_BIOMARKERS if n in shown.columns and shown[n].notna().any()]
    if measured:
        st.subheader("Latest biomarkers by outcome")
        name = st.selectbox("Biomarker", measured, format_func=viz.feature_label,
                            key=key(COHORT, "biomarker"))
        st.plotly_chart(viz.biomarker_distribution(shown, name),
                        key=key(COHORT, "distribution"))
