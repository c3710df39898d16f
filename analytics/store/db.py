"""Engine, sessions and schema migration.

SQLite (default, in HEPATRACK_HOME) runs in WAL mode with ``synchronous=FULL`` and a busy
timeout, so a crash never leaves a half-written transaction and two writers wait rather
than fail. PostgreSQL is used when ``db_url`` names it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from analytics.config import Settings
from analytics.errors import ConfigError, StoreError
from analytics.store.patient_summary import ensure_built, track_patients
from analytics.store.schema import Base, StoreInfo
from analytics.store.version import ensure_generation_row, track_writes

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
_SECRET_LOCK = threading.Lock()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with HepaTrack's connection settings.

    Raises
    ------
    StoreError
        If the URL is malformed or names an unsupported backend.
    """
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                   "check_same_thread": False},
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ValueError, ImportError) as e:
        raise StoreError(f"database URL {_redact(url)!r}: {e}") from e


def shown_url(url: str) -> str:
    """The database URL as shown to an admin: any password masked (``***``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _redact(url)


def _redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_GUARDS = {
    # The audit trail is append-only: refuse UPDATE and DELETE in the database itself.
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log",
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    ],
}


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision and install guards (idempotent)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with _migration_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # two processes opening a fresh store at once migrate one after the other
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(740200117)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            _ensure_tables_and_columns(conn)
            _ensure_indexes(conn)
            for stmt in _GUARDS.get(engine.dialect.name, []):
                conn.exec_driver_sql(stmt)
    except OperationalError as e:
        raise StoreError(f"cannot migrate {_redact(str(engine.url))}: {e.orig}") from e


def _ensure_tables_and_columns(conn: Any) -> None:
    """Create every table and every nullable column ``schema.py`` declares that the
    database lacks.

    As with indexes (:func:`_ensure_indexes`): a home migrated by an earlier copy of the
    regenerated initial revision gets the newer table (e.g. ``cohort_imports``) and the
    newer nullable column (e.g. ``visits.import_id``, None on its older rows); derived
    tables such as ``patient_summary`` are then filled by :func:`open_store`.
    """
    have = inspect(conn)
    tables = set(have.get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            table.create(conn)
            continue
        present = {c["name"] for c in have.get_columns(table.name)}
        quote = conn.dialect.identifier_preparer.quote
        for column in table.columns:
            if column.name in present or not column.nullable:
                continue
            spec = f"{quote(column.name)} {column.type.compile(dialect=conn.dialect)}"
            for fk in column.foreign_keys:
                spec += f" REFERENCES {quote(fk.column.table.name)} ({quote(fk.column.name)})"
            conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD COLUMN {spec}")


def _ensure_indexes(conn: Any) -> None:
    """Create every index ``schema.py`` declares that the database lacks.

    The initial revision is regenerated while the schema is laid out, so a home migrated
    by an earlier copy of it is at the same revision without a newer index; this gives it
    the index (an index never changes what a query returns).
    """
    have = inspect(conn)
    for table in Base.metadata.sorted_tables:
        present = {i["name"] for i in have.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                index.create(conn)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (PostgreSQL locks itself)."""
    db = engine.url.database
    if engine.dialect.name != "sqlite" or not db or db == ":memory:":
        yield
        return
    import fcntl

    with open(f"{db}.migrate.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class Store:
    """An open store: engine, session factory and the home that holds its site secret.

    ``home`` is the HEPATRACK_HOME whose site secret keys pseudonyms and the audit chain,
    and where the audit anchor is kept. When a store is opened by URL alone it is
    ``$HEPATRACK_HOME``, else the folder of a SQLite file, else ``./.hepatrack`` (the
    same default as :func:`analytics.config.load_settings`).
    """

    engine: Engine
    sessions: sessionmaker[Session]
    home: Path | None = None
    #: per-store memo of the site secret and store id (read once, used on every append)
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def site_home(self) -> Path:
        if self.home is not None:
            return self.home
        env = os.environ.get("HEPATRACK_HOME")
        if env:
            return Path(env).expanduser().resolve()
        db = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and db and db != ":memory:":
            return Path(db).expanduser().resolve().parent
        return Path(".hepatrack").resolve()

    def site_secret(self) -> bytes:
        """The site secret of :meth:`site_home` (created on first use, mode 0600).

        Raises
        ------
        ConfigError
            If the secret file is shorter than 32 bytes.
        """
        if "secret" not in self.memo:
            with _SECRET_LOCK:
                for attempt in range(20):
                    try:
                        self.memo["secret"] = Settings(home=self.site_home()).site_secret()
                        break
                    except (FileExistsError, ConfigError):
                        # another process is creating the file this moment: read it again
                        if attempt == 19:
                            raise
                        time.sleep(0.05)
        return self.memo["secret"]

    def store_id(self) -> str:
        """A random identifier of this database, made once (names its audit anchor)."""
        if "store_id" in self.memo:
            return self.memo["store_id"]
        for _ in range(2):
            with self.session() as s:
                got = s.execute(select(StoreInfo.value)
                                .where(StoreInfo.key == "store_id")).scalar()
            if got is not None:
                self.memo["store_id"] = got
                return got
            with contextlib.suppress(IntegrityError), self.session() as s:
                s.add(StoreInfo(key="store_id", value=uuid.uuid4().hex))
        raise StoreError("store_info: store_id could not be read or written")

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions() as s, s.begin():
            yield s

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(settings: Settings | None = None, *, url: str | None = None,
               migrate_schema: bool = True, home: Path | None = None) -> Store:
    """Open (and by default migrate) the store named by ``url`` or ``settings``.

    ``home`` (default: ``settings.home``) is where the site secret and the audit anchor
    live; see :class:`Store`.

    Raises
    ------
    StoreError
        If the database cannot be reached or migrated.
    """
    if url is None:
        if settings is None:
            raise StoreError("open_store needs settings or a url")
        settings.ensure_home()
        url = settings.database_url
    if home is None and settings is not None:
        home = settings.home
    engine = make_engine(url)
    if migrate_schema:
        migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    track_writes(sessions)  # every committed write to the data gives a new data version
    track_patients(sessions)  # and keeps the cohort list's per-patient summary in step
    store = Store(engine=engine, sessions=sessions,
                  home=Path(home).resolve() if home is not None else None)
    if migrate_schema:
        ensure_generation_row(store)
        ensure_built(sessions)
    return store
