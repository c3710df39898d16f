"""Idempotent commit: duplicates, conflicts that never overwrite, races on both backends."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from analytics.ingest.pipeline import ingest_sources
from analytics.store import instances as commit_mod
from analytics.store import open_store
from analytics.store.instances import clean_stale_staging, content_hash, sweep_orphans
from analytics.store.schema import IdentityMap, Instance, Patient, Series, Study
from tests.ingest.dicom_samples import Study as SampleStudy
from tests.ingest.dicom_samples import ct_series, encode, write_folder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(settings):
    s = open_store(settings)
    yield s
    s.dispose()


def _count(store, column) -> int:
    with store.session() as s:
        return s.scalar(select(func.count(column)))


def _stored_hashes(settings, store) -> dict[str, str]:
    with store.session() as s:
        paths = s.execute(select(Instance.path)).scalars().all()
    return {p: hashlib.sha256((settings.home / p).read_bytes()).hexdigest() for p in paths}


def test_same_uid_with_other_content_is_a_conflict_and_nothing_is_overwritten(
        tmp_path, settings, store, parser):
    images = ct_series(SampleStudy(), 3)
    ingest_sources([str(write_folder(tmp_path / "a", images))], settings, store, parser=parser)
    before = _stored_hashes(settings, store)
    changed = images[1]
    changed.PixelData = (np.frombuffer(changed.PixelData, np.int16) + 7).tobytes()
    folder = write_folder(tmp_path / "b", [changed])
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    (conflict,) = report.conflicts
    assert "already stored with different content" in conflict.reason
    assert report.instances == 0 and report.duplicates == 0
    assert _stored_hashes(settings, store) == before
    assert _count(store, Instance.id) == 3


def test_series_of_another_patient_is_a_conflict(tmp_path, settings, store, parser):
    images = ct_series(SampleStudy(), 2)
    ingest_sources([str(write_folder(tmp_path / "a", images))], settings, store, parser=parser)
    intruder = ct_series(SampleStudy(patient_id="MRN-999"), 1,
                         series_uid=images[0].SeriesInstanceUID)[0]
    intruder.StudyInstanceUID = images[0].StudyInstanceUID
    report = ingest_sources([str(write_folder(tmp_path / "b", [intruder]))], settings, store,
                            parser=parser)
    (conflict,) = report.conflicts
    assert "already stored for another patient" in conflict.reason
    assert _count(store, Instance.id) == 2 and _count(store, Patient.id) == 1


def test_same_sop_uid_under_another_patient_is_a_conflict(tmp_path, settings, store, parser):
    images = ct_series(SampleStudy(), 2)
    ingest_sources([str(write_folder(tmp_path / "a", images))], settings, store, parser=parser)
    other = ct_series(SampleStudy(patient_id="MRN-777"), 1)[0]
    other.SOPInstanceUID = images[0].SOPInstanceUID
    other.file_meta.MediaStorageSOPInstanceUID = images[0].SOPInstanceUID
    report = ingest_sources([str(write_folder(tmp_path / "b", [other]))], settings, store,
                            parser=parser)
    (conflict,) = report.conflicts
    assert "already stored for another patient" in conflict.reason
    assert _count(store, Instance.id) == 2


def test_switching_deidentification_for_a_stored_patient_is_a_conflict(
        tmp_path, settings, store, parser):
    folder = write_folder(tmp_path / "a", ct_series(SampleStudy(), 2))
    ingest_sources([str(folder)], settings, store, parser=parser)
    other = write_folder(tmp_path / "b", ct_series(SampleStudy(), 2))
    report = ingest_sources([str(other)], settings, store, parser=parser, deidentify=False)
    assert len(report.conflicts) == 2
    assert "another pseudonym" in report.conflicts[0].reason
    assert _count(store, IdentityMap.id) == 1


def test_content_hash_ignores_file_meta_and_preamble_only():
    ds = ct_series(SampleStudy(), 1)[0]
    a = encode(ds)
    ds.file_meta.ImplementationClassUID = "1.2.3.4.5"
    ds.file_meta.SourceApplicationEntityTitle = "OTHER_AE"
    b = encode(ds, preamble=b"\x7fELF" + b"\0" * 124)
    assert a != b and content_hash(a) == content_hash(b)
    ds.PixelData = (np.frombuffer(ds.PixelData, np.int16) + 1).tobytes()
    assert content_hash(encode(ds)) != content_hash(a)


def test_stale_staging_folders_are_cleaned_live_ones_kept(settings):
    tmp = settings.home / "tmp"
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    names = {"dead": f"stage-{host}-{dead}-aaaa", "alive": f"stage-{host}-{os.getpid()}-bbbb",
             "elsewhere": "stage-otherhost-1-cccc", "old": "stage-otherhost-2-dddd"}
    for name in names.values():
        (tmp / name).mkdir(parents=True)
        (tmp / name / "000000.part").write_bytes(b"x")
    old = time.time() - 3 * 24 * 3600
    os.utime(tmp / names["old"], (old, old))
    assert clean_stale_staging(settings) == 2
    assert sorted(p.name for p in tmp.iterdir()) == sorted([names["alive"], names["elsewhere"]])


def test_sweep_removes_only_old_unreferenced_files(tmp_path, settings, store, parser):
    ingest_sources([str(write_folder(tmp_path / "a", ct_series(SampleStudy(), 2)))], settings,
                   store, parser=parser)
    orphan_old = settings.dicom_dir / "ab" / "orphan-old.dcm"
    orphan_new = settings.dicom_dir / "ab" / "orphan-new.dcm"
    orphan_old.parent.mkdir(parents=True)
    orphan_old.write_bytes(b"x")
    orphan_new.write_bytes(b"y")
    old = time.time() - 3 * 24 * 3600
    os.utime(orphan_old, (old, old))
    for p in _stored_hashes(settings, store):
        os.utime(settings.home / p, (old, old))
    assert sweep_orphans(store, settings) == 1
    assert not orphan_old.exists() and orphan_new.exists()
    assert all((settings.home / p).exists() for p in _stored_hashes(settings, store))


def test_losing_a_commit_race_retries_and_reports_already_stored(
        tmp_path, settings, db_url, parser, monkeypatch):
    """Another writer commits the series between this writer's plan and its insert."""
    settings = dataclasses.replace(settings, db_url=db_url)
    store, rival = open_store(settings), open_store(settings)
    images = ct_series(SampleStudy(), 3)
    folder = write_folder(tmp_path / "src", images)
    real_plan = commit_mod._plan
    state = {"raced": False}

    def plan_then_lose_the_race(s, unit, result):
        new = real_plan(s, unit, result)
        if new and not state["raced"]:
            state["raced"] = True
            won = commit_mod.commit_series(rival, settings, unit)  # the rival commits first
            assert won.stored == 3
        return new

    monkeypatch.setattr(commit_mod, "_plan", plan_then_lose_the_race)
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    assert state["raced"]
    assert (report.instances, report.duplicates, report.conflicts) == (0, 3, [])
    assert _count(store, Instance.id) == 3 and _count(store, Series.id) == 1
    assert _count(store, Study.id) == 1 and _count(store, Patient.id) == 1
    files = [p for p in settings.dicom_dir.rglob("*.dcm")]
    assert len(files) == 3  # both wrote the same generated names: one copy each
    store.dispose()
    rival.dispose()


_CHILD = """
import json, sys, time
from pathlib import Path
from analytics.config import load_settings
from analytics.ingest.pipeline import ingest_sources
from analytics.ingest.reader import SafeParser
from analytics.store import open_store
settings = load_settings(sys.argv[2])
store = open_store(settings)
with SafeParser(settings.limits, workers=1) as parser:
    go = Path(sys.argv[1])
    Path(f"{go}.{sys.argv[4]}.ready").touch()
    while not go.exists():  # both processes start ingesting at the same moment
        time.sleep(0.01)
    report = ingest_sources([sys.argv[3]], settings, store, parser=parser)
print(json.dumps(report.as_dict()))
"""


def test_two_processes_ingesting_the_same_series_leave_one_copy(tmp_path, settings, db_url):
    settings = dataclasses.replace(settings, db_url=db_url)
    open_store(settings).dispose()  # migrate once, before the race
    folder = write_folder(tmp_path / "src", ct_series(SampleStudy(), 6))
    go = tmp_path / "go"
    env = {**os.environ, "HEPATRACK_DB_URL": db_url, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(go), str(settings.home),
                               str(folder), str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, cwd=ROOT) for n in range(2)]
    deadline = time.monotonic() + 240
    while len(list(tmp_path.glob("go.*.ready"))) < 2 and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    reports = [json.loads(o[0]) for o in outs]
    assert sorted(r["instances"] for r in reports) == [0, 6]  # a series commits as one unit
    assert sum(r["duplicates"] for r in reports) == 6
    assert all(r["conflicts"] == [] for r in reports)
    store = open_store(settings)
    assert _count(store, Instance.id) == 6 and _count(store, Series.id) == 1
    with store.session() as s:
        assert s.scalar(select(Series.n_instances)) == 6
    assert len(list(settings.dicom_dir.rglob("*.dcm"))) == 6
    store.dispose()


def test_every_file_of_a_long_series_is_placed_with_its_bytes_and_the_staging_removed(
        settings):
    settings.ensure_home()
    files = [(f"dicom/aa/series/{n:04d}.dcm", bytes([n % 251]) * (1000 + n))
             for n in range(150)]  # more than the files kept open while they are flushed
    placed = commit_mod.place_files(settings, files)
    assert placed == [settings.home / rel for rel, _ in files]
    assert [p.read_bytes() for p in placed] == [data for _, data in files]
    assert not any((settings.home / "tmp").glob(f"{commit_mod.STAGING_PREFIX}*"))


def test_a_file_that_cannot_be_flushed_fails_the_placement_and_nothing_is_renamed(
        settings, monkeypatch):
    settings.ensure_home()
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 7:
            raise OSError(5, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(commit_mod.os, "fsync", fsync)
    files = [(f"dicom/bb/series/{n:04d}.dcm", b"x" * 100) for n in range(20)]
    with pytest.raises(OSError, match="Input/output error"):
        commit_mod.place_files(settings, files)
    assert not any((settings.home / rel).exists() for rel, _ in files)
    assert not any((settings.home / "tmp").glob(f"{commit_mod.STAGING_PREFIX}*"))
