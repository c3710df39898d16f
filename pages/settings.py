"""Settings (admins): what is in force, and the few settings changed from here."""

import streamlit as st

from analytics.config import load_settings
from analytics.usecases import admin
from ui import dash, shell

ctx = shell.page_start()
st.title("Settings")
with shell.guard():
    view = admin.settings_view(dash.use_case_context(ctx))
st.json(view, expanded=1)

st.subheader("Change")
with st.form("settings:edit"):
    timeout = st.number_input("Idle session timeout (minutes)", min_value=5,
                              max_value=12 * 60, step=5, value=view["session_timeout_min"],
                              key="settings:timeout")
    deid = st.toggle("De-identify on ingest", value=view["deidentify"], key="settings:deid",
                     help="PS3.15 Basic Profile; turn off only for consented research data")
    configs = list(view["radiomics_configs"])
    radiomics = st.selectbox(
        "Default radiomics configuration (research mode)", configs,
        index=configs.index(view["radiomics_config"]), key="settings:radiomics",
        format_func=lambda name: f"{name}: {view['radiomics_configs'][name]}",
        help="used by feature runs with radiomics that name no configuration; "
             "recorded with every run")
    saved = st.form_submit_button("Save")
if saved:
    with shell.guard():
        changes = {"session_timeout_min": int(timeout), "deidentify": bool(deid),
                   "radiomics_config": str(radiomics)}
        for name, value in changes.items():
            if view[name] != value:
                admin.change_setting(dash.use_case_context(ctx),
                                     admin.SettingChange(name, value))
    after = load_settings(ctx.settings.home)
    st.success(f"Saved: session timeout {after.session_timeout_min} min, de-identification "
               f"{'on' if after.deidentify else 'off'}, radiomics configuration "
               f"{after.radiomics_config}.")
