"""The login gate: nothing renders for an anonymous session; logins are checked and audited."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from analytics import audit, auth
from analytics.store import open_store
from analytics.usecases import admin
from analytics.usecases.context import Context
from tests.app.conftest import new_app
from ui.auth import CLOCK_KEY
from ui.session import VIEWER_KEY

PW = "correct horse battery"


@pytest.fixture
def accounts(seeded_home, settings):
    store = open_store(settings)
    cli = Context.cli(store)  # accounts made as the command line makes them: audited
    for name, role in (("dr.who", "clinician"), ("ana", "researcher"), ("root", "admin")):
        admin.add_user(cli, admin.NewUser(name, role, PW))
    yield store
    store.dispose()


def _all_text(at) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.title, *at.info, *at.error)]
    for df in at.dataframe:
        parts.append(df.value.to_string())
    return "\n".join(str(p) for p in parts)


def _login(at, username, password):
    at.text_input(key="auth:username").input(username)
    at.text_input(key="auth:password").input(password)
    at.button[0].click().run()
    return at


def test_anonymous_session_sees_only_the_login_form(accounts):
    at = new_app(viewer=None).run()
    assert not at.exception
    assert at.text_input(key="auth:password") is not None
    assert not at.dataframe
    text = _all_text(at)
    assert "HT-000" not in text and "Doe^Jane" not in text and "Jane DOE" not in text


def test_wrong_password_is_refused_and_audited(accounts):
    at = _login(new_app(viewer=None).run(), "dr.who", "not the password")
    assert not at.exception
    assert "unknown user or wrong password" in at.error[0].value
    assert not at.dataframe
    last = audit.recent(accounts, 1)[0]
    assert (last["username"], last["action"], last["outcome"]) == ("dr.who", "login", "denied")


def test_clinician_login_opens_the_identified_cohort(accounts):
    at = _login(new_app(viewer=None).run(), "dr.who", PW)
    assert not at.exception
    assert at.session_state[VIEWER_KEY].role == "clinician"
    table = at.dataframe[0].value
    assert "Jane DOE" in table["patient_name"].tolist()
    last = audit.recent(accounts, 1)[0]
    assert (last["username"], last["action"], last["outcome"]) == ("dr.who", "login", "ok")


def test_researcher_login_never_shows_a_real_name(accounts):
    at = _login(new_app(viewer=None).run(), "ana", PW)
    assert not at.exception
    assert at.dataframe, "the cohort table should render"
    text = _all_text(at)
    assert not any(n in text for n in ("Doe^Jane", "Jane DOE", "Roe^Richard", "Richard ROE"))


def test_expired_session_returns_to_the_login(accounts):
    at = _login(new_app(viewer=None).run(), "ana", PW)
    clock = at.session_state[CLOCK_KEY]
    clock.last_seen -= dt.timedelta(minutes=clock.idle_minutes + 1)
    at.session_state[CLOCK_KEY] = clock
    at.run()
    assert not at.exception
    assert not at.dataframe
    assert "expired" in at.info[0].value


def test_sign_out_ends_the_session_and_is_audited(accounts):
    at = _login(new_app(viewer=None).run(), "ana", PW)
    at.button(key="shell:logout").click().run()
    assert not at.exception
    assert VIEWER_KEY not in at.session_state
    assert not at.dataframe
    assert audit.recent(accounts, 1)[0]["action"] == "logout"


def test_two_sessions_side_by_side_never_share_a_view(accounts):
    clinician = _login(new_app(viewer=None).run(), "dr.who", PW)
    researcher = _login(new_app(viewer=None).run(), "ana", PW)
    for _ in range(2):  # interleaved reruns in one process, one cache
        clinician.run()
        researcher.run()
        assert "patient_name" in clinician.dataframe[0].value.columns
        assert "patient_name" not in researcher.dataframe[0].value.columns
        assert not any(n in _all_text(researcher) for n in ("Doe^Jane", "Jane DOE"))


def test_admin_sees_the_audit_trail_and_its_verification(accounts):
    at = _login(new_app(viewer=None).run(), "root", PW)
    at.switch_page("pages/audit.py").run()
    assert not at.exception
    assert "Hash chain intact" in at.success[0].value
    table = at.dataframe[0].value
    assert {"login", "user_add", "audit_view"} <= set(table["action"])


def test_admin_adds_a_user_from_the_users_page(accounts):
    at = _login(new_app(viewer=None).run(), "root", PW)
    at.switch_page("pages/users.py").run()
    at.text_input(key="users:username").input("new.user")
    at.selectbox(key="users:role").select("researcher")
    at.text_input(key="users:password").input("a long enough secret")
    at.button[-1].click().run()
    assert not at.exception
    assert "new.user" in {u["username"] for u in auth.list_users(accounts)}


@pytest.mark.parametrize("page", ["pages/audit.py", "pages/users.py"])
def test_admin_pages_are_not_in_a_clinicians_navigation(accounts, page):
    """Not offered, and not reachable: the engine refuses too (tests/security/test_admin.py)."""
    at = _login(new_app(viewer=None).run(), "dr.who", PW)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(page)


def test_admin_changes_the_session_timeout_from_the_settings_page(accounts, settings,
                                                                  monkeypatch):
    from analytics.features import totalseg

    monkeypatch.setattr(totalseg, "_installed_version", lambda: None)
    at = _login(new_app(viewer=None).run(), "root", PW)
    at.switch_page("pages/settings.py").run()
    assert not at.exception
    shown = json.loads(at.json[0].value)["segmentation"]  # the engine a feature run uses
    assert (shown["CT"]["engine"], shown["MR"]["engine"]) == ("classical-v4", None)
    assert shown["CT"]["totalsegmentator"]["reason"] == "TotalSegmentator is not installed"
    at.number_input(key="settings:timeout").set_value(20)
    at.button[-1].click().run()
    assert not at.exception
    assert "session timeout 20 min" in at.success[0].value
    from analytics.config import load_settings

    assert load_settings(settings.home).session_timeout_min == 20
    assert audit.recent(accounts, 1)[0]["action"] == "settings_change"


def test_admin_sets_the_default_radiomics_configuration_and_the_next_run_records_it(
        accounts, settings, monkeypatch):
    from sqlalchemy import select

    from analytics.cli import main
    from analytics.config import load_settings
    from analytics.store.schema import FeatureRun, Series
    from tests.features import npz_loader
    from tests.features.ibsi_store import PHANTOM_UID, store_phantom

    at = _login(new_app(viewer=None).run(), "root", PW)
    at.switch_page("pages/settings.py").run()
    assert at.selectbox(key="settings:radiomics").value == "hepatrack-ct-v1"
    at.selectbox(key="settings:radiomics").select("ibsi-1-phantom")
    at.button[-1].click().run()
    assert not at.exception
    assert "radiomics configuration ibsi-1-phantom" in at.success[0].value
    assert load_settings(settings.home).radiomics_config == "ibsi-1-phantom"
    change = audit.recent(accounts, 1)[0]
    assert change["action"] == "settings_change"
    assert change["detail"] == {"key": "radiomics_config", "old": None,
                                "new": "ibsi-1-phantom"}
    # a run that names no configuration uses, and records, the site's new default
    store_phantom(settings)
    monkeypatch.setenv("HEPATRACK_FEATURES_LOADER", npz_loader.LOADER)
    assert main(["--home", str(settings.home), "features", "--series", PHANTOM_UID,
                 "--radiomics", "--json"]) == 0
    with accounts.session() as s:
        run = s.scalar(select(FeatureRun).join(Series, FeatureRun.series_id == Series.id)
                       .where(Series.series_uid == PHANTOM_UID))
        assert run.settings["radiomics_config"] == "ibsi-1-phantom"
        assert run.settings["radiomics_settings"]["config"] == "ibsi-1-phantom"
