"""All biomarkers of one series: ``extract_series_features(volume, masks, settings)``.

Pure: no store, no files. The batch runner (``analytics.features.batch``) loads series and
writes the results. Masks that come with the series come first; an organ without a
delivered mask is segmented automatically by the run's engine
(``FeatureSettings.segmentation``: TotalSegmentator when installed with its weights, else
the classical pipeline on CT; on MR nothing, and its features say it needs a delivered
mask), and every feature that depends on it is flagged ``automatic_segmentation`` with
the engine (``segmentation_engine``: name, version, task). When a delivered mask of the series could not be
read (``volume.meta["mask_errors"]``), nothing is segmented in its place: the features
that needed it say that the delivered mask failed, and why. Every liver and spleen mask
passes the quality gate (``analytics.features.quality``): an organ cut by the scan's edge
keeps its attenuation but not its volume, and an automatic mask that fails its checks
(plausibility, no abdomen in the field of view, liver and spleen disagreeing) is withheld
with the reason. Every feature carries a ``mask_source`` flag (one of
:data:`~analytics.features.registry.MASK_SOURCES`) and, when it has no value, a ``reason``.

The contrast phase is decided once, at ingest, and arrives as ``volume.contrast_phase``;
it is never re-derived here. When it is unknown on CT, the phase is estimated from the
aorta for the computations that need one, and that estimate is recorded beside the phase
(``FeatureResult.phase_estimate`` and flags), never as the phase itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.errors import FeatureError
from analytics.features import attenuation, measure, mr_quant
from analytics.features.families import FAMILIES, Extraction
from analytics.features.geometry import orientation
from analytics.features.organ_masks import (
    mask_failure,
    needs_mask,
    organ_masks,
    quality_gate,
)
from analytics.features.registry import AUTOMATIC, FEATURES, HEADER, WITHHELD
from analytics.features.settings import EXTRACTOR_VERSION, WITHHELD_MASKS, FeatureSettings
from analytics.ingest.volume import MaskSet, Volume
from analytics.vocabulary import unit

__all__ = ["EXTRACTOR_VERSION", "WITHHELD_MASKS", "FeatureResult", "FeatureSettings",
           "FeatureValue", "extract_series_features", "feature_source"]


@dataclass
class FeatureValue:
    """One computed biomarker."""

    value: float | None
    unit: str
    flags: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureResult:
    """Every biomarker of one series, with how the masks were obtained.

    Attributes
    ----------
    values
        Feature name -> value, unit and flags. Features that could not be computed are
        present with ``value=None`` and a ``reason`` flag.
    mask_source, mask_automatic, mask_method
        Where the liver/spleen masks came from (``"seg"``, ``"auto"``, ...).
    segments
        Structure name -> ``{"voxels": n, "automatic": bool}``.
    contrast_phase
        The phase decided at ingest (``volume.contrast_phase``), or None.
    phase_source
        Which phase the phase-dependent computations used: ``"ingest"``, ``"aorta_estimate"``
        (ingest did not know it) or None (neither).
    phase_estimate, aorta_hu
        The phase estimated from the aorta and the aorta's median HU, when an estimate was
        made (CT only); an estimate, never the series' phase.
    mask_sources
        Organ -> where its mask came from (``seg``, ``rtstruct``, ``nifti``, ``automatic``
        or ``withheld``).
    withheld
        Organ -> why every number of its mask was withheld (quality gate, failed delivery).
    auto_masks
        The automatic masks on the volume grid (None when all were delivered, and
        dropped by the batch runner before results travel back from workers).
    """

    series_uid: str | None
    modality: str
    values: dict[str, FeatureValue]
    mask_source: str
    mask_automatic: bool
    mask_method: str | None
    segments: dict[str, dict[str, Any]]
    contrast_phase: str | None
    phase_source: str | None
    settings: dict[str, Any]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    auto_masks: MaskSet | None = None
    phase_estimate: str | None = None
    aorta_hu: float | None = None
    mask_sources: dict[str, str] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """The value of ``name`` (None if absent or not computable)."""
        fv = self.values.get(name)
        return fv.value if fv else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (no arrays)."""
        return {
            "series_uid": self.series_uid, "modality": self.modality,
            "values": {k: {"value": v.value, "unit": v.unit, "flags": v.flags}
                       for k, v in self.values.items()},
            "mask_source": self.mask_source, "mask_automatic": self.mask_automatic,
            "mask_method": self.mask_method, "segments": self.segments,
            "contrast_phase": self.contrast_phase, "phase_source": self.phase_source,
            "phase_estimate": self.phase_estimate, "aorta_hu": self.aorta_hu,
            "mask_sources": self.mask_sources, "withheld": self.withheld,
            "settings": self.settings, "seconds": self.seconds, "warnings": self.warnings,
        }


def _check_volume(volume: Volume) -> str:
    arr = volume.array
    if not isinstance(arr, np.ndarray) or arr.ndim != 3 or min(arr.shape) < 1:
        raise FeatureError(f"series {volume.series_uid}: image must be a 3-D array, got "
                           f"{getattr(arr, 'shape', type(arr))}")
    sp = np.asarray(volume.spacing_mm, dtype=float)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise FeatureError(f"series {volume.series_uid}: spacing_mm must be 3 positive "
                           f"numbers, got {volume.spacing_mm}")
    modality = (volume.modality or "").upper()
    if modality not in ("CT", "MR"):
        raise FeatureError(f"series {volume.series_uid}: modality {volume.modality!r} is not "
                           "supported (expected CT or MR)")
    return modality


def extract_series_features(volume: Volume, masks: MaskSet | None,
                            settings: FeatureSettings | None = None) -> FeatureResult:
    """Compute every core biomarker of one series, family by family
    (:data:`analytics.features.families.FAMILIES`).

    Parameters
    ----------
    volume
        The image (HU for CT) with its geometry.
    masks
        Delivered masks on the volume grid (``liver``, ``spleen``, ``liver_vessels``,
        ``lesion``, optionally ``aorta``), or None.
    settings
        Extraction parameters; defaults when None.

    Returns
    -------
    FeatureResult
        Values with units and flags; see the vocabulary for definitions.

    Raises
    ------
    FeatureError
        If the volume or a mask is malformed (shape, spacing, modality, direction).
    """
    t0 = time.perf_counter()
    settings = settings or FeatureSettings()
    modality = _check_volume(volume)
    orient = orientation(volume)
    spacing = orient.spacing_mm
    warnings: list[str] = []
    canon, automatic, auto_set, method = organ_masks(volume, masks, modality, orient,
                                                     settings, warnings)
    image = orient.to_canonical(volume.array)
    withheld = dict(volume.meta.get(WITHHELD_MASKS) or {})
    searched = ("liver", "spleen") if auto_set is not None else ()
    partial = quality_gate(canon, automatic, image, spacing, withheld, warnings, searched,
                           modality)
    x = Extraction(image=image, spacing=spacing, voxel_ml=float(np.prod(spacing)) / 1000.0,
                   modality=modality, settings=settings, canon=canon, automatic=automatic,
                   partial=partial, warnings=warnings,
                   delivered_lesion=masks is not None and masks.get("lesion") is not None,
                   ingest_phase=attenuation.normalise_phase(volume.contrast_phase))
    if modality == "MR":
        x.quant = mr_quant.read_map(volume.meta.get("quant_header"), modality, image)
        water = volume.meta.get("dixon_water")
        if water is not None and np.shape(water) == volume.array.shape:
            x.dixon_water = orient.to_canonical(np.asarray(water))
    x.decide_phase()
    for family in FAMILIES:
        family.compute(x)
    x.flags["contrast_phase"] = _phase_flags(x.ingest_phase, x.estimate, x.aorta_hu,
                                             modality, warnings)
    failed = mask_failure(volume)
    sources = _mask_sources(automatic, masks, withheld)
    if failed:  # organs the failed delivered mask should have given are not automatic
        for organ in ("liver", "spleen"):
            sources.setdefault(organ, WITHHELD)
    result_values = _with_flags(x.values, x.flags, automatic, modality, x.phase,
                                x.liver_stats, sources, withheld, failed,
                                engine=method if auto_set is not None else None)
    segments = {name: {"voxels": int(np.count_nonzero(m)),
                       "automatic": automatic.get(name, False)} for name, m in canon.items()}
    any_auto = any(automatic.get(o, False) for o in ("liver", "spleen"))
    source = "auto" if any_auto and not (masks and masks.masks) else (
        masks.source if masks is not None else "failed" if failed else "auto")
    return FeatureResult(
        series_uid=volume.series_uid, modality=modality, values=result_values,
        mask_source=source, mask_automatic=any_auto, mask_method=method if any_auto else (
            masks.method if masks is not None else None),
        segments=segments, contrast_phase=x.ingest_phase, phase_source=x.phase_source,
        settings=settings.as_dict(), seconds=time.perf_counter() - t0, warnings=warnings,
        auto_masks=auto_set, phase_estimate=x.estimate,
        aorta_hu=round(x.aorta_hu, 1) if np.isfinite(x.aorta_hu) else None,
        mask_sources=sources, withheld=withheld)


def _phase_flags(ingest_phase: str | None, estimate: str | None, aorta_hu: float,
                 modality: str, warnings: list[str]) -> dict[str, Any]:
    """Flags of the ``contrast_phase`` feature: the ingest phase, any estimate beside it."""
    flags: dict[str, Any] = {}
    if estimate is not None:
        flags["aorta_estimate"] = estimate
        flags["aorta_hu"] = round(aorta_hu, 1)
        if ingest_phase is not None and estimate != ingest_phase:
            warnings.append(f"the aorta ({aorta_hu:.0f} HU) suggests {estimate}, the phase "
                            f"stated at ingest is {ingest_phase}; the ingest phase is used")
    if ingest_phase is None:
        flags["reason"] = "phase not stated in the DICOM header at ingest" + (
            f"; the aorta suggests {estimate} (an estimate, used for phase-dependent "
            "features and flagged on them)" if estimate is not None
            else "; no aorta found to estimate it" if modality == "CT" else "")
    return flags


def _mask_sources(automatic: dict[str, bool], masks: MaskSet | None,
                  withheld: dict[str, str]) -> dict[str, str]:
    """Organ -> ``seg``/``rtstruct``/``nifti`` (delivered), ``automatic`` or ``withheld``."""
    delivered = (masks.source if masks is not None and not masks.automatic else AUTOMATIC)
    out = {organ: AUTOMATIC if auto else delivered for organ, auto in automatic.items()}
    for organ, m in (masks.masks.items() if masks is not None else ()):
        if m is not None and organ not in out:
            out[organ] = delivered  # delivered empty: e.g. a lesion mask with no lesion
    for organ in withheld:
        if organ not in out:
            out[organ] = WITHHELD
    return out


def _depends_on(name: str) -> tuple[str, ...]:
    if name.startswith("liver_spleen") or name == "steatosis_grade":
        return ("liver", "spleen")
    if name.startswith("spleen"):
        return ("spleen",)
    if name.startswith("lesion"):
        return ("lesion",)
    if name.startswith("liver"):
        return ("liver",)
    return ()


def _with_flags(values: dict[str, float | None], extra: dict[str, dict[str, Any]],
                automatic: dict[str, bool], modality: str, phase: str | None,
                liver_stats: measure.RoiStats | None, sources: dict[str, str],
                withheld: dict[str, str], failed: str | None = None,
                engine: str | None = None) -> dict[str, FeatureValue]:
    """Feature values with their flags; ``engine`` (the automatic segmentation's label,
    e.g. ``TotalSegmentator 2.18.0 total --fast``) goes on every value it gave."""
    out: dict[str, FeatureValue] = {}
    for name, value in values.items():
        if name not in FEATURES:
            continue
        if modality not in FEATURES[name].modalities:
            continue
        flags: dict[str, Any] = dict(extra.get(name, {}))
        if any(automatic.get(o, False) for o in _depends_on(name)):
            flags["automatic_segmentation"] = True
            if engine:
                flags["segmentation_engine"] = engine
        flags["mask_source"] = feature_source(name, sources)
        if value is not None and not np.isfinite(value):
            value = None
            flags["reason"] = "not finite"
        if value is None and "reason" not in flags:
            held = [o for o in _depends_on(name) if o in withheld]
            flags["reason"] = (f"{held[0]} mask withheld: {withheld[held[0]]}" if held
                               else _why_missing(name, phase, liver_stats, automatic, failed,
                                                 no_engine=modality != "CT" and not engine))
        out[name] = FeatureValue(None if value is None else float(value), unit(name), flags)
    return out


def feature_source(name: str, sources: dict[str, str]) -> str:
    """Where the masks behind feature ``name`` came from (``mask_source`` flag).

    ``header`` for a feature that needs no mask (the contrast phase); ``withheld`` if any
    organ it depends on was withheld, else ``automatic`` if any was segmented
    automatically, else the delivered format; ``none`` when a needed mask is absent.
    """
    organs = _depends_on(name)
    if not organs:
        return HEADER
    got = [sources.get(o) for o in organs]
    for source in (WITHHELD, AUTOMATIC):
        if source in got:
            return source
    present = [g for g in got if g is not None]
    return present[0] if len(present) == len(got) else "none"


def _why_missing(name: str, phase: str | None, liver_stats: measure.RoiStats | None,
                 automatic: dict[str, bool], failed: str | None = None, *,
                 no_engine: bool = False) -> str:
    if name == "steatosis_grade" and phase != attenuation.UNENHANCED:
        return f"graded on unenhanced CT only (phase: {phase or 'unknown'})"
    for organ in _depends_on(name):
        if organ not in automatic:
            if failed:
                return (f"no {organ} mask: the delivered mask failed ({failed}); automatic "
                        "segmentation is not used in its place")
            return needs_mask(organ) if no_engine else f"no {organ} mask"
    if name == "liver_spleen_hu_ratio":
        return "spleen attenuation too low for a stable ratio"
    if name == "liver_vessel_tortuosity":
        return "no vessel branch long enough to measure"
    if name == "contrast_phase":
        return "phase not stated in the DICOM header at ingest"
    return "not computable for this series"
