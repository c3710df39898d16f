"""The audit chain is keyed by the site secret and anchored outside the database
(RELIABILITY.md item 34): rewrites, deletions, truncation and recomputation are named."""

from __future__ import annotations

import hashlib
import json
import multiprocessing

import pytest
from sqlalchemy import select

from analytics import audit
from analytics.audit import Actor
from analytics.cli import main
from analytics.config import load_settings
from analytics.store import open_store
from analytics.store.schema import AuditRecord

ALICE = Actor("alice", "clinician", "s1")


@pytest.fixture
def store(db_url, tmp_path):
    st = open_store(url=db_url, home=tmp_path / "home")
    yield st
    st.dispose()


def _fill(store, n: int) -> None:
    for i in range(n):
        audit.record(store, ALICE, "view_patient", patient=f"HT-{i}")


def _tamper(store, *sql: str) -> None:
    """What an attacker with database access could do: drop the guards, then edit."""
    with store.engine.begin() as c:
        if store.engine.dialect.name == "sqlite":
            c.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            c.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        else:
            c.exec_driver_sql("DROP TRIGGER audit_log_no_change ON audit_log")
        for stmt in sql:
            c.exec_driver_sql(stmt)


def _problems(store) -> list[str]:
    rep = audit.verify(store)
    assert not rep.ok
    return rep.problems


def test_every_append_moves_the_anchor_beside_the_site_secret(store, tmp_path):
    _fill(store, 3)
    doc = json.loads((tmp_path / "home" / audit.ANCHOR_FILE).read_text())
    assert doc["stores"][store.store_id()]["seq"] == 3
    assert audit.read_anchor(store) == audit.head(store)
    assert audit.verify(store).ok


def test_an_edited_row_is_named(store):
    _fill(store, 5)
    _tamper(store, "UPDATE audit_log SET patient_pseudonym='HT-999' WHERE seq=3")
    assert any(p.startswith("seq 3: content does not match its keyed hash")
               for p in _problems(store))


def test_a_deleted_middle_row_is_named(store):
    _fill(store, 5)
    _tamper(store, "DELETE FROM audit_log WHERE seq=3")
    assert any("seq 4: expected seq 3" in p for p in _problems(store))


def test_deleting_the_newest_rows_is_named_as_truncation(store):
    _fill(store, 6)
    _tamper(store, "DELETE FROM audit_log WHERE seq >= 4")
    problems = _problems(store)
    assert any("anchor record seq 6 is missing: the trail ends at seq 3" in p
               and "trail truncated" in p for p in problems), problems


def test_a_chain_recomputed_with_an_unkeyed_hash_is_named(store):
    """Edit a record, then rewrite every hash with plain SHA-256, as someone with database
    access but without the site secret would."""
    _fill(store, 4)
    with store.session() as s:
        rows = s.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars().all()
        prev, updates = audit.GENESIS, []
        for r in rows:
            if r.seq == 2:
                r.patient_pseudonym = "HT-FORGED"
            r.prev_hash = prev
            h = hashlib.sha256(audit._canonical(audit._hash_fields(r))).hexdigest()
            updates.append((r.seq, prev, h))
            prev = h
        s.expunge_all()
    _tamper(store, *(f"UPDATE audit_log SET prev_hash='{p}', hash='{h}'"
                     + (", patient_pseudonym='HT-FORGED'" if seq == 2 else "")
                     + f" WHERE seq={seq}" for seq, p, h in updates))
    problems = _problems(store)
    for seq in (1, 2, 3, 4):  # every record fails the keyed hash ...
        assert any(p.startswith(f"seq {seq}: content does not match its keyed hash")
                   for p in problems), problems
    # ... and the newest no longer matches the anchor
    assert any("seq 4: hash differs from the anchor file" in p for p in problems), problems


def test_a_recomputed_and_truncated_chain_without_the_anchor_file_is_named(store, tmp_path):
    _fill(store, 3)
    (tmp_path / "home" / audit.ANCHOR_FILE).unlink()
    problems = _problems(store)
    assert any("no anchor for this database" in p for p in problems), problems


def _append_many(db_url: str, home: str, n: int, who: str) -> None:
    st = open_store(url=db_url, home=home, migrate_schema=False)
    for _ in range(n):
        audit.record(st, Actor(who, "clinician", who), "view_cohort")
    st.dispose()


def test_two_processes_appending_keep_one_gap_free_chain_and_the_anchor_at_its_head(
        store, db_url, tmp_path):
    _fill(store, 1)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(db_url, str(tmp_path / "home"), 15, w))
             for w in ("p1", "p2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    rep = audit.verify(store)
    assert rep.ok, rep.problems
    assert rep.records == 31
    assert audit.read_anchor(store) == audit.head(store)


def test_an_export_carries_the_anchor_and_its_truncation_is_named(store, tmp_path):
    _fill(store, 5)
    out = tmp_path / "trail.json"
    got = audit.export_trail(store, out)
    assert got["anchor"]["seq"] == 5
    secret = store.site_secret()
    assert audit.verify_export(out, secret).ok
    doc = json.loads(out.read_text())
    doc["records"] = doc["records"][:3]  # the newest two cut from the copy
    out.write_text(json.dumps(doc))
    rep = audit.verify_export(out, secret)
    assert not rep.ok
    assert any("anchor record seq 5 is missing" in p for p in rep.problems), rep.problems


def test_audit_verify_command_names_the_truncation(tmp_path, monkeypatch, capsys):
    home = tmp_path / "cli-home"
    monkeypatch.setenv("HEPATRACK_HOME", str(home))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    st = open_store(load_settings(home))
    _fill(st, 4)
    assert main(["audit", "verify"]) == 0
    _tamper(st, "DELETE FROM audit_log WHERE seq = 4")
    st.dispose()
    assert main(["audit", "verify"]) == 1
    assert "anchor record seq 4 is missing" in capsys.readouterr().err
