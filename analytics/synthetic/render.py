"""Rasterise a ``PatientAnatomy`` at one visit into a tissue-class map ``[z, y, x]``.

Structures are painted in increasing priority (body wall, cavity, lungs, bowel, kidneys,
spleen, liver, gallbladder, vessels, lesions, great vessels, spine), slab by slab along z
so that memory stays bounded on 512 x 512 x 200 grids. The liver vessels and lesions are
painted only over liver parenchyma, so the whole liver (parenchyma + vessels + lesions)
is exactly the union of those three classes.
"""

from __future__ import annotations

import numpy as np

from analytics.synthetic import anatomy as A
from analytics.synthetic.fields import Grid1D, grid_points
from analytics.synthetic.vessels import rasterize_segments

SLAB = 16  # slices per rendering slab


def _sub(grid: Grid1D, lo: np.ndarray, hi: np.ndarray) -> tuple[tuple[slice, ...], Grid1D]:
    """Index slices ``(z, y, x)`` and sub-grid of the part of ``grid`` inside a bbox."""
    zs, ys, xs = grid
    sl = []
    for coords, a, b in ((zs, lo[2], hi[2]), (ys, lo[1], hi[1]), (xs, lo[0], hi[0])):
        i0 = int(np.searchsorted(coords, a, side="left"))
        i1 = int(np.searchsorted(coords, b, side="right"))
        sl.append(slice(i0, max(i0, i1)))
    return tuple(sl), (zs[sl[0]], ys[sl[1]], xs[sl[2]])


def _paint_ellipsoid(tissue: np.ndarray, grid: Grid1D, e, value: int,
                     where: np.ndarray | None = None, margin: float = 0.0) -> np.ndarray | None:
    """Paint voxels inside ellipsoid ``e``; returns its signed distance on its sub-box."""
    lo, hi = e.bbox(margin)
    sl, sub = _sub(grid, lo, hi)
    if any(s.stop <= s.start for s in sl):
        return None
    x, y, z = grid_points(sub)
    d = e.sdf(x, y, z)
    inside = d < 0
    if where is not None:
        inside &= where[sl]
    tissue[sl][inside] = value
    return d


def _body_layers(anat: A.PatientAnatomy, grid: Grid1D) -> tuple[np.ndarray, np.ndarray]:
    """Tissue of the body wall (air, subcutaneous fat, muscle, cavity) and the depth (mm)."""
    x, y, z = grid_points(grid)
    a, b = anat.body_semi_axes
    yc = 0.0
    theta = np.arctan2(y - yc, x)
    h = np.zeros(np.broadcast_shapes(theta.shape, z.shape), np.float32)
    # cos(m theta + phase(z)) expanded so the transcendental work stays 2-D / 1-D
    for m, amp, phase, rate in anat.body_harmonics:
        ang = (phase + rate * z).astype(np.float32)
        h += (amp * np.cos(m * theta)).astype(np.float32) * np.cos(ang)
        h -= (amp * np.sin(m * theta)).astype(np.float32) * np.sin(ang)
    p = anat.body_exponent
    rho = (np.abs(x / a) ** p + np.abs((y - yc) / b) ** p) ** (1.0 / p)
    r = np.sqrt(x * x + (y - yc) ** 2)
    depth = r * ((1.0 + h) / np.maximum(rho, 1e-3) - 1.0)
    depth = np.minimum(depth, yc + 0.92 * b - y)  # supine: the back is flattened on the table
    # subcutaneous fat is thicker anteriorly and laterally than over the back
    sc = anat.subcut_fat_mm * (1.0 - 0.35 * np.clip((y - yc) / b, 0.0, 1.0))
    wall = sc + anat.wall_muscle_mm
    tissue = np.full(depth.shape, A.AIR, np.uint8)
    tissue[depth > 0] = A.SUBCUT_FAT
    tissue[depth > sc] = A.MUSCLE
    tissue[depth > wall] = A.VISCERAL_FAT
    _ribs_and_table(anat, tissue, x, y, z, theta, depth, sc, wall, yc + 0.92 * b)
    return tissue, (depth - wall).astype(np.float32)


RIB_PITCH_MM = 28.0


def _ribs_and_table(anat: A.PatientAnatomy, tissue: np.ndarray, x, y, z, theta, depth, sc,
                    wall, y_back: float) -> None:
    """Lower ribs inside the body wall, and the scanner table under the patient's back."""
    sin_t = np.sin(theta)  # +1 straight posterior, -1 straight anterior
    # the costal margin: ribs reach lower posteriorly than anteriorly; they slope down
    # towards the front, so their z position shifts with the angle
    z_min = -55.0 + 70.0 * (1.0 - sin_t)
    phase = np.mod(z - 60.0 * sin_t - anat.rib_phase_mm, RIB_PITCH_MM)
    rib = ((np.abs(phase - RIB_PITCH_MM / 2.0) < 4.5) & (z > z_min) & (sin_t > -0.6)
           & (np.abs(x) > 45.0) & (depth > sc + 1.0) & (depth < wall - 1.0))
    tissue[rib] = A.RIB
    # a gently curved carbon-fibre table top 12-20 mm below the back
    top = y_back + 12.0 - 2e-4 * x * x
    table = np.broadcast_to((y > top) & (y < top + 8.0) & (np.abs(x) < 190.0), tissue.shape)
    tissue[table & (tissue == A.AIR)] = A.TABLE


def _spine_and_vessels(anat: A.PatientAnatomy, tissue: np.ndarray, grid: Grid1D) -> None:
    x, y, z = grid_points(grid)
    sy = anat.spine_y
    # paraspinal muscles and psoas (the psoas thickens inferiorly)
    for sx in (-1.0, 1.0):
        para = ((x - sx * 36.0) / 28.0) ** 2 + ((y - (sy + 42.0)) / 20.0) ** 2 < 1.0
        psoas_r = np.clip(6.0 + (-z - 0.0) * 0.18, 0.0, 24.0)
        psoas = ((x - sx * 40.0) ** 2 + (y - (sy - 2.0)) ** 2) < psoas_r ** 2
        fat = (tissue == A.SUBCUT_FAT) | (tissue == A.VISCERAL_FAT)
        tissue[(para | psoas) & fat] = A.MUSCLE
    ax, ay, ar = anat.aorta
    tissue[np.broadcast_to((x - ax) ** 2 + (y - ay) ** 2 < ar * ar, tissue.shape)] = A.AORTA
    ix, iy, ia, ib = anat.ivc
    tissue[np.broadcast_to(((x - ix) / ia) ** 2 + ((y - iy) / ib) ** 2 < 1.0,
                           tissue.shape)] = A.IVC
    body = ((x / 23.0) ** 2 + ((y - sy) / 19.0) ** 2)
    canal = (x / 9.0) ** 2 + ((y - sy - 28.0) / 8.0) ** 2
    arch = (x / 16.0) ** 2 + ((y - sy - 28.0) / 14.0) ** 2
    spinous = (x / 5.0) ** 2 + ((y - sy - 44.0) / 10.0) ** 2
    bone = np.broadcast_to((body < 1.0) | (arch < 1.0) | (spinous < 1.0), tissue.shape)
    tissue[bone] = A.BONE_CORTEX
    tissue[np.broadcast_to(body < 0.80, tissue.shape)] = A.BONE_MARROW
    tissue[np.broadcast_to(canal < 1.0, tissue.shape)] = A.CSF


def _hollow(tissue: np.ndarray, grid: Grid1D, e, gas_fraction: float, cavity: np.ndarray,
            wall_mm: float = 3.0) -> None:
    """A hollow viscus: wall, then gas above (anterior to) an air-fluid level, fluid below."""
    lo, hi = e.bbox()
    sl, sub = _sub(grid, lo, hi)
    if any(s.stop <= s.start for s in sl):
        return
    x, y, z = grid_points(sub)
    d = e.sdf(x, y, z)
    where = cavity[sl]
    level = e.centre[1] + min(e.semi_axes) * (2.0 * gas_fraction - 1.0)
    view = tissue[sl]
    view[(d < 0) & where] = A.BOWEL_WALL
    lumen = (d < -wall_mm) & where
    gas = np.broadcast_to(y < level, lumen.shape)
    view[lumen & gas] = A.BOWEL_GAS
    view[lumen & ~gas] = A.BOWEL_FLUID


def render_tissue(anat: A.PatientAnatomy, shape: A.VisitShape, grid: Grid1D) -> np.ndarray:
    """The visit's tissue-class map (``anatomy.AIR`` ... ``anatomy.LUNG``), uint8 ``[z,y,x]``.

    Parameters
    ----------
    anat
        The patient's anatomy.
    shape
        Stage-driven parameters of this visit.
    grid
        ``(zs, ys, xs)`` body coordinates (mm) of the voxel centres, each ascending.
    """
    zs, ys, xs = grid
    tissue = np.empty((len(zs), len(ys), len(xs)), np.uint8)
    for k0 in range(0, len(zs), SLAB):
        ks = slice(k0, min(k0 + SLAB, len(zs)))
        tissue[ks] = _render_slab(anat, shape, (zs[ks], ys, xs))
    _paint_vessels_and_lesions(anat, shape, tissue, grid)
    return tissue


def _render_slab(anat: A.PatientAnatomy, shape: A.VisitShape, grid: Grid1D) -> np.ndarray:
    tissue, cavity_depth = _body_layers(anat, grid)
    cavity = cavity_depth > 0
    # lungs above the diaphragm, with a 5 mm diaphragm of muscle below them
    for lung in anat.lungs:
        lo, hi = lung.bbox(6.0)
        sl, sub = _sub(grid, lo, hi)
        if all(s.stop > s.start for s in sl):
            x, y, z = grid_points(sub)
            d = lung.sdf(x, y, z)
            view = tissue[sl]
            where = cavity[sl]
            view[(d < 5.0) & where] = A.MUSCLE
            view[(d < 0.0) & where] = A.LUNG
    _hollow(tissue, grid, anat.stomach, 0.35, cavity, wall_mm=4.0)
    for loop, gas in anat.bowel:
        _hollow(tissue, grid, loop, gas, cavity)
    for kidney, hilum in zip(anat.kidneys, anat.kidney_hila, strict=True):
        lo, hi = kidney.bbox()
        sl, sub = _sub(grid, lo, hi)
        if all(s.stop > s.start for s in sl):
            x, y, z = grid_points(sub)
            inside = (kidney.sdf(x, y, z) < 0) & (hilum.sdf(x, y, z) > 0) & cavity[sl]
            tissue[sl][inside] = A.KIDNEY
    spleen, _ = anat.spleen_at(shape.spleen_scale)
    lo, hi = spleen.bbox(15.0)
    sl, sub = _sub(grid, lo, hi)
    if all(s.stop > s.start for s in sl):
        inside = (anat.spleen_sdf(sub, shape.spleen_scale) < 0) & cavity[sl]
        tissue[sl][inside] = A.SPLEEN
    lo, hi = anat.liver_bbox(shape)
    sl, sub = _sub(grid, lo, hi)
    if all(s.stop > s.start for s in sl):
        x, y, z = grid_points(sub)
        inside = (anat.liver_sdf(x, y, z, shape, grid=sub) < 0) & cavity[sl]
        tissue[sl][inside] = A.LIVER
    _paint_ellipsoid(tissue, grid, anat.gallbladder, A.GALLBLADDER, where=cavity)
    _spine_and_vessels(anat, tissue, grid)
    return tissue


def liver_to_visit(anat: A.PatientAnatomy, shape: A.VisitShape,
                   points: np.ndarray) -> np.ndarray:
    """Map reference-liver points ``(N, 3)`` into the visit's (scaled) liver."""
    c = np.asarray(anat.liver_centre)
    return c + (np.asarray(points, float) - c) * shape.liver_scale


def _paint_vessels_and_lesions(anat: A.PatientAnatomy, shape: A.VisitShape,
                               tissue: np.ndarray, grid: Grid1D) -> None:
    tree = anat.vessels
    kept = tree.kept(shape.vessel_pruning)
    if kept.any():
        vessel = rasterize_segments(liver_to_visit(anat, shape, tree.start[kept]),
                                    liver_to_visit(anat, shape, tree.end[kept]),
                                    tree.radius[kept] * shape.liver_scale, grid)
        tissue[vessel & (tissue == A.LIVER)] = A.LIVER_VESSEL
    for lesion in A.visible_lesions(anat, shape):
        c = liver_to_visit(anat, shape, np.asarray([lesion.centre]))
        mask = rasterize_segments(c, c, np.array([lesion.radius_mm]), grid)
        value = A.CYST if lesion.kind == "cyst" else A.SOLID_LESION
        tissue[mask & ((tissue == A.LIVER) | (tissue == A.LIVER_VESSEL))] = value
