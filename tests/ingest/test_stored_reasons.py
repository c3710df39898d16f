"""Stored series reasons carry no names, paths or original UIDs (RELIABILITY.md item 32);
the uploader's own report may still name the file they sent."""

from __future__ import annotations

import copy

from pydicom.uid import generate_uid
from sqlalchemy import select

from analytics.ingest.pipeline import ingest_sources
from analytics.ingest.reader import parse_trusted
from analytics.ingest.series import check_series
from analytics.store import open_store, repo
from analytics.store.schema import Series
from tests.ingest.dicom_samples import Study, ct_series, encode

FOLDER = "DOE_JANE_MRN778899_CT_2020-01-15"
IDENTIFYING = ("DOE", "JANE", "MRN778899", "2020-01-15", ".dcm", "/", "slice002")


def _stored_reasons(store) -> list[str]:
    with store.session() as s:
        return list(s.execute(select(Series.status_reason)).scalars())


def test_a_geometry_failure_is_stored_by_position_not_by_the_uploaded_file_name(
        tmp_path, settings, parser):
    images = ct_series(Study(), 5)
    images[2].ImagePositionPatient = list(images[1].ImagePositionPatient)  # same position
    folder = tmp_path / FOLDER
    folder.mkdir()
    for k, ds in enumerate(images, 1):
        (folder / f"DOE_JANE_slice{k:03d}.dcm").write_bytes(encode(ds))
    originals = [str(ds.SOPInstanceUID) for ds in images]
    store = open_store(settings)
    report = ingest_sources([str(folder)], settings, store, parser=parser)

    (reason,) = _stored_reasons(store)
    assert reason.startswith("duplicate slice positions: slices 2 and 3 of 5 (in slice "
                             "order) both lie at 102.50 mm along the slice normal")
    for text in IDENTIFYING + tuple(originals):
        assert text not in reason
    # what the Patient page shows every role is the stored form
    (pseudonym,) = repo.list_patients(store, identified=False)["pseudonym"]
    shown = repo.series_for_patient(store, pseudonym)["status_reason"].tolist()
    assert shown == [reason]
    assert report.series[0]["reason"] == reason
    # the uploader's report of this upload still names the file they sent
    assert any("DOE_JANE_slice002.dcm" in n and "duplicate slice positions" in n
               for n in report.notes), report.notes
    store.dispose()


def test_a_sop_instance_uid_sent_twice_with_different_content_is_stored_without_the_uid(
        limits):
    images = ct_series(Study(), 3)
    twin = copy.deepcopy(images[1])
    twin.PixelData = bytes(len(twin.PixelData))
    twin.SeriesInstanceUID = images[0].SeriesInstanceUID
    parsed = [parse_trusted(f"{FOLDER}/DOE_JANE_slice{k:03d}.dcm", encode(ds), limits)
              for k, ds in enumerate([*images, twin], 1)]
    check = check_series(parsed, limits)
    assert not check.ok
    uid = str(images[1].SOPInstanceUID)
    assert uid in check.reason and "DOE_JANE_slice002.dcm" in check.reason
    assert check.stored_reason == ("one SOPInstanceUID appears twice with different content "
                                   "(instance number 2, instance number 2)")


def test_mixed_orientation_and_series_uids_are_stored_without_names_or_uids(limits):
    images = ct_series(Study(), 4)
    images[1].ImageOrientationPatient = ["0", "1", "0", "0", "0", "-1"]
    images[2].ImageOrientationPatient = ["0", "1", "0", "0", "0", "-1"]
    parsed = [parse_trusted(f"{FOLDER}/DOE_JANE_slice{k:03d}.dcm", encode(ds), limits)
              for k, ds in enumerate(images, 1)]
    check = check_series(parsed, limits)
    assert check.stored_reason.startswith("mixed orientation: instance number ")
    assert "DOE" not in check.stored_reason and "DOE" in check.reason

    other = ct_series(Study(), 2, series_uid=generate_uid())
    parsed = [parse_trusted(f"f{k}.dcm", encode(ds), limits)
              for k, ds in enumerate([*ct_series(Study(), 2), *other])]
    check = check_series(parsed, limits)
    assert check.stored_reason == "mixed SeriesInstanceUID (0020,000E): 2 different UIDs"
    assert str(other[0].SeriesInstanceUID) in check.reason
