"""A series stored with one broken slice can be mended: completed with the re-sent intact
slice (same SOP Instance UID), replaced, or removed, each audited once; and an invalid
series never defines a patient's time zero."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from analytics import audit
from analytics.audit import Actor
from analytics.cohort.table import cohort_rows
from analytics.errors import IngestError, PermissionDeniedError, StoreError
from analytics.ingest.pipeline import ingest_uploads
from analytics.store import repo
from analytics.store.schema import AuditRecord, Instance, Series, Study
from analytics.usecases.context import Context
from analytics.usecases.series_repair import (
    SeriesFilesRequest,
    complete_series,
    remove_series,
    replace_series,
)
from tests.ingest.identity_samples import Person, RealStudy, real_slices

CLINICIAN = Actor("dr.grey", "clinician", "s1")
ADMIN = Actor("root", "admin", "s3")
RESEARCHER = Actor("ana", "researcher", "s2")


@pytest.fixture
def broken(settings, store, parser):
    """A real CT series of three slices stored with its middle slice cut short."""
    study = RealStudy(Person(), study_date="20190101")
    report = ingest_uploads(real_slices(study, broken=frozenset({1})), settings, store,
                            parser=parser)
    (series,) = report.series
    assert series["status"] == "invalid" and "truncated pixel data" in series["reason"]
    return study, series["series_uid"]


def _trail(store) -> list[tuple[str, str, str]]:
    with store.session() as s:
        return [tuple(r) for r in s.execute(
            select(AuditRecord.action, AuditRecord.outcome, AuditRecord.username)
            .order_by(AuditRecord.seq)).all()]


def _files(settings) -> set[str]:
    return {p.relative_to(settings.home).as_posix()
            for p in (settings.home / "dicom").rglob("*.dcm")}


def test_the_resent_good_slice_completes_the_series_in_place_of_the_broken_one(
        broken, settings, store, parser):
    study, uid = broken
    good = real_slices(study)[1:2]
    # a plain re-send is still refused: nothing is overwritten without a decision
    plain = ingest_uploads(good, settings, store, parser=parser)
    assert [c.reason for c in plain.conflicts] == [
        "conflict: this SOP Instance UID is already stored with different content; nothing "
        "was overwritten"]
    before = _files(settings)
    out = complete_series(Context(CLINICIAN, store, settings),
                          SeriesFilesRequest(uid, good, parser=parser))
    assert out.status == "complete" and out.report.replaced == 1
    assert _trail(store) == [("series_complete", "ok", "dr.grey")]
    assert audit.verify(store).ok
    with store.session() as s:
        series = s.execute(select(Series).where(Series.series_uid == uid)).scalar_one()
        assert (series.status, series.n_instances, series.n_slices) == ("complete", 3, 3)
        paths = set(s.execute(select(Instance.path)).scalars())
    assert _files(settings) == paths and len(paths & before) == 2  # the broken file is gone


def test_completing_a_complete_series_is_refused(broken, settings, store, parser):
    study, uid = broken
    ctx = Context(ADMIN, store, settings)
    complete_series(ctx, SeriesFilesRequest(uid, real_slices(study)[1:2], parser=parser))
    with pytest.raises(StoreError, match=f"series {uid}: already complete; nothing to mend"):
        complete_series(ctx, SeriesFilesRequest(uid, real_slices(study)[1:2], parser=parser))


def test_a_broken_copy_sent_to_complete_a_series_replaces_nothing(broken, settings, store,
                                                                  parser):
    study, uid = broken
    out = complete_series(Context(CLINICIAN, store, settings), SeriesFilesRequest(
        uid, real_slices(study, broken=frozenset({1}))[1:2], parser=parser))
    assert out.status == "invalid" and out.report.replaced == 0
    assert out.report.duplicates == 1


def test_replacing_a_series_stores_the_new_one_and_removes_the_old(broken, settings, store,
                                                                   parser):
    _, uid = broken
    fresh = RealStudy(Person(), study_date="20190101")
    out = replace_series(Context(CLINICIAN, store, settings),
                         SeriesFilesRequest(uid, real_slices(fresh), parser=parser))
    assert out.removed is not None and out.removed.instances == 3
    (new,) = out.report.series
    assert new["status"] == "complete" and new["series_uid"] != uid
    with store.session() as s:
        assert s.execute(select(Series.series_uid)).scalars().all() == [new["series_uid"]]
        assert s.execute(select(func.count(Instance.id))).scalar() == 3
    assert len(_files(settings)) == 3
    assert _trail(store) == [("series_replace", "ok", "dr.grey")]


def test_a_replacement_that_stores_nothing_keeps_the_old_series(broken, settings, store,
                                                                parser):
    _, uid = broken
    with pytest.raises(IngestError, match=f"series {uid}: the replacement was not stored"):
        replace_series(Context(CLINICIAN, store, settings),
                       SeriesFilesRequest(uid, [("notes.txt", b"not dicom")], parser=parser))
    with store.session() as s:
        assert s.execute(select(func.count(Instance.id))).scalar() == 3


def test_removing_a_series_deletes_its_rows_study_and_files_with_one_record(broken, settings,
                                                                            store):
    _, uid = broken
    out = remove_series(Context(ADMIN, store, settings), uid)
    assert (out.removed.instances, out.removed.files_removed, out.removed.study_removed) == (
        3, 3, True)
    with store.session() as s:
        assert s.execute(select(func.count(Series.id))).scalar() == 0
        assert s.execute(select(func.count(Study.id))).scalar() == 0
    assert _files(settings) == set()
    assert _trail(store) == [("series_remove", "ok", "root")]
    with pytest.raises(StoreError, match=f"series {uid}: not in the store"):
        remove_series(Context(ADMIN, store, settings), uid)


@pytest.mark.parametrize("action", ["series_complete", "series_replace", "series_remove"])
def test_a_researcher_cannot_mend_a_series_and_the_refusal_is_audited(broken, settings, store,
                                                                      action):
    _, uid = broken
    ctx = Context(RESEARCHER, store, settings)
    calls = {"series_complete": lambda: complete_series(ctx, SeriesFilesRequest(uid)),
             "series_replace": lambda: replace_series(ctx, SeriesFilesRequest(uid)),
             "series_remove": lambda: remove_series(ctx, uid)}
    with pytest.raises(PermissionDeniedError, match=r"ana \(researcher\)"):
        calls[action]()
    assert _trail(store) == [(action, "denied", "ana")]
    with store.session() as s:
        assert s.execute(select(func.count(Instance.id))).scalar() == 3


def test_an_invalid_series_never_defines_the_patients_time_zero(broken, settings, store,
                                                                parser):
    # the broken series is dated 2019-01-01; the patient's first good scan two years later
    report = ingest_uploads(real_slices(RealStudy(Person(), study_date="20210101")),
                            settings, store, parser=parser)
    (good,) = report.series
    pseudonym = good["patient"]
    timeline = repo.cohort_timeline(store)
    scans = sorted(timeline.loc[timeline["kind"] == "scan", "time_years"].round(3))
    assert scans == [pytest.approx(-2.001, abs=1e-3), 0.0]  # the good scan is time zero
    detail = repo.patient_detail(store, pseudonym, identified=False)
    assert sorted(detail.studies["time_years"].round(3)) == [pytest.approx(-2.001, abs=1e-3),
                                                             0.0]
    series = repo.series_for_patient(store, pseudonym)
    times = dict(zip(series["status"], series["time_years"].round(3), strict=True))
    assert times == {"complete": 0.0, "invalid": pytest.approx(-2.001, abs=1e-3)}
    rows = cohort_rows(store)
    assert [r.study_date.isoformat() for r in rows.study_dates] == [good["study_date"]]


def test_a_patient_with_only_an_invalid_series_still_has_its_scan_placed(broken, store):
    timeline = repo.cohort_timeline(store)
    assert timeline["time_years"].tolist() == [0.0]
