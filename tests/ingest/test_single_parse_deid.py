"""De-identification parses each file once: the parse worker de-identifies the dataset it
parsed and reports what ingest files the copy by, so the parent parses neither the file's
header (the worker judged its quarantine) nor the clean copy. The stored files must be
the ones the previous path stored: tag by tag, pixel data identical."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

from pydicom import Dataset, dcmread
from sqlalchemy import select

from analytics.config import load_settings
from analytics.ingest import pipeline, prepare
from analytics.ingest.deid import Deidentifier, quarantine_reason
from analytics.ingest.header import parse_dicom
from analytics.ingest.pipeline import ingest_sources
from analytics.ingest.reader import ParsedInstance, parse_trusted, zero_preamble
from analytics.ingest.repair import Repair, apply_repair
from analytics.store import open_store
from analytics.store.schema import Instance, Mask, Series
from analytics.store.schema import Study as StudyRow
from tests.ingest.deid_samples import SECRET, equivalence_files
from tests.ingest.dicom_samples import (
    Study,
    ct_series,
    encode,
    rtstruct_for,
    secondary_capture,
    seg_for,
    write_folder,
)


def _same_tags(a: Dataset, b: Dataset, where: str) -> int:
    """Assert ``a`` and ``b`` hold the same elements (tag, VR, value), nested sequences
    included; return how many were compared."""
    assert list(a.keys()) == list(b.keys()), where
    n = 0
    for ea in a:
        tag = ea.tag
        eb = b[tag]
        assert ea.VR == eb.VR, f"{where} {tag}"
        if ea.VR == "SQ":
            assert len(ea.value) == len(eb.value), f"{where} {tag}"
            for k, (ia, ib) in enumerate(zip(ea.value, eb.value, strict=True)):
                n += _same_tags(ia, ib, f"{where} {tag}[{k}]")
        else:
            assert ea.value == eb.value, f"{where} {tag}"
        n += 1
    return n


def _old_stored_bytes(p: ParsedInstance, d: Deidentifier, deid: bool, parser):
    """The previous path: the worker returns bytes only; this process parses the copy."""
    blank = p.kind == "ultrasound"
    if not deid and not blank:
        return p.data, prepare.CleanHeader(p.data, parser.limits, _dataset=p.header)
    data = parser.deidentify(p.data, name=p.name, secret=d.secret, deidentify=deid,
                             blank_regions=blank)
    return data, prepare.CleanHeader(data, parser.limits,
                                     _dataset=parse_dicom(data, parser.limits).dataset)


def test_the_worker_copy_equals_the_previous_stored_file_tag_by_tag_with_its_pixels(parser):
    d = Deidentifier(SECRET)
    compared = elements = 0
    for name, data in equivalence_files():
        data, _ = zero_preamble(data)
        repair = None if dcmread(io.BytesIO(data), stop_before_pixels=True).get(
            "PatientID") else {"PatientID": "ASSIGNED"}
        before = (apply_repair(data, Repair(values=repair), parser.limits)
                  if repair is not None else data)
        expected, _, _ = d.deidentify_bytes(before, name=name)  # the previous stored file
        got, facts = parser.deidentify_read(data, name=name, secret=SECRET, deidentify=True,
                                            repair=repair)
        assert got == expected, name
        old, new = dcmread(io.BytesIO(expected)), dcmread(io.BytesIO(got))
        elements += _same_tags(old.file_meta, new.file_meta, name)
        elements += _same_tags(old, new, name)
        if "PixelData" in old:
            assert new.PixelData == old.PixelData and len(new.PixelData) > 0, name
        # what the parent files the copy by is what parsing the copy gives
        header = parse_dicom(expected, parser.limits).dataset
        assert facts == {
            "sop_instance_uid": str(header.SOPInstanceUID),
            "study_description": (str(header.StudyDescription)
                                  if header.get("StudyDescription") else None),
            "series_description": (str(header.SeriesDescription)
                                   if header.get("SeriesDescription") else None)}, name
        assert facts["sop_instance_uid"].startswith("2.25."), name
        compared += 1
    assert compared == 13 and elements > 13 * 20


def test_a_worker_that_only_repairs_or_has_nothing_to_do_reports_no_clean_values(parser):
    name, data = equivalence_files()[0]
    assert parser.deidentify_read(data, name=name, secret=b"", deidentify=False) == (data,
                                                                                    None)
    repaired, facts = parser.deidentify_read(data, name=name, secret=b"", deidentify=False,
                                             repair={"PatientID": "ASSIGNED"})
    assert facts is None
    assert dcmread(io.BytesIO(repaired)).PatientID == "ASSIGNED"


def test_the_parse_worker_judges_quarantine_from_its_own_parse(parse_bytes):
    images = ct_series(Study(), 1)
    capture = secondary_capture(Study(), None)
    for ds, expected in ((images[0], None), (capture, quarantine_reason(capture))):
        parsed = parse_bytes(encode(ds))
        assert isinstance(parsed, ParsedInstance)
        assert parsed.info["quarantine"] == expected
        assert parsed._header is None  # the parent did not parse the header for it
    assert "without Burned In Annotation" in quarantine_reason(capture)


def _ingest(home: Path, folder: Path, parser, secret: bytes):
    settings = load_settings(home)
    settings.ensure_home()
    settings.secret_path.write_bytes(secret)
    store = open_store(settings)
    try:
        report = ingest_sources([str(folder)], settings, store, parser=parser)
        with store.session() as s:
            series = [(r.series_uid, r.description, r.status)
                      for r in s.execute(select(Series)).scalars()]
            studies = [(r.study_uid, r.description, r.study_date)
                       for r in s.execute(select(StudyRow)).scalars()]
            instances = sorted((r.sop_instance_uid, r.path)
                               for r in s.execute(select(Instance)).scalars())
            masks = sorted((r.sop_instance_uid, r.path, str(r.segments))
                           for r in s.execute(select(Mask)).scalars())
    finally:
        store.dispose()
    return report.as_dict(), series, studies, instances, masks


def test_ingest_stores_the_same_files_as_the_path_that_parsed_each_file_again(
        tmp_path, parser, monkeypatch):
    study = Study()
    images = ct_series(study, 5)
    folder = write_folder(tmp_path / "upload", images)
    (folder / "seg.dcm").write_bytes(encode(seg_for(images)))
    (folder / "rt.dcm").write_bytes(encode(rtstruct_for(images)))
    (folder / "capture.dcm").write_bytes(encode(secondary_capture(study, None)))
    secret = b"s" * 32

    new = _ingest(tmp_path / "new", folder, parser, secret)
    with monkeypatch.context() as m:  # the previous path: parent-side parses
        m.setattr(pipeline, "CLEAN_AT_PARSE_BYTES", 0)  # files read again, cleaned alone
        m.setattr(prepare, "stored_bytes", _old_stored_bytes)
        m.setattr("analytics.ingest.link_masks.stored_bytes", _old_stored_bytes)
        m.setattr(prepare, "_quarantine", lambda p: quarantine_reason(p.header))
        old = _ingest(tmp_path / "old", folder, parser, secret)

    assert new == old
    report, series, studies, instances, masks = new
    assert (report["instances"], report["masks"], len(report["quarantined"])) == (5, 2, 1)
    assert series[0][1:] == ("CT ABDOMEN PORTAL VENOUS 2.5mm", "complete")
    assert len(studies) == 1 and studies[0][0].startswith("2.25.")
    files = [rel for _, rel in instances] + [rel for _, rel, _ in masks]
    assert len(files) == 7
    for rel in files:
        a, b = (tmp_path / side / rel for side in ("new", "old"))
        assert a.read_bytes() == b.read_bytes(), rel
        old_ds, new_ds = dcmread(b), dcmread(a)
        _same_tags(old_ds, new_ds, rel)
        if "PixelData" in old_ds:
            assert new_ds.PixelData == old_ds.PixelData
    shutil.rmtree(tmp_path / "old")


def test_a_parsed_instance_without_the_judgement_is_judged_from_its_header():
    capture = secondary_capture(Study(), None)
    trusted = parse_trusted("capture.dcm", encode(capture))
    assert trusted.info["quarantine"] == quarantine_reason(capture)  # same as the worker's
    parsed = dataclasses.replace(trusted, info={k: v for k, v in trusted.info.items()
                                                if k != "quarantine"})
    assert prepare._quarantine(parsed) == quarantine_reason(capture)
    assert prepare._quarantine(parsed).startswith("screen save without Burned In Annotation")
