"""The key image a patient switch shows, rendered once per series and kept in the store.

Showing a series' key image used to read every file of the series and its masks, orient
and resample them and render the key slice, at each first view in a session (seconds on
the demo cohort). A :class:`KeyView` holds what the Patient and MDT pages draw before
anyone touches the slider: the key slice as a PNG (liver window on CT, organ outlines on)
and the facts of every slice the slider covers (count, key slice, z, liver area, legend,
notes). It is rendered from the same :class:`~analytics.usecases.keyimage.KeyImageStack`
as before (so the picture is the same, pixel for pixel) and kept in the store with the
version of its inputs (:func:`analytics.store.key_images.inputs_version`): a changed or
replaced series, mask, outline review or feature run is rendered again, never served
stale. Other slices, windows and the outlines switched off are rendered from the stack
when asked for.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from analytics.errors import HepaTrackError, IngestError
from analytics.store import key_images
from analytics.store.version import data_version
from analytics.usecases.keyimage import KeyImageStack, load_key_image, png_bytes, render_slice

__all__ = ["FORMAT_VERSION", "KeyView", "from_bytes", "key_view", "render_key_view",
           "render_missing", "render_missing_if_changed", "to_bytes"]

#: bumped whenever the rendering or the stored layout changes: every stored view is
#: rendered again
FORMAT_VERSION = 1
_MAGIC = b"HTKV"


@dataclass(frozen=True)
class KeyView:
    """The key slice of a series, rendered, and the facts of the slider's slices.

    Attributes mirror :class:`~analytics.usecases.keyimage.KeyImageStack` (``z_mm`` and
    the liver areas per slice instead of the arrays); ``png`` is slice ``key_index`` in
    the default window (liver window on CT, automatic on MR) with the organ outlines;
    ``version`` the inputs' version it was rendered from.
    """

    series_uid: str
    version: str
    modality: str
    n_slices: int
    key_index: int
    z_mm: tuple[float, ...]
    liver_cm2: tuple[float, ...]
    pixel_mm: float
    structures: tuple[str, ...]
    mask_source: str | None
    automatic: bool
    notes: tuple[str, ...]
    labels_text: dict[str, str]
    png: bytes

    def liver_area_cm2(self, k: int) -> float:
        """Liver cross-section of slice ``k`` in cm² (as the stack gives it)."""
        return self.liver_cm2[k]


def render_key_view(stack: KeyImageStack, version: str) -> KeyView:
    """The :class:`KeyView` of ``stack`` (rendered now) for inputs of ``version``."""
    return KeyView(
        series_uid=str(stack.series_uid), version=version, modality=stack.modality,
        n_slices=stack.n_slices, key_index=int(stack.key_index),
        z_mm=tuple(float(z) for z in stack.z_mm),
        liver_cm2=tuple(stack.liver_area_cm2(k) for k in range(stack.n_slices)),
        pixel_mm=float(stack.pixel_mm), structures=tuple(stack.structures),
        mask_source=stack.mask_source, automatic=bool(stack.automatic),
        notes=tuple(stack.notes), labels_text=dict(stack.labels_text),
        png=png_bytes(render_slice(stack, stack.key_index)))


def to_bytes(view: KeyView) -> bytes:
    """The stored form: magic, format version, JSON facts, then the PNG."""
    facts = asdict(view)
    facts.pop("png")
    head = json.dumps(facts, separators=(",", ":")).encode()
    return _MAGIC + struct.pack("<II", FORMAT_VERSION, len(head)) + head + view.png


def from_bytes(data: bytes) -> KeyView | None:
    """The view :func:`to_bytes` stored; None for another format version or a damaged row
    (it is then rendered again)."""
    if len(data) < 12 or data[:4] != _MAGIC:
        return None
    fmt, n = struct.unpack("<II", data[4:12])
    if fmt != FORMAT_VERSION or len(data) < 12 + n:
        return None
    try:
        facts = json.loads(data[12:12 + n])
        return KeyView(**{**facts, "z_mm": tuple(facts["z_mm"]),
                          "liver_cm2": tuple(facts["liver_cm2"]),
                          "structures": tuple(facts["structures"]),
                          "notes": tuple(facts["notes"])}, png=bytes(data[12 + n:]))
    except (ValueError, TypeError, KeyError):
        return None


def key_view(store, settings, series_uid: str) -> KeyView:
    """The key view of a stored series: the stored one when it was rendered from the
    series' current inputs, else rendered now (the whole series read, as
    :func:`~analytics.usecases.keyimage.load_key_image`) and stored.

    Raises
    ------
    IngestError, InvalidSeriesError
        If the series is unknown, incomplete or its files are missing.
    FeatureError
        If the volume cannot be oriented.
    """
    version = key_images.inputs_version(store, series_uid)
    if version is None:
        raise IngestError(f"series {series_uid} is not in the store")
    data = key_images.read(store, series_uid)
    view = from_bytes(data) if data is not None else None
    if view is not None and view.version == version and view.series_uid == series_uid:
        return view
    view = render_key_view(load_key_image(store, settings, series_uid), version)
    # inputs changed while the series was read (a feature run, a review): keep the
    # picture for this view, store it only if it is still current
    if key_images.inputs_version(store, series_uid) == version:
        key_images.write(store, series_uid, to_bytes(view))
    return view



def render_missing(store, settings, *, limit: int = 5000, budget_s: float | None = None,
                   pause: Callable[[], object] | None = None) -> dict[str, int]:
    """Render and store the key view of each patient's newest CT/MR series that has none
    for its current inputs (what a first patient switch would otherwise wait for).

    Parameters
    ----------
    limit
        At most this many patients' series are looked at (newest scans first).
    budget_s
        Stop starting new renders after this many seconds (None: no limit).
    pause
        Called before each series is looked at (a server waits there for a quiet moment).

    Returns
    -------
    dict
        ``rendered``, ``current`` (already stored) and ``failed`` (a series that cannot be
        shown: the page names why when it is opened) counts.
    """
    return _render_pass(store, settings, limit, budget_s, pause)[0]


def _render_pass(store, settings, limit: int, budget_s: float | None,
                 pause: Callable[[], object] | None) -> tuple[dict[str, int], bool]:
    """:func:`render_missing`'s counts, and whether every series was looked at."""
    t0 = time.monotonic()
    counts = {"rendered": 0, "current": 0, "failed": 0}
    for uid in key_images.newest_series(store, limit):
        if budget_s is not None and time.monotonic() - t0 > budget_s:
            return counts, False
        if pause is not None:
            pause()
        data = key_images.read(store, uid)
        stored = from_bytes(data) if data is not None else None
        if stored is not None and stored.version == key_images.inputs_version(store, uid):
            counts["current"] += 1
            continue
        try:
            key_view(store, settings, uid)
        except HepaTrackError:
            counts["failed"] += 1
            continue
        counts["rendered"] += 1
    return counts, True


def render_missing_if_changed(store, settings, *, limit: int = 5000,
                              budget_s: float | None = None,
                              pause: Callable[[], object] | None = None) -> dict[str, int]:
    """:func:`render_missing`, unless its last complete pass saw the store's current data
    version and this :data:`FORMAT_VERSION` (a server start then checks nothing: at 5,000
    patients that is thousands of queries). The data version changes with every write to
    a series, mask, outline review or feature run (``analytics.store.version``), so a
    changed series is looked at again; a switch checks its series' inputs anyway
    (:func:`key_view`), so a view is never served stale.

    Returns
    -------
    dict
        :func:`render_missing`'s counts, or ``{"unchanged": 1}`` when the pass was skipped.
    """
    token = f"{FORMAT_VERSION}:{limit}:{data_version(store)}"
    if key_images.last_pass(store) == token:
        return {"unchanged": 1}
    counts, complete = _render_pass(store, settings, limit, budget_s, pause)
    if complete:
        key_images.record_pass(store, token)
    return counts
