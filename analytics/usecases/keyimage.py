"""Key images: axial slices through the liver with organ masks overlaid.

A stored series is turned into a small *stack* once (per series and user, cached by the
app): the axial slices that cross the liver, in the radiological display convention, with
the liver, spleen and hepatic-vessel masks packed into one label array. Any slice of the
stack is then rendered to RGB in a few milliseconds for the slider, the patient page and
the MDT report. The key slice itself, rendered, is kept in the store per series
(:mod:`analytics.usecases.keyview`), so a patient switch reads no series.

Display convention (radiological, as on a PACS viewer): the patient's right on the
viewer's left, anterior at the top, looking from the feet. The canonical view of
:mod:`analytics.features.geometry` (axes inferior->superior, anterior->posterior,
right->left) is exactly that for each axial slice, so feet-first, sagittal-stacked or
flipped acquisitions are shown the same way.

Windows (CT): the default *liver window* is W 400 / L 50 HU, the abdominal soft-tissue
window in which liver, spleen, vessels and fat are all readable; the *narrow liver
window* W 150 / L 60 HU stretches the contrast between parenchyma and focal lesions or
steatosis. Both lie within the W 150-400 / L 50-60 HU range used for hepatic CT review
(e.g. Hoang et al., AJR 2010, "window width and level for CT"). MR has no absolute scale:
it is shown between the 1st and 99th percentile of the liver's (else the slice's) signal.

Masks come from the delivered SEG/RTSTRUCT/NIfTI when present; otherwise from the
automatic mask the series' latest feature run measured on, as stored (a DICOM SEG, see
:mod:`analytics.features.automask`): never segmented again at display time, so the outline
is the one behind the numbers. Each automatic outline is labelled: ``automatic
(<method>, HepaTrack <version>)``, ``automatic, withheld: <reason>`` when the quality gate
withheld its numbers, or ``automatic, rejected: <reason>`` after a clinician rejected it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from analytics.errors import FeatureError, HepaTrackError
from analytics.features.automask_store import latest_auto_mask
from analytics.features.geometry import orientation
from analytics.features.totalseg import MR_NEEDS_MASK
from analytics.ingest.loader import decode_mask, load_series, stored_file
from analytics.ingest.volume import MaskSet, Volume
from analytics.viz.palette import OKABE_ITO

__all__ = [
    "LIVER_WINDOW",
    "NARROW_LIVER_WINDOW",
    "OVERLAYS",
    "WINDOWS",
    "KeyImageStack",
    "Window",
    "automatic_label",
    "build_stack",
    "load_key_image",
    "png_bytes",
    "render_slice",
]


@dataclass(frozen=True)
class Window:
    """A display window: values in ``[level - width/2, level + width/2]`` map to 0-255."""

    width: float
    level: float
    name: str = ""

    @property
    def low(self) -> float:
        return self.level - self.width / 2.0

    @property
    def high(self) -> float:
        return self.level + self.width / 2.0

    @property
    def label(self) -> str:
        return f"{self.name} (W {self.width:g} / L {self.level:g} HU)".strip()


LIVER_WINDOW = Window(width=400.0, level=50.0, name="Liver")
NARROW_LIVER_WINDOW = Window(width=150.0, level=60.0, name="Narrow liver")
WINDOWS: dict[str, Window] = {"liver": LIVER_WINDOW, "narrow": NARROW_LIVER_WINDOW}

#: overlaid structures: (mask name, bit in the label array, colour, label)
OVERLAYS: tuple[tuple[str, int, str, str], ...] = (
    ("liver", 1, OKABE_ITO["bluish_green"], "Liver"),
    ("spleen", 2, OKABE_ITO["orange"], "Spleen"),
    ("liver_vessels", 4, OKABE_ITO["sky_blue"], "Hepatic vessels"),
)
#: slices kept at most in a stack (evenly spaced over the liver), bounding memory
MAX_SLICES = 64
#: slices of margin kept above and below the liver
MARGIN_SLICES = 2
_FILL_ALPHA = 0.22
_VESSEL_ALPHA = 0.55


@dataclass
class KeyImageStack:
    """Axial slices of one series ready for display.

    Attributes
    ----------
    series_uid
        The series shown.
    modality
        ``"CT"`` or ``"MR"``.
    image
        ``[n, rows, cols]`` float32 values (HU on CT), square pixels, display orientation.
    labels
        ``[n, rows, cols]`` uint8 bit flags of :data:`OVERLAYS` (0 where no mask).
    z_mm
        Patient superior-inferior coordinate (LPS z, mm) of each slice.
    pixel_mm
        In-plane pixel size after resampling to square pixels, mm.
    key_index
        The slice with the largest liver cross-section (the middle slice without a mask).
    structures
        Names of the masks present (subset of the :data:`OVERLAYS` names).
    mask_source
        ``seg``, ``rtstruct``, ``nifti``, ``auto`` or None (no mask).
    automatic
        True when the masks come from automatic segmentation.
    notes
        Why masks are missing or what was approximated, one line each.
    labels_text
        Structure -> how its outline was obtained, for the legend: ``delivered (seg)``,
        ``automatic (classical-v3, HepaTrack 1.3.0)``, ``automatic, withheld: …`` or
        ``automatic, rejected: …``.
    """

    series_uid: str | None
    modality: str
    image: np.ndarray
    labels: np.ndarray
    z_mm: np.ndarray
    pixel_mm: float
    key_index: int
    structures: tuple[str, ...] = ()
    mask_source: str | None = None
    automatic: bool = False
    notes: list[str] = field(default_factory=list)
    labels_text: dict[str, str] = field(default_factory=dict)

    @property
    def n_slices(self) -> int:
        return int(self.image.shape[0])

    def liver_area_cm2(self, k: int) -> float:
        """Liver cross-section of slice ``k`` in cm²."""
        return float((self.labels[k] & 1).astype(bool).sum()) * self.pixel_mm ** 2 / 100.0


def _square_pixels(image: np.ndarray, labels: np.ndarray, spacing_rc: tuple[float, float]
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """Resample rows/columns to the finer in-plane spacing (image linear, labels nearest)."""
    sr, sc = spacing_rc
    px = min(sr, sc)
    if abs(sr - sc) <= 1e-3 * px:
        return image, labels, float(sc)
    zoom = (1.0, sr / px, sc / px)
    return (ndi.zoom(image, zoom, order=1).astype(np.float32),
            ndi.zoom(labels, zoom, order=0), float(px))


def _slice_positions(volume: Volume, perm: tuple[int, int, int], flips: tuple[bool, ...],
                     n: int) -> np.ndarray:
    """LPS z (mm) of each canonical axial slice (nearest patient axis for oblique data)."""
    axis = perm[0]  # original array axis that became the S axis
    d = np.asarray(volume.direction, dtype=float)
    step = float(volume.spacing_mm[axis]) * float(d[2, 2 - axis])
    idx = np.arange(n, dtype=float)
    if flips[0]:
        idx = (n - 1) - idx
    return float(volume.origin_mm[2]) + idx * step


def automatic_label(method: str | None, version: str | None, status: str | None) -> str:
    """Legend text of an automatic outline: ``automatic (classical-v3, HepaTrack 1.3.0)``,
    ``automatic, withheld: <reason>`` or ``automatic, rejected: <reason>``."""
    if status and status != "measured":
        return f"automatic, {status}"
    # an engine label already names its version ("TotalSegmentator 2.18.0 total --fast",
    # "classical-v3 (HepaTrack extractor 1.4.0)" shown as "classical-v3, HepaTrack ...")
    if method and " (HepaTrack extractor " in method:
        method = method.replace(" (", ", ").removesuffix(")")
    own = version and not (method and ("HepaTrack" in method or method.startswith("TotalSeg")))
    named = ", ".join(x for x in (method, f"HepaTrack {version}" if own else None) if x)
    return f"automatic ({named})" if named else "automatic"


def build_stack(volume: Volume, masks: MaskSet | None, *, automatic: MaskSet | None = None,
                automatic_status: dict[str, str] | None = None,
                automatic_version: str | None = None,
                max_slices: int = MAX_SLICES) -> KeyImageStack:
    """The display stack of ``volume``: slices through the liver with masks packed in.

    Parameters
    ----------
    volume
        The image (any orientation; shown in radiological convention).
    masks
        Delivered masks on the volume grid, or None.
    automatic
        The stored automatic masks the latest feature run measured on (volume grid), used
        for the structures no delivered mask covers; never segmented here.
    automatic_status
        Organ -> ``measured``, ``withheld: <reason>`` or ``rejected: <reason>``.
    automatic_version
        Extractor version of that run (named in the legend).
    max_slices
        At most this many slices are kept, evenly spaced over the liver (with
        :data:`MARGIN_SLICES` around it), or over the whole series without a liver mask.

    Raises
    ------
    FeatureError
        If the volume's direction matrix is degenerate or the volume is empty.
    """
    if volume.array.ndim != 3 or min(volume.array.shape) == 0:
        raise FeatureError(f"series {volume.series_uid}: key image needs a 3-D volume, got "
                           f"shape {volume.array.shape}")
    orient = orientation(volume)
    image = orient.to_canonical(np.asarray(volume.array, dtype=np.float32))
    modality = (volume.modality or "CT").upper()
    canon, texts, source, any_auto = _overlay_masks(
        volume, orient, masks, automatic, automatic_status, automatic_version)
    notes = _mask_notes(canon, modality, any_auto)
    labels = np.zeros(image.shape, dtype=np.uint8)
    for name, bit, _c, _l in OVERLAYS:
        if name in canon:
            labels |= canon[name].astype(np.uint8) * np.uint8(bit)
    n = image.shape[0]
    keep = _kept_slices(labels, max_slices)
    z = _slice_positions(volume, orient.perm, orient.flips, n)[keep]
    img, lab, px = _square_pixels(image[keep], labels[keep], orient.spacing_mm[1:])
    area = (lab & 1).astype(bool).sum(axis=(1, 2))
    key = int(np.argmax(area)) if area.any() else len(keep) // 2
    present = tuple(name for name, bit, _c, _l in OVERLAYS if (lab & bit).any())
    return KeyImageStack(series_uid=volume.series_uid, modality=modality,
                         image=np.ascontiguousarray(img), labels=np.ascontiguousarray(lab),
                         z_mm=np.asarray(z, dtype=float), pixel_mm=px, key_index=key,
                         structures=present, mask_source=source if present else None,
                         automatic=any_auto and bool(present), notes=notes,
                         labels_text={k: v for k, v in texts.items() if k in present})


def _overlay_masks(volume: Volume, orient, masks: MaskSet | None, automatic: MaskSet | None,
                   automatic_status: dict[str, str] | None, automatic_version: str | None
                   ) -> tuple[dict[str, np.ndarray], dict[str, str], str | None, bool]:
    """Each overlaid structure's mask in the canonical view, delivered masks first.

    Returns ``(masks by name, legend text by name, mask source, any automatic)``.
    """
    canon: dict[str, np.ndarray] = {}
    texts: dict[str, str] = {}
    source: str | None = None
    any_auto = False
    for ms in (masks, automatic):
        if ms is None:
            continue
        for name, _bit, _c, _l in OVERLAYS:
            m = ms.get(name)
            if name in canon or m is None or m.shape != volume.array.shape or not m.any():
                continue
            canon[name] = orient.to_canonical(np.asarray(m, dtype=bool))
            if ms is automatic:
                any_auto = True
                texts[name] = automatic_label(ms.method, automatic_version,
                                              (automatic_status or {}).get(name))
            else:
                texts[name] = f"delivered ({ms.source})"
            source = source or ("auto" if ms is automatic else ms.source)
    return canon, texts, source, any_auto


def _mask_notes(canon: dict[str, np.ndarray], modality: str, any_auto: bool) -> list[str]:
    notes: list[str] = []
    if any_auto:
        notes.append("automatic outlines: an automatic segmentation, as measured; "
                     "approximate")
    if "liver" not in canon and modality == "MR":
        notes.append(f"{MR_NEEDS_MASK}; showing the whole series without a liver outline")
    elif "liver" not in canon:
        notes.append("no liver mask: showing the whole series without a liver outline")
    return notes


def _kept_slices(labels: np.ndarray, max_slices: int) -> np.ndarray:
    """Slice indices over the liver (with :data:`MARGIN_SLICES`), or over the whole series
    without a liver mask; at most ``max_slices``, evenly spaced."""
    n = labels.shape[0]
    liver_rows = np.flatnonzero((labels & 1).any(axis=(1, 2)))
    if len(liver_rows):
        lo = max(0, int(liver_rows[0]) - MARGIN_SLICES)
        hi = min(n, int(liver_rows[-1]) + 1 + MARGIN_SLICES)
    else:
        lo, hi = 0, n
    keep = np.arange(lo, hi)
    if len(keep) > max_slices:
        keep = np.unique(np.rint(np.linspace(lo, hi - 1, max_slices)).astype(int))
    return keep


def _mr_window(stack: KeyImageStack, k: int) -> Window:
    liver = (stack.labels & 1).astype(bool)
    values = stack.image[liver] if liver.any() else stack.image[k]
    lo, hi = np.percentile(values, [1, 99]) if values.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return Window(width=float(hi - lo), level=float((hi + lo) / 2), name="Auto")


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)


def window_to_grey(values: np.ndarray, window: Window) -> np.ndarray:
    """``values`` mapped linearly from ``[low, high]`` to 0-255 (clipped), uint8."""
    scaled = (np.asarray(values, dtype=np.float32) - window.low) * (255.0 / window.width)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def render_slice(stack: KeyImageStack, k: int, window: Window | None = None, *,
                 overlay: bool = True) -> np.ndarray:
    """Slice ``k`` as an RGB uint8 image ``[rows, cols, 3]``.

    Masks are drawn as a translucent fill with a solid one-pixel outline (vessels as a
    denser fill), so the grey values underneath stay readable.

    Raises
    ------
    IndexError
        If ``k`` is not a slice of the stack.
    """
    if not 0 <= k < stack.n_slices:
        raise IndexError(f"slice {k}: the stack has slices 0-{stack.n_slices - 1}")
    if window is None:
        window = LIVER_WINDOW if stack.modality == "CT" else _mr_window(stack, k)
    grey = window_to_grey(stack.image[k], window).astype(np.float32)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    if overlay:
        lab = stack.labels[k]
        for _name, bit, colour, _label in OVERLAYS:
            m = (lab & bit).astype(bool)
            if not m.any():
                continue
            c = _hex_rgb(colour)
            alpha = _VESSEL_ALPHA if bit == 4 else _FILL_ALPHA
            rgb[m] = (1 - alpha) * rgb[m] + alpha * c
            if bit != 4:
                edge = m & ~ndi.binary_erosion(m)
                rgb[edge] = c
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB uint8 image as PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def load_key_image(store, settings, series_uid: str) -> KeyImageStack:
    """The display stack of a stored series: pixels, delivered masks, and the automatic
    mask its latest feature run measured on (as stored), labelled with its status.

    Raises
    ------
    IngestError, InvalidSeriesError
        If the series is unknown, incomplete or its files are missing.
    FeatureError
        If the volume cannot be oriented.
    """
    volume, masks = load_series(store, settings, series_uid)
    if volume.series_uid is None:
        volume.series_uid = series_uid
    auto = latest_auto_mask(store, series_uid)
    automatic, notes = None, []
    if auto is not None and auto["path"] and auto["format"] == "seg":
        try:
            read = decode_mask(stored_file(settings, auto["path"]), "seg", volume, settings,
                               name="automatic mask")
            automatic = MaskSet(read.masks, source="auto", automatic=True,
                                method=auto["method"])
        except HepaTrackError as e:
            notes.append(f"automatic mask not read: {e}")
    elif auto is not None and auto["segments"]:
        notes.append("the automatic mask of the latest feature run was not kept as a file "
                     "(run the feature extraction again to keep it)")
    stack = build_stack(volume, masks, automatic=automatic,
                        automatic_status=auto["status"] if auto else None,
                        automatic_version=auto["extractor_version"] if auto else None)
    stack.notes.extend(notes)
    for err in volume.meta.get("mask_errors", []):
        stack.notes.append(f"mask not read: {err}")
    return stack
