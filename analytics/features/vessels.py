"""Hepatic vessels: volume fraction, tortuosity and branch density.

Without a delivered vessel mask (the usual case on real data):

1. the liver is smoothed (~1 mm Gaussian, inside the liver only, so outside tissue does
   not bleed in); parenchyma level and noise are the median and MAD of its interior;
2. cores: voxels more than 4 noise SDs brighter (or darker) than the parenchyma; a core
   component is kept only if a multiscale Hessian vesselness (ITK objectness, tubular,
   sigma^2-normalised, on a 2.5 mm isotropic grid of the cores' bounding box) reaches it,
   which drops blob-like and noise components;
3. each kept core is grown (at most 3 mm) through voxels above half its own peak contrast
   (90th percentile of the core): a half-maximum boundary, which sizes vessels wider than
   the blur correctly.

Vessels are bright on contrast-enhanced CT. On unenhanced CT blood (~40 HU) is darker
than normal liver and brighter than fatty liver; the polarity follows the parenchyma and
the result is flagged ``low_vessel_contrast`` when the vessel contrast is under 6 noise
SDs (or no core is found); in practice unenhanced vessels are mostly missed.

A delivered vessel mask is used as is (clipped to the liver) when present.

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
                    bright: bool, vessel_mask: np.ndarray | None = None,
                    grid_mm: float = 1.5, vesselness_grid_mm: float = 2.5,
                    sigmas_mm: tuple[float, ...] = (2.5, 3.0),
                    min_branch_mm: float = 5.0, exclude: np.ndarray | None = None,
                    ) -> VesselResult:
    """Vessel fraction, tortuosity and branch density inside the liver.

    Parameters
    ----------
    image
        Intensities, canonical orientation.
    liver
        Whole-liver mask (vessels and lesions included), same grid.
    spacing_mm
        Canonical spacing (S, P, L), mm.
    bright
        True when vessels are brighter than the parenchyma.
    vessel_mask
        Delivered vessel segmentation; used instead of the filter when given.
    grid_mm
        Isotropic grid of the skeleton.
    vesselness_grid_mm, sigmas_mm
        Isotropic grid and scales of the vesselness filter.
    min_branch_mm
        Shortest branch measured for tortuosity.
    exclude
        Voxels never counted as vessel (e.g. a delivered lesion mask).
    """
    box = bbox(liver, margin=2)
    if box is None:
        return VesselResult(None, None, None)
    liv = liver[box]
    img = np.asarray(image[box], dtype=np.float32)
    liver_voxels = int(np.count_nonzero(liv))
    flags: dict = {}
    if vessel_mask is not None:
        ves = np.asarray(vessel_mask[box], dtype=bool) & liv
        flags["vessel_source"] = "delivered_mask"
    else:
        ves = _detect(img, liv, spacing_mm, bright=bright,
                      vesselness_grid_mm=vesselness_grid_mm, sigmas_mm=sigmas_mm, flags=flags)
        if exclude is not None:
            ves &= ~np.asarray(exclude[box], dtype=bool)
        flags["vessel_source"] = "vesselness"
    fraction = float(np.count_nonzero(ves)) / liver_voxels if liver_voxels else None

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


def _detect(img: np.ndarray, liv: np.ndarray, spacing_mm: tuple[float, float, float], *,
            bright: bool, vesselness_grid_mm: float, sigmas_mm: tuple[float, ...],
            flags: dict) -> np.ndarray:
    """Vessel mask (native grid, cropped): contrast cores gated by vesselness, grown to
    the half-way level between parenchyma and vessel."""
    sign = 1.0 if bright else -1.0
    interior = ndi.binary_erosion(liv, _CUBE)
    if not interior.any():
        interior = liv
    # ~1 mm Gaussian inside the liver only (normalised convolution): lowers noise while
    # keeping vessels of 2 mm and more, without mixing in tissue outside the liver
    sig = [1.0 / s for s in spacing_mm]
    weight = ndi.gaussian_filter(liv.astype(np.float32), sig)
    smooth = ndi.gaussian_filter(np.where(liv, img, 0.0).astype(np.float32), sig)
    smooth = np.where(liv, smooth / np.maximum(weight, 1e-3), 0.0).astype(np.float32)
    vals = smooth[interior]
    parenchyma = float(np.median(vals))
    noise = max(1.4826 * float(np.median(np.abs(vals - parenchyma))), 0.5)
    contrast_map = (sign * (smooth - parenchyma)).astype(np.float32)
    cores = interior & (contrast_map > 4.0 * noise)
    flags["noise_sd_smoothed"] = round(noise, 2)
    empty = np.zeros(liv.shape, dtype=bool)
    if np.count_nonzero(cores) < 3:
        flags["low_vessel_contrast"] = True
        return empty
    # tubular gate: a core component is kept if the vesselness (coarse grid) reaches it
    box = bbox(cores, margin=2)
    iso = _resample_iso(_to_sitk(img[box], spacing_mm), vesselness_grid_mm, sitk.sitkLinear)
    v_iso = vesselness(iso, tuple(max(s, vesselness_grid_mm) for s in sigmas_mm), bright)
    labels, n = ndi.label(cores, structure=_CUBE)
    pts = np.argwhere(cores[box])
    # nearest coarse sample of each core voxel (same centred grid as _resample_iso)
    idx = []
    for ax in range(3):
        n_nat, n_iso = cores[box].shape[ax], v_iso.shape[ax]
        first = 0.5 * (n_nat * spacing_mm[ax] - (n_iso - 1) * vesselness_grid_mm)
        j = np.rint(((pts[:, ax] + 0.5) * spacing_mm[ax] - first) / vesselness_grid_mm)
        idx.append(np.clip(j.astype(int), 0, n_iso - 1))
    pts_box = tuple(pts.T)
    core_labels = labels[box][pts_box]
    vmax = np.zeros(n + 1)
    np.maximum.at(vmax, core_labels, v_iso[tuple(idx)])
    keep = vmax > 0.05 * float(np.percentile(v_iso, 99.0))
    keep[0] = False
    if not keep.any():
        flags["low_vessel_contrast"] = True
        return empty
    # each vessel tree's own peak (90th percentile of its core): blur lowers small peaks
    core_values = contrast_map[box][pts_box]
    order = np.lexsort((core_values, core_labels))
    sorted_labels, sorted_values = core_labels[order], core_values[order]
    starts = np.searchsorted(sorted_labels, np.arange(n + 1))
    ends = np.searchsorted(sorted_labels, np.arange(n + 1), side="right")
    peaks = np.zeros(n + 1)
    for lab in np.flatnonzero(keep):
        seg = sorted_values[starts[lab]:ends[lab]]
        peaks[lab] = seg[min(len(seg) - 1, int(0.9 * len(seg)))]
    contrast = float(np.median(peaks[keep]))
    flags["vessel_contrast"] = round(contrast, 1)
    if contrast < 6.0 * noise:
        flags["low_vessel_contrast"] = True
    # grow each core to half its own peak, at most ~3 mm (noise must not leak): the label
    # of the neighbouring grown voxel carries its core's half-level outward
    half = 0.5 * peaks
    grown = keep[labels] & (contrast_map > half[labels])
    lab = np.where(grown, labels, 0)
    steps = max(1, int(np.ceil(3.0 / min(spacing_mm))))
    band = dilate(grown, steps) & liv & (contrast_map > half[keep].min())
    sub = bbox(band)
    if sub is None:
        return grown
    lab_s, grown_s, band_s, cm_s = lab[sub], grown[sub], band[sub], contrast_map[sub]
    for _ in range(steps):
        new_lab = ndi.grey_dilation(lab_s, footprint=_CUBE)
        ok = band_s & ~grown_s & (new_lab > 0)
        ok &= cm_s > half[new_lab]
        if not ok.any():
            break
        lab_s[ok] = new_lab[ok]
        grown_s |= ok
    grown[sub] = grown_s
    return grown
