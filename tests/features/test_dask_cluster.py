"""Feature extraction on a site's existing Dask cluster (``--scheduler``).

The test starts a ``LocalCluster`` of two worker processes itself and hands only its
address to the batch, as a site points HepaTrack at its cluster. Six small synthetic CT
series with their SEG are ingested once; the cluster's stored features must equal the
in-process serial run's, each series processed exactly once. A cluster whose workers
cannot read the home directory, a scheduler that cannot be reached and an address that
is not one stop the run with one line naming the path or the address.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import Executor, Future
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.cli import main
from analytics.cohort.export import features_frame
from analytics.config import Settings
from analytics.errors import FeatureError
from analytics.features.batch import (
    check_workers,
    extract_stored_series,
    run_batch,
    worker_check,
)
from analytics.features.extract import EXTRACTOR_VERSION, FeatureSettings
from analytics.ingest.pipeline import ingest_sources
from analytics.store.db import open_store
from analytics.synthetic import (
    DicomIdentity,
    synthesize_visit_volume,
    write_ct_series,
    write_seg,
)
from analytics.synthetic.dicom_writer import derived_uid
from tests.features import counting_loader
from tests.services import free_port

N_SERIES = 6


class InlineExecutor(Executor):
    """Runs each call at once in this process: the serial, in-process path."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _write_series(src: Path, i: int) -> str:
    sv = synthesize_visit_volume(0.7 * i, np.random.default_rng(40 + i), shape=(24, 64, 64),
                                 spacing_mm=(9.0, 6.0, 6.0))
    uid = derived_uid("dask-cluster-test", i, "series")
    ident = DicomIdentity(patient_id=f"DC{i:03d}", patient_name=f"CLUSTER^P{i}",
                          birth_date=date(1960, 1, 1 + i), sex="FM"[i % 2],
                          study_uid=derived_uid("dask-cluster-test", i, "study"),
                          series_uid=uid,
                          frame_of_reference_uid=derived_uid("dask-cluster-test", i, "for"),
                          study_date=date(2024, 3, 4), study_time="101500",
                          accession_number=f"DC{i}")
    files = write_ct_series(sv, src / f"s{i}" / "CT", ident)
    write_seg(sv, files, src / f"s{i}" / "SEG" / "SEG0001.dcm", ident,
              seg_series_uid=derived_uid("dask-cluster-test", i, "seg"),
              seg_sop_uid=derived_uid("dask-cluster-test", i, "seg-instance"))
    return uid


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Settings:
    """A home with six small CT + SEG series ingested (no features yet)."""
    root = tmp_path_factory.mktemp("dask-cluster")
    for i in range(N_SERIES):
        _write_series(root / "src", i)
    settings = Settings(home=root / "home")
    settings.ensure_home()
    store = open_store(settings)
    try:
        report = ingest_sources([root / "src"], settings, store)
    finally:
        store.dispose()
    assert report.series_ingested == N_SERIES and report.rejected == []
    return settings


def _copy(settings: Settings, dest: Path) -> Settings:
    shutil.copytree(settings.home, dest)
    return Settings(home=dest)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two worker processes, started apart from the batch."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as c:
        yield c.scheduler_address


def _frame(settings: Settings) -> pd.DataFrame:
    store = open_store(settings)
    try:
        return features_frame(store).sort_values("series_uid").reset_index(drop=True)
    finally:
        store.dispose()


def test_an_existing_cluster_processes_each_series_once_with_the_serial_results(
        home, cluster, tmp_path) -> None:
    serial = _copy(home, tmp_path / "serial")
    store = open_store(serial)
    try:
        in_process = run_batch(store, serial, executor=InlineExecutor(),
                               loader=counting_loader.LOADER)
    finally:
        store.dispose()
    assert in_process.scheduler is None and len(in_process.series_done) == N_SERIES

    remote = _copy(home, tmp_path / "remote")
    store = open_store(remote)
    seen: list[str] = []
    try:
        report = run_batch(store, remote, scheduler=cluster, loader=counting_loader.LOADER,
                           progress=lambda done, total, uid: seen.append(uid))
    finally:
        store.dispose()
    assert report.scheduler == cluster and report.series_failed == []
    uids = sorted(in_process.series_done)
    assert sorted(report.series_done) == uids and len(set(uids)) == N_SERIES
    assert sorted(seen) == uids  # each series written once by the client
    assert counting_loader.loads(remote) == uids  # and loaded once on the workers

    expected, stored = _frame(serial), _frame(remote)
    assert list(stored["series_uid"]) == uids
    assert stored["liver_volume_ml"].notna().all() and len(stored.columns) > 20
    pd.testing.assert_frame_equal(stored, expected, check_exact=True)


def test_workers_that_cannot_read_the_home_stop_the_run_naming_the_path(
        home, cluster, tmp_path) -> None:
    settings = _copy(home, tmp_path / "client")
    store = open_store(settings)
    # the same database, but a home directory the workers do not have
    elsewhere = Settings(home=tmp_path / "not-shared", db_url=settings.database_url)
    try:
        with pytest.raises(FeatureError, match=r"dask worker tcp://\S+ \(host .+\) cannot read "
                           rf"HEPATRACK_HOME {tmp_path / 'not-shared'}: .*shared"):
            run_batch(store, elsewhere, scheduler=cluster)
    finally:
        store.dispose()
    assert _frame(settings).empty  # nothing was sent, nothing written


@pytest.mark.parametrize("address, expected", [
    ("tcp://127.0.0.1:{port}", "Timed out trying to connect"),
    ("no-port-here", "missing port number"),
], ids=["nothing-listening", "not-an-address"])
def test_a_bad_scheduler_address_is_one_line_naming_the_address(
        home, tmp_path, capsys, address, expected) -> None:
    settings = _copy(home, tmp_path / "h")
    address = address.format(port=free_port())
    code = main(["--home", str(settings.home), "features", "--all", "--scheduler", address,
                 "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith(f"hepatrack features: dask scheduler '{address}' cannot "
                                   "be reached: ")
    assert expected in captured.err and "tcp://host:8786" in captured.err
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1


def test_a_worker_check_names_another_extractor_version() -> None:
    ok = worker_check("/")
    assert ok["home_readable"] is True and ok["extractor_version"] == EXTRACTOR_VERSION
    check_workers({"tcp://10.0.0.5:4000": ok}, Path("/"), "tcp://10.0.0.1:8786")
    old = {**ok, "extractor_version": "0.9"}
    with pytest.raises(FeatureError, match=r"dask worker tcp://10\.0\.0\.5:4000 \(host .+\) "
                       rf"runs feature extractor 0\.9, this client {EXTRACTOR_VERSION}: "
                       "install the same HepaTrack version"):
        check_workers({"tcp://10.0.0.5:4000": old}, Path("/"), "tcp://10.0.0.1:8786")
    assert worker_check("/no/such/home")["home_readable"] is False


def _unreadable(store, settings, series_uid):
    raise PermissionError(13, "Permission denied", "/mnt/pacs/dicom/IM0001.dcm")


def test_a_file_a_worker_cannot_read_fails_that_series_naming_the_file(home) -> None:
    uid = derived_uid("dask-cluster-test", 0, "series")
    outcome = extract_stored_series(uid, home, FeatureSettings(),
                                    loader=f"{__name__}:_unreadable")
    assert outcome["ok"] is False
    assert outcome["reason"].startswith("worker ")
    assert "cannot read /mnt/pacs/dicom/IM0001.dcm: Permission denied" in outcome["reason"]
    assert f"HEPATRACK_HOME {home.home} on shared storage" in outcome["reason"]
