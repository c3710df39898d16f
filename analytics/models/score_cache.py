"""The clinical scores' validation figures kept in a home.

A clinical score's cross-validated metrics and bootstrap intervals do not depend on the
model being trained, only on the rows, outcomes, folds, score and horizons they were
computed from; :mod:`analytics.models.crossval` keys them by a hash of that content and
keeps them here as JSON files (aggregates only, no row of any patient), so that a second
``hepatrack train`` of a cohort refits no score's recalibration.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from analytics.models.validation import Calibration

log = logging.getLogger(__name__)

#: the clinical scores' metrics and intervals kept in the home (files, newest kept)
DISK_CACHE_SIZE = 256


def clinical_cache_dir(home: Path) -> Path:
    """Where a home keeps its clinical scores' validation figures (aggregates only: no
    row of any patient), keyed by the content they were computed from."""
    return Path(home) / "cache" / "clinical_scores"


def read(cache_dir: Path | None, kind: str, key: str) -> Any:
    """The JSON stored under ``kind`` and ``key``; None when absent or unreadable (then
    it is computed again)."""
    if cache_dir is None:
        return None
    try:
        return json.loads((Path(cache_dir) / f"{kind}-{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write(cache_dir: Path | None, kind: str, key: str, doc: Any) -> None:
    """Store ``doc`` (written whole, then renamed); the oldest files beyond
    :data:`DISK_CACHE_SIZE` are removed. A failed write only logs: the figures are
    computed again next time."""
    if cache_dir is None:
        return
    d = Path(cache_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{kind}-{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, d / f"{kind}-{key}.json")
        files = sorted(d.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in files[:-DISK_CACHE_SIZE]:
            old.unlink(missing_ok=True)
    except (OSError, TypeError, ValueError) as e:
        log.warning("clinical score cache %s not written: %s", d, e)


def metrics_to_json(m: dict) -> dict:
    """Per-repeat metrics as JSON values (calibration records and curves spelled out)."""
    out = dict(m)
    if "calibration" in m:
        out["calibration"] = {
            h: {**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)},
                "curve": {"predicted": c.curve["predicted"].tolist(),
                          "observed": c.curve["observed"].tolist()}}
            for h, c in m["calibration"].items()}
    return out


def metrics_from_json(m: dict) -> dict:
    """The inverse of :func:`metrics_to_json`."""
    out = dict(m)
    if "calibration" in m:
        out["calibration"] = {h: Calibration(**{**c, "curve": pd.DataFrame(c["curve"])})
                              for h, c in m["calibration"].items()}
    return out
