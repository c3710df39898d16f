"""Patient page: the key image of a series measured on automatic masks shows the stored
outline labelled automatic; a clinician rejects it (numbers withheld, audited) and restores
it; a researcher is not offered the review. Real unenhanced CT (``example_ct_sm``)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from analytics.config import load_settings
from analytics.features.segmentation import CLASSICAL_METHOD
from analytics.store import open_store
from analytics.store.schema import AuditRecord, Patient, Series, Study
from tests.app.conftest import new_app
from tests.features.automask_data import measured_home
from ui.session import Viewer

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")
RESEARCHER = Viewer("ana.res", "researcher", "s-res")
REASON = "outline includes the right kidney"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    settings, uids = measured_home(tmp_path_factory.mktemp("review-app"), synthetic=False)
    store = open_store(settings)
    with store.session() as s:
        pseudonym = s.scalar(select(Patient.pseudonym).join(Study).join(Series)
                             .where(Series.series_uid == uids["real"]))
    store.dispose()
    return settings.home, uids["real"], pseudonym


@pytest.fixture
def home(template, tmp_path, monkeypatch):
    import shutil

    src, uid, pseudonym = template
    dst = tmp_path / "home"
    shutil.copytree(src, dst)
    monkeypatch.setenv("HEPATRACK_HOME", str(dst))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    return dst, uid, pseudonym


def _patient_page(viewer: Viewer, pseudonym: str):
    at = new_app(viewer)
    at.query_params["patient"] = pseudonym
    at.run()
    at.switch_page("pages/patient.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _captions(at) -> str:
    return " ".join(str(c.value) for c in at.caption)


def _gaps(at):
    found = [d.value for d in at.dataframe if "Why not measured" in d.value.columns]
    return found[0] if found else None


def _button(at, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, (label, [b.label for b in at.button])
    return found[0]


def test_a_clinician_rejects_the_automatic_liver_outline_and_restores_it(home):
    dst, uid, pseudonym = home
    at = _patient_page(CLINICIAN, pseudonym)
    assert f"Liver (bluish green; automatic ({CLASSICAL_METHOD}, HepaTrack" in _captions(at)
    gaps = _gaps(at)
    assert gaps is None or not gaps["Why not measured"].str.contains("rejected").any()

    at.selectbox(key=f"patient:review-organ-{uid}").set_value("liver")
    at.text_input(key=f"patient:review-reason-{uid}").input(REASON)
    _button(at, "Reject the automatic outline").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"Liver (bluish green; automatic, rejected: {REASON})" in _captions(at)
    gaps = _gaps(at).set_index("Biomarker")
    why = f"automatic liver mask rejected by a clinician: {REASON}"
    assert gaps.loc["Liver attenuation, mean (HU)", "Why not measured"] == why
    store = open_store(load_settings(dst))
    try:
        with store.session() as s:
            rec = s.scalar(select(AuditRecord).where(AuditRecord.action == "mask_reject"))
            assert (rec.username, rec.role, rec.outcome, rec.patient_pseudonym) == (
                "dr.grey", "clinician", "ok", pseudonym)
            assert rec.detail["reason"] == REASON
    finally:
        store.dispose()

    _button(at, "Restore the automatic outline").click().run()
    assert not at.exception and not at.error
    assert f"Liver (bluish green; automatic ({CLASSICAL_METHOD}" in _captions(at)
    gaps = _gaps(at)
    assert gaps is None or not gaps["Why not measured"].str.contains("rejected").any()


def test_a_researcher_sees_the_automatic_label_but_no_review(home):
    _dst, _uid, pseudonym = home
    at = _patient_page(RESEARCHER, pseudonym)
    assert f"automatic ({CLASSICAL_METHOD}" in _captions(at)
    assert not [b for b in at.button if "automatic outline" in b.label]
    assert not [e for e in at.expander if "Review" in str(e.label)]
