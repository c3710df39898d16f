"""The dashboard's warm parse workers: one ingest at a time borrows them, any other starts
its own pool, and they keep running between ingests."""

from __future__ import annotations

from dataclasses import replace

import pytest

from analytics.config import IngestLimits
from analytics.ingest import pipeline, warm
from analytics.ingest.pipeline import ingest_sources
from tests.ingest.dicom_samples import Study, ct_series, write_folder


@pytest.fixture
def warm_pool():
    warm.stop()
    warm.warm_parser(IngestLimits())
    yield warm._pool
    warm.stop()


def test_without_a_warm_pool_an_ingest_borrows_nothing():
    warm.stop()
    with warm.borrow(IngestLimits()) as pool:
        assert pool is None


def test_one_ingest_at_a_time_borrows_the_warm_pool(warm_pool):
    assert warm_pool is not None and len(warm_pool._workers) == warm.pool_size()
    with warm.borrow(IngestLimits()) as first:
        assert first is warm_pool
        with warm.borrow(IngestLimits()) as second:
            assert second is None  # busy: the other ingest starts a pool of its own
    with warm.borrow(IngestLimits()) as again:
        assert again is warm_pool  # released after the first ingest


def test_an_ingest_with_other_limits_does_not_borrow_the_warm_pool(warm_pool):
    with warm.borrow(replace(IngestLimits(), parse_timeout_s=7.0)) as pool:
        assert pool is None
    warm.warm_parser(IngestLimits())  # already running with these limits: kept
    assert warm._pool is warm_pool


def test_ingest_runs_on_the_warm_workers_and_leaves_them_running(tmp_path, settings, store,
                                                                  warm_pool, monkeypatch):
    started: list[object] = []

    class CountedParser(pipeline.SafeParser):
        def __init__(self, *args, **kwargs) -> None:
            started.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pipeline, "SafeParser", CountedParser)
    assert settings.limits == warm_pool.limits
    pids = [w.proc.pid for w in warm_pool._workers]
    folder = write_folder(tmp_path / "upload", ct_series(Study(), 3))
    report = ingest_sources([str(folder)], settings, store)
    assert (report.series_ingested, report.instances, report.rejected) == (1, 3, [])
    assert started == []  # no pool of its own
    assert [w.proc.pid for w in warm_pool._workers] == pids
    assert all(w.proc.poll() is None for w in warm_pool._workers)
    with warm.borrow(settings.limits) as pool:
        assert pool is warm_pool  # free again for the next upload
    with warm.borrow(settings.limits):  # busy: the next ingest starts its own pool
        again = ingest_sources([str(folder)], settings, store)
    assert (again.instances, again.duplicates) == (0, 3) and len(started) == 1
    assert started[0]._workers == []  # and stops it afterwards


def test_stop_ends_the_warm_workers(warm_pool):
    procs = [w.proc for w in warm_pool._workers]
    warm.stop()
    assert warm._pool is None
    assert all(p.poll() is not None for p in procs)


def test_a_warm_worker_killed_while_idle_is_replaced_before_the_next_ingest(
        tmp_path, settings, store, warm_pool):
    victim = warm_pool._workers[0].proc
    victim.kill()
    victim.wait()
    folder = write_folder(tmp_path / "upload", ct_series(Study(), 3))
    report = ingest_sources([str(folder)], settings, store)
    assert (report.instances, report.rejected) == (3, [])  # no file blamed for it
    assert warm_pool._workers[0].proc is not victim
    assert all(w.proc.poll() is None for w in warm_pool._workers)
