"""Long work off the script thread: ingest, feature extraction, training, PDF packs.

A :class:`Job` runs a function in a daemon thread and records its progress; the page
keeps the job in its session state and polls it from a fragment that reruns every
second (``st.fragment(run_every=...)``), so the page stays responsive. The worker never
calls Streamlit.

Errors: a :class:`HepaTrackError` is kept and shown by the page with ``st.error``; any
other exception is a bug and is re-raised in the script thread by :meth:`Job.raise_bug`
so it surfaces (and fails AppTest's ``at.exception`` check).

At most :data:`MAX_RUNNING` jobs run at once in the server process (the machine's cores
are shared); later ones wait, shown as queued.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from analytics.errors import HepaTrackError

MAX_RUNNING = 2
_SLOTS = threading.BoundedSemaphore(MAX_RUNNING)
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass
class Job:
    """One unit of background work and what it reported."""

    label: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    status: str = QUEUED
    message: str = ""
    fraction: float | None = None
    lines: list[str] = field(default_factory=list)
    result: Any = None
    error: HepaTrackError | None = None
    bug: BaseException | None = None
    bug_trace: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ----------------------------------------------------------------- worker side
    def report(self, message: str, fraction: float | None = None) -> None:
        """Progress from the worker: a message and, when known, the fraction done."""
        with self._lock:
            self.message = message
            if fraction is not None:
                self.fraction = max(0.0, min(1.0, float(fraction)))

    def log(self, line: str) -> None:
        """Add one line (e.g. a file or series finished) to the job's running log."""
        with self._lock:
            self.lines.append(line)

    # ----------------------------------------------------------------- page side
    @property
    def running(self) -> bool:
        return self.status in (QUEUED, RUNNING)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"status": self.status, "message": self.message,
                    "fraction": self.fraction, "lines": list(self.lines),
                    "seconds": self.seconds}

    def raise_bug(self) -> None:
        """Re-raise, in the calling (script) thread, an unexpected worker exception."""
        if self.bug is not None:
            raise RuntimeError(f"background job {self.label!r} failed:\n{self.bug_trace}"
                               ) from self.bug

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (tests and scripts); True if it ended in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def start(label: str, fn: Callable[[Job], Any]) -> Job:
    """Run ``fn(job)`` in a daemon thread; its return value becomes ``job.result``."""
    job = Job(label=label)

    def run() -> None:
        with _SLOTS:
            job.status = RUNNING
            job.started = time.monotonic()
            try:
                job.result = fn(job)
                job.status = DONE
            except HepaTrackError as e:
                job.error = e
                job.status = FAILED
            except BaseException as e:  # a bug: kept and re-raised in the script thread
                job.bug = e
                job.bug_trace = traceback.format_exc()
                job.status = FAILED
            finally:
                job.finished = time.monotonic()

    threading.Thread(target=run, name=f"hepatrack-job-{job.id}", daemon=True).start()
    return job
