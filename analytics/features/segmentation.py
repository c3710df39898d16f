"""Automatic liver and spleen segmentation for series delivered without masks.

Order of preference: TotalSegmentator, when it is installed *with its weights* (an
optional extra, detected at run time; nothing is downloaded), else the classical CT
pipeline ``classical-v4``, never on MR. Both are flagged automatic and approximate.
This module chooses the engine and runs classical-v4's liver and spleen searches; the
search for one organ's candidate is in ``analytics.features.organ_search``, its trimming
and its native-grid mask in ``analytics.features.organ_refine``.

classical-v4 (canonical orientation; coarse 3 mm grid, refined on the native grid):

1. body = largest component above -400 HU; the body wall (soft tissue within the measured
   wall thickness under the subcutaneous fat, read along rays from the skin, and the arms
   beyond the trunk; ``analytics.features.abdomen``) and the paraspinal zone (behind the
   front of the vertebral body, within 40 mm of the spine) are excluded: they touch the
   liver and spleen with the same attenuation;
2. organ intensity = peaks of the histogram of the smoothed image on the patient's right
   (liver) or left (spleen) side, between -60 and 260 HU (up to six peaks down to 1 % of
   the highest, so a small spleen among muscle and bowel still gives one);
3. for each candidate peak: voxels within the peak's window (2.5 noise SDs), eroded by
   7 mm to break thin bridges to neighbouring organs, split into connected components;
   the liver is the largest component whose centre lies right of the midline, at least
   300 mL (less in a slab shorter than the liver's 150 mm span, in proportion; in a scan
   at least 200 mm long, without the in-plane positions where the window holds tissue in
   90 % of the body's slices including its first and last - the paraspinal and psoas
   muscles, which an iso-attenuating liver touches above and below - and with its core
   split at its necks as the spleen's below, the pieces whose centre lies in the spleen's
   place, lateral on the left and not anterior, left out: an unenhanced spleen of the
   liver's attenuation touching it); the
   spleen the largest-and-most-lateral one on the left, not anterior, liver excluded,
   and - since it lies under the left hemidiaphragm - with its centre above the lowest
   15 % of the liver's height (the liver's extent: its slices holding at least a tenth of
   its largest slice's area, so a stray low fragment does not lower the bar; the left
   kidney's centre lies lower); a thin spleen that
   does not survive the 7 mm erosion is searched again with a 4 mm one. A spleen core
   can still touch the kidney or posterior muscle through a neck wider than the erosion,
   so it is first split at its necks (watershed of the distance map from its maxima,
   regions merged back while the neck's radius is >= 0.6 x the smaller region's largest
   radius); its acceptable pieces are kept together unless one lies clearly more medial
   (lateral weight below half the most lateral piece's); each grown spleen candidate is
   then kept where homogeneous, as the liver in 4 (its outer coarse voxel carrying no
   weight, margin at least 6 HU), before it is scored, and it must hold 20 mL. In a scan
   at least 200 mm long, the in-plane positions where a peak's window holds tissue in 90 %
   of the body's slices are excluded from that peak's spleen search: the paraspinal
   muscles run the length of the scan beside the spine, also lateral to the paraspinal
   zone, while the spleen spans a part of it. The chosen spleen is then grown, up to
   18 mm, through the thin parts of its window (what a 6 mm opening removes), not next
   to the wall, the liver or another thick structure of the window: its coarse mask
   reaches one erosion radius around the core, and a tail thinner than the erosion is
   left out;
4. the component is grown back inside its window - an enhanced organ, at least 30 HU
   above muscle, also through a slow drift of its attenuation down to half-way to muscle
   (``analytics.features.drift``; its homogeneity and native windows widened alike) -, closed, its holes (vessels, lesions)
   filled in 3-D and slice by slice, since the reference liver label includes them,
   and neighbours joined by a neck narrower than ~18 mm are cut off (narrower for a thin
   organ: the opening radius is at most 0.6 x its largest inscribed radius);
   the liver is then kept where it is homogeneous: its level is the mode of its core, the
   local mean a 7.5 mm Gaussian normalised convolution inside the candidate only (voxels
   next to much brighter vessels carry no weight), and parts departing from the level by
   more than 2.5 x the local mean's spread in the core (at least 4 HU) are dropped - a
   kidney, gallbladder or bowel fluid within a steatotic liver's window; the part attached
   to the core is grown back by one voxel and its holes refilled; bowel fluid under an
   air-fluid level (the candidate's unbroken run posterior to bowel gas, across at most
   one voxel of wall, down to 30 mm; gas touching the top slice is lung) is dropped too;
5. the native-grid mask is the (wider) window on the native smoothed image inside the
   dilated coarse mask, holes filled as in 4; then the one-voxel shell where the organ
   borders fat or air is added where it is at least half organ (nearer the organ's level
   than fat's: the partial-volume rim, which the window misses);
6. closings treat the scan's edges as continuing the mask: an organ cut by the first or
   last slice keeps its edge slices.

Measured on real CT (tests/data, against TotalSegmentator's label maps; 3 mm voxels
unenhanced, and a 40 mm portal-venous slab): before the edge-aware closing and the rim,
liver Dice 0.826 and none found (the slab), spleen 0.664 and 0.679; after, liver 0.845
and 0.703, spleen 0.691 and 0.734 (classical-v3). On the 8 synthetic volumes of the test
both steps moved no Dice down (liver mean 0.939 -> 0.948, spleen 0.949 -> 0.965).
classical-v4 fixed three causes found by comparing the masks with every label of the
reference maps. (a) The body wall was a flood fill of fat from outside, which on real CT
passes through one-voxel gaps of a thin wall into the visceral fat and the lung: every
organ's rim against internal fat became "wall" (160 mL of the unenhanced liver, 95 mL of
its spleen, kidneys, aorta and bowel too); read along rays it holds 43 and 7 mL. (b) The
sternum, on the midline, was taken for the spine, so the paraspinal zone ran from the
front of the body (67 mL of the slab's liver); and an arm beside the trunk, no longer
covered by the leaking wall, was taken for the slab's spleen until the arms were
excluded. (c) Beam hardening darkened the slab's posterior liver by ~25 HU (anterior,
middle, posterior thirds 101 / 97 / 73 HU; the spleen likewise), outside the fixed
window; the drift growth follows it. Liver Dice 0.845 -> 0.895 and 0.703 -> 0.908,
spleen 0.691 -> 0.939 and 0.734 -> 0.913 (volumes -18 -> -0.3 %, -42 -> -10 %, -46 ->
-0.4 %, -29 -> +8 %). Slabs of 15-20 slices cut from either scan at any level and both
scans resampled to 5 mm slices keep liver 0.85-0.91 (a 45 mm slab of the liver's lower
part 0.80: 287 mL, refused as too small before the length-scaled minimum) and spleen
0.91-0.95 (classical-v3: 0.00-0.85 and 0.00-0.78). The 8 synthetic volumes: liver mean
0.948 -> 0.948 (worst 0.922 -> 0.919), spleen 0.965 -> 0.966 (worst 0.914 -> 0.908; the
wall band is drawn along rays, a little differently at the phantom's thin wall); the 48
demo series: liver mean 0.946 (worst 0.911) unchanged, spleen 0.953 -> 0.949 (worst
0.892 -> 0.890). Time on the real CTs x1.0-1.2 (CPU time, 2-4 s). A
drift growth without the enhancement condition took stomach, aorta and IVC into the
unenhanced liver (its volume +20 %); without the widened homogeneity ceiling the slab's
brighter anterior spleen was dropped (0.92 -> 0.80).

Measured on the synthetic cohort: the 8 volumes of the test (4 stages x 2 phases), mean
Dice liver 0.94, spleen 0.95, worst liver 0.92 (every liver >= 0.90), worst spleen 0.91
(every spleen >= 0.85). On 28 further volumes
(stages 0-4, both phases, noise 12 and 20 HU, 3 mm and 0.8 mm pixels): liver mean 0.93,
worst 0.88, 1 of 28 below 0.90 (unenhanced: a liver at ~34 HU beside a kidney at ~31 HU,
which it takes); spleen mean 0.93, worst 0.853, every one >= 0.85 (a 43 mL spleen with a
thin tail). The 4 mm retry, the wider peak search and the height
prior fixed one volume where classical-v1 returned the left kidney (Dice 0.00 -> 0.91) and changed no
other spleen. Splitting the spleen's core at its necks moved the 36 volumes from spleen
mean 0.836 / 9 below 0.85 to 0.861 / 4 (kidney or muscle cut off in 5: 0.59-0.80 ->
0.85-0.95; no spleen lower by more than 0.006; livers unchanged; +3 % time on a 512 x 512
x 200 CT). Splitting the liver the same way cut off kidney in one unenhanced volume but
also lobes of enhanced ones (liver mean 0.913 -> 0.912), so the liver is not split. The
liver's homogeneity step moved the 36 volumes from liver mean 0.913 / worst 0.843 / 13
below 0.90 to 0.927 / 0.870 / 3 (unenhanced livers up to +0.08, none lower; enhanced ones within
0.005 except one at 0.936 -> 0.914), spleen mean 0.861 -> 0.863 with the same 4 below
0.85, +3-5 % time; without the vessel weighting enhanced livers lost parenchyma around
the hilum (up to -0.02), and a clipped local mean kept bowel. The spleen's homogeneity
step with the 20 mL floor moved the 36 volumes from spleen mean 0.863 / 4 below 0.85 to
0.892 / 3 (kidney dropped: 0.76 -> 0.95, 0.63 -> 0.67; the thin spleen 0.00 -> 0.68;
five more up by 0.006-0.055; lower in three, worst 0.948 -> 0.910), livers unchanged,
+2-4 % time. With the liver's weighting (rim included, 4 HU) a thin enhanced spleen lost half its volume to its own partial-volume rim (0.95 -> 0.76).
Scaling the neck cut to the organ's thickness and taking the liver's extent from its
substantial slices then moved them to spleen mean 0.919 / 2 below 0.85 (the thin 69 mL
spleen 0.68 -> 0.91, the 43 mL one 0.03 -> 0.74, two more +0.02, one 0.974 -> 0.965),
livers unchanged; the two together cost +7-9 % time on a 512 x 512 x 200 CT. A fixed
6 mm neck cut for the spleen did as well on thin spleens but kept muscle on a large one
(0.93 -> 0.83). Excluding the longitudinal columns then moved them to spleen mean 0.928 /
1 below 0.85 (the spleen against posterior muscle 0.67 -> 0.95, four more up by
0.004-0.036, all others unchanged), livers unchanged, time unchanged within the run-to-run
spread; at 80 % instead of 90 % of the slices the 43 mL spleen lost the few voxels that
kept it above 20 mL and another candidate was taken instead (0.74 -> 0.04).
Dropping bowel fluid under an air-fluid level then moved them to liver mean 0.927 ->
0.929, 3 -> 1 below 0.90 (the two steatotic livers at ~18 HU 0.892 -> 0.902 and 0.887
-> 0.909; eight more up by 0.001-0.007; two down, 0.926 -> 0.923 and 0.919 -> 0.918);
spleens within 0.005 (one 0.949 -> 0.945 as the liver's exclusion changed), mean 0.928
unchanged; time +1 %. Without the unbroken-run condition (every candidate voxel within
30 mm behind bowel gas) the steatotic livers rose further (0.909, 0.921), but that would
also take liver lying behind a gas-filled colon across fat on real CT.
Growing the spleen into the thin parts of its window then moved them to spleen mean
0.928 -> 0.934, 1 -> 0 below 0.85 (the 43 mL spleen 0.739 -> 0.853; 21 more up by
0.001-0.025), down in 11 unenhanced or large spleens that it grows into a little kidney or
muscle rim (0.001-0.032, worst 0.946 -> 0.914); livers unchanged; +1-2 % time on a
512 x 512 x 200 CT. Growing every candidate 4 voxels through its whole window before
scoring let a wrong candidate win in the 43 mL spleen's volume (0.05); 4 steps after the
choice left that spleen at 0.849, 8 steps lowered the others further (mean 0.932); without
the thick-neighbour rim two spleens were 0.003-0.006 lower.

Measured on the demo cohort (``hepatrack demo``: 48 series, 44 x 128 x 128 at 5 x 3 x 3 mm
or 55 x 116 x 142 at 4 x 3.3 x 2.7 mm, 41 unenhanced, against their SEG masks): liver mean
Dice 0.937, worst 0.906, none below 0.90; spleen mean 0.938, worst 0.886, none below
0.85. Its unenhanced livers at 27-42 HU are iso-attenuating to muscle, blood and
spleen. Before the liver's column exclusion and neck split they were liver mean 0.921 / 8 below 0.90
(muscle above and below the liver taken with it: 90-650 mL over the whole scan) and
spleen mean 0.918 / 1 below 0.85 (a spleen at 45 HU merged into a liver at 42 HU: liver
0.769, spleen 0.001 -> 0.953 / 0.929); three livers 0.001 lower, four spleens within
0.003. On the 36 synthetic volumes the same steps moved
the livers from mean 0.928 to 0.933 (the worst 0.870 -> 0.879, 20 up by 0.001-0.061,
6 down by 0.001-0.004), spleens unchanged; time unchanged within the run-to-run spread.
Without the first-and-last-slice condition the column exclusion also took the liver's
posterior part stacked on the kidney and psoas (one demo liver 0.905 -> 0.898).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from analytics.errors import FeatureError
from analytics.features.abdomen import GRID_MM, _half_width, body_wall, paraspinal_zone
from analytics.features.drift import muscle_level
from analytics.features.landmarks import body_mask, from_grid, to_grid
from analytics.features.necks import ball as _ball
from analytics.features.organ_refine import (
    SPLEEN_HOM_MIN_HU,
    SPLEEN_HOM_RIM_VOX,
    drop_under_gas,
    homogeneous,
    partial_volume_rim,
    refine_native,
    thin_reach,
)
from analytics.features.organ_search import Candidate, find_organ, robust_sd
from analytics.features.totalseg import (
    CLASSICAL_METHOD,
    MR_NEEDS_MASK,
    TOTALSEG_METHOD,
    choose_engine,
    run_totalsegmentator,
)

# a spleen's core is split where its neck radius is below 0.6 x the smaller part's radius
SPLEEN_NECK_RATIO = 0.6
# liver and spleen searches: tissue of a peak's window found at the same in-plane position
# in at least this fraction of the body's slices is a longitudinal structure (paraspinal
# and psoas muscle), not the organ; only in scans at least COLUMN_MIN_MM long (a short scan
# centred on the upper abdomen could hold a large organ in nearly every slice)
COLUMN_FRAC = 0.9
COLUMN_MIN_MM = 200.0
# the smallest liver accepted in a scan covering it, and the liver's craniocaudal span
# (normal span 10-16 cm): a slab shorter than that accepts a proportionally smaller part
LIVER_MIN_ML = 300.0
LIVER_SPAN_MM = 150.0


@dataclass
class Segmentation:
    """Masks in canonical orientation, with the method that produced them."""

    masks: dict[str, np.ndarray]
    method: str


def segment_canonical(image: np.ndarray, spacing: tuple[float, float, float], *,
                      method: str = "auto", modality: str = "CT",
                      affine_lps: np.ndarray | None = None) -> Segmentation:
    """Liver and spleen masks of a canonical image, from the engine ``method`` picks.

    Parameters
    ----------
    image, spacing
        Canonical (S, P, L) image (HU, or MR intensity) and its spacing, mm.
    method, modality
        ``"auto"``, ``"classical"`` or ``"totalsegmentator"``, and ``"CT"`` or ``"MR"``
        (:func:`~analytics.features.totalseg.choose_engine`: never classical on MR).
    affine_lps
        Canonical index -> LPS affine, handed to TotalSegmentator with the image.

    Raises
    ------
    FeatureError
        If ``method`` is unknown, classical is asked for on MR, or an MR series has no
        engine (its message says it needs a liver mask).
    MissingExtraError
        If TotalSegmentator is asked for but is not installed with its weights.
    """
    engine = choose_engine(method, modality)
    if engine == TOTALSEG_METHOD:
        masks, label = run_totalsegmentator(image, spacing, modality=modality,
                                            affine_lps=affine_lps)
        return Segmentation(masks, label)
    if engine is None:
        raise FeatureError(MR_NEEDS_MASK)
    return classical_segmentation(image, spacing)


def classical_segmentation(image: np.ndarray, spacing: tuple[float, float, float]
                           ) -> Segmentation:
    """classical-v4 liver and spleen masks (canonical orientation; see module doc)."""
    img = np.asarray(image, dtype=np.float32)
    coarse = to_grid(img, spacing, GRID_MM)
    smooth = ndi.median_filter(coarse, size=3)
    body = body_mask(coarse)
    masks: dict[str, np.ndarray] = {}
    if body.sum() * GRID_MM ** 3 / 1000.0 < 500.0:
        return Segmentation(masks, CLASSICAL_METHOD)
    ab = _abdomen(img, spacing, coarse, smooth, body)
    liver = _find_liver(ab)
    exclude = ab.wall
    if liver is not None:
        masks["liver"] = _liver_mask(ab, liver)
        exclude = ab.wall | ndi.binary_dilation(liver.mask, _ball(1))
    spleen = _find_spleen(ab, exclude, _spleen_floor(liver))
    if spleen is not None:
        masks["spleen"] = _spleen_mask(ab, spleen, exclude, masks)
    return Segmentation(masks, CLASSICAL_METHOD)


@dataclass(frozen=True)
class _Abdomen:
    """What the liver and spleen searches share; coarse grid unless named native."""

    img: np.ndarray  # native HU, float32
    spacing: tuple[float, float, float]
    coarse: np.ndarray
    smooth: np.ndarray  # median-filtered coarse image
    body: np.ndarray
    sd_floor: float  # noise of the smoothed soft tissue (HU)
    cy: float  # body centre, coarse voxels
    cx: float
    hw: float  # body half-width, coarse voxels
    right: np.ndarray  # right of the body's centre line
    left: np.ndarray
    wall: np.ndarray  # abdominal wall and paraspinal zone
    wall_native: np.ndarray
    muscle: float | None  # paraspinal muscle level (HU)
    columns: float  # ``find_organ``'s column fraction: 0 on a scan too short to tell
    liver_min_ml: float


def _abdomen(img: np.ndarray, spacing: tuple[float, float, float], coarse: np.ndarray,
             smooth: np.ndarray, body: np.ndarray) -> _Abdomen:
    """Noise level, body centre and sides, the wall to peel and the scan's extent."""
    # noise of the smoothed soft tissue: spread of local differences
    soft = body & (smooth > -60) & (smooth < 260)
    sd_floor = robust_sd((smooth - ndi.uniform_filter(smooth, 3))[soft]) * 1.2
    _, cy, cx = ndi.center_of_mass(body)
    hw = _half_width(body, cx)
    xs = np.arange(coarse.shape[2])[None, None, :]
    right = np.broadcast_to(xs < cx, coarse.shape)
    left = np.broadcast_to(xs > cx, coarse.shape)

    # the abdominal wall touches the liver and spleen with the same attenuation: peel it
    paraspinal = paraspinal_zone(coarse, smooth, body)
    wall = body_wall(smooth, body) | paraspinal
    muscle = muscle_level(smooth, paraspinal)
    wall_native = from_grid(wall, img.shape, spacing, GRID_MM)
    # the paraspinal and psoas muscles run the length of the scan beside the spine, wider
    # than the paraspinal zone; the liver and the spleen span a part of it
    length_mm = body.any(axis=(1, 2)).sum() * GRID_MM
    long_scan = length_mm >= COLUMN_MIN_MM
    # a slab shorter than the liver's craniocaudal span holds only part of it
    liver_min_ml = LIVER_MIN_ML * min(1.0, length_mm / LIVER_SPAN_MM)
    return _Abdomen(img=img, spacing=spacing, coarse=coarse, smooth=smooth, body=body,
                    sd_floor=sd_floor, cy=cy, cx=cx, hw=hw, right=right, left=left, wall=wall,
                    wall_native=wall_native, muscle=muscle,
                    columns=COLUMN_FRAC if long_scan else 0.0, liver_min_ml=liver_min_ml)


def _find_liver(ab: _Abdomen) -> Candidate | None:
    """The liver's coarse candidate: right of the midline, not where the spleen lies."""
    cx, cy, hw = ab.cx, ab.cy, ab.hw
    return find_organ(ab.smooth, ab.body, ab.right, ab.wall,
                      accept=lambda c: c[2] < cx - 0.15 * hw,
                      cut_mm=7.0, min_ml=ab.liver_min_ml, max_ml=5000.0, sd_floor=ab.sd_floor,
                      neck_vox=3,
                      # an iso-attenuating liver's core reaches into those muscles above and
                      # below it: leave out what runs from the scan's first to its last slice
                      columns=ab.columns, through=True,
                      # ... and into the spleen: split it at its necks and leave out the
                      # pieces in the spleen's place (lateral on the left, not anterior)
                      neck_ratio=SPLEEN_NECK_RATIO,
                      reject=lambda c: c[2] > cx + 0.35 * hw and c[1] > cy - 0.1 * hw,
                      muscle=ab.muscle)


def _liver_mask(ab: _Abdomen, liver: Candidate) -> np.ndarray:
    """The native liver mask; trims ``liver.mask`` (coarse) of what its window took in."""
    # a steatotic liver's window also takes kidney, gallbladder and bowel fluid
    liver.mask = homogeneous(liver.mask, ab.smooth, liver.window[1], floor=liver.floor)
    # ... and bowel fluid under an air-fluid level
    liver.mask = drop_under_gas(liver.mask, ab.coarse, ab.body)
    native = (refine_native(ab.img, liver.mask, ab.spacing, liver.window, liver.floor)
              & ~ab.wall_native)
    return partial_volume_rim(ab.img, native, ab.wall_native)


def _spleen_floor(liver: Candidate | None) -> float:
    """Lowest coarse slice for the spleen's centre: level with the upper liver.

    Under the left hemidiaphragm, the spleen's centre lies above the lowest part of the
    liver, where the kidney's does not; no floor without a liver.
    """
    if liver is None:
        return -np.inf
    area = liver.mask.sum(axis=(1, 2))
    lz = np.flatnonzero(area >= 0.1 * area.max())
    return lz[0] + 0.15 * (lz[-1] - lz[0])


def _find_spleen(ab: _Abdomen, exclude: np.ndarray, z_floor: float) -> Candidate | None:
    """The spleen's coarse candidate: the most lateral organ of the left upper quadrant."""
    cx, cy, hw, smooth = ab.cx, ab.cy, ab.hw, ab.smooth
    spleen = None
    for cut_mm in (7.0, 4.0):  # a thin spleen does not survive the wider erosion
        spleen = find_organ(smooth, ab.body, ab.left, exclude,
                            accept=lambda c: (c[2] > cx + 0.35 * hw and c[1] > cy - 0.1 * hw
                                              and c[0] > z_floor),
                            # a small spleen's coarse mask can be half its volume
                            cut_mm=cut_mm, min_ml=20.0, max_ml=3000.0, sd_floor=ab.sd_floor,
                            neck_vox=3,
                            # the spleen is the most lateral organ of the left upper quadrant;
                            # the kidney and the paraspinal muscles lie nearer the midline
                            weight=lambda c: ((c[2] - cx) / hw) ** 4,
                            # the spleen's core can touch the kidney or the paraspinal muscle
                            # through a neck wider than the erosion: split it there
                            neck_ratio=SPLEEN_NECK_RATIO,
                            columns=ab.columns,
                            # the kidney (unenhanced ~15 HU below the spleen) within its window
                            post=lambda g, w, f: homogeneous(g, smooth, w[1], SPLEEN_HOM_MIN_HU,
                                                             SPLEEN_HOM_RIM_VOX, f),
                            muscle=ab.muscle)
        if spleen is not None:
            break
    return spleen


def _spleen_mask(ab: _Abdomen, spleen: Candidate, exclude: np.ndarray,
                 masks: dict[str, np.ndarray]) -> np.ndarray:
    """The native spleen mask, outside the wall and the liver's native mask in ``masks``."""
    # the coarse growth reaches one erosion radius around the core: a thin tail is lost
    spleen.mask = thin_reach(spleen.mask, ab.smooth, ab.body, exclude, spleen.window)
    m = (refine_native(ab.img, spleen.mask, ab.spacing, spleen.window, spleen.floor)
         & ~ab.wall_native)
    if "liver" in masks:
        m &= ~masks["liver"]
    return partial_volume_rim(ab.img, m, ab.wall_native | masks.get("liver", False))
