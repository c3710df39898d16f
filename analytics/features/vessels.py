"""Hepatic vessels: volume fraction, tortuosity and branch density.

Without a delivered vessel mask (the usual case on real data):

1. levels: parenchyma level P (median of the liver interior, the liver eroded by one voxel
   so the scanner blur of the tissue outside does not count) and the blood-pool
   attenuation B. On contrast-enhanced CT, B is measured in the liver's own vessel trunks
   (median of the detected vessels eroded by ~3 mm); on unenhanced CT it is the caller's
   blood-pool value (aorta), which is the same blood everywhere before contrast. Vessel
   polarity follows the sign of B - P: bright on enhanced CT and in fatty livers, dark in
   normal unenhanced livers;
2. detection on the liver interior smoothed by a 1.5 mm Gaussian (inside the liver only):
   seeds beyond 4 noise SDs of the smoothed image, traced (hysteresis) through voxels
   beyond 2 SDs; a traced component is kept if it reaches ``MIN_COMPONENT_MM3`` and a
   multiscale Hessian vesselness (ITK objectness, tubular, 2.5 mm grid) reaches its seeds,
   which drops blob-like and noise components;
3. measurability: a vessel of radius ``REF_RADIUS_MM`` keeps a fraction
   ``1 - exp(-r^2 / 2 s^2)`` of its contrast |B - P| after the smoothing s; divided by the
   smoothed noise SD this is the vessel contrast-to-noise ratio. Below ``TRACE_SD`` such
   vessels are not traced and their volume would be missed, so fraction, tortuosity and
   branch density are None with a ``not_measurable`` reason in the flags (typically
   unenhanced CT, where blood ~40 HU differs from the parenchyma by 0-25 HU). A blood
   level read outside the liver (aorta) is trusted to ``BLOOD_POOL_SD_HU``; the contrast
   must be large enough for that to cost under ``FRACTION_BUDGET`` of the fraction
   (>= 40 HU: severe steatosis, liver around 0 HU or below, on unenhanced CT);
4. fraction by partial-volume integration: the excess attenuation sum(I - P) over the
   traced vessels dilated by ~2 mm, divided by (B - P), is their blood volume. Blur and
   noise average out in the sum, so vessels thinner than the blur are sized correctly and
   there is no threshold to place on the vessel wall. The traced mask (not the integral)
   is what parenchyma statistics exclude and what the skeleton is drawn from.

A delivered vessel mask is used as is (clipped to the liver) when present and when it is
an intra-hepatic vessel tree: a mask lying mostly outside the liver (a portal/splenic vein
or caval trunk, which TotalSegmentator and hand-renamed files deliver) would measure a
fraction near 0 that says nothing about the liver; :func:`delivered_mask_problem` names
why such a mask is withheld, and the detector measures the vessels instead.

The skeleton (3-D thinning of the vessel mask on the isotropic grid) gives branch points
(skeleton voxels with >= 3 skeleton neighbours; touching ones count once) and branches
(the skeleton minus branch points); tortuosity is path length / chord length averaged over
branches of at least ``min_branch_mm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from analytics.features.geometry import bbox
from analytics.features.measure import dilate
from analytics.features.texture import DIRECTIONS_3D

_CUBE = ndi.generate_binary_structure(3, 3)

#: Gaussian smoothing of the detector (mm)
DETECT_SIGMA_MM = 1.5
#: seed and trace levels, in SDs of the smoothed noise
SEED_SD, TRACE_SD = 4.0, 2.0
#: smallest traced component (mm^3): a 3 mm vessel over ~8 mm
MIN_COMPONENT_MM3 = 60.0
#: vessel radius (mm) whose smoothed contrast must reach TRACE_SD noise SDs for the
#: fraction to be reported: thinner branches hold a minor share of the vessel volume
REF_RADIUS_MM = 2.0
#: margin (mm) around traced vessels over which their excess attenuation is summed
INTEGRATION_MARGIN_MM = 2.0
#: depth (mm) inside traced vessels where the blood attenuation is read
BLOOD_DEPTH_MM = 3.0
#: fewest deep vessel voxels for a blood level measured in the liver (mm^3)
MIN_BLOOD_MM3 = 500.0
#: uncertainty (HU) of a blood level read outside the liver (aorta): partial volume of a
#: small aorta mask, streaks, blood mixing; FRACTION_BUDGET bounds what it may cost
BLOOD_POOL_SD_HU = 3.0
FRACTION_BUDGET = 0.075


#: least share of a delivered vessel mask's voxels inside the liver for it to be read as
#: the intra-hepatic vessel tree (trunk masks of the portal/splenic vein or the cava hold
#: none: TotalSegmentator's labels exclude the liver)
MIN_INSIDE_LIVER = 0.5


def delivered_mask_problem(vessel_mask: np.ndarray, liver: np.ndarray) -> str | None:
    """Why a delivered vessel mask cannot stand for the liver's vessels, or None if it can.

    Parameters
    ----------
    vessel_mask, liver
        Boolean masks on the same grid.
    """
    total = int(np.count_nonzero(vessel_mask))
    if total == 0:
        return "the delivered vessel mask is empty"
    inside = int(np.count_nonzero(vessel_mask & liver))
    if inside == 0:
        return ("the delivered vessel mask lies entirely outside the liver (a vessel trunk, "
                "not the intra-hepatic vessel tree)")
    if inside < MIN_INSIDE_LIVER * total:
        return (f"the delivered vessel mask lies mostly outside the liver "
                f"({100.0 * inside / total:.0f}% of it inside, under "
                f"{100 * MIN_INSIDE_LIVER:.0f}%): a vessel trunk, not the intra-hepatic "
                "vessel tree")
    return None


@dataclass
class VesselResult:
    """Vessel measurements of one liver (canonical orientation)."""

    fraction: float | None
    tortuosity: float | None
    branch_density_per_l: float | None
    mask: np.ndarray | None = None  # canonical grid, whole image
    flags: dict = field(default_factory=dict)


def _to_sitk(array: np.ndarray, spacing: tuple[float, float, float]) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing((spacing[2], spacing[1], spacing[0]))
    return img


def _resample_iso(img: sitk.Image, grid_mm: float, interp: int) -> sitk.Image:
    size = [max(2, round(n * s / grid_mm)) for n, s in zip(img.GetSize(), img.GetSpacing(),
                                                              strict=True)]
    # grid centred on the image extent, so a flipped volume samples the same points
    origin = [-0.5 * s + 0.5 * (n * s - (m - 1) * grid_mm)
              for n, s, m in zip(img.GetSize(), img.GetSpacing(), size, strict=True)]
    return sitk.Resample(img, size, sitk.Transform(), interp, origin, (grid_mm,) * 3,
                         img.GetDirection(), 0.0, img.GetPixelID())


def vesselness(image_iso: sitk.Image, sigmas_mm: tuple[float, ...], bright: bool) -> np.ndarray:
    """Maximum over scales of the ITK tubular objectness (sigma^2-normalised Hessian)."""
    best = None
    for s in sigmas_mm:
        smooth = sitk.SmoothingRecursiveGaussian(image_iso, s) * (s * s)
        v = sitk.GetArrayFromImage(sitk.ObjectnessMeasure(
            smooth, alpha=0.5, beta=0.5, gamma=5.0, scaleObjectnessMeasure=True,
            objectDimension=1, brightObject=bright))
        best = v if best is None else np.maximum(best, v)
    return best


def skeleton_metrics(skeleton: np.ndarray, grid_mm: float,
                     min_branch_mm: float) -> tuple[int, float | None, int]:
    """Branch points, mean tortuosity and number of measured branches of a skeleton.

    Parameters
    ----------
    skeleton
        Boolean 1-voxel-thin skeleton on an isotropic grid.
    grid_mm
        Grid spacing (mm).
    min_branch_mm
        Branches shorter than this (path length) are not measured for tortuosity.
    """
    sk = np.pad(skeleton.astype(bool), 1)
    neighbours = ndi.convolve(sk.astype(np.uint8), np.ones((3, 3, 3), np.uint8),
                              mode="constant") - 1
    junction = sk & (neighbours >= 3)
    _, n_junctions = ndi.label(junction, structure=_CUBE)
    branches = sk & ~junction
    labels, n_branches = ndi.label(branches, structure=_CUBE)
    if n_branches == 0:
        return int(n_junctions), None, 0
    length = np.zeros(n_branches + 1)
    internal = np.zeros(labels.shape, dtype=np.uint8)  # neighbours within the same branch
    inner = tuple(slice(1, n - 1) for n in labels.shape)
    a = labels[inner]
    for dz, dy, dx in DIRECTIONS_3D:
        for sgn in (1, -1):
            oz, oy, ox = sgn * dz, sgn * dy, sgn * dx
            b = labels[1 + oz:labels.shape[0] - 1 + oz, 1 + oy:labels.shape[1] - 1 + oy,
                       1 + ox:labels.shape[2] - 1 + ox]
            same = (a > 0) & (a == b)
            internal[inner] += same.astype(np.uint8)
            if sgn == 1:
                step = grid_mm * float(np.sqrt(dz * dz + dy * dy + dx * dx))
                length += np.bincount(a[same], minlength=n_branches + 1) * step
    ends = np.argwhere(branches & (internal == 1))
    if len(ends) == 0:
        return int(n_junctions), None, 0
    end_labels = labels[tuple(ends.T)]
    ratios = []
    order = np.argsort(end_labels, kind="stable")
    end_labels, ends = end_labels[order], ends[order]
    bounds = np.flatnonzero(np.diff(end_labels)) + 1
    for group, lab in zip(np.split(ends, bounds), end_labels[np.r_[0, bounds]], strict=True):
        if len(group) != 2 or length[lab] < min_branch_mm:
            continue
        chord = float(np.linalg.norm((group[0] - group[1]) * grid_mm))
        if chord > 0:
            ratios.append(length[lab] / chord)
    tort = float(np.mean(ratios)) if ratios else None
    return int(n_junctions), tort, len(ratios)


def analyse_vessels(image: np.ndarray, liver: np.ndarray,
                    spacing_mm: tuple[float, float, float], *,
                    enhanced: bool, blood_hu: float | None = None,
                    vessel_mask: np.ndarray | None = None,
                    grid_mm: float = 1.5, vesselness_grid_mm: float = 2.5,
                    sigmas_mm: tuple[float, ...] = (2.5, 3.0),
                    min_branch_mm: float = 5.0, exclude: np.ndarray | None = None,
                    ) -> VesselResult:
    """Vessel fraction, tortuosity and branch density inside the liver.

    Parameters
    ----------
    image
        Intensities (HU for the detector), canonical orientation.
    liver
        Whole-liver mask (vessels and lesions included), same grid.
    spacing_mm
        Canonical spacing (S, P, L), mm.
    enhanced
        True on contrast-enhanced CT: vessels are bright and the blood attenuation is
        measured in the liver's vessel trunks (``blood_hu`` is the fallback).
    blood_hu
        Blood-pool attenuation (e.g. the aorta's median HU). Needed on unenhanced CT, where
        it sets the vessel polarity and contrast; without it vessels are not measurable.
    vessel_mask
        Delivered vessel segmentation; used instead of the detector when given.
    grid_mm
        Isotropic grid of the skeleton.
    vesselness_grid_mm, sigmas_mm
        Isotropic grid and scales of the vesselness gate.
    min_branch_mm
        Shortest branch measured for tortuosity.
    exclude
        Voxels never counted as vessel (e.g. a delivered lesion mask).
    """
    box = bbox(liver, margin=2)
    if box is None:
        return VesselResult(None, None, None)
    liv = liver[box]
    liver_voxels = int(np.count_nonzero(liv))
    flags: dict = {}
    fraction: float | None
    if vessel_mask is not None:
        ves = np.asarray(vessel_mask[box], dtype=bool) & liv
        flags["vessel_source"] = "delivered_mask"
        fraction = float(np.count_nonzero(ves)) / liver_voxels if liver_voxels else None
    else:
        flags["vessel_source"] = "vesselness"
        excl = None if exclude is None else np.asarray(exclude[box], dtype=bool)
        ves, fraction = _detect(np.asarray(image[box], dtype=np.float32), liv, spacing_mm,
                                enhanced=enhanced, blood_hu=blood_hu, exclude=excl,
                                vesselness_grid_mm=vesselness_grid_mm, sigmas_mm=sigmas_mm,
                                flags=flags)
        if ves is None:
            return VesselResult(None, None, None, None, flags)

    ves_iso = sitk.GetArrayFromImage(_resample_iso(
        _to_sitk(ves.astype(np.float32), spacing_mm), grid_mm, sitk.sitkLinear)) > 0.5
    skel = skeletonize(ves_iso) > 0 if ves_iso.any() else ves_iso
    n_junctions, tort, n_measured = skeleton_metrics(skel, grid_mm, min_branch_mm)
    liver_l = liver_voxels * float(np.prod(spacing_mm)) / 1e6
    density = n_junctions / liver_l if liver_l > 0 else None
    flags["branches_measured"] = n_measured
    full = np.zeros(liver.shape, dtype=bool)
    full[box] = ves
    return VesselResult(fraction, tort, density, full, flags)


def _smooth_inside(img: np.ndarray, roi: np.ndarray, sigma_mm: float,
                   spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Gaussian smoothing restricted to ``roi`` (normalised convolution), 0 outside."""
    sig = [sigma_mm / s for s in spacing_mm]
    weight = ndi.gaussian_filter(roi.astype(np.float32), sig)
    smooth = ndi.gaussian_filter(np.where(roi, img, 0.0).astype(np.float32), sig)
    return np.where(roi, smooth / np.maximum(weight, 1e-3), 0.0).astype(np.float32)


def _robust_mean(values: np.ndarray) -> float:
    """Mean of the values within 4 robust SDs of their median (lesions, vessels left)."""
    med = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - med)))
    inside = values[np.abs(values - med) <= 4.0 * max(mad, 0.5)]
    return float(np.mean(inside, dtype=np.float64)) if inside.size else med


def _voxels_for(mm: float, spacing_mm: tuple[float, float, float]) -> int:
    return max(1, round(mm / min(spacing_mm)))


def _not_measurable(flags: dict, why: str) -> tuple[None, None]:
    flags["not_measurable"] = why
    return None, None


def _detect(img: np.ndarray, liv: np.ndarray, spacing_mm: tuple[float, float, float], *,
            enhanced: bool, blood_hu: float | None, exclude: np.ndarray | None,
            vesselness_grid_mm: float, sigmas_mm: tuple[float, ...],
            flags: dict) -> tuple[np.ndarray | None, float | None]:
    """Traced vessel mask (native grid, cropped) and the integrated vessel fraction; (None,
    None) with a ``not_measurable`` flag where the vessel contrast is too low to measure."""
    phase = "enhanced" if enhanced else "unenhanced"
    interior = ndi.binary_erosion(liv, _CUBE)
    if exclude is not None:
        interior &= ~dilate(exclude, 1)
    if np.count_nonzero(interior) < 1000:
        return _not_measurable(flags, "liver interior too small for vessel analysis")
    parenchyma0 = float(np.median(img[interior]))
    if enhanced:
        sign = 1.0
    elif blood_hu is None:
        return _not_measurable(flags, "blood-pool attenuation unknown (no aorta found) "
                                      "and no contrast enhancement")
    else:
        sign = 1.0 if blood_hu >= parenchyma0 else -1.0
    flags["vessel_polarity"] = "bright" if sign > 0 else "dark"
    smooth = _smooth_inside(img, interior, DETECT_SIGMA_MM, spacing_mm)
    vals = smooth[interior]
    level = float(np.median(vals))
    noise = max(1.4826 * float(np.median(np.abs(vals - level))), 0.5)
    flags["noise_sd_smoothed"] = round(noise, 2)
    contrast_map = sign * (smooth - level)
    del smooth
    traced = _trace(img, contrast_map, interior, noise, spacing_mm, sign > 0,
                    vesselness_grid_mm, sigmas_mm)
    del contrast_map
    margin = _voxels_for(INTEGRATION_MARGIN_MM, spacing_mm)
    near = dilate(traced, margin + 2) if traced.any() else traced
    parenchyma = _robust_mean(img[interior & ~near])
    flags["parenchyma_hu"] = round(parenchyma, 1)

    blood, source = blood_hu, "blood_pool"
    in_vessels = _deep_median(img, traced, spacing_mm)
    if in_vessels is not None:
        flags["vessel_hu"] = round(in_vessels, 1)
    if enhanced:
        if in_vessels is not None:
            blood, source = in_vessels, "liver_vessels"
        elif blood is None:
            return _not_measurable(flags, "no vessel trunk traced on enhanced CT to measure "
                                          "the blood attenuation")
    if blood is None:  # unenhanced without a blood level returned above
        return None, None
    flags["blood_hu"], flags["blood_hu_source"] = round(blood, 1), source
    contrast = sign * (blood - parenchyma)
    keep_ref = 1.0 - np.exp(-REF_RADIUS_MM**2 / (2.0 * DETECT_SIGMA_MM**2))
    cnr = contrast * keep_ref / noise
    flags["vessel_cnr"] = round(float(cnr), 2)
    if cnr < TRACE_SD:
        return _not_measurable(
            flags, f"vessel contrast {contrast:.0f} HU (blood {blood:.0f}, parenchyma "
                   f"{parenchyma:.0f}) gives {2 * REF_RADIUS_MM:.0f} mm vessels "
                   f"{max(cnr, 0.0):.1f} noise SD (< {TRACE_SD:.1f}) on {phase} CT")
    if source == "blood_pool" and contrast * FRACTION_BUDGET < BLOOD_POOL_SD_HU:
        return _not_measurable(
            flags, f"vessel contrast {contrast:.0f} HU (blood {blood:.0f}, parenchyma "
                   f"{parenchyma:.0f}) under {BLOOD_POOL_SD_HU / FRACTION_BUDGET:.0f} HU: "
                   f"a {BLOOD_POOL_SD_HU:.0f} HU blood-level error would bias the fraction "
                   f"by more than {100 * FRACTION_BUDGET:.1f}% on {phase} CT")
    region = dilate(traced, margin) & interior
    excess = float(np.sum(img[region] - np.float32(parenchyma), dtype=np.float64))
    fraction = max(0.0, excess / (blood - parenchyma)) / float(np.count_nonzero(liv))
    return traced, fraction


def _deep_median(img: np.ndarray, traced: np.ndarray,
                 spacing_mm: tuple[float, float, float]) -> float | None:
    """Median intensity at least BLOOD_DEPTH_MM inside the traced vessels (None if they
    hold less than MIN_BLOOD_MM3 there)."""
    box = bbox(traced, margin=1)
    if box is None:
        return None
    depth = ndi.distance_transform_edt(traced[box], sampling=spacing_mm)
    deep = depth >= BLOOD_DEPTH_MM
    if np.count_nonzero(deep) * float(np.prod(spacing_mm)) < MIN_BLOOD_MM3:
        return None
    return float(np.median(img[box][deep]))


def _trace(img: np.ndarray, contrast_map: np.ndarray, interior: np.ndarray, noise: float,
           spacing_mm: tuple[float, float, float], bright: bool,
           vesselness_grid_mm: float, sigmas_mm: tuple[float, ...]) -> np.ndarray:
    """Hysteresis tracing: components above TRACE_SD noise SDs that hold a seed above
    SEED_SD, are at least MIN_COMPONENT_MM3 and are reached by the tubular vesselness."""
    seeds = interior & (contrast_map > SEED_SD * noise)
    empty = np.zeros(interior.shape, dtype=bool)
    if np.count_nonzero(seeds) < 3:
        return empty
    cand = interior & (contrast_map > TRACE_SD * noise)
    labels, n = ndi.label(cand, structure=_CUBE)
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[labels[seeds]] = True
    size_mm3 = np.bincount(labels.ravel(), minlength=n + 1) * float(np.prod(spacing_mm))
    keep = seeded & (size_mm3 >= MIN_COMPONENT_MM3)
    keep[0] = False
    if not keep.any():
        return empty
    # tubular gate: the vesselness (coarse grid) must reach the component's seeds
    seeds &= keep[labels]
    box = bbox(seeds, margin=2)
    iso = _resample_iso(_to_sitk(img[box], spacing_mm), vesselness_grid_mm, sitk.sitkLinear)
    v_iso = vesselness(iso, tuple(max(s, vesselness_grid_mm) for s in sigmas_mm), bright)
    pts = np.argwhere(seeds[box])
    idx = []
    for ax in range(3):  # nearest coarse sample (same centred grid as _resample_iso)
        n_nat, n_iso = seeds[box].shape[ax], v_iso.shape[ax]
        first = 0.5 * (n_nat * spacing_mm[ax] - (n_iso - 1) * vesselness_grid_mm)
        j = np.rint(((pts[:, ax] + 0.5) * spacing_mm[ax] - first) / vesselness_grid_mm)
        idx.append(np.clip(j.astype(int), 0, n_iso - 1))
    vmax = np.zeros(n + 1)
    np.maximum.at(vmax, labels[box][tuple(pts.T)], v_iso[tuple(idx)])
    keep &= vmax > 0.05 * float(np.percentile(v_iso, 99.0))
    return keep[labels]
