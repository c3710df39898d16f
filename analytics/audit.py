"""Append-only, hash-chained audit trail.

Every record carries ``prev_hash`` (the previous record's hash, 64 zeros for the first)
and ``hash`` = SHA-256 over a canonical JSON of its own fields plus ``prev_hash``, so an
edited, deleted, inserted or reordered record breaks the chain and ``verify`` finds it.
``seq`` is gap-free from 1; two writers racing for the same ``seq`` collide on the
primary key and the loser retries. Triggers in the store refuse UPDATE and DELETE on the
table (defence in depth; ``verify`` does not rely on them).

No raw PHI goes into a record: patients are named by pseudonym, free text is not
accepted, ``detail`` holds only small structured values (counts, model ids, settings
keys).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from analytics.errors import AuditError
from analytics.store.db import Store
from analytics.store.schema import AuditRecord

GENESIS = "0" * 64
ACTIONS = frozenset({
    "login", "logout", "view_patient", "view_cohort", "upload", "pacs_link", "ingest",
    "export", "report", "train", "predict", "activate_model", "settings_change",
    "user_add", "user_change", "features", "import_cohort", "audit_view", "note",
})
OUTCOMES = frozenset({"ok", "denied", "failed", "started"})
_MAX_RETRIES = 20


@dataclass(frozen=True)
class Actor:
    """Who acts: the logged-in user, their role and the session."""

    username: str
    role: str
    session_id: str = "cli"


SYSTEM = Actor(username="system", role="admin", session_id="cli")


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str,
                      ensure_ascii=True).encode()


def _hash_fields(rec: AuditRecord) -> dict[str, Any]:
    ts = rec.ts if rec.ts.tzinfo else rec.ts.replace(tzinfo=dt.UTC)
    return {
        "seq": rec.seq, "ts": ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "username": rec.username, "role": rec.role, "session_id": rec.session_id,
        "action": rec.action, "outcome": rec.outcome,
        "patient_pseudonym": rec.patient_pseudonym, "uids": rec.uids,
        "model_version": rec.model_version, "detail": rec.detail, "prev_hash": rec.prev_hash,
    }


def record_hash(rec: AuditRecord) -> str:
    return hashlib.sha256(_canonical(_hash_fields(rec))).hexdigest()


def _check_detail(detail: dict[str, Any] | None) -> None:
    if detail is None:
        return
    for k, v in detail.items():
        if isinstance(v, str) and len(v) > 200:
            raise AuditError(f"audit detail {k!r}: strings over 200 characters are not "
                             "accepted (no free text in the audit trail)")


def record(store: Store, actor: Actor | None, action: str, outcome: str = "ok", *,
           patient: str | None = None, uids: list[str] | None = None,
           model_version: str | None = None,
           detail: dict[str, Any] | None = None) -> int:
    """Append one record and return its ``seq``.

    Raises
    ------
    AuditError
        If the record cannot be written; callers must then not perform the action.
    """
    if action not in ACTIONS:
        raise AuditError(f"audit action {action!r} is not one of {sorted(ACTIONS)}")
    if outcome not in OUTCOMES:
        raise AuditError(f"audit outcome {outcome!r} is not one of {sorted(OUTCOMES)}")
    _check_detail(detail)
    actor = actor or SYSTEM
    for _ in range(_MAX_RETRIES):
        try:
            with store.session() as s:
                last = s.execute(
                    select(AuditRecord.seq, AuditRecord.hash)
                    .order_by(AuditRecord.seq.desc()).limit(1)
                ).first()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                rec = AuditRecord(
                    seq=seq, ts=dt.datetime.now(dt.UTC), username=actor.username,
                    role=actor.role, session_id=actor.session_id, action=action,
                    outcome=outcome, patient_pseudonym=patient, uids=uids,
                    model_version=model_version, detail=detail, prev_hash=prev, hash="",
                )
                rec.hash = record_hash(rec)
                s.add(rec)
            return seq
        except IntegrityError:
            continue  # another writer took this seq; read the new tail and try again
        except SQLAlchemyError as e:
            raise AuditError(f"audit trail not writable ({type(e).__name__}); "
                             f"action {action!r} blocked") from e
    raise AuditError(f"audit trail busy: could not append after {_MAX_RETRIES} tries; "
                     f"action {action!r} blocked")


@contextlib.contextmanager
def audited(store: Store, actor: Actor | None, action: str, **kw: Any) -> Iterator[None]:
    """Record ``action`` before it happens; if that write fails the action never runs.

    A failure inside the block is recorded with outcome ``failed`` and re-raised.
    """
    record(store, actor, action, "ok", **kw)
    try:
        yield
    except Exception as e:
        with contextlib.suppress(AuditError):
            record(store, actor, action, "failed", **{**kw, "detail": {
                **(kw.get("detail") or {}), "error": type(e).__name__}})
        raise


@dataclass
class VerifyReport:
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)


def head(store: Store) -> tuple[int, str]:
    """``(seq, hash)`` of the newest record: an anchor to keep outside the database."""
    with store.session() as s:
        last = s.execute(select(AuditRecord.seq, AuditRecord.hash)
                         .order_by(AuditRecord.seq.desc()).limit(1)).first()
    return (last[0], last[1]) if last else (0, GENESIS)


def verify(store: Store, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Walk the chain and report every edited, missing, inserted or reordered record.

    A chain alone cannot show that its newest records were cut off; an ``anchor`` taken
    earlier with :func:`head` (and kept elsewhere) can: that record must still be there
    with the same hash.
    """
    problems: list[str] = []
    seen_anchor = anchor is None or anchor[0] == 0
    n = 0
    prev_hash, expected_seq = GENESIS, 1
    with store.session() as s:
        for rec in s.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars():
            n += 1
            if rec.seq != expected_seq:
                problems.append(f"seq {rec.seq}: expected seq {expected_seq} "
                                "(records missing or renumbered)")
            if rec.prev_hash != prev_hash:
                problems.append(f"seq {rec.seq}: prev_hash does not match the hash of the "
                                "record before it (deleted, inserted or reordered)")
            if record_hash(rec) != rec.hash:
                problems.append(f"seq {rec.seq}: content does not match its hash (edited)")
            if anchor is not None and rec.seq == anchor[0]:
                seen_anchor = True
                if rec.hash != anchor[1]:
                    problems.append(f"seq {rec.seq}: hash differs from the anchor")
            prev_hash, expected_seq = rec.hash, rec.seq + 1
    if not seen_anchor:
        problems.append(f"anchor record seq {anchor[0]} is missing (trail truncated)")
    return VerifyReport(ok=not problems, records=n, problems=problems)


def recent(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    """The newest ``limit`` records as dicts, newest first (for the audit page)."""
    with store.session() as s:
        rows = s.execute(select(AuditRecord).order_by(AuditRecord.seq.desc())
                         .limit(limit)).scalars().all()
        return [{**_hash_fields(r), "hash": r.hash} for r in rows]
