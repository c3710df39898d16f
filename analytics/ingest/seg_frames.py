"""Where each frame of a DICOM SEG lies on an image volume.

Every frame is placed by its own Per-frame (or Shared) Functional Groups: its Plane
Position, or without one the image slice its Derivation Image names, maps it straight to
a slice of the image volume, and its pixels are sampled nearest-neighbour in the plane.
Frames left out (most writers omit empty ones) leave their slices empty; the slice step
is the image's, or the SEG's own Spacing Between Slices when its frames lie between the
image's slices, never one inferred from the frames present.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from analytics.errors import MaskError
from analytics.ingest.header import raw_strings
from analytics.ingest.volume import Volume


@dataclass(frozen=True)
class _Plane:
    """One SEG frame's plane in LPS: top-left pixel centre, axes and pixel spacing (mm)."""

    position: np.ndarray
    row_cosine: np.ndarray  # direction of increasing column index
    col_cosine: np.ndarray  # direction of increasing row index
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    spacing_between_slices: float | None


def _item(fg: Dataset, shared: Dataset | None, seq: str) -> Dataset | None:
    for group in (fg, shared):
        items = group.get(seq) if group is not None else None
        if items:
            return items[0]
    return None


def _raw(item: Dataset | None, keyword: str) -> list[str] | None:
    """A decimal string element's values read from its raw bytes (no per-value DS
    objects: a SEG repeats these in every one of hundreds of frames)."""
    return raw_strings(item, keyword) if item is not None else None


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.all(np.isfinite(arr)) else None


def _slice_of_source(fg: Dataset, shared: Dataset | None, sop_slice: dict[str, int]
                     ) -> int | None:
    """The image slice a frame was derived from (Derivation Image -> Source Image)."""
    for group in (fg, shared):
        for der in (group.get("DerivationImageSequence") or []) if group is not None else []:
            for src in der.get("SourceImageSequence") or []:
                k = sop_slice.get(str(src.get("ReferencedSOPInstanceUID", "")))
                if k is not None:
                    return k
    return None


def seg_planes(ds: Dataset, reference: Volume, what: str) -> list[_Plane]:
    """Every frame's plane from its Per-frame (or Shared) Functional Groups.

    A frame without Plane Position is placed on the image slice its Derivation Image
    names (the image's own in-plane grid where orientation or spacing are absent too).
    """
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    n = int(ds.get("NumberOfFrames", len(per_frame)) or len(per_frame))
    if len(per_frame) != n:
        raise MaskError(f"{what}: Per-frame Functional Groups Sequence (5200,9230) has "
                        f"{len(per_frame)} items for {n} frames (0028,0008)")
    direction = np.asarray(reference.direction, dtype=float)
    dz, dy, dx = reference.spacing_mm
    sops = reference.meta.get("sop_instance_uids") or []
    sop_slice = ({str(u): k for k, u in enumerate(sops)} if len(sops) == reference.shape[0]
                 else {})
    planes = []
    for i, fg in enumerate(per_frame):
        pos = _item(fg, shared, "PlanePositionSequence")
        ori = _item(fg, shared, "PlaneOrientationSequence")
        meas = _item(fg, shared, "PixelMeasuresSequence")
        iop = _floats(_raw(ori, "ImageOrientationPatient"), 6)
        spacing = _floats(_raw(meas, "PixelSpacing"), 2)
        between = (_raw(meas, "SpacingBetweenSlices") or [None])[0]
        position = _floats(_raw(pos, "ImagePositionPatient"), 3)
        if position is None:
            k = _slice_of_source(fg, shared, sop_slice)
            if k is None:
                raise MaskError(f"{what}: frame {i + 1} has no Plane Position (0020,9113) and "
                                "its Derivation Image (0008,9124) names no slice of the image "
                                "series; cannot place it")
            position = (np.asarray(reference.origin_mm, dtype=float)
                        + direction[:, 2] * dz * k)
        row = iop[:3] if iop is not None else direction[:, 0]
        col = iop[3:] if iop is not None else direction[:, 1]
        planes.append(_Plane(
            position=position, row_cosine=row / np.linalg.norm(row),
            col_cosine=col / np.linalg.norm(col),
            pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing is not None
            else (float(dy), float(dx)),
            spacing_between_slices=float(between) if between not in (None, "")
            and float(between) > 0 else None))
    return planes


def _slices_of_frames(frames: list[int], planes: list[_Plane], reference: Volume,
                      what: str) -> dict[int, list[int]]:
    """Reference slice index -> the frames that fall on it (nearest neighbour along z).

    Each frame is placed by its own position along the image's slice normal, so frames
    left out (empty ones) leave their slices empty instead of shifting the others.
    """
    nz = reference.shape[0]
    dz = float(reference.spacing_mm[0])
    normal = np.asarray(reference.direction, dtype=float)[:, 2]
    origin = np.asarray(reference.origin_mm, dtype=float)
    for f in frames:
        p = planes[f]
        if abs(abs(float(np.cross(p.row_cosine, p.col_cosine) @ normal)) - 1.0) > 1e-3:
            raise MaskError(f"{what}: frame {f + 1} is not parallel to the image slices; "
                            "expected a segmentation drawn on the image series' planes")
    z = np.array([(planes[f].position - origin) @ normal for f in frames])  # mm along normal
    on_grid = np.abs(z / dz - np.round(z / dz)).max() <= 0.1
    given = next((planes[f].spacing_between_slices for f in frames
                  if planes[f].spacing_between_slices), None)
    if on_grid and (given is None or given <= 1.5 * dz):
        step = dz
    elif given is not None:
        step = given
    else:
        raise MaskError(f"{what}: its frames lie between the image's slices (at "
                        f"{np.round(np.sort(z), 2).tolist()[:8]} mm along the normal, slices "
                        f"every {dz:g} mm) and it gives no Spacing Between Slices (0018,0088); "
                        "cannot tell which slices they cover")
    z0 = float(z.min())
    index = (z - z0) / step
    if np.abs(index - np.round(index)).max() > 0.1:
        raise MaskError(f"{what}: frames of one segment are not on a regular grid along the "
                        f"slice normal (positions {np.round(np.sort(z), 2).tolist()[:8]} mm, "
                        f"step {step:g} mm)")
    by_index: dict[int, list[int]] = {}
    for f, t in zip(frames, np.round(index).astype(int), strict=True):
        by_index.setdefault(int(t), []).append(f)
    out: dict[int, list[int]] = {}
    for k in range(nz):
        t = int(np.floor((k * dz - z0) / step + 0.5))  # ties go up, as in resample_nearest
        if t in by_index:
            out[k] = by_index[t]
    if not out:
        raise MaskError(f"{what}: none of its frames lies on the image series' slices (frames "
                        f"{z.min():.1f}..{z.max():.1f} mm along the normal, slices 0.0.."
                        f"{(nz - 1) * dz:.1f} mm from the first); expected a mask of this series")
    return out


def place_frames(frames: list[int], pixels: np.ndarray, planes: list[_Plane],
                  reference: Volume, what: str) -> np.ndarray:
    """The frames' pixels on ``reference``'s grid: each frame on the slice its position
    names, sampled in-plane nearest neighbour through its own pixel grid.

    A frame whose rows and columns run along the image's (the usual case) is sampled
    through one index per image column and one per image row; any other frame through
    one index pair per image pixel. Both give the same nearest neighbours.
    """
    nz, ny, nx = reference.shape
    dz, dy, dx = (float(v) for v in reference.spacing_mm)
    direction = np.asarray(reference.direction, dtype=float)
    origin = np.asarray(reference.origin_mm, dtype=float)
    out = np.zeros((nz, ny, nx), dtype=bool)
    ii, jj = np.arange(nx), np.arange(ny)
    rows, cols = pixels.shape[1:]
    for k, fs in _slices_of_frames(frames, planes, reference, what).items():
        corner = origin + direction[:, 2] * dz * k
        for f in fs:
            p = planes[f]
            rel = corner - p.position
            # u (frame column) and v (frame row) are affine in the image's (i, j)
            u_i, u_j = dx * direction[:, 0] @ p.row_cosine, dy * direction[:, 1] @ p.row_cosine
            v_i, v_j = dx * direction[:, 0] @ p.col_cosine, dy * direction[:, 1] @ p.col_cosine
            if u_j == 0.0 and v_i == 0.0:
                _place_separable(out[k], pixels[f], (rel @ p.row_cosine) + ii * u_i,
                                 (rel @ p.col_cosine) + jj * v_j, p.pixel_spacing)
                continue
            u = ((rel @ p.row_cosine) + ii[None, :] * u_i + jj[:, None] * u_j) / p.pixel_spacing[1]
            v = ((rel @ p.col_cosine) + ii[None, :] * v_i + jj[:, None] * v_j) / p.pixel_spacing[0]
            ui = np.floor(u + 0.5).astype(np.intp)
            vi = np.floor(v + 0.5).astype(np.intp)
            ok = (ui >= 0) & (ui < cols) & (vi >= 0) & (vi < rows)
            out[k][ok] |= pixels[f][vi[ok], ui[ok]].astype(bool)
    return out


def _place_separable(target: np.ndarray, frame: np.ndarray, u_mm: np.ndarray,
                     v_mm: np.ndarray, pixel_spacing: tuple[float, float]) -> None:
    """OR ``frame`` into ``target`` where the frame column depends on the image column
    only and the frame row on the image row only (``u_mm``, ``v_mm``: per image column and
    row, mm before division by the frame's pixel spacing)."""
    rows, cols = frame.shape
    ui = np.floor(u_mm / pixel_spacing[1] + 0.5).astype(np.intp)
    vi = np.floor(v_mm / pixel_spacing[0] + 0.5).astype(np.intp)
    col_ok = (ui >= 0) & (ui < cols)
    row_ok = (vi >= 0) & (vi < rows)
    if not col_ok.any() or not row_ok.any():
        return
    sampled = frame[_as_slice(vi[row_ok])][:, _as_slice(ui[col_ok])].astype(bool, copy=False)
    if row_ok.all() and col_ok.all():
        target |= sampled
    else:
        target[np.ix_(row_ok, col_ok)] |= sampled


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """``index`` as a slice when it is a run of consecutive indices (a view, no copy)."""
    if len(index) > 1 and index[0] < index[-1] and (np.diff(index) == 1).all():
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def seg_pixels(ds: Dataset, what: str) -> np.ndarray:
    """The SEG's frames ``[frame, row, column]``, or MaskError naming why they cannot be
    decoded (pixel handlers raise RuntimeError, NotImplementedError ... for bad data)."""
    try:
        pixels = ds.pixel_array
    except Exception as e:  # any decoder failure is a property of this file
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        named = f" ({syntax.name})" if syntax is not None and hasattr(syntax, "name") else ""
        first = " ".join(line.strip() for line in str(e).splitlines() if line.strip())[:300]
        raise MaskError(f"{what}: cannot decode its pixel data{named}: "
                        f"{type(e).__name__}: {first}") from e
    return pixels[None] if pixels.ndim == 2 else pixels
