"""A patient's abdominal anatomy as smooth implicit shapes, rendered to a tissue map.

Coordinates are body millimetres in LPS orientation (x towards the patient's left,
y posterior, z superior), origin at the body centre of the scan range. The liver lies
at negative x (patient's right, low column index in a standard axial display), the spleen
at positive x. Organs are ellipsoids blended with smooth unions, cut by planes and bent by
low-frequency random fields; the liver surface gets a band-limited undulation whose RMS
amplitude is the nodularity parameter.

A ``PatientAnatomy`` is drawn once per patient; ``render_tissue`` renders it for one visit
(stage-driven liver/spleen size, nodularity, vessel pruning, visible lesions) on any grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analytics.synthetic.fields import (
    Ellipsoid,
    FourierField,
    Grid1D,
    grid_points,
    rotation,
    smooth_intersection,
    smooth_union,
)
from analytics.synthetic.vessels import HEPATIC, PORTAL, VesselTree, grow_tree

# tissue classes of the rendered map (finer than the public labels; see phantom.LABELS)
AIR, LIVER, SPLEEN, LIVER_VESSEL, CYST, SOLID_LESION, KIDNEY, AORTA, IVC = range(9)
BONE_CORTEX, BONE_MARROW, CSF, MUSCLE, SUBCUT_FAT, VISCERAL_FAT = range(9, 15)
BOWEL_WALL, BOWEL_FLUID, BOWEL_GAS, GALLBLADDER, LUNG, RIB, TABLE = range(15, 22)
N_TISSUES = 22


@dataclass(frozen=True)
class Lesion:
    """A focal liver lesion (reference-liver coordinates) and the stage it appears at."""

    centre: tuple[float, float, float]
    radius_mm: float
    kind: str  # "cyst" | "solid"
    appears_at_stage: float


@dataclass(frozen=True)
class VisitShape:
    """Stage-driven shape parameters of one visit."""

    liver_scale: float = 1.0  # linear; volume factor ** (1/3)
    left_lobe_factor: float = 1.0
    nodularity_mm: float = 0.1
    spleen_scale: float = 1.0
    vessel_pruning: float = 0.0
    n_lesions: int | None = None  # None: those whose appears_at_stage <= stage
    stage: float = 0.0


@dataclass(frozen=True)
class PatientAnatomy:
    """Everything about a patient's body that does not change between visits."""

    body_semi_axes: tuple[float, float]
    body_exponent: float
    body_harmonics: np.ndarray  # (M, 4): order, amplitude, phase, phase change per mm z
    subcut_fat_mm: float
    wall_muscle_mm: float
    liver_right: Ellipsoid
    liver_left: Ellipsoid
    liver_cut: tuple[float, float, float]  # inferior plane z = z0 + slope_x * (x - x0)
    liver_centre: tuple[float, float, float]
    liver_warp: FourierField
    liver_nodules: FourierField  # unit RMS; scaled by the visit's nodularity
    vessels: VesselTree
    spleen: Ellipsoid
    spleen_hilum: Ellipsoid
    spleen_warp: FourierField
    kidneys: tuple[Ellipsoid, Ellipsoid]
    kidney_hila: tuple[Ellipsoid, Ellipsoid]
    aorta: tuple[float, float, float]  # x, y, radius
    ivc: tuple[float, float, float, float]  # x, y, semi-axis x, semi-axis y
    spine_y: float
    stomach: Ellipsoid
    bowel: tuple[tuple[Ellipsoid, float], ...]  # loop, gas fraction
    gallbladder: Ellipsoid
    lungs: tuple[Ellipsoid, Ellipsoid]
    lesions: tuple[Lesion, ...]
    rib_phase_mm: float = 0.0  # z offset of the rib cage's periodic pattern
    liver_texture: FourierField | None = None  # unit RMS; parenchymal heterogeneity

    # ------------------------------------------------------------------ liver
    def liver_sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, shape: VisitShape,
                  grid: Grid1D | None = None) -> np.ndarray:
        """Signed distance (mm) to the visit's liver surface, at points or on a grid.

        With ``grid`` given, ``x, y, z`` must be its broadcast coordinates (``grid_points``);
        otherwise they are flat arrays of points.
        """
        g = shape.liver_scale
        c = self.liver_centre
        xb, yb, zb = (c[0] + (x - c[0]) / g, c[1] + (y - c[1]) / g, c[2] + (z - c[2]) / g)
        left = self.liver_left.scaled(shape.left_lobe_factor ** (1.0 / 3.0))
        d = smooth_union(self.liver_right.sdf(xb, yb, zb), left.sdf(xb, yb, zb), 25.0)
        z0, slope, x0 = self.liver_cut
        d = smooth_intersection(d, (z0 + slope * (xb - x0) - zb).astype(np.float32), 12.0)
        if grid is not None:
            zs, ys, xs = grid
            base = (c[2] + (zs - c[2]) / g, c[1] + (ys - c[1]) / g, c[0] + (xs - c[0]) / g)
            warp = self.liver_warp.on_grid(base)
            nod = self.liver_nodules.on_grid(grid) if shape.nodularity_mm > 0 else 0.0
        else:
            pts = np.stack([xb, yb, zb], axis=-1)
            warp = self.liver_warp.at_points(pts)
            nod = (self.liver_nodules.at_points(np.stack([x, y, z], axis=-1))
                   if shape.nodularity_mm > 0 else 0.0)
        return (d * g + warp * g + shape.nodularity_mm * nod).astype(np.float32)

    def liver_bbox(self, shape: VisitShape) -> tuple[np.ndarray, np.ndarray]:
        """Generous ``(lo, hi)`` bounds (x, y, z mm) of the visit's liver."""
        lo_r, hi_r = self.liver_right.bbox()
        lo_l, hi_l = self.liver_left.scaled(shape.left_lobe_factor ** (1 / 3)).bbox()
        c = np.asarray(self.liver_centre)
        lo = c + (np.minimum(lo_r, lo_l) - c) * shape.liver_scale
        hi = c + (np.maximum(hi_r, hi_l) - c) * shape.liver_scale
        margin = 20.0 + 4.0 * shape.nodularity_mm
        return lo - margin, hi + margin

    # ------------------------------------------------------------------ spleen
    def spleen_at(self, scale: float) -> tuple[Ellipsoid, Ellipsoid]:
        """Spleen and hilum ellipsoids of a visit; splenomegaly grows antero-inferiorly."""
        shift = (scale - 1.0) * np.array([-8.0, -22.0, -25.0])
        return (self.spleen.scaled(scale).moved(tuple(shift)),
                self.spleen_hilum.scaled(scale).moved(tuple(shift)))

    def spleen_sdf(self, grid: Grid1D, scale: float) -> np.ndarray:
        x, y, z = grid_points(grid)
        spleen, hilum = self.spleen_at(scale)
        d = smooth_intersection(spleen.sdf(x, y, z), -hilum.sdf(x, y, z), 6.0)
        zs, ys, xs = grid
        c = spleen.centre
        base = (c[2] + (zs - c[2]) / scale, c[1] + (ys - c[1]) / scale,
                c[0] + (xs - c[0]) / scale)
        return (d + self.spleen_warp.on_grid(base) * scale).astype(np.float32)


def _liver_shape_only(anat_parts: dict) -> PatientAnatomy:
    """A ``PatientAnatomy`` with an empty vessel tree, used while growing the tree."""
    empty = VesselTree(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0, int),
                       np.zeros(0), np.zeros(0, int))
    return PatientAnatomy(vessels=empty, **anat_parts)


def draw_anatomy(rng: np.random.Generator, *, sex: str = "F", n_cysts: int | None = None,
                 solid_lesion_stage: float | None = None) -> PatientAnatomy:
    """Draw one patient's anatomy.

    Parameters
    ----------
    rng
        The patient's random generator.
    sex
        ``"F"`` or ``"M"`` (men: larger body and organs, less subcutaneous fat).
    n_cysts
        Number of simple liver cysts (default: 0-3, most patients none).
    solid_lesion_stage
        Latent stage at which a solid nodule appears (default: drawn; may be never).
    """
    male = sex == "M"
    size = rng.normal(1.04 if male else 0.97, 0.04)
    body_a = float(size * rng.normal(150.0, 8.0))
    body_b = float(size * rng.normal(108.0, 7.0))
    harmonics = np.column_stack([
        np.arange(2, 6), rng.normal(0.0, 0.018, 4), rng.uniform(0, 2 * np.pi, 4),
        rng.normal(0.0, 0.004, 4)])
    organ = float(size * rng.normal(1.0, 0.04))
    # the draws below keep their order: a patient's anatomy is fixed by the seed
    parts = _draw_organs(rng, organ)
    parts.update(_draw_body_traits(rng, male, parts["liver_right"], parts["liver_left"]))
    parts.update(body_semi_axes=(body_a, body_b), body_harmonics=harmonics, lesions=())
    sdf = _liver_sdf_before_vessels(parts)
    c = np.asarray(parts["liver_centre"])
    parts["vessels"] = _grow_vessels(rng, sdf, c, organ)
    parts["lesions"] = _draw_lesions(rng, sdf, c, n_cysts, solid_lesion_stage)
    parts["liver_texture"] = FourierField.draw(rng, rms=1.0, wavelength_mm=(5.0, 15.0),
                                               n_waves=48)
    return PatientAnatomy(**parts)


def _draw_organs(rng: np.random.Generator, organ: float) -> dict:
    """Liver lobes, spleen, kidneys, stomach, bowel loops, gallbladder and lungs.

    ``organ`` scales the typical organ positions and sizes (mm) of the patient.
    """

    def jitter(v: tuple[float, float, float], sd: float = 4.0) -> tuple[float, float, float]:
        return tuple(float(a) for a in np.asarray(v) * organ + rng.normal(0.0, sd, 3))

    liver_right = Ellipsoid(jitter((-62.0, 2.0, 22.0)), jitter((62.0, 76.0, 60.0), 3.0),
                            rotation(rng.normal(8.0, 4.0), rng.normal(-6.0, 3.0), 0.0))
    liver_left = Ellipsoid(jitter((8.0, -40.0, 40.0)), jitter((52.0, 28.0, 32.0), 2.5),
                           rotation(rng.normal(-12.0, 4.0), rng.normal(10.0, 4.0), 0.0))
    spleen = Ellipsoid(jitter((80.0, 48.0, 48.0), 3.0), jitter((24.0, 50.0, 42.0), 2.0),
                       rotation(rng.normal(-38.0, 6.0), rng.normal(12.0, 4.0), 0.0))
    hilum = Ellipsoid(tuple(np.add(spleen.centre, (-30.0, -10.0, 0.0))), (14.0, 24.0, 22.0),
                      spleen.rot)
    kid_r = Ellipsoid(jitter((-70.0, 52.0, -52.0)), jitter((27.0, 23.0, 52.0), 2.0),
                      rotation(rng.normal(-20.0, 5.0), rng.normal(14.0, 4.0), 0.0))
    kid_l = Ellipsoid(jitter((72.0, 50.0, -38.0)), jitter((27.0, 23.0, 52.0), 2.0),
                      rotation(rng.normal(20.0, 5.0), rng.normal(-14.0, 4.0), 0.0))
    hila = tuple(Ellipsoid(tuple(np.add(k.centre, (-np.sign(k.centre[0]) * 22.0, -8.0, 0.0))),
                           (12.0, 11.0, 20.0), k.rot) for k in (kid_r, kid_l))
    stomach = Ellipsoid(jitter((52.0, -28.0, 52.0), 5.0), jitter((38.0, 30.0, 40.0), 4.0),
                        rotation(rng.normal(-30.0, 8.0), 0.0, 0.0))
    loops = []
    for _ in range(int(rng.integers(7, 12))):
        centre = (rng.uniform(-70, 80), rng.uniform(-75, 5), rng.uniform(-110, -5))
        semi = (rng.uniform(11, 18), rng.uniform(11, 18), rng.uniform(22, 45))
        rot = rotation(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(0, 90))
        loops.append((Ellipsoid(centre, semi, rot), float(rng.uniform(0.0, 0.6))))
    gallbladder = Ellipsoid(jitter((-28.0, -32.0, -8.0), 5.0), jitter((15.0, 17.0, 34.0), 2.0),
                            rotation(0.0, rng.normal(25.0, 5.0), rng.normal(-20.0, 5.0)))
    lungs = (Ellipsoid((-70.0, 30.0, 235.0 + rng.normal(0, 4)), (85.0, 95.0, 140.0)),
             Ellipsoid((70.0, 30.0, 228.0 + rng.normal(0, 4)), (85.0, 95.0, 140.0)))
    return dict(liver_right=liver_right, liver_left=liver_left, spleen=spleen,
                spleen_hilum=hilum, kidneys=(kid_r, kid_l), kidney_hila=hila, stomach=stomach,
                bowel=tuple(loops), gallbladder=gallbladder, lungs=lungs)


def _draw_body_traits(rng: np.random.Generator, male: bool, liver_right: Ellipsoid,
                      liver_left: Ellipsoid) -> dict:
    """Body wall, liver cut and surface fields, spleen warp, aorta and IVC, spine, ribs."""
    return dict(
        body_exponent=float(rng.uniform(2.1, 2.5)),
        subcut_fat_mm=float(np.clip(rng.normal(16.0 if male else 24.0, 7.0), 6.0, 45.0)),
        wall_muscle_mm=float(np.clip(rng.normal(11.0 if male else 9.0, 1.5), 6.0, 15.0)),
        liver_cut=(float(rng.normal(-30.0, 4.0)), float(rng.normal(0.35, 0.05)), -62.0),
        liver_centre=tuple(np.mean([liver_right.centre, liver_left.centre], axis=0)),
        liver_warp=FourierField.draw(rng, rms=4.0, wavelength_mm=(70.0, 160.0)),
        liver_nodules=FourierField.draw(rng, rms=1.0, wavelength_mm=(12.0, 28.0), n_waves=48),
        spleen_warp=FourierField.draw(rng, rms=2.5, wavelength_mm=(50.0, 120.0)),
        aorta=(float(rng.normal(14.0, 3.0)), float(rng.normal(18.0, 3.0)),
               float(np.clip(rng.normal(11.0, 1.2), 8.0, 14.0))),
        ivc=(float(rng.normal(-26.0, 3.0)), float(rng.normal(20.0, 3.0)), 14.0, 10.0),
        spine_y=float(rng.normal(38.0, 3.0)),
        rib_phase_mm=float(rng.uniform(0.0, 28.0)),
    )


def _liver_sdf_before_vessels(parts: dict) -> Callable[[np.ndarray], np.ndarray]:
    """Signed distance (mm) to the smooth liver surface of ``parts``, at ``(n, 3)`` points."""
    shape_only = _liver_shape_only(parts)

    def sdf(points: np.ndarray) -> np.ndarray:
        return shape_only.liver_sdf(points[:, 0], points[:, 1], points[:, 2],
                                    VisitShape(nodularity_mm=0.0))

    return sdf


def _grow_vessels(rng: np.random.Generator, sdf, centre: np.ndarray,
                  organ: float) -> VesselTree:
    """Portal trunks from the hilum and hepatic veins from the confluence, grown in ``sdf``."""
    hilum_pt = _inside(sdf, centre + np.array([12.0, 18.0, -22.0]), centre)
    confluence = _inside(sdf, centre + np.array([30.0, 30.0, 45.0]), centre)
    trunks = [
        (tuple(hilum_pt), (-1.0, 0.1, 0.25), 6.0 * organ, PORTAL),
        (tuple(hilum_pt), (1.0, -0.7, 0.3), 5.0 * organ, PORTAL),
        (tuple(confluence), (-1.0, -0.3, -0.4), 5.5 * organ, HEPATIC),
        (tuple(confluence), (-0.3, -1.0, -0.5), 4.5 * organ, HEPATIC),
        (tuple(confluence), (0.8, -0.8, -0.2), 4.0 * organ, HEPATIC),
    ]
    return grow_tree(rng, sdf, trunks)


def _inside(sdf, p: np.ndarray, centre: np.ndarray, depth: float = 12.0) -> np.ndarray:
    """Move ``p`` towards ``centre`` until it is at least ``depth`` mm inside the liver."""
    for t in np.linspace(0.0, 1.0, 21):
        q = p + (centre - p) * t
        if sdf(q[None, :])[0] < -depth:
            return q
    return centre


def _draw_lesions(rng: np.random.Generator, sdf, centre: np.ndarray, n_cysts: int | None,
                  solid_stage: float | None) -> tuple[Lesion, ...]:
    if n_cysts is None:
        n_cysts = int(rng.choice(4, p=[0.7, 0.18, 0.08, 0.04]))
    if solid_stage is None:
        solid_stage = float(rng.uniform(3.0, 6.0))  # above 4: never appears
    out = []
    specs = [("cyst", float(rng.uniform(4.0, 11.0)), 0.0) for _ in range(n_cysts)]
    specs.append(("solid", float(rng.uniform(7.0, 14.0)), solid_stage))
    for kind, radius, stage in specs:
        for _ in range(200):
            p = centre + rng.uniform(-70.0, 70.0, 3) * np.array([1.0, 0.9, 0.8])
            if sdf(p[None, :])[0] < -(radius + 10.0):
                out.append(Lesion(tuple(float(v) for v in p), radius, kind, stage))
                break
    return tuple(out)


def visible_lesions(anat: PatientAnatomy, shape: VisitShape) -> list[Lesion]:
    """Lesions present at this visit (all of them up to ``n_lesions`` when it is set)."""
    if shape.n_lesions is not None:
        return list(anat.lesions[: shape.n_lesions])
    return [le for le in anat.lesions if le.appears_at_stage <= shape.stage]
