"""``hepatrack export --what masks``: every stored DICOM SEG (automatic and delivered) with
a manifest; the files open as valid SEG; the export is audited and needs the permission."""

from __future__ import annotations

from datetime import date

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from sqlalchemy import select

from analytics import audit
from analytics.cli import main
from analytics.cohort.export import export
from analytics.errors import CohortError, PermissionDeniedError
from analytics.features.segmentation import CLASSICAL_METHOD
from analytics.ingest.pipeline import ingest_sources
from analytics.store import open_store
from analytics.store.schema import AuditRecord
from analytics.synthetic import synthesize_visit_volume
from analytics.synthetic.dicom_writer import (
    DicomIdentity,
    derived_uid,
    write_ct_series,
    write_seg,
)
from analytics.usecases.cohort import ExportRequest
from analytics.usecases.cohort import export as export_use_case
from analytics.usecases.context import Context
from analytics.usecases.mask_review import MaskReviewRequest, reject_mask
from tests.features.automask_data import measured_home


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The real CT measured on automatic masks (liver rejected) and a synthetic CT
    delivered with its SEG."""
    tmp = tmp_path_factory.mktemp("mask-export")
    settings, uids = measured_home(tmp, synthetic=False)
    vol = synthesize_visit_volume(1.0, np.random.default_rng(3), shape=(16, 64, 64))
    ident = DicomIdentity(
        patient_id="SYN-SEG", patient_name="SEG^DELIVERED", birth_date=date(1955, 5, 5),
        sex="M", study_uid=derived_uid("study", "seg"), series_uid=derived_uid("ser", "seg"),
        frame_of_reference_uid=derived_uid("for", "seg"), study_date=date(2021, 1, 2),
        study_time="090000", accession_number="A2")
    files = write_ct_series(vol, tmp / "syn" / "CT", ident)
    write_seg(vol, files, tmp / "syn" / "SEG" / "seg.dcm", ident,
              seg_series_uid=derived_uid("seg-series", "x"), seg_sop_uid=derived_uid("seg", "x"))
    store = open_store(settings)
    delivered = ingest_sources([tmp / "syn"], settings, store).series[0]["series_uid"]
    reject_mask(Context(audit.Actor("dr.grey", "clinician", "s"), store), MaskReviewRequest(
        uids["real"], "liver", "outline includes the right kidney"))
    yield settings, store, uids["real"], delivered
    store.dispose()


def test_the_masks_export_writes_every_seg_with_a_manifest_and_each_opens_as_a_valid_seg(
        home, tmp_path):
    settings, store, auto_uid, delivered_uid = home
    out = export_use_case(Context.cli(store, settings), ExportRequest("masks", tmp_path / "masks"))
    assert out["rows"] == 2
    manifest = pd.read_csv(out["manifest"])
    assert list(manifest.columns) == ["series_uid", "patient", "organs", "automatic",
                                      "method", "status", "file"]
    by_series = manifest.set_index("series_uid")
    auto = by_series.loc[auto_uid]
    assert bool(auto["automatic"]) and auto["method"].startswith(f"{CLASSICAL_METHOD} (HepaTrack extractor ")
    assert auto["organs"] == "liver;spleen"
    assert auto["status"] == ("liver: rejected: outline includes the right kidney; "
                              "spleen: measured")
    assert not bool(by_series.loc[delivered_uid]["automatic"])
    assert by_series.loc[delivered_uid]["status"].startswith("liver: delivered")
    for name, series_uid in zip(manifest["file"], manifest["series_uid"], strict=True):
        ds = pydicom.dcmread(tmp_path / "masks" / name)
        seg = hd.seg.Segmentation.from_dataset(ds)  # validates the SEG IOD structure
        assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
        assert str(ds.PatientID).startswith("HT-")  # pseudonymised, as stored
        assert "DELIVERED" not in str(ds.PatientName)
    with store.session() as s:
        rec = s.scalar(select(AuditRecord).where(AuditRecord.action == "export")
                       .order_by(AuditRecord.seq.desc()))
        assert rec.outcome == "ok" and rec.detail["what"] == "masks" and rec.detail["rows"] == 2


def test_the_masks_export_through_the_cli_writes_the_folder(home, tmp_path, capsys):
    settings, _store, _a, _d = home
    assert main(["--home", str(settings.home), "export", "--what", "masks",
                 "--out", str(tmp_path / "cli")]) == 0
    assert "exported 2 masks files" in capsys.readouterr().out
    assert len(list((tmp_path / "cli").glob("*.dcm"))) == 2


def test_the_masks_export_needs_the_export_permission_and_a_folder(home, tmp_path):
    settings, store, _a, _d = home
    with pytest.raises(PermissionDeniedError, match="may not export pseudonymised"):
        export_use_case(Context(audit.Actor("x", "nobody", "s"), store, settings),
                        ExportRequest("masks", tmp_path / "m"))
    (tmp_path / "file.csv").write_text("x")
    with pytest.raises(CohortError, match="expected a folder for --what masks"):
        export(store, "masks", tmp_path / "file.csv", settings=settings)
    assert not (tmp_path / "m").exists()
