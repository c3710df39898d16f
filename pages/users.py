"""User accounts (admins): list and add local or identity-provider accounts."""

import pandas as pd
import streamlit as st

from analytics.auth import MIN_PASSWORD_LENGTH, Role
from analytics.usecases import admin
from ui import dash, shell

ctx = shell.page_start()
st.title("Users")
with shell.guard():
    rows = admin.users(dash.use_case_context(ctx))
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="users:table")

st.subheader("Add a user")
with st.form("users:add", clear_on_submit=True):
    username = st.text_input("Username", key="users:username")
    role = st.selectbox("Role", [r.value for r in Role], key="users:role")
    sso = st.checkbox("Identity-provider sign-in only (no local password)", key="users:sso")
    password = st.text_input(f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
                             type="password", key="users:password")
    submitted = st.form_submit_button("Add user")
if submitted:
    with shell.guard():
        admin.add_user(dash.use_case_context(ctx),
                       admin.NewUser(username.strip(), role, None if sso else password))
    st.success(f"Added {role} {username.strip()!r}.")
