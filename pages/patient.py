"""Patient page: one patient's scans, series, biomarker trajectories, labs and outcome."""

import streamlit as st

from analytics import viz
from analytics.store.repo import KEY_BIOMARKERS
from ui import loaders, shell
from ui.format import column_config, fmt_date, fmt_years
from ui.session import PATIENT, adopt_query_param, key, publish_query_param

ctx = shell.page_start()
st.title("Patient")
if shell.empty_state(ctx):
    st.stop()

with shell.guard():
    patients = loaders.patients(ctx)
options = patients["pseudonym"].tolist()
names = (dict(zip(patients["pseudonym"], patients["patient_name"], strict=True))
         if "patient_name" in patients.columns else {})

missing = adopt_query_param("patient", key(PATIENT, "pseudonym"), options)
if missing:
    st.warning(f"Patient “{missing}” is not in the store.", icon=":material/person_off:")
pseudonym = st.selectbox(
    "Patient", options, key=key(PATIENT, "pseudonym"),
    format_func=lambda p: f"{p} · {names[p]}" if names.get(p) else p)
publish_query_param("patient", key(PATIENT, "pseudonym"), pseudonym)

with shell.guard():
    detail = loaders.patient(ctx, pseudonym)

if detail.identified:
    st.subheader(f"{detail.patient_name or 'Name not recorded'} · {detail.pseudonym}")
    st.caption(f"Patient ID {detail.patient_id or '—'} · born {fmt_date(detail.birth_date)}")
else:
    st.subheader(detail.pseudonym)
    st.caption("Pseudonymised view: dates are shifted per patient; intervals are exact.")

cols = st.columns(5)
cols[0].metric("Sex", detail.sex or "—")
cols[1].metric("Birth year", detail.birth_year or "—")
cols[2].metric("Studies", len(detail.studies))
cols[3].metric("Series", len(detail.series))
if detail.outcome is None:
    cols[4].metric("Outcome", "—")
else:
    cols[4].metric("Outcome", detail.outcome.event,
                   help=f"at {fmt_years(detail.outcome.time_years, 2)} from baseline"
                        f" ({fmt_date(detail.outcome.date)})")

st.subheader("Biomarkers over time")
available = list(dict.fromkeys(detail.biomarkers["name"]))
if not available:
    st.info("No biomarkers computed for this patient yet (run `hepatrack features --all`).")
else:
    default = [n for n in KEY_BIOMARKERS if n in available][:3] or available[:3]
    chosen = st.multiselect("Biomarkers", available, default=default,
                            format_func=viz.feature_label, key=key(PATIENT, "biomarkers"))
    outcome = detail.outcome
    st.plotly_chart(viz.biomarker_trajectory(
        detail.biomarkers, chosen,
        outcome_event=outcome.event if outcome and outcome.is_event else None,
        outcome_time_years=outcome.time_years if outcome and outcome.is_event else None),
        key=key(PATIENT, "trajectory"))

st.subheader("Studies and series")
if detail.series.empty:
    st.caption("No imaging stored for this patient.")
else:
    series = detail.series.drop(columns=["study_uid", "geometry"], errors="ignore")
    st.dataframe(series, hide_index=True, column_config=column_config(series),
                 key=key(PATIENT, "series"))

st.subheader("Visits")
if detail.visits.empty:
    st.caption("No lab visits imported for this patient.")
else:
    st.dataframe(detail.visits, hide_index=True, column_config=column_config(detail.visits),
                 key=key(PATIENT, "visits"))
