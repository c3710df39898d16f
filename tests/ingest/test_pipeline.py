"""The ingest orchestrator: folders, zips, uploads, masks, quarantine and the report."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from analytics.ingest.deid import date_shift_days, hmac_uid, patient_pseudonym
from analytics.ingest.pipeline import ingest_sources, ingest_uploads
from analytics.store.schema import IdentityMap, Instance, Mask, Patient, Series, Study
from tests.ingest.dicom_samples import (
    Study as SampleStudy,
)
from tests.ingest.dicom_samples import (
    ct_series,
    encode,
    rtstruct_for,
    secondary_capture,
    seg_for,
    write_folder,
)

PHI = (b"MRN-0012345", b"Doe", b"Jane", b"19580314", b"ACC998877", b"St Mary", b"Wilson")


@pytest.fixture
def run(settings, store, parser):
    """Ingest with the session's worker pool (so each test does not start its own)."""
    def go(sources, **kw):
        return ingest_sources([str(s) for s in sources], settings, store, parser=parser, **kw)
    return go


def _rows(store, model):
    with store.session() as s:
        return s.execute(select(model)).scalars().all()


def test_folder_ingest_stores_a_deidentified_series_with_its_identity(tmp_path, settings, store,
                                                                       run):
    study = SampleStudy()
    images = ct_series(study, 4)
    folder = write_folder(tmp_path / "Doe_Jane_MRN-0012345", images)
    (folder / "seg.dcm").write_bytes(encode(seg_for(images)))
    (folder / "rt.dcm").write_bytes(encode(rtstruct_for(images)))
    report = run([folder])
    assert (report.series_ingested, report.instances, report.duplicates, report.masks) == (
        1, 4, 0, 2)
    assert report.rejected == [] and report.quarantined == [] and report.conflicts == []
    secret = settings.site_secret()
    shift = date_shift_days(secret, study.patient_id)
    (summary,) = report.series
    assert summary == {
        "series_uid": hmac_uid(secret, images[0].SeriesInstanceUID),
        "patient": patient_pseudonym(secret, study.patient_id),
        "study_date": (dt.date(2020, 1, 15) + dt.timedelta(days=shift)).isoformat(),
        "modality": "CT", "slices": 4, "masks": 2, "status": "complete", "reason": None,
        "already_stored": False, "stack": None, "stacks": []}
    (ident,) = _rows(store, IdentityMap)
    assert (ident.real_patient_id, ident.patient_name, ident.birth_date,
            ident.date_shift_days) == (study.patient_id, study.patient_name,
                                       dt.date(1958, 3, 14), shift)
    (patient,) = _rows(store, Patient)
    assert patient.pseudonym == summary["patient"] and patient.sex == "F"
    assert patient.birth_year == (dt.date(1958, 3, 14) + dt.timedelta(days=shift)).year
    (series,) = _rows(store, Series)
    assert series.spacing_mm == pytest.approx([0.8, 0.8, 2.5])  # [x, y, z]
    assert series.n_instances == 4 and series.status == "complete"
    assert series.frame_of_reference_uid == hmac_uid(secret, images[0].FrameOfReferenceUID)
    assert series.contrast_phase == "portal_venous"
    assert series.description == "CT ABDOMEN PORTAL VENOUS 2.5mm"
    instances = _rows(store, Instance)
    positions = sorted(i.slice_position_mm for i in instances)
    assert positions == pytest.approx([100.0, 102.5, 105.0, 107.5])
    masks = _rows(store, Mask)
    assert sorted(m.format for m in masks) == ["rtstruct", "seg"]
    seg = next(m for m in masks if m.format == "seg")
    assert seg.segments["liver"]["label"] == 1 and seg.segments["spleen"]["label"] == 2
    for rel in [i.path for i in instances] + [m.path for m in masks]:
        assert rel.startswith("dicom/") and "Doe" not in rel and "img_" not in rel
        data = (settings.home / rel).read_bytes()
        assert data[:128] == b"\0" * 128
        assert not any(p in data for p in PHI), rel
    stored = dcmread(settings.home / instances[0].path)
    assert stored.PatientID == summary["patient"] and stored.PatientIdentityRemoved == "YES"


def test_reingest_from_a_zip_reports_already_stored(tmp_path, store, run):
    images = ct_series(SampleStudy(), 3)
    folder = write_folder(tmp_path / "src", images)
    first = run([folder])
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.writestr(f"nested/{f.name}", f.read_bytes())
    again = run([archive])
    assert (first.instances, again.instances, again.duplicates, again.series_ingested) == (
        3, 0, 3, 0)
    assert again.series[0]["already_stored"] is True
    with store.session() as s:
        assert s.scalar(select(func.count(Instance.id))) == 3


def test_a_bad_batch_goes_on_and_reports_each_refusal(tmp_path, run):
    study = SampleStudy()
    images = ct_series(study, 3)
    folder = write_folder(tmp_path / "src", images)
    (folder / "notes.txt").write_bytes(b"not dicom at all")
    (folder / "cut.dcm").write_bytes(encode(ct_series(study, 1)[0])[:300])
    (folder / "screen.dcm").write_bytes(encode(secondary_capture(study, None)))
    orphan = seg_for(ct_series(SampleStudy(patient_id="OTHER"), 2))
    (folder / "orphan_seg.dcm").write_bytes(encode(orphan))
    report = run([folder])
    assert report.instances == 3 and report.series_ingested == 1
    reasons = {r.file: r.reason for r in report.rejected}
    assert "not a DICOM file" in reasons["notes.txt"]
    assert "cut.dcm" in reasons
    assert "image series it refers to is not in this batch or the store" in reasons[
        "orphan_seg.dcm"]
    (q,) = report.quarantined
    assert q.file == "screen.dcm" and "Burned In Annotation (0028,0301)" in q.reason
    assert report.anything_stored


def test_an_incoherent_series_is_stored_invalid_with_its_reason(tmp_path, store, run):
    images = ct_series(SampleStudy(), 5)
    del images[2]  # a missing slice: a gap in the stack
    report = run([write_folder(tmp_path / "gap", images)])
    (summary,) = report.series
    assert summary["status"] == "invalid" and "missing slices" in summary["reason"]
    (series,) = _rows(store, Series)
    assert series.status == "invalid" and series.n_instances == 4


def test_the_missing_slice_arriving_later_completes_the_series(tmp_path, store, run):
    images = ct_series(SampleStudy(), 5)
    first = run([write_folder(tmp_path / "a", [*images[:2], *images[3:]])])
    assert first.series[0]["status"] == "invalid"
    later = run([write_folder(tmp_path / "b", images)])
    assert (later.instances, later.duplicates) == (1, 4)
    (series,) = _rows(store, Series)
    assert (series.status, series.n_instances, series.n_slices) == ("complete", 5, 5)


def test_longitudinal_studies_share_one_pseudonym_and_keep_intervals(tmp_path, store, run):
    s1 = SampleStudy(study_date="20190301")
    s2 = SampleStudy(study_date="20211130")
    report = run([write_folder(tmp_path / "one", ct_series(s1, 2)),
                  write_folder(tmp_path / "two", ct_series(s2, 2))])
    assert report.series_ingested == 2
    assert len(_rows(store, Patient)) == 1 and len(_rows(store, IdentityMap)) == 1
    dates = sorted(s.study_date for s in _rows(store, Study))
    assert (dates[1] - dates[0]).days == (dt.date(2021, 11, 30) - dt.date(2019, 3, 1)).days


def test_no_deidentify_stores_identifiers_as_received(tmp_path, settings, store, run):
    images = ct_series(SampleStudy(), 2)
    report = run([write_folder(tmp_path / "src", images)], deidentify=False)
    assert report.series[0]["series_uid"] == images[0].SeriesInstanceUID
    assert report.series[0]["patient"] == "MRN-0012345"
    stored = dcmread(settings.home / _rows(store, Instance)[0].path)
    assert stored.PatientName == "Doe^Jane^Q"
    assert stored.preamble == b"\0" * 128


def test_uploads_in_memory(store, settings, parser):
    images = ct_series(SampleStudy(), 2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, ds in enumerate(images):
            zf.writestr(f"s/{n}.dcm", encode(ds))
    seen: list[tuple[str, float | None]] = []
    report = ingest_uploads([("study.zip", buf.getvalue()), ("x.dcm", b"junk")], settings,
                            store, parser=parser, progress=lambda m, f: seen.append((m, f)))
    assert report.instances == 2
    assert seen[-1] == ("storing series 1 of 1", 1.0)
    assert [r.file for r in report.rejected] == ["x.dcm"]


@pytest.mark.parametrize("patient_id", ["", "  "], ids=["empty", "blank"])
def test_series_without_patient_id_is_rejected(tmp_path, run, patient_id):
    report = run([write_folder(tmp_path / "src", ct_series(SampleStudy(patient_id=patient_id),
                                                          2))])
    assert report.instances == 0 and len(report.rejected) == 2
    assert all("Patient ID (0010,0020) is missing or empty" in r.reason for r in report.rejected)
    assert not report.anything_stored


#: NIfTI (RAS) affine of ``ct_series``' grid: LPS origin (-20, -20, 100), 0.8 x 0.8 x 2.5 mm
SAMPLE_AFFINE = np.array([[-0.8, 0, 0, 20.0], [0, -0.8, 0, 20.0], [0, 0, 2.5, 100.0],
                          [0, 0, 0, 1]])


def _nifti(shape: tuple[int, int, int], descrip: bytes = b"Jane Doe liver",
           affine: np.ndarray = SAMPLE_AFFINE) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(np.ones(shape, dtype=np.uint8), affine)
    img.header["descrip"] = descrip
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"Jane Doe MRN-0012345"))
    return gzip.compress(img.to_bytes())


def test_nifti_mask_links_to_the_one_series_of_its_grid(tmp_path, settings, store, run):
    folder = write_folder(tmp_path / "src", ct_series(SampleStudy(), 3))
    (folder / "liver.nii.gz").write_bytes(_nifti((16, 16, 3)))
    report = run([folder])
    assert report.rejected == [] and report.masks == 1 and report.series[0]["masks"] == 1
    (mask,) = _rows(store, Mask)
    stored = gzip.decompress((settings.home / mask.path).read_bytes())
    assert b"Jane" not in stored and b"MRN" not in stored and mask.path.endswith(".nii.gz")
    assert mask.segments == {"liver": {"label": 1, "source_name": "liver"}}


def test_nifti_mask_without_a_matching_series_is_rejected_naming_both_grids(tmp_path, run):
    folder = write_folder(tmp_path / "src", ct_series(SampleStudy(), 3))
    (folder / "liver.nii.gz").write_bytes(_nifti((20, 20, 3)))
    report = run([folder])
    (rej,) = report.rejected
    assert rej.file == "liver.nii.gz" and "no image series of this batch has its grid" in rej.reason
    assert "20x20x3 voxels of 0.8x0.8x2.5 mm LPS" in rej.reason  # the mask's grid
    assert "16x16x3 voxels of 0.8x0.8x2.5 mm" in rej.reason  # the series' grid


def test_nifti_mask_over_two_series_of_the_same_grid_is_rejected(tmp_path, run):
    study = SampleStudy()
    folder = write_folder(tmp_path / "src", ct_series(study, 3) + ct_series(study, 3, seed=1))
    (folder / "liver.nii.gz").write_bytes(_nifti((16, 16, 3)))
    report = run([folder])
    assert report.series_ingested == 2 and report.masks == 0
    (rej,) = report.rejected
    assert rej.file == "liver.nii.gz"
    assert "2 image series of this batch cover the same field of view" in rej.reason


def test_mask_arriving_after_its_series_links_to_the_stored_series(tmp_path, store, run):
    images = ct_series(SampleStudy(), 3)
    run([write_folder(tmp_path / "img", images)])
    later = tmp_path / "seg"
    later.mkdir()
    (later / "seg.dcm").write_bytes(encode(seg_for(images)))
    report = run([later])
    assert report.masks == 1 and report.rejected == []
    assert len(_rows(store, Mask)) == 1


def test_a_source_that_does_not_exist_is_reported(run, tmp_path):
    report = run([tmp_path / "nowhere"])
    assert [r.reason for r in report.rejected] == ["no such file or folder"]
    assert not report.anything_stored


def test_report_keys_are_the_json_contract(tmp_path, run):
    report = run([write_folder(tmp_path / "src", ct_series(SampleStudy(), 2))]).as_dict()
    assert {"series_ingested", "instances", "duplicates", "rejected", "series", "quarantined",
            "conflicts", "incomplete"} <= set(report)
    assert {"series_uid", "patient", "study_date", "modality", "slices", "masks"} <= set(
        report["series"][0])


def test_stored_files_are_read_back_as_a_volume(tmp_path, settings, store, run):
    from analytics.ingest.reader import parse_trusted
    from analytics.ingest.series import build_volume

    images = ct_series(SampleStudy(), 3)
    run([write_folder(tmp_path / "src", images)])
    parsed = [parse_trusted(i.path, (settings.home / i.path).read_bytes())
              for i in _rows(store, Instance)]
    vol = build_volume(parsed)
    ordered = sorted(images, key=lambda d: float(d.ImagePositionPatient[2]))
    expected = np.stack([d.pixel_array for d in ordered]).astype(np.float32) - 1024
    assert vol.shape == (3, 16, 16)
    np.testing.assert_array_equal(vol.array, expected)
    assert vol.spacing_mm == pytest.approx((2.5, 0.8, 0.8))


def test_stored_paths_never_come_from_the_upload(tmp_path, store, run):
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "..%2f..%2fetc%2fpasswd.dcm").write_bytes(encode(ct_series(SampleStudy(), 1)[0]))
    run([folder])
    (inst,) = _rows(store, Instance)
    assert Path(inst.path).parts[0] == "dicom" and "passwd" not in inst.path


def test_synthetic_cohort_against_its_truth(synthetic_cohort, settings, store, parser):
    """Every CT series of the shared cohort is stored complete, with its SEG, under the
    pseudonym and shifted date the site key gives its patient."""
    truth = synthetic_cohort.truth()
    report = ingest_sources([str(synthetic_cohort.out_dir / "dicom")], settings, store,
                            parser=parser)
    assert report.rejected == [] and report.conflicts == [] and report.quarantined == []
    assert report.series_ingested == len(truth["series"]) == report.masks
    assert report.instances == sum(s["instances"] for s in truth["series"])
    secret = settings.site_secret()
    by_uid = {s["series_uid"]: s for s in report.series}
    for t in truth["series"]:
        got = by_uid[hmac_uid(secret, t["series_uid"])]
        shift = date_shift_days(secret, t["patient_id"])
        real = dt.date.fromisoformat(t["study_date"])
        assert got["patient"] == patient_pseudonym(secret, t["patient_id"])
        assert got["study_date"] == (real + dt.timedelta(days=shift)).isoformat()
        assert (got["slices"], got["masks"], got["status"]) == (t["shape"][0], 1, "complete")
    with store.session() as s:
        rows = {r.series_uid: r for r in s.execute(select(Series)).scalars()}
        segments = [m.segments for m in s.execute(select(Mask)).scalars()]
    for t in truth["series"]:
        row = rows[hmac_uid(secret, t["series_uid"])]
        z, y, x = t["spacing_mm"]
        assert row.spacing_mm == pytest.approx([x, y, z], abs=1e-4)
        assert row.contrast_phase == (t["contrast_phase"] or row.contrast_phase)
    assert all({"liver", "spleen"} <= set(seg) for seg in segments)
    assert len(_rows(store, Patient)) == len({t["patient_id"] for t in truth["series"]})
    # the de-identified SEG must still be a valid SEG: it loads back and its liver and
    # spleen volumes equal the generator's exact truth
    from analytics.ingest.loader import load_series

    for t in truth["series"]:
        vol, masks = load_series(store, settings, hmac_uid(secret, t["series_uid"]))
        assert not vol.meta.get("mask_errors"), vol.meta.get("mask_errors")
        assert masks is not None and not masks.automatic
        for organ in ("liver", "spleen"):
            got_ml = float(masks.masks[organ].sum()) * vol.voxel_volume_ml
            assert got_ml == pytest.approx(t[f"{organ}_volume_ml"], rel=1e-6), organ


def test_each_ingest_is_audited_once_without_identifiers(tmp_path, settings, store, parser):
    import json

    from analytics.audit import Actor, verify
    from analytics.store.schema import AuditRecord
    from analytics.usecases.context import Context
    from analytics.usecases.ingest import PathsRequest, ingest_paths

    ctx = Context(Actor("dr.rita", "clinician", "ingest"), store, settings)
    report = ingest_paths(ctx, PathsRequest(
        [str(write_folder(tmp_path / "src", ct_series(SampleStudy(), 2)))], parser=parser))
    records = _rows(store, AuditRecord)
    # one record, written by the use case before anything is stored; the stage writes none
    assert [(r.action, r.outcome, r.username) for r in records] == [
        ("ingest", "ok", "dr.rita")]
    assert report.instances == 2 and len(report.series) == 1
    assert records[0].detail["what"] == "path" and records[0].detail["deidentify"] is True
    text = json.dumps([r.detail for r in records]) + json.dumps([r.uids for r in records])
    assert not any(p.decode() in text for p in PHI)
    assert verify(store).ok


def test_the_ingest_stage_writes_no_audit_record(tmp_path, store, run):
    from analytics.store.schema import AuditRecord

    run([write_folder(tmp_path / "src", ct_series(SampleStudy(), 2))])
    assert _rows(store, AuditRecord) == []
