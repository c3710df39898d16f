"""A warm feature worker for a long-lived process (the dashboard server).

Starting a ``hepatrack features`` process per upload, or a Dask cluster, costs seconds of
imports before the extraction of one series starts. The dashboard instead keeps one worker
process whose feature modules are already imported: it is forked from a fork server that
preloaded them, so a replacement (after a crash or a timeout) is warm too. Series still run
in a process of their own, so a large CT's arrays never sit in the server's memory and a
crash of the extraction does not take the server down.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

#: imported once in the fork server; every worker forked from it starts with them
PRELOAD = ["analytics.features.batch"]

_lock = threading.Lock()
_executor: ProcessPoolExecutor | None = None


def _ready() -> int:
    import analytics.features.batch  # noqa: F401  (already there when preloaded)

    return os.getpid()


def warm_executor() -> ProcessPoolExecutor:
    """The process's feature worker (one process), started on first use and warming up in
    the background; later calls return the same one."""
    global _executor
    with _lock:
        if _executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
            _executor.submit(_ready)  # start the worker now, not at the first upload
        return _executor


def discard(executor: ProcessPoolExecutor) -> None:
    """Stop ``executor``'s worker at once (a series over its time limit, or a dead worker);
    the next :func:`warm_executor` starts a fresh one."""
    global _executor
    with _lock:
        if _executor is executor:
            _executor = None
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.kill()
    executor.shutdown(wait=False, cancel_futures=True)
