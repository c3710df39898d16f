"""The de-identified copy made in the request that parses the header: each file to be
stored as it is crosses the pipe once and is read once, the copies are made on every worker
at once, and the stored bytes are the ones the separate de-identification request gives."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread

from analytics.config import load_settings
from analytics.errors import InvalidDicomError
from analytics.ingest import pipeline
from analytics.ingest.clean_copy import CleanCopy, CleanRequest
from analytics.ingest.deid import Deidentifier
from analytics.ingest.reader import ParsedInstance, zero_preamble
from analytics.ingest.sources import SourceItem
from analytics.store import open_store
from tests.ingest.conftest import item
from tests.ingest.deid_samples import SECRET, equivalence_files
from tests.ingest.dicom_samples import (
    Study,
    ct_series,
    encode,
    secondary_capture,
    seg_for,
    write_folder,
)

BIG = 1 << 30


def _parse(parser, files: list[tuple[str, bytes]], budget: int = BIG) -> dict[str, object]:
    got = parser.parse_many([item(n, d) for n, d in files], clean=CleanRequest(SECRET, budget))
    return {(r.name if isinstance(r, ParsedInstance) else r.file): r for r in got}


def test_the_copy_made_with_the_header_equals_the_separate_request_byte_for_byte(parser):
    d = Deidentifier(SECRET)
    files = equivalence_files()
    parsed = _parse(parser, files)
    made = 0
    for name, data in files:
        p = parsed[name]
        assert isinstance(p, ParsedInstance), name
        needs_id = not dcmread(io.BytesIO(data), stop_before_pixels=True).get("PatientID")
        if needs_id or p.kind not in ("image", "seg", "rtstruct"):
            assert p.clean is None, name  # identifiers are filled in first, in the series step
            continue
        expected, _, _ = d.deidentify_bytes(zero_preamble(data)[0], name=name)
        separate = parser.deidentify_read(zero_preamble(data)[0], name=name, secret=SECRET,
                                          deidentify=True)
        assert parser.cleaned(p) == separate, name
        assert p.clean.data == expected, name
        made += 1
    assert made >= 7  # three CT slices, the SEG, the RTSTRUCT and the pydicom images


def test_no_copy_is_made_of_a_quarantined_capture_or_past_the_budget(parser):
    study = Study()
    ct = encode(ct_series(study, 1)[0])
    capture = encode(secondary_capture(study, None))
    parsed = _parse(parser, [("ct.dcm", ct), ("capture.dcm", capture)])
    assert isinstance(parsed["ct.dcm"].clean, CleanCopy)
    assert parsed["capture.dcm"].info["quarantine"] and parsed["capture.dcm"].clean is None
    small = _parse(parser, [("a.dcm", ct), ("b.dcm", ct)], budget=len(ct) + 10)
    assert [small[n].clean is not None for n in ("a.dcm", "b.dcm")].count(True) == 1


def test_a_copy_that_failed_raises_when_used_as_the_separate_request_does(parser):
    p = ParsedInstance(name="x.dcm", data=b"", sop_class_uid=None, sop_instance_uid=None,
                       series_uid=None, study_uid=None, patient_id=None, modality=None,
                       kind="image", transfer_syntax_uid=None,
                       clean=CleanCopy(b"", None, failure={
                           "ok": False, "category": "malformed",
                           "reason": "malformed file: sequences nested too deeply"}))
    with pytest.raises(InvalidDicomError,
                       match=r"^x\.dcm: malformed file: sequences nested too deeply$"):
        parser.cleaned(p)


def _ingest_counting_reads(tmp_path: Path, folder: Path, parser, monkeypatch, budget: int
                           ) -> tuple[dict, dict[str, int], dict[str, bytes]]:
    reads: dict[str, int] = {}
    real_read = SourceItem.read

    def counted(self):
        reads[self.name] = reads.get(self.name, 0) + 1
        return real_read(self)

    home = tmp_path / f"home{budget}"
    settings = load_settings(home)
    settings.ensure_home()
    settings.secret_path.write_bytes(SECRET)
    store = open_store(settings)
    with monkeypatch.context() as m:
        m.setattr(SourceItem, "read", counted)
        m.setattr(pipeline, "CLEAN_AT_PARSE_BYTES", budget)
        try:
            report = pipeline.ingest_sources([str(folder)], settings, store, parser=parser)
        finally:
            store.dispose()
    stored = {p.relative_to(home).as_posix(): p.read_bytes()
              for p in (home / "dicom").rglob("*.dcm")}
    return report.as_dict(), reads, stored


def test_ingest_reads_a_stored_file_once_and_stores_the_same_bytes(tmp_path, parser,
                                                                    monkeypatch):
    images = ct_series(Study(), 6)
    folder = write_folder(tmp_path / "upload", images)
    (folder / "seg.dcm").write_bytes(encode(seg_for(images)))

    report, reads, stored = _ingest_counting_reads(tmp_path, folder, parser, monkeypatch, BIG)
    before, reads_before, stored_before = _ingest_counting_reads(tmp_path, folder, parser,
                                                                 monkeypatch, 0)
    assert (report["instances"], report["masks"], report["rejected"]) == (6, 1, [])
    assert report == before
    assert stored == stored_before and len(stored) == 7  # six slices and the SEG
    # without the copy every file is read twice; with it only the series' first image
    # (its header names the patient and study) and the SEG (its references) are
    assert sorted(reads_before.values()) == [2] * 7
    assert sorted(reads.values()) == [1] * 5 + [2] * 2
    assert reads["seg.dcm"] == 2


def test_a_worker_that_dies_making_the_copy_parses_the_file_again_without_it(limits,
                                                                             monkeypatch):
    from analytics.ingest.reader import SafeParser

    ct = encode(ct_series(Study(), 1)[0])
    killed = []
    real_dispatch = SafeParser._dispatch

    def dispatch_then_kill(self, slot, job, full):
        failed = real_dispatch(self, slot, job, full)
        if job.clean is not None and not killed:  # the worker dies on the combined request
            self._workers[slot].proc.kill()
            killed.append(job.item.name)
        return failed

    monkeypatch.setattr(SafeParser, "_dispatch", dispatch_then_kill)
    with SafeParser(limits, workers=1) as own:
        (got,) = own.parse_many([item("ct.dcm", ct)], clean=CleanRequest(SECRET, BIG))
        assert killed == ["ct.dcm"]
        assert isinstance(got, ParsedInstance) and got.clean is None  # parsed alone
        assert got.info["series_uid"] and got.pixel_problem is None
        data, _ = own.deidentify_read(got.data, name="ct.dcm", secret=SECRET, deidentify=True)
    assert data == Deidentifier(SECRET).deidentify_bytes(got.data, name="ct.dcm")[0]
