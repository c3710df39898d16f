"""Anonymised exports with empty identifiers: SOP UIDs from the file meta, derived Study and
Series UIDs, an assigned Patient ID; never two series merged, the same UIDs on re-ingest.

The main case is real: a Siemens JPEG 2000 CT series whose SOP Class/Instance UIDs, Study
and Series Instance UIDs, Patient ID and Series Number are empty in the data set.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pydicom
from pydicom.uid import CTImageStorage
from sqlalchemy import select

from analytics.ingest.deid import patient_pseudonym
from analytics.ingest.loader import load_series
from analytics.ingest.pipeline import ingest_sources, ingest_uploads
from analytics.store import open_store
from analytics.store.schema import Instance, Patient, Series, Study
from tests.ingest.conftest import ct_series, hu_phantom, to_bytes
from tests.realdata import CT_DICOM, ct_dicom_files


def _real_uploads(prefix: str = "") -> list[tuple[str, bytes]]:
    return [(prefix + p.name, p.read_bytes()) for p in ct_dicom_files()]


def test_a_real_export_without_patient_id_is_refused_by_name_saying_how_to_file_it(
        settings, store, parser):
    report = ingest_sources([CT_DICOM], settings, store, parser=parser)
    assert report.series_ingested == 0 and report.instances == 0
    assert len(report.rejected) == 20
    for r in report.rejected:
        assert r.file.startswith("CT.1.3.12.2.1107.5.1.4.60064")
        assert "Patient ID (0010,0020) is missing or empty" in r.reason and "--patient" in r.reason
    with store.session() as s:
        assert s.execute(select(Series)).first() is None


def test_a_real_export_with_empty_uids_is_stored_as_one_series_flagged_identifiers_derived(
        settings, store, parser):
    report = ingest_sources([CT_DICOM], settings, store, parser=parser,
                            assign_patient="BASEL-0001")
    assert report.rejected == [] and report.series_ingested == 1 and report.instances == 20
    (entry,) = report.series
    assert entry["status"] == "complete" and entry["slices"] == 20
    assert entry["identifiers_derived"] is True
    (warning,) = entry["warnings"]
    assert "Study Instance UID and Series Instance UID were empty" in warning
    assert "SOPClassUID (0008,0016) and SOPInstanceUID (0008,0018) taken from the file meta" \
        in warning
    assert "Patient ID was empty and was assigned at ingest" in warning
    assert entry["patient"] == patient_pseudonym(settings.site_secret(), "BASEL-0001")
    with store.session() as s:
        series = s.execute(select(Series)).scalar_one()
        assert series.geometry["identifiers"] == {
            "recovered_from_file_meta": ["SOPClassUID (0008,0016)", "SOPInstanceUID (0008,0018)"],
            "derived": ["Study Instance UID", "Series Instance UID"], "patient_assigned": True}
        study_uid = s.execute(select(Study.study_uid)).scalar_one()
        paths = s.execute(select(Instance.path, Instance.sop_class_uid)).all()
    assert len(paths) == 20 and {c for _p, c in paths} == {CTImageStorage}
    for rel, _c in paths:  # every stored file is whole: no empty Type 1 identifier
        ds = pydicom.dcmread(settings.home / rel, stop_before_pixels=True)
        assert ds.SOPClassUID == CTImageStorage and ds.SOPInstanceUID
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.SeriesInstanceUID == entry["series_uid"] and ds.StudyInstanceUID == study_uid
        assert ds.PatientID == entry["patient"]
    volume, masks = load_series(store, settings, entry["series_uid"])
    assert volume.shape == (20, 512, 512) and masks is None
    assert np.allclose(volume.spacing_mm, (2.0, 0.9765625, 0.9765625), atol=1e-3)


def test_re_ingesting_the_same_files_another_way_finds_the_same_uids(settings, store, parser):
    first = ingest_sources([CT_DICOM], settings, store, parser=parser, assign_patient="BASEL-1")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in _real_uploads("export/ct/"):
            zf.writestr(name, data)
    again = ingest_uploads([("export.zip", buf.getvalue())], settings, store, parser=parser,
                           assign_patient="BASEL-1")
    assert again.rejected == [] and again.instances == 0 and again.duplicates == 20
    assert [s["series_uid"] for s in again.series] == [first.series[0]["series_uid"]]
    assert again.series[0]["already_stored"] is True
    with store.session() as s:
        assert len(s.execute(select(Series.id)).all()) == 1


def test_derived_uids_depend_on_the_site_secret(settings, store, parser, tmp_path):
    from analytics.config import load_settings

    first = ingest_sources([CT_DICOM], settings, store, parser=parser, assign_patient="P1",
                           deidentify=False)
    other = load_settings(tmp_path / "other-site")
    other.ensure_home()
    other_store = open_store(other)
    try:
        second = ingest_sources([CT_DICOM], other, other_store, parser=parser,
                                assign_patient="P1", deidentify=False)
    finally:
        other_store.dispose()
    uid_a, uid_b = first.series[0]["series_uid"], second.series[0]["series_uid"]
    assert uid_a != uid_b and uid_a.startswith("2.25.") and len(uid_a) <= 64


def test_a_file_with_its_own_patient_id_keeps_it_when_one_is_assigned(settings, store,
                                                                        parser):
    hu = hu_phantom((3, 16, 16))
    files = [(f"s{i}.dcm", to_bytes(ds)) for i, ds in enumerate(ct_series(hu))]
    report = ingest_uploads(files, settings, store, parser=parser, assign_patient="OTHER")
    assert report.series_ingested == 1 and "warnings" not in report.series[0]
    with store.session() as s:
        (pseudonym,) = s.execute(select(Patient.pseudonym)).scalars().all()
    assert pseudonym == patient_pseudonym(settings.site_secret(), "PAT001")


def _emptied(datasets, **changes) -> list[pydicom.Dataset]:
    for ds in datasets:
        ds.StudyInstanceUID = ds.SeriesInstanceUID = ""
        for kw, value in changes.items():
            setattr(ds, kw, value)
    return datasets


def test_two_series_with_empty_uids_that_differ_in_series_time_are_never_merged(
        settings, store, parser):
    hu = hu_phantom((4, 16, 16))
    frame = pydicom.uid.generate_uid()
    a = _emptied(ct_series(hu, frame_uid=frame), SeriesTime="101500")
    b = _emptied(ct_series(hu, frame_uid=frame), SeriesTime="102000")
    files = [(f"a{i}.dcm", to_bytes(ds)) for i, ds in enumerate(a)]
    files += [(f"b{i}.dcm", to_bytes(ds)) for i, ds in enumerate(b)]
    report = ingest_uploads(files, settings, store, parser=parser)
    assert report.rejected == [] and report.series_ingested == 2
    assert sorted(s["slices"] for s in report.series) == [4, 4]
    assert all(s["status"] == "complete" for s in report.series)


def test_identical_series_in_two_folders_of_one_batch_stay_two_series(settings, store, parser):
    hu = hu_phantom((3, 16, 16))
    frame = pydicom.uid.generate_uid()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for folder in ("first", "second"):
            for i, ds in enumerate(_emptied(ct_series(hu, frame_uid=frame))):
                zf.writestr(f"{folder}/{i}.dcm", to_bytes(ds))
    report = ingest_uploads([("two.zip", buf.getvalue())], settings, store, parser=parser)
    assert report.rejected == [] and report.series_ingested == 2
    assert len({s["series_uid"] for s in report.series}) == 2


def test_only_sop_uids_from_the_file_meta_are_recovered_and_reported(settings, store, parser):
    hu = hu_phantom((3, 16, 16))
    datasets = ct_series(hu)
    metas = [ds.file_meta.MediaStorageSOPInstanceUID for ds in datasets]
    for ds in datasets:
        ds.SOPInstanceUID = ""
    files = [(f"s{i}.dcm", to_bytes(ds)) for i, ds in enumerate(datasets)]
    report = ingest_uploads(files, settings, store, parser=parser, deidentify=False)
    (entry,) = report.series
    assert entry["series_uid"] == datasets[0].SeriesInstanceUID
    assert entry.get("identifiers_derived") is False
    assert entry["warnings"] == [
        "SOPInstanceUID (0008,0018) taken from the file meta (empty in the data set)"]
    with store.session() as s:
        stored = set(s.execute(select(Instance.sop_instance_uid)).scalars())
    assert stored == set(metas)


def test_an_empty_sop_instance_uid_with_none_in_the_file_meta_is_refused(settings, store,
                                                                          parser):
    (ds,) = ct_series(hu_phantom((1, 16, 16)))
    ds.SOPInstanceUID = ""
    ds.file_meta.MediaStorageSOPInstanceUID = ""
    ds.preamble = bytes(128)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)  # pydicom refuses to write it otherwise
    report = ingest_uploads([("lost.dcm", buf.getvalue())], settings, store, parser=parser)
    (r,) = report.rejected
    assert r.file == "lost.dcm"
    assert "missing required attribute SOPInstanceUID (0008,0018)" in r.reason


def test_the_command_files_the_real_export_under_the_named_patient(home, tmp_path):
    out = subprocess.run([sys.executable, "-m", "analytics", "--home", str(home), "ingest",
                          str(CT_DICOM), "--patient", "BASEL-0001", "--json"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["series_ingested"] == 1 and payload["rejected"] == []
    assert payload["series"][0]["identifiers_derived"] is True
    refused = subprocess.run([sys.executable, "-m", "analytics", "--home",
                              str(tmp_path / "other"), "ingest", str(CT_DICOM)],
                             capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode == 2
    assert "Patient ID (0010,0020) is missing or empty" in refused.stderr
