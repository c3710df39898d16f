"""The Ingest page's NIfTI label table, used as a person would: upload a CT and its
TotalSegmentator label map without names, type the table, ingest; a mistyped table is
refused on the page with what was expected."""

from __future__ import annotations

import gzip
import time

import nibabel as nib
import numpy as np
import pytest

from analytics.config import load_settings
from analytics.ingest.loader import load_series
from analytics.store import open_store
from tests.app.conftest import new_app
from tests.realdata import CT_SM_LABELS, REFERENCE_ML, nifti_ct_as_dicom
from ui.session import Viewer

CLINICIAN = Viewer("dr.grey", "clinician", "s-labels")
JOB = "ingest:job"


def _uploads() -> list[tuple[str, bytes, str]]:
    img = nib.load(str(CT_SM_LABELS))  # written again without its own label table
    plain = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)
    files = [(name.split("/")[-1], data, "application/dicom")
             for name, data in nifti_ct_as_dicom()]
    return [*files, ("seg.nii.gz", gzip.compress(plain.to_bytes()), "application/gzip")]


def _ingest_page(table: str):
    at = new_app(CLINICIAN).run()
    at.switch_page("pages/ingest.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="ingest:files").set_value(_uploads()).run()
    at.text_input(key="ingest:labels").input(table).run()
    at.checkbox(key="ingest:extract").uncheck().run()
    at.button(key="ingest:go").click().run()
    return at


def _wait(at, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while at.session_state[JOB].running:
        assert time.monotonic() < deadline, "ingest still running"
        time.sleep(0.5)
    at.run()
    return at.session_state[JOB]


def test_a_typed_label_table_names_the_label_map_and_its_organs_are_stored(home):
    at = _ingest_page("5=liver, 1=spleen")
    job = _wait(at)
    assert job.error is None, job.error
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    (series,) = table[table["outcome"] == "accepted"].itertuples()
    assert series.masks == 1 and series.slices == 30
    assert "rejected" not in set(table["outcome"])
    settings = load_settings(home)
    store = open_store(settings)
    try:
        volume, masks = load_series(store, settings, series.item.removeprefix("series "))
    finally:
        store.dispose()
    ml = {k: round(float(m.sum()) * volume.voxel_volume_ml, 1) for k, m in masks.masks.items()}
    assert ml == REFERENCE_ML["example_ct_sm"]


@pytest.mark.parametrize(("table", "message"), [
    ("5=livr", "label table: 'livr' is not a structure HepaTrack reads"),
    ("liver", "label table: 'liver' is not value=name (expected e.g. 5=liver,1=spleen"),
], ids=["unknown-structure", "not-a-pair"])
def test_a_mistyped_label_table_is_refused_on_the_page(home, table, message):
    at = _ingest_page(table)
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith(message)
    assert JOB not in at.session_state  # no ingest job was started
