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


def test_a_worker_killed_mid_file_names_that_file_and_the_next_file_is_parsed(
        limits, good, monkeypatch):
    sent = []
    real_send = WorkerProcess.send

    def send_then_die(self, meta, blob, deadline):
        real_send(self, meta, blob, deadline)
        sent.append(self.proc.pid)
        if len(sent) == 1:  # the request is in the worker's hands: it dies on it
            os.kill(self.proc.pid, signal.SIGKILL)

    monkeypatch.setattr(WorkerProcess, "send", send_then_die)
    with SafeParser(limits) as p:
        results = list(p.parse_many([item("a.dcm", good), item("b.dcm", good)]))
    assert isinstance(results[0], Rejection) and results[0].file == "a.dcm"
    assert results[0].reason == ("malformed file: the parser process died (killed by "
                                 "SIGKILL) while reading it")
    assert isinstance(results[1], ParsedInstance) and results[1].name == "b.dcm"
    assert sent[1] != sent[0]  # b.dcm went to the replacement


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
        limits, good, monkeypatch):
    before = sorted(_own_descriptors())
    kills = []
    real_send = WorkerProcess.send

    def send_then_die(self, meta, blob, deadline):
        real_send(self, meta, blob, deadline)
        if meta.get("op") == "parse" and not kills:
            kills.append(self.proc.pid)
            os.kill(self.proc.pid, signal.SIGKILL)

    with SafeParser(limits, workers=2) as p:
        with monkeypatch.context() as m:
            m.setattr(WorkerProcess, "send", send_then_die)
            got = list(p.parse_many([item(f"{n}.dcm", good) for n in range(4)]))
        assert sum(isinstance(r, Rejection) for r in got) == 1
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
    after = sorted(_own_descriptors())
    assert after == before
    assert not [d for d in after if d.startswith("/memfd:hepatrack")]
