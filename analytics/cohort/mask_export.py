"""``hepatrack export --what masks --out DIR``: the stored DICOM SEGs and a manifest.

Every mask kept as a DICOM SEG is copied as stored (pseudonymised: delivered SEGs were
de-identified at ingest, automatic ones are written over the de-identified CT): the
automatic masks HepaTrack measured on and the SEGs delivered with the images. The
manifest ``manifest.csv`` has one row per file: ``series_uid``, ``patient`` (pseudonym),
``organs``, ``automatic``, ``method``, ``status`` (per organ: ``measured``, ``withheld: …``,
``rejected: …``, or ``delivered``) and ``file`` (the name in DIR). File names are
generated, never taken from the store's paths. Each file is written under a temporary
name and renamed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pandas as pd

from analytics import audit
from analytics.config import Settings
from analytics.csv_safe import write_csv
from analytics.errors import CohortError, HepaTrackError
from analytics.ingest.loader import stored_file
from analytics.masks_review import list_masks
from analytics.store.db import Store
from analytics.store.features import seg_paths

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("series_uid", "patient", "organs", "automatic", "method", "status",
                    "file")


def _target_dir(out: str | os.PathLike[str]) -> Path:
    path = Path(out).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise CohortError(f"--out {out}: expected a folder for --what masks, found a file")
    if not path.parent.is_dir():
        raise CohortError(f"--out {out}: folder {path.parent} does not exist")
    return path


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_masks(store: Store, settings: Settings, out: str | os.PathLike[str], *,
                 step: Callable[..., AbstractContextManager[Any]] = audit.unaudited
                 ) -> dict[str, Any]:
    """Copy every stored DICOM SEG (automatic and delivered) into folder ``out``.

    Parameters
    ----------
    store, settings
        The store and the home its files live in.
    out
        Folder to write into (created if its parent exists).
    step
        Called with the audit record's ``detail`` around the copy: the use case's audited
        step (:func:`analytics.usecases.cohort.export`); none by default.

    Returns
    -------
    dict
        ``what`` (``masks``), ``out`` (absolute folder), ``rows`` (files written),
        ``columns`` (of the manifest), ``manifest`` (its path).

    Raises
    ------
    CohortError
        ``out`` is a file, its parent folder is missing, or a stored SEG cannot be read or
        written.
    """
    path = _target_dir(out)
    paths = seg_paths(store)
    masks = [m for m in list_masks(store) if m["mask_id"] in paths]
    rows = []
    with step(detail={"what": "masks", "rows": len(masks), "format": "dicom-seg"}):
        path.mkdir(exist_ok=True)
        for m in masks:
            kind = "automatic" if m["automatic"] else "delivered"
            name = f"{m['patient']}_{kind}_{m['mask_id']:06d}.dcm"
            try:
                _write(path / name, stored_file(settings, paths[m["mask_id"]]).read_bytes())
            except (OSError, HepaTrackError) as e:
                raise CohortError(f"mask {m['mask_id']} of series {m['series_uid']}: cannot "
                                  f"copy its SEG ({e})") from e
            rows.append({"series_uid": m["series_uid"], "patient": m["patient"],
                         "organs": ";".join(m["organs"]), "automatic": m["automatic"],
                         "method": m["method"],
                         "status": "; ".join(f"{o}: {s}" for o, s in m["status"].items()),
                         "file": name})
        manifest = path / MANIFEST
        write_csv(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), manifest, index=False)
    return {"what": "masks", "out": str(path), "rows": len(rows),
            "columns": list(MANIFEST_COLUMNS), "manifest": str(manifest)}
