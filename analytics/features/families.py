"""The feature families: each one registered definition and one function.

:func:`analytics.features.extract.extract_series_features` prepares one
:class:`Extraction` (checked organ masks, the image in canonical orientation, the
contrast phase) and runs every family of :data:`FAMILIES` over it, in order. A family
writes the values of its features into ``Extraction.values`` (None when not computable)
and any flags into ``Extraction.flags``; later families may read what earlier ones left
(the attenuation family excludes the vessels the vessel family traced). A new biomarker
is one definition in :mod:`analytics.vocabulary.imaging` and one family (or one more
feature of an existing family) here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.features import attenuation, measure, mr_quant, texture
from analytics.features.landmarks import find_aorta
from analytics.features.nodularity import surface_nodularity
from analytics.features.settings import FeatureSettings
from analytics.features.vessels import VesselResult, analyse_vessels, delivered_mask_problem
from analytics.vocabulary import PHASE_CODES

#: delivered vessel trunks: never the intra-hepatic vessel tree
TRUNKS = ("portal_splenic_vein", "inferior_vena_cava")
VESSEL_FEATURES = ("liver_vessel_fraction", "liver_vessel_tortuosity",
                   "liver_vessel_branch_density")
CT_INTENSITY = ("liver_hu_mean", "liver_hu_median", "liver_hu_sd", "spleen_hu_mean",
                "spleen_hu_median", "spleen_hu_sd", "liver_spleen_hu_diff",
                "liver_spleen_hu_ratio", "steatosis_grade")
MR_INTENSITY = ("liver_mr_intensity_mean", "liver_mr_intensity_median",
                "liver_mr_intensity_sd", "spleen_mr_intensity_mean",
                "liver_spleen_mr_intensity_ratio")
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
_PHASE_CODE = {v: k for k, v in PHASE_CODES.items()}


@dataclass
class Extraction:
    """What the families of one series share: inputs, the phase, and what they found.

    Attributes
    ----------
    image, spacing, voxel_ml, modality, settings
        The image in canonical orientation (HU on CT), its voxel size in mm and mL, ``CT``
        or ``MR``, the run's settings.
    canon, automatic
        Masks in canonical orientation by name (after the quality gate) and which of them
        are automatic.
    partial
        Organs whose volume only is withheld (cut by the scan's edge), with the reason.
    delivered_lesion
        True when the series came with a lesion mask (even an empty one).
    ingest_phase, phase, phase_source, estimate, aorta_hu
        The phase decided at ingest; the phase the phase-dependent computations use and
        where it came from (``ingest``, ``aorta_estimate`` or None); the aorta's estimate
        and median HU (NaN when none was read).
    values, flags, warnings
        What the families computed: feature -> value, feature -> flags, and warnings.
    vessels, liver_stats
        The vessel analysis (its traced mask is excluded from the parenchyma) and the
        liver parenchyma's statistics.
    parenchyma
        The liver parenchyma ROI the texture is measured in.
    quant, dixon_water
        What quantitative MR map the series is (:mod:`analytics.features.mr_quant`), and
        the Dixon water image on the same grid (canonical) for a Dixon fat image.
    """

    image: np.ndarray
    spacing: tuple[float, float, float]
    voxel_ml: float
    modality: str
    settings: FeatureSettings
    canon: dict[str, np.ndarray]
    automatic: dict[str, bool]
    partial: dict[str, str]
    delivered_lesion: bool
    ingest_phase: str | None
    warnings: list[str]
    phase: str | None = None
    phase_source: str | None = None
    estimate: str | None = None
    aorta_hu: float = float("nan")
    values: dict[str, float | None] = field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    vessels: VesselResult | None = None
    liver_stats: measure.RoiStats | None = None
    parenchyma: np.ndarray | None = None
    quant: mr_quant.MapReading | None = None
    dixon_water: np.ndarray | None = None

    @property
    def liver(self) -> np.ndarray | None:
        return self.canon.get("liver")

    def flag(self, name: str) -> dict[str, Any]:
        """The flags of feature ``name`` (created empty)."""
        return self.flags.setdefault(name, {})

    def decide_phase(self) -> None:
        """The phase for phase-dependent computations: the ingest phase, else on CT the
        aorta's estimate (recorded beside the phase, never as it)."""
        self.phase = self.ingest_phase
        self.phase_source = "ingest" if self.ingest_phase is not None else None
        if self.modality == "CT" and self.ingest_phase is None:
            self.estimate, self.aorta_hu = estimate_phase(
                self.image, self.spacing, self.canon.get("aorta"), self.liver)
            if self.estimate is not None:
                self.phase, self.phase_source = self.estimate, "aorta_estimate"


@dataclass(frozen=True)
class Family:
    """One feature family: the features it writes and the function that computes them."""

    name: str
    features: tuple[str, ...]
    compute: Callable[[Extraction], None]


def volumes(x: Extraction) -> None:
    """Liver and spleen volume; withheld for an organ cut by the scan's edge."""
    x.values["liver_volume_ml"] = measure.volume_ml(x.liver, x.voxel_ml)
    x.values["spleen_volume_ml"] = measure.volume_ml(x.canon.get("spleen"), x.voxel_ml)
    for organ, why in x.partial.items():
        x.values[f"{organ}_volume_ml"] = None
        x.flags[f"{organ}_volume_ml"] = {"reason": why}


def contrast_phase(x: Extraction) -> None:
    """The phase decided at ingest, as its code (never the aorta's estimate)."""
    x.values["contrast_phase"] = (float(_PHASE_CODE[x.ingest_phase])
                                  if x.ingest_phase is not None else None)


def vessels(x: Extraction) -> None:
    """Hepatic vessel fraction, tortuosity and branch density (see ``vessels``)."""
    vessel_mask, vessel_withheld = _vessel_mask(x.canon, x.liver, x.settings)
    if vessel_withheld:
        x.warnings.append(f"delivered vessel mask not used: {vessel_withheld}")
    if x.liver is not None:
        if x.modality == "CT" or vessel_mask is not None:
            x.vessels = _analyse(x, vessel_mask)
        else:
            x.warnings.append("vessel analysis needs CT or a delivered vessel mask")
    if vessel_withheld:
        for n in VESSEL_FEATURES:
            x.flag(n)["delivered_vessel_mask_withheld"] = vessel_withheld
    res = x.vessels
    if res is None and vessel_withheld and x.liver is not None:
        for n in VESSEL_FEATURES:
            x.values[n] = None
            x.flags[n]["reason"] = f"delivered vessel mask withheld: {vessel_withheld}"
    if res is not None:
        x.values["liver_vessel_fraction"] = res.fraction
        x.values["liver_vessel_tortuosity"] = res.tortuosity
        x.values["liver_vessel_branch_density"] = res.branch_density_per_l
        for n in VESSEL_FEATURES:
            x.flags[n] = {**x.flags.get(n, {}), **res.flags}
            if "not_measurable" in res.flags:
                x.flags[n]["reason"] = "not measurable: " + res.flags["not_measurable"]


def _analyse(x: Extraction, delivered: np.ndarray | None) -> VesselResult:
    """The vessel analysis of the liver; the blood level from the aorta where needed."""
    blood_hu = None
    if x.modality == "CT" and delivered is None:
        if x.phase is not None and x.phase != attenuation.UNENHANCED:
            blood_hu = x.aorta_hu if np.isfinite(x.aorta_hu) else None
        elif x.phase == attenuation.UNENHANCED:
            # unenhanced blood has one attenuation everywhere: read it in the aorta
            if not np.isfinite(x.aorta_hu):
                x.estimate, x.aorta_hu = estimate_phase(
                    x.image, x.spacing, x.canon.get("aorta"), x.liver)
            blood_hu = x.aorta_hu if np.isfinite(x.aorta_hu) else None
    s = x.settings
    res = analyse_vessels(
        x.image, x.liver, x.spacing, enhanced=x.phase not in (None, attenuation.UNENHANCED),
        blood_hu=blood_hu, vessel_mask=delivered, grid_mm=s.vessel_grid_mm,
        sigmas_mm=s.vessel_sigmas_mm, min_branch_mm=s.vessel_min_branch_mm,
        exclude=x.canon.get("lesion"))
    if x.modality == "CT" and x.phase is None and delivered is None:
        res.flags["phase_unknown"] = True
    elif x.phase_source == "aorta_estimate" and delivered is None:
        res.flags["contrast_phase_estimated"] = True
    return res


def _vessel_mask(canon: dict[str, np.ndarray], liver: np.ndarray | None,
                 settings: FeatureSettings) -> tuple[np.ndarray | None, str | None]:
    """The delivered vessel mask to measure with, and why a delivered one was withheld."""
    trunks = [t for t in TRUNKS if t in canon]
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


def intensities(x: Extraction) -> None:
    """Attenuation (CT) or MR intensity statistics of the liver parenchyma (vessels and
    lesions excluded) and the spleen, each eroded; liver-spleen contrasts; steatosis."""
    s = x.settings
    spleen = x.canon.get("spleen")
    if x.liver is not None:
        excluded = None
        for m in (x.vessels.mask if x.vessels is not None else None, x.canon.get("lesion")):
            if m is not None:
                excluded = m if excluded is None else (excluded | m)
        keep = (~measure.dilate(excluded, s.exclusion_dilation_voxels)
                if excluded is not None else None)
        x.parenchyma, used = _eroded_roi(x.liver, keep, s.erosion_voxels)
        if x.parenchyma is None:
            x.warnings.append("liver parenchyma is empty after erosion and exclusions")
        elif used != s.erosion_voxels:
            for n in _LIVER_INTENSITY:
                x.flag(n)["erosion_voxels"] = used
    spleen_roi = None
    if spleen is not None:
        spleen_roi, used = _eroded_roi(spleen, None, s.erosion_voxels)
        if spleen_roi is not None and used != s.erosion_voxels:
            for n in _SPLEEN_INTENSITY:
                x.flag(n)["erosion_voxels"] = used
    x.liver_stats = (measure.roi_stats(x.image, x.parenchyma)
                     if x.parenchyma is not None else None)
    spleen_stats = measure.roi_stats(x.image, spleen_roi) if spleen_roi is not None else None
    if x.modality == "CT":
        x.values.update(attenuation.attenuation_features(x.liver_stats, spleen_stats,
                                                         x.phase))
    else:
        x.values.update(_mr_intensity(x.liver_stats, spleen_stats))
    if x.phase_source == "aorta_estimate":
        for n in ("steatosis_grade", "liver_spleen_hu_diff", "liver_spleen_hu_ratio"):
            x.flag(n)["contrast_phase_estimated"] = True


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


def textures(x: Extraction) -> None:
    """IBSI first-order and GLCM entropy of the liver parenchyma."""
    if x.parenchyma is None:
        return
    s = x.settings
    tex, why = texture.texture_with_reasons(
        x.image, x.parenchyma, x.modality, bin_width=s.ct_bin_width_hu,
        lower=s.ct_bin_lower_hu, n_bins=s.mr_bins)
    x.values.update(tex)
    for name, reason in why.items():  # degenerate: withheld with the reason, not 0
        x.flag(name)["reason"] = reason


def nodularity(x: Extraction) -> None:
    """Liver surface nodularity (see ``analytics.features.nodularity``)."""
    if x.liver is None:
        return
    s = x.settings
    x.values["liver_surface_nodularity"] = surface_nodularity(
        x.liver, x.spacing, window_mm=s.nodularity_window_mm,
        min_area_fraction=s.nodularity_min_area_fraction, cap_mm=s.nodularity_cap_mm)


def lesions(x: Extraction) -> None:
    """Count and total volume of the delivered lesion mask; only when one was delivered."""
    if not x.delivered_lesion:
        return
    lesion = x.canon.get("lesion")
    n, vol = measure.lesion_summary(lesion if lesion is not None else np.zeros((1, 1, 1)),
                                    x.voxel_ml)
    x.values["lesion_count"], x.values["lesion_volume_ml"] = float(n), vol


def quantitative_maps(x: Extraction) -> None:
    """Liver PDFF, R2*, MR elastography stiffness or Dixon signal fat fraction of a
    recognised quantitative MR map (:mod:`analytics.features.mr_quant`), inside the liver
    mask eroded in-plane; a map's values are not signal intensities, so the generic MR
    intensity statistics of the series are withheld."""
    q = x.quant
    if q is None or q.kind is None:
        return
    why_not_intensity = (f"{mr_quant.MAP_WORDS.get(q.kind, 'quantitative map')}: its values "
                         "are not signal intensities" if q.kind != mr_quant.NOT_MEASURED
                         else f"not a signal-intensity image ({q.withheld})")
    for name in MR_INTENSITY:
        x.values[name] = None
        x.flag(name)["reason"] = why_not_intensity
    names = mr_quant.MAP_FEATURES.get(q.kind, ())
    if not names:
        return
    for name in names:
        x.values[name] = None
        x.flag(name)["map_recognised_from"] = q.evidence
    if q.withheld or q.scale is None:
        for name in names:
            x.flag(name)["reason"] = q.withheld or "the map's unit is not established"
        return
    if x.liver is None:
        return  # the reason (no liver mask) is given with the other liver features
    roi, used = mr_quant.roi_in_plane(x.liver, x.settings.erosion_voxels, MIN_ROI_VOXELS)
    if roi is None:
        for name in names:
            x.flag(name)["reason"] = "liver mask is empty"
        return
    for name in names:
        x.flag(name)["erosion_pixels_in_plane"] = used
        x.flag(name)["unit_from"] = q.scale.source
    if q.kind == mr_quant.DIXON_FAT:
        if x.dixon_water is None:
            x.flag(names[0])["reason"] = ("no Dixon water image of the same study on the "
                                          "same grid: the signal fat fraction needs both")
            return
        x.values[names[0]] = mr_quant.signal_fat_fraction(x.image, x.dixon_water, roi)
        return
    median, mean = mr_quant.measure_map(x.image, roi, q.scale)
    x.values[names[0]] = median
    if len(names) > 1:
        x.values[names[1]] = mean


#: every feature family, in the order they run
FAMILIES: tuple[Family, ...] = (
    Family("volume", ("liver_volume_ml", "spleen_volume_ml"), volumes),
    Family("phase", ("contrast_phase",), contrast_phase),
    Family("vessels", VESSEL_FEATURES, vessels),
    Family("attenuation", (*CT_INTENSITY, *MR_INTENSITY), intensities),
    Family("texture", texture.TEXTURE_FEATURES, textures),
    Family("nodularity", ("liver_surface_nodularity",), nodularity),
    Family("lesions", ("lesion_count", "lesion_volume_ml"), lesions),
    Family("mr_maps", tuple(n for names in mr_quant.MAP_FEATURES.values() for n in names),
           quantitative_maps),
)


def estimate_phase(image: np.ndarray, spacing: tuple[float, float, float],
                   aorta: np.ndarray | None, liver: np.ndarray | None
                   ) -> tuple[str | None, float]:
    """Phase from the aorta's median HU (delivered aorta mask, else found in the image).

    A delivered mask covers the whole aorta and is eroded by a voxel against partial
    volume with the wall; a found mask is already the lumen core and is read as it is.
    """
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
