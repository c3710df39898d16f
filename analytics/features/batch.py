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
database.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from analytics.config import Settings
from analytics.errors import FeatureError, HepaTrackError, MissingExtraError
from analytics.features import radiomics_configs
from analytics.features.automask_store import auto_mask_row, auto_mask_summary, save_auto_seg
from analytics.features.extract import (
    EXTRACTOR_VERSION,
    FeatureResult,
    FeatureSettings,
    extract_series_features,
)
from analytics.features.geometry import orientation
from analytics.features.registry import AUTOMATIC, RADIOMICS_PREFIX
from analytics.masks_review import apply_rejections
from analytics.store.db import Store, open_store
from analytics.store.schema import Feature, FeatureRun, Mask, Series
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
    except Exception as e:  # a bug on one series must not stop the batch; it is recorded
        log.exception("feature extraction failed for %s", series_uid)
        return {"ok": False, "series_uid": series_uid,
                "reason": f"internal error: {type(e).__name__}: {e}",
                "seconds": time.perf_counter() - t0}
    finally:
        if store is not None:
            store.dispose()


def ingest_phase(store: Store, series_uid: str) -> str | None:
    """The contrast phase stored for the series at ingest (None if it was not stated)."""
    with store.session() as s:
        row = s.execute(select(Series.contrast_phase, Series.geometry).where(
            Series.series_uid == series_uid)).first()
    if row is None:
        return None
    return row.contrast_phase or (row.geometry or {}).get("contrast_phase")


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
    from analytics.features.radiomics import radiomics_features

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
        if series_uids is None:
            rows = s.execute(select(Series.id, Series.series_uid).where(
                Series.status == "complete").order_by(Series.id)).all()
        else:
            rows = []
            for uid in series_uids:
                row = s.execute(select(Series.id, Series.series_uid).where(
                    Series.series_uid == uid)).first()
                if row is None:
                    raise FeatureError(f"series {uid} is not in the store")
                rows.append(row)
        done = {r.series_id: r for r in s.scalars(select(FeatureRun).where(
            FeatureRun.extractor_version == EXTRACTOR_VERSION, FeatureRun.status == "done"))}
    todo, skipped = [], []
    for sid, uid in rows:
        run = done.get(sid)
        had = run is not None and has_radiomics(run.settings or {}, radiomics_config)
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
    with store.session() as s:
        series = s.scalar(select(Series).where(Series.series_uid == uid))
        if series is None:
            raise FeatureError(f"series {uid} disappeared from the store during the batch")
        run = s.scalar(select(FeatureRun).where(
            FeatureRun.series_id == series.id, FeatureRun.extractor_version == EXTRACTOR_VERSION))
        if run is None:
            run = FeatureRun(series_id=series.id, extractor_version=EXTRACTOR_VERSION,
                             status="done" if outcome["ok"] else "failed")
            s.add(run)
        run_settings = feature_settings.as_dict()
        run.seconds = float(outcome.get("seconds", 0.0))
        run.finished_at = _now()
        if not outcome["ok"]:
            run.status, run.reason = "failed", outcome["reason"][:4000]
            run.settings = run_settings
            return
        result = outcome["result"]
        mask_id = _mask_row(s, series, outcome.get("auto_mask"))
        s.execute(delete(Feature).where(Feature.series_id == series.id,
                                        Feature.extractor_version == EXTRACTOR_VERSION))
        for name, fv in result["values"].items():
            s.add(Feature(series_id=series.id, name=name, value=fv["value"], unit=fv["unit"],
                          extractor_version=EXTRACTOR_VERSION, mask_id=mask_id,
                          flags=fv["flags"] or None))
        rad = outcome.get("radiomics") or {}
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
            s.add(Feature(series_id=series.id, name=name, value=value, unit=unit(name),
                          extractor_version=EXTRACTOR_VERSION, mask_id=mask_id, flags=flags))
        if rad.get("settings"):
            run_settings["radiomics_settings"] = rad.get("settings")
        if rad.get("error"):
            run_settings["radiomics_error"] = rad["error"]
        run_settings["mask_source"] = result["mask_source"]
        run_settings["mask_method"] = result["mask_method"]
        run_settings["mask_sources"] = result.get("mask_sources") or {}
        run_settings["contrast_phase"] = result["contrast_phase"]
        run_settings["phase_source"] = result["phase_source"]
        run_settings["contrast_phase_estimate"] = result.get("phase_estimate")
        run_settings["aorta_hu"] = result.get("aorta_hu")
        run_settings["warnings"] = result["warnings"]
        auto_mask = outcome.get("auto_mask")
        run_settings["auto_mask_id"] = mask_id if auto_mask is not None else None
        if auto_mask is not None and auto_mask.get("seg_error"):
            run_settings["auto_mask_seg_error"] = auto_mask["seg_error"]
        apply_rejections(s, series.id)
        run.status, run.reason, run.settings = "done", None, run_settings


def _mask_row(s, series: Series, auto: dict[str, Any] | None) -> int | None:
    """The masks row the features were computed on (auto: created once per content)."""
    if auto is None:
        row = s.scalar(select(Mask).where(Mask.series_id == series.id,
                                          Mask.automatic.is_(False)).order_by(Mask.id))
        return row.id if row is not None else None
    return auto_mask_row(s, series, auto).id


def _now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def run_batch(store: Store, settings: Settings, series_uids: Sequence[str] | None = None,
              workers: int = 2, scheduler: str | None = None, radiomics: bool = False,
              progress: Progress | None = None, *,
              feature_settings: FeatureSettings | None = None,
              loader: str | None = None,
              radiomics_config: str | None = None) -> BatchReport:
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
    fs = feature_settings or FeatureSettings()
    config = (radiomics_config or fs.radiomics_config or settings.radiomics_config
              or radiomics_configs.DEFAULT_CONFIG)
    fs = replace(fs, radiomics=radiomics, radiomics_config=config)  # validates the name
    _check_engine(fs.segmentation)
    todo, skipped = _series_to_run(store, series_uids, radiomics, config)
    report = BatchReport(series_skipped=skipped)
    total = len(todo) + len(skipped)
    done_count = len(skipped)
    if progress is not None and skipped:
        progress(done_count, total, skipped[-1])
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report
    if workers < 1:
        raise FeatureError(f"--workers must be at least 1, got {workers}")

    def record(uid: str, outcome: dict[str, Any]) -> None:
        nonlocal done_count
        write_outcome(store, outcome, fs)
        if outcome["ok"]:
            report.series_done.append(uid)
            rad = outcome.get("radiomics") or {}
            if rad.get("error"):
                report.radiomics_failed.append({"series_uid": uid, "reason": rad["error"]})
                report.missing_extra = report.missing_extra or rad.get("install")
        else:
            report.series_failed.append({"series_uid": uid, "reason": outcome["reason"]})
        done_count += 1
        if progress is not None:
            progress(done_count, total, uid)

    if not scheduler and len(todo) == 1:
        # the worker task itself, in this process: same loader, extraction and writer
        uid = todo[0]
        record(uid, extract_stored_series(uid, settings, fs, loader))
    else:
        report.scheduler = _run_on_dask(todo, settings, fs, loader, scheduler,
                                        min(workers, len(todo)), record)
    report.seconds = time.perf_counter() - t0
    return report


def _check_engine(method: str) -> None:
    """Refuse a run that asks for TotalSegmentator where it cannot run for CT or MR (one
    clear error, before any series, instead of one failure per series)."""
    from analytics.features.totalseg import (
        INSTALL_HINT,
        TOTALSEG_METHOD,
        choose_engine,
        totalsegmentator_status,
    )

    if method != TOTALSEG_METHOD:
        choose_engine(method, "CT")  # an unknown method is refused here
        return
    if not any(totalsegmentator_status(m).available for m in ("CT", "MR")):
        raise MissingExtraError("segmentation 'totalsegmentator' asked for, but "
                                f"{totalsegmentator_status('CT').reason}: {INSTALL_HINT}",
                                hint=INSTALL_HINT)


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
    except OSError as e:
        raise FeatureError(f"dask scheduler {scheduler!r} cannot be reached: {e}") from e
    address = client.scheduler.address
    token = uuid.uuid4().hex[:8]
    try:
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
