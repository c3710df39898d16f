"""The parse workers' channel: small frames on pipes, file bytes in two shared memory files.

A request or reply is a frame on the worker's stdin or stdout pipe: a 4-byte big-endian
JSON length, the JSON (never pickle, so a compromised worker cannot run code in the parent)
and an 8-byte big-endian blob length. The blob itself does not cross the pipe: a request's
blob (a file or its header prefix) lies at offset 0 of the worker's *request file*, a
reply's blob (a de-identified copy, decoded pixels) at offset 0 of its *reply file*. Both
are anonymous memory files (``memfd_create``) that the parent makes for each worker when
it starts it and passes as inherited descriptors; nothing is made per request, so no error
can leak one, and both are closed with the worker (:meth:`WorkerProcess.kill`).

Why: a 525 KB CT slice pushed through a 64 KiB pipe costs about eight writes, eight reads
and as many wake-ups of the other process, each way; a shared file costs one ``pwrite``
and one ``pread``.

Bounds: the worker holds the request file through a read-only descriptor (a worker
that reopened it for writing through /proc would change nothing the parent uses: the
parent never reads the request file back, it keeps its own copy) and reads exactly the
declared length, after checking it against the request's ``max_file_bytes``
(:func:`read_request_blob`); it writes replies under RLIMIT_FSIZE (its memory limit). The
parent reads a reply with ``pread``, never maps it (a worker that truncates the file cannot
fault the parent), and takes a blob longer than the file or cut short for a dead worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

from analytics.errors import IngestError, LimitExceededError

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_HEAD = struct.Struct(">I")
_BLOB = struct.Struct(">Q")
#: a shared file that held more than this is emptied after use (memory goes back)
KEEP_BYTES = 64 << 20


# --------------------------------------------------------------------------- both sides
def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write ``data`` at offset 0 of the shared file ``fd``."""
    view, at = memoryview(data), 0
    while at < len(view):
        at += os.pwrite(fd, view[at:at + (1 << 30)], at)


def read_exactly(fd: int, n: int) -> bytes:
    """The first ``n`` bytes of the shared file ``fd``.

    Raises
    ------
    ValueError
        The file holds fewer than ``n`` bytes.
    """
    if n > os.fstat(fd).st_size:
        raise ValueError(f"blob of {n} bytes declared past the end of its shared file")
    data = os.pread(fd, n, 0)
    if len(data) == n:
        return data
    parts = [data]  # one pread returns at most ~2 GiB
    got = len(data)
    while got < n:
        part = os.pread(fd, n - got, got)
        if not part:
            raise ValueError("shared file shrank while it was read")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _frame(meta: dict, blob_len: int) -> bytes:
    payload = json.dumps(meta).encode()
    return _HEAD.pack(len(payload)) + payload + _BLOB.pack(blob_len)


# --------------------------------------------------------------------------- worker side
def _read_exact(inp: BinaryIO, n: int) -> bytes:
    buf = inp.read(n)
    if buf is None or len(buf) != n:
        raise EOFError("request stream closed")
    return buf


def read_request(inp: BinaryIO) -> tuple[dict, int]:
    """The next request's meta and blob length (the worker's side).

    Raises
    ------
    EOFError
        The parent closed the pipe.
    """
    (n,) = _HEAD.unpack(_read_exact(inp, _HEAD.size))
    meta = json.loads(_read_exact(inp, n))
    (m,) = _BLOB.unpack(_read_exact(inp, _BLOB.size))
    return meta, m


def read_request_blob(fd: int, size: int, meta: dict) -> bytes:
    """A request's blob from the request file, no longer than the request's per-file cap
    (times its files, for a request that carries several: ``meta["parts"]``).

    Raises
    ------
    LimitExceededError
        ``size`` is over that cap (nothing is read).
    ValueError
        The request file holds fewer than ``size`` bytes.
    """
    cap = int(meta.get("max_file_bytes", 0)) * max(1, len(meta.get("parts") or ()))
    if size > cap:
        raise LimitExceededError(f"limit: request of {size} bytes, over the per-file cap of "
                                 f"{cap} bytes (max_file_bytes)")
    return read_exactly(fd, size) if size else b""


def write_reply(out: BinaryIO, fd: int, meta: dict, blob: bytes | memoryview = b"") -> None:
    """Put ``blob`` in the reply file, then send the frame that announces it."""
    if blob:
        write_all(fd, blob)
    out.write(_frame(meta, len(blob)))
    out.flush()


# --------------------------------------------------------------------------- parent side
def _memory_file(name: str) -> int:
    return os.memfd_create(name, os.MFD_CLOEXEC)  # never inherited by another child


class WorkerProcess:
    """One worker process, its pipes and its two shared files (the parent's side)."""

    def __init__(self, memory_bytes: int) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH"))
                                            if p)
        self.request_fd = self.reply_fd = -1
        self._inbox = bytearray()
        self._request_size = 0
        try:
            self.request_fd = _memory_file("hepatrack-request")
            self.reply_fd = _memory_file("hepatrack-reply")
            # the worker's view of the request file is read-only
            readonly = os.open(f"/proc/self/fd/{self.request_fd}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "analytics.ingest._worker", str(memory_bytes),
                     str(readonly), str(self.reply_fd)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    env=env, close_fds=True, pass_fds=(readonly, self.reply_fd))
            finally:
                os.close(readonly)
        except BaseException:
            self._close_files()
            raise
        self.started = False

    @property
    def out_fd(self) -> int:
        return self.proc.stdout.fileno()  # type: ignore[union-attr]

    def send(self, meta: dict, blob: bytes | memoryview, deadline: float) -> None:
        """Put ``blob`` in the request file and send the request's frame."""
        if self._request_size > max(len(blob), KEEP_BYTES):
            os.ftruncate(self.request_fd, 0)
            self._request_size = 0
        write_all(self.request_fd, blob)
        self._request_size = max(self._request_size, len(blob))
        view = memoryview(_frame(meta, len(blob)))
        fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, writable, _ = select.select([], [fd], [], remaining)
            if writable:
                view = view[os.write(fd, view):]

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        while len(self._inbox) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([self.out_fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self.out_fd, max(n - len(self._inbox), 1 << 16))
            if not chunk:
                raise EOFError("worker exited")
            self._inbox += chunk
        out = bytes(self._inbox[:n])
        del self._inbox[:n]
        return out

    def recv(self, deadline: float) -> tuple[dict, bytes]:
        """The next reply's meta and blob.

        Raises
        ------
        TimeoutError, EOFError
            Past ``deadline``, or the worker exited.
        ValueError
            The reply's blob is not in the reply file (a broken worker).
        """
        (n,) = _HEAD.unpack(self._recv_exact(_HEAD.size, deadline))
        meta = json.loads(self._recv_exact(n, deadline))
        (m,) = _BLOB.unpack(self._recv_exact(_BLOB.size, deadline))
        if not m:
            return meta, b""
        blob = read_exactly(self.reply_fd, m)
        if m > KEEP_BYTES:
            os.ftruncate(self.reply_fd, 0)
        return meta, blob

    def wait_ready(self, timeout: float) -> None:
        meta, _ = self.recv(time.monotonic() + timeout)
        if not meta.get("ready"):
            raise IngestError("parse worker did not start")
        self.started = True

    def _close_files(self) -> None:
        for fd in (self.request_fd, self.reply_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.request_fd = self.reply_fd = -1

    def kill(self) -> None:
        """Stop the process and close its pipes and shared files (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._close_files()

    def describe_death(self) -> str:
        code = self.proc.poll()
        if code is not None and code < 0:
            import signal

            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


__all__ = ["KEEP_BYTES", "WorkerProcess", "read_exactly", "read_request",
           "read_request_blob", "write_all", "write_reply"]
