"""Parse worker: a separate process that parses untrusted DICOM under memory limits.

:class:`~analytics.ingest._channel.WorkerProcess` is the parent's handle on one such
process; ``analytics.ingest.reader.SafeParser`` keeps a small pool of them.

Run as ``python -m analytics.ingest._worker MEMORY_BYTES REQUEST_FD REPLY_FD``. It sets
RLIMIT_AS (and RLIMIT_FSIZE, which bounds what it writes to the reply file) to
MEMORY_BYTES, then serves requests on stdin/stdout: frames on the pipes, each request's
file bytes in the shared request file and each reply's blob in the shared reply file
(:mod:`analytics.ingest._channel`). Replies are plain JSON (never pickle), so a compromised
worker cannot run code in the parent. A request's blob over its ``max_file_bytes`` is
refused before it is read.

Every request's meta has ``op``, ``total`` (the file's size), ``max_file_bytes``,
``max_pixel_bytes`` and ``max_inflated_bytes``. Ops:
- ``parse``: blob = the file or a prefix of it. Reply ``{ok, kind, pixel, need_more, ...}``.
  Meta ``clean`` (``{secret, name}``, with the whole file) also asks for the de-identified
  copy of a file that will be stored as it is (an image that is neither quarantined nor
  missing identifiers, a SEG or an RTSTRUCT): the reply's ``clean`` is then the outcome of
  ``deidentify`` on the same bytes (``{ok, changed, clean}`` or its error reply) and the
  blob the bytes to store, so the file is sent and read in full only once.
- ``parse_batch``: blob = the header prefixes of several files, one after another; meta
  ``parts`` = ``[offset, length, file size]`` of each. Reply ``{ok, parts}``: the ``parse``
  reply of each (no ``clean``), or its error reply. Each part is checked against
  ``max_file_bytes``, the whole blob against ``max_file_bytes`` times the parts.
- ``decode``: blob = the whole file. Reply ``{ok, dtype, shape}`` + the pixel array bytes.
- ``deidentify``: blob = the whole file; meta ``repair`` (None, or keyword -> value written
  first by ``repair.apply_repair``), ``deidentify`` (bool), ``secret`` (the site secret as
  hex, in the frame on the child's pipe) and ``name``. Reply ``{ok, changed}`` + the bytes
  to store (none when ``changed`` is false: nothing was to be changed). The whole
  file is read here, elements after the pixel data included, so its parse and the
  de-identification walk run under the same memory and time limits as the header parse.
  Meta ``blank_regions`` (bool) then blanks an ultrasound file's pixels outside its image
  regions (``analytics.ingest.ultrasound.blank_bytes``).
"""

from __future__ import annotations

import os
import resource
import sys
import warnings

import numpy as np
import pydicom.pixels  # noqa: F401  (the decoders, loaded before the memory limit)

from analytics.config import IngestLimits
from analytics.errors import HepaTrackError, LimitExceededError, UnsupportedError
from analytics.ingest._channel import read_request, read_request_blob, write_reply
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


def _parse_batch(meta: dict, blob: bytes, limits) -> tuple[dict, bytes]:
    """The ``parse`` reply of each file's header in ``meta["parts"]``, one by one; a
    failure is that file's reply (as ``serve`` makes it for a request of its own)."""
    cap, replies = int(meta["max_file_bytes"]), []
    for at, length, total in meta["parts"]:
        if not 0 <= length <= total <= cap or at < 0 or at + length > len(blob):
            raise LimitExceededError(f"limit: a part of {length} bytes of a {total}-byte file "
                                     f"is not within the request or the per-file cap of {cap} "
                                     "bytes (max_file_bytes)")
    for at, length, total in meta["parts"]:
        try:
            replies.append(_parse({"total": total}, blob[at:at + length], limits))
        except (Exception, MemoryError, RecursionError) as e:
            replies.append(_error_reply(e))
    return {"ok": True, "parts": replies}, b""


def _decode(meta: dict, blob: bytes, limits) -> tuple[dict, bytes]:
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


def serve(memory_bytes: int, request_fd: int, reply_fd: int) -> None:
    # everything a request needs is imported at the top, before the memory limit applies
    warnings.simplefilter("ignore")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (memory_bytes, memory_bytes))
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the reply stream
    write_reply(out, reply_fd, {"ready": True})
    while True:
        try:
            meta, size = read_request(inp)
        except EOFError:
            return
        blob = b""
        try:
            blob = read_request_blob(request_fd, size, meta)
            limits = IngestLimits(max_inflated_bytes=meta["max_inflated_bytes"],
                                  max_pixel_bytes=meta["max_pixel_bytes"])
            op = {"decode": _decode, "deidentify": _deidentify,
                  "parse_batch": _parse_batch}.get(meta.get("op"))
            if op is not None:
                reply, payload = op(meta, blob, limits)
            else:
                reply, payload = _parse_and_clean(meta, blob, limits)
        except (Exception, MemoryError, RecursionError) as e:
            reply, payload = _error_reply(e), b""
        del blob
        write_reply(out, reply_fd, reply, payload)


if __name__ == "__main__":
    serve(*(int(arg) for arg in sys.argv[1:4]))
