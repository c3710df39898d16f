"""The store's data version: the same while nothing changes or only the audit log is
written, new after any committed write the dashboard's caches depend on (a new row, a
changed value, event or active flag, a deleted row), not after a rolled-back one; on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from analytics.store import open_store
from analytics.store.schema import ModelRecord, Outcome, Visit
from analytics.store.version import data_version
from tests.store.seed import seed_small_cohort


@pytest.fixture
def store(db_url, tmp_path):
    s = open_store(url=db_url, home=tmp_path / "home")
    seed_small_cohort(s)
    yield s
    s.dispose()


def _changed(store, statement) -> bool:
    before = data_version(store)
    with store.session() as s:
        s.execute(statement)
        s.commit()
    return data_version(store) != before


def test_the_version_is_stable_without_writes_and_after_audit_records(store):
    from analytics import audit

    v = data_version(store)
    assert len(v) == 32 and int(v, 16) >= 0  # the seed wrote: a token, not "0"
    assert data_version(store) == v
    audit.record(store, audit.Actor("dr.grey", "clinician", "s1"), "view_patient",
                 patient="HT-0001")
    assert data_version(store) == v


def test_an_orm_object_added_gives_a_new_version_and_a_rollback_does_not(store):
    with store.session() as s:
        pid = s.execute(select(Visit.patient_id).limit(1)).scalar()
    before = data_version(store)
    with pytest.raises(RuntimeError, match="abandoned"), store.session() as s:
        s.add(Visit(patient_id=pid, time_years=4.0, source="csv", values={"inr": 1.4}))
        s.flush()
        raise RuntimeError("abandoned")
    assert data_version(store) == before
    with store.session() as s:
        s.add(Visit(patient_id=pid, time_years=4.0, source="csv", values={"inr": 1.4}))
    assert data_version(store) != before


@pytest.mark.parametrize("statement", [
    pytest.param(update(Visit).where(Visit.time_years == 1.0).values(values={"inr": 1.3}),
                 id="a lab value changed in place"),
    pytest.param(update(Outcome).where(Outcome.time_years == 2.0).values(event="death"),
                 id="an outcome's event changed"),
    pytest.param(update(ModelRecord).values(active=False), id="the active model changed"),
    pytest.param(delete(Visit).where(Visit.time_years == 0.5), id="a visit deleted"),
])
def test_a_write_gives_a_new_version(store, statement):
    assert _changed(store, statement)


def test_an_insert_gives_a_new_version(store):
    with store.session() as s:
        pid = s.execute(Visit.__table__.select().limit(1)).first().patient_id
    from sqlalchemy import insert

    assert _changed(store, insert(Visit).values(patient_id=pid, time_years=3.0,
                                                source="csv", values={"inr": 1.1}))
