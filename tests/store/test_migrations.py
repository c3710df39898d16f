"""The Alembic migrations build exactly the schema that the ORM declares, on both backends."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from analytics.store import open_store
from analytics.store.schema import Base


def test_migrated_schema_matches_models(db_url):
    store = open_store(url=db_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"schema.py and migrations differ: {diff}"
    assert {"patients", "identity_map", "series", "instances", "audit_log"} <= set(
        store.table_names())
    store.dispose()


def test_migrate_is_idempotent(db_url):
    open_store(url=db_url).dispose()
    store = open_store(url=db_url)
    assert "alembic_version" in store.table_names()
    store.dispose()
