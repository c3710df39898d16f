"""One contrast phase per series, decided at ingest and used by feature extraction.

De-identification removes the series description the phase was read from, so the stored
files no longer say it; the features stage must take the phase ingest stored, not
re-derive it from the stored header (which would say "unknown").
"""

from __future__ import annotations

import io

import pydicom
import pytest
from sqlalchemy import select

from analytics.config import Settings
from analytics.features.batch import run_batch
from analytics.features.registry import PHASE_CODES
from analytics.ingest.loader import load_series
from analytics.ingest.pipeline import ingest_sources
from analytics.store.db import open_store
from analytics.store.schema import Feature, FeatureRun, Series
from tests.realdata import nifti_ct_as_dicom

#: portal venous by its description; the surname in it is outside the clean-descriptor
#: vocabulary, so de-identification removes the whole description
PV_DESCRIPTION = "Abdomen PV Mustermann"


def _with_description(data: bytes, text: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.SeriesDescription = text
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """The real TotalSegmentator CT, described as portal venous, ingested de-identified."""
    root = tmp_path_factory.mktemp("phase")
    src = root / "src"
    for name, data in nifti_ct_as_dicom():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_with_description(data, PV_DESCRIPTION))
    settings = Settings(home=root / "home")
    store = open_store(settings)
    report = ingest_sources([src], settings, store, deidentify=True)
    assert report.series_ingested == 1, report.as_dict()
    uid = report.series[0]["series_uid"]
    yield settings, store, uid
    store.dispose()


def test_ingest_stores_the_phase_read_before_de_identification(ingested) -> None:
    settings, store, uid = ingested
    with store.session() as s:
        series = s.scalar(select(Series).where(Series.series_uid == uid))
        assert series.contrast_phase == "portal_venous"
        assert series.geometry["contrast_phase"] == "portal_venous"
        assert series.description is None  # removed by de-identification
    # the stored, de-identified files no longer say it: re-reading them gives no phase
    volume, _masks = load_series(store, settings, uid)
    assert volume.contrast_phase is None


def test_feature_extraction_uses_the_phase_stored_at_ingest(ingested) -> None:
    settings, store, uid = ingested
    report = run_batch(store, settings, series_uids=[uid])
    assert report.series_done == [uid], report.series_failed
    with store.session() as s:
        sid = s.scalar(select(Series.id).where(Series.series_uid == uid))
        rows = {f.name: f for f in s.scalars(select(Feature).where(Feature.series_id == sid))}
        run = s.scalar(select(FeatureRun).where(FeatureRun.series_id == sid))
    assert PHASE_CODES[int(rows["contrast_phase"].value)] == "portal_venous"
    assert "reason" not in (rows["contrast_phase"].flags or {})
    assert run.settings["contrast_phase"] == "portal_venous"
    assert run.settings["phase_source"] == "ingest"
    assert run.settings["contrast_phase_estimate"] is None  # nothing to estimate
    # no mask was delivered: the organ features come from automatic segmentation
    assert rows["liver_volume_ml"].flags["mask_source"] == "automatic"
    assert rows["contrast_phase"].flags["mask_source"] == "header"
