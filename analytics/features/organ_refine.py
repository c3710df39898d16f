"""Refining a grown organ candidate of the classical segmentation, and its native-grid mask.

The steps of ``classical-v4`` (``analytics.features.segmentation``, steps 3-5 of its module
docstring) after an organ's candidate is grown on the coarse grid: kept where its local
mean attenuation matches its core's (homogeneity), bowel fluid under an air-fluid level
dropped (liver), grown into the thin parts of its window (the spleen's tail); then the
native-grid mask inside the dilated candidate and the partial-volume rim where the organ
borders fat or air.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from analytics.features.abdomen import GRID_MM
from analytics.features.geometry import bbox
from analytics.features.landmarks import from_grid
from analytics.features.measure import largest_component
from analytics.features.necks import ball as _ball
from analytics.features.organ_search import fill_holes, robust_sd

# liver homogeneity: local mean over a Gaussian of this sigma (coarse voxels, 7.5 mm) inside
# the candidate; kept where within max(HOM_MIN_HU, HOM_K x its spread in the core) of the
# core's mode, then grown back by one coarse voxel
HOM_SIGMA_VOX = 2.5
HOM_K = 2.5
HOM_MIN_HU = 4.0
# spleen homogeneity: the same local mean, but its partial-volume rim (one coarse voxel)
# carries no weight - a thin spleen is mostly rim - and the margin is at least 6 HU
SPLEEN_HOM_MIN_HU = 6.0
SPLEEN_HOM_RIM_VOX = 1
# liver: bowel fluid under an air-fluid level - the candidate's voxels in an unbroken run
# posterior to (below, supine) bowel gas, across at most one voxel (the bowel wall), up to
# this depth - is dropped; gas below GAS_HU touching the scan's top slice is lung
UNDER_GAS_MM = 30.0
GAS_HU = -400.0
# spleen tail: the chosen spleen is grown by up to this many coarse voxels (18 mm) into the
# thin parts of its window (what an opening of this radius removes), not next to the
# excluded wall or liver, nor along the rim of another thick structure of the window
SPLEEN_TAIL_STEPS = 6
SPLEEN_TAIL_THICK_VOX = 2
# fat's attenuation: the partial-volume rim is the shell at least half-way to the organ
FAT_HU = -100.0


def refine_native(native: np.ndarray, coarse_mask: np.ndarray,
                  spacing: tuple[float, float, float], window: tuple[float, float],
                  floor: float | None = None) -> np.ndarray:
    """Native-grid mask: intensity window inside the dilated coarse mask, holes filled.

    The native image is noisier than the coarse one, so the window is widened by half.
    """
    centre, half = 0.5 * (window[0] + window[1]), 0.75 * (window[1] - window[0])
    lo, hi = centre - half, centre + half
    if floor is not None:  # an enhanced organ grown through its drift
        lo = min(lo, floor)
    near = from_grid(ndi.binary_dilation(coarse_mask, _ball(1)), native.shape, spacing, GRID_MM)
    core = from_grid(ndi.binary_erosion(coarse_mask, _ball(1)), native.shape, spacing, GRID_MM)
    box = bbox(near, margin=1)
    out = np.zeros(native.shape, dtype=bool)
    if box is None:
        return out
    sm = ndi.gaussian_filter(native[box], sigma=[0.7 / s for s in spacing])
    sub = (near[box] & (sm >= lo) & (sm <= hi)) | core[box]
    out[box] = fill_holes(largest_component(sub))
    return out


def homogeneous(mask: np.ndarray, smooth: np.ndarray, window_hi: float,
                min_hu: float = HOM_MIN_HU, rim_vox: int = 0,
                floor: float | None = None) -> np.ndarray:
    """The part of an organ candidate whose local mean attenuation matches its core's.

    The liver is the largest homogeneous organ: its level is the mode of its eroded core.
    The local mean is a normalised convolution inside the candidate only (no bleeding from
    outside), which brings the noise down to ~2 HU; voxels next to much brighter tissue
    (beyond the window by as much again: enhanced vessels, whose partial-volume rim would
    raise the mean around the hilum) carry no weight. A neighbour differing by more than
    the margin (``HOM_K`` x the local mean's robust spread in the core, at least
    ``HOM_MIN_HU``) is dropped: a kidney, gallbladder or bowel fluid within the window of
    a steatotic liver. The part attached to the core is kept, grown back by one voxel
    (partial volume at the edges and along vessels) and its holes refilled (vessels and
    lesions enclosed by the liver stay inside). With ``rim_vox`` the candidate's outer
    ``rim_vox`` voxels carry no weight either (their partial volume with fat lowers the
    local mean of a thin organ), and ``min_hu`` replaces ``HOM_MIN_HU`` as the floor.
    """
    core = ndi.binary_erosion(mask, _ball(2))
    if core.sum() < 100:
        return mask
    vals = smooth[core]
    lo, hi = np.percentile(vals, [2, 98])
    hist, edges = np.histogram(vals, bins=np.arange(lo, hi + 1.0, 1.0))
    if hist.size < 3:
        return mask
    level = float(edges[int(np.argmax(ndi.gaussian_filter1d(hist.astype(float), 2.0)))] + 0.5)
    bright = smooth > window_hi + (window_hi - level)
    inner = ndi.binary_erosion(mask, _ball(rim_vox)) if rim_vox else mask
    m = (inner & ~ndi.binary_dilation(bright, _ball(1))).astype(np.float32)
    den = ndi.gaussian_filter(m, HOM_SIGMA_VOX)
    local = ndi.gaussian_filter(smooth * m, HOM_SIGMA_VOX) / np.maximum(den, 1e-3)
    local[~mask | (den < 0.05)] = level
    margin = max(min_hu, HOM_K * robust_sd(local[core]))
    lowest, highest = level - margin, level + margin
    if floor is not None:  # enhanced, grown through its drift: up to its vessels' level
        lowest, highest = min(lowest, floor), max(highest, 2.0 * window_hi - level)
    keep = mask & (local >= lowest) & (local <= highest)
    labels, n = ndi.label(keep)
    if n == 0:
        return mask
    if n > 1:
        hits = np.bincount(labels[core & keep], minlength=n + 1)
        hits[0] = 0
        keep = labels == int(np.argmax(hits))
    keep = ndi.binary_dilation(keep, _ball(1)) & mask
    return fill_holes(ndi.binary_fill_holes(keep)) & mask


def drop_under_gas(mask: np.ndarray, coarse: np.ndarray, body: np.ndarray,
                   depth_mm: float = UNDER_GAS_MM) -> np.ndarray:
    """The organ candidate without bowel fluid lying under intraluminal gas.

    In a supine patient the fluid of a bowel loop or the stomach lies posterior to its gas
    (air-fluid level). A steatotic liver's window takes that fluid; the liver itself never
    lies under gas of its own. Bowel gas is gas inside the body not connected to the top
    slice (the lung bases). The candidate's voxels in an unbroken posterior run starting
    at the gas, or one voxel behind it (the bowel wall), down to ``depth_mm``, are dropped;
    the largest remaining part is kept and its holes refilled (not those under gas).
    """
    gas = body & (coarse < GAS_HU)
    labels, n = ndi.label(gas)
    if n == 0:
        return mask
    top = int(np.flatnonzero(body.any(axis=(1, 2)))[-1])
    lung = np.unique(labels[top][labels[top] > 0])
    bowel_gas = gas & ~np.isin(labels, lung)
    under = np.zeros_like(mask)
    run = np.zeros_like(mask)
    for i in range(1, round(depth_mm / GRID_MM) + 1):
        nxt = np.zeros_like(mask)
        nxt[:, 1:, :] = run[:, :-1, :]
        if i <= 2:  # right behind the gas, or behind its wall
            nxt[:, i:, :] |= bowel_gas[:, :-i, :]
        run = nxt & mask
        if i >= 2 and not run.any():
            break
        under |= run
    if not under.any():
        return mask
    keep = largest_component(mask & ~under)
    return fill_holes(ndi.binary_fill_holes(keep)) & mask & ~under


def thin_reach(mask: np.ndarray, smooth: np.ndarray, body: np.ndarray, exclude: np.ndarray,
               window: tuple[float, float], steps: int = SPLEEN_TAIL_STEPS,
               thick_vox: int = SPLEEN_TAIL_THICK_VOX) -> np.ndarray:
    """The organ candidate grown into the thin parts of its intensity window.

    The candidate reaches one erosion radius around its eroded core, so a tail thinner
    than the erosion (a spleen's tip running between fat and bowel) is left out. It is
    grown geodesically, up to ``steps`` voxels, through the voxels of its window that an
    opening of radius ``thick_vox`` removes - thin structures - and not within one voxel
    of ``exclude`` (wall, liver), nor of another thick structure of the window (a kidney
    or muscle touching the organ: its rim is thin too, and the growth would creep along it).
    """
    allowed = body & (smooth >= window[0]) & (smooth <= window[1]) & ~exclude
    allowed &= ~ndi.binary_dilation(exclude, _ball(1))
    thick = ndi.binary_opening(allowed, _ball(thick_vox))
    labels, _ = ndi.label(thick)
    own = np.unique(labels[mask & thick])
    other = thick & ~np.isin(labels, own[own > 0])
    allowed &= ~thick & ~ndi.binary_dilation(other, _ball(1))
    return ndi.binary_dilation(mask, iterations=steps, mask=allowed | mask)


def partial_volume_rim(native: np.ndarray, mask: np.ndarray, forbid) -> np.ndarray:
    """``mask`` with the one-voxel shell around it that is at least half organ.

    A boundary voxel shared by the organ and fat has an attenuation between theirs; it
    belongs to the organ when it is nearer the organ's level than fat's (the half-way
    partial-volume rule). Voxels far above the organ's level (bone, bolus) are not taken.
    """
    if not mask.any():
        return mask
    core = ndi.binary_erosion(mask)
    values = native[core] if core.any() else native[mask]
    level = float(np.median(values))
    spread = robust_sd(values)
    half = level - 0.5 * (level - FAT_HU)
    shell = ndi.binary_dilation(mask, ndi.generate_binary_structure(3, 1)) & ~mask & ~forbid
    # only at the organ's border with fat or air: between it and an iso-attenuating
    # neighbour (muscle, bowel wall, kidney) the shell is as likely the neighbour
    fat_side = ndi.binary_dilation((native < half) & ~mask, ndi.generate_binary_structure(3, 1))
    take = shell & fat_side & (native >= half) & (native <= level + 3.0 * spread)
    return mask | take
