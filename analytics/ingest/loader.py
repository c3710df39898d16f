"""Load a stored series back as a :class:`Volume` with its delivered masks.

Files under HEPATRACK_HOME were written by ingest after the safe parser vetted them, so
they are parsed in-process (header first, pixels with ``numpy.frombuffer``). Stored paths
are relative to the home directory and must stay inside it.
"""

from __future__ import annotations

from pathlib import Path

from analytics.config import Settings
from analytics.errors import HepaTrackError, IngestError, InvalidSeriesError, MaskError
from analytics.ingest.masks import read_mask
from analytics.ingest.reader import parse_trusted
from analytics.ingest.series import build_volume
from analytics.ingest.volume import MaskSet, Volume
from analytics.store import dicom

DELIVERED_FORMATS = ("seg", "rtstruct", "nifti")


def stored_file(settings: Settings, relative: str) -> Path:
    """The absolute path of a stored file; refuses paths that leave HEPATRACK_HOME.

    Raises
    ------
    IngestError
        An absolute path, a ``..`` escape, or a missing file.
    """
    home = settings.home.resolve()
    path = (home / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(home):
        raise IngestError(f"stored path {relative!r} is outside HEPATRACK_HOME")
    if not path.is_file():
        raise IngestError(f"stored file {relative!r} is missing from HEPATRACK_HOME")
    return path


def _labels(segments: dict | None) -> dict[int, str] | None:
    """NIfTI label values from the mask row: ``{"liver": {"label": 1}, ...}`` -> ``{1: "liver"}``.

    A structure stored from several values (``{"labels": [1, 2]}``) keeps them all.
    """
    out = {}
    for name, info in (segments or {}).items():
        if not isinstance(info, dict):
            continue
        values = info.get("labels") if isinstance(info.get("labels"), list) else [info.get("label")]
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool):
                out[value] = name
    return out or None


def decode_mask(data: bytes | Path, fmt: str, volume: Volume, settings: Settings, *,
                segments: dict | None = None, name: str | None = None) -> MaskSet:
    """A stored (or about to be stored) mask read onto ``volume``'s grid.

    The same reading serves ingest, which refuses a mask it cannot decode, and feature
    extraction. NIfTI label names come from the mask row's ``segments``.

    Raises
    ------
    MaskError
        The mask cannot be decoded or placed on the volume.
    """
    return read_mask(data, fmt, volume, name=name,
                     labels=_labels(segments) if fmt == "nifti" else None,
                     limits=settings.limits)


def load_volume(store, settings: Settings, series_uid: str, *, stack: str | None = None
                ) -> Volume:
    """The stored series ``series_uid`` as a volume, without its masks.

    A series of several stacks (an enhanced MR with magnitude and field-map frames, echoes,
    time points) is built as one stack: ``stack`` (an id or label from
    ``series.geometry["stacks"]``), else the stack recorded at ingest as the one biomarkers
    use, so a later change of the choosing rule never changes what stored features mean.

    Raises
    ------
    IngestError
        Unknown series, or a stored file missing or outside the home directory.
    InvalidSeriesError
        The series is stored as incomplete/invalid, its instances do not form a volume, or
        it has no stack ``stack``.
    """
    series = dicom.series_files(store, series_uid)
    if series is None:
        raise IngestError(f"series {series_uid} is not in the store")
    if series.status != "complete":
        raise InvalidSeriesError(f"series {series_uid} is {series.status}: "
                                 f"{series.status_reason or 'no reason recorded'}")
    recorded = series.geometry.get("stack") or {}
    paths = series.paths
    if not paths:
        raise InvalidSeriesError(f"series {series_uid} has no stored instances")
    instances = [parse_trusted(rel, stored_file(settings, rel).read_bytes(), settings.limits)
                 for rel in paths]
    return build_volume(instances, settings.limits, stack=stack or recorded.get("id"))


def load_series(store, settings: Settings, series_uid: str, *, stack: str | None = None
                ) -> tuple[Volume, MaskSet | None]:
    """The stored series ``series_uid`` as a volume, and its delivered masks (or None).

    ``stack`` as for :func:`load_volume`. Masks delivered with the images (SEG, RTSTRUCT,
    NIfTI) are read onto the volume's grid; when several cover the same structure, the most
    recent wins. A mask that cannot be read is skipped and its reason listed in
    ``volume.meta["mask_errors"]``; feature extraction then says so instead of segmenting
    in its place.

    Raises
    ------
    IngestError
        Unknown series, or a stored file missing or outside the home directory.
    InvalidSeriesError
        The series is stored as incomplete/invalid, its instances do not form a volume, or
        it has no stack ``stack``.
    """
    volume = load_volume(store, settings, series_uid, stack=stack)
    mask_rows = [(m.format, m.path, m.segments, m.automatic, m.method)
                 for m in dicom.delivered_masks(store, series_uid, DELIVERED_FORMATS)]
    merged: dict = {}
    first = None
    errors = []
    for fmt, rel, segments, automatic, method in mask_rows:
        try:
            ms = decode_mask(stored_file(settings, rel), fmt, volume, settings,
                             segments=segments, name=rel)
        except (MaskError, HepaTrackError) as e:
            errors.append(f"{rel}: {e}")
            continue
        first = first or (fmt, automatic, method)
        for name, mask in ms.masks.items():
            merged.setdefault(name, mask)
    if errors:
        volume.meta["mask_errors"] = errors
    if first is None:
        return volume, None
    return volume, MaskSet(masks=merged, source=first[0], automatic=bool(first[1]),
                           method=first[2])
