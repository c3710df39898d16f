"""Background jobs: each user gets a fair share of the slots, and jobs of ended sessions
stop. The slow jobs are PACS retrievals from a local server that trickles its reply."""

from __future__ import annotations

import threading
import time

import pytest

from analytics.config import PacsSettings
from analytics.errors import PacsError
from analytics.ingest.dicomweb import PacsClient
from tests.ingest.slow_pacs import trickling_server
from ui import jobs

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"


def _until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.timeout(90)
def test_a_second_users_upload_runs_while_the_first_users_slow_pacs_links_take_their_share():
    with trickling_server("body", interval_s=0.5, max_s=45) as slow:
        pacs = PacsSettings(url=slow.url, connect_timeout_s=2.0, read_timeout_s=2.0,
                            max_retries=0, retrieval_deadline_s=4.0)

        def link(job: jobs.Job):
            job.report("retrieving from the PACS")
            with PacsClient(pacs) as client:
                return client.retrieve_series(STUDY, SERIES)

        first = jobs.start("PACS link", link, owner="dr.slow", alive=lambda: True)
        second = jobs.start("PACS link", link, owner="dr.slow", alive=lambda: True)
        _until(lambda: first.status == jobs.RUNNING)
        upload = jobs.start("Ingest", lambda job: len(b"x" * 2048), owner="dr.quick",
                            alive=lambda: True)
        assert upload.wait(timeout=20) and upload.status == jobs.DONE and upload.result == 2048
        assert second.status == jobs.QUEUED  # one user's share is one slot
        assert first.wait(timeout=30) and second.wait(timeout=30)
    # the upload finished while the slow user's jobs held (or waited for) their share
    assert upload.finished < first.finished and second.started >= first.finished
    for job in (first, second):
        assert isinstance(job.error, PacsError)
        assert "within its 4 s deadline (retrieval_deadline_s)" in str(job.error)


def test_a_queued_job_whose_session_ended_never_starts():
    release = threading.Event()
    ran = threading.Event()
    session = {"alive": True}
    holding = jobs.start("Training", lambda job: release.wait(30), owner="dr.gone",
                         alive=lambda: True)
    _until(lambda: holding.status == jobs.RUNNING)
    queued = jobs.start("MDT pack", lambda job: ran.set(), owner="dr.gone",
                        alive=lambda: session["alive"])
    assert queued.status == jobs.QUEUED
    session["alive"] = False
    assert queued.wait(timeout=10)
    release.set()
    assert holding.wait(timeout=10) and holding.status == jobs.DONE
    assert isinstance(queued.error, jobs.JobCancelled) and not ran.is_set()
    assert "browser session ended" in str(queued.error)


def test_a_running_job_stops_at_its_next_report_once_its_session_ended():
    session = {"alive": True}
    reports = []

    def work(job: jobs.Job) -> str:
        for n in range(600):
            job.report(f"step {n}")
            reports.append(n)
            time.sleep(0.05)
        return "finished"

    job = jobs.start("Features", work, owner="dr.left", alive=lambda: session["alive"])
    _until(lambda: len(reports) > 3)
    session["alive"] = False
    assert job.wait(timeout=10)
    assert job.status == jobs.FAILED and isinstance(job.error, jobs.JobCancelled)
    assert job.result is None and len(reports) < 600


def test_a_session_counts_as_ended_only_once_it_has_been_gone_for_the_grace_period(
        monkeypatch):
    from types import SimpleNamespace

    from streamlit import runtime

    connected = {"s-1": True}
    server = SimpleNamespace(is_active_session=lambda sid: connected.get(sid, False))
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", lambda: server)
    alive = jobs.session_alive("s-1", grace_s=0.5)
    assert alive()
    connected["s-1"] = False
    assert alive()  # a reconnect within the grace period keeps the jobs
    _until(lambda: not alive(), timeout=10)
    connected["s-1"] = True
    assert alive()


def test_a_page_polls_its_job_only_while_it_runs_or_waits():
    assert jobs.poll_every(None) is None  # no job: nothing to poll
    gate = threading.Event()
    job = jobs.start("poll", lambda j: gate.wait(30), owner="s-poll")
    try:
        assert jobs.poll_every(job) == jobs.POLL_S
    finally:
        gate.set()
    assert job.wait(30)
    assert jobs.poll_every(job) is None  # ended: the page's own rerun draws the result
