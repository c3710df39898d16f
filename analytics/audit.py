"""Append-only, hash-chained audit trail, keyed by the site secret and anchored outside the
database.

Every record carries ``prev_hash`` (the previous record's hash, 64 zeros for the first)
and ``hash`` = HMAC-SHA256, under a key derived from the site secret, over a canonical JSON
of its own fields plus ``prev_hash``. So an edited, deleted, inserted or reordered record
breaks the chain, and a chain recomputed by someone with database access but without the
site secret (for example with plain SHA-256) fails at its first record.

A chain alone cannot show that its newest records were cut off. After every append the
newest ``(seq, hash)`` is written to an anchor file beside the site secret
(``HEPATRACK_HOME/audit_anchor.json``, one entry per database, named by its ``store_id``),
atomically and never backwards; ``verify`` requires that record to be there with that hash.
Appends are serialised by a file lock on the anchor (all processes of one home) and, on
PostgreSQL, by a transaction-level advisory lock (every host); ``seq`` is gap-free from 1
and a writer that still loses the race for a ``seq`` retries. Triggers in the store refuse
UPDATE and DELETE on the table (defence in depth; ``verify`` does not rely on them).
Exports of the trail (:func:`export_trail`) carry the anchor and verify on their own.

No raw PHI goes into a record: patients are named by pseudonym, free text is not
accepted, ``detail`` holds only small structured values (counts, model ids, settings
keys), and a username that names no account is kept only as a keyed hash
(:func:`unknown_username`): people type passwords and patients' names into that field.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analytics.errors import AuditError, HepaTrackError, StoreError
from analytics.names import clean_name, name_key
from analytics.store import audit_log
from analytics.store.audit_log import AuditEntry
from analytics.store.db import Store

GENESIS = "0" * 64
ACTIONS = frozenset({
    "login", "logout", "view_patient", "view_cohort", "upload", "pacs_link", "ingest",
    "export", "report", "train", "predict", "activate_model", "settings_change",
    "user_add", "user_change", "features", "import_cohort", "audit_view", "note",
    "mask_reject", "mask_restore", "identity_resolve", "series_complete", "series_replace",
    "series_remove", "ultrasound_roi",
})
OUTCOMES = frozenset({"ok", "denied", "failed", "started"})
_MAX_RETRIES = 20
ANCHOR_FILE = "audit_anchor.json"
_ANCHOR_LOCK = "audit_anchor.lock"


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


def _hash_fields(rec: AuditEntry) -> dict[str, Any]:
    ts = rec.ts if rec.ts.tzinfo else rec.ts.replace(tzinfo=dt.UTC)
    return {
        "seq": rec.seq, "ts": ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "username": rec.username, "role": rec.role, "session_id": rec.session_id,
        "action": rec.action, "outcome": rec.outcome,
        "patient_pseudonym": rec.patient_pseudonym, "uids": rec.uids,
        "model_version": rec.model_version, "detail": rec.detail, "prev_hash": rec.prev_hash,
    }


def chain_key(secret: bytes) -> bytes:
    """The audit chain's HMAC key, derived from the site secret (its own domain)."""
    return hmac.new(secret, b"hepatrack-audit-chain-v1", hashlib.sha256).digest()


def _mac_fields(key: bytes, fields: dict[str, Any]) -> str:
    return hmac.new(key, _canonical(fields), hashlib.sha256).hexdigest()


def record_hash(rec: AuditEntry, key: bytes) -> str:
    """The keyed hash (HMAC-SHA256 hex) of one record under the chain key."""
    return _mac_fields(key, _hash_fields(rec))


def unknown_username(store: Store, typed: str) -> str:
    """What the audit trail keeps of a username that names no account: ``unknown:<16 hex>``.

    An HMAC under the site secret of the name as compared (NFC, ignoring case and spaces),
    so repeated attempts with one name can be told apart from others without the name.
    """
    try:
        norm = name_key(clean_name(typed, "username"))
    except ValueError:
        norm = typed if isinstance(typed, str) else repr(typed)
    mac = hmac.new(store.site_secret(), b"audit-unknown-username\x00" + norm.encode(
        "utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"unknown:{mac[:16]}"


# --- the anchor: the newest (seq, hash) per database, kept beside the site secret ---

def anchor_path(store: Store) -> Path:
    return store.site_home() / ANCHOR_FILE


@contextlib.contextmanager
def _anchor_lock(store: Store) -> Iterator[None]:
    """Exclusive lock of this home's anchor: one append at a time in every process."""
    home = store.site_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / _ANCHOR_LOCK, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_anchors(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise AuditError(f"{path}: audit anchor unreadable ({e}); expected JSON written by "
                         "HepaTrack") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("stores", {}), dict):
        raise AuditError(f"{path}: audit anchor malformed; expected {{'stores': {{...}}}}")
    return doc.get("stores", {})


def read_anchor(store: Store) -> tuple[int, str] | None:
    """The anchor ``(seq, hash)`` kept for this database, or None if there is none."""
    entry = _read_anchors(anchor_path(store)).get(store.store_id())
    if entry is None:
        return None
    return int(entry["seq"]), str(entry["hash"])


def _advance_anchor(store: Store, seq: int, hash_: str) -> None:
    """Move this database's anchor to ``(seq, hash_)`` atomically; never backwards.

    Called with the anchor lock held, after the record is committed.
    """
    path = anchor_path(store)
    anchors = _read_anchors(path)
    sid = store.store_id()
    current = anchors.get(sid)
    if current is not None and int(current["seq"]) >= seq:
        return
    anchors[sid] = {"seq": seq, "hash": hash_,
                    "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    tmp = path.with_name(f".{ANCHOR_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"version": 1, "stores": anchors}, fh, sort_keys=True, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _check_detail(detail: dict[str, Any] | None) -> None:
    if detail is None:
        return
    for k, v in detail.items():
        if isinstance(v, str) and len(v) > 200:
            raise AuditError(f"audit detail {k!r}: strings over 200 characters are not "
                             "accepted (no free text in the audit trail)")


@dataclass(frozen=True)
class Event:
    """One record's own fields, for :func:`record_all` (``record``'s keyword arguments)."""

    action: str
    outcome: str = "ok"
    patient: str | None = None
    uids: list[str] | None = None
    model_version: str | None = None
    detail: dict[str, Any] | None = None


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
    return record_all(store, actor, [Event(action, outcome, patient, uids, model_version,
                                           detail)])[0]


def record_all(store: Store, actor: Actor | None, events: Sequence[Event]) -> list[int]:
    """Append one record per event, in order, in one transaction with one move of the
    anchor (one durable write instead of one per record: a patient view and its
    prediction are shown together); return their ``seq``. All are written or none.

    Raises
    ------
    AuditError
        If the records cannot be written; callers must then not perform the actions.
    """
    if not events:
        return []
    for ev in events:
        if ev.action not in ACTIONS:
            raise AuditError(f"audit action {ev.action!r} is not one of {sorted(ACTIONS)}")
        if ev.outcome not in OUTCOMES:
            raise AuditError(f"audit outcome {ev.outcome!r} is not one of {sorted(OUTCOMES)}")
        _check_detail(ev.detail)
    actor = actor or SYSTEM
    actions = ", ".join(repr(ev.action) for ev in events)
    try:
        key = chain_key(store.site_secret())
        with _anchor_lock(store):
            seqs, hash_ = _append(store, key, actor, events, actions)
            _advance_anchor(store, seqs[-1], hash_)
    except OSError as e:
        raise AuditError(f"audit anchor in {store.site_home()} not writable "
                         f"({type(e).__name__}); action {actions} blocked") from e
    except AuditError:
        raise
    except HepaTrackError as e:  # the site secret or the store id cannot be read
        raise AuditError(f"audit trail not writable ({e}); action {actions} blocked") from e
    return seqs


def _append(store: Store, key: bytes, actor: Actor, events: Sequence[Event],
            actions: str) -> tuple[list[int], str]:
    def build(seq: int, prev: str | None) -> list[AuditEntry]:
        now = dt.datetime.now(dt.UTC)
        out = []
        for k, ev in enumerate(events):
            entry = AuditEntry(
                seq=seq + k, ts=now, username=actor.username, role=actor.role,
                session_id=actor.session_id, action=ev.action, outcome=ev.outcome,
                patient_pseudonym=ev.patient, uids=ev.uids, model_version=ev.model_version,
                detail=ev.detail, prev_hash=prev or GENESIS)
            entry.hash = prev = record_hash(entry, key)
            out.append(entry)
        return out

    for _ in range(_MAX_RETRIES):
        try:
            written = audit_log.append_all(store, build)
        except StoreError as e:
            raise AuditError(f"audit trail not writable ({e}); "
                             f"action {actions} blocked") from e
        if written is not None:
            return [e.seq for e in written], written[-1].hash
        # another writer took this seq: read the new tail and try again
    raise AuditError(f"audit trail busy: could not append after {_MAX_RETRIES} tries; "
                     f"action {actions} blocked")


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


def unaudited(**_fields: Any) -> contextlib.AbstractContextManager[None]:
    """The write step of a stage called without an audited use case around it.

    A stage that writes (cohort import, exports, mask review) calls its ``step`` with the
    audit record's fields just before the write; the use case passes its one audited step
    (``analytics.usecases``), everything else gets this: no record.
    """
    return contextlib.nullcontext()


@dataclass
class VerifyReport:
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)


def head(store: Store) -> tuple[int, str]:
    """``(seq, hash)`` of the newest record: an anchor to keep outside the database."""
    return audit_log.tail(store) or (0, GENESIS)


def _check_chain(rows: Iterable[dict[str, Any]], key: bytes,
                 anchors: Sequence[tuple[str, tuple[int, str]]]) -> tuple[int, list[str]]:
    """``(records, problems)`` of a chain given as dicts in ``seq`` order (fields of
    :func:`_hash_fields` plus ``hash``), checked against each named anchor."""
    problems: list[str] = []
    prev_hash, expected_seq, n, last = GENESIS, 1, 0, 0
    wanted = {a_seq for _, (a_seq, _) in anchors}
    by_seq: dict[int, str] = {}
    for r in rows:
        n += 1
        seq = r["seq"]
        if seq != expected_seq:
            problems.append(f"seq {seq}: expected seq {expected_seq} "
                            "(records missing or renumbered)")
        if r["prev_hash"] != prev_hash:
            problems.append(f"seq {seq}: prev_hash does not match the hash of the record "
                            "before it (deleted, inserted or reordered)")
        fields = {k: r[k] for k in r if k != "hash"}
        if _mac_fields(key, fields) != r["hash"]:
            problems.append(f"seq {seq}: content does not match its keyed hash (edited, or "
                            "the chain was recomputed without the site secret)")
        if seq in wanted:
            by_seq[seq] = r["hash"]
        prev_hash, expected_seq, last = r["hash"], seq + 1, seq
    for name, (a_seq, a_hash) in anchors:
        if a_seq == 0:
            continue
        if a_seq not in by_seq:
            problems.append(f"anchor record seq {a_seq} is missing: the trail ends at seq "
                            f"{last} but the {name} says seq {a_seq} was written "
                            "(trail truncated)")
        elif by_seq[a_seq] != a_hash:
            problems.append(f"seq {a_seq}: hash differs from the {name} (record replaced "
                            "or chain rewritten)")
    return n, problems


def _rows(store: Store) -> Iterator[dict[str, Any]]:
    """Every record in ``seq`` order, streamed in batches (a trail can be long)."""
    for r in audit_log.entries(store):
        yield {**_hash_fields(r), "hash": r.hash}


def verify(store: Store, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Walk the chain and report every edited, missing, inserted, reordered, recomputed or
    truncated record.

    The chain is checked with the keyed hash and against the anchor file kept for this
    database (read before the chain, so an append meanwhile is no false alarm), and
    against ``anchor`` when one taken earlier with :func:`head` is given.

    Raises
    ------
    AuditError
        If the site secret or the anchor file cannot be read.
    """
    try:
        key = chain_key(store.site_secret())
    except HepaTrackError as e:
        raise AuditError(f"audit trail cannot be verified: {e}") from e
    kept = read_anchor(store)
    rows = _rows(store)
    anchors: list[tuple[str, tuple[int, str]]] = []
    if kept is not None:
        anchors.append((f"anchor file {anchor_path(store)}", kept))
    if anchor is not None:
        anchors.append(("anchor given", anchor))
    n, problems = _check_chain(rows, key, anchors)
    if kept is None and n:
        problems.append(f"no anchor for this database (store_id {store.store_id()}) in "
                        f"{anchor_path(store)}: {n} records that cannot be checked "
                        "for truncation (anchor file deleted, or the database was replaced)")
    return VerifyReport(ok=not problems, records=n, problems=problems)


def export_trail(store: Store, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the whole trail with its anchor to a JSON file; return the summary.

    The file carries ``store_id``, the ``anchor`` (from the anchor file) and every record
    with its hash, so :func:`verify_export` can check a copy on its own, truncation
    included, with the site secret.
    """
    anchor = read_anchor(store)
    rows = list(_rows(store))
    doc = {"format": "hepatrack-audit-v1", "store_id": store.store_id(),
           "anchor": {"seq": anchor[0], "hash": anchor[1]} if anchor else None,
           "records": rows}
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, default=str, indent=1), encoding="utf-8")
    os.replace(tmp, out)
    return {"records": len(rows), "anchor": doc["anchor"], "out": str(out)}


def verify_export(path: str | os.PathLike[str], secret: bytes) -> VerifyReport:
    """Verify a file written by :func:`export_trail` with the site secret.

    Raises
    ------
    AuditError
        If the file is not an audit export.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        rows, anchor = doc["records"], doc.get("anchor")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AuditError(f"{path}: not a HepaTrack audit export ({e})") from e
    anchors = [("export's anchor", (int(anchor["seq"]), str(anchor["hash"])))] if anchor else []
    n, problems = _check_chain(rows, chain_key(secret), anchors)
    if anchor is None and n:
        problems.append(f"{path}: the export carries no anchor; truncation cannot be ruled out")
    return VerifyReport(ok=not problems, records=n, problems=problems)


def describe(rec: dict[str, Any]) -> str:
    """What a record says was done to what, in one line: its patient, series count, model
    and ``detail`` (``"user eve.x · change role · old researcher · new admin"``)."""
    parts = []
    if rec.get("patient_pseudonym"):
        parts.append(f"patient {rec['patient_pseudonym']}")
    if rec.get("uids"):
        parts.append(f"{len(rec['uids'])} series")
    if rec.get("model_version"):
        parts.append(f"model {rec['model_version']}")
    for k, v in (rec.get("detail") or {}).items():
        shown = ("yes" if v else "no") if isinstance(v, bool) else v
        parts.append(f"{'user' if k == 'username' else k.replace('_', ' ')} {shown}")
    return " · ".join(parts)


def recent(store: Store, limit: int = 500, *, username: str | None = None,
           actions: Iterable[str] | None = None, outcomes: Iterable[str] | None = None,
           since: dt.datetime | None = None, before: dt.datetime | None = None
           ) -> list[dict[str, Any]]:
    """The newest ``limit`` records as dicts, newest first (for the audit page).

    ``username`` keeps records whose username contains it (ignoring case); ``actions``
    and ``outcomes`` keep those values; ``since`` (included) and ``before`` (excluded)
    bound the time stamp.
    """
    return [{**_hash_fields(r), "hash": r.hash}
            for r in audit_log.newest(store, limit, username=username, actions=actions,
                                      outcomes=outcomes, since=since, before=before)]
