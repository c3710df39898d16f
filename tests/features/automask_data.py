"""A home with two CT series measured on automatic masks: the real unenhanced CT
(``example_ct_sm`` written as DICOM) and a synthetic feet-first series stored in
descending slice order, so the SEG's frames must be mapped back to the instances."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from analytics.config import Settings, load_settings
from analytics.features.batch import run_batch
from analytics.ingest.pipeline import ingest_sources, ingest_uploads
from analytics.store import open_store
from analytics.synthetic import synthesize_visit_volume
from analytics.synthetic.dicom_writer import DicomIdentity, derived_uid, write_ct_series
from tests.realdata import nifti_ct_as_dicom


def synthetic_ct(out: Path) -> Path:
    """A feet-first (descending) synthetic CT with anisotropic pixels, without a SEG."""
    vol = synthesize_visit_volume(2.0, np.random.default_rng(5), shape=(36, 100, 120),
                                  spacing_mm=(4.0, 3.6, 3.0), contrast_phase="unenhanced",
                                  scanner_offset_mm=(0.0, 12.0, -210.0))
    ident = DicomIdentity(
        patient_id="SYN-AUTO", patient_name="AUTO^MASK", birth_date=date(1960, 1, 1),
        sex="F", study_uid=derived_uid("study", "auto"), series_uid=derived_uid("ser", "auto"),
        frame_of_reference_uid=derived_uid("for", "auto"), study_date=date(2020, 2, 3),
        study_time="101010", accession_number="A1")
    write_ct_series(vol, out, ident, slice_order="descending")
    return out


def measured_home(tmp: Path, *, synthetic: bool = True) -> tuple[Settings, dict[str, str]]:
    """The series ingested and their features extracted (each in this process)."""
    settings = load_settings(tmp / "home")
    settings.ensure_home()
    store = open_store(settings)
    uids = {
        "real": ingest_uploads(nifti_ct_as_dicom(), settings, store).series[0]["series_uid"]}
    if synthetic:
        uids["synthetic"] = ingest_sources([synthetic_ct(tmp / "syn")], settings,
                                           store).series[0]["series_uid"]
    for uid in uids.values():
        report = run_batch(store, settings, [uid])
        assert report.series_done == [uid], report.series_failed
    store.dispose()
    return settings, uids
