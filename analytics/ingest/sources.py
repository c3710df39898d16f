"""Local ingest sources: single files, folders (recursive), zip archives and uploaded bytes.

Every source yields :class:`SourceItem` (bytes to parse, under a display name) or
:class:`~analytics.ingest.findings.Rejection`. Names are for display only: nothing is ever
written under a name taken from a folder or archive.

Zip archives are checked in a first pass that streams every entry and counts the bytes that
actually come out (declared sizes are never trusted): entry count, per-entry and whole-archive
compression ratio, per-file and per-upload caps, and overlapping entries (the "quoted
overlap" zip bomb that Python 3.11's ``zipfile`` does not catch). Only an archive that passes
is yielded, entry by entry, and each entry is read again under the same bounds.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from analytics.config import IngestLimits
from analytics.errors import LimitExceededError
from analytics.ingest.findings import LIMIT, MALFORMED, UNSAFE_NAME, UNSUPPORTED, Rejection

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class SourceItem:
    """One input file: a display name, its size in bytes and a way to open it.

    ``name`` is never used as a filesystem path.
    """

    name: str
    size: int
    _opener: Callable[[], BinaryIO] = field(repr=False)

    def open(self) -> BinaryIO:
        """A fresh binary stream over the item's bytes."""
        return self._opener()

    def read(self) -> bytes:
        """The item's bytes; at most ``size + 1`` are read, so growth since listing shows."""
        with self.open() as fh:
            return fh.read(self.size + 1)

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> SourceItem:
        """An in-memory item (an upload, a DICOMweb part)."""
        return cls(name=name, size=len(data), _opener=lambda: io.BytesIO(data))


def display_name(raw: str) -> str:
    """A printable form of an untrusted name: control characters escaped, length capped."""
    text = raw.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= 200 else text[:197] + "..."


def unsafe_entry_reason(name: str) -> str | None:
    """Why an archive entry name would be unsafe as a path (zip-slip), or None if it is not.

    The name is never used as a path either way; unsafe entries are reported and skipped.
    """
    if not name:
        return "empty entry name"
    if "\x00" in name:
        return "NUL byte in entry name"
    if "\\" in name:
        return "backslash in entry name"
    if name.startswith("/"):
        return "absolute entry name"
    if _DRIVE.match(name):
        return "drive letter in entry name"
    if ".." in name.split("/"):
        return "parent-directory ('..') component in entry name"
    return None


def is_zip(head: bytes) -> bool:
    """True for a zip archive's first bytes (and not a DICOM file that merely starts with PK)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return False
    return head[:4] in (ZIP_MAGIC, EMPTY_ZIP_MAGIC)


def iter_local_source(path: str | Path, limits: IngestLimits) -> Iterator[SourceItem | Rejection]:
    """Yield the files of a local file, folder (recursive) or zip archive.

    Parameters
    ----------
    path
        A DICOM (or NIfTI) file, a folder, or a ``.zip`` archive (detected by content).
    limits
        Upload, file, archive and ratio caps.

    Yields
    ------
    SourceItem or Rejection
        Items to parse; rejections for entries or files refused before parsing. When the
        whole source is over the upload cap, a single rejection is yielded and nothing else.
    """
    root = Path(path)
    if root.is_dir():
        yield from _iter_folder(root, limits)
    elif root.is_file():
        yield from _iter_file(root, root.name, limits, total_cap=True)
    else:
        yield Rejection(display_name(str(path)), "no such file or folder", MALFORMED)


def iter_upload(name: str, data: bytes, limits: IngestLimits) -> Iterator[SourceItem | Rejection]:
    """Yield the items of one uploaded file (a single file or a zip archive held in memory)."""
    shown = display_name(name)
    if len(data) > limits.max_upload_bytes:
        yield _over_upload_cap(shown, len(data), limits)
        return
    if is_zip(data[:132]):
        yield from _iter_zip(lambda: io.BytesIO(data), len(data), shown, limits)
    elif len(data) > limits.max_file_bytes:
        yield _over_file_cap(shown, len(data), limits)
    else:
        yield SourceItem.from_bytes(shown, data)


def _over_upload_cap(name: str, size: int, limits: IngestLimits) -> Rejection:
    return Rejection(name, f"upload is {size} bytes, over the upload cap of "
                           f"{limits.max_upload_bytes} bytes (max_upload_bytes)", LIMIT)


def _over_file_cap(name: str, size: int, limits: IngestLimits) -> Rejection:
    return Rejection(name, f"file is {size} bytes, over the per-file cap of "
                           f"{limits.max_file_bytes} bytes (max_file_bytes)", LIMIT)


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(132)


def _file_opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")


def _iter_file(path: Path, shown: str, limits: IngestLimits,
               total_cap: bool) -> Iterator[SourceItem | Rejection]:
    try:
        size = path.stat().st_size
        head = _head(path)
    except OSError as e:
        yield Rejection(shown, f"cannot read file: {e.strerror}", MALFORMED)
        return
    if total_cap and size > limits.max_upload_bytes:
        yield _over_upload_cap(shown, size, limits)
        return
    if is_zip(head):
        yield from _iter_zip(_file_opener(path), size, shown, limits)
        return
    if size > limits.max_file_bytes:
        yield _over_file_cap(shown, size, limits)
        return
    yield SourceItem(name=shown, size=size, _opener=_file_opener(path))


def _iter_folder(root: Path, limits: IngestLimits) -> Iterator[SourceItem | Rejection]:
    files: list[tuple[Path, str]] = []
    skipped: list[Rejection] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for fname in sorted(filenames):
            p = Path(dirpath) / fname
            shown = display_name(p.relative_to(root).as_posix())
            if p.is_symlink() or not p.is_file():
                skipped.append(Rejection(shown, "not a regular file (symbolic links and "
                                                "special files are not followed)", UNSUPPORTED))
                continue
            try:
                total += p.stat().st_size
            except OSError as e:
                skipped.append(Rejection(shown, f"cannot read file: {e.strerror}", MALFORMED))
                continue
            files.append((p, shown))
    if total > limits.max_upload_bytes:
        yield _over_upload_cap(display_name(root.name or str(root)), total, limits)
        return
    yield from skipped
    for p, shown in files:
        yield from _iter_file(p, shown, limits, total_cap=False)


# --------------------------------------------------------------------------- zip archives
def _stream_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: IngestLimits,
                  budget: int, sink: io.BytesIO | None) -> int:
    """Stream one entry, counting real output bytes; raise LimitExceededError on any bound."""
    ratio_cap = max(info.compress_size, 1) * limits.max_zip_ratio
    count = 0
    with zf.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            count += len(chunk)
            if count > limits.max_file_bytes:
                raise LimitExceededError(f"decompresses to more than the per-file cap of "
                                         f"{limits.max_file_bytes} bytes (max_file_bytes)")
            if count > ratio_cap:
                raise LimitExceededError(
                    f"compression ratio over {limits.max_zip_ratio:g} (max_zip_ratio): "
                    f"{info.compress_size} compressed bytes gave more than {count} (zip bomb?)")
            if count > budget:
                raise LimitExceededError(f"archive decompresses to more than the upload cap of "
                                         f"{limits.max_upload_bytes} bytes (max_upload_bytes)")
            if sink is not None:
                sink.write(chunk)
    return count


def _overlap(infos: list[zipfile.ZipInfo]) -> bool:
    """True if two entries' local data ranges overlap (the quoted-overlap zip bomb)."""
    spans = sorted((i.header_offset, i.header_offset + 30 + _name_bytes(i) + i.compress_size)
                   for i in infos)
    return any(end > nxt for (_, end), (nxt, _) in itertools.pairwise(spans))


def _name_bytes(info: zipfile.ZipInfo) -> int:
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    return len(info.orig_filename.encode(encoding, errors="replace"))


def _entry_problem(info: zipfile.ZipInfo) -> tuple[str, str] | None:
    unsafe = unsafe_entry_reason(info.orig_filename)
    if unsafe:
        return f"{unsafe}: not extracted (names are never used as paths)", UNSAFE_NAME
    if info.flag_bits & 0x1:
        return "encrypted archive entry: not supported", UNSUPPORTED
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return (f"archive entry compression method {info.compress_type} is not supported "
                f"(expected stored or deflate)"), UNSUPPORTED
    return None


def _iter_zip(opener: Callable[[], BinaryIO], archive_size: int, shown: str,
              limits: IngestLimits) -> Iterator[SourceItem | Rejection]:
    try:
        fh = opener()
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        yield Rejection(shown, f"not a readable zip archive ({e})", MALFORMED)
        return
    with fh, zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > limits.max_zip_entries:
            yield Rejection(shown, f"archive has {len(infos)} entries, over the cap of "
                                   f"{limits.max_zip_entries} (max_zip_entries)", LIMIT)
            return
        if _overlap(infos):
            yield Rejection(shown, "archive entries overlap each other (overlapping-entry "
                                   "zip bomb): not extracted", LIMIT)
            return
        good: list[tuple[zipfile.ZipInfo, int]] = []
        entry_findings: dict[int, Rejection] = {}
        total = 0
        # First pass: stream everything and count; any archive-level bound refuses it whole.
        for n, info in enumerate(infos):
            entry = f"{shown}:{display_name(info.orig_filename)}"
            problem = _entry_problem(info)
            if problem:
                entry_findings[n] = Rejection(entry, problem[0], problem[1])
                continue
            try:
                size = _stream_entry(zf, info, limits, limits.max_upload_bytes - total, None)
            except LimitExceededError as e:
                if "per-file cap" in str(e):
                    entry_findings[n] = Rejection(entry, str(e), LIMIT)
                    continue
                yield Rejection(shown, f"entry {display_name(info.orig_filename)}: {e}", LIMIT)
                return
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
                entry_findings[n] = Rejection(entry, f"corrupt archive entry ({e})", MALFORMED)
                continue
            total += size
            good.append((info, size))
        if archive_size and total > archive_size * limits.max_zip_ratio:
            yield Rejection(shown, f"archive inflates {total / archive_size:.0f}-fold, over "
                                   f"max_zip_ratio {limits.max_zip_ratio:g} (zip bomb?)", LIMIT)
            return
        yield from entry_findings.values()
    for info, size in good:
        yield _zip_item(opener, info, size, shown, limits)


def _zip_item(opener: Callable[[], BinaryIO], info: zipfile.ZipInfo, size: int, shown: str,
              limits: IngestLimits) -> SourceItem:
    def open_entry() -> BinaryIO:
        # Re-read under the same bounds: the archive may have changed since the first pass.
        with opener() as fh, zipfile.ZipFile(fh) as zf:
            sink = io.BytesIO()
            _stream_entry(zf, info, limits, limits.max_file_bytes, sink)
        sink.seek(0)
        return sink

    return SourceItem(name=f"{shown}:{display_name(info.orig_filename)}", size=size,
                      _opener=open_entry)
