"""User accounts (admins): list and add local or identity-provider accounts, change a role,
disable or enable an account, reset a password."""

from collections.abc import Callable

import pandas as pd
import streamlit as st

from analytics.auth import MIN_PASSWORD_LENGTH, Role
from analytics.errors import HepaTrackError
from analytics.usecases import admin
from ui import dash, shell

FLASH_KEY = "users:flash"

ctx = shell.page_start()
uc = dash.use_case_context(ctx)
st.title("Users")


def done(message: str, password: str | None = None) -> None:
    """After a change: rerun, so the table is read again, and say what was done there."""
    st.session_state[FLASH_KEY] = (message, password)
    st.rerun()


def apply(change: Callable[[], object], message: str, *, show_result: bool = False) -> None:
    """Run one use case and report ``message`` (and its result once, with
    ``show_result``); a refusal is shown where the admin clicked and the page goes on."""
    try:
        result = change()
    except HepaTrackError as err:
        shell.show_error(err)
        return
    done(message, str(result) if show_result else None)


def change_user(rows: list[dict]) -> None:
    """Role, access and password of one account, each change through its use case."""
    st.subheader("Change a user")
    name = st.selectbox("User", [r["username"] for r in rows], key="users:target")
    user = next(r for r in rows if r["username"] == name)
    role_tab, access_tab, password_tab = st.tabs(["Role", "Access", "Password"])
    with role_tab:
        roles = [r.value for r in Role]
        new_role = st.selectbox("New role", roles, index=roles.index(user["role"]),
                                key="users:new_role")
        if st.button("Change role", key="users:change_role", disabled=new_role == user["role"]):
            apply(lambda: admin.change_role(uc, admin.RoleChange(name, new_role)),
                  f"{name!r} is now {new_role}; their open sessions end at their next click.")
    with access_tab:
        if user["disabled"]:
            st.caption(f"{name!r} is disabled and cannot sign in.")
            if st.button("Enable account", key="users:enable"):
                apply(lambda: admin.set_account_status(uc, admin.AccountStatus(name, False)),
                      f"{name!r} can sign in again.")
        else:
            st.caption(f"A disabled account cannot sign in; {name!r}'s open sessions end at "
                       "their next click.")
            if st.button("Disable account", key="users:disable", type="primary"):
                apply(lambda: admin.set_account_status(uc, admin.AccountStatus(name, True)),
                      f"{name!r} is disabled.")
    with password_tab:
        if user["sso_only"]:
            st.caption(f"{name!r} signs in with the identity provider: no local password.")
        else:
            with st.form("users:reset", clear_on_submit=True):
                new_password = st.text_input(
                    f"New password (at least {MIN_PASSWORD_LENGTH} characters)",
                    type="password", key="users:new_password")
                set_it = st.form_submit_button("Set password")
            if set_it:
                apply(lambda: admin.reset_password(uc, admin.PasswordReset(name, new_password)),
                      f"New password set for {name!r}; failed sign-ins and any lock are cleared.")
            if st.button("Generate a one-time password", key="users:generate"):
                apply(lambda: admin.reset_password(uc, admin.PasswordReset(name)),
                      f"One-time password set for {name!r}; failed sign-ins and any lock are "
                      "cleared.", show_result=True)


flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    st.success(flash[0], icon=":material/check_circle:")
    if flash[1]:
        st.code(flash[1], language=None)
        st.caption("Shown this once: pass it on to the user, who signs in with it.")

with shell.guard():
    rows = admin.users(uc)
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="users:table",
             column_config={
                 "username": "Username", "role": "Role",
                 "disabled": st.column_config.CheckboxColumn("Disabled"),
                 "sso_only": st.column_config.CheckboxColumn(
                     "Identity provider only", help="Signs in with the identity provider; "
                                                    "no local password")})

if rows:
    change_user(rows)

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
        admin.add_user(uc, admin.NewUser(username.strip(), role, None if sso else password))
    done(f"Added {role} {username.strip()!r}.")
