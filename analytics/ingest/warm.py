"""A warm pool of parse workers for a long-lived process (the dashboard server).

Each ingest call without a pool of its own starts parse workers, and each worker spends
about half a CPU-second importing pydicom before it reads a file: on a 5-second upload
budget that is the largest fixed cost. The dashboard starts one pool when its Ingest page
opens (:func:`warm_parser`); an ingest then borrows it (:func:`borrow`) instead of starting
its own. One ingest uses it at a time: another that runs meanwhile, or one with other
limits, starts its own pool as before, so users never wait for each other. The workers
keep every limit (memory, time) of a fresh pool; one that dies is replaced by the pool.
The command line never starts a warm pool.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator

from analytics.config import IngestLimits
from analytics.errors import IngestError
from analytics.ingest.reader import SafeParser

__all__ = ["borrow", "stop", "warm_parser"]

_lock = threading.Lock()  # guards _pool
_in_use = threading.Lock()  # held while an ingest borrows the pool
_pool: SafeParser | None = None


def pool_size() -> int:
    """Workers of an ingest's pool: two at most (the machine's other core runs the rest)."""
    return max(1, min(2, os.cpu_count() or 1))


def warm_parser(limits: IngestLimits | None = None) -> None:
    """Start the warm pool (with ``limits``, the defaults when None) unless it runs.

    A pool that runs with other limits is replaced. A failure to start is not raised:
    ingest then starts its own pool and reports the problem there.
    """
    global _pool
    limits = limits or IngestLimits()
    with _lock:
        if _pool is not None and _pool.limits == limits:
            return
        if not _in_use.acquire(blocking=False):
            return  # an ingest is using the old pool: it is replaced next time
        try:
            if _pool is not None:
                _pool.close()
                _pool = None
            pool = SafeParser(limits, workers=pool_size())
            try:
                pool.start()
            except IngestError:
                pool.close()
                return
            _pool = pool
        finally:
            _in_use.release()


@contextlib.contextmanager
def borrow(limits: IngestLimits) -> Iterator[SafeParser | None]:
    """The warm pool for one ingest, or None when there is none with ``limits`` or another
    ingest is using it (the caller then starts a pool of its own)."""
    with _lock:
        pool = _pool if _pool is not None and _pool.limits == limits else None
        if pool is not None and not _in_use.acquire(blocking=False):
            pool = None
    if pool is not None:
        try:
            pool.replace_exited()  # a worker killed while the pool waited
        except IngestError:
            _in_use.release()
            pool = None
    if pool is None:
        yield None
        return
    try:
        yield pool
    finally:
        _in_use.release()


def stop() -> None:
    """Stop the warm pool's workers (at exit, and in tests)."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool.close()
            _pool = None


atexit.register(stop)
