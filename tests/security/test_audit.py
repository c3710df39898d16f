"""Hash-chained audit trail: appends, verification, tamper detection, blocking."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from analytics import audit
from analytics.audit import Actor
from analytics.errors import AuditError
from analytics.store import open_store

ALICE = Actor("alice", "clinician", "s1")


@pytest.fixture
def store(db_url):
    st = open_store(url=db_url)
    yield st
    st.dispose()


def _fill(store, n=5):
    for i in range(n):
        audit.record(store, ALICE, "view_patient", patient=f"HT-{i}", uids=[f"1.2.{i}"])


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


def test_chain_is_intact_and_gap_free(store):
    _fill(store, 5)
    rep = audit.verify(store)
    assert rep.ok, rep.problems
    assert rep.records == 5
    rows = audit.recent(store)
    assert [r["seq"] for r in rows] == [5, 4, 3, 2, 1]
    assert rows[-1]["prev_hash"] == audit.GENESIS
    assert rows[0]["prev_hash"] == rows[1]["hash"]


def test_database_refuses_update_and_delete(store):
    _fill(store, 2)
    for sql in ("UPDATE audit_log SET outcome='ok' WHERE seq=1", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), store.engine.begin() as c:
            c.exec_driver_sql(sql)
    assert audit.verify(store).records == 2


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (["UPDATE audit_log SET patient_pseudonym='HT-999' WHERE seq=3"], "seq 3: content"),
        (["DELETE FROM audit_log WHERE seq=3"], "seq 4: expected seq 3"),
        (["UPDATE audit_log SET seq = seq + 100 WHERE seq IN (2, 3)",
          "UPDATE audit_log SET seq = 3 WHERE seq = 102",
          "UPDATE audit_log SET seq = 2 WHERE seq = 103"], "prev_hash does not match"),
        (["INSERT INTO audit_log (seq, ts, action, outcome, prev_hash, hash) "
          "VALUES (6, CURRENT_TIMESTAMP, 'export', 'ok', 'forged', 'forged')"],
         "seq 6: prev_hash"),
    ],
    ids=["edited", "deleted", "reordered", "appended-forgery"],
)
def test_verify_detects_tampering(store, sql, problem):
    _fill(store, 5)
    _tamper(store, *sql)
    rep = audit.verify(store)
    assert not rep.ok
    assert any(problem in p for p in rep.problems), rep.problems


def test_truncated_tail_is_caught_by_an_anchor_given_by_the_caller(store):
    _fill(store, 5)
    anchor = audit.head(store)
    assert anchor[0] == 5
    _tamper(store, "DELETE FROM audit_log WHERE seq >= 4")
    rep = audit.verify(store, anchor=anchor)
    assert not rep.ok
    assert any("anchor given says seq 5" in p and "trail truncated" in p
               for p in rep.problems), rep.problems


def test_recomputed_hash_after_edit_breaks_next_link(store):
    """Editing a record AND fixing its hash still breaks the next record's prev_hash."""
    _fill(store, 3)
    with store.session() as s:
        from analytics.store.schema import AuditRecord
        rec = s.get(AuditRecord, 2)
        rec.patient_pseudonym = "HT-X"
        new_hash = audit.record_hash(rec, audit.chain_key(store.site_secret()))
        s.expunge(rec)
    _tamper(store, f"UPDATE audit_log SET patient_pseudonym='HT-X', hash='{new_hash}' "
                   "WHERE seq=2")
    rep = audit.verify(store)
    assert not rep.ok
    assert any("seq 3: prev_hash" in p for p in rep.problems)


def test_failed_audit_write_blocks_the_action(store):
    with store.engine.begin() as c:
        c.execute(text("DROP TABLE audit_log"))
    done = []
    with pytest.raises(AuditError, match="blocked"), audit.audited(store, ALICE, "export"):
        done.append(True)
    assert done == []


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"action": "steal"}, "not one of"),
     ({"action": "export", "outcome": "maybe"}, "outcome"),
     ({"action": "note", "detail": {"text": "x" * 500}}, "free text")],
    ids=["unknown-action", "unknown-outcome", "free-text"],
)
def test_bad_records_are_refused(store, kw, match):
    with pytest.raises(AuditError, match=match):
        audit.record(store, ALICE, **kw)


def test_failure_inside_block_is_recorded(store):
    with pytest.raises(ZeroDivisionError), audit.audited(store, ALICE, "export"):
        1 / 0  # noqa: B018
    outcomes = [r["outcome"] for r in audit.recent(store)]
    assert outcomes == ["failed", "ok"]


def test_timestamps_are_utc(store):
    audit.record(store, ALICE, "login")
    ts = audit.recent(store)[0]["ts"]
    parsed = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - parsed).total_seconds()) < 60


def test_records_written_together_are_chained_in_order_with_one_anchor_move(store,
                                                                           monkeypatch):
    _fill(store, 2)
    moves = []
    real = audit._advance_anchor
    monkeypatch.setattr(audit, "_advance_anchor",
                        lambda st, seq, h: (moves.append(seq), real(st, seq, h)))
    seqs = audit.record_all(store, ALICE, [
        audit.Event("view_patient", patient="HT-9"),
        audit.Event("predict", patient="HT-9", model_version="cox-1",
                    detail={"horizon": 3.0})])
    assert seqs == [3, 4] and moves == [4]
    rep = audit.verify(store)
    assert rep.ok, rep.problems
    assert rep.records == 4 and audit.read_anchor(store)[0] == 4
    rows = audit.recent(store)
    assert [(r["seq"], r["action"], r["patient_pseudonym"]) for r in rows[:2]] == [
        (4, "predict", "HT-9"), (3, "view_patient", "HT-9")]
    assert rows[0]["prev_hash"] == rows[1]["hash"] and rows[1]["prev_hash"] == rows[2]["hash"]


def test_records_written_together_are_all_refused_when_one_is_invalid(store):
    _fill(store, 1)
    with pytest.raises(AuditError, match="audit action 'peek' is not one of"):
        audit.record_all(store, ALICE, [audit.Event("view_patient", patient="HT-9"),
                                        audit.Event("peek", patient="HT-9")])
    assert audit.verify(store).records == 1
