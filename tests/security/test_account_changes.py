"""An administrator disables, enables, re-roles and resets accounts through use cases; the
last enabled administrator always stays; each change is one audit record without secrets."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest

from analytics import audit, auth
from analytics.audit import Actor
from analytics.errors import AuthError
from analytics.store import accounts, open_store
from analytics.usecases import admin, cohort
from analytics.usecases.context import Context

PW = "correct horse battery"
ROOT = Actor("root", "admin", "s-root")


@pytest.fixture
def store(db_url):
    st = open_store(url=db_url)
    for name, role in (("root", "admin"), ("dr.who", "clinician"), ("ana", "researcher")):
        auth.create_user(st, name, role, PW)
    yield st
    st.dispose()


def _ctx(store, actor: Actor = ROOT) -> Context:
    return Context(actor, store)


def _changes(store) -> list[dict]:
    return [r["detail"] for r in reversed(audit.recent(store)) if r["action"] == "user_change"]


def test_a_disabled_account_cannot_sign_in_and_an_enabled_one_can_again(store):
    admin.set_account_status(_ctx(store), admin.AccountStatus("dr.who", True))
    with pytest.raises(AuthError, match=r"account 'dr\.who' is disabled"):
        auth.authenticate(store, "dr.who", PW)
    admin.set_account_status(_ctx(store), admin.AccountStatus("DR.WHO", False))
    assert auth.authenticate(store, "dr.who", PW).role == "clinician"
    assert _changes(store) == [{"username": "dr.who", "change": "disable"},
                               {"username": "dr.who", "change": "enable"}]


def test_a_reset_password_works_the_old_one_fails_and_the_lock_is_cleared(store):
    for _ in range(auth.LOCK_AFTER):
        with pytest.raises(AuthError):
            auth.authenticate(store, "ana", "wrong guess")
    admin.reset_password(_ctx(store), admin.PasswordReset("ana", "a brand new secret"))
    with pytest.raises(AuthError, match="unknown user or wrong password"):
        auth.authenticate(store, "ana", PW)
    assert auth.authenticate(store, "ana", "a brand new secret").username == "ana"
    assert _changes(store) == [{"username": "ana", "change": "password_reset"}]
    assert "a brand new secret" not in str(audit.recent(store))


def test_a_generated_one_time_password_is_returned_once_and_signs_in(store):
    new = admin.reset_password(_ctx(store), admin.PasswordReset("ana"))
    assert len(new) == auth.GENERATED_PASSWORD_LENGTH == 16
    assert auth.authenticate(store, "ana", new).username == "ana"
    assert new not in str(audit.recent(store))


@pytest.mark.parametrize(("password", "match"), [
    ("short", "at least 12 characters expected"),
])
def test_a_reset_keeps_the_password_policy(store, password, match):
    with pytest.raises(AuthError, match=match):
        admin.reset_password(_ctx(store), admin.PasswordReset("ana", password))
    assert auth.authenticate(store, "ana", PW).username == "ana"
    assert _changes(store) == []


def test_an_identity_provider_account_has_no_password_to_reset(store):
    auth.create_user(store, "eve@example.org", "clinician", None)
    with pytest.raises(AuthError, match="signs in with the identity provider"):
        admin.reset_password(_ctx(store), admin.PasswordReset("eve@example.org"))


def test_a_role_change_is_audited_with_the_old_and_new_role(store):
    admin.change_role(_ctx(store), admin.RoleChange("ana", "clinician"))
    assert auth.find_user(store, "ana").role == "clinician"
    assert _changes(store) == [{"username": "ana", "change": "role", "old": "researcher",
                                "new": "clinician"}]


@pytest.mark.parametrize(("change", "match"), [
    (lambda c: admin.change_role(c, admin.RoleChange("nobody", "admin")), "no such account"),
    (lambda c: admin.change_role(c, admin.RoleChange("ana", "owner")),
     r"role 'owner': expected one of \['clinician', 'researcher', 'admin'\]"),
    (lambda c: admin.set_account_status(c, admin.AccountStatus("nobody", True)),
     "no such account"),
], ids=["unknown-user", "unknown-role", "unknown-user-disable"])
def test_bad_account_changes_are_refused_and_nothing_is_recorded(store, change, match):
    with pytest.raises(AuthError, match=match):
        change(_ctx(store))
    assert _changes(store) == []


@pytest.mark.parametrize(("change", "what"), [
    (lambda c: admin.set_account_status(c, admin.AccountStatus("root", True)), "disabling it"),
    (lambda c: admin.change_role(c, admin.RoleChange("root", "clinician")),
     "making it clinician"),
], ids=["disable", "demote"])
def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(store, change, what):
    with pytest.raises(AuthError, match=f"'root' is the last active administrator: {what} "
                                        "would leave nobody to manage accounts"):
        change(_ctx(store))
    root = auth.find_user(store, "root")
    assert (root.role, root.disabled) == ("admin", False)
    assert _changes(store) == []


def test_with_a_second_admin_one_may_go_and_then_the_other_must_stay(store):
    admin.change_role(_ctx(store), admin.RoleChange("ana", "admin"))
    admin.set_account_status(_ctx(store), admin.AccountStatus("root", True))
    # a disabled admin does not count: ana is now the last active one
    with pytest.raises(AuthError, match="'ana' is the last active administrator"):
        admin.change_role(_ctx(store), admin.RoleChange("ana", "researcher"))
    # re-roling the disabled admin is allowed: it was not active
    admin.change_role(_ctx(store), admin.RoleChange("root", "clinician"))


def test_two_admins_demoting_each_other_in_the_same_instant_leave_one(store):
    admin.change_role(_ctx(store), admin.RoleChange("ana", "admin"))
    root, ana = auth.find_user(store, "root"), auth.find_user(store, "ana")
    # both read "another admin exists"; the guarded UPDATEs then run one after the other
    first = accounts.update_account(store, root.id, role="clinician", keep_an_admin=True)
    second = accounts.update_account(store, ana.id, role="clinician", keep_an_admin=True)
    assert (first, second) == (True, False)
    assert auth.find_user(store, "ana").role == "admin"


def test_an_open_session_ends_when_its_account_is_disabled_or_re_roled(store):
    assert auth.session_refusal(store, "ana", "researcher") is None
    admin.change_role(_ctx(store), admin.RoleChange("ana", "clinician"))
    assert auth.session_refusal(store, "ana", "researcher") == (
        "the role of 'ana' changed to clinician; sign in again")
    admin.set_account_status(_ctx(store), admin.AccountStatus("ana", True))
    assert auth.session_refusal(store, "ana", "clinician") == "account 'ana' has been disabled"


# ----------------------------------------------------------------------- audit filters
def test_the_audit_filter_narrows_by_user_action_outcome_and_day(store):
    with pytest.raises(AuthError):
        auth.authenticate(store, "ana", "wrong guess")
    auth.authenticate(store, "dr.who", PW)
    admin.change_role(_ctx(store), admin.RoleChange("ana", "clinician"))
    every = admin.audit_trail(_ctx(store), admin.AuditFilter())["records"]
    assert [r["action"] for r in every] == ["audit_view", "user_change", "login", "login"]
    logins = admin.audit_trail(_ctx(store), admin.AuditFilter(actions=("login",)))["records"]
    assert [(r["username"], r["outcome"]) for r in logins] == [("dr.who", "ok"),
                                                                ("ana", "denied")]
    denied = admin.audit_trail(_ctx(store), admin.AuditFilter(
        username="AN", outcomes=("denied",)))["records"]
    assert [(r["username"], r["action"]) for r in denied] == [("ana", "login")]
    today = dt.datetime.now(dt.UTC).date()
    assert len(admin.audit_trail(_ctx(store), admin.AuditFilter(
        since=today, until=today))["records"]) == 7  # 4 above, 3 views
    assert admin.audit_trail(_ctx(store), admin.AuditFilter(
        until=today - dt.timedelta(days=1)))["records"] == []


def test_each_record_says_what_was_done_to_what(store):
    admin.change_role(_ctx(store), admin.RoleChange("ana", "clinician"))
    audit.record(store, ROOT, "predict", patient="HT-0007", model_version="cox-3",
                 uids=["1.2", "1.3"], detail={"horizon": 3.0, "identified": False})
    rows = admin.audit_trail(_ctx(store), admin.AuditFilter(
        actions=("user_change", "predict")))["records"]
    assert [r["detail"] for r in rows] == [
        "patient HT-0007 · 2 series · model cox-3 · horizon 3.0 · identified no",
        "user ana · change role · old researcher · new clinician"]


def test_the_audit_export_is_the_filtered_rows_as_safe_csv_and_is_itself_audited(store):
    audit.record(store, Actor("=HYPERLINK(1)", "admin", "s"), "login", "denied")
    admin.change_role(_ctx(store), admin.RoleChange("ana", "clinician"))
    data = admin.export_audit(_ctx(store), admin.AuditFilter(actions=("login",)))
    table = pd.read_csv(io.BytesIO(data))
    assert list(table.columns) == list(admin.AUDIT_COLUMNS)
    assert table["username"].tolist() == ["'=HYPERLINK(1)"]
    last = audit.recent(store, 1)[0]
    assert (last["action"], last["detail"]) == ("export", {
        "step": "download", "what": "audit_trail", "rows": 1, "actions": "login"})


# ----------------------------------------------------------------------- table download
def test_an_identified_table_download_is_audited_with_its_size(store):
    table = pd.DataFrame({"pseudonym": ["HT-0001", "HT-0002"],
                          "patient_name": ["Doe^Jane", "@SUM(A1)"], "risk_pct": [12.5, -3.0]})
    clinician = Actor("dr.who", "clinician", "s-c")
    data = cohort.download_table(_ctx(store, clinician),
                                 cohort.TableDownload(table, "cohort_table", identified=True))
    assert data.decode().splitlines() == ["pseudonym,patient_name,risk_pct",
                                          "HT-0001,Doe^Jane,12.5", "HT-0002,'@SUM(A1),-3.0"]
    last = audit.recent(store, 1)[0]
    assert (last["username"], last["action"], last["outcome"]) == ("dr.who", "export", "ok")
    assert last["detail"] == {"step": "download", "what": "cohort_table", "rows": 2,
                              "columns": 3, "identified": True}
