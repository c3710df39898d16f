"""Headers parsed in groups (one worker request for several files), every limit per file."""

from __future__ import annotations

import io
import time
from dataclasses import replace

import pydicom
import pytest

from analytics.ingest._channel import WorkerProcess
from analytics.ingest.findings import LIMIT, TIMED_OUT, Rejection
from analytics.ingest.reader import GROUP_FILES, HEADER_PREFIX_BYTES, ParsedInstance, SafeParser
from tests.ingest.conftest import ct_series, hu_phantom, item, to_bytes


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return [to_bytes(ds) for ds in ct_series(hu_phantom((GROUP_FILES + 3, 16, 16)))]


def _names(results) -> dict[str, ParsedInstance | Rejection]:
    return {r.file if isinstance(r, Rejection) else r.name: r for r in results}


def test_a_group_returns_what_files_sent_alone_return(parser, series):
    grouped = _names(parser.parse_many([item(f"{n}.dcm", d) for n, d in enumerate(series)]))
    assert sorted(grouped) == sorted(f"{n}.dcm" for n in range(len(series)))
    for n, data in enumerate(series):
        alone = parser.parse(item(f"{n}.dcm", data))
        assert grouped[f"{n}.dcm"].info == alone.info
        assert grouped[f"{n}.dcm"].pixel == alone.pixel


def test_a_bad_file_in_a_group_is_refused_by_name_and_the_others_are_parsed(parser, series):
    ds = ct_series(hu_phantom((1, 8, 8)))[0]
    ds["PixelData"].VR = "OW"
    del ds.PixelSpacing
    files = [item("0.dcm", series[0]), item("bad.dcm", to_bytes(ds)), item("2.dcm", series[2])]
    got = _names(parser.parse_many(files))
    assert isinstance(got["0.dcm"], ParsedInstance) and isinstance(got["2.dcm"], ParsedInstance)
    assert got["bad.dcm"].category == "missing_attribute"
    assert got["bad.dcm"].reason == "missing required attribute PixelSpacing (0028,0030)"


def test_a_header_longer_than_its_prefix_in_a_group_is_read_whole(parser, series):
    ds = ct_series(hu_phantom((1, 16, 16)))[0]
    ds.add_new(0x00091010, "OB", b"\x01" * (HEADER_PREFIX_BYTES + 1000))
    files = [item("0.dcm", series[0]), item("big.dcm", to_bytes(ds)), item("2.dcm", series[2])]
    got = _names(parser.parse_many(files))
    assert all(isinstance(r, ParsedInstance) for r in got.values())
    assert got["big.dcm"].pixel_problem is None


def test_a_group_over_the_time_limit_sends_each_file_alone_and_names_each(limits, series):
    with SafeParser(replace(limits, parse_timeout_s=1e-6)) as p:
        got = _names(p.parse_many([item(f"{n}.dcm", d) for n, d in enumerate(series[:3])]))
        assert sorted(got) == ["0.dcm", "1.dcm", "2.dcm"]
        for name, rej in got.items():
            assert rej.category == TIMED_OUT and rej.file == name
        p.limits = limits
        again = list(p.parse_many([item(f"{n}.dcm", d) for n, d in enumerate(series[:3])]))
    assert all(isinstance(r, ParsedInstance) for r in again)


def _batch(limits, parts: list[list[int]], blob: bytes, cap: int) -> dict:
    meta = {"op": "parse_batch", "total": len(blob), "parts": parts, "max_file_bytes": cap,
            "max_pixel_bytes": limits.max_pixel_bytes,
            "max_inflated_bytes": limits.max_inflated_bytes}
    w = WorkerProcess(limits.parse_memory_bytes)
    try:
        w.wait_ready(60.0)
        deadline = time.monotonic() + 30.0
        w.send(meta, blob, deadline)
        return w.recv(deadline)[0]
    finally:
        w.kill()


def test_the_worker_refuses_a_group_part_over_the_per_file_cap(limits, series):
    a, b = series[0], series[1]
    reply = _batch(limits, [[0, len(a), len(a)], [len(a), len(b), len(b) + 1]], a + b,
                   cap=len(b))
    assert reply == {"ok": False, "category": LIMIT,
                     "reason": f"limit: a part of {len(b)} bytes of a {len(b) + 1}-byte file "
                               f"is not within the request or the per-file cap of {len(b)} "
                               "bytes (max_file_bytes)"}


def test_the_worker_refuses_a_group_part_outside_the_request(limits, series):
    a = series[0]
    reply = _batch(limits, [[0, len(a), len(a)], [len(a) - 10, 20, len(a)]], a,
                   cap=limits.max_file_bytes)
    assert reply["ok"] is False and reply["category"] == LIMIT
    assert "is not within the request" in reply["reason"]


def test_the_worker_parses_every_part_of_a_group(limits, series):
    a, b = series[0], series[1]
    reply = _batch(limits, [[0, len(a), len(a)], [len(a), len(b), len(b)]], a + b,
                   cap=limits.max_file_bytes)
    uids = [str(pydicom.dcmread(io.BytesIO(d), stop_before_pixels=True).SOPInstanceUID)
            for d in (a, b)]
    assert reply["ok"] and [p["info"]["sop_instance_uid"] for p in reply["parts"]] == uids
