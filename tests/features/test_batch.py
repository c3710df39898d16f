"""Batch extraction on a real dask.distributed cluster, the store as single writer.

One LocalCluster run (2 worker processes) and one run on a scheduler and two workers
started with the ``dask`` CLI on 127.0.0.1 must write the same feature values, equal to
the in-process ``extract_series_features`` results.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from analytics.cli import main
from analytics.config import Settings
from analytics.features import warm
from analytics.features.batch import SeriesTimeout, run_batch
from analytics.features.extract import EXTRACTOR_VERSION, extract_series_features
from analytics.store.db import open_store
from analytics.store.schema import Feature, FeatureRun, Mask, Patient, Series, Study
from tests.features import npz_loader
from tests.features.phantoms import abdomen
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"spacing_mm": (5.0, 3.0, 3.0), "noise_hu": 6.0}


def _add_series(store, uid: str, *, patient: str = "P1", status: str = "complete",
                phase: str | None = None) -> None:
    with store.session() as s:
        p = s.scalar(select(Patient).where(Patient.pseudonym == patient))
        if p is None:
            p = Patient(pseudonym=patient)
            s.add(p)
            s.flush()
        st = Study(study_uid=f"{uid}.0", patient_id=p.id)
        s.add(st)
        s.flush()
        s.add(Series(series_uid=uid, source_key=uid[-16:], study_id=st.id, modality="CT",
                     storage_dir=f"dicom/{uid}", status=status, contrast_phase=phase))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three stored series: two with SEG masks (different phases), one without masks;
    plus one whose pixel data is missing (must fail, the others go on)."""
    home = tmp_path_factory.mktemp("batch-home")
    settings = Settings(home=home)
    settings.ensure_home()
    store = open_store(settings)
    uids = {}
    for i, (phase, with_masks) in enumerate([("unenhanced", True), ("portal_venous", True),
                                              ("unenhanced", False)]):
        ph = abdomen(phase=phase, seed=i, liver_hu=58.0 - 10 * i, **SMALL)
        uid = f"1.2.826.0.1.3680043.8.498.10{i}"
        vol = ph.volume(phase)
        vol.series_uid = uid
        masks = ph.masks("liver", "spleen", "lesion") if with_masks else None
        npz_loader.save(settings, vol, masks)
        _add_series(store, uid, phase=phase)  # the phase ingest stored
        uids[uid] = (vol, masks, ph)
    broken = "1.2.826.0.1.3680043.8.498.199"
    _add_series(store, broken, patient="P2")
    _add_series(store, "1.2.826.0.1.3680043.8.498.198", status="invalid")
    store.dispose()
    return settings, uids, broken


def _features(store) -> dict[tuple[str, str], float | None]:
    with store.session() as s:
        rows = s.execute(select(Series.series_uid, Feature.name, Feature.value).join(
            Feature, Feature.series_id == Series.id)).all()
    return {(u, n): v for u, n, v in rows}


def _fresh_copy(settings: Settings, tmp_path: Path) -> Settings:
    """Same npz files, empty copy of the store (so each run starts from scratch)."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(settings.home, home)
    return Settings(home=home)


@pytest.fixture(scope="module")
def local_run(cohort, tmp_path_factory):
    """One LocalCluster run (2 worker processes); returns the stored feature values."""
    base, _uids, _broken = cohort
    settings = _fresh_copy(base, tmp_path_factory.mktemp("local"))
    store = open_store(settings)
    seen: list = []
    report = run_batch(store, settings, workers=2, loader=npz_loader.LOADER,
                       progress=lambda d, t, u: seen.append((d, t, u)))
    values = _features(store)
    yield values, report, seen, store, settings
    store.dispose()


def test_local_cluster_writes_features_and_records_failures(cohort, local_run,
                                                            dask_cli) -> None:
    _base, uids, broken = cohort
    stored, report, seen, store, settings = local_run
    assert sorted(report.series_done) == sorted(uids)
    assert report.series_failed == [{"series_uid": broken, "reason": report.series_failed[0][
        "reason"]}]
    assert "no pixel data" in report.series_failed[0]["reason"]
    assert [d for d, _, _ in seen] == [1, 2, 3, 4] and {t for _, t, _ in seen} == {4}

    for uid, (vol, masks, _ph) in uids.items():
        local = extract_series_features(vol, masks)
        for name, fv in local.values.items():
            assert stored[(uid, name)] == pytest.approx(fv.value, rel=1e-9, abs=1e-12) if (
                fv.value is not None) else stored[(uid, name)] is None, name
    with store.session() as s:
        runs = {r.series_id: r for r in s.scalars(select(FeatureRun))}
        statuses = sorted(r.status for r in runs.values())
        assert statuses == ["done", "done", "done", "failed"]
        assert all(r.extractor_version == EXTRACTOR_VERSION for r in runs.values())
        # the unmasked series was segmented automatically: one auto masks row, flags set
        auto_uid = list(uids)[2]
        sid = s.scalar(select(Series.id).where(Series.series_uid == auto_uid))
        mask = s.scalar(select(Mask).where(Mask.series_id == sid))
        engine = f"classical-v4 (HepaTrack extractor {EXTRACTOR_VERSION})"
        assert (mask.format, mask.automatic, mask.method) == ("auto", True, engine)
        flags = s.scalar(select(Feature.flags).where(Feature.series_id == sid,
                                                     Feature.name == "liver_volume_ml"))
        assert flags["automatic_segmentation"] is True
        assert flags["segmentation_engine"] == engine
        assert runs[sid].settings["mask_method"] == engine
        assert runs[sid].settings["segmentation"] == "auto"
        unit = s.scalar(select(Feature.unit).where(Feature.series_id == sid,
                                                   Feature.name == "liver_volume_ml"))
        assert unit == "mL"

    # resumable: a second run skips the done series and retries only the failed one
    again = run_batch(store, settings, scheduler=dask_cli, loader=npz_loader.LOADER)
    assert sorted(again.series_skipped) == sorted(uids)
    assert [f["series_uid"] for f in again.series_failed] == [broken]
    with store.session() as s:
        n_rows = s.scalar(select(func.count()).select_from(Feature))
        n_runs = s.scalar(select(func.count()).select_from(FeatureRun))
    assert n_rows == len(stored) and n_runs == 4


@contextlib.contextmanager
def _dask_cli_cluster(n_workers: int = 2):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    address = f"tcp://127.0.0.1:{port}"
    try:
        for _ in range(n_workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address,
                 "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="5s") as c:
                    c.wait_for_workers(n_workers, timeout=30)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def dask_cli():
    """A scheduler and two workers started with the dask CLI on 127.0.0.1."""
    with _dask_cli_cluster(2) as address:
        yield address


def test_external_scheduler_gives_the_same_results(cohort, local_run, dask_cli,
                                                   tmp_path) -> None:
    base, _uids, broken = cohort
    remote_settings = _fresh_copy(base, tmp_path / "b")
    store_b = open_store(remote_settings)
    report = run_batch(store_b, remote_settings, scheduler=dask_cli,
                       loader=npz_loader.LOADER)
    assert report.scheduler == dask_cli
    a, b = local_run[0], _features(store_b)
    assert a.keys() == b.keys() and len(a) > 3 * 15
    for key, va in a.items():
        vb = b[key]
        assert (va is None and vb is None) or va == pytest.approx(vb, rel=1e-12), key
    assert [f["series_uid"] for f in report.series_failed] == [broken]
    store_b.dispose()


def test_cli_features_json_contract(cohort, dask_cli, tmp_path, capsys, monkeypatch) -> None:
    base, uids, broken = cohort
    settings = _fresh_copy(base, tmp_path)
    one = next(iter(uids))
    monkeypatch.setenv("HEPATRACK_FEATURES_LOADER", npz_loader.LOADER)
    code = main(["--home", str(settings.home), "features", "--series", one, "--scheduler",
                 dask_cli, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["series_done"] == 1 and out["series_failed"] == [] and out["series_skipped"] == 0
    assert isinstance(out["seconds"], float)
    code = main(["--home", str(settings.home), "features", "--series", broken, "--scheduler",
                 dask_cli, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["series_failed"][0]["series_uid"] == broken
    code = main(["--home", str(settings.home), "features", "--series", "1.2.3.404",
                 "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "1.2.3.404 is not in the store" in err


def test_values_match_truth_through_the_batch(cohort, local_run) -> None:
    _base, uids, _ = cohort
    first = next(iter(uids))
    stored = local_run[0]
    ph = uids[first][2]
    assert stored[(first, "liver_volume_ml")] == pytest.approx(ph.truth["liver_volume_ml"])
    assert stored[(first, "liver_hu_mean")] == pytest.approx(ph.truth["liver_hu_mean"], abs=2)
    assert np.isfinite(stored[(first, "liver_surface_nodularity")])


def test_one_series_runs_in_process_with_the_same_values_as_the_batch(
        cohort, local_run, tmp_path) -> None:
    base, uids, _broken = cohort
    settings = _fresh_copy(base, tmp_path)
    store = open_store(settings)
    try:
        for uid in uids:
            report = run_batch(store, settings, series_uids=[uid], workers=2,
                               loader=npz_loader.LOADER)
            assert report.series_done == [uid] and report.series_failed == []
            assert report.scheduler is None  # no cluster was started for one series
        one_by_one, batch = _features(store), local_run[0]
        batch = {k: v for k, v in batch.items() if k[0] in uids}
        assert one_by_one.keys() == batch.keys() and len(batch) > 3 * 15
        for key, value in batch.items():
            assert one_by_one[key] == value, key  # the same code, so the same bits
    finally:
        store.dispose()


def test_series_on_the_warm_worker_give_the_same_values_as_the_batch(
        cohort, local_run, tmp_path) -> None:
    """The dashboard's path: a warm worker process, this process writing."""
    base, uids, broken = cohort
    settings = _fresh_copy(base, tmp_path)
    store = open_store(settings)
    executor = warm.warm_executor()
    try:
        report = run_batch(store, settings, series_uids=[*uids, broken], executor=executor,
                           loader=npz_loader.LOADER, timeout_s=600)
        assert report.series_done == list(uids) and report.scheduler is None
        assert [f["series_uid"] for f in report.series_failed] == [broken]
        on_worker, batch = _features(store), local_run[0]
        assert on_worker.keys() == batch.keys() and len(batch) > 3 * 15
        for key, value in batch.items():
            assert on_worker[key] == value, key
        assert warm.warm_executor() is executor  # kept warm for the next upload
    finally:
        store.dispose()


def test_a_series_over_its_time_limit_on_the_warm_worker_is_recorded_and_the_worker_replaced(
        cohort, tmp_path) -> None:
    base, uids, _broken = cohort
    settings = _fresh_copy(base, tmp_path)
    store = open_store(settings)
    executor = warm.warm_executor()
    uid = next(iter(uids))
    try:
        with pytest.raises(SeriesTimeout, match=r"took longer than 0\.001 s"):
            run_batch(store, settings, series_uids=[uid], executor=executor,
                      loader=npz_loader.LOADER, timeout_s=0.001)
        warm.discard(executor)
        with store.session() as s:
            run = s.scalar(select(FeatureRun).join(Series).where(Series.series_uid == uid))
        assert (run.status, run.reason) == ("failed", "feature extraction took longer than "
                                                      "0.001 s")
        fresh = warm.warm_executor()
        assert fresh is not executor
        report = run_batch(store, settings, series_uids=[uid], executor=fresh,
                           loader=npz_loader.LOADER, timeout_s=600)
        assert report.series_done == [uid]
    finally:
        store.dispose()


def test_phase_comes_from_the_store_not_from_the_loaded_volume(cohort, tmp_path) -> None:
    """The loader's volume says unenhanced; ingest stored portal venous: that one is used."""
    base, uids, _broken = cohort
    settings = _fresh_copy(base, tmp_path)
    store = open_store(settings)
    first = next(iter(uids))
    assert uids[first][0].contrast_phase == "unenhanced"
    with store.session() as s:
        s.scalar(select(Series).where(Series.series_uid == first)).contrast_phase = (
            "portal_venous")
    try:
        run_batch(store, settings, series_uids=[first], loader=npz_loader.LOADER)
        with store.session() as s:
            sid = s.scalar(select(Series.id).where(Series.series_uid == first))
            code = s.scalar(select(Feature.value).where(Feature.series_id == sid,
                                                        Feature.name == "contrast_phase"))
            grade = s.scalar(select(Feature.flags).where(Feature.series_id == sid,
                                                         Feature.name == "steatosis_grade"))
            run = s.scalar(select(FeatureRun).where(FeatureRun.series_id == sid))
        assert code == 2.0  # portal venous
        assert grade["reason"] == "graded on unenhanced CT only (phase: portal_venous)"
        assert (run.settings["contrast_phase"], run.settings["phase_source"]) == (
            "portal_venous", "ingest")
    finally:
        store.dispose()


def test_features_export_keeps_the_automatic_flag_and_the_reasons(cohort, local_run,
                                                                  tmp_path, capsys) -> None:
    """``hepatrack export --what features``: SEG-masked series say ``seg``, the series
    segmented automatically says ``automatic``, and every empty value has its reason."""
    import pandas as pd

    _base, uids, broken = cohort
    settings = local_run[4]
    out = tmp_path / "features.csv"
    assert main(["--home", str(settings.home), "export", "--what", "features", "--out",
                 str(out)]) == 0
    capsys.readouterr()
    df = pd.read_csv(out).set_index("series_uid")
    masked, _pv, auto_uid = list(uids)
    assert broken not in df.index  # a failed series has no features to export
    assert df.loc[masked, "liver_volume_ml__source"] == "seg"
    assert df.loc[auto_uid, "liver_volume_ml__source"] == "automatic"
    assert df.loc[auto_uid, "liver_spleen_hu_diff__source"] == "automatic"
    assert df.loc[masked, "lesion_count__source"] == "seg"
    assert df.loc[auto_uid, "lesion_count__reason"] == "no lesion mask delivered"
    # the truth: the masked unenhanced series' liver volume, and no reason beside it
    assert df.loc[masked, "liver_volume_ml"] == pytest.approx(
        uids[masked][2].truth["liver_volume_ml"])
    assert pd.isna(df.loc[masked, "liver_volume_ml__reason"])
    assert df.loc[auto_uid, "segmentation_engine"] == (
        f"classical-v4 (HepaTrack extractor {EXTRACTOR_VERSION})")
    assert pd.isna(df.loc[masked, "segmentation_engine"])  # every mask delivered
    features = [c for c in df.columns if c not in ("patient", "study_date",
                                                   "segmentation_engine") and "__" not in c]
    for uid in uids:
        for f in features:
            empty, reason = pd.isna(df.loc[uid, f]), df.loc[uid, f"{f}__reason"]
            assert empty == isinstance(reason, str), (uid, f, reason)
