"""Every ingest-side writer leaves ``patient_summary`` equal to a recomputation from the
rows it summarises: ingest, a held study (filed under nobody), resolving it as the same
or a different patient, completing, replacing and removing a series, and feature
extraction's write of a series' values."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from analytics.audit import Actor
from analytics.ingest.pipeline import ingest_uploads
from analytics.store.features import FeatureRow, replace_features
from analytics.store.schema import Series
from analytics.usecases.context import Context
from analytics.usecases.identity import ResolveRequest, list_held_studies, resolve_held_study
from analytics.usecases.series_repair import (
    SeriesFilesRequest,
    complete_series,
    remove_series,
    replace_series,
)
from tests.ingest.identity_samples import Person, RealStudy, real_slices
from tests.store.summary_check import assert_summary_fresh

CLINICIAN = Actor("dr.grey", "clinician", "s1")
ADMIN = Actor("root", "admin", "s3")
GARCIA = Person(name="GARCIA^DAVID^Q", birth_date="19700101")


@pytest.fixture
def held(settings, store, parser) -> tuple[str, None]:
    """MUELLER^MICHAEL stored; then a study of GARCIA^DAVID^Q under the same Patient ID,
    held as an identity conflict (as in test_identity_conflict.py)."""
    first = ingest_uploads(real_slices(RealStudy(Person())), settings, store, parser=parser)
    ingest_uploads(real_slices(RealStudy(GARCIA, study_date="20220505")), settings, store,
                   parser=parser)
    return first.series[0]["patient"], None


def test_ingest_and_a_held_study_keep_the_summary(held, store):
    mueller, _ = held
    got = assert_summary_fresh(store)
    # the held study is filed under nobody: the stored patient keeps one study
    assert list(got) == [mueller]
    assert (got[mueller]["n_studies"], got[mueller]["n_series"]) == (1, 1)


def test_resolving_a_held_study_as_the_same_patient_adds_it_to_that_patients_row(
        held, store, settings):
    mueller, _ = held
    ctx = Context(CLINICIAN, store, settings)
    (hold,) = list_held_studies(ctx)
    resolve_held_study(ctx, ResolveRequest(hold.hold_id, "same"))
    got = assert_summary_fresh(store)
    assert (got[mueller]["n_studies"], got[mueller]["n_series"]) == (2, 2)
    assert got[mueller]["last_scan"] is not None


def test_resolving_a_held_study_as_a_different_patient_gives_the_new_patient_a_row(
        held, store, settings):
    mueller, _ = held
    ctx = Context(CLINICIAN, store, settings)
    (hold,) = list_held_studies(ctx)
    out = resolve_held_study(ctx, ResolveRequest(hold.hold_id, "different"))
    got = assert_summary_fresh(store)
    assert (got[mueller]["n_studies"], got[out.patient]["n_studies"]) == (1, 1)


def test_feature_values_written_for_a_series_become_the_patients_latest(held, store):
    mueller, _ = held
    with store.session() as s:
        sid = s.execute(select(Series.id)).scalars().first()
        replace_features(s, sid, "9.9", [FeatureRow("liver_volume_ml", 1712.5, "mL")], None)
    assert assert_summary_fresh(store)[mueller]["liver_volume_ml"] == 1712.5


def test_completing_replacing_and_removing_a_series_keep_the_summary(settings, store,
                                                                       parser):
    study = RealStudy(Person(), study_date="20190101")
    report = ingest_uploads(real_slices(study, broken=frozenset({1})), settings, store,
                            parser=parser)
    (series,) = report.series
    patient, uid = series["patient"], series["series_uid"]
    got = assert_summary_fresh(store)
    assert (got[patient]["n_studies"], got[patient]["n_series"]) == (1, 1)
    complete_series(Context(CLINICIAN, store, settings),
                    SeriesFilesRequest(uid, real_slices(study)[1:2], parser=parser))
    assert_summary_fresh(store)
    out = replace_series(Context(CLINICIAN, store, settings),
                         SeriesFilesRequest(uid, real_slices(study), parser=parser))
    (new,) = out.report.series
    assert assert_summary_fresh(store)[patient]["n_series"] == 1
    remove_series(Context(ADMIN, store, settings), new["series_uid"])
    got = assert_summary_fresh(store)
    assert (got[patient]["n_studies"], got[patient]["n_series"],
            got[patient]["last_scan"]) == (0, 0, None)
