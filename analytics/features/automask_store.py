"""Automatic masks in the store: the worker writes the SEG file, the client its row; the
key image and the exports read them back.

The worker (:func:`save_auto_seg`) builds the SEG from the masks it measured and places
it under the series' storage folder (staging, fsync, rename, as ingest does); the batch
client then adds the ``masks`` row in the same transaction as the features
(:func:`analytics.store.features.auto_mask_row`). A file whose row never came is an orphan that
``sweep_orphans`` removes. A mask already stored (same digest) is not written again.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pydicom

from analytics.config import Settings
from analytics.errors import FeatureError, HepaTrackError
from analytics.features.automask import auto_mask_path, mask_digest, seg_uids, write_auto_seg
from analytics.ingest.loader import stored_file
from analytics.ingest.volume import MaskSet, Volume
from analytics.masks_review import organ_status
from analytics.store import features as repo
from analytics.store.db import Store
from analytics.store.instances import place_files, series_dir
from analytics.store.mask_reviews import rejections_of

log = logging.getLogger("hepatrack.features")

__all__ = ["auto_mask_summary", "latest_auto_mask", "save_auto_seg"]


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
    paths = repo.instance_paths(store, series_id)
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
    out = dict(summary)
    target = repo.auto_seg_target(store, volume.series_uid, summary["sha256"])
    if target is None:
        return {**out, "seg_error": "series not in the store"}
    if target.stored_path:
        return {**out, "format": "seg", "path": target.stored_path,
                "sop_instance_uid": target.stored_sop_instance_uid}
    sid, skey = target.series_id, target.source_key
    order = [str(u) for u in volume.meta.get("sop_instance_uids") or []]
    try:
        if len(order) != volume.shape[0]:
            raise FeatureError(f"automatic SEG: {len(order)} source instances for "
                               f"{volume.shape[0]} slices (a multi-frame or research series)")
        sources = _source_headers(store, settings, sid, order)
        data = write_auto_seg(masks.masks, sources, method=str(masks.method),
                              version=summary["version"], digest=summary["sha256"])
        rel = auto_mask_path(series_dir(skey), summary["sha256"])
        place_files(settings, [(rel, data)])
    except (HepaTrackError, OSError) as e:
        log.warning("automatic SEG of %s not written: %s", volume.series_uid, e)
        return {**out, "seg_error": str(e)}
    return {**out, "format": "seg", "path": rel, "sop_instance_uid": seg_uids(
        summary["sha256"])[1]}


def latest_auto_mask(store: Store, series_uid: str) -> dict[str, Any] | None:
    """The automatic mask the series' newest feature run measured, as a dict (``mask_id``,
    ``format``, ``path``, ``method``, ``segments``, ``extractor_version``, ``status``:
    organ -> ``measured`` / ``withheld: …`` / ``rejected: …``), or None."""
    with store.session() as s:
        sid = repo.series_id(s, series_uid)
        found = repo.latest_run_mask(s, sid) if sid is not None else None
        if found is None:
            return None
        mask, extractor_version = found
        rejected = rejections_of(s, mask.id)
    return {"mask_id": mask.id, "format": mask.format, "path": mask.path,
            "method": mask.method, "segments": dict(mask.segments),
            "extractor_version": extractor_version,
            "status": organ_status(mask.segments, rejected)}
