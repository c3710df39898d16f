"""Batch feature extraction on dask.distributed, with the client as the single writer.

``run_batch`` starts a ``LocalCluster`` of up to ``workers`` processes (one thread each,
no more than there are series) or connects to an existing scheduler; the code path is the
same. Workers receive series UIDs and the settings (never arrays), load each series
themselves through the loader, extract the features and return a JSON-able result; the
client writes ``features``, ``feature_runs`` and (for automatic segmentations) ``masks``
rows, one transaction per series, so a failure never leaves a half-written series. A
single series without a scheduler runs the same worker task in this process: starting a
cluster costs several times the extraction of one series.

The contrast phase is the one stored at ingest (``series.contrast_phase``); the loader's
re-read of the stored, de-identified header is not asked. With ``radiomics``, a missing
optional extra or a MIRP failure fails only the radiomics of that series: the core
features are stored and the failure is reported (``radiomics_failed``) and kept in the run.

Resumable: a series with a ``done`` run for :data:`EXTRACTOR_VERSION` is skipped (unless
radiomics are asked for and that run had none, or had them in another configuration). A
failing series is recorded as ``failed`` with the reason and the batch goes on. With a
remote scheduler, workers must see the same HEPATRACK_HOME (shared filesystem) and
database and run the same extractor version: before any series is sent, every worker is
asked (:func:`worker_check`), and a worker that cannot read the home directory or runs
another version stops the batch with one error naming the worker and the path. A file
that a worker cannot read later fails that series, naming the worker's host and the file.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool as BrokenExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analytics.config import Settings
from analytics.errors import FeatureError, HepaTrackError, MissingExtraError
from analytics.features import radiomics_configs
from analytics.features.automask_store import auto_mask_summary, save_auto_seg
from analytics.features.extract import (
    EXTRACTOR_VERSION,
    FeatureResult,
    FeatureSettings,
    extract_series_features,
)
from analytics.features.geometry import orientation
from analytics.features.mr_companions import attach_companions
from analytics.features.radiomics import radiomics_features
from analytics.features.registry import AUTOMATIC, RADIOMICS_PREFIX
from analytics.features.totalseg import (
    INSTALL_HINT,
    TOTALSEG_METHOD,
    choose_engine,
    totalsegmentator_status,
)
from analytics.masks_review import apply_rejections
from analytics.store import features as repo
from analytics.store.db import Store, open_store
from analytics.store.features import FeatureRow
from analytics.vocabulary import unit

log = logging.getLogger("hepatrack.features")

DEFAULT_LOADER = "analytics.ingest.loader:load_series"
#: environment variable naming another loader (``module:function``), e.g. for research
#: datasets kept as NIfTI; it must be importable on every worker
LOADER_ENV = "HEPATRACK_FEATURES_LOADER"
Progress = Callable[[int, int, str], None]


@dataclass
class BatchReport:
    """What a batch did. ``as_payload`` gives the CLI's JSON keys."""

    series_done: list[str] = field(default_factory=list)
    series_failed: list[dict[str, str]] = field(default_factory=list)
    series_skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    scheduler: str | None = None
    radiomics_failed: list[dict[str, str]] = field(default_factory=list)
    #: the install hint when radiomics failed because their optional extra is missing
    missing_extra: str | None = None

    def as_payload(self) -> dict[str, Any]:
        return {
            "series_done": len(self.series_done),
            "series_failed": list(self.series_failed),
            "radiomics_failed": list(self.radiomics_failed),
            "series_skipped": len(self.series_skipped),
            "seconds": round(self.seconds, 3),
            "extractor_version": EXTRACTOR_VERSION,
            "done": list(self.series_done),
            "skipped": list(self.series_skipped),
        }


def _resolve_loader(spec: str) -> Callable:
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise FeatureError(f"series loader {spec!r} is not available ({e})") from e


def extract_stored_series(series_uid: str, settings: Settings, feature_settings: FeatureSettings,
                          loader: str = DEFAULT_LOADER) -> dict[str, Any]:
    """Worker task: load one series, extract its features, return a JSON-able outcome.

    Never raises for a bad series: the outcome is ``{"ok": False, "reason": ...}``.
    """
    t0 = time.perf_counter()
    store = None
    try:
        load = _resolve_loader(loader)
        store = open_store(settings, migrate_schema=False)
        volume, masks = load(store, settings, series_uid)
        if volume.series_uid is None:
            volume.series_uid = series_uid
        # one phase per series, decided at ingest: the stored, de-identified header may
        # have lost the description it was read from
        volume.contrast_phase = ingest_phase(store, series_uid)
        masks = attach_companions(store, settings, volume, masks)  # MR: Dixon pair, mask
        result = extract_series_features(volume, masks, feature_settings)
        radiomics: dict[str, Any] = {}
        if feature_settings.radiomics:
            try:
                radiomics = _radiomics(volume, masks, result, feature_settings)
            except MissingExtraError as e:
                radiomics = {"error": str(e), "install": e.hint}
            except FeatureError as e:
                radiomics = {"error": str(e)}
        return {"ok": True, "series_uid": series_uid,
                "result": _result_payload(result),
                "auto_mask": _auto_mask(store, settings, volume, result),
                "radiomics": radiomics, "seconds": time.perf_counter() - t0}
    except HepaTrackError as e:
        return {"ok": False, "series_uid": series_uid, "reason": str(e),
                "seconds": time.perf_counter() - t0}
    except MemoryError:
        return {"ok": False, "series_uid": series_uid, "reason": "out of memory",
                "seconds": time.perf_counter() - t0}
    except OSError as e:  # a worker without the shared storage, or without permission
        return {"ok": False, "series_uid": series_uid,
                "reason": f"worker {socket.gethostname()} cannot read "
                          f"{e.filename or settings.home}: {e.strerror or e} (workers need "
                          f"HEPATRACK_HOME {settings.home} on shared storage)",
                "seconds": time.perf_counter() - t0}
    except Exception as e:  # a bug on one series must not stop the batch; it is recorded
        log.exception("feature extraction failed for %s", series_uid)
        return {"ok": False, "series_uid": series_uid,
                "reason": f"internal error: {type(e).__name__}: {e}",
                "seconds": time.perf_counter() - t0}
    finally:
        if store is not None:
            store.dispose()


def worker_check(home: str) -> dict[str, Any]:
    """Run on each worker before a batch: can it read ``home``, which extractor does it run.

    Returns ``{"host", "home_readable", "extractor_version"}``.
    """
    path = Path(home)
    readable = path.is_dir() and os.access(path, os.R_OK | os.X_OK)
    return {"host": socket.gethostname(), "home_readable": readable,
            "extractor_version": EXTRACTOR_VERSION}


def check_workers(answers: dict[str, Any], home: Path, scheduler: str) -> None:
    """Refuse a batch that some worker of ``scheduler`` could not run correctly.

    Parameters
    ----------
    answers
        :func:`worker_check` results keyed by worker address (``Client.run``).
    home
        The HEPATRACK_HOME the series files are under.
    scheduler
        The scheduler's address, for the message.

    Raises
    ------
    FeatureError
        A worker that cannot read ``home``, or one with another extractor version.
    """
    if not answers:  # an adaptive cluster may start its workers for the batch
        log.warning("dask scheduler %s has no workers yet; their access to %s is not "
                    "checked before the batch", scheduler, home)
    for worker, answer in sorted(answers.items()):
        if not answer["home_readable"]:
            raise FeatureError(
                f"dask worker {worker} (host {answer['host']}) cannot read HEPATRACK_HOME "
                f"{home}: the series files must be on storage shared with the workers, "
                "at the same path")
        if answer["extractor_version"] != EXTRACTOR_VERSION:
            raise FeatureError(
                f"dask worker {worker} (host {answer['host']}) runs feature extractor "
                f"{answer['extractor_version']}, this client {EXTRACTOR_VERSION}: install "
                "the same HepaTrack version on every worker")


def ingest_phase(store: Store, series_uid: str) -> str | None:
    """The contrast phase stored for the series at ingest (None if it was not stated)."""
    row = repo.series_phase(store, series_uid)
    if row is None:
        return None
    phase, geometry = row
    return phase or geometry.get("contrast_phase")


def _result_payload(result: FeatureResult) -> dict[str, Any]:
    return result.as_dict()


def _auto_mask(store: Store, settings: Settings, volume, result: FeatureResult
               ) -> dict[str, Any] | None:
    """The automatic masks kept as a DICOM SEG beside the series; digest and voxel counts
    travel back to the client (arrays and SEG bytes stay on the worker)."""
    if result.auto_masks is None or not any(m.any() for m in result.auto_masks.masks.values()):
        return None  # nothing was found: there is no outline to keep
    summary = auto_mask_summary(result.auto_masks, EXTRACTOR_VERSION, result.withheld)
    return save_auto_seg(store, settings, volume, result.auto_masks, summary)


def _radiomics(volume, masks, result: FeatureResult,
               fs: FeatureSettings) -> dict[str, Any]:
    rois: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for name in ("liver", "spleen"):
        m = masks.get(name) if masks is not None else None
        sources[name] = result.mask_sources.get(name, AUTOMATIC)
        if m is None and result.auto_masks is not None:
            m = result.auto_masks.get(name)
        if m is not None:
            rois[name] = np.asarray(m, dtype=bool)
    orient = orientation(volume)
    image = orient.to_canonical(volume.array)
    rois = {k: orient.to_canonical(v) for k, v in rois.items()}
    modality = (volume.modality or "CT").upper()
    config = radiomics_configs.get(fs.radiomics_config or radiomics_configs.DEFAULT_CONFIG)
    values, used = radiomics_features(image, rois, orient.spacing_mm, modality,
                                      config=config)
    return {"values": values, "settings": used,
            "sources": {k: v for k, v in sources.items() if k in rois}}


# --------------------------------------------------------------------------- client side
def _series_to_run(store: Store, series_uids: Sequence[str] | None, radiomics: bool,
                   radiomics_config: str = radiomics_configs.DEFAULT_CONFIG
                   ) -> tuple[list[str], list[str]]:
    with store.session() as s:
        found = repo.series_ids(s, series_uids)
        for uid, row in zip(series_uids or (), found, strict=False):
            if row is None:
                raise FeatureError(f"series {uid} is not in the store")
        done = repo.done_run_settings(s, EXTRACTOR_VERSION)
    todo, skipped = [], []
    for sid, uid in found:
        run = done.get(sid)
        had = run is not None and has_radiomics(run, radiomics_config)
        if run is not None and (not radiomics or had):
            skipped.append(uid)
        else:
            todo.append(uid)
    return todo, skipped


def has_radiomics(run_settings: dict[str, Any], config_name: str) -> bool:
    """True if a stored run's settings hold radiomics of configuration ``config_name``
    at its current version (another configuration, or a failure, means redo)."""
    if not run_settings.get("radiomics") or run_settings.get("radiomics_error"):
        return False
    used = run_settings.get("radiomics_settings") or {}
    config = radiomics_configs.get(config_name)
    return (used.get("config"), used.get("config_version")) == (config.name, config.version)


def write_outcome(store: Store, outcome: dict[str, Any], feature_settings: FeatureSettings
                  ) -> None:
    """Write one series' outcome (features + run, or a failed run) in one transaction."""
    uid = outcome["series_uid"]
    run_settings = feature_settings.as_dict()
    seconds = float(outcome.get("seconds", 0.0))
    with store.session() as s:
        sid = repo.series_id(s, uid)
        if sid is None:
            raise FeatureError(f"series {uid} disappeared from the store during the batch")
        if not outcome["ok"]:
            repo.save_run(s, sid, EXTRACTOR_VERSION, status="failed",
                          reason=outcome["reason"][:4000], seconds=seconds,
                          settings=run_settings, finished_at=_now())
            return
        result = outcome["result"]
        auto_mask = outcome.get("auto_mask")
        mask_id = repo.measured_mask_id(s, sid, auto_mask)
        rad = outcome.get("radiomics") or {}
        repo.replace_features(s, sid, EXTRACTOR_VERSION, _feature_rows(result, rad), mask_id)
        run_settings.update(_run_settings(result, rad, auto_mask, mask_id))
        apply_rejections(s, sid)
        repo.save_run(s, sid, EXTRACTOR_VERSION, status="done", reason=None, seconds=seconds,
                      settings=run_settings, finished_at=_now())


def _feature_rows(result: dict[str, Any], rad: dict[str, Any]) -> list[FeatureRow]:
    """The feature rows of a finished series: biomarkers, then radiomics with their mask
    provenance and configuration."""
    rows = [FeatureRow(name, fv["value"], fv["unit"], fv["flags"] or None)
            for name, fv in result["values"].items()]
    auto = bool(result["mask_automatic"])
    roi_sources = rad.get("sources") or {}
    used = rad.get("settings") or {}
    for name, value in (rad.get("values") or {}).items():
        roi = name.removeprefix(RADIOMICS_PREFIX).split("_", 1)[0]
        flags: dict[str, Any] = {"radiomics": True}
        if used.get("config"):  # the run holds the full settings of this name@version
            flags["radiomics_config"] = f"{used['config']}@{used['config_version']}"
        if roi in roi_sources:
            flags["mask_source"] = roi_sources[roi]
            if roi_sources[roi] == AUTOMATIC:
                flags["automatic_segmentation"] = True
        elif auto:
            flags["automatic_segmentation"] = True
        rows.append(FeatureRow(name, value, unit(name), flags))
    return rows


def _run_settings(result: dict[str, Any], rad: dict[str, Any],
                  auto_mask: dict[str, Any] | None, mask_id: int | None) -> dict[str, Any]:
    """What a finished run records beside the extraction settings."""
    out: dict[str, Any] = {}
    if rad.get("settings"):
        out["radiomics_settings"] = rad.get("settings")
    if rad.get("error"):
        out["radiomics_error"] = rad["error"]
    out["mask_source"] = result["mask_source"]
    out["mask_method"] = result["mask_method"]
    out["mask_sources"] = result.get("mask_sources") or {}
    out["contrast_phase"] = result["contrast_phase"]
    out["phase_source"] = result["phase_source"]
    out["contrast_phase_estimate"] = result.get("phase_estimate")
    out["aorta_hu"] = result.get("aorta_hu")
    out["warnings"] = result["warnings"]
    out["auto_mask_id"] = mask_id if auto_mask is not None else None
    if auto_mask is not None and auto_mask.get("seg_error"):
        out["auto_mask_seg_error"] = auto_mask["seg_error"]
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_batch(store: Store, settings: Settings, series_uids: Sequence[str] | None = None,
              workers: int = 2, scheduler: str | None = None, radiomics: bool = False,
              progress: Progress | None = None, *,
              feature_settings: FeatureSettings | None = None,
              loader: str | None = None,
              radiomics_config: str | None = None, executor: Executor | None = None,
              timeout_s: float | None = None) -> BatchReport:
    """Extract features of stored series on dask.distributed and write them.

    Parameters
    ----------
    store
        Open store (the client writes to it).
    settings
        Application settings; sent to workers so they open the same store and files.
    series_uids
        Series to process; None means every complete series.
    workers
        Most worker processes of the local cluster (ignored with ``scheduler``); never
        more than there are series to run.
    scheduler
        Address of a running dask scheduler (``tcp://host:port``); None starts a
        ``LocalCluster``, or none for a single series (run in this process).
    radiomics
        Also compute IBSI radiomics (MIRP).
    progress
        Called as ``progress(done, total, series_uid)`` after each series is written.
    feature_settings
        Extraction parameters (defaults when None).
    loader
        ``"module:function"`` returning ``(Volume, MaskSet | None)`` for
        ``(store, settings, series_uid)``; default ``$HEPATRACK_FEATURES_LOADER``, else
        the ingest loader.
    radiomics_config
        Name of the radiomics configuration; default the one in ``feature_settings``,
        else the site's (``settings.radiomics_config``). The name is recorded in every
        run, the full settings with the radiomics values.
    executor
        A running worker (the dashboard's, :mod:`analytics.features.warm`) to run the
        series on; ignored with ``scheduler``.
    timeout_s
        With ``executor``: longest one series may take (s); over it, the series is
        recorded as failed and :class:`SeriesTimeout` raised (its worker is still busy).

    Returns
    -------
    BatchReport

    Raises
    ------
    FeatureError
        If a requested series is not in the store, the scheduler cannot be reached, or
        the radiomics configuration is unknown.
    """
    t0 = time.perf_counter()
    loader = loader or os.environ.get(LOADER_ENV) or DEFAULT_LOADER
    fs = _batch_settings(settings, feature_settings, radiomics, radiomics_config)
    todo, skipped = _series_to_run(store, series_uids, radiomics, fs.radiomics_config)
    report = BatchReport(series_skipped=skipped)
    total = len(todo) + len(skipped)
    done_count = len(skipped)
    if progress is not None and skipped:
        progress(done_count, total, skipped[-1])
    if not todo:
        return replace(report, seconds=time.perf_counter() - t0)
    if workers < 1:
        raise FeatureError(f"--workers must be at least 1, got {workers}")

    def record(uid: str, outcome: dict[str, Any]) -> None:
        nonlocal done_count
        write_outcome(store, outcome, fs)
        _add_to_report(report, uid, outcome)
        done_count += 1
        if progress is not None:
            progress(done_count, total, uid)

    report.scheduler = _run_todo(todo, settings, fs, loader, record, scheduler=scheduler,
                                 workers=workers, executor=executor, timeout_s=timeout_s)
    report.seconds = time.perf_counter() - t0
    return report


def _run_todo(todo: list[str], settings: Settings, fs: FeatureSettings, loader: str,
              record: Callable[[str, dict[str, Any]], None], *, scheduler: str | None,
              workers: int, executor: Executor | None, timeout_s: float | None) -> str | None:
    """Run the series where :func:`run_batch` says; returns the Dask scheduler's address
    (None when no Dask ran them)."""
    if executor is not None and not scheduler:
        _run_on_executor(todo, settings, fs, loader, executor, timeout_s, record)
        return None
    if not scheduler and len(todo) == 1:
        # the worker task itself, in this process: same loader, extraction and writer
        record(todo[0], extract_stored_series(todo[0], settings, fs, loader))
        return None
    return _run_on_dask(todo, settings, fs, loader, scheduler, min(workers, len(todo)),
                        record)


def _batch_settings(settings: Settings, feature_settings: FeatureSettings | None,
                    radiomics: bool, radiomics_config: str | None) -> FeatureSettings:
    """The run's extraction settings: radiomics on or off and its configuration named
    (validated), the segmentation engine checked."""
    fs = feature_settings or FeatureSettings()
    config = (radiomics_config or fs.radiomics_config or settings.radiomics_config
              or radiomics_configs.DEFAULT_CONFIG)
    fs = replace(fs, radiomics=radiomics, radiomics_config=config)  # validates the name
    _check_engine(fs.segmentation)
    return fs


def _add_to_report(report: BatchReport, uid: str, outcome: dict[str, Any]) -> None:
    if outcome["ok"]:
        report.series_done.append(uid)
        rad = outcome.get("radiomics") or {}
        if rad.get("error"):
            report.radiomics_failed.append({"series_uid": uid, "reason": rad["error"]})
            report.missing_extra = report.missing_extra or rad.get("install")
    else:
        report.series_failed.append({"series_uid": uid, "reason": outcome["reason"]})


def _check_engine(method: str) -> None:
    """Refuse a run that asks for TotalSegmentator where it cannot run for CT or MR (one
    clear error, before any series, instead of one failure per series)."""
    if method != TOTALSEG_METHOD:
        choose_engine(method, "CT")  # an unknown method is refused here
        return
    if not any(totalsegmentator_status(m).available for m in ("CT", "MR")):
        raise MissingExtraError("segmentation 'totalsegmentator' asked for, but "
                                f"{totalsegmentator_status('CT').reason}: {INSTALL_HINT}",
                                hint=INSTALL_HINT)


class SeriesTimeout(FeatureError):
    """A series ran over its time limit on an executor (recorded as failed)."""


def _run_on_executor(todo: list[str], settings: Settings, fs: FeatureSettings, loader: str,
                     executor: Executor, timeout_s: float | None,
                     record: Callable[[str, dict[str, Any]], None]) -> None:
    """Run the worker task for each series on ``executor``, one after another, and
    ``record`` each outcome; a series over ``timeout_s`` ends the run (SeriesTimeout)."""
    for uid in todo:
        try:
            future = executor.submit(extract_stored_series, uid, settings, fs, loader)
            outcome = future.result(timeout=timeout_s)
        except FutureTimeout:
            record(uid, {"ok": False, "series_uid": uid, "reason": "feature extraction took "
                         f"longer than {timeout_s:g} s", "seconds": timeout_s})
            raise SeriesTimeout(f"series {uid} took longer than {timeout_s:g} s") from None
        except BrokenExecutor as e:  # the worker died (OOM kill): record, the batch goes on
            outcome = {"ok": False, "series_uid": uid,
                       "reason": f"worker failed: {type(e).__name__}: {e}"}
        record(uid, outcome)


def _run_on_dask(todo: list[str], settings: Settings, fs: FeatureSettings, loader: str,
                 scheduler: str | None, workers: int,
                 record: Callable[[str, dict[str, Any]], None]) -> str:
    """Run the worker task for each series on dask; ``record`` each outcome as it ends.

    Returns the scheduler address.
    """
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="15s")
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
    except (OSError, ValueError) as e:  # unreachable, or not a scheduler address at all
        raise FeatureError(f"dask scheduler {scheduler!r} cannot be reached: {e} (expected "
                           "the address of a running scheduler, tcp://host:8786)") from e
    address = client.scheduler.address
    token = uuid.uuid4().hex[:8]
    try:
        if scheduler:  # workers of a site's cluster: same files, same extractor
            check_workers(_ask_workers(client, settings, scheduler), settings.home, scheduler)
        futures = {client.submit(extract_stored_series, uid, settings, fs, loader,
                                 key=f"features-{token}-{i}", pure=False, retries=0): uid
                   for i, uid in enumerate(todo)}
        for fut in as_completed(futures):
            uid = futures[fut]
            try:
                outcome = fut.result()
            except Exception as e:  # worker died (KilledWorker, OOM kill): record, go on
                outcome = {"ok": False, "series_uid": uid,
                           "reason": f"worker failed: {type(e).__name__}: {e}"}
            record(uid, outcome)
            fut.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return address


def _ask_workers(client, settings: Settings, scheduler: str) -> dict[str, Any]:
    """:func:`worker_check` on every worker of ``client``'s scheduler."""
    try:
        return client.run(worker_check, str(settings.home))
    except Exception as e:  # e.g. a worker that cannot import HepaTrack at all
        raise FeatureError(f"the workers of dask scheduler {scheduler} cannot run "
                           f"HepaTrack's feature extraction ({type(e).__name__}: {e}): "
                           "install the same HepaTrack version on every worker") from e
