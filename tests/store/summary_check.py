"""What every writer test asks of ``patient_summary``: it equals a recomputation."""

from __future__ import annotations

from sqlalchemy import select

from analytics.store.patient_summary import summary_rows
from analytics.store.schema import Patient, PatientSummary


def stored_summary(store) -> dict[str, dict]:
    """The summary rows as stored, by pseudonym (every column but the patient id)."""
    with store.session() as s:
        rows = s.execute(select(Patient.pseudonym, PatientSummary)
                         .join(PatientSummary, PatientSummary.patient_id == Patient.id)).all()
        return {name: {c.key: getattr(row, c.key) for c in PatientSummary.__table__.c
                       if c.key != "patient_id"} for name, row in rows}


def assert_summary_fresh(store) -> dict[str, dict]:
    """Assert the stored summary equals one computed from scratch from the rows it
    summarises, one row per patient and none for patients that do not exist; return it."""
    with store.session() as s:
        fresh = {r["patient_id"]: r for r in summary_rows(s.connection())}
        names = dict(s.execute(select(Patient.id, Patient.pseudonym)).all())
        kept = set(s.execute(select(PatientSummary.patient_id)).scalars())
    assert kept == set(names), "a summary row per patient, and none for a removed one"
    want = {names[pid]: {k: v for k, v in row.items() if k != "patient_id"}
            for pid, row in fresh.items()}
    got = stored_summary(store)
    assert got == want
    return got
