"""Quantitative MR of the liver: which map a series is, its unit, and the liver values.

Recognition (:func:`recognise`) reads the header facts of
:func:`analytics.ingest.quant_header.quant_header`:

- Image Type words: ``PDFF``, ``FF``, ``FAT_FRACTION``, ``FATFRAC`` (Philips mDIXON Quant,
  Siemens Dixon/LiverLab, GE IDEAL IQ) -> fat-fraction map; ``R2STAR``/``R2_STAR`` -> R2*
  map; ``STIFFNESS``/``ELASTOGRAM`` -> MR elastography stiffness map; ``DIXON`` with
  ``FAT``/``WATER`` (or ``F``/``W``) -> two-point Dixon magnitude images. ``WAVE``,
  ``CONFIDENCE``, ``T2STAR`` and in/opposed-phase images are recognised and not measured.
- The series description, by the same conventions (``PDFF``, ``FatFrac``, ``FF``,
  ``R2*``, ``Stiffness``, ``Elastogram``, ``Dixon fat``/``water``). When Image Type and
  description name different maps, nothing is measured.

The unit (:func:`resolve_scale`) comes from the header, in this order: a Real World Value
Mapping with its Measurement Units code (``%``, ``1``, ``kPa``, ``Pa``, ``/s``, ``Hz``;
applied to the stored values, so the volume's rescale is undone first), then the Rescale
Type. A fat-fraction map without either is read from its own range: subcutaneous fat reads
close to 100 %, so a 99.5th percentile of the body between 70 and 100.5 means percent,
between 700 and 1005 per mille, between 0.7 and 1.005 a fraction; anything else withholds
the value. A stiffness or R2* map without a stated unit is not measured: a wrong number
shown as a measurement is worse than none.

Measurement (:func:`measure_map`): median and mean inside the liver mask eroded in-plane
by ``erosion_voxels`` pixels on each slice (maps are often few, thick slices: MR
elastography typically 4 slices of 8-10 mm, where a 3-D erosion would leave nothing).
The Dixon signal fat fraction F/(F+W) is computed voxel by voxel from the fat image and
the water image of the same grid (:func:`signal_fat_fraction`); it is not PDFF (T1 and
T2* weighting and the magnitude noise floor bias it, most at high fat fractions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "DIXON_FAT", "DIXON_WATER", "MAP_FEATURES", "PDFF", "R2STAR", "STIFFNESS", "MapReading",
    "Scale", "measure_map", "measurement_plan", "read_map", "recognise", "resolve_scale",
    "roi_in_plane", "signal_fat_fraction",
]

PDFF, R2STAR, STIFFNESS = "pdff", "r2star", "mre_stiffness"
DIXON_FAT, DIXON_WATER = "dixon_fat", "dixon_water"
#: recognised, never measured: the words that say what they are
NOT_MEASURED = "not_measured"

#: the features each measured map gives
MAP_FEATURES: dict[str, tuple[str, ...]] = {
    PDFF: ("liver_pdff_median_pct", "liver_pdff_mean_pct"),
    R2STAR: ("liver_r2star_median_per_s",),
    STIFFNESS: ("liver_mre_stiffness_median_kpa", "liver_mre_stiffness_mean_kpa"),
    DIXON_FAT: ("liver_signal_fat_fraction_pct",),
}
#: the unit each map is measured in
MEASURED_IN = {PDFF: "%", R2STAR: "1/s", STIFFNESS: "kPa"}
#: words for each map in messages
MAP_WORDS = {PDFF: "PDFF map", R2STAR: "R2* map", STIFFNESS: "MR elastography stiffness map",
             DIXON_FAT: "Dixon fat image", DIXON_WATER: "Dixon water image"}

_TYPE_WORDS: dict[str, frozenset[str]] = {
    PDFF: frozenset({"PDFF", "FF", "FAT_FRACTION", "FATFRACTION", "FATFRAC", "PDFF_MAP",
                     "FF_MAP", "PROTON_DENSITY_FAT_FRACTION"}),
    R2STAR: frozenset({"R2STAR", "R2_STAR", "R2*", "R2STAR_MAP", "R2_STAR_MAP"}),
    STIFFNESS: frozenset({"STIFFNESS", "STIFFNESS_MAP", "ELASTOGRAM", "ELASTOGRAPHY"}),
}
_NOT_MEASURED_TYPE = {
    "WAVE": "MR elastography wave image: stiffness is read on the stiffness map",
    "WAVE_IMAGE": "MR elastography wave image: stiffness is read on the stiffness map",
    "CONFIDENCE": "MR elastography confidence map: not a measurement",
    "CONFIDENCE_MAP": "MR elastography confidence map: not a measurement",
    "T2STAR": "T2* map: R2* is measured on R2* maps only",
    "T2_STAR": "T2* map: R2* is measured on R2* maps only",
    "T2STAR_MAP": "T2* map: R2* is measured on R2* maps only",
    "IN_PHASE": "in-phase image: no fat fraction without the fat and water images",
    "OPP_PHASE": "opposed-phase image: no fat fraction without the fat and water images",
    "OUT_PHASE": "opposed-phase image: no fat fraction without the fat and water images",
}
_DESCRIPTION: tuple[tuple[str, re.Pattern[str]], ...] = (
    (PDFF, re.compile(r"pdff|fat[\s_-]*frac|\bff\b|fatfrac")),
    (R2STAR, re.compile(r"r2\s*\*|r2[\s_-]*star")),
    (STIFFNESS, re.compile(r"stiffness|elastogram")),
)
_DESCRIPTION_NOT_MEASURED: tuple[tuple[str, re.Pattern[str]], ...] = (
    (_NOT_MEASURED_TYPE["WAVE"], re.compile(r"\bwave")),
    (_NOT_MEASURED_TYPE["CONFIDENCE"], re.compile(r"confidence")),
    (_NOT_MEASURED_TYPE["T2STAR"], re.compile(r"t2\s*\*|t2[\s_-]*star")),
)
#: unit spellings (UCUM code or meaning, Rescale Type) -> (dimension, factor to the
#: target unit of that dimension)
_SPELLINGS: dict[str, tuple[str, float]] = {
    "%": ("%", 1.0), "percent": ("%", 1.0), "pct": ("%", 1.0),
    "1": ("%", 100.0), "{ratio}": ("%", 100.0), "ratio": ("%", 100.0),
    "fraction": ("%", 100.0), "no units": ("%", 100.0),
    "kpa": ("kPa", 1.0), "kilopascal": ("kPa", 1.0), "pa": ("kPa", 0.001),
    "pascal": ("kPa", 0.001),
    "/s": ("1/s", 1.0), "1/s": ("1/s", 1.0), "s-1": ("1/s", 1.0), "hz": ("1/s", 1.0),
    "per second": ("1/s", 1.0), "hertz": ("1/s", 1.0),
    "ms": ("ms", 1.0), "millisecond": ("ms", 1.0),
}
#: 99.5th percentile windows of a fat-fraction map's body values -> factor to percent
_FF_RANGES = ((70.0, 100.5, 1.0, "percent"), (700.0, 1005.0, 0.1, "per mille"),
              (0.7, 1.005, 100.0, "a fraction (0-1)"))


@dataclass(frozen=True)
class Scale:
    """Value in the target unit = ``slope`` x volume value + ``intercept``."""

    slope: float
    intercept: float
    unit: str
    source: str


@dataclass(frozen=True)
class MapReading:
    """What an MR series is, and how its values become the map's unit.

    ``kind`` is one of :data:`PDFF`, :data:`R2STAR`, :data:`STIFFNESS`,
    :data:`DIXON_FAT`, :data:`DIXON_WATER`, ``"not_measured"`` (recognised, never
    measured: ``withheld`` says what it is) or None (not a quantitative map).
    ``withheld`` is why no value is given; ``evidence`` what the kind was read from.
    """

    kind: str | None
    evidence: str = ""
    scale: Scale | None = None
    withheld: str | None = None

    @property
    def is_map(self) -> bool:
        return self.kind is not None


def _type_kinds(words: list[str]) -> tuple[set[str], str | None]:
    kinds = {k for k, allowed in _TYPE_WORDS.items() if allowed & set(words)}
    if "DIXON" in words or not kinds:
        if {"FAT", "F"} & set(words[2:]) and "DIXON" in words:
            kinds.add(DIXON_FAT)
        if {"WATER", "W"} & set(words[2:]) and "DIXON" in words:
            kinds.add(DIXON_WATER)
    other = next((why for w, why in _NOT_MEASURED_TYPE.items() if w in words), None)
    return kinds, other


def _description_kinds(text: str) -> tuple[set[str], str | None]:
    kinds = {k for k, pattern in _DESCRIPTION if pattern.search(text)}
    if not kinds and "dixon" in text:
        if re.search(r"\bfat\b", text):
            kinds.add(DIXON_FAT)
        if re.search(r"\bwater\b", text):
            kinds.add(DIXON_WATER)
    other = next((why for why, p in _DESCRIPTION_NOT_MEASURED if p.search(text)), None)
    return kinds, other


def recognise(header: dict[str, Any] | None, modality: str = "MR") -> MapReading:
    """Which quantitative map the series is, from Image Type and the series description.

    Parameters
    ----------
    header
        :func:`analytics.ingest.quant_header.quant_header` of the series (None: unknown).
    modality
        Only MR series are maps.

    Returns
    -------
    MapReading
        Without a scale (see :func:`resolve_scale`).
    """
    if modality.upper() != "MR" or not header:
        return MapReading(None)
    words = list(header.get("image_type") or [])
    text = " ".join(t for t in (header.get("description"), header.get("protocol")) if t)
    by_type, type_other = _type_kinds(words)
    by_text, text_other = _description_kinds(text.lower())
    if type_other and not by_type:
        return MapReading(NOT_MEASURED, "Image Type", withheld=type_other)
    if by_type and by_text and not by_type & by_text:
        return MapReading(NOT_MEASURED, "Image Type and series description", withheld=(
            f"Image Type says {_names(by_type)}, the series description says "
            f"{_names(by_text)}: the map is not identified, nothing is measured"))
    kinds, evidence = (by_type & by_text or by_type, "Image Type") if by_type else (
        by_text, "series description")
    if len(kinds) > 1:
        return MapReading(NOT_MEASURED, evidence, withheld=(
            f"{evidence} names several maps ({_names(kinds)}): nothing is measured"))
    if not kinds:
        if text_other:
            return MapReading(NOT_MEASURED, "series description", withheld=text_other)
        return MapReading(None)
    return MapReading(kinds.pop(), evidence)


def _names(kinds: set[str]) -> str:
    return " and ".join(MAP_WORDS[k] for k in sorted(kinds))


def _unit(text: str | None) -> tuple[str, float] | None:
    return _SPELLINGS.get(text.strip().lower()) if text else None


def resolve_scale(reading: MapReading, header: dict[str, Any], values: np.ndarray | None
                  ) -> MapReading:
    """``reading`` with the scale to its unit, or with why no value can be given.

    Parameters
    ----------
    reading
        From :func:`recognise`.
    header
        The series' quant header (with ``rescale_slope``/``rescale_intercept`` the volume
        already carries, and ``rescale_uniform``).
    values
        The volume's values (for a fat-fraction map without a stated unit: its range).
    """
    kind = reading.kind
    if kind not in MEASURED_IN:
        if kind in (DIXON_FAT, DIXON_WATER):
            return MapReading(kind, reading.evidence, Scale(1.0, 0.0, "1", "signal ratio"))
        return reading
    target = MEASURED_IN[kind]
    words = MAP_WORDS[kind]
    stated = []
    for m in header.get("rwvm") or []:
        unit = _unit(m.get("units_code")) or _unit(m.get("units_meaning"))
        if unit is not None:
            stated.append((unit, m))
    if stated:
        usable = [(u, m) for u, m in stated if u[0] == target and m.get("slope") is not None]
        if not usable:
            shown = ", ".join(str(m.get("units_code") or m.get("units_meaning"))
                              for _u, m in stated)
            return _withheld(reading, f"{words}: the header's Real World Value Mapping is in "
                             f"{shown}, not {target}")
        if header.get("rescale_uniform") is False:
            return _withheld(reading, f"{words}: the rescale differs between slices, so "
                             "the Real World Value Mapping cannot be applied")
        (_dim, factor), m = usable[0]
        rs = float(header.get("rescale_slope") or 1.0)
        ri = float(header.get("rescale_intercept") or 0.0)
        slope, intercept = float(m["slope"]), float(m.get("intercept") or 0.0)
        return MapReading(kind, reading.evidence, Scale(
            factor * slope / rs, factor * (intercept - slope * ri / rs), target,
            f"Real World Value Mapping ({m.get('units_code') or m.get('units_meaning')})"))
    rescale_unit = _unit(header.get("rescale_type"))
    if rescale_unit is not None:
        if rescale_unit[0] != target:
            return _withheld(reading, f"{words}: Rescale Type is {header.get('rescale_type')}, "
                             f"not {target}")
        return MapReading(kind, reading.evidence, Scale(
            rescale_unit[1], 0.0, target, f"Rescale Type ({header.get('rescale_type')})"))
    if kind == PDFF and values is not None:
        return _pdff_from_range(reading, values)
    return _withheld(reading, f"{words} without a stated unit (no Real World Value Mapping "
                     f"or Rescale Type): a {target} value cannot be established")


def _withheld(reading: MapReading, why: str) -> MapReading:
    return MapReading(reading.kind, reading.evidence, None, why)


def _pdff_from_range(reading: MapReading, values: np.ndarray) -> MapReading:
    body = values[np.isfinite(values) & (values > 0)]
    if body.size < 100:
        return _withheld(reading, "PDFF map without a stated unit and too few non-zero "
                         "voxels to read its scale")
    top = float(np.percentile(body, 99.5))
    for lo, hi, factor, words in _FF_RANGES:
        if lo <= top <= hi:
            return MapReading(reading.kind, reading.evidence, Scale(
                factor, 0.0, "%", f"image range: subcutaneous fat reads {top:g}, so the "
                f"map is stored as {words} (no unit in the header)"))
    return _withheld(reading, f"PDFF map without a stated unit, and its range (99.5th "
                     f"percentile {top:g}) does not identify percent, per mille or a "
                     "fraction")


def read_map(header: dict[str, Any] | None, modality: str,
             values: np.ndarray | None) -> MapReading:
    """:func:`recognise` then :func:`resolve_scale`."""
    reading = recognise(header, modality)
    if reading.kind is None or reading.kind == NOT_MEASURED or header is None:
        return reading
    return resolve_scale(reading, header, values)


def roi_in_plane(mask: np.ndarray, voxels: int, min_voxels: int) -> tuple[np.ndarray | None,
                                                                          int]:
    """``mask`` eroded in-plane by ``voxels`` pixels on each slice (axis 0 is the slice
    axis), fewer when that leaves fewer than ``min_voxels``; (None, 0) when empty."""
    cross = np.zeros((1, 3, 3), bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    mask = np.asarray(mask, bool)
    for n in range(voxels, -1, -1):
        roi = ndi.binary_erosion(mask, cross, iterations=n) if n else mask.copy()
        if np.count_nonzero(roi) >= min_voxels or (n == 0 and roi.any()):
            return roi, n
    return None, 0


def measure_map(image: np.ndarray, roi: np.ndarray, scale: Scale
                ) -> tuple[float | None, float | None]:
    """Median and mean of the map inside ``roi``, in the scale's unit."""
    v = image[roi]
    v = v[np.isfinite(v)].astype(np.float64) * scale.slope + scale.intercept
    if v.size == 0:
        return None, None
    return float(np.median(v)), float(np.mean(v))


def signal_fat_fraction(fat: np.ndarray, water: np.ndarray, roi: np.ndarray) -> float | None:
    """Median of F/(F+W) in percent inside ``roi`` (voxels with F+W > 0)."""
    f = np.abs(fat[roi].astype(np.float64))
    w = np.abs(water[roi].astype(np.float64))
    ok = np.isfinite(f) & np.isfinite(w) & (f + w > 0)
    if not ok.any():
        return None
    return float(np.median(100.0 * f[ok] / (f[ok] + w[ok])))


def measurement_plan(modality: str, header: dict[str, Any] | None, has_liver_mask: bool,
                     engine: bool) -> str:
    """One sentence: which liver measurements a series will get, and which not and why.

    Parameters
    ----------
    modality
        ``CT`` or ``MR`` (others: nothing).
    header
        The series' quant header (None when unknown).
    has_liver_mask
        A liver mask was delivered with the series.
    engine
        Automatic segmentation can run for this modality (CT always; MR with
        TotalSegmentator's MR task installed).
    """
    modality = (modality or "").upper()
    if modality == "CT":
        return ("CT: liver and spleen volume and attenuation will be measured where the "
                "organs are in the field of view" + (
                    "" if has_liver_mask else " (automatic segmentation)"))
    if modality != "MR":
        return f"{modality or 'unknown modality'}: no liver measurement"
    reading = recognise(header, modality)
    mask_ok = has_liver_mask or engine
    if reading.kind == NOT_MEASURED:
        return f"no measurement: {reading.withheld}"
    if reading.kind is None:
        what = "MR image (not a quantitative map): "
        return what + ("liver volume and shape will be measured" if mask_ok else
                       "no measurement: needs a liver mask")
    words = MAP_WORDS[reading.kind]
    if reading.kind == DIXON_WATER:
        return (f"{words}: used with the Dixon fat image for the signal fat fraction "
                "(measured on the fat image)")
    if header is not None and reading.kind in MEASURED_IN:
        checked = resolve_scale(reading, header, None)
        if checked.withheld and reading.kind != PDFF:
            return f"{words}: no measurement: {checked.withheld}"
        if checked.withheld:
            what = "liver PDFF will be measured if the image range identifies its scale"
        else:
            what = {PDFF: "liver PDFF (median, mean) will be measured; >= 5 % is "
                          "steatosis",
                    R2STAR: "liver R2* will be measured",
                    STIFFNESS: "liver stiffness (median, mean) will be measured; >= 5 kPa "
                               "suggests cirrhosis"}[reading.kind]
    else:
        what = ("signal fat fraction F/(F+W) (not PDFF) will be measured with the Dixon "
                "water image of the same study")
    if not mask_ok:
        return f"{words}: no measurement: needs a liver mask"
    return f"{words}: {what}"
