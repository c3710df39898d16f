"""A series loader for tests: reads ``HOME/npz/<series_uid>.npz`` written by ``save``.

It has the signature of ``analytics.ingest.loader.load_series`` so the batch runner's
workers can load series themselves, by name, in other processes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analytics.config import Settings
from analytics.errors import InvalidSeriesError
from analytics.ingest.volume import MaskSet, Volume

LOADER = "tests.features.npz_loader:load_series"


def path_for(settings: Settings, series_uid: str) -> Path:
    return settings.home / "npz" / f"{series_uid}.npz"


def save(settings: Settings, volume: Volume, masks: MaskSet | None) -> Path:
    p = path_for(settings, volume.series_uid)
    p.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"hu": volume.array, "spacing": np.asarray(volume.spacing_mm),
              "direction": np.asarray(volume.direction),
              "phase": np.asarray(volume.contrast_phase or "")}
    for name, m in (masks.masks.items() if masks else []):
        arrays[f"mask_{name}"] = m
    np.savez_compressed(p, **arrays)
    return p


def load_series(store, settings: Settings, series_uid: str) -> tuple[Volume, MaskSet | None]:
    p = path_for(settings, series_uid)
    if not p.exists():
        raise InvalidSeriesError(f"series {series_uid}: no pixel data at {p.name}")
    with np.load(p) as z:
        masks = {k.removeprefix("mask_"): z[k].astype(bool) for k in z.files
                 if k.startswith("mask_")}
        phase = str(z["phase"]) or None
        vol = Volume(array=z["hu"].astype(np.float32), spacing_mm=tuple(z["spacing"]),
                     direction=z["direction"], modality="CT", series_uid=series_uid,
                     contrast_phase=phase)
    return vol, (MaskSet(masks=masks, source="seg") if masks else None)
