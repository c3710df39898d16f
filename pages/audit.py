"""Audit trail (admins): who saw and did what, and whether the chain is intact."""

import pandas as pd
import streamlit as st

from analytics.usecases import admin
from ui import dash, shell

ctx = shell.page_start()
st.title("Audit trail")
limit = st.select_slider("Records to show", options=[100, 500, 2000], value=500,
                         key="audit:limit")
with shell.guard():
    trail = admin.audit_trail(dash.use_case_context(ctx), limit)
if trail["ok"]:
    st.success(f"Hash chain intact: {trail['total']} records verified.",
               icon=":material/verified:")
else:
    st.error(f"Hash chain BROKEN: {len(trail['problems'])} problems found.",
             icon=":material/gpp_bad:")
    st.write(trail["problems"][:50])
records = pd.DataFrame(trail["records"])
if not records.empty:
    records = records[["seq", "ts", "username", "role", "action", "outcome",
                       "patient_pseudonym", "model_version", "session_id"]]
st.dataframe(records, hide_index=True, width="stretch", key="audit:table")
