"""The store: SQLAlchemy schema, sessions, migrations and repository functions."""

from analytics.store.db import Store, make_engine, migrate, open_store

__all__ = ["Store", "make_engine", "migrate", "open_store"]
