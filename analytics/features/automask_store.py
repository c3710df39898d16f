"""Automatic masks in the store: the worker writes the SEG file, the client its row; the
key image and the exports read them back.

The worker (:func:`save_auto_seg`) builds the SEG from the masks it measured and places
it under the series' storage folder (staging, fsync, rename, as ingest does); the batch
client then adds the ``masks`` row in the same transaction as the features
(:func:`auto_mask_row`). A file whose row never came is an orphan that
``sweep_orphans`` removes. A mask already stored (same digest) is not written again.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import select

from analytics.config import Settings
from analytics.errors import FeatureError, HepaTrackError
from analytics.features.automask import auto_mask_path, mask_digest, seg_uids, write_auto_seg
from analytics.ingest.volume import MaskSet, Volume
from analytics.store.db import Store
from analytics.store.schema import FeatureRun, Instance, Mask, Series

log = logging.getLogger("hepatrack.features")

__all__ = ["auto_mask_row", "auto_mask_summary", "latest_auto_mask", "latest_auto_mask_in",
           "save_auto_seg"]


def auto_mask_summary(masks: MaskSet, version: str, withheld: dict[str, str]
                      ) -> dict[str, Any]:
    """Digest, method and per-organ facts of an automatic mask set (no arrays).

    ``segments``: organ -> ``{"label": segment number in the SEG, "voxels", "automatic",
    "withheld": reason}`` (``withheld`` only for organs the quality gate withheld).
    """
    organs = sorted(masks.masks)
    digest = mask_digest(masks.masks, masks.method, version)
    segments: dict[str, Any] = {}
    label = 0
    for name in ("liver", "spleen", "aorta", *organs):
        if name not in masks.masks or name in segments:
            continue
        voxels = int(np.count_nonzero(masks.masks[name]))
        info: dict[str, Any] = {"voxels": voxels, "automatic": True}
        if voxels:
            label += 1
            info["label"] = label
        if name in withheld:
            info["withheld"] = withheld[name]
        segments[name] = info
    return {"method": masks.method, "sha256": digest, "segments": segments,
            "format": "auto", "version": version}


def _source_headers(store: Store, settings: Settings, series_id: int,
                    order: list[str]) -> list:
    """Headers of the stored instances, in the volume's slice order ``order``."""
    import pydicom

    from analytics.ingest.loader import stored_file

    with store.session() as s:
        paths = dict(s.execute(select(Instance.sop_instance_uid, Instance.path)
                               .where(Instance.series_id == series_id)).all())
    missing = [u for u in order if u not in paths]
    if missing:
        raise FeatureError(f"automatic SEG: {len(missing)} slices have no stored instance")
    return [pydicom.dcmread(stored_file(settings, paths[u]), stop_before_pixels=True)
            for u in order]


def save_auto_seg(store: Store, settings: Settings, volume: Volume, masks: MaskSet,
                  summary: dict[str, Any]) -> dict[str, Any]:
    """Write the automatic masks as a DICOM SEG beside the series (worker side).

    Parameters
    ----------
    store, settings
        The store and home the series lives in.
    volume
        The volume the masks were measured on (``meta["sop_instance_uids"]`` in slice
        order).
    masks
        The automatic masks on the volume grid.
    summary
        :func:`auto_mask_summary` of ``masks``.

    Returns
    -------
    dict
        ``summary`` with ``format`` ``seg``, ``path`` and ``sop_instance_uid`` when the SEG
        is stored (now or before); else ``format`` ``auto`` and ``seg_error`` saying why
        (no stored instances, multi-frame sources): the digest row is still kept.
    """
    from analytics.ingest.commit import _place_files, series_dir

    out = dict(summary)
    with store.session() as s:
        series = s.scalar(select(Series).where(Series.series_uid == volume.series_uid))
        if series is None:
            return {**out, "seg_error": "series not in the store"}
        stored = s.scalar(select(Mask).where(Mask.series_id == series.id,
                                             Mask.content_sha256 == summary["sha256"]))
        if stored is not None and stored.path:
            return {**out, "format": "seg", "path": stored.path,
                    "sop_instance_uid": stored.sop_instance_uid}
        sid, skey = series.id, series.source_key
    order = [str(u) for u in volume.meta.get("sop_instance_uids") or []]
    try:
        if len(order) != volume.shape[0]:
            raise FeatureError(f"automatic SEG: {len(order)} source instances for "
                               f"{volume.shape[0]} slices (a multi-frame or research series)")
        sources = _source_headers(store, settings, sid, order)
        data = write_auto_seg(masks.masks, sources, method=str(masks.method),
                              version=summary["version"], digest=summary["sha256"])
        rel = auto_mask_path(series_dir(skey), summary["sha256"])
        _place_files(settings, [(rel, data)])
    except (HepaTrackError, OSError) as e:
        log.warning("automatic SEG of %s not written: %s", volume.series_uid, e)
        return {**out, "seg_error": str(e)}
    return {**out, "format": "seg", "path": rel, "sop_instance_uid": seg_uids(
        summary["sha256"])[1]}


def auto_mask_row(s, series: Series, auto: dict[str, Any]) -> Mask:
    """The ``masks`` row of an automatic mask set, added once per digest (client side)."""
    row = s.scalar(select(Mask).where(Mask.series_id == series.id,
                                      Mask.content_sha256 == auto["sha256"]))
    if row is None:
        row = Mask(series_id=series.id, format=auto.get("format", "auto"),
                   path=auto.get("path"), sop_instance_uid=auto.get("sop_instance_uid"),
                   content_sha256=auto["sha256"], segments=auto["segments"], automatic=True,
                   method=auto["method"])
        s.add(row)
        s.flush()
    elif row.path is None and auto.get("path"):
        row.format, row.path = "seg", auto["path"]
        row.sop_instance_uid = auto.get("sop_instance_uid")
    return row


def latest_auto_mask_in(s, series_id: int) -> Mask | None:
    """The automatic mask of the series' newest finished feature run (the one measured),
    or None when that run used no automatic mask."""
    found = _latest_run_mask(s, series_id)
    return found[0] if found is not None else None


def _latest_run_mask(s, series_id: int) -> tuple[Mask, FeatureRun] | None:
    run = s.scalar(select(FeatureRun).where(FeatureRun.series_id == series_id,
                                            FeatureRun.status == "done")
                   .order_by(FeatureRun.finished_at.desc(), FeatureRun.id.desc()).limit(1))
    mask_id = (run.settings or {}).get("auto_mask_id") if run is not None else None
    if mask_id is None:
        return None
    mask = s.get(Mask, int(mask_id))
    if mask is None or mask.series_id != series_id or not mask.automatic:
        return None
    return mask, run


def latest_auto_mask(store: Store, series_uid: str) -> dict[str, Any] | None:
    """The automatic mask the series' newest feature run measured, as a dict (``mask_id``,
    ``format``, ``path``, ``method``, ``segments``, ``extractor_version``, ``status``:
    organ -> ``measured`` / ``withheld: …`` / ``rejected: …``), or None."""
    from analytics.masks_review import organ_status, rejections_of

    with store.session() as s:
        sid = s.scalar(select(Series.id).where(Series.series_uid == series_uid))
        found = _latest_run_mask(s, sid) if sid is not None else None
        if found is None:
            return None
        mask, run = found
        return {"mask_id": mask.id, "format": mask.format, "path": mask.path,
                "method": mask.method, "segments": dict(mask.segments or {}),
                "extractor_version": run.extractor_version,
                "status": organ_status(mask.segments, rejections_of(s, mask.id))}
