"""A process killed with SIGKILL mid-ingest leaves no partial series; a re-run completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from analytics.ingest.pipeline import ingest_sources
from analytics.store import open_store
from analytics.store.schema import Instance, Series
from tests.ingest.dicom_samples import Study, ct_series, write_folder

ROOT = Path(__file__).resolve().parents[2]

# Runs an ingest in a child process; FAULT names the commit step after which it kills itself.
_CHILD = """
import os, signal, sys
from analytics.config import load_settings
from analytics.store import instances as commit
from analytics.ingest.pipeline import ingest_sources
from analytics.ingest.reader import SafeParser
from analytics.store import open_store

fault = sys.argv[3]
if fault == "after_files":  # files renamed into place, rows not yet committed
    real_place = commit.place_files
    def place_then_die(settings, files):
        real_place(settings, files)
        os.kill(os.getpid(), signal.SIGKILL)
    commit.place_files = place_then_die
elif fault == "while_staging":  # staged and fsynced, not yet renamed
    real_fsync = commit._fsync_dir
    def fsync_then_die(path):
        real_fsync(path)
        if path.name.startswith(commit.STAGING_PREFIX):
            os.kill(os.getpid(), signal.SIGKILL)
    commit._fsync_dir = fsync_then_die
settings = load_settings(sys.argv[1])
store = open_store(settings)
with SafeParser(settings.limits, workers=1) as parser:
    ingest_sources([sys.argv[2]], settings, store, parser=parser)
"""


def _child(home: Path, source: Path, fault: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HEPATRACK_DB_URL", None)
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(home), str(source), fault],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)


def _consistent(settings, store) -> dict[str, int]:
    """Every stored series has exactly its instance rows, and every row its file."""
    with store.session() as s:
        rows = s.execute(select(Series.series_uid, Series.n_instances,
                                func.count(Instance.id))
                         .join(Instance, Instance.series_id == Series.id, isouter=True)
                         .group_by(Series.id)).all()
        paths = s.execute(select(Instance.path)).scalars().all()
    for uid, declared, counted in rows:
        assert declared == counted, f"series {uid}: {declared} declared, {counted} rows"
    assert all((settings.home / p).is_file() for p in paths)
    return {uid: counted for uid, _, counted in rows}


@pytest.mark.timeout(300)
def test_killed_after_files_before_rows_leaves_no_rows_and_rerun_completes(
        tmp_path, settings, parser):
    folder = write_folder(tmp_path / "src", ct_series(Study(), 4))
    proc = _child(settings.home, folder, "after_files")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    store = open_store(settings)
    assert _consistent(settings, store) == {}
    orphans = sorted(settings.dicom_dir.rglob("*.dcm"))
    assert len(orphans) == 4  # placed, never committed: tolerated
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    assert (report.instances, report.series[0]["status"]) == (4, "complete")
    assert sorted(settings.dicom_dir.rglob("*.dcm")) == orphans  # same names, overwritten
    assert sum(_consistent(settings, store).values()) == 4
    store.dispose()


@pytest.mark.timeout(300)
def test_killed_while_staging_leaves_a_stale_folder_that_the_rerun_cleans(
        tmp_path, settings, parser):
    folder = write_folder(tmp_path / "src", ct_series(Study(), 3))
    proc = _child(settings.home, folder, "while_staging")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    staging = [p for p in (settings.home / "tmp").iterdir() if p.name.startswith("stage-")]
    assert len(staging) == 1 and any(staging[0].iterdir())
    assert not list(settings.dicom_dir.rglob("*.dcm"))
    store = open_store(settings)
    assert _consistent(settings, store) == {}
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    assert report.instances == 3
    assert not any(p.name.startswith("stage-") for p in (settings.home / "tmp").iterdir())
    store.dispose()


@pytest.mark.timeout(300)
def test_sigkill_from_outside_mid_batch_then_rerun(tmp_path, settings, parser):
    n_series = 10
    src = tmp_path / "src"
    for k in range(n_series):
        write_folder(src / f"s{k:02d}", ct_series(Study(patient_id=f"P{k % 3}"), 3))
    proc = _child(settings.home, src, "none")
    store = open_store(settings)
    deadline = time.monotonic() + 240
    seen = 0
    while time.monotonic() < deadline and proc.poll() is None:
        with store.session() as s:
            seen = s.scalar(select(func.count(Series.id)))
        if seen >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    partial = _consistent(settings, store)
    assert 1 <= len(partial) < n_series and all(v == 3 for v in partial.values())
    report = ingest_sources([str(src)], settings, store, parser=parser)
    assert report.duplicates == 3 * len(partial)
    assert report.instances == 3 * (n_series - len(partial))
    final = _consistent(settings, store)
    assert len(final) == n_series and set(final.values()) == {3}
    assert len(list(settings.dicom_dir.rglob("*.dcm"))) == 3 * n_series
    store.dispose()
