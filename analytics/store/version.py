"""The store's data version, to key the dashboard's caches on.

The dashboard caches the cohort table, the patient list and every patient's risk; they
must be rebuilt when the data changes, whoever changed it (this server, another worker,
``hepatrack ingest`` or ``import-cohort`` in a shell), and only then.

Every session of a store opened with :func:`analytics.store.db.open_store` tracks its
writes (:func:`track_writes`): when a transaction that inserted, updated or deleted rows
of a :data:`WATCHED` table commits, it writes a new random token to ``store_info``
(``data_generation``) in the same transaction. :func:`data_version` reads that one row,
so checking for changes costs one indexed lookup. Writes that touch no watched table (the
audit log, accounts, notes, cached predictions) leave the version alone, so viewing
pages (which writes audit records) never invalidates the caches.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from analytics.store.schema import (
    Feature,
    FeatureRun,
    IdentityHold,
    IdentityMap,
    Mask,
    MaskRejection,
    ModelRecord,
    Outcome,
    Patient,
    Series,
    StoreInfo,
    Study,
    Visit,
)


class Store(Protocol):
    """What this module needs of :class:`analytics.store.db.Store` (which imports it)."""

    def session(self) -> AbstractContextManager[Session]: ...

__all__ = ["GENERATION_KEY", "WATCHED", "data_version", "track_writes"]

#: what the cohort table, the patient list, the timeline and the risk columns read
WATCHED = (Patient, IdentityMap, IdentityHold, Study, Series, Mask, MaskRejection, Feature,
           FeatureRun, Visit, Outcome, ModelRecord)
_WATCHED_TABLES = frozenset(m.__tablename__ for m in WATCHED)
GENERATION_KEY = "data_generation"
_BUMP = "hepatrack_data_written"


def data_version(store: Store) -> str:
    """The data generation token: a new value after every committed write to a watched
    table (``"0"`` before the first one).

    Parameters
    ----------
    store
        The open store.

    Returns
    -------
    str
        Equal tokens mean unchanged watched data.
    """
    with store.session() as s:
        got = s.execute(select(StoreInfo.value)
                        .where(StoreInfo.key == GENERATION_KEY)).scalar()
    return got or "0"


def _flushing_watched(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if getattr(obj, "__tablename__", None) in _WATCHED_TABLES:
            session.info[_BUMP] = True
            return


def _executing(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _WATCHED_TABLES:
            state.session.info[_BUMP] = True


def _committing(session: Session) -> None:
    _flushing_watched(session, None, None)  # changes not flushed yet flush after this hook
    if not session.info.pop(_BUMP, False):
        return
    token = uuid.uuid4().hex
    done = session.execute(update(StoreInfo).where(StoreInfo.key == GENERATION_KEY)
                           .values(value=token))
    if not done.rowcount:  # a store opened without its row (see ensure_generation_row)
        session.execute(insert(StoreInfo).values(key=GENERATION_KEY, value=token))


def _rolled_back(session: Session) -> None:
    session.info.pop(_BUMP, None)


def track_writes(sessions: sessionmaker) -> None:
    """Make every session of ``sessions`` give the store a new data version when it
    commits a write to a watched table (ORM objects and DML statements alike)."""
    event.listen(sessions, "before_flush", _flushing_watched)
    event.listen(sessions, "do_orm_execute", _executing)
    event.listen(sessions, "before_commit", _committing)
    event.listen(sessions, "after_rollback", _rolled_back)


def ensure_generation_row(store: Store) -> None:
    """Create the ``data_generation`` row if it is missing (two processes may race: the
    loser's insert fails and the row exists either way)."""
    with store.session() as s:
        if s.execute(select(StoreInfo.key).where(StoreInfo.key == GENERATION_KEY)
                     ).scalar() is not None:
            return
    try:
        with store.session() as s:
            s.execute(insert(StoreInfo).values(key=GENERATION_KEY, value="0"))
    except IntegrityError:
        pass
