"""A study whose identity fields disagree with the stored patient of its Patient ID is held
as an identity conflict (RELIABILITY.md 38): stored, filed under nobody, not scored, until
a clinician says "same patient" or "different patient" (audited once)."""

from __future__ import annotations

import pandas as pd
import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from analytics import audit
from analytics.audit import Actor
from analytics.errors import PermissionDeniedError, StoreError
from analytics.ingest.pipeline import ingest_uploads
from analytics.store import features as feature_repo
from analytics.store import repo
from analytics.store.identity_holds import IdentityFacts, differing_fields, normal_name
from analytics.store.schema import (
    AuditRecord,
    IdentityHold,
    IdentityMap,
    Instance,
    Series,
    Study,
)
from analytics.usecases.context import Context
from analytics.usecases.identity import ResolveRequest, list_held_studies, resolve_held_study
from tests.ingest.identity_samples import Person, RealStudy, real_slices

CLINICIAN = Actor("dr.grey", "clinician", "s1")
RESEARCHER = Actor("ana", "researcher", "s2")
ADMIN = Actor("root", "admin", "s3")
GARCIA = Person(name="GARCIA^DAVID^Q", birth_date="19700101")
HELD_STUDY: list[RealStudy] = []  # the study the ``held`` fixture sent (to send it again)


@pytest.fixture
def ingest(settings, store, parser):
    def go(study: RealStudy, **kw):
        return ingest_uploads(real_slices(study, **kw), settings, store, parser=parser)
    return go


@pytest.fixture
def held(ingest, store):
    """MUELLER^MICHAEL stored; then a study of GARCIA^DAVID^Q under the same Patient ID."""
    first = ingest(RealStudy(Person()))
    HELD_STUDY.clear()
    HELD_STUDY.append(RealStudy(GARCIA, study_date="20220505"))
    report = ingest(HELD_STUDY[0])
    return first.series[0]["patient"], report


def _trail(store) -> list[tuple[str, str, str]]:
    with store.session() as s:
        return [tuple(r) for r in s.execute(
            select(AuditRecord.action, AuditRecord.outcome, AuditRecord.username)
            .order_by(AuditRecord.seq)).all()]


def test_another_name_and_birth_date_under_a_stored_patient_id_is_held_not_merged(
        held, store):
    mueller, report = held
    assert report.series == [] and report.series_ingested == 0 and report.instances == 3
    (h,) = report.held
    assert h["patient"] == mueller and h["fields"] == ["name", "birth_date"]
    assert h["reason"].startswith(f"held: identity conflict with stored patient {mueller} "
                                  "(name, birth date differ)")
    assert "GARCIA" not in str(report.as_dict()) and "1970" not in str(report.as_dict())
    with store.session() as s:
        assert s.execute(select(func.count(Instance.id))).scalar() == 6  # nothing lost
        held_study = s.execute(select(Study).where(Study.patient_id.is_(None))).scalar_one()
        assert held_study.study_uid == h["study_uid"]
    patients = repo.list_patients(store, identified=True)
    assert patients["pseudonym"].tolist() == [mueller]
    assert patients["n_studies"].tolist() == [1]
    assert patients["patient_name"].tolist() == ["MUELLER^MICHAEL"]
    # not scored: `hepatrack features --all` never picks it
    with store.session() as s:
        picked = {uid for _, uid in feature_repo.series_ids(s, None)}
    assert h["series_uid"] not in picked and len(picked) == 1


def test_a_name_written_in_another_case_with_a_trailing_caret_is_the_same_patient(ingest):
    first = ingest(RealStudy(Person()))
    again = ingest(RealStudy(Person(name="Mueller^Michael^")))
    assert again.held == []
    assert again.series[0]["patient"] == first.series[0]["patient"]


@pytest.mark.parametrize(("changed", "fields"), [
    (Person(name="MUELLER^MARTIN"), ["name"]),
    (Person(birth_date="19771204"), ["birth_date"]),
    (Person(sex="F"), ["sex"]),
], ids=["given-name", "birth-date", "sex"])
def test_each_disagreeing_identity_field_is_named(ingest, changed, fields):
    ingest(RealStudy(Person()))
    (h,) = ingest(RealStudy(changed)).held
    assert h["fields"] == fields


def test_another_issuer_of_patient_id_is_a_conflict(ingest):
    ingest(RealStudy(Person(issuer="HOSP-A")))
    (h,) = ingest(RealStudy(Person(issuer="HOSP-B"))).held
    assert h["fields"] == ["issuer"]


def test_sending_a_held_study_again_stores_nothing_twice_and_says_it_is_held(held, ingest,
                                                                              store):
    again = ingest(HELD_STUDY[0])
    assert again.instances == 0 and again.duplicates == 3 and again.conflicts == []
    assert again.held[0]["already_stored"] is True
    with store.session() as s:
        assert s.execute(select(func.count(IdentityHold.id))).scalar() == 1


def test_same_patient_files_the_study_under_the_stored_patient_with_one_audit_record(
        held, store, settings):
    mueller, _ = held
    ctx = Context(CLINICIAN, store, settings)
    (hold,) = list_held_studies(ctx)
    assert hold.received["patient_name"] == "GARCIA^DAVID^Q"
    assert hold.stored["patient_name"] == "MUELLER^MICHAEL"
    assert hold.received["birth_date"] == "1970-01-01"
    before = len(_trail(store))
    out = resolve_held_study(ctx, ResolveRequest(hold.hold_id, "same"))
    assert (out.patient, out.new_patient, out.decision) == (mueller, False, "same")
    assert _trail(store)[before:] == [("identity_resolve", "ok", "dr.grey")]
    assert audit.verify(store).ok
    assert repo.list_patients(store, identified=False)["n_studies"].tolist() == [2]
    assert list_held_studies(ctx) == []
    with pytest.raises(StoreError, match="no such study waiting for a decision"):
        resolve_held_study(ctx, ResolveRequest(hold.hold_id, "different"))


def test_different_patient_gets_a_new_record_with_its_own_pseudonym(held, store, settings):
    mueller, _ = held
    ctx = Context(CLINICIAN, store, settings)
    (hold,) = list_held_studies(ctx)
    out = resolve_held_study(ctx, ResolveRequest(hold.hold_id, "different"))
    assert out.new_patient and out.patient != mueller and out.patient.startswith("HT-")
    patients = repo.list_patients(store, identified=True).set_index("pseudonym")
    assert patients.loc[out.patient, "patient_name"] == "GARCIA^DAVID^Q"
    assert patients.loc[out.patient, "birth_date"] == pd.Timestamp(1970, 1, 1)
    assert patients.loc[mueller, "patient_name"] == "MUELLER^MICHAEL"
    assert patients["n_studies"].tolist() == [1, 1]
    with store.session() as s:
        keys = s.execute(select(IdentityMap.real_patient_id, IdentityMap.date_shift_days)
                         ).all()
    assert {k for k, _ in keys} == {"MRN-4711"} and len({d for _, d in keys}) == 1
    assert [a for a, *_ in _trail(store)].count("identity_resolve") == 1


def test_the_files_of_a_study_filed_under_another_patient_carry_its_pseudonym(held, store,
                                                                              settings):
    mueller, _ = held
    ctx = Context(CLINICIAN, store, settings)
    (hold,) = list_held_studies(ctx)
    out = resolve_held_study(ctx, ResolveRequest(hold.hold_id, "different"))
    new_files = repo.series_for_patient(store, out.patient)
    with store.session() as s:
        paths = s.execute(select(Instance.path).join(Series).where(
            Series.series_uid.in_(new_files["series_uid"].tolist()))).scalars().all()
    assert len(paths) == 3
    for rel in paths:
        ds = dcmread(settings.home / rel)
        assert ds.PatientID == ds.PatientName == out.patient
        assert mueller.encode() not in (settings.home / rel).read_bytes()


def test_a_second_study_of_the_same_different_patient_joins_that_patient(held, ingest, store,
                                                                         settings):
    ctx = Context(CLINICIAN, store, settings)
    (hold,) = list_held_studies(ctx)
    first = resolve_held_study(ctx, ResolveRequest(hold.hold_id, "different"))
    (h2,) = ingest(RealStudy(GARCIA, study_date="20230101")).held  # held again: no guess
    second = resolve_held_study(ctx, ResolveRequest(h2["hold_id"], "different"))
    assert second.patient == first.patient and not second.new_patient


@pytest.mark.parametrize("actor", [RESEARCHER, ADMIN], ids=["researcher", "admin"])
def test_a_role_without_the_identified_view_cannot_resolve_and_the_refusal_is_audited(
        held, store, settings, actor):
    _, report = held
    ctx = Context(actor, store, settings)
    with pytest.raises(PermissionDeniedError, match=rf"{actor.username} \({actor.role}\)"):
        resolve_held_study(ctx, ResolveRequest(report.held[0]["hold_id"], "same"))
    assert _trail(store)[-1] == ("identity_resolve", "denied", actor.username)
    with store.session() as s:
        assert s.execute(select(IdentityHold.status)).scalar() == "held"


def test_an_administrator_lists_held_studies_by_pseudonym_and_field_names_only(held, store,
                                                                                settings):
    mueller, _ = held
    (hold,) = list_held_studies(Context(ADMIN, store, settings))
    assert hold.stored is None and hold.received is None
    assert hold.as_dict()["differs"] == "name, birth date" and hold.patient == mueller
    with pytest.raises(PermissionDeniedError, match=r"ana \(researcher\)"):
        list_held_studies(Context(RESEARCHER, store, settings))


@pytest.mark.parametrize(("a", "b", "differ"), [
    ("MUELLER^MICHAEL", "Mueller^Michael^", False),
    ("MUELLER^MICHAEL", "  mueller ^ michael ^^", False),
    ("GARCIA^DAVID^Q", "GARCIA^DAVID", False),  # a middle name given on one side only
    ("GARCIA^DAVID^Q", "GARCIA^DAVID^R", True),
    ("MUELLER^MICHAEL", "GARCIA^DAVID^Q", True),
    ("MUELLER^MICHAEL", "MUELLER", True),  # a given name missing is not agreement
    (None, "GARCIA^DAVID", False),
], ids=["case-caret", "spaces", "middle-missing", "middle-differs", "family", "given",
        "unknown"])
def test_names_are_compared_in_normal_form(a, b, differ):
    got = differing_fields(IdentityFacts(patient_name=a), IdentityFacts(patient_name=b))
    assert got == (["name"] if differ else [])


def test_the_normal_form_of_a_name_drops_case_spaces_and_trailing_components():
    assert normal_name("Mueller^ Michael ^^") == ("mueller", "michael")
    assert normal_name("Yamada^Tarou=山田^太郎") == ("yamada", "tarou")
