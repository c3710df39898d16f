"""Saving ultrasound ROIs is a clinician's audited action: one ``ok`` record per save, a
refusal audited and nothing stored, and a failed measurement stores nothing."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from analytics import audit
from analytics.audit import Actor
from analytics.errors import FeatureError, PermissionDeniedError
from analytics.features.ultrasound import Roi
from analytics.ingest.pipeline import ingest_sources
from analytics.store import open_store
from analytics.store.schema import AuditRecord, Feature, UltrasoundRoi
from analytics.synthetic.ultrasound import default_truth, render_frame, ultrasound_dataset
from analytics.usecases import ultrasound as us_uc
from analytics.usecases.context import Context
from tests.ingest.conftest import to_bytes

CLINICIAN = Actor("dr.grey", "clinician", "s1")
RESEARCHER = Actor("ana.res", "researcher", "s2")
TRUTH = default_truth()
KX, KD = TRUTH.kidney_centre_mm
ROIS = (Roi("liver", "box", 20.0, KD, 20.0, 12.0), Roi("kidney", "circle", KX, KD, 10.0, 0.0))


@pytest.fixture
def stored(settings, tmp_path):
    path = tmp_path / "us.dcm"
    path.write_bytes(to_bytes(ultrasound_dataset([render_frame(TRUTH,
                                                               np.random.default_rng(0))],
                                                 TRUTH)))
    store = open_store(settings)
    report = ingest_sources([str(path)], settings, store)
    yield store, report.series[0]["series_uid"]
    store.dispose()


def _trail(store) -> list[tuple[str, str, str]]:
    with store.session() as s:
        return [tuple(r) for r in s.execute(
            select(AuditRecord.action, AuditRecord.outcome, AuditRecord.username)
            .order_by(AuditRecord.seq)).all()]


def _counts(store) -> tuple[int, int]:
    with store.session() as s:
        return (s.scalar(select(func.count(UltrasoundRoi.id))),
                s.scalar(select(func.count(Feature.id))))


def test_a_clinician_save_writes_one_audit_record_and_the_rois(stored, settings):
    store, uid = stored
    m = us_uc.save(Context(CLINICIAN, store, settings), us_uc.RoiRequest(uid, 0, ROIS))
    assert m.values["us_hepatorenal_index"] == pytest.approx(TRUTH.hepatorenal_index, rel=0.02)
    assert _trail(store) == [("ultrasound_roi", "ok", "dr.grey")]
    assert audit.verify(store).ok
    assert _counts(store) == (2, len(m.values))
    again = us_uc.saved_rois(Context(CLINICIAN, store, settings), uid)
    assert again is not None and (again.frame, again.rois, again.author) == (0, ROIS, "dr.grey")


def test_a_researcher_may_not_save_rois_and_the_refusal_is_audited(stored, settings):
    store, uid = stored
    with pytest.raises(PermissionDeniedError, match=r"ana.res \(researcher\)"):
        us_uc.save(Context(RESEARCHER, store, settings), us_uc.RoiRequest(uid, 0, ROIS))
    assert _trail(store) == [("ultrasound_roi", "denied", "ana.res")]
    assert _counts(store) == (0, 0)


def test_a_measurement_that_fails_stores_nothing_and_is_audited_as_failed(stored, settings):
    store, uid = stored
    outside = (Roi("liver", "box", -30.0, 20.0, 10.0, 10.0),)
    with pytest.raises(FeatureError, match="liver ROI reaches outside the image region"):
        us_uc.save(Context(CLINICIAN, store, settings), us_uc.RoiRequest(uid, 0, outside))
    assert _trail(store) == [("ultrasound_roi", "ok", "dr.grey"),
                             ("ultrasound_roi", "failed", "dr.grey")]
    assert _counts(store) == (0, 0)
