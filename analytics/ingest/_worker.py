"""Parse worker: a separate process that parses untrusted DICOM under memory limits.

:class:`WorkerProcess` is the parent's handle on one such process;
``analytics.ingest.reader.SafeParser`` keeps a small pool of them.

Run as ``python -m analytics.ingest._worker MEMORY_BYTES``. It sets
RLIMIT_AS to MEMORY_BYTES, then serves requests on stdin/stdout. A frame is a 4-byte
big-endian JSON length, the JSON, an 8-byte big-endian blob length and the blob. Replies
are plain JSON (never pickle), so a compromised worker cannot run code in the parent.

Ops:
- ``parse``: blob = the file or a prefix of it. Reply ``{ok, kind, pixel, need_more, ...}``.
  Meta ``clean`` (``{secret, name}``, with the whole file) also asks for the de-identified
  copy of a file that will be stored as it is (an image that is neither quarantined nor
  missing identifiers, a SEG or an RTSTRUCT): the reply's ``clean`` is then the outcome of
  ``deidentify`` on the same bytes (``{ok, changed, clean}`` or its error reply) and the
  blob the bytes to store, so the file crosses the pipe and is read in full only once.
- ``decode``: blob = the whole file. Reply ``{ok, dtype, shape}`` + the pixel array bytes.
- ``deidentify``: blob = the whole file; meta ``repair`` (None, or keyword -> value written
  first by ``repair.apply_repair``), ``deidentify`` (bool), ``secret`` (the site secret as
  hex: it only crosses a pipe to a child process) and ``name``. Reply ``{ok, changed}`` +
  the bytes to store (none when ``changed`` is false: nothing was to be changed). The whole
  file is read here, elements after the pixel data included, so its parse and the
  de-identification walk run under the same memory and time limits as the header parse.
  Meta ``blank_regions`` (bool) then blanks an ultrasound file's pixels outside its image
  regions (``analytics.ingest.ultrasound.blank_bytes``).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom.pixels  # noqa: F401  (the decoders, loaded before the memory limit)

from analytics.config import IngestLimits
from analytics.errors import HepaTrackError, IngestError, LimitExceededError, UnsupportedError
from analytics.ingest.compact import describe, needs_repair
from analytics.ingest.deid import Deidentifier
from analytics.ingest.header import (
    check_elements,
    classify,
    decoder_problem,
    parse_dicom,
    pixel_bytes,
    required_missing,
)
from analytics.ingest.repair import Repair, apply_repair
from analytics.ingest.ultrasound import blank_bytes

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_HEAD = struct.Struct(">I")
_BLOB = struct.Struct(">Q")


def write_frame(out: BinaryIO, meta: dict, blob: bytes | memoryview = b"") -> None:
    payload = json.dumps(meta).encode()
    out.write(_HEAD.pack(len(payload)) + payload + _BLOB.pack(len(blob)))
    if blob:
        out.write(blob)
    out.flush()


def _read_exact(inp: BinaryIO, n: int) -> bytes:
    buf = inp.read(n)
    if buf is None or len(buf) != n:
        raise EOFError("request stream closed")
    return buf


def read_frame(inp: BinaryIO) -> tuple[dict, bytes]:
    (n,) = _HEAD.unpack(_read_exact(inp, _HEAD.size))
    meta = json.loads(_read_exact(inp, n))
    (m,) = _BLOB.unpack(_read_exact(inp, _BLOB.size))
    return meta, _read_exact(inp, m) if m else b""


class WorkerProcess:
    """One worker process and its pipes (the parent's side of the protocol)."""

    def __init__(self, memory_bytes: int) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH"))
                                            if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "analytics.ingest._worker", str(memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, close_fds=True)
        self.started = False

    @property
    def out_fd(self) -> int:
        return self.proc.stdout.fileno()  # type: ignore[union-attr]

    def send(self, meta: dict, blob: bytes | memoryview, deadline: float) -> None:
        payload = json.dumps(meta).encode()
        frame = (_HEAD.pack(len(payload)) + payload + _BLOB.pack(len(blob)))
        fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        for part in (frame, blob):
            view = memoryview(part)
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                _, writable, _ = select.select([], [fd], [], remaining)
                if writable:
                    n = os.write(fd, view[:1 << 20])
                    view = view[n:]

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([self.out_fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self.out_fd, min(n - got, 1 << 22))
            if not chunk:
                raise EOFError("worker exited")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def recv(self, deadline: float) -> tuple[dict, bytes]:
        (n,) = _HEAD.unpack(self._recv_exact(_HEAD.size, deadline))
        meta = json.loads(self._recv_exact(n, deadline))
        (m,) = _BLOB.unpack(self._recv_exact(_BLOB.size, deadline))
        return meta, self._recv_exact(m, deadline) if m else b""

    def wait_ready(self, timeout: float) -> None:
        meta, _ = self.recv(time.monotonic() + timeout)
        if not meta.get("ready"):
            raise IngestError("parse worker did not start")
        self.started = True

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def describe_death(self) -> str:
        code = self.proc.poll()
        if code is not None and code < 0:
            import signal

            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


def _parse(meta: dict, blob: bytes, limits) -> dict:
    prefix = meta["total"] > len(blob)
    try:
        header = parse_dicom(blob, limits)
    except Exception:
        if prefix:  # a header cut by the prefix: ask for the whole file
            return {"ok": True, "need_more": True}
        raise
    ds = header.dataset
    # A prefix that ends before the pixel data (or mid-header) says nothing: ask for it all.
    if prefix and (header.pixel is None or header.truncated):
        return {"ok": True, "need_more": True}
    if header.truncated:
        return {"ok": False, "category": "malformed",
                "reason": "malformed file: the header ends before its declared end"}
    check_elements(ds)
    kind = classify(ds)
    missing = required_missing(ds, kind)
    if missing:
        return {"ok": False, "category": "missing_attribute",
                "reason": f"missing required attribute {missing}"}
    reply = {"ok": True, "need_more": False, "kind": kind}
    if kind in ("image", "ultrasound", "seg") or header.pixel is not None:
        if "Rows" in ds and "Columns" in ds:
            size = pixel_bytes(ds)
            if size > limits.max_pixel_bytes:
                return {"ok": False, "category": "limit",
                        "reason": f"pixel data would decode to {size} bytes (Rows x Columns x "
                                  f"Frames x bytes), over the budget of "
                                  f"{limits.max_pixel_bytes} (max_pixel_bytes)"}
        problem = decoder_problem(str(ds.file_meta.TransferSyntaxUID))
        if problem and kind in ("image", "ultrasound", "seg"):
            return {"ok": False, "category": "unsupported", "reason": problem}
    reply["info"] = describe(header, kind)  # raises naming missing or invalid geometry
    return reply


#: kinds whose de-identified copy a parse request may make (ultrasound pixels are cleaned
#: after the series is judged; other objects are not stored)
CLEAN_AT_PARSE = ("image", "seg", "rtstruct")


def _parse_and_clean(meta: dict, blob: bytes, limits) -> tuple[dict, bytes]:
    """A parse reply, with the de-identified copy when ``meta["clean"]`` asks for it and
    the file will be stored as it is (``CLEAN_AT_PARSE``, not quarantined, identifiers
    complete); a failure of the copy is carried in ``reply["clean"]``, raised when used."""
    reply = _parse(meta, blob, limits)
    want = meta.get("clean")
    info = reply.get("info") or {}
    if (not want or not reply.get("ok") or reply.get("need_more")
            or meta["total"] > len(blob) or info.get("kind") not in CLEAN_AT_PARSE
            or info.get("quarantine") or needs_repair(info)):
        return reply, b""
    request = {"deidentify": True, "secret": want["secret"], "name": want["name"]}
    try:
        outcome, data = _deidentify(request, blob, limits)
    except (Exception, MemoryError, RecursionError) as e:  # as serve() replies to it alone
        outcome, data = _error_reply(e), b""
    reply["clean"] = outcome
    return reply, data


def _decode(blob: bytes, limits) -> tuple[dict, bytes]:
    header = parse_dicom(blob, limits, stop_before_pixels=False)
    arr = np.ascontiguousarray(header.dataset.pixel_array)
    return {"ok": True, "dtype": arr.dtype.str, "shape": list(arr.shape)}, arr.tobytes()


def _deidentify(meta: dict, blob: bytes, limits) -> tuple[dict, bytes]:
    repair, deid = meta.get("repair"), bool(meta.get("deidentify"))
    blank = bool(meta.get("blank_regions"))
    if repair is None and not deid and not blank:
        return {"ok": True, "changed": False}, b""  # nothing to change: the parent keeps its copy
    # an empty repair still re-encodes: SOP UIDs recovered from the file meta are written
    data = apply_repair(blob, Repair(values=dict(repair)), limits) if repair is not None else blob
    del blob
    clean = None
    if deid:
        # the same two steps as the in-process path, so the stored bytes are identical
        try:
            data, _, ds = Deidentifier(bytes.fromhex(meta["secret"])).deidentify_bytes(
                data, name=meta.get("name") or "instance")
        except HepaTrackError as e:  # already names the file and says what is wrong
            category = "limit" if isinstance(e, LimitExceededError) else "malformed"
            return {"ok": False, "category": category, "reason": str(e), "named": True}, b""
        clean = clean_facts(ds)
    if blank:
        try:
            data = blank_bytes(data, name=meta.get("name") or "instance")
        except HepaTrackError as e:
            return {"ok": False, "category": "malformed", "reason": str(e), "named": True}, b""
        clean = None  # the re-encoded copy is read back by the parent
    return {"ok": True, "changed": True, "clean": clean}, data


def clean_facts(ds) -> dict[str, str | None]:
    """What ingest files a stored copy by, read from the dataset just de-identified, so
    the parent does not parse the bytes it receives again (``prepare.CleanHeader``)."""
    def text(keyword: str) -> str | None:
        value = ds.get(keyword)
        return None if value in (None, "") else str(value)

    return {key: text(keyword) for key, keyword in CLEAN_FACTS}


#: key in a de-identification reply -> the attribute of the clean copy it carries
CLEAN_FACTS = (("sop_instance_uid", "SOPInstanceUID"),
               ("study_description", "StudyDescription"),
               ("series_description", "SeriesDescription"))


def _error_reply(e: BaseException) -> dict:
    if isinstance(e, LimitExceededError):
        return {"ok": False, "category": "limit", "reason": str(e)}
    if isinstance(e, UnsupportedError):
        return {"ok": False, "category": "unsupported", "reason": str(e)}
    if isinstance(e, MemoryError):
        return {"ok": False, "category": "malformed",
                "reason": "malformed file: parsing it needs more memory than the parse limit"}
    if isinstance(e, RecursionError):
        return {"ok": False, "category": "malformed",
                "reason": "malformed file: sequences nested too deeply"}
    text = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    if not text.startswith(("malformed", "not a DICOM", "missing", "truncated")):
        text = f"malformed file: {text}"
    return {"ok": False, "category": "malformed", "reason": text}


def serve(memory_bytes: int) -> None:
    # everything a request needs is imported at the top, before the memory limit applies
    warnings.simplefilter("ignore")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the reply stream
    write_frame(out, {"ready": True})
    while True:
        try:
            meta, blob = read_frame(inp)
        except EOFError:
            return
        try:
            limits = IngestLimits(max_inflated_bytes=meta["max_inflated_bytes"],
                                  max_pixel_bytes=meta["max_pixel_bytes"])
            if meta.get("op") == "decode":
                reply, payload = _decode(blob, limits)
                del blob
                write_frame(out, reply, payload)
                continue
            if meta.get("op") == "deidentify":
                reply, payload = _deidentify(meta, blob, limits)
                del blob
                write_frame(out, reply, payload)
                continue
            reply, payload = _parse_and_clean(meta, blob, limits)
        except (Exception, MemoryError, RecursionError) as e:
            reply, payload = _error_reply(e), b""
        del blob
        write_frame(out, reply, payload)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
