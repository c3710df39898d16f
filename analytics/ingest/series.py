"""Series assembly: exclude what is not part of the volume, check geometry, build the volume.

Slices are ordered along the slice normal (row cosine x column cosine) by the projection of
ImagePositionPatient, never by InstanceNumber. A series is built only when its geometry is
coherent; otherwise :class:`SeriesCheck` names the problem: mixed SeriesInstanceUID, mixed
orientation, mixed rows/columns/pixel spacing, duplicate positions, missing slices (gaps),
non-uniform spacing, or slice positions that do not follow the normal (gantry tilt).

A series may hold several stacks at the same positions (an enhanced MR with magnitude and
field-map frames, echoes, b-values, time points): :mod:`analytics.ingest.stacks` splits the
frames by what they show, each stack is checked on its own, and :func:`build_volume` builds
one stack (the one biomarkers use unless another is named). Frames of two stacks are never
mixed in one volume.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom

from analytics.config import IngestLimits
from analytics.errors import InvalidDicomError, InvalidSeriesError, LimitExceededError
from analytics.ingest.findings import EXCLUDED, INCOHERENT, LIMIT, Rejection
from analytics.ingest.geometry import FrameGeometry
from analytics.ingest.header import ENHANCED_SOP_CLASSES
from analytics.ingest.pixels import is_native, stored_frames
from analytics.ingest.quant_header import rescaled_quant_header
from analytics.ingest.reader import ParsedInstance, SafeParser, parse_trusted
from analytics.ingest.stacks import (
    RULE,
    FrameKind,
    Stack,
    biomarker_stack,
    instance_kinds,
    split,
    summary,
)
from analytics.ingest.volume import Volume

ORIENTATION_TOL = 1e-3  # direction-cosine difference treated as the same orientation
SPACING_REL_TOL = 0.01  # relative slice-spacing tolerance
SPACING_ABS_TOL_MM = 0.01
INPLANE_REL_TOL = 0.05  # in-plane drift allowed, as a fraction of the pixel spacing


@dataclass
class SeriesCheck:
    """Verdict on one series.

    Attributes
    ----------
    ok
        True when the instances form one coherent volume.
    reason
        What is wrong (None when ``ok``), naming the files or positions involved: for the
        report shown to the uploader (their own file names), never stored.
    stored_reason
        The same without file names, paths or original UIDs (slices by position in mm or
        number in slice order): the form kept in ``series.status_reason``.
    instances
        Image instances that make up the volume, in slice order (first slice first); for a
        series of several stacks, the other stacks' instances follow.
    geometry
        ``n_slices``, ``rows``, ``cols``, ``spacing_mm`` (z, y, x), ``origin_mm``,
        ``direction`` (3x3, columns x, y, z in LPS), ``slice_positions_mm`` (along the
        normal), ``modality``, ``frame_of_reference_uid``, ``contrast_phase``,
        ``description``, ``enhanced``, ``notes``.
    excluded
        Instances left out (localizers, secondary captures, non-images), with the reason.
    frames
        ``(index into instances, frame index)`` of every slice of the described stack, in
        slice order.
    """

    ok: bool
    reason: str | None
    instances: list[ParsedInstance]
    stored_reason: str | None = None
    geometry: dict[str, Any] = field(default_factory=dict)
    excluded: list[Rejection] = field(default_factory=list)
    frames: list[tuple[int, int]] = field(default_factory=list)
    category: str | None = None  # "incoherent" or "limit" when not ok
    _geoms: list[FrameGeometry] = field(default_factory=list, repr=False)


def _fail(reason: str, instances, excluded, category: str = INCOHERENT, *,
          stored: str | None = None) -> SeriesCheck:
    """A failed check; ``stored`` is the reason without names or original UIDs (default:
    ``reason``, for messages that name none)."""
    return SeriesCheck(ok=False, reason=reason, instances=list(instances), excluded=excluded,
                       category=category, stored_reason=stored or reason)


def _which(inst: ParsedInstance, images: list[ParsedInstance]) -> str:
    """An instance named without its file name: InstanceNumber, else its place in the series."""
    if inst.instance_number is not None:
        return f"instance number {inst.instance_number}"
    place = next((k for k, i in enumerate(images, 1) if i is inst), 0)
    return f"instance {place} of {len(images)}"


def _exclusion(inst: ParsedInstance) -> str | None:
    if inst.kind == "other":
        return "secondary capture: excluded from the volume (not scored)"
    if inst.kind != "image":
        return f"{inst.kind} object, not an image: excluded from the volume"
    image_type = inst.info.get("image_type") or []
    if "LOCALIZER" in image_type:
        return "localizer (ImageType LOCALIZER): excluded from the volume"
    return None


def _orientation_key(g: FrameGeometry) -> tuple[float, ...]:
    return tuple(np.round(np.concatenate([g.row_cosine, g.col_cosine]), 3))


def _same_orientation(a: FrameGeometry, b: FrameGeometry) -> bool:
    return (np.abs(a.row_cosine - b.row_cosine).max() <= ORIENTATION_TOL
            and np.abs(a.col_cosine - b.col_cosine).max() <= ORIENTATION_TOL)


def _dedupe(images: list[ParsedInstance]
            ) -> tuple[list[ParsedInstance], tuple[str, str] | None, list[str]]:
    """Drop exact duplicates; ``(reason, stored reason)`` when one UID has two contents."""
    seen: dict[str, ParsedInstance] = {}
    notes = []
    for inst in images:
        uid = inst.sop_instance_uid or inst.sha256
        if uid in seen:
            if seen[uid].sha256 != inst.sha256:
                return [], (f"SOPInstanceUID {uid} appears twice with different content "
                            f"({seen[uid].name}, {inst.name})",
                            f"one SOPInstanceUID appears twice with different content "
                            f"({_which(seen[uid], images)}, {_which(inst, images)})"), notes
            notes.append(f"{inst.name}: duplicate of {seen[uid].name}, ignored")
            continue
        seen[uid] = inst
    return list(seen.values()), None, notes


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def _spacing_problem(d: np.ndarray) -> str | None:
    """Gaps or uneven spacing in sorted positions ``d`` (mm along the normal)."""
    diffs = np.diff(d)
    expected = float(np.median(diffs))
    tol = max(SPACING_ABS_TOL_MM, SPACING_REL_TOL * expected)
    bad = np.flatnonzero(np.abs(diffs - expected) > tol)
    if bad.size == 0:
        return None
    gaps = []
    for i in bad:
        ratio = diffs[i] / expected
        k = round(ratio)
        if k >= 2 and abs(diffs[i] - k * expected) <= tol * k:
            gaps.append(f"gap of {_fmt(diffs[i])} mm between {_fmt(d[i])} and {_fmt(d[i + 1])} mm "
                        f"({k - 1} slice{'s' if k > 2 else ''} missing)")
        else:
            gaps = []
            break
    if gaps:
        return (f"missing slices: {'; '.join(gaps)} along the slice normal, where the spacing "
                f"is {_fmt(expected)} mm")
    return (f"non-uniform slice spacing: {_fmt(diffs.min())} to {_fmt(diffs.max())} mm "
            f"between slices (expected {_fmt(expected)} +/- {tol:.3f} mm)")


def check_series(instances: list[ParsedInstance], limits: IngestLimits | None = None, *,
                 stack: str | None = None) -> SeriesCheck:
    """Check that ``instances`` form coherent volumes and put one of them in slice order.

    Frames are first split into stacks by what they show (:mod:`analytics.ingest.stacks`);
    every stack must pass the geometry checks, and the check describes one of them.

    Parameters
    ----------
    instances
        Parsed instances of one series (as grouped by SeriesInstanceUID).
    limits
        If given, ``max_series_bytes`` and ``max_pixel_bytes`` (of one stack's float32
        volume) are enforced.
    stack
        The stack to describe, by id or label (``geometry["stacks"]``); the stack
        biomarkers use when None.

    Returns
    -------
    SeriesCheck
        ``ok`` with the sorted instances and geometry, or the reason it cannot be built.
        When the series holds several stacks, ``geometry`` also has ``stack`` (the one
        described, with the rule that chose it) and ``stacks`` (all of them, with frame
        counts), and ``instances`` lists the other stacks' instances after the described
        stack's.
    """
    images, excluded = _image_instances(instances)
    if not images:
        return _fail("no CT/MR image instances in the series", [], excluded)
    usable = _check_instances(images, excluded, limits)
    if isinstance(usable, SeriesCheck):
        return usable
    images, notes = usable
    framed = _frames(images, excluded)
    if isinstance(framed, SeriesCheck):
        return framed
    frames, kinds = framed
    stacks = split(frames, kinds)
    checked = _check_stacks(stacks, images, excluded, limits)
    if isinstance(checked, SeriesCheck):
        return checked
    pick = _pick_stack(stacks, stack, images, excluded)
    if isinstance(pick, SeriesCheck):
        return pick
    return _described(stacks, checked, pick, images, excluded, notes)


def _image_instances(instances: list[ParsedInstance]
                     ) -> tuple[list[ParsedInstance], list[Rejection]]:
    """The instances that are images of the volume, and the others with the reason."""
    excluded: list[Rejection] = []
    images = []
    for inst in instances:
        why = _exclusion(inst)
        if why:
            excluded.append(Rejection(inst.name, why, EXCLUDED))
        else:
            images.append(inst)
    return images, excluded


def _check_instances(images: list[ParsedInstance], excluded: list[Rejection],
                     limits: IngestLimits | None
                     ) -> tuple[list[ParsedInstance], list[str]] | SeriesCheck:
    """One SeriesInstanceUID, no conflicting duplicates, readable pixels, within the cap.

    Returns the images without exact duplicates and notes on those dropped, or the
    failed check.
    """
    uids = sorted({str(i.series_uid) for i in images})
    if len(uids) > 1:
        return _fail(f"mixed SeriesInstanceUID (0020,000E): {', '.join(uids)}", images, excluded,
                     stored=f"mixed SeriesInstanceUID (0020,000E): {len(uids)} different UIDs")
    images, dup_problem, notes = _dedupe(images)
    if dup_problem:
        return _fail(dup_problem[0], images, excluded, stored=dup_problem[1])
    for inst in images:
        if inst.pixel_problem:
            return _fail(f"{inst.name}: {inst.pixel_problem}; the series is not scored",
                         images, excluded,
                         stored=f"{_which(inst, images)}: {inst.pixel_problem}; the series "
                                "is not scored")
    if limits is not None:
        total = sum(i.size for i in images)
        if total > limits.max_series_bytes:
            return _fail(f"series is {total} bytes, over the per-series cap of "
                         f"{limits.max_series_bytes} bytes (max_series_bytes)", images, excluded,
                         LIMIT)
    return images, notes


def _frames(images: list[ParsedInstance], excluded: list[Rejection]
            ) -> tuple[list[tuple[ParsedInstance, int, FrameGeometry]],
                       list[FrameKind | None]] | SeriesCheck:
    """Every frame of every image with its geometry and what it shows (None: unknown)."""
    frames: list[tuple[ParsedInstance, int, FrameGeometry]] = []
    kinds: list[FrameKind | None] = []
    for inst in images:
        try:
            geoms = inst.geometry
        except InvalidDicomError as e:
            return _fail(f"{inst.name}: {e}", images, excluded,
                         stored=f"{_which(inst, images)}: {e}")
        frames += [(inst, f, g) for f, g in enumerate(geoms)]
        got = instance_kinds(inst)
        kinds += got if len(got) == len(geoms) else [None] * len(geoms)
    return frames, kinds


def _check_stacks(stacks: list[Stack], images: list[ParsedInstance], excluded: list[Rejection],
                  limits: IngestLimits | None) -> list[_StackGeometry] | SeriesCheck:
    """Check every stack on its own, then their pixel budget together."""
    checked: list[_StackGeometry] = []
    for s in stacks:
        result = _check_stack(s.frames, images, excluded, limits)
        if isinstance(result, SeriesCheck):
            if len(stacks) > 1:
                where = f" (in stack {s.label}, {len(s.frames)} frames, one of {len(stacks)} stacks)"
                result.reason = f"{result.reason}{where}"
                result.stored_reason = f"{result.stored_reason}{where}"
            return result
        checked.append(result)
    if limits is not None and len(stacks) > 1:
        # Reading one stack decodes whole multi-frame instances: budget every stack together.
        need = sum(len(g.frames) * g.rows * g.cols * 4 for g in checked)
        if need > limits.max_pixel_bytes:
            return _fail(f"the {len(stacks)} stacks of this series would need {need} bytes "
                         f"(float32) together, over the pixel budget of "
                         f"{limits.max_pixel_bytes} (max_pixel_bytes)", images, excluded, LIMIT)
    return checked


def _pick_stack(stacks: list[Stack], stack: str | None, images: list[ParsedInstance],
                excluded: list[Rejection]) -> int | SeriesCheck:
    """Index of the stack named by id or label, else of the one biomarkers use."""
    if stack is None:
        return stacks.index(biomarker_stack(stacks))
    matches = [n for n, s in enumerate(stacks) if stack in (s.id, s.label)]
    if not matches:
        return _fail(f"no stack {stack!r} in this series; its stacks are "
                     + ", ".join(f"{s.id} ({s.label})" for s in stacks), images, excluded)
    return matches[0]


def _described(stacks: list[Stack], checked: list[_StackGeometry], pick: int,
               images: list[ParsedInstance], excluded: list[Rejection],
               notes: list[str]) -> SeriesCheck:
    """The passed check describing stack ``pick`` (see :func:`check_series`)."""
    chosen, geo = stacks[pick], checked[pick]
    if len(stacks) > 1:
        enhanced = any(str(i.sop_class_uid) in ENHANCED_SOP_CLASSES for i, _, _ in geo.frames)
        notes.append(summary(stacks, chosen, f"enhanced {geo.modality}" if enhanced
                             else f"{geo.modality} series"))

    # The chosen stack's instances first, in slice order; other stacks' instances follow.
    position: dict[int, int] = {}  # id(instance) -> index in ``order_insts``
    order_insts: list[ParsedInstance] = []
    for inst, _, _ in [*geo.frames, *(f for g in checked for f in g.frames)]:
        if id(inst) not in position:
            position[id(inst)] = len(order_insts)
            order_insts.append(inst)
    slots = [(position[id(inst)], f) for inst, f, _ in geo.frames]
    ref = geo.ref
    in_stack = {id(i) for i, _, _ in geo.frames}
    first = next(i for i in images if id(i) in in_stack)  # input order, as for one stack
    geometry = {
        "n_slices": len(geo.frames), "rows": geo.rows, "cols": geo.cols,
        "spacing_mm": [geo.dz, ref.pixel_spacing[0], ref.pixel_spacing[1]],
        "origin_mm": geo.frames[0][2].position.tolist(),
        "direction": np.column_stack([ref.row_cosine, ref.col_cosine, ref.normal]).tolist(),
        "slice_positions_mm": geo.positions.tolist(),
        "modality": geo.modality,
        "frame_of_reference_uid": first.frame_of_reference_uid,
        "contrast_phase": first.info.get("contrast_phase"),
        "description": first.info.get("description"),
        "enhanced": any(str(i.sop_class_uid) in ENHANCED_SOP_CLASSES for i in order_insts),
        "notes": notes + geo.notes,
    }
    if len(stacks) > 1:
        geometry["stack"] = {"id": chosen.id, "label": chosen.label,
                             "frames": len(chosen.frames), "rule": RULE}
        geometry["stacks"] = [{"id": s.id, "label": s.label, "frames": len(s.frames),
                               "slice_spacing_mm": round(g.dz, 4),
                               "biomarkers": s is chosen} for s, g in zip(stacks, checked,
                                                                          strict=True)]
    return SeriesCheck(ok=True, reason=None, instances=order_insts, geometry=geometry,
                       excluded=excluded, frames=slots, _geoms=[g for _, _, g in geo.frames])


@dataclass
class _StackGeometry:
    """A stack that passed its checks: frames in slice order and what describes them."""

    frames: list[tuple[ParsedInstance, int, FrameGeometry]]
    positions: np.ndarray  # mm along the normal, ascending
    dz: float
    ref: FrameGeometry
    rows: int
    cols: int
    modality: str
    notes: list[str]


def _check_stack(frames: list[tuple[ParsedInstance, int, FrameGeometry]],
                 images: list[ParsedInstance], excluded: list[Rejection],
                 limits: IngestLimits | None) -> _StackGeometry | SeriesCheck:
    """Check one stack's frames form one volume; a failed :class:`SeriesCheck` if not.

    Lone single-frame instances at another orientation (localizers) are moved to
    ``excluded``.
    """
    oriented = _drop_localizers(frames, images, excluded)
    if isinstance(oriented, SeriesCheck):
        return oriented
    frames, ref = oriented
    kept_ids = {id(k) for k, _, _ in frames}
    images = [i for i in images if id(i) in kept_ids]
    uniform = _check_uniform(frames, images, excluded, limits)
    if isinstance(uniform, SeriesCheck):
        return uniform
    rows, cols, modality = uniform
    ordered = _slice_order(frames, ref, images, excluded)
    if isinstance(ordered, SeriesCheck):
        return ordered
    frames, d, dz, notes = ordered
    return _StackGeometry(frames=frames, positions=d, dz=dz, ref=ref, rows=rows, cols=cols,
                          modality=modality, notes=notes)


def _drop_localizers(frames: list[tuple[ParsedInstance, int, FrameGeometry]],
                     images: list[ParsedInstance], excluded: list[Rejection]
                     ) -> tuple[list[tuple[ParsedInstance, int, FrameGeometry]],
                                FrameGeometry] | SeriesCheck:
    """The frames at the stack's orientation and the geometry that defines it.

    Lone single-frame instances at another orientation are moved to ``excluded``; any
    other frame at another orientation fails the check.
    """
    # The dominant orientation is the stack's; a lone slice at another angle is a localizer.
    key_counts = Counter(_orientation_key(g) for _, _, g in frames)
    ref = next(g for _, _, g in frames if _orientation_key(g) == key_counts.most_common(1)[0][0])
    kept = []
    for inst, f, g in frames:
        if _same_orientation(g, ref):
            kept.append((inst, f, g))
        elif inst.n_frames == 1 and key_counts[_orientation_key(g)] == 1:
            excluded.append(Rejection(inst.name, "localizer (single slice whose orientation "
                                                 "differs from the series): excluded", EXCLUDED))
        else:
            iop = np.round(np.concatenate([g.row_cosine, g.col_cosine]), 4).tolist()
            ref_iop = np.round(np.concatenate([ref.row_cosine, ref.col_cosine]), 4).tolist()
            return _fail(f"mixed orientation: {inst.name} has ImageOrientationPatient "
                         f"{iop}, the series {ref_iop}", images, excluded,
                         stored=f"mixed orientation: {_which(inst, images)} has "
                                f"ImageOrientationPatient {iop}, the series {ref_iop}")
    return kept, ref


def _check_uniform(frames: list[tuple[ParsedInstance, int, FrameGeometry]],
                   images: list[ParsedInstance], excluded: list[Rejection],
                   limits: IngestLimits | None) -> tuple[int, int, str] | SeriesCheck:
    """One Rows/Columns, PixelSpacing and Modality, grayscale, within the pixel budget.

    Returns ``(rows, cols, modality)`` of the stack, or the failed check.
    """
    rows_cols = sorted({(int(i.info["rows"]), int(i.info["cols"])) for i in images})
    if len(rows_cols) > 1:
        return _fail("mixed Rows/Columns: " + ", ".join(f"{r}x{c}" for r, c in rows_cols),
                     images, excluded)
    ps = np.array([g.pixel_spacing for _, _, g in frames])
    if np.abs(ps - ps[0]).max() > 1e-3 * ps[0].max():
        return _fail(f"mixed PixelSpacing (0028,0030): {sorted({tuple(p) for p in ps.round(4)})}",
                     images, excluded)
    modalities = sorted({str(i.modality) for i in images})
    if len(modalities) > 1:
        return _fail(f"mixed Modality (0008,0060): {', '.join(modalities)}", images, excluded)
    for inst in images:
        if (inst.info["samples"] or 1) != 1:
            what = (f"SamplesPerPixel (0028,0002) = {inst.info['samples']}; expected 1 "
                    "(grayscale)")
            return _fail(f"{inst.name}: {what}", images, excluded,
                         stored=f"{_which(inst, images)}: {what}")
    rows, cols = rows_cols[0]
    if limits is not None:
        need = len(frames) * rows * cols * 4
        if need > limits.max_pixel_bytes:
            return _fail(f"volume would need {need} bytes (float32), over the pixel budget of "
                         f"{limits.max_pixel_bytes} (max_pixel_bytes)", images, excluded, LIMIT)
    return rows, cols, modalities[0]


def _slice_order(frames: list[tuple[ParsedInstance, int, FrameGeometry]], ref: FrameGeometry,
                 images: list[ParsedInstance], excluded: list[Rejection]
                 ) -> tuple[list[tuple[ParsedInstance, int, FrameGeometry]], np.ndarray,
                            float, list[str]] | SeriesCheck:
    """Frames sorted along the slice normal, with positions that make one regular volume.

    Returns ``(frames in slice order, positions in mm along the normal, slice spacing in
    mm, notes)``, or the failed check (duplicate positions, gantry tilt, gaps, uneven
    spacing).
    """
    notes: list[str] = []
    normal = ref.normal
    d = np.array([float(g.position @ normal) for _, _, g in frames])
    order = np.argsort(d, kind="stable")
    frames = [frames[i] for i in order]
    d = d[order]
    if len(d) > 1:
        same = np.flatnonzero(np.diff(d) <= SPACING_ABS_TOL_MM)
        if same.size:
            i = int(same[0])
            where = (f"both lie at {_fmt(d[i])} mm along the slice normal ({same.size + 1} "
                     "slices share positions)")
            return _fail(f"duplicate slice positions: {frames[i][0].name} and "
                         f"{frames[i + 1][0].name} {where}", images, excluded,
                         stored=f"duplicate slice positions: slices {i + 1} and {i + 2} of "
                                f"{len(frames)} (in slice order) {where}")
        inplane = np.array([[g.position @ ref.row_cosine, g.position @ ref.col_cosine]
                            for _, _, g in frames])
        drift = np.abs(inplane - inplane[0]).max(axis=0)
        if np.any(drift > INPLANE_REL_TOL * np.array(ref.pixel_spacing)[::-1]):
            shift = float(np.hypot(*(inplane[-1] - inplane[0])))
            tilt = math.degrees(math.atan2(shift, d[-1] - d[0]))
            return _fail(f"slice positions are not along the slice normal (gantry tilt or "
                         f"sheared stack): in-plane shift of {_fmt(shift)} mm over "
                         f"{_fmt(d[-1] - d[0])} mm, about {tilt:.1f} degrees", images, excluded)
        problem = _spacing_problem(d)
        if problem:
            return _fail(problem, images, excluded)
        dz = float(np.median(np.diff(d)))
    else:
        g = frames[0][2]
        dz = g.spacing_between_slices or g.slice_thickness or 1.0
        notes.append(f"single slice: z spacing {dz:g} mm from the slice thickness")
    return frames, d, dz, notes


def _as_instances(items: list[ParsedInstance] | list[pydicom.Dataset],
                  limits: IngestLimits) -> list[ParsedInstance]:
    out = []
    for n, it in enumerate(items):
        if isinstance(it, ParsedInstance):
            out.append(it)
            continue
        buf = io.BytesIO()
        it.save_as(buf, enforce_file_format=True)
        out.append(parse_trusted(f"dataset {n + 1}", buf.getvalue(), limits))
    return out


def _rescale_into(out: np.ndarray, stored: np.ndarray, g: FrameGeometry) -> None:
    """``out`` = stored * slope + intercept in float32, in one pass where one will do
    (the same float32 operations, so the same values, as cast, multiply, then add)."""
    slope, intercept = np.float32(g.slope), np.float32(g.intercept)
    if g.slope != 1.0:
        np.multiply(stored, slope, out=out, dtype=np.float32)
        if g.intercept != 0.0:
            out += intercept
    elif g.intercept != 0.0:
        np.add(stored, intercept, out=out, dtype=np.float32)
    else:
        out[...] = stored


def build_volume(instances: list[ParsedInstance] | list[pydicom.Dataset],
                 limits: IngestLimits | None = None,
                 decoder: SafeParser | None = None, *, stack: str | None = None) -> Volume:
    """Decode and stack a coherent series into a :class:`Volume` (HU for CT).

    Parameters
    ----------
    instances
        Parsed instances (or in-memory datasets with pixel data) of one series.
    limits
        Size and decode limits; defaults to ``IngestLimits()``.
    decoder
        Worker pool for compressed syntaxes (a temporary one is started when needed).
    stack
        The stack to build, by id or label; the stack biomarkers use when None. Its id,
        label and the series' other stacks are in ``meta["stack"]`` and ``meta["stacks"]``.

    Raises
    ------
    InvalidSeriesError
        The instances do not form one coherent volume; the message says why.
    LimitExceededError, UnsupportedError, InvalidDicomError
        Over a size cap, no decoder for the compression, or undecodable pixel data.
    """
    limits = limits or IngestLimits()
    check = check_series(_as_instances(instances, limits), limits, stack=stack)
    if not check.ok:
        cls = LimitExceededError if check.category == LIMIT else InvalidSeriesError
        raise cls(check.reason or "incoherent series")
    geo = check.geometry
    out = np.empty((geo["n_slices"], geo["rows"], geo["cols"]), dtype=np.float32)
    by_instance: dict[int, list[tuple[int, int]]] = {}
    for k, (i, f) in enumerate(check.frames):
        by_instance.setdefault(i, []).append((k, f))
    own_decoder = None
    needs_codec = any(not is_native(check.instances[i]) for i in by_instance)
    if needs_codec and decoder is None:
        own_decoder = decoder = SafeParser(limits)
    try:
        for i, slots in by_instance.items():
            stored = stored_frames(check.instances[i], limits, decoder)
            for k, f in slots:
                _rescale_into(out[k], stored[f], check._geoms[k])
    finally:
        if own_decoder is not None:
            own_decoder.close()
    first = check.instances[0]
    meta_quant = (rescaled_quant_header(first.header, check._geoms)
                  if (geo["modality"] or "").upper() == "MR" else None)
    return Volume(
        array=out, spacing_mm=tuple(geo["spacing_mm"]), origin_mm=tuple(geo["origin_mm"]),
        direction=np.array(geo["direction"]), modality=geo["modality"],
        series_uid=first.series_uid, frame_of_reference_uid=first.frame_of_reference_uid,
        contrast_phase=geo["contrast_phase"],
        meta={"study_uid": first.study_uid, "patient_id": first.patient_id,
              "study_date": first.info.get("study_date"),
              "description": geo["description"],
              "sop_instance_uids": [check.instances[i].sop_instance_uid
                                    for i in dict.fromkeys(i for i, _ in check.frames)],
              "stack": geo.get("stack"), "stacks": geo.get("stacks"),
              "slice_positions_mm": geo["slice_positions_mm"], "notes": geo["notes"],
              "excluded": [r.as_dict() for r in check.excluded],
              "quant_header": meta_quant})
