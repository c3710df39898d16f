"""The audit trail's rows: append one record at the tail, read the tail and the chain.

The chain itself (keyed hashes, the anchor, verification) is :mod:`analytics.audit`; this
module only reads and writes ``audit`` rows. An append reads the tail and writes the next
record in ONE transaction (on PostgreSQL under an advisory lock, so writers on other hosts
queue instead of racing for the same ``seq``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from analytics.errors import StoreError
from analytics.store.db import Store
from analytics.store.schema import AuditRecord

__all__ = ["AuditEntry", "append", "append_all", "entries", "newest", "tail"]

#: PostgreSQL advisory lock that serialises appends across hosts
_PG_APPEND_LOCK = 740200118


@dataclass
class AuditEntry:
    """One audit record, as stored (``hash`` is the keyed hash of the other fields)."""

    seq: int
    ts: dt.datetime
    username: str
    role: str
    session_id: str
    action: str
    outcome: str
    patient_pseudonym: str | None
    uids: list[str] | None
    model_version: str | None
    detail: dict[str, Any] | None
    prev_hash: str
    hash: str = ""

    @classmethod
    def of(cls, row: AuditRecord) -> AuditEntry:
        return cls(seq=row.seq, ts=row.ts, username=row.username, role=row.role,
                   session_id=row.session_id, action=row.action, outcome=row.outcome,
                   patient_pseudonym=row.patient_pseudonym, uids=row.uids,
                   model_version=row.model_version, detail=row.detail,
                   prev_hash=row.prev_hash, hash=row.hash)


def append(store: Store, build: Callable[[int, str | None], AuditEntry]) -> AuditEntry | None:
    """Write ``build(next seq, hash of the tail or None)`` after the current tail.

    Returns the entry written, or None when another writer took that ``seq`` first (read
    the new tail and try again).

    Raises
    ------
    StoreError
        If the store cannot be written (named by the driver's error type).
    """
    written = append_all(store, lambda seq, prev: [build(seq, prev)])
    return written[0] if written is not None else None


def append_all(store: Store, build: Callable[[int, str | None], list[AuditEntry]]
               ) -> list[AuditEntry] | None:
    """Write the entries ``build(next seq, hash of the tail or None)`` gives (chained to
    each other, ``seq`` on from the tail) after the current tail, in one transaction: all
    of them or none.

    Returns the entries written, or None when another writer took a ``seq`` first.

    Raises
    ------
    StoreError
        If the store cannot be written (named by the driver's error type).
    """
    try:
        with store.session() as s:
            if store.engine.dialect.name == "postgresql":
                # writers on other hosts wait here instead of racing for the same seq
                s.execute(select(func.pg_advisory_xact_lock(_PG_APPEND_LOCK)))
            last = s.execute(select(AuditRecord.seq, AuditRecord.hash)
                             .order_by(AuditRecord.seq.desc()).limit(1)).first()
            entries = build(last[0] + 1, last[1]) if last else build(1, None)
            s.add_all([AuditRecord(**vars(e)) for e in entries])
        return entries
    except IntegrityError:
        return None
    except SQLAlchemyError as e:
        raise StoreError(type(e).__name__) from e


def tail(store: Store) -> tuple[int, str] | None:
    """``(seq, hash)`` of the newest record, None for an empty trail."""
    with store.session() as s:
        last = s.execute(select(AuditRecord.seq, AuditRecord.hash)
                         .order_by(AuditRecord.seq.desc()).limit(1)).first()
    return (last[0], last[1]) if last else None


def entries(store: Store) -> Iterator[AuditEntry]:
    """Every record in ``seq`` order, streamed in batches (a trail can be long)."""
    with store.session() as s:
        result = s.execute(select(AuditRecord).order_by(AuditRecord.seq)
                           .execution_options(yield_per=2000)).scalars()
        for r in result:
            yield AuditEntry.of(r)


def newest(store: Store, limit: int, *, username: str | None = None,
           actions: Iterable[str] | None = None, outcomes: Iterable[str] | None = None,
           since: dt.datetime | None = None, before: dt.datetime | None = None
           ) -> list[AuditEntry]:
    """The newest ``limit`` records that match, newest first.

    ``username`` matches any part of the name, ignoring case; ``since`` is included and
    ``before`` excluded (time stamps in UTC).
    """
    query = select(AuditRecord)
    if username:
        query = query.where(func.lower(AuditRecord.username).contains(
            username.lower(), autoescape=True))
    if actions is not None:
        query = query.where(AuditRecord.action.in_(list(actions)))
    if outcomes is not None:
        query = query.where(AuditRecord.outcome.in_(list(outcomes)))
    if since is not None:
        query = query.where(AuditRecord.ts >= since)
    if before is not None:
        query = query.where(AuditRecord.ts < before)
    with store.session() as s:
        rows = s.execute(query.order_by(AuditRecord.seq.desc()).limit(limit)).scalars().all()
        return [AuditEntry.of(r) for r in rows]
