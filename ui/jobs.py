"""Long work off the script thread: ingest, feature extraction, training, PDF packs.

A :class:`Job` runs a function in a daemon thread and records its progress; the page
keeps the job in its session state and polls it from a fragment that reruns every
second (``st.fragment(run_every=...)``), so the page stays responsive. The worker never
calls Streamlit.

Errors: a :class:`HepaTrackError` is kept and shown by the page with ``st.error``; any
other exception is a bug and is re-raised in the script thread by :meth:`Job.raise_bug`
so it surfaces (and fails AppTest's ``at.exception`` check).

At most :data:`MAX_RUNNING` jobs run at once in the server process (the machine's cores
are shared), and at most :data:`MAX_PER_USER` of them for one user, so one user's slow jobs
(a trickling PACS, say) can never take every slot; later ones wait, shown as queued.

A job belongs to the browser session that started it. Once that session has been gone
for :data:`SESSION_GRACE_S` seconds a queued job never starts and a running one stops at
its next progress report (:class:`JobCancelled`); nobody is left to read its result.
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
from ui.session import current_viewer

MAX_RUNNING = 2
#: one user's share of the slots: the others stay free for everyone else
MAX_PER_USER = 1
#: how long a session may be gone (a network blip, a reconnect) before its jobs stop
SESSION_GRACE_S = 60.0
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
_POLL_S = 0.5

_slots = threading.Condition()
_running_by_owner: dict[str, int] = {}


class JobCancelled(HepaTrackError):
    """The job's session ended, so the job stopped (or never started)."""


def _running_total() -> int:
    return sum(_running_by_owner.values())


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
    owner: str = "anonymous"
    alive: Callable[[], bool] = field(default=lambda: True, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ----------------------------------------------------------------- worker side
    def report(self, message: str, fraction: float | None = None) -> None:
        """Progress from the worker: a message and, when known, the fraction done.

        Raises
        ------
        JobCancelled
            If the session that started the job has ended: the work stops here.
        """
        self.check_cancelled()
        with self._lock:
            self.message = message
            if fraction is not None:
                self.fraction = max(0.0, min(1.0, float(fraction)))

    def log(self, line: str) -> None:
        """Add one line (e.g. a file or series finished) to the job's running log."""
        with self._lock:
            self.lines.append(line)

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled or its session ended."""
        if not self._cancelled.is_set() and not self.alive():
            self._cancelled.set()
        if self._cancelled.is_set():
            raise JobCancelled(f"background job {self.label!r} of {self.owner} stopped: its "
                               "browser session ended")

    def cancel(self) -> None:
        """Ask the job to stop at its next progress report (a queued job never starts)."""
        self._cancelled.set()
        with _slots:
            _slots.notify_all()

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


#: seconds between a page's polls of its job while the job runs (none once it has ended)
POLL_S = 0.25


def poll_every(job: Job | None) -> float | None:
    """How often a page's job fragment reruns: every :data:`POLL_S` while ``job`` runs
    (or waits for a slot), never when there is no job or it has ended (the page's full
    rerun then draws the result; nothing is left to wait for)."""
    return POLL_S if job is not None and job.running else None


def _acquire(job: Job) -> None:
    """Wait for a free slot within the job's owner's share.

    Raises
    ------
    JobCancelled
        If the job is cancelled, or its session ends, while it waits.
    """
    with _slots:
        while True:
            job.check_cancelled()
            if (_running_total() < MAX_RUNNING
                    and _running_by_owner.get(job.owner, 0) < MAX_PER_USER):
                _running_by_owner[job.owner] = _running_by_owner.get(job.owner, 0) + 1
                return
            _slots.wait(_POLL_S)  # polled: a session's end sends no notification


def _release(job: Job) -> None:
    with _slots:
        left = _running_by_owner.get(job.owner, 0) - 1
        if left > 0:
            _running_by_owner[job.owner] = left
        else:
            _running_by_owner.pop(job.owner, None)
        _slots.notify_all()


def session_alive(session_id: str, grace_s: float = SESSION_GRACE_S) -> Callable[[], bool]:
    """A check that is False once the Streamlit session has been gone for ``grace_s``."""
    gone_since: list[float] = []

    def alive() -> bool:
        from streamlit import runtime

        if not runtime.exists():
            return True  # no server (AppTest, scripts): nothing to outlive
        if runtime.get_instance().is_active_session(session_id):
            gone_since.clear()
            return True
        if not gone_since:
            gone_since.append(time.monotonic())
        return time.monotonic() - gone_since[0] < grace_s

    return alive


def _current_owner() -> tuple[str, Callable[[], bool]]:
    """The signed-in user of the calling script run and a check that its session lives."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    viewer = current_viewer() if ctx is not None else None
    owner = viewer.username if viewer is not None else (ctx.session_id if ctx else "anonymous")
    return owner, session_alive(ctx.session_id) if ctx is not None else (lambda: True)


def start(label: str, fn: Callable[[Job], Any], *, owner: str | None = None,
          alive: Callable[[], bool] | None = None) -> Job:
    """Run ``fn(job)`` in a daemon thread; its return value becomes ``job.result``.

    Parameters
    ----------
    label
        What the job does, for the status box.
    fn
        The work; it reports progress with ``job.report`` (which stops a cancelled job).
    owner
        Whose share of the slots the job uses; default the signed-in user of the calling
        script run (else its session).
    alive
        False once nobody is left to read the result; default: the calling session is
        still connected (or was within :data:`SESSION_GRACE_S`).
    """
    if owner is None or alive is None:
        found_owner, found_alive = _current_owner()
        owner = found_owner if owner is None else owner
        alive = found_alive if alive is None else alive
    job = Job(label=label, owner=owner, alive=alive)

    def run() -> None:
        try:
            _acquire(job)
        except JobCancelled as e:
            job.error, job.status, job.finished = e, FAILED, time.monotonic()
            return
        try:
            job.status = RUNNING
            job.started = time.monotonic()
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
            _release(job)

    job.message = "queued: waiting for a free slot"
    threading.Thread(target=run, name=f"hepatrack-job-{job.id}", daemon=True).start()
    return job
