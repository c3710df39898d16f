"""Local sources: folders, files, zips and uploads; caps; zip-slip and zip bombs."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analytics.ingest.findings import LIMIT, UNSAFE_NAME, Rejection
from analytics.ingest.sources import (
    SourceItem,
    is_zip,
    iter_local_source,
    iter_upload,
    unsafe_entry_reason,
)
from tests.ingest.conftest import ct_series, hu_phantom, to_bytes, write_files


def _split(results):
    items = [r for r in results if isinstance(r, SourceItem)]
    rejected = [r for r in results if isinstance(r, Rejection)]
    return items, rejected


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            zf.writestr(info, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def slices() -> list[bytes]:
    return [to_bytes(ds) for ds in ct_series(hu_phantom((3, 16, 16)))]


def test_folder_is_walked_recursively_with_relative_names(tmp_path, limits, slices):
    write_files(tmp_path / "in", {"b/2.dcm": slices[1], "a.dcm": slices[0],
                                  "b/c/3.dcm": slices[2]})
    items, rejected = _split(list(iter_local_source(tmp_path / "in", limits)))
    assert rejected == []
    assert [i.name for i in items] == ["a.dcm", "b/2.dcm", "b/c/3.dcm"]
    assert [i.read() for i in items] == [slices[0], slices[1], slices[2]]
    assert [i.size for i in items] == [len(slices[0]), len(slices[1]), len(slices[2])]


def test_single_file_and_missing_path(tmp_path, limits, slices):
    p = tmp_path / "one.dcm"
    p.write_bytes(slices[0])
    (only,) = list(iter_local_source(p, limits))
    assert only.name == "one.dcm" and only.read() == slices[0]
    (missing,) = list(iter_local_source(tmp_path / "nope", limits))
    assert missing.reason == "no such file or folder"


def test_zip_entries_are_streamed_with_display_names(tmp_path, limits, slices):
    z = tmp_path / "study.zip"
    z.write_bytes(_zip({"s/1.dcm": slices[0], "s/2.dcm": slices[1], "dir/": b""}))
    items, rejected = _split(list(iter_local_source(z, limits)))
    assert rejected == []
    assert [i.name for i in items] == ["study.zip:s/1.dcm", "study.zip:s/2.dcm"]
    assert [i.read() for i in items] == slices[:2]


def test_zip_inside_a_folder_is_opened(tmp_path, limits, slices):
    write_files(tmp_path / "in", {"x.zip": _zip({"1.dcm": slices[0]}), "2.dcm": slices[1]})
    items, _ = _split(list(iter_local_source(tmp_path / "in", limits)))
    assert sorted(i.name for i in items) == ["2.dcm", "x.zip:1.dcm"]


@pytest.mark.parametrize(("entry", "expected"), [
    ("../evil.dcm", "parent-directory"),
    ("a/../../evil.dcm", "parent-directory"),
    ("/etc/evil.dcm", "absolute entry name"),
    ("C:/evil.dcm", "drive letter"),
    ("c:evil.dcm", "drive letter"),
    ("dir\\..\\evil.dcm", "backslash"),
])
def test_zip_slip_entries_are_reported_and_never_written(tmp_path, limits, slices, entry,
                                                         expected):
    z = tmp_path / "slip.zip"
    z.write_bytes(_zip({entry: slices[0], "ok.dcm": slices[1]}))
    before = sorted(p for p in tmp_path.rglob("*"))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        items, rejected = _split(list(iter_local_source(z, limits)))
        for i in items:
            i.read()
    finally:
        os.chdir(cwd)
    assert [i.name for i in items] == ["slip.zip:ok.dcm"]
    (rej,) = rejected
    assert rej.category == UNSAFE_NAME
    assert expected in rej.reason and "not extracted" in rej.reason
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing was written anywhere
    assert not Path("/etc/evil.dcm").exists()


def test_unsafe_entry_reason_accepts_ordinary_names():
    assert unsafe_entry_reason("study/series/IM0001.dcm") is None
    assert unsafe_entry_reason("a..b/c.dcm") is None  # dots inside a name are fine


def test_zip_bomb_is_refused_by_the_actual_ratio(tmp_path, limits):
    z = tmp_path / "bomb.zip"
    z.write_bytes(_zip({"zeros.dcm": b"\0" * (4 << 20)}))  # ~1000:1
    (rej,) = list(iter_local_source(z, limits))
    assert rej.category == LIMIT
    assert "compression ratio over 50" in rej.reason and "zip bomb" in rej.reason


def test_zip_with_lying_header_is_bounded_by_streamed_bytes(tmp_path, limits):
    # The central directory claims 10 bytes; the stream holds 4 MiB: we count what comes out.
    data = bytearray(_zip({"x.dcm": b"\0" * (4 << 20)}))
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 10)  # uncompressed size in the central directory
    (rej,) = list(iter_upload("lying.zip", bytes(data), limits))
    assert isinstance(rej, Rejection)
    assert rej.category in (LIMIT, "malformed")


def test_zip_entry_count_cap(tmp_path, limits, slices):
    z = tmp_path / "many.zip"
    z.write_bytes(_zip({f"{i}.dcm": b"x" for i in range(limits.max_zip_entries + 1)}))
    (rej,) = list(iter_local_source(z, limits))
    assert rej.reason == (f"archive has {limits.max_zip_entries + 1} entries, over the cap of "
                          f"{limits.max_zip_entries} (max_zip_entries)")


def test_overlapping_zip_entries_are_refused(tmp_path, limits, slices):
    data = bytearray(_zip({"a.dcm": slices[0], "b.dcm": slices[1]}))
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, second + 42, 0)  # b.dcm now points at a.dcm's data
    z = tmp_path / "overlap.zip"
    z.write_bytes(bytes(data))
    (rej,) = list(iter_local_source(z, limits))
    assert "overlap" in rej.reason and rej.category == LIMIT


def test_upload_cap_refuses_a_folder_before_anything_is_read(tmp_path, limits, slices):
    small = replace(limits, max_upload_bytes=2 * len(slices[0]))
    write_files(tmp_path / "in", {f"{i}.dcm": s for i, s in enumerate(slices)})
    (rej,) = list(iter_local_source(tmp_path / "in", small))
    assert rej.category == LIMIT and "over the upload cap" in rej.reason


def test_upload_cap_refuses_an_archive_that_inflates_past_it(tmp_path, limits):
    small = replace(limits, max_upload_bytes=1 << 20, max_zip_ratio=1e6)
    z = tmp_path / "big.zip"
    z.write_bytes(_zip({"a.bin": os.urandom(600_000), "b.bin": os.urandom(600_000)},
                       compression=zipfile.ZIP_STORED))
    results = list(iter_local_source(z, replace(small, max_upload_bytes=2 << 20)))
    assert all(isinstance(r, SourceItem) for r in results)
    z2 = tmp_path / "big2.zip"
    z2.write_bytes(_zip({"a.bin": b"\0" * 600_000, "b.bin": b"\0" * 600_000}))
    (rej,) = list(iter_local_source(z2, small))
    assert "upload cap" in rej.reason


def test_per_file_cap_rejects_one_file_and_keeps_the_rest(tmp_path, limits, slices):
    small = replace(limits, max_file_bytes=len(slices[0]) + 10)
    write_files(tmp_path / "in", {"big.dcm": b"\0" * (len(slices[0]) + 11), "ok.dcm": slices[0]})
    items, rejected = _split(list(iter_local_source(tmp_path / "in", small)))
    assert [i.name for i in items] == ["ok.dcm"]
    assert rejected[0].file == "big.dcm" and "per-file cap" in rejected[0].reason


def test_symlinks_are_not_followed(tmp_path, limits, slices):
    write_files(tmp_path / "in", {"a.dcm": slices[0]})
    (tmp_path / "in" / "link.dcm").symlink_to(tmp_path / "in" / "a.dcm")
    items, rejected = _split(list(iter_local_source(tmp_path / "in", limits)))
    assert [i.name for i in items] == ["a.dcm"]
    assert rejected[0].file == "link.dcm" and "symbolic links" in rejected[0].reason


def test_dicom_file_whose_preamble_starts_with_pk_is_not_a_zip(slices):
    polyglot = b"PK\x03\x04" + slices[0][4:]
    assert is_zip(polyglot[:132]) is False
    assert is_zip(_zip({"a": b"b"})[:132]) is True


def test_upload_of_a_zip_and_of_a_single_file(limits, slices):
    items, rejected = _split(list(iter_upload("up.zip", _zip({"1.dcm": slices[0]}), limits)))
    assert [i.name for i in items] == ["up.zip:1.dcm"] and rejected == []
    (one,) = list(iter_upload("x.dcm", slices[1], limits))
    assert one.read() == slices[1]
    (bad,) = list(iter_upload("bad.zip", b"PK\x03\x04garbage", limits))
    assert "not a readable zip archive" in bad.reason


def test_control_characters_in_names_are_escaped(tmp_path, limits, slices):
    z = tmp_path / "n.zip"
    z.write_bytes(_zip({"a\x1b[31m.dcm": slices[0]}))
    (it,) = list(iter_local_source(z, limits))
    assert "\x1b" not in it.name and "\\x1b" in it.name
    assert np.frombuffer(it.read()[128:132], dtype=np.uint8).tobytes() == b"DICM"
