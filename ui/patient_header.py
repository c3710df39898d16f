"""The Patient page's header: who the patient is, the headline facts (sex, birth, studies,
series, outcome) and a disagreement between the imported age and the birth date."""

from __future__ import annotations

import streamlit as st

from analytics.names import clinical_name
from analytics.store.repo import PatientDetail
from analytics.vocabulary import event_label
from ui import patient_view
from ui.format import fmt_date, fmt_years


def show_header(detail: PatientDetail) -> None:
    """Draw the patient's name (identified views) or pseudonym, the headline metrics and
    the birth-conflict warning (:func:`ui.patient_view.birth_conflict`)."""
    if detail.identified:
        st.subheader(f"{clinical_name(detail.patient_name) or 'Name not recorded'} · "
                     f"{detail.pseudonym}")
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
