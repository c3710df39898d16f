"""Smooth random fields and implicit shapes for the synthetic anatomy.

Everything here works in *body coordinates*: millimetres, LPS axes (x towards the
patient's left, y posterior, z superior), origin at the centre of the body in the scan
range. Grids are given as three 1-D coordinate arrays ``(zs, ys, xs)`` and results are
``[z, y, x]`` float32 arrays, so the same continuous shape renders consistently at any
voxel size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Grid1D = tuple[np.ndarray, np.ndarray, np.ndarray]  # (zs, ys, xs) in mm


@dataclass(frozen=True)
class FourierField:
    """A smooth random scalar field: a sum of random plane waves (random Fourier features).

    The field has zero mean and a root-mean-square value of ``rms`` over space. It is
    evaluated on a grid as a rank-K separable sum, i.e. one complex matrix product, which
    makes it cheap at any resolution and identical (up to rounding) at every voxel size.

    Attributes
    ----------
    wavevectors
        ``(K, 3)`` angular wave vectors in rad/mm, columns ``(x, y, z)``.
    coefficients
        ``(K,)`` complex amplitudes (weight times ``exp(i * phase)``).
    """

    wavevectors: np.ndarray
    coefficients: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, *, rms: float, wavelength_mm: tuple[float, float],
             n_waves: int = 16) -> FourierField:
        """Draw a field with wavelengths uniform in ``wavelength_mm`` and the given RMS."""
        directions = rng.normal(size=(n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(wavelength_mm[0], wavelength_mm[1], size=n_waves)
        k = directions * (2.0 * np.pi / wavelengths)[:, None]
        phases = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
        # each cosine of amplitude a has variance a^2 / 2
        amplitude = rms * np.sqrt(2.0 / n_waves)
        return cls(k, amplitude * np.exp(1j * phases))

    def scaled(self, factor: float) -> FourierField:
        """The same field multiplied by ``factor``."""
        return FourierField(self.wavevectors, self.coefficients * factor)

    def on_grid(self, grid: Grid1D) -> np.ndarray:
        """Evaluate on the tensor grid ``(zs, ys, xs)``; returns float32 ``[z, y, x]``."""
        zs, ys, xs = (np.asarray(a, dtype=np.float64) for a in grid)
        kx, ky, kz = self.wavevectors.T
        ex = np.exp(1j * kx[:, None] * xs[None, :]).astype(np.complex64)
        ey = np.exp(1j * ky[:, None] * ys[None, :])
        ez = np.exp(1j * kz[:, None] * zs[None, :]) * self.coefficients[:, None]
        zy = (ez[:, :, None] * ey[:, None, :]).reshape(len(kx), -1).astype(np.complex64)
        out = (zy.T @ ex).real
        return out.reshape(len(zs), len(ys), len(xs)).astype(np.float32, copy=False)

    def at_points(self, points: np.ndarray) -> np.ndarray:
        """Evaluate at ``(N, 3)`` points given as ``(x, y, z)`` mm; returns ``(N,)``."""
        phase = np.asarray(points, dtype=np.float64) @ self.wavevectors.T
        return (np.exp(1j * phase) @ self.coefficients).real


def grid_points(grid: Grid1D) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable ``(x, y, z)`` coordinate arrays of shape ``[z, y, x]``-compatible."""
    zs, ys, xs = grid
    return (np.asarray(xs, np.float32)[None, None, :], np.asarray(ys, np.float32)[None, :, None],
            np.asarray(zs, np.float32)[:, None, None])


def rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """Rotation matrix (about z, then y, then x), mapping local to body axes."""
    a, b, c = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid with centre ``(x, y, z)`` mm, semi-axes mm and a local-to-body rotation."""

    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    rot: np.ndarray | None = None

    def scaled(self, factor: float, about: tuple[float, float, float] | None = None) -> Ellipsoid:
        """Scale the size by ``factor`` (and the centre about ``about`` when given)."""
        c = np.asarray(self.centre, dtype=float)
        if about is not None:
            o = np.asarray(about, dtype=float)
            c = o + (c - o) * factor
        return Ellipsoid(tuple(c), tuple(np.asarray(self.semi_axes) * factor), self.rot)

    def moved(self, offset: tuple[float, float, float]) -> Ellipsoid:
        return Ellipsoid(tuple(np.add(self.centre, offset)), self.semi_axes, self.rot)

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Approximate signed distance in mm (negative inside), exact on the surface.

        Uses the first-order correction ``k0 * (k0 - 1) / k1`` of the normalised radius,
        which keeps an undulation added to it close to millimetres of surface displacement.
        """
        dx, dy, dz = x - self.centre[0], y - self.centre[1], z - self.centre[2]
        if self.rot is not None:
            r = self.rot.astype(np.float32)
            dx, dy, dz = (r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz,
                          r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz,
                          r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz)
        a, b, c = (np.float32(s) for s in self.semi_axes)
        k0 = np.sqrt((dx / a) ** 2 + (dy / b) ** 2 + (dz / c) ** 2)
        k1 = np.sqrt((dx / (a * a)) ** 2 + (dy / (b * b)) ** 2 + (dz / (c * c)) ** 2)
        d = k0 * (k0 - 1.0) / np.maximum(k1, np.float32(1e-6))
        # the first-order formula is 0 at the exact centre; that point is deep inside
        return np.where(k0 > 0, d, -min(self.semi_axes)).astype(np.float32)

    def bbox(self, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds ``(lo, hi)`` as ``(x, y, z)`` mm, with a margin."""
        rot = np.eye(3) if self.rot is None else self.rot
        half = np.sqrt(((rot * np.asarray(self.semi_axes)[None, :]) ** 2).sum(axis=1))
        c = np.asarray(self.centre, dtype=float)
        return c - half - margin, c + half + margin


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two signed distances (blend width ``k`` mm)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return (b + (a - b) * h - k * h * (1.0 - h)).astype(np.float32)


def smooth_intersection(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth maximum of two signed distances."""
    return -smooth_union(-a, -b, k)


def smoothstep(edge0: float, edge1: float, x: float | np.ndarray) -> float | np.ndarray:
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1``."""
    t = np.clip((np.asarray(x, dtype=float) - edge0) / (edge1 - edge0), 0.0, 1.0)
    out = t * t * (3.0 - 2.0 * t)
    return float(out) if np.ndim(out) == 0 else out
