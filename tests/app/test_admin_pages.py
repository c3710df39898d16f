"""The Users and Audit trail pages as an admin uses them, the audited table download, and a
PACS url that is not a DICOMweb root, each clicked through the dashboard."""

from __future__ import annotations

import csv
import io

import pytest

from analytics import audit, auth
from analytics.store import open_store
from analytics.usecases import admin
from analytics.usecases.context import Context
from tests.app.conftest import new_app
from tests.app.downloads import (
    BROWSER_COOKIE,
    deferred_downloads,  # noqa: F401 (a fixture)
)
from ui import webguard
from ui.session import VIEWER_KEY

PW = "correct horse battery"
LAST_ADMIN = ("'root' is the last active administrator: {} would leave nobody to manage "
              "accounts")


@pytest.fixture
def accounts(seeded_home, settings):
    store = open_store(settings)
    cli = Context.cli(store)
    for name, role in (("dr.who", "clinician"), ("ana", "researcher"), ("root", "admin")):
        admin.add_user(cli, admin.NewUser(name, role, PW))
    yield store
    store.dispose()


def _login(username: str, password: str = PW):
    at = new_app(viewer=None).run()
    at.text_input(key="auth:username").input(username)
    at.text_input(key="auth:password").input(password)
    at.button[0].click().run()
    assert not at.exception
    return at


def _users_page():
    at = _login("root")
    at.switch_page("pages/users.py").run()
    assert not at.exception
    return at


def _pick(at, username: str):
    at.selectbox(key="users:target").select(username).run()
    assert not at.exception
    return at


def _listed(at) -> dict[str, tuple[str, bool]]:
    table = at.dataframe[0].value
    return {r.username: (r.role, bool(r.disabled)) for r in table.itertuples()}


def _submit(at, label: str):
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception
    return at


# --------------------------------------------------------------------------- users
def test_a_new_user_is_listed_at_once(accounts):
    at = _users_page()
    at.text_input(key="users:username").input("new.nurse")
    at.selectbox(key="users:role").select("clinician")
    at.text_input(key="users:password").input("a long enough secret")
    _submit(at, "Add user")
    assert _listed(at)["new.nurse"] == ("clinician", False)
    assert at.success[0].value == "Added clinician 'new.nurse'."


def test_a_disabled_user_cannot_sign_in_and_their_open_session_ends(accounts):
    session = _login("dr.who")
    assert session.session_state[VIEWER_KEY].username == "dr.who"
    at = _pick(_users_page(), "dr.who")
    at.button(key="users:disable").click().run()
    assert not at.exception
    assert _listed(at)["dr.who"] == ("clinician", True)
    assert at.success[0].value == "'dr.who' is disabled."
    session.run()  # the clinician's next click
    assert VIEWER_KEY not in session.session_state and not session.dataframe
    assert session.warning[0].value == ("Your session has ended: account 'dr.who' has been "
                                        "disabled.")
    again = new_app(viewer=None).run()
    again.text_input(key="auth:username").input("dr.who")
    again.text_input(key="auth:password").input(PW)
    again.button[0].click().run()
    assert again.error[0].value == "account 'dr.who' is disabled"
    assert VIEWER_KEY not in again.session_state
    # enabled again: the same password signs in
    at = _pick(at, "dr.who")
    at.button(key="users:enable").click().run()
    assert _listed(at)["dr.who"] == ("clinician", False)
    assert _login("dr.who").session_state[VIEWER_KEY].role == "clinician"


def test_a_reset_password_signs_in_and_the_old_one_no_longer_does(accounts):
    at = _pick(_users_page(), "ana")
    at.text_input(key="users:new_password").input("the new long secret")
    _submit(at, "Set password")
    assert at.success[0].value.startswith("New password set for 'ana'")
    assert not at.code  # a password the admin typed is not shown back
    old = new_app(viewer=None).run()
    old.text_input(key="auth:username").input("ana")
    old.text_input(key="auth:password").input(PW)
    old.button[0].click().run()
    assert old.error[0].value == "unknown user or wrong password"
    assert _login("ana", "the new long secret").session_state[VIEWER_KEY].username == "ana"
    change = audit.recent(accounts, 10)
    assert {"username": "ana", "change": "password_reset"} in [r["detail"] for r in change]
    assert "the new long secret" not in str(audit.recent(accounts))


def test_a_generated_one_time_password_is_shown_once_and_signs_in(accounts):
    at = _pick(_users_page(), "ana")
    at.button(key="users:generate").click().run()
    assert not at.exception
    (shown,) = at.code
    one_time = shown.value
    assert len(one_time) == 16
    at.run()  # the next click: gone
    assert not at.code
    assert _login("ana", one_time).session_state[VIEWER_KEY].username == "ana"


def test_a_too_short_password_is_refused_where_it_was_typed(accounts):
    at = _pick(_users_page(), "ana")
    at.text_input(key="users:new_password").input("short")
    _submit(at, "Set password")
    assert at.error[0].value == "password for 'ana': at least 12 characters expected"
    assert at.dataframe, "the page goes on after the refusal"
    assert _login("ana").session_state[VIEWER_KEY].username == "ana"


def test_a_role_change_takes_effect_at_the_users_next_click(accounts):
    session = _login("ana")
    assert "patient_name" not in session.dataframe[0].value.columns
    at = _pick(_users_page(), "ana")
    at.selectbox(key="users:new_role").select("clinician").run()
    at.button(key="users:change_role").click().run()
    assert not at.exception
    assert _listed(at)["ana"] == ("clinician", False)
    session.run()
    assert session.warning[0].value == ("Your session has ended: the role of 'ana' changed "
                                        "to clinician; sign in again.")
    # signed in again, ana sees the identified cohort a clinician sees
    table = _login("ana").dataframe[0].value
    assert "Jane DOE" in table["patient_name"].tolist()


@pytest.mark.parametrize(("act", "what"), [
    (lambda at: at.button(key="users:disable").click().run(), "disabling it"),
    (lambda at: at.selectbox(key="users:new_role").select("researcher").run()
     .button(key="users:change_role").click().run(), "making it researcher"),
], ids=["disable", "demote"])
def test_the_last_admin_can_be_neither_disabled_nor_demoted(accounts, act, what):
    at = act(_pick(_users_page(), "root"))
    assert not at.exception
    assert at.error[0].value == LAST_ADMIN.format(what)
    assert at.caption and any("add or enable another admin" in c.value for c in at.caption)
    assert _listed(at)["root"] == ("admin", False)
    root = auth.find_user(accounts, "root")
    assert (root.role, root.disabled) == ("admin", False)


# --------------------------------------------------------------------------- audit trail
def _audit_page():
    at = _login("root")
    at.switch_page("pages/audit.py").run()
    assert not at.exception
    return at


def test_the_audit_filter_narrows_the_rows_and_the_export_has_the_detail_column(
        accounts, deferred_downloads):  # noqa: F811
    at = _audit_page()
    every = at.dataframe[0].value
    assert {"login", "user_add", "audit_view"} <= set(every["action"])
    at.multiselect(key="audit:actions").select("user_add").run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert shown["action"].tolist() == ["user_add"] * 3
    assert shown["detail"].tolist() == ["user root · role admin", "user ana · role researcher",
                                        "user dr.who · role clinician"]
    at.text_input(key="audit:user").input("SYST").run()  # the command line's account
    assert len(at.dataframe[0].value) == 3
    at.text_input(key="audit:user").input("nobody").run()
    assert at.dataframe[0].value.empty
    at.text_input(key="audit:user").input("").run()
    data = deferred_downloads.click(at, "Export these records")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert list(rows[0]) == list(admin.AUDIT_COLUMNS)
    assert [r["detail"] for r in rows] == shown["detail"].tolist()
    last = audit.recent(accounts, 1)[0]
    assert (last["username"], last["action"], last["outcome"]) == ("root", "export", "ok")
    assert last["detail"] == {"step": "download", "what": "audit_trail", "rows": 3,
                              "actions": "user_add"}


def test_the_audit_outcome_filter_keeps_only_refusals(accounts):
    with pytest.raises(auth.AuthError):
        auth.authenticate(accounts, "ana", "not the password")
    at = _audit_page()
    at.multiselect(key="audit:outcomes").select("denied").run()
    table = at.dataframe[0].value
    assert table[["username", "action", "outcome"]].values.tolist() == [
        ["ana", "login", "denied"]]
    assert table["detail"].tolist() == ["reason wrong password · failures 1"]


# --------------------------------------------------------------------------- downloads
def test_a_clinicians_identified_table_download_is_audited(accounts, deferred_downloads):  # noqa: F811
    at = _login("dr.who")
    at.text_input(key="cohort:search").input("Doe").run()
    assert not at.exception
    (label,) = deferred_downloads.labels(at)
    assert label == "Download the table (CSV, 1 row, identified)"
    before = audit.head(accounts)[0]
    data = deferred_downloads.click(at, "Download the table")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert [r["patient_name"] for r in rows] == ["Doe^Jane"]
    # granted to this browser, once (ui.webguard serves it against the grant)
    assert webguard._use(data, BROWSER_COOKIE, spend=True)
    assert not webguard._use(data, BROWSER_COOKIE, spend=True)
    records = [r for r in audit.recent(accounts, 5) if r["seq"] > before]
    assert [(r["username"], r["action"], r["outcome"]) for r in records] == [
        ("dr.who", "export", "ok")]
    assert records[0]["detail"] == {"step": "download", "what": "cohort_table", "rows": 1,
                                    "columns": len(rows[0]), "identified": True}


def test_a_researchers_download_is_pseudonymised_and_audited_too(accounts,
                                                                 deferred_downloads):  # noqa: F811
    at = _login("ana")
    data = deferred_downloads.click(at, "Download the table (CSV, 3 rows, pseudonymised)")
    text = data.decode("utf-8")
    assert "Doe^Jane" not in text and "Jane DOE" not in text and "MRN-111" not in text
    assert [r["pseudonym"] for r in csv.DictReader(io.StringIO(text))] == [
        "HT-0001", "HT-0002", "HT-0003"]
    last = audit.recent(accounts, 1)[0]
    assert (last["username"], last["detail"]["rows"], last["detail"]["identified"]) == (
        "ana", 3, False)


# --------------------------------------------------------------------------- PACS url
def test_a_pacs_url_without_dicom_web_stops_the_dashboard_with_the_setting_named(
        accounts, settings):
    (settings.home / "config.toml").write_text(
        '[[pacs]]\nname = "orthanc"\nurl = "http://pacs.example:8042"\n')
    at = new_app(viewer=None).run()
    assert not at.exception
    assert at.error[0].value == (
        f"{settings.home / 'config.toml'} [[pacs]] entry 1 url = 'http://pacs.example:8042': "
        "expected the DICOMweb root, a URL ending in /dicom-web (Orthanc; /dicomWeb on Google "
        "Cloud Healthcare, /rs on dcm4chee-arc), e.g. http://pacs.example:8042/dicom-web")
    assert not at.text_input  # no login form: nothing runs on a wrong configuration
