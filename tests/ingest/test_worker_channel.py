"""The parse workers' channel: file bytes in shared memory files, every limit kept."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import RLELossless

from analytics.errors import InvalidDicomError
from analytics.ingest import _channel
from analytics.ingest._channel import WorkerProcess
from analytics.ingest.findings import LIMIT, MALFORMED, TIMED_OUT, Rejection
from analytics.ingest.reader import ParsedInstance, SafeParser
from tests.ingest.conftest import ct_series, ct_slice, hu_phantom, item, to_bytes


@pytest.fixture(scope="module")
def good() -> bytes:
    return to_bytes(ct_series(hu_phantom((1, 32, 32)))[0])


@pytest.fixture(scope="module")
def deadly() -> bytes:
    """A good file with a marker the tests kill the worker on."""
    return to_bytes(ct_series(hu_phantom((1, 32, 32)), patient_id="DIES-HERE")[0])


def _meta(limits, total: int, **extra) -> dict:
    return {"op": "parse", "total": total, "max_file_bytes": limits.max_file_bytes,
            "max_pixel_bytes": limits.max_pixel_bytes,
            "max_inflated_bytes": limits.max_inflated_bytes, **extra}


@pytest.fixture
def worker(limits):
    w = WorkerProcess(limits.parse_memory_bytes)
    w.wait_ready(60.0)
    yield w
    w.kill()


def _ask(w: WorkerProcess, meta: dict, blob: bytes) -> tuple[dict, bytes]:
    deadline = time.monotonic() + 30.0
    w.send(meta, blob, deadline)
    return w.recv(deadline)


def _own_descriptors() -> list[str]:
    """Where each of this process's open descriptors points."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the descriptor listdir itself used, closed by now
    return out


def _shared_files(pid: int) -> dict[int, str]:
    """Descriptor -> name of each shared file (memfd) the process ``pid`` holds."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("/memfd:"):
            found[int(fd)] = target
    return found


def test_a_file_over_the_per_file_cap_is_refused_by_the_worker_and_the_worker_serves_on(
        worker, limits, good):
    reply, blob = _ask(worker, _meta(replace(limits, max_file_bytes=len(good) - 1),
                                     len(good)), good)
    assert reply == {"ok": False, "category": LIMIT,
                     "reason": f"limit: request of {len(good)} bytes, over the per-file cap "
                               f"of {len(good) - 1} bytes (max_file_bytes)"}
    assert blob == b""
    reply, _ = _ask(worker, _meta(replace(limits, max_file_bytes=len(good)), len(good)), good)
    assert reply["ok"] and reply["info"]["kind"] == "image"
    assert reply["info"]["rows"] == 32


def test_a_length_declared_past_the_shared_file_is_refused_and_the_worker_serves_on(
        worker, limits, good):
    _channel.write_all(worker.request_fd, good)
    frame = _channel._frame(_meta(limits, len(good) + 4096), len(good) + 4096)
    os.write(worker.proc.stdin.fileno(), frame)
    reply, _ = worker.recv(time.monotonic() + 30.0)
    assert reply["ok"] is False and reply["category"] == MALFORMED
    assert reply["reason"] == (f"malformed file: blob of {len(good) + 4096} bytes declared "
                               "past the end of its shared file")
    reply, _ = _ask(worker, _meta(limits, len(good)), good)
    assert reply["ok"] and reply["info"]["kind"] == "image"


def test_each_worker_holds_only_its_own_shared_files_and_the_request_file_read_only(limits):
    with SafeParser(limits, workers=2) as p:
        p.start()
        for w in p._workers:
            held = _shared_files(w.proc.pid)
            assert sorted(held.values()) == ["/memfd:hepatrack-reply (deleted)",
                                             "/memfd:hepatrack-request (deleted)"]
            for fd, name in held.items():
                flags = next(line for line in
                             Path(f"/proc/{w.proc.pid}/fdinfo/{fd}").read_text().splitlines()
                             if line.startswith("flags:"))
                mode = int(flags.split()[1], 8) & os.O_ACCMODE
                assert mode == (os.O_RDONLY if "request" in name else os.O_RDWR)


def test_the_worker_writes_replies_under_its_memory_limit(worker, limits):
    lines = Path(f"/proc/{worker.proc.pid}/limits").read_text().splitlines()
    size = next(line for line in lines if line.startswith("Max file size")).split()[3:5]
    space = next(line for line in lines if line.startswith("Max address space")).split()[3:5]
    assert size == space == [str(limits.parse_memory_bytes)] * 2


def _die_on(monkeypatch, marker: bytes) -> list[tuple[str, int]]:
    """Make a worker die as soon as it has a request that carries ``marker``; returns the
    (op, pid) of every request sent."""
    sent = []
    real_send = WorkerProcess.send

    def send_then_die(self, meta, blob, deadline):
        doomed = marker in bytes(blob)
        if doomed:  # stopped first, so it cannot answer before it dies
            os.kill(self.proc.pid, signal.SIGSTOP)
        real_send(self, meta, blob, deadline)
        sent.append((meta["op"], self.proc.pid))
        if doomed:  # the request is in the worker's hands: it dies on it
            os.kill(self.proc.pid, signal.SIGKILL)

    monkeypatch.setattr(WorkerProcess, "send", send_then_die)
    return sent


def test_a_worker_killed_mid_file_names_that_file_and_the_next_file_is_parsed(
        limits, good, deadly, monkeypatch):
    sent = _die_on(monkeypatch, b"DIES-HERE")
    with SafeParser(limits) as p:
        results = list(p.parse_many([item("a.dcm", deadly), item("b.dcm", good)]))
    by_name = {r.file if isinstance(r, Rejection) else r.name: r for r in results}
    assert sorted(by_name) == ["a.dcm", "b.dcm"]
    assert isinstance(by_name["a.dcm"], Rejection)
    assert by_name["a.dcm"].reason == ("malformed file: the parser process died (killed by "
                                       "SIGKILL) while reading it")
    assert isinstance(by_name["b.dcm"], ParsedInstance)
    # both headers went in one request; when it died, each file went again alone
    assert [op for op, _ in sent] == ["parse_batch", "parse", "parse"]
    assert sent[1][1] != sent[0][1]  # a new worker after the death


def test_a_large_reply_comes_back_whole_and_its_shared_file_is_emptied(
        limits, good, monkeypatch):
    ds = ct_slice(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), (0, 0, 0))
    ds.compress(RLELossless)
    data = to_bytes(ds)
    with SafeParser(limits) as p:
        inst = p.parse(item("rle.dcm", data))
        monkeypatch.setattr(_channel, "KEEP_BYTES", 1024)
        arr = p.decode(inst)  # 8 KiB of pixels: over the (patched) size kept
        reply_fd, request_fd = p._workers[0].reply_fd, p._workers[0].request_fd
        assert os.fstat(reply_fd).st_size == 0
        assert os.fstat(request_fd).st_size == len(data)
        p.decode(p.parse(item("small.dcm", good)))
        assert os.fstat(request_fd).st_size == len(good)  # emptied, then the smaller file
    assert arr.shape == (1, 64, 64)
    assert np.array_equal(arr[0], np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))


def test_no_descriptor_or_shared_file_is_left_after_deaths_timeouts_and_close(
        limits, good, deadly, monkeypatch):
    before = sorted(_own_descriptors())
    with SafeParser(limits, workers=2) as p:
        with monkeypatch.context() as m:
            _die_on(m, b"DIES-HERE")
            files = [item(f"{n}.dcm", deadly if n == 5 else good) for n in range(12)]
            got = list(p.parse_many(files))
        assert [r.file for r in got if isinstance(r, Rejection)] == ["5.dcm"]
        os.kill(p._workers[0].proc.pid, signal.SIGKILL)
        p._workers[0].proc.wait()
        with pytest.raises(InvalidDicomError, match=r"^dead\.dcm: malformed file: the "):
            p.deidentify(good, name="dead.dcm", secret=b"s" * 32, deidentify=True)
        p.limits = replace(limits, parse_timeout_s=1e-6)
        assert p.parse(item("slow.dcm", good)).category == TIMED_OUT
        p.limits = limits
        gen = p.parse_many([item(f"{n}.dcm", good) for n in range(6)])
        next(gen)
        gen.close()  # abandoned mid-batch: the busy workers are replaced
        assert isinstance(p.parse(item("last.dcm", good)), ParsedInstance)
        shared = [d for d in _own_descriptors() if d.startswith("/memfd:hepatrack")]
        assert len(shared) == len([d for d in before if d.startswith("/memfd:hepatrack")]) + 4
    assert sorted(_own_descriptors()) == before  # two files a worker, none left behind
