"""Audit trail (admins): who saw and did what, to what, and whether the chain is intact;
filtered by user, action, outcome and dates, and exported as CSV (the export is audited)."""

import datetime as dt

import pandas as pd
import streamlit as st

from analytics import audit
from analytics.usecases import admin
from ui import dash, downloads, shell

ctx = shell.page_start()
uc = dash.use_case_context(ctx)
st.title("Audit trail")
left, mid, right = st.columns(3)
who = left.text_input("User", key="audit:user", placeholder="any user",
                      help="Any part of the username, ignoring case")
actions = mid.multiselect("Action", sorted(audit.ACTIONS), key="audit:actions",
                          placeholder="any action")
outcomes = right.multiselect("Outcome", sorted(audit.OUTCOMES), key="audit:outcomes",
                             placeholder="any outcome")
left, right = st.columns([2, 1])
days = left.date_input("Between (UTC days, both included)", value=(), key="audit:days",
                       max_value=dt.date.today() + dt.timedelta(days=1))
limit = right.select_slider("Records to show", options=[100, 500, 2000], value=500,
                            key="audit:limit")
days = tuple(days) if isinstance(days, list | tuple) else (days,)
flt = admin.AuditFilter(username=who, actions=tuple(actions), outcomes=tuple(outcomes),
                        since=days[0] if days else None, until=days[-1] if days else None,
                        limit=limit)
with shell.guard():
    trail = admin.audit_trail(uc, flt)
if trail["ok"]:
    st.success(f"Hash chain intact: {trail['total']} records verified.",
               icon=":material/verified:")
else:
    st.error(f"Hash chain BROKEN: {len(trail['problems'])} problems found.",
             icon=":material/gpp_bad:")
    st.write(trail["problems"][:50])
records = pd.DataFrame(trail["records"], columns=list(admin.AUDIT_COLUMNS))
st.caption(f"{len(records)} records match" + (f" (the newest {limit} shown)"
                                              if len(records) == limit else ""))
st.dataframe(records, hide_index=True, width="stretch", key="audit:table",
             column_config={"detail": st.column_config.TextColumn(
                 "Detail", help="What was done to what: patient, series, model and the "
                                "record's details", width="large")})
downloads.csv_button("Export these records (CSV)", lambda: admin.export_audit(uc, flt),
                     file_name=f"hepatrack-audit-{dt.date.today().isoformat()}.csv",
                     key="audit:export", help="The rows matching the filters above; the "
                                              "export is itself recorded in the trail")
