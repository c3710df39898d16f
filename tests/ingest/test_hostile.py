"""Hostile and broken files: each gets its own specific error line, and the batch goes on."""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from analytics.config import MiB
from analytics.ingest.findings import LIMIT, MALFORMED, NOT_DICOM, UNSUPPORTED, Rejection
from analytics.ingest.reader import ParsedInstance, SafeParser
from tests.ingest.conftest import ct_series, ct_slice, hu_phantom, item, to_bytes


@pytest.fixture(scope="module")
def good() -> bytes:
    return to_bytes(ct_series(hu_phantom((1, 32, 32)))[0])


def _meta_only(ts: str = "1.2.840.10008.1.2.1") -> bytes:
    """Preamble, DICM and a minimal explicit-VR-LE file meta for ``ts``."""
    def el(tag_lo: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\0"
        if vr in (b"OB",):
            return struct.pack("<HH2sHI", 2, tag_lo, vr, 0, len(value)) + value
        return struct.pack("<HH2sH", 2, tag_lo, vr, len(value)) + value

    body = (el(0x0001, b"OB", b"\0\1") + el(0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.2")
            + el(0x0003, b"UI", b"1.2.3.4") + el(0x0010, b"UI", ts.encode()))
    group_len = struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(body))
    return b"\0" * 128 + b"DICM" + group_len + body


def _explicit(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("notes.txt", b"hello, this is text and not an image\n" * 10,
     r"^not a DICOM file \(no 'DICM' prefix at byte 128\)$"),
    ("tiny.dcm", b"DICM", r"^not a DICOM file"),
    ("empty.dcm", b"", r"^not a DICOM file"),
    ("doc.dcm", b"%PDF-1.4\n" + b"x" * 300, r"looks like a PDF document"),
    ("nested.dcm", b"PK\x03\x04" + b"\0" * 300, r"looks like a zip archive"),
])
def test_non_dicom_files(parse_bytes, name, data, expected):
    rej = parse_bytes(data, name)
    assert isinstance(rej, Rejection) and rej.category == NOT_DICOM
    assert rej.file == name
    assert re.search(expected, rej.reason), rej.reason


def _deflate_bomb(size: int) -> bytes:
    """A deflated-transfer-syntax file whose dataset is one OB element of ``size`` zeros.

    After a full flush the compressor's state is reset, so every 1 MiB block of zeros
    compresses to the same bytes: the stream is built by repetition in milliseconds.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = comp.compress(_explicit(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0")
                         + struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, size))
    head += comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(b"\0" * MiB) + comp.flush(zlib.Z_FULL_FLUSH)
    return (_meta_only(DeflatedExplicitVRLittleEndian) + head + block * (size // MiB)
            + comp.flush())


def test_deflate_bomb_is_bounded(parse_bytes, limits):
    # 400 MiB of zeros inside one OB element: the file is a few hundred KiB.
    data = _deflate_bomb(400 * MiB)
    assert len(data) < 1 * MiB
    rej = parse_bytes(data, "bomb.dcm")
    assert isinstance(rej, Rejection) and rej.category == LIMIT
    assert rej.reason.startswith(f"deflated dataset inflates to more than "
                                 f"{limits.max_inflated_bytes} bytes (max_inflated_bytes)")


def test_deflate_bomb_past_the_inflate_cap_is_stopped_by_the_memory_limit(limits):
    # With no inflate cap, the worker's RLIMIT_AS stops it: "malformed", not an OOM.
    # The worker needs ~150 MiB of address space for Python, numpy and pydicom.
    loose = replace(limits, max_inflated_bytes=4096 * MiB, parse_memory_bytes=320 * MiB)
    data = _deflate_bomb(400 * MiB)
    with SafeParser(loose) as p:
        rej = p.parse(item("mem.dcm", data))
        assert isinstance(rej, Rejection) and rej.category == MALFORMED
        assert rej.reason == "malformed file: parsing it needs more memory than the parse limit"
        ok = p.parse(item("after.dcm", to_bytes(ct_series(hu_phantom((1, 8, 8)))[0])))
        assert isinstance(ok, ParsedInstance)


def test_huge_declared_length_is_malformed_not_oom(parse_bytes):
    data = _meta_only() + _explicit(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0") \
        + struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 0x7FFFFFF0) + b"\0" * 64
    assert len(data) < 600
    rej = parse_bytes(data, "huge.dcm")
    assert rej.category == MALFORMED
    assert rej.reason == ("malformed file: element private or unknown element (0009,1010) "
                          "declares 2147483632 bytes but only 64 remain in the file")


def _nested(depth: int, defined: bool) -> bytes:
    inner = b""
    for _ in range(depth):
        if defined:
            it = struct.pack("<HHI", 0xFFFE, 0xE000, len(inner)) + inner
            inner = struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, len(it)) + it
        else:
            it = (struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
                  + struct.pack("<HHI", 0xFFFE, 0xE00D, 0))
            inner = (struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF) + it
                     + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    return inner


@pytest.mark.parametrize(("defined", "expected"), [
    (False, "malformed file: sequences nested too deeply"),
    (True, "malformed file: sequences nested deeper than 32 levels"),
], ids=["undefined-length", "defined-length"])
def test_deeply_nested_sequences_are_malformed(parse_bytes, defined, expected):
    data = _meta_only() + _nested(300, defined)
    rej = parse_bytes(data, "deep.dcm")
    assert rej.category == MALFORMED and rej.reason == expected


def test_truncated_pixel_data_makes_the_instance_invalid(parse_bytes, good):
    cut = good[:-100]
    inst = parse_bytes(cut, "cut.dcm")
    assert isinstance(inst, ParsedInstance)
    assert inst.pixel_problem == "truncated pixel data: the file ends after 1948 of 2048 pixel bytes"


def test_pixel_element_declaring_less_than_the_image_needs(parse_bytes):
    ds = ct_series(hu_phantom((1, 32, 32)))[0]
    ds.PixelData = ds.PixelData[:1000]
    inst = parse_bytes(to_bytes(ds), "short.dcm")
    assert inst.pixel_problem == ("truncated pixel data: PixelData (7FE0,0010) declares 1000 "
                                  "bytes, expected 2048 (Rows x Columns x Frames x BitsAllocated)")


@pytest.mark.parametrize("keyword", ["Rows", "BitsAllocated", "ImagePositionPatient",
                                     "ImageOrientationPatient", "PixelSpacing"])
def test_missing_required_attribute_names_the_tag(parse_bytes, keyword):
    from pydicom.datadict import tag_for_keyword

    ds = ct_series(hu_phantom((1, 8, 8)))[0]
    ds["PixelData"].VR = "OW"  # explicit, so the file can be written without BitsAllocated
    delattr(ds, keyword)
    rej = parse_bytes(to_bytes(ds), "m.dcm")
    tag = tag_for_keyword(keyword)
    assert rej.category == "missing_attribute"
    assert rej.reason == (f"missing required attribute {keyword} "
                          f"({tag >> 16:04X},{tag & 0xFFFF:04X})")


@pytest.mark.parametrize("keyword", ["SeriesInstanceUID", "StudyInstanceUID"])
def test_an_image_without_its_study_or_series_uid_is_parsed_for_grouping(parse_bytes, keyword):
    ds = ct_series(hu_phantom((1, 8, 8)))[0]
    delattr(ds, keyword)
    inst = parse_bytes(to_bytes(ds), "m.dcm")
    assert getattr(inst, {"SeriesInstanceUID": "series_uid",
                          "StudyInstanceUID": "study_uid"}[keyword]) is None
    assert inst.info["series_hints"]["FrameOfReferenceUID"] == ds.FrameOfReferenceUID


def test_a_sop_instance_uid_missing_from_the_data_set_is_taken_from_the_file_meta(parse_bytes):
    ds = ct_series(hu_phantom((1, 8, 8)))[0]
    delattr(ds, "SOPInstanceUID")
    inst = parse_bytes(to_bytes(ds), "m.dcm")
    assert inst.sop_instance_uid == ds.file_meta.MediaStorageSOPInstanceUID
    assert inst.info["recovered"] == ["SOPInstanceUID"]


def test_unsupported_sop_class(parse_bytes):
    ds = ct_series(hu_phantom((1, 8, 8)))[0]
    # ultrasound is accepted since issue 19 (tests/ingest/test_ultrasound.py): RT Dose is not
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    rej = parse_bytes(to_bytes(ds), "dose.dcm")
    assert rej.category == UNSUPPORTED
    assert rej.reason.startswith("unsupported SOP class: RT Dose Storage "
                                 "(1.2.840.10008.5.1.4.1.1.481.2)")
    assert "ultrasound" in rej.reason  # the message lists what is accepted


@pytest.mark.parametrize(("magic", "label"), [(b"MZ\x90\x00", "PE"), (b"\x7fELF\x02\x01", "ELF")])
def test_executable_preamble_is_zeroed_and_noted(parse_bytes, good, magic, label):
    poly = magic + b"\xAA" * (128 - len(magic)) + good[128:]
    inst = parse_bytes(poly, "poly.dcm")
    assert isinstance(inst, ParsedInstance)
    assert inst.data[:128] == b"\0" * 128 and inst.data[128:] == good[128:]
    assert inst.notes == [f"preamble zeroed ({label} header: CVE-2019-11687 polyglot)"]
    import hashlib

    assert inst.sha256 == hashlib.sha256(inst.data).hexdigest()


def test_pixel_budget_is_checked_before_decoding(parse_bytes, limits):
    ds = ct_slice(np.zeros((8, 8), np.int16), (0, 0, 0))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4096, 4096, 100
    rej = parse_bytes(to_bytes(ds), "budget.dcm")
    assert rej.category == LIMIT
    assert rej.reason == (f"pixel data would decode to {4096 * 4096 * 100 * 2} bytes (Rows x "
                          f"Columns x Frames x bytes), over the budget of "
                          f"{limits.max_pixel_bytes} (max_pixel_bytes)")


def _encapsulated(ts: str) -> bytes:
    from pydicom.encaps import encapsulate

    ds = ct_slice(np.zeros((8, 8), np.int16), (0, 0, 0), ts=ts)
    ds.PixelData = encapsulate([b"\0" * 64])
    return to_bytes(ds)


def test_compression_without_a_decoder(parse_bytes):
    rej = parse_bytes(_encapsulated("1.2.840.10008.1.2.4.100"), "mpeg.dcm")
    assert rej.category == UNSUPPORTED
    assert rej.reason == ("unsupported compression: MPEG2 Main Profile / Main Level "
                          "(1.2.840.10008.1.2.4.100)")


def test_unknown_transfer_syntax(parse_bytes):
    data = _meta_only("1.2.3.4.5.6")
    rej = parse_bytes(data, "private.dcm")
    assert rej.category == UNSUPPORTED
    assert rej.reason == "unsupported transfer syntax 1.2.3.4.5.6 (1.2.3.4.5.6)"


def test_a_dead_worker_is_replaced_and_the_batch_goes_on(limits, good):
    import os
    import signal

    with SafeParser(limits) as p:
        os.kill(p._workers[0].proc.pid, signal.SIGKILL)
        p._workers[0].proc.wait()
        results = list(p.parse_many([item("a.dcm", good), item("b.dcm", good)]))
        alone = p.parse(item("c.dcm", good))  # a request of its own names its file
        os.kill(p._workers[0].proc.pid, signal.SIGKILL)
        p._workers[0].proc.wait()
        dead = p.parse(item("d.dcm", good))
    # the two headers went in one request: when it failed, each went again alone
    assert sorted(r.name for r in results if isinstance(r, ParsedInstance)) == ["a.dcm", "b.dcm"]
    assert isinstance(alone, ParsedInstance)
    assert isinstance(dead, Rejection) and dead.file == "d.dcm"
    assert dead.reason.startswith("malformed file: the parser process died")


def test_a_slow_parse_times_out_and_the_pool_recovers(limits, good):
    with SafeParser(replace(limits, parse_timeout_s=1e-6)) as p:
        rej = p.parse(item("slow.dcm", good))
        assert rej.category == "timed_out"
        assert rej.reason == "timed out: parsing took longer than 1e-06 s (parse_timeout_s)"
        p.limits = limits
        assert isinstance(p.parse(item("next.dcm", good)), ParsedInstance)


def test_rejected_files_do_not_stop_a_batch(parser, good):
    batch = [item("a.txt", b"text"), item("b.dcm", good), item("c.dcm", _meta_only() +
                                                               _nested(300, False))]
    results = list(parser.parse_many(batch))
    assert sorted(type(r).__name__ for r in results) == ["ParsedInstance", "Rejection",
                                                         "Rejection"]
    assert io.BytesIO(good).getvalue() == good


# ------------------------------------------ through the real ingest: de-identification by tag
UN_FILE = Path(__file__).resolve().parents[1] / "data" / "pydicom-data" / "explicit_VR-UN.dcm"
HOSTILE_NAME = "HARRIET HOSTILE MRN 12345"


def _stored_files(settings) -> list[bytes]:
    return [p.read_bytes() for p in sorted((settings.home / "dicom").rglob("*.dcm"))]


def _un_series(folder: Path, z_positions: tuple[str, ...]) -> Path:
    """Slices of the real UN file at other positions, edited in place (same lengths), so
    every standard attribute stays encoded as UN."""
    data = UN_FILE.read_bytes()
    sop = b"1.2.826.0.1.3680043.2.1125.1.8828356712501776637392831168989589"
    assert data.count(sop) == 2 and data.count(b"0\\0\\-121") == 1 and data.count(b"122 ") == 1
    folder.mkdir(parents=True)
    for k, z in enumerate(z_positions):
        assert len(z) == 4
        one = (data.replace(sop, sop[:-1] + str(k).encode())
               .replace(b"0\\0\\-121", b"0\\0\\" + z.encode())
               .replace(b"122 ", f"{122 + k:<4d}".encode()))
        (folder / f"slice{k}.dcm").write_bytes(one)
    return folder


def test_a_series_sent_with_standard_tags_as_un_is_stored_with_its_geometry_and_scored(
        tmp_path, settings, store, parser):
    from pydicom import dcmread

    from analytics.ingest.pipeline import ingest_sources
    from analytics.ingest.reader import parse_trusted
    from analytics.ingest.series import build_volume

    folder = _un_series(tmp_path / "un", ("-121", "-123", "-125"))
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    assert report.rejected == [] and report.series_ingested == 1 and report.instances == 3
    assert report.series[0]["status"] == "complete"
    stored = _stored_files(settings)
    assert len(stored) == 3
    for data in stored:
        ds = dcmread(io.BytesIO(data))
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, -1, 0]
        assert [float(v) for v in ds.PixelSpacing] == [0.859375, 0.859375]
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)
        assert ds.ImagePositionPatient[:2] == [0, 0]
        assert ds.get_item("ImagePositionPatient").VR == "DS"  # stored under its tag's VR
        assert b"PANCREAS_0001" not in data and b"NIH" not in data
    assert sorted(float(dcmread(io.BytesIO(d)).ImagePositionPatient[2]) for d in stored) == [
        -125.0, -123.0, -121.0]
    parsed = [parse_trusted(f"s{k}.dcm", d, settings.limits) for k, d in enumerate(stored)]
    vol = build_volume(parsed, settings.limits, decoder=parser)
    assert vol.shape == (3, 512, 512)
    assert vol.spacing_mm == pytest.approx((2.0, 0.859375, 0.859375))
    for k in range(3):  # GDCM's values for this image; slope 1, intercept 0
        assert vol.array[k, 142, 260:270].tolist() == [21, 287, 797, 863, 813, 428, 55, -7,
                                                        37, -22]


def test_an_unknown_public_tag_is_removed_and_the_batch_goes_on(tmp_path, home, capsys):
    import json

    from pydicom import dcmread

    from analytics.cli import main
    from analytics.config import load_settings
    from tests.ingest.dicom_samples import Study, ct_series, write_folder

    images = ct_series(Study(), 3)
    images[1].add_new(0x00089999, "LO", "UNKNOWN PUBLIC TEXT")
    images[1].AnatomicRegionSequence[0].add_new(0x00089999, "LO", "UNKNOWN NESTED TEXT")
    folder = write_folder(tmp_path / "src", images)
    write_folder(folder / "other", ct_series(Study(patient_id="MRN-OTHER"), 2))
    code = main(["--home", str(home), "ingest", str(folder), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["rejected"] == [] and report["series_ingested"] == 2
    assert report["instances"] == 5
    stored = _stored_files(load_settings(str(home)))
    assert len(stored) == 5
    for data in stored:
        ds = dcmread(io.BytesIO(data))
        assert 0x00089999 not in ds and 0x00089999 not in ds.AnatomicRegionSequence[0]
        assert b"UNKNOWN" not in data


def test_a_name_sent_under_a_wrong_vr_is_nowhere_in_the_stored_files(tmp_path, settings, store,
                                                                      parser):
    from pydicom.dataelem import DataElement

    from analytics.ingest.pipeline import ingest_sources
    from tests.ingest.dicom_samples import Study, ct_series, write_folder

    def sent_as(ds, tag: int, vr: str) -> None:
        elem = DataElement(tag, "OB", HOSTILE_NAME.encode() + b" ")
        elem.VR = vr  # after construction: pydicom would correct a UN on a known tag
        if vr != "UN":
            elem.value = HOSTILE_NAME
        ds[tag] = elem

    images = ct_series(Study(), 3)
    sent_as(images[0], 0x00100010, "CS")  # Patient's Name
    sent_as(images[0], 0x00142006, "UT")  # Evaluator Name, a PN not in the table
    sent_as(images[1], 0x00101001, "UN")  # Other Patient Names
    sent_as(images[1], 0x00081050, "LO")  # Performing Physician's Name
    sent_as(images[2].AnatomicRegionSequence[0], 0x00142006, "CS")
    sent_as(images[2].ReferencedImageSequence[0], 0x00104000, "UN")  # Patient Comments (LT)
    sent_as(images[2], 0x00180015, "LO")  # Body Part Examined, a kept CS
    folder = write_folder(tmp_path / "src", images)
    assert all(HOSTILE_NAME.encode() in p.read_bytes() for p in folder.glob("*.dcm"))
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    assert report.rejected == [] and report.instances == 3
    assert report.series[0]["status"] == "complete"
    stored = _stored_files(settings)
    assert len(stored) == 3
    assert [k for k, d in enumerate(stored) if b"HARRIET" in d or b"12345" in d] == []


def test_deep_nesting_after_the_pixel_data_rejects_the_file_and_the_batch_goes_on(
        tmp_path, settings, store, parser):
    from analytics.ingest.pipeline import ingest_sources
    from tests.ingest.dicom_samples import Study, ct_series, encode, write_folder

    folder = write_folder(tmp_path / "src", ct_series(Study(), 2))
    tail = _nested(300, False).replace(b"\x08\x00\x15\x11SQ", b"\xfa\xff\xfa\xffSQ", 1)
    hostile = ct_series(Study(patient_id="MRN-HOSTILE"), 1)[0]
    (folder / "deep.dcm").write_bytes(encode(hostile) + tail)
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    assert [(r.file, r.reason) for r in report.rejected] == [
        ("deep.dcm", "cannot de-identify: deep.dcm: malformed file: sequences nested too "
                     "deeply")]
    assert report.series_ingested == 1 and report.instances == 2


def test_a_series_with_an_instance_refused_at_de_identification_is_not_stored_complete(
        tmp_path, settings, store, parser):
    from analytics.ingest.pipeline import ingest_sources
    from tests.ingest.dicom_samples import Study, ct_series, encode, write_folder

    images = ct_series(Study(), 3)
    folder = write_folder(tmp_path / "src", images)
    tail = _nested(300, False).replace(b"\x08\x00\x15\x11SQ", b"\xfa\xff\xfa\xffSQ", 1)
    (folder / "img_001.dcm").write_bytes(encode(images[1]) + tail)
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    assert [r.file for r in report.rejected] == ["img_001.dcm"]
    assert report.instances == 2
    (series,) = report.series
    assert (series["status"], series["reason"]) == (
        "invalid", "1 of 3 instances could not be de-identified (see the rejections)")


# ------------------------------------------- limits on the whole-file read (issue 15 item 1)
def _empty_private_elements(n: int) -> bytes:
    """``n`` empty private LO elements in groups after the pixel data (8 bytes each)."""
    per = 0xFFFF
    return b"".join(struct.pack("<HH2sH", 0x7FE1 + 2 * (k // per), 1 + k % per, b"LO", 0)
                    for k in range(n))


@pytest.fixture
def small_parser(limits):
    """A pool whose workers get 256 MiB: ample for a normal file, not for a flood of
    elements (each parsed element costs a few hundred bytes)."""
    with SafeParser(replace(limits, parse_memory_bytes=256 << 20)) as p:
        yield p


def test_millions_of_elements_after_the_pixel_data_are_refused_in_the_worker_not_parsed_here(
        tmp_path, settings, store, small_parser, monkeypatch):
    import resource

    from analytics.ingest import deid
    from analytics.ingest.pipeline import ingest_sources
    from tests.ingest.dicom_samples import Study, ct_series, encode, write_folder

    def in_process(*_a, **_k):
        raise AssertionError("the whole file was parsed in the ingesting process")

    # the worker is another process: this only trips if the parent reads the whole file
    monkeypatch.setattr(deid.Deidentifier, "deidentify_bytes", in_process)
    folder = write_folder(tmp_path / "src", ct_series(Study(), 2))
    hostile = ct_series(Study(patient_id="MRN-HOSTILE"), 1)[0]
    (folder / "tail.dcm").write_bytes(encode(hostile) + _empty_private_elements(700_000))
    assert (folder / "tail.dcm").stat().st_size > 5_000_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = ingest_sources([str(folder)], settings, store, parser=small_parser)
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    ((name, reason),) = [(r.file, r.reason) for r in report.rejected]
    assert name == "tail.dcm"
    assert re.match(r"^cannot de-identify: tail\.dcm: (malformed file: parsing it needs more "
                    r"memory than the parse limit|malformed file: the de-identification "
                    r"process died|limit: de-identification took longer than)", reason), reason
    assert report.series_ingested == 1 and report.instances == 2
    assert grew_mb < 100  # parsed here, 700,000 elements would take ~300 MB


def test_an_identifier_repair_reads_the_whole_file_in_the_worker(
        tmp_path, settings, store, small_parser, monkeypatch):
    from analytics.ingest import _worker, repair
    from analytics.ingest.pipeline import ingest_sources
    from tests.ingest.dicom_samples import Study, ct_series, encode, write_folder

    def in_process(*_a, **_k):
        raise AssertionError("the repair parsed the whole file in the ingesting process")

    monkeypatch.setattr(repair, "apply_repair", in_process)
    monkeypatch.setattr(_worker, "apply_repair", in_process)
    images = ct_series(Study(), 3)
    for ds in images:
        ds.SeriesInstanceUID = ""  # derived at ingest and written into each file
    folder = write_folder(tmp_path / "src", images[:2])
    (folder / "tail.dcm").write_bytes(encode(images[2]) + _empty_private_elements(700_000))
    report = ingest_sources([str(folder)], settings, store, parser=small_parser)
    ((name, reason),) = [(r.file, r.reason) for r in report.rejected]
    assert name == "tail.dcm"
    assert re.match(r"^tail\.dcm: (malformed file: parsing it needs more memory than the "
                    r"parse limit|malformed file: the identifier repair process died|limit: "
                    r"identifier repair took longer than)", reason), reason
    assert report.instances == 2


def test_de_identification_over_the_time_limit_is_refused_and_the_pool_recovers(limits, good):
    from analytics.errors import LimitExceededError

    secret = b"s" * 32
    with SafeParser(replace(limits, parse_timeout_s=1e-6)) as p:
        with pytest.raises(LimitExceededError, match=r"^slow\.dcm: limit: de-identification "
                                                     r"took longer than 1e-06 s "
                                                     r"\(parse_timeout_s\)$"):
            p.deidentify(good, name="slow.dcm", secret=secret, deidentify=True)
        p.limits = limits
        assert p.deidentify(good, name="next.dcm", secret=secret, deidentify=True)[128:132] \
            == b"DICM"


def test_a_worker_killed_while_de_identifying_is_replaced(limits, good):
    import os
    import signal

    from analytics.errors import InvalidDicomError

    with SafeParser(limits) as p:
        os.kill(p._workers[0].proc.pid, signal.SIGKILL)
        p._workers[0].proc.wait()
        with pytest.raises(InvalidDicomError, match=r"^dead\.dcm: malformed file: the "
                                                    r"de-identification process died"):
            p.deidentify(good, name="dead.dcm", secret=b"s" * 32, deidentify=True)
        assert p.deidentify(good, name="next.dcm", secret=b"s" * 32, deidentify=True)


def test_five_thousand_nested_sequences_after_the_pixel_data_are_refused_by_the_cli(
        tmp_path, home, capsys):
    import json

    from analytics.cli import main
    from tests.ingest.dicom_samples import Study, ct_series, encode, write_folder

    folder = write_folder(tmp_path / "src", ct_series(Study(), 2))
    tail = _nested(5000, False).replace(b"\x08\x00\x15\x11SQ", b"\xfa\xff\xfa\xffSQ", 1)
    hostile = ct_series(Study(patient_id="MRN-HOSTILE"), 1)[0]
    (folder / "deep.dcm").write_bytes(encode(hostile) + tail)
    code = main(["--home", str(home), "ingest", str(folder), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert [(r["file"], r["reason"]) for r in report["rejected"]] == [
        ("deep.dcm", "cannot de-identify: deep.dcm: malformed file: sequences nested too "
                     "deeply")]
    assert report["series_ingested"] == 1 and report["instances"] == 2
