"""A warm feature worker for a long-lived process (the dashboard server).

Starting a ``hepatrack features`` process per upload, or a Dask cluster, costs seconds of
imports before the extraction of one series starts. The dashboard instead keeps one worker
process with the feature modules already imported, and sends it one series at a time.
Series still run in a process of their own, so a large CT's arrays never sit in the
server's memory and a crash of the extraction does not take the server down.

The worker is a plain ``python`` child speaking length-prefixed pickles over its stdin and
stdout (both ends are this package), not a multiprocessing child: those re-run the
parent's main script, which in the dashboard is the Streamlit app.
"""

from __future__ import annotations

import importlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, BinaryIO

#: imported by the worker before it takes work
PRELOAD = "analytics.features.batch"
_HEADER = struct.Struct("<Q")

_lock = threading.Lock()
_executor: WarmWorker | None = None


def _write(out: BinaryIO, obj: Any) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(blob)) + blob)
    out.flush()


def _read(inp: BinaryIO) -> Any:
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the feature worker closed its pipe")
    size = _HEADER.unpack(head)[0]
    blob = inp.read(size)
    if len(blob) < size:
        raise EOFError("the feature worker closed its pipe mid-reply")
    return pickle.loads(blob)  # frames come only from this module, at both ends


class WarmWorker(Executor):
    """One worker process running submitted calls one after another, in order."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from analytics.features.warm import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._pending: deque[Future] = deque()
        self._lock = threading.Lock()
        self._broken: str | None = None
        threading.Thread(target=self._replies, name="features-warm-worker",
                         daemon=True).start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        with self._lock:
            if self._broken:
                raise BrokenProcessPool(self._broken)
            self._pending.append(future)
            try:
                _write(self._proc.stdin, (fn, args, kwargs))
            except OSError as e:
                self._pending.remove(future)
                raise BrokenProcessPool(f"the feature worker is gone ({e})") from e
        return future

    def _replies(self) -> None:
        while True:
            try:
                ok, value = _read(self._proc.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as e:
                self._fail_all(f"the feature worker died ({e}; exit {self._proc.poll()})")
                return
            with self._lock:
                future = self._pending.popleft() if self._pending else None
            if future is None:
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            self._broken = reason
            pending, self._pending = list(self._pending), deque()
        for future in pending:
            if not future.done():
                future.set_exception(BrokenProcessPool(reason))

    def kill(self) -> None:
        """Stop the worker now (it may be busy with a series)."""
        self._proc.kill()
        self._proc.wait()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._proc.poll() is None and self._proc.stdin is not None:
            self._proc.stdin.close()  # the worker ends after its current call
            if wait:
                self._proc.wait()


def serve() -> None:
    """The worker's loop: read a call, run it, write ``(ok, result or exception)``."""
    importlib.import_module(PRELOAD)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing a library prints may corrupt the reply stream
    inp = sys.stdin.buffer
    while True:
        try:
            fn, args, kwargs = _read(inp)
        except EOFError:
            return
        try:
            reply = (True, fn(*args, **kwargs))
        except Exception as e:  # the caller's future raises it
            reply = (False, e)
        try:
            _write(out, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            _write(out, (False, RuntimeError(f"unpicklable reply: {type(e).__name__}: {e}")))


def warm_executor() -> WarmWorker:
    """The process's feature worker, started on first use (it imports the feature modules
    while the caller goes on); later calls return the same one while it lives."""
    global _executor
    with _lock:
        if _executor is None or _executor._broken or _executor._proc.poll() is not None:
            _executor = WarmWorker()
        return _executor


def discard(executor: WarmWorker) -> None:
    """Stop ``executor``'s worker at once (a series over its time limit, or a dead worker);
    the next :func:`warm_executor` starts a fresh one."""
    global _executor
    with _lock:
        if _executor is executor:
            _executor = None
    executor.kill()
