"""Admin functions refuse other roles in the engine, whatever the UI shows."""

import pytest

from analytics import audit, auth
from analytics.audit import Actor
from analytics.errors import PermissionDeniedError
from analytics.store import open_store
from analytics.usecases import admin
from analytics.usecases.context import Context


@pytest.fixture
def store(db_url):
    st = open_store(url=db_url)
    yield st
    st.dispose()


@pytest.mark.parametrize("role", ["clinician", "researcher"])
@pytest.mark.parametrize(
    "call",
    [lambda s, a: admin.audit_trail(Context(a, s)), lambda s, a: admin.users(Context(a, s)),
     lambda s, a: admin.add_user(Context(a, s),
                                 admin.NewUser("eve.x", "admin", "a long enough secret"))],
    ids=["audit_trail", "users", "add_user"],
)
def test_only_admins(store, role, call):
    with pytest.raises(PermissionDeniedError, match="may not"):
        call(store, Actor("mallory", role, "s"))
    assert audit.recent(store, 1)[0]["outcome"] == "denied"
    assert "eve.x" not in {u["username"] for u in auth.list_users(store)}


def test_admin_reads_a_verified_trail(store):
    root = Actor("root", "admin", "s")
    admin.add_user(Context(root, store),
                   admin.NewUser("eve.x", "researcher", "a long enough secret"))
    trail = admin.audit_trail(Context(root, store))
    assert trail["ok"] and trail["total"] == 2
    assert [r["action"] for r in trail["records"]] == ["audit_view", "user_add"]


def test_admin_changes_a_setting_atomically_and_audited(store, tmp_path, monkeypatch):
    from analytics.config import load_settings
    from analytics.features import totalseg
    from analytics.usecases import admin as adm

    monkeypatch.setattr(totalseg, "_installed_version", lambda: None)

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        'dask_scheduler = "tcp://127.0.0.1:8786"\n\n[limits]\nmax_zip_entries = 500\n\n'
        '[[pacs]]\nname = "main"\nurl = "http://127.0.0.1:8042/dicom-web"\n')
    settings = load_settings(home)
    root = Actor("root", "admin", "s")
    adm.change_setting(Context(root, store, settings),
                       adm.SettingChange("session_timeout_min", 15))
    adm.change_setting(Context(root, store, settings), adm.SettingChange("deidentify", False))
    after = load_settings(home)
    assert (after.session_timeout_min, after.deidentify) == (15, False)
    # everything else in the file survives the rewrite
    assert after.dask_scheduler == "tcp://127.0.0.1:8786"
    assert after.limits.max_zip_entries == 500 and after.pacs[0].name == "main"
    recs = [r for r in audit.recent(store) if r["action"] == "settings_change"]
    assert [r["detail"]["key"] for r in recs] == ["deidentify", "session_timeout_min"]
    assert recs[1]["detail"]["new"] == 15
    view = adm.settings_view(Context(root, store, after))
    assert view["pacs"] == [{"name": "main", "url": "http://127.0.0.1:8042/dicom-web",
                             "auth": "none"}]
    # without TotalSegmentator: classical on CT, nothing on MR (it needs a mask)
    assert view["segmentation"]["CT"]["engine"] == "classical-v4"
    assert view["segmentation"]["MR"]["engine"] is None
    assert view["segmentation"]["MR"]["reason"].startswith("needs a liver mask")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("db_url", "sqlite://", "not editable"), ("session_timeout_min", 2, "expected 5 to"),
     ("session_timeout_min", "15", "whole number"), ("deidentify", "no", "true or false")],
    ids=["not-editable", "out-of-range", "wrong-type", "not-bool"],
)
def test_bad_setting_changes_are_refused(store, tmp_path, key, value, match):
    from analytics.config import load_settings
    from analytics.errors import ConfigError
    from analytics.usecases import admin as adm

    settings = load_settings(tmp_path)
    with pytest.raises(ConfigError, match=match):
        adm.change_setting(Context(Actor("root", "admin", "s"), store, settings),
                           adm.SettingChange(key, value))
    assert not (tmp_path / "config.toml").exists()


@pytest.mark.parametrize("role", ["clinician", "researcher"])
def test_only_admins_change_settings(store, tmp_path, role):
    from analytics.config import load_settings
    from analytics.usecases import admin as adm

    with pytest.raises(PermissionDeniedError, match="may not change settings"):
        adm.change_setting(Context(Actor("m", role, "s"), store, load_settings(tmp_path)),
                           adm.SettingChange("deidentify", False))
    assert audit.recent(store, 1)[0]["outcome"] == "denied"
    assert not (tmp_path / "config.toml").exists()
