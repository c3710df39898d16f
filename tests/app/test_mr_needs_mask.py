"""An MR series without a liver mask, where TotalSegmentator is not installed, says that it
needs one: on the Ingest page's result table after the upload, and on the Patient page
for that scan. With its liver mask delivered it does not."""

from __future__ import annotations

import time

import pytest

from analytics.config import load_settings
from analytics.features.batch import run_batch
from analytics.features.totalseg import MR_NEEDS_MASK
from analytics.ingest.pipeline import ingest_uploads
from analytics.store import open_store
from tests.app.conftest import new_app
from tests.realdata import MR_SM, MR_SM_LABELS, nifti_as_dicom
from ui.session import Viewer

CLINICIAN = Viewer("dr.grey", "clinician", "s-mr")
JOB = "ingest:job"


@pytest.fixture(autouse=True)
def _no_totalsegmentator(monkeypatch):
    from analytics.features import totalseg

    monkeypatch.setattr(totalseg, "_installed_version", lambda: None)


def _mr_files() -> list[tuple[str, bytes]]:
    return nifti_as_dicom(MR_SM, modality="MR", patient_id="REAL-MR")


def _ingest(uploads, labels: str = ""):
    at = new_app(CLINICIAN).run()
    at.switch_page("pages/ingest.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="ingest:files").set_value(uploads).run()
    at.text_input(key="ingest:labels").input(labels).run()
    at.checkbox(key="ingest:extract").uncheck().run()
    at.button(key="ingest:go").click().run()
    deadline = time.monotonic() + 240.0
    while at.session_state[JOB].running:
        assert time.monotonic() < deadline, "ingest still running"
        time.sleep(0.5)
    at.run()
    assert at.session_state[JOB].error is None, at.session_state[JOB].error
    assert not at.exception, [e.value for e in at.exception]
    return at, next(d.value for d in at.dataframe if "outcome" in d.value.columns)


def test_an_uploaded_mr_without_a_mask_says_it_needs_a_liver_mask(home):
    uploads = [(n.split("/")[-1], b, "application/dicom") for n, b in _mr_files()]
    at, table = _ingest(uploads)
    (series,) = table[table["outcome"] == "accepted"].itertuples()
    assert (series.modality, series.masks, series.slices) == ("MR", 0, 20)
    assert series.reason == MR_NEEDS_MASK
    assert any("1 MR series without a liver mask" in w.value for w in at.warning)


def test_an_uploaded_mr_with_its_label_map_does_not(home):
    uploads = [(n.split("/")[-1], b, "application/dicom") for n, b in _mr_files()]
    uploads.append(("seg_mr.nii.gz", MR_SM_LABELS.read_bytes(), "application/gzip"))
    at, table = _ingest(uploads, "totalsegmentator-mr")
    (series,) = table[table["outcome"] == "accepted"].itertuples()
    assert (series.modality, series.masks) == ("MR", 1)
    assert series.reason == ""
    assert not any("without a liver mask" in w.value for w in at.warning)


def test_the_patient_page_says_the_mr_scan_needs_a_liver_mask(home):
    settings = load_settings(home)
    settings.ensure_home()
    store = open_store(settings)
    try:
        uid = ingest_uploads(_mr_files(), settings, store).series[0]["series_uid"]
        report = run_batch(store, settings, [uid])
    finally:
        store.dispose()
    assert report.series_done == [uid]
    at = new_app(CLINICIAN).run()
    at.switch_page("pages/patient.py").run()
    assert not at.exception, [e.value for e in at.exception]
    scan = next(s for s in at.selectbox if s.key.startswith("patient:series-"))
    assert scan.value == uid
    notes = [c.value for c in at.caption]
    assert f"⚠ {MR_NEEDS_MASK}; showing the whole series without a liver outline" in notes
    gaps = next(d.value for d in at.dataframe if "Why not measured" in d.value.columns)
    why = dict(zip(gaps["Biomarker"], gaps["Why not measured"], strict=True))
    assert why["Liver volume (mL)"] == MR_NEEDS_MASK
