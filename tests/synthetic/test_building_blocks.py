"""Fields, implicit shapes and vessel trees the anatomy is built from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analytics.synthetic.anatomy import draw_anatomy
from analytics.synthetic.fields import Ellipsoid, FourierField, rotation
from analytics.synthetic.vessels import rasterize_segments


@pytest.fixture(scope="module")
def tree():
    return draw_anatomy(np.random.default_rng(99), n_cysts=0).vessels


def test_fourier_field_rms_and_grid_equals_points():
    f = FourierField.draw(np.random.default_rng(1), rms=2.0, wavelength_mm=(10, 20),
                          n_waves=32)
    zs, ys, xs = np.arange(0, 300, 2.0), np.arange(0, 300, 2.0), np.arange(0, 300, 2.0)
    grid = f.on_grid((zs, ys, xs))
    # RMS over a box of many wavelengths is the requested value (random phases: ~5 %)
    assert np.sqrt((grid.astype(float) ** 2).mean()) == pytest.approx(2.0, rel=0.1)
    idx = np.array([[3, 7, 11], [140, 2, 99], [50, 60, 70]])
    pts = np.column_stack([xs[idx[:, 2]], ys[idx[:, 1]], zs[idx[:, 0]]])
    assert f.at_points(pts) == pytest.approx(grid[idx[:, 0], idx[:, 1], idx[:, 2]], abs=1e-4)


def test_ellipsoid_distance_is_exact_on_the_axes_and_rotates():
    e = Ellipsoid((10.0, 0.0, 0.0), (30.0, 20.0, 10.0), rotation(90.0, 0.0, 0.0))
    # rotated 90 degrees about z: the 30 mm axis now lies along body y
    x = np.array([10.0, 10.0, 10.0, 10.0], np.float32)
    y = np.array([30.0, 35.0, 0.0, 0.0], np.float32)
    z = np.array([0.0, 0.0, 10.0, 0.0], np.float32)
    d = e.sdf(x, y, z)
    assert d[0] == pytest.approx(0.0, abs=1e-4)
    assert d[1] == pytest.approx(5.0, abs=1e-4)
    assert d[2] == pytest.approx(0.0, abs=1e-4)
    assert d[3] < 0


def test_capsule_rasterisation_volume_matches_geometry():
    a, b, r = np.array([0.0, 0.0, 0.0]), np.array([40.0, 0.0, 0.0]), 6.0
    coords = np.arange(-20.0, 60.0, 0.5) + 0.25  # voxel centres off the axis
    mask = rasterize_segments(a[None], b[None], np.array([r]), (coords, coords, coords))
    expected = np.pi * r**2 * 40.0 + 4.0 / 3.0 * np.pi * r**3
    assert mask.sum() * 0.125 == pytest.approx(expected, rel=0.02)


def test_vessel_tree_follows_murrays_law(tree):
    children: dict[int, list[int]] = {}
    for i, p in enumerate(tree.parent):
        if p >= 0:
            children.setdefault(int(p), []).append(i)
    pairs = [(p, c) for p, c in children.items() if len(c) == 2]
    assert len(pairs) > 20
    for p, (c1, c2) in pairs:
        assert tree.radius[c1] ** 3 + tree.radius[c2] ** 3 == pytest.approx(
            tree.radius[p] ** 3, rel=1e-9)
        # children start where the parent ends
        assert np.allclose(tree.start[c1], tree.end[p]) and np.allclose(tree.start[c2],
                                                                        tree.end[p])
    assert (tree.parent < np.arange(len(tree))).all()  # parents precede children


def test_pruning_is_monotone_and_takes_whole_subtrees(tree):
    kept = [tree.kept(f) for f in (0.0, 0.2, 0.4, 0.6)]
    assert kept[0].all()
    for a, b in itertools.pairwise(kept):
        assert not (b & ~a).any()  # more pruning never restores a branch
    k = kept[-1]
    assert k.sum() < len(tree)
    for i, p in enumerate(tree.parent):
        if p >= 0 and not k[p]:
            assert not k[i]
    assert k[tree.radius >= 2.5].all()  # trunks and large branches are never pruned
