"""Admin functions refuse other roles in the engine, whatever the UI shows."""

import pytest

from analytics import admin, audit, auth
from analytics.audit import Actor
from analytics.errors import PermissionDeniedError
from analytics.store import open_store


@pytest.fixture
def store(db_url):
    st = open_store(url=db_url)
    yield st
    st.dispose()


@pytest.mark.parametrize("role", ["clinician", "researcher"])
@pytest.mark.parametrize(
    "call",
    [lambda s, a: admin.audit_trail(s, a), lambda s, a: admin.users(s, a),
     lambda s, a: admin.add_user(s, a, "eve.x", "admin", "a long enough secret")],
    ids=["audit_trail", "users", "add_user"],
)
def test_only_admins(store, role, call):
    with pytest.raises(PermissionDeniedError, match="may not"):
        call(store, Actor("mallory", role, "s"))
    assert audit.recent(store, 1)[0]["outcome"] == "denied"
    assert "eve.x" not in {u["username"] for u in auth.list_users(store)}


def test_admin_reads_a_verified_trail(store):
    root = Actor("root", "admin", "s")
    admin.add_user(store, root, "eve.x", "researcher", "a long enough secret")
    trail = admin.audit_trail(store, root)
    assert trail["ok"] and trail["total"] == 2
    assert [r["action"] for r in trail["records"]] == ["audit_view", "user_add"]
