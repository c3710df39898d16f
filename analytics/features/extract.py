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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from analytics.errors import FeatureError
from analytics.features import attenuation, measure, radiomics_configs, texture
from analytics.features.geometry import Orientation, orientation
from analytics.features.nodularity import surface_nodularity
from analytics.features.registry import (
    AUTOMATIC,
    FEATURES,
    HEADER,
    PHASE_CODES,
    WITHHELD,
)
from analytics.features.totalseg import (
    CLASSICAL,
    MR_NEEDS_MASK,
    canonical_affine,
    choose_engine,
)
from analytics.features.vessels import analyse_vessels, delivered_mask_problem
from analytics.ingest.volume import MaskSet, Volume
from analytics.vocabulary import unit

#: bump when any computed value may change; stored with every feature row
EXTRACTOR_VERSION = "1.4.0"
#: delivered vessel trunks: never the intra-hepatic vessel tree
_TRUNKS = ("portal_splenic_vein", "inferior_vena_cava")
_VESSEL_FEATURES = ("liver_vessel_fraction", "liver_vessel_tortuosity",
                    "liver_vessel_branch_density")
#: ``volume.meta`` key naming organs whose delivered mask failed: ``{organ: reason}``; they
#: are not segmented automatically and their features are withheld (source ``withheld``)
WITHHELD_MASKS = "withheld_masks"


@dataclass(frozen=True)
class FeatureSettings:
    """Parameters of the extraction, stored with each feature run.

    Attributes
    ----------
    erosion_voxels
        Erosion of liver and spleen masks before intensity statistics.
    exclusion_dilation_voxels
        Dilation of vessel and lesion masks removed from the liver parenchyma.
    ct_bin_width_hu, ct_bin_lower_hu
        IBSI fixed-bin-width discretisation for CT texture.
    mr_bins
        IBSI fixed bin number for MR texture.
    nodularity_window_mm, nodularity_min_area_fraction, nodularity_cap_mm
        Surface nodularity parameters (see ``analytics.features.nodularity``).
    vessel_grid_mm, vessel_sigmas_mm, vessel_min_branch_mm
        Vessel analysis parameters (see ``analytics.features.vessels``).
    use_vessel_mask
        Use a delivered vessel mask when present (else always the vesselness filter).
    segmentation
        ``"auto"`` (TotalSegmentator if installed with weights, else classical on CT and
        nothing on MR), ``"classical"`` (CT only) or ``"totalsegmentator"``; used only
        for organs without a mask (``analytics.features.totalseg``).
    radiomics
        Also compute IBSI radiomics with MIRP (research mode).
    radiomics_config
        Name of the radiomics configuration
        (:mod:`analytics.features.radiomics_configs`); None means the site's default
        (``Settings.radiomics_config``), which the batch runner fills in before the run
        is recorded.
    """

    erosion_voxels: int = 3
    exclusion_dilation_voxels: int = 1
    ct_bin_width_hu: float = 25.0
    ct_bin_lower_hu: float = -1000.0
    mr_bins: int = 32
    nodularity_window_mm: float = 40.0
    nodularity_min_area_fraction: float = 0.25
    nodularity_cap_mm: float = 5.0
    vessel_grid_mm: float = 1.5
    vessel_sigmas_mm: tuple[float, ...] = (2.5, 3.0)
    vessel_min_branch_mm: float = 5.0
    use_vessel_mask: bool = True
    segmentation: str = "auto"
    radiomics: bool = False
    radiomics_config: str | None = None

    def __post_init__(self) -> None:
        if self.radiomics_config is not None:
            radiomics_configs.get(self.radiomics_config)  # unknown name: FeatureError

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vessel_sigmas_mm"] = list(self.vessel_sigmas_mm)
        d["extractor_version"] = EXTRACTOR_VERSION
        return d


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


def _check_mask(name: str, mask: np.ndarray, volume: Volume) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != volume.array.shape:
        raise FeatureError(f"series {volume.series_uid}: mask {name!r} has shape {m.shape}, "
                           f"expected the image shape {volume.array.shape}")
    return m.astype(bool, copy=False)


def _organ_masks(volume: Volume, masks: MaskSet | None, modality: str,
                 orient: Orientation, settings: FeatureSettings,
                 warnings: list[str]) -> tuple[dict[str, np.ndarray], dict[str, bool],
                                               MaskSet | None, str | None]:
    """Canonical masks by name, which ones are automatic, the auto MaskSet and its method."""
    canon: dict[str, np.ndarray] = {}
    automatic: dict[str, bool] = {}
    delivered = masks.masks if masks is not None else {}
    for name, m in delivered.items():
        if m is None:
            continue
        checked = _check_mask(name, m, volume)
        if checked.any():
            canon[name] = orient.to_canonical(checked)
            automatic[name] = bool(masks.automatic) if masks is not None else False
    withheld = volume.meta.get(WITHHELD_MASKS) or {}
    for organ, why in withheld.items():
        if organ not in canon:
            warnings.append(f"{organ} features withheld: {why}")
    missing = [o for o in ("liver", "spleen") if o not in canon and o not in withheld]
    auto_set, method = None, masks.method if masks is not None and masks.automatic else None
    failed = mask_failure(volume)
    if missing and failed:
        warnings.append(f"no {' or '.join(missing)} mask: the delivered mask failed "
                        f"({failed}); automatic segmentation is not used in its place")
    elif missing:
        auto_set, method = _segment_missing(volume, orient, modality, settings, missing,
                                            canon, automatic, warnings)
    return canon, automatic, auto_set, method


def _segment_missing(volume: Volume, orient: Orientation, modality: str,
                     settings: FeatureSettings, missing: list[str],
                     canon: dict[str, np.ndarray], automatic: dict[str, bool],
                     warnings: list[str]) -> tuple[MaskSet | None, str | None]:
    """Segment the ``missing`` organs with the run's engine, into ``canon`` and
    ``automatic``; returns the automatic MaskSet and the engine label. An MR series gets
    no engine without TotalSegmentator (never the classical CT pipeline): a warning per
    organ, and its features say that they need a delivered mask."""
    from analytics.features.segmentation import CLASSICAL_METHOD, segment_canonical

    engine = (None if modality != "CT" and settings.segmentation == CLASSICAL
              else choose_engine(settings.segmentation, modality))
    if engine is None:
        for organ in missing:
            warnings.append(f"no delivered {organ} mask: {needs_mask(organ)}")
        return None, None
    image_c = orient.to_canonical(volume.array)
    affine = canonical_affine(volume.origin_mm, volume.direction, volume.spacing_mm,
                              orient.perm, orient.flips, image_c.shape)
    seg = segment_canonical(image_c, orient.spacing_mm, method=engine, modality=modality,
                            affine_lps=affine)
    method = (f"{seg.method} (HepaTrack extractor {EXTRACTOR_VERSION})"
              if seg.method == CLASSICAL_METHOD else seg.method)
    for organ in missing:
        m = seg.masks.get(organ)
        if m is not None and m.any():
            canon[organ] = m
            automatic[organ] = True
        else:
            warnings.append(f"automatic segmentation found no {organ}")
    for name in ("aorta",):
        if name in seg.masks and name not in canon:
            canon[name] = seg.masks[name]
            automatic[name] = True
            missing.append(name)
    # every automatic mask is kept (``analytics.features.automask``), also those the
    # quality gate withholds later: the key image shows what was measured
    auto_set = MaskSet(masks={k: orient.from_canonical(v) for k, v in seg.masks.items()
                              if k in missing},
                       source="auto", automatic=True, method=method)
    return auto_set, method


def needs_mask(organ: str) -> str:
    """Why an MR organ without a delivered mask has no values (no engine for MR here)."""
    return MR_NEEDS_MASK.replace("a liver mask", f"a {organ} mask", 1)


def _quality_gate(canon: dict[str, np.ndarray], automatic: dict[str, bool],
                  image: np.ndarray, spacing: tuple[float, float, float],
                  withheld: dict[str, str], warnings: list[str],
                  searched: tuple[str, ...] = (), modality: str = "CT") -> dict[str, str]:
    """Check the liver and spleen masks (``analytics.features.quality``), each on its own
    and then against each other.

    An organ that fails is removed from ``canon`` and ``automatic`` and named in
    ``withheld`` with the reason, so every number from it is withheld. An organ in
    ``searched`` (automatic segmentation looked for it and found nothing) is named in
    ``withheld`` too when the scan shows no abdomen at all. Returns the organs whose
    volume only is withheld (cut by the scan's edge), with the reason.
    """
    from analytics.features.field_of_view import field_of_view, scan_findings
    from analytics.features.quality import body_for, check_organ, check_pair

    found = {}
    body = fov = None
    missing = [o for o in searched if o not in canon and o not in withheld]
    if missing and modality == "CT":  # the field of view is judged by Hounsfield units
        body, fov = body_for(image, modality), field_of_view(image, spacing)
        scan = scan_findings(image, body, fov)
        for organ in missing if scan else ():
            withheld[organ] = f"automatic segmentation found no {organ}: {'; '.join(scan)}"
    for organ in ("liver", "spleen"):
        mask = canon.get(organ)
        if mask is None:
            continue
        auto = bool(automatic.get(organ))
        if auto and body is None:
            body = body_for(image, modality)
            fov = field_of_view(image, spacing) if modality == "CT" else None
        found[organ] = check_organ(organ, mask, image, spacing, automatic=auto, body=body,
                                   modality=modality, fov=fov)
    liver_ok = "liver" in found and found["liver"].in_abdomen
    disagree = check_pair(canon.get("liver"), canon.get("spleen"), liver_trusted=liver_ok,
                          spleen_automatic=bool(automatic.get("spleen")),
                          liver_automatic=bool(automatic.get("liver")))
    partial: dict[str, str] = {}
    for organ, q in found.items():
        if not q.withhold_all:
            q.withhold_all.extend(disagree.get(organ, []))
        if q.withhold_all:
            why = q.reason(volume=False)
            canon.pop(organ)
            automatic.pop(organ, None)
            withheld[organ] = why
            warnings.append(why)
        elif q.withhold_volume:
            partial[organ] = q.reason(volume=True)
    return partial


def mask_failure(volume: Volume) -> str | None:
    """Why the series' delivered masks (some of them) could not be read, or None."""
    errors = volume.meta.get("mask_errors") if isinstance(volume.meta, dict) else None
    return "; ".join(str(e) for e in errors) if errors else None


def _vessel_mask(canon: dict[str, np.ndarray], liver: np.ndarray | None,
                 settings: FeatureSettings) -> tuple[np.ndarray | None, str | None]:
    """The delivered vessel mask to measure with, and why a delivered one was withheld."""
    trunks = [t for t in _TRUNKS if t in canon]
    vessel_mask = canon.get("liver_vessels") if settings.use_vessel_mask else None
    why = None
    if vessel_mask is not None and liver is not None:
        why = delivered_mask_problem(vessel_mask, liver)
        if why is not None:
            vessel_mask = None
    if vessel_mask is None and trunks and why is None:
        why = (f"delivered {' and '.join(t.replace('_', ' ') for t in trunks)} masks are "
               "vessel trunks outside the liver, not the intra-hepatic vessel tree")
    return vessel_mask, why


def extract_series_features(volume: Volume, masks: MaskSet | None,
                            settings: FeatureSettings | None = None) -> FeatureResult:
    """Compute every core biomarker of one series.

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
        Values with units and flags; see the feature registry for definitions.

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
    voxel_ml = float(np.prod(spacing)) / 1000.0
    warnings: list[str] = []
    canon, automatic, auto_set, method = _organ_masks(volume, masks, modality, orient,
                                                      settings, warnings)
    image = orient.to_canonical(volume.array)
    withheld = dict(volume.meta.get(WITHHELD_MASKS) or {})
    searched = ("liver", "spleen") if auto_set is not None else ()
    partial = _quality_gate(canon, automatic, image, spacing, withheld, warnings, searched,
                            modality)
    liver, spleen = canon.get("liver"), canon.get("spleen")
    lesion = canon.get("lesion")

    values: dict[str, float | None] = {}
    extra_flags: dict[str, dict[str, Any]] = {}
    values["liver_volume_ml"] = measure.volume_ml(liver, voxel_ml)
    values["spleen_volume_ml"] = measure.volume_ml(spleen, voxel_ml)
    for organ, why in partial.items():
        values[f"{organ}_volume_ml"] = None
        extra_flags[f"{organ}_volume_ml"] = {"reason": why}

    # the one phase of the series, decided at ingest; ``phase`` below is what the
    # phase-dependent computations use: that phase, else (CT) the aorta's estimate
    ingest_phase = attenuation.normalise_phase(volume.contrast_phase)
    phase, phase_source = ingest_phase, "ingest" if ingest_phase is not None else None
    estimate: str | None = None
    aorta_value = float("nan")
    if modality == "CT" and ingest_phase is None:
        estimate, aorta_value = _estimate_phase(image, spacing, canon.get("aorta"), liver)
        if estimate is not None:
            phase, phase_source = estimate, "aorta_estimate"
    values["contrast_phase"] = (float(_PHASE_CODE[ingest_phase])
                                if ingest_phase is not None else None)

    vessel_res = None
    vessel_mask, vessel_withheld = _vessel_mask(canon, liver, settings)
    if vessel_withheld:
        warnings.append(f"delivered vessel mask not used: {vessel_withheld}")
    if liver is not None:
        lesion_exclude = lesion if lesion is not None else None
        use_delivered = vessel_mask
        if modality == "CT" or use_delivered is not None:
            blood_hu = None
            if modality == "CT" and use_delivered is None:
                if phase is not None and phase != attenuation.UNENHANCED:
                    blood_hu = aorta_value if np.isfinite(aorta_value) else None
                elif phase == attenuation.UNENHANCED:
                    # unenhanced blood has one attenuation everywhere: read it in the aorta
                    if not np.isfinite(aorta_value):
                        estimate, aorta_value = _estimate_phase(
                            image, spacing, canon.get("aorta"), liver)
                    blood_hu = aorta_value if np.isfinite(aorta_value) else None
            vessel_res = analyse_vessels(
                image, liver, spacing, enhanced=phase not in (None, attenuation.UNENHANCED),
                blood_hu=blood_hu, vessel_mask=use_delivered,
                grid_mm=settings.vessel_grid_mm, sigmas_mm=settings.vessel_sigmas_mm,
                min_branch_mm=settings.vessel_min_branch_mm, exclude=lesion_exclude)
            if modality == "CT" and phase is None and use_delivered is None:
                vessel_res.flags["phase_unknown"] = True
            elif phase_source == "aorta_estimate" and use_delivered is None:
                vessel_res.flags["contrast_phase_estimated"] = True
        else:
            warnings.append("vessel analysis needs CT or a delivered vessel mask")
    if vessel_withheld:
        for n in _VESSEL_FEATURES:
            extra_flags.setdefault(n, {})["delivered_vessel_mask_withheld"] = vessel_withheld
    if vessel_res is None and vessel_withheld and liver is not None:
        for n in _VESSEL_FEATURES:
            values[n] = None
            extra_flags[n]["reason"] = f"delivered vessel mask withheld: {vessel_withheld}"
    if vessel_res is not None:
        values["liver_vessel_fraction"] = vessel_res.fraction
        values["liver_vessel_tortuosity"] = vessel_res.tortuosity
        values["liver_vessel_branch_density"] = vessel_res.branch_density_per_l
        for n in _VESSEL_FEATURES:
            extra_flags[n] = {**extra_flags.get(n, {}), **vessel_res.flags}
            if "not_measurable" in vessel_res.flags:
                extra_flags[n]["reason"] = "not measurable: " + vessel_res.flags[
                    "not_measurable"]

    parenchyma = None
    if liver is not None:
        excluded = None
        for m in (vessel_res.mask if vessel_res is not None else None, lesion):
            if m is not None:
                excluded = m if excluded is None else (excluded | m)
        keep = (~measure.dilate(excluded, settings.exclusion_dilation_voxels)
                if excluded is not None else None)
        parenchyma, used = _eroded_roi(liver, keep, settings.erosion_voxels)
        if parenchyma is None:
            warnings.append("liver parenchyma is empty after erosion and exclusions")
        elif used != settings.erosion_voxels:
            for n in _LIVER_INTENSITY:
                extra_flags.setdefault(n, {})["erosion_voxels"] = used
    spleen_roi = None
    if spleen is not None:
        spleen_roi, used = _eroded_roi(spleen, None, settings.erosion_voxels)
        if spleen_roi is not None and used != settings.erosion_voxels:
            for n in _SPLEEN_INTENSITY:
                extra_flags.setdefault(n, {})["erosion_voxels"] = used
    liver_stats = measure.roi_stats(image, parenchyma) if parenchyma is not None else None
    spleen_stats = measure.roi_stats(image, spleen_roi) if spleen_roi is not None else None
    if modality == "CT":
        values.update(attenuation.attenuation_features(liver_stats, spleen_stats, phase))
    else:
        values.update(_mr_intensity(liver_stats, spleen_stats))

    if parenchyma is not None:
        tex, why = texture.texture_with_reasons(
            image, parenchyma, modality, bin_width=settings.ct_bin_width_hu,
            lower=settings.ct_bin_lower_hu, n_bins=settings.mr_bins)
        values.update(tex)
        for name, reason in why.items():  # degenerate: withheld with the reason, not 0
            extra_flags.setdefault(name, {})["reason"] = reason
    if liver is not None:
        values["liver_surface_nodularity"] = surface_nodularity(
            liver, spacing, window_mm=settings.nodularity_window_mm,
            min_area_fraction=settings.nodularity_min_area_fraction,
            cap_mm=settings.nodularity_cap_mm)
    if masks is not None and masks.get("lesion") is not None:
        n, vol = measure.lesion_summary(lesion if lesion is not None else np.zeros((1, 1, 1)),
                                        voxel_ml)
        values["lesion_count"], values["lesion_volume_ml"] = float(n), vol

    if phase_source == "aorta_estimate":
        for n in ("steatosis_grade", "liver_spleen_hu_diff", "liver_spleen_hu_ratio"):
            extra_flags.setdefault(n, {})["contrast_phase_estimated"] = True
    extra_flags["contrast_phase"] = _phase_flags(ingest_phase, estimate, aorta_value,
                                                 modality, warnings)
    failed = mask_failure(volume)
    sources = _mask_sources(automatic, masks, withheld)
    if failed:  # organs the failed delivered mask should have given are not automatic
        for organ in ("liver", "spleen"):
            sources.setdefault(organ, WITHHELD)
    result_values = _with_flags(values, extra_flags, automatic, modality, phase, liver_stats,
                                sources, withheld, failed,
                                engine=method if auto_set is not None else None)
    segments = {name: {"voxels": int(np.count_nonzero(m)), "automatic": automatic.get(name,
                                                                                     False)}
                for name, m in canon.items()}
    any_auto = any(automatic.get(o, False) for o in ("liver", "spleen"))
    source = "auto" if any_auto and not (masks and masks.masks) else (
        masks.source if masks is not None else "failed" if mask_failure(volume) else "auto")
    return FeatureResult(
        series_uid=volume.series_uid, modality=modality, values=result_values,
        mask_source=source, mask_automatic=any_auto, mask_method=method if any_auto else (
            masks.method if masks is not None else None),
        segments=segments, contrast_phase=ingest_phase, phase_source=phase_source,
        settings=settings.as_dict(), seconds=time.perf_counter() - t0, warnings=warnings,
        auto_masks=auto_set, phase_estimate=estimate,
        aorta_hu=round(aorta_value, 1) if np.isfinite(aorta_value) else None,
        mask_sources=sources, withheld=withheld)


_PHASE_CODE = {v: k for k, v in PHASE_CODES.items()}


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


#: fewest voxels for intensity statistics; below it the erosion is reduced (and flagged)
MIN_ROI_VOXELS = 200
_LIVER_INTENSITY = ("liver_hu_mean", "liver_hu_median", "liver_hu_sd", "liver_entropy",
                    "liver_glcm_entropy", "liver_mr_intensity_mean",
                    "liver_mr_intensity_median", "liver_mr_intensity_sd", "steatosis_grade",
                    "liver_spleen_hu_diff", "liver_spleen_hu_ratio",
                    "liver_spleen_mr_intensity_ratio")
_SPLEEN_INTENSITY = ("spleen_hu_mean", "spleen_hu_median", "spleen_hu_sd",
                     "spleen_mr_intensity_mean", "liver_spleen_hu_diff",
                     "liver_spleen_hu_ratio", "steatosis_grade",
                     "liver_spleen_mr_intensity_ratio")


def _eroded_roi(mask: np.ndarray, keep: np.ndarray | None,
                voxels: int) -> tuple[np.ndarray | None, int]:
    """``mask`` eroded by ``voxels`` (fewer if that leaves < MIN_ROI_VOXELS), ``& keep``."""
    for n in range(voxels, -1, -1):
        roi = measure.erode(mask, n)
        if keep is not None:
            roi &= keep
        if np.count_nonzero(roi) >= MIN_ROI_VOXELS or (n == 0 and roi.any()):
            return roi, n
    return None, 0


def _mr_intensity(liver: measure.RoiStats | None,
                  spleen: measure.RoiStats | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "liver_mr_intensity_mean": liver.mean if liver else None,
        "liver_mr_intensity_median": liver.median if liver else None,
        "liver_mr_intensity_sd": liver.sd if liver else None,
        "spleen_mr_intensity_mean": spleen.mean if spleen else None,
        "liver_spleen_mr_intensity_ratio": None,
    }
    if liver and spleen and spleen.mean > 0:
        out["liver_spleen_mr_intensity_ratio"] = liver.mean / spleen.mean
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


def _estimate_phase(image: np.ndarray, spacing: tuple[float, float, float],
                    aorta: np.ndarray | None, liver: np.ndarray | None
                    ) -> tuple[str | None, float]:
    """Phase from the aorta's median HU (delivered aorta mask, else found in the image).

    A delivered mask covers the whole aorta and is eroded by a voxel against partial
    volume with the wall; a found mask is already the lumen core and is read as it is.
    """
    from analytics.features.landmarks import find_aorta

    if aorta is None:
        aorta = find_aorta(image, spacing, liver=liver)
    elif aorta.sum() > 200:
        aorta = measure.erode(aorta, 1)
    if aorta is None or not aorta.any():
        return None, float("nan")
    hu = attenuation.aorta_hu(image, aorta)
    if hu is None:
        return None, float("nan")
    return attenuation.phase_from_aorta_hu(hu), hu
