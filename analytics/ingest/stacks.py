"""Stacks of a series: frames on one grid, one frame per position, of one kind.

An enhanced (multi-frame) MR object often holds several volumes at the same positions: a
Philips B0 export holds 32 magnitude and 32 field-map frames, and Dixon, multi-echo,
multi-b-value diffusion and fMRI exports do the same (or spread their time points over
several files of one series); classic MR series of single-frame files hold echoes and time
points the same way. Each frame of an enhanced image gets a *kind* from its functional
groups:

- the frame type (FrameType in MR/CT Image Frame Type Sequence) and its complex component,
- the echo time (MR Echo Sequence), the b-value and gradient direction (MR Diffusion
  Sequence), the temporal position (Frame Content Sequence TemporalPositionIndex),
- the dimension index (Frame Content Sequence DimensionIndexValues) without the
  dimensions that only say where a frame lies or which frame it is: those whose
  DimensionIndexPointer is In-Stack Position Number or Image Position (Patient), those
  whose values map one-to-one onto slice positions (a private slice number), and those
  whose value differs in every frame (a frame counter).

A classic MR image gets its kind from ImageType, EchoTime, DiffusionBValue and
TemporalPositionIdentifier; a classic CT image has no kind (a CT series is one stack). A
time index that maps one-to-one onto positions (one "time point" per slice) is ignored too.

Frames of one kind form one stack. A stack is checked on its own exactly as a classic
series is (orientation, duplicate positions, gaps, spacing), so two frames of the same
kind at one position are still refused as "duplicate slice positions". Frames of two
stacks are never merged into one volume, and no frame is dropped: every stack is listed
with its frame count in the series geometry and in the ingest report.

How stacks are stored: the series stays one stored series (one ``series`` row, its files
unchanged, one ``instances`` row per file with its ``n_frames``). The split is recomputed
from the stored files whenever the series is read, which is deterministic because it only
uses values that de-identification keeps (code strings, numbers, dimension indices).
``series.geometry`` records every stack (``stacks``: id, label, frames, slice spacing)
and the one biomarkers use (``stack``: id, label, frames, rule); ``n_slices`` and
``spacing_mm`` of the row describe that stack. A stack's ``id`` is a short hash of its kind,
so it names the same stack across runs and sites and carries no identifier. We chose
this over one stored series per stack because the store keys instances by their SOP
Instance UID and file: a stack is a subset of one file's frames, so per-stack series
would need rewritten multi-frame files or duplicated instance rows, and masks, de-
identification and deduplication would all have to learn derived UIDs.

Which stack biomarkers use (:func:`biomarker_stack`, stated in :data:`RULE`): an
anatomical image before derived maps (field map, phase, real/imaginary parts, ADC and other
parametric maps), in-phase before the other Dixon images, then the stack with the most
frames, the lowest b-value, the first time point, the shortest echo time. A series of one
stack (every CT series, most MR series) is assembled exactly as before.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from analytics.ingest.geometry import FrameGeometry, functional_group
from analytics.ingest.header import ENHANCED_SOP_CLASSES, n_frames, raw_strings

#: stacks named one by one in the summary line (all are in ``geometry["stacks"]``)
_LISTED = 12
#: In-Stack Position Number, Image Position (Patient): dimensions that say where a frame is
_POSITION_POINTERS = {0x00209057, 0x00200032}
#: position rounding (mm) when deciding whether a dimension is spatial
_POSITION_DECIMALS = 2
#: frame-type words (value 4) that name a complex component, not an image content
_COMPONENT_WORDS = {"M": "MAGNITUDE", "P": "PHASE", "R": "REAL", "I": "IMAGINARY",
                    "MAGNITUDE": "MAGNITUDE", "PHASE": "PHASE", "REAL": "REAL",
                    "IMAGINARY": "IMAGINARY", "MIXED": "MIXED"}
_NEUTRAL_WORDS = {"NONE", "", "NORMAL"}
#: image contents that are not anatomy: never chosen for biomarkers while an image is there
_MAP_WORDS = {"FIELD_MAP", "B0", "B0_MAP", "B1", "B1_MAP", "PHASE_MAP", "ADC", "FA", "TRACEW",
              "T1_MAP", "T2_MAP", "T2_STAR_MAP", "R2_STAR_MAP", "PROTON_DENSITY_MAP",
              "FAT_FRACTION", "WATER_FRACTION", "VELOCITY", "PERFUSION", "DIFFUSION_MAP",
              "SUBTRACTION", "PHASE", "REAL", "IMAGINARY"}
_DIXON_RANK = {"IN_PHASE": 0, "IP": 0, "WATER": 2, "W": 2, "OUT_PHASE": 3, "OPP_PHASE": 3,
               "OP": 3, "FAT": 4, "F": 4}
RULE = ("anatomical image before derived maps (field map, phase, ADC), in-phase before other "
        "Dixon images, then the most frames, the lowest b-value, the first time point and the "
        "shortest echo time")


@dataclass(frozen=True)
class FrameKind:
    """What a frame shows, apart from where it lies (values kept by de-identification).

    ``echo_ms`` is the effective echo time in ms, ``b_value`` in s/mm2; ``dimension`` is
    DimensionIndexValues without the dimensions that point at In-Stack Position Number or
    Image Position (Patient) (the other position-like ones are dropped when stacks are
    formed).
    """

    frame_type: tuple[str, ...] = ()
    component: str | None = None
    echo_ms: float | None = None
    b_value: float | None = None
    b_direction: tuple[float, ...] | None = None
    temporal: int | None = None
    dimension: tuple[int, ...] | None = None

    def as_list(self) -> list[Any]:
        """Plain JSON for the compact header."""
        return [list(self.frame_type), self.component, self.echo_ms, self.b_value,
                list(self.b_direction) if self.b_direction is not None else None,
                self.temporal, list(self.dimension) if self.dimension is not None else None]

    @classmethod
    def from_list(cls, v: list[Any]) -> FrameKind:
        return cls(frame_type=tuple(v[0]), component=v[1], echo_ms=v[2], b_value=v[3],
                   b_direction=tuple(v[4]) if v[4] is not None else None, temporal=v[5],
                   dimension=tuple(v[6]) if v[6] is not None else None)

    @property
    def content(self) -> str | None:
        """The image content: FIELD_MAP, WATER, IN_PHASE ... or the complex component."""
        words = self.frame_type[2:]
        known = [w for w in words if w in _MAP_WORDS or w in _DIXON_RANK]
        if known:
            return known[0]
        word = self.frame_type[3] if len(self.frame_type) > 3 else ""
        if self.component and word not in _COMPONENT_WORDS and word not in _NEUTRAL_WORDS:
            return word  # enhanced: Frame Type value 4 names the content (PS3.3 C.8.16.1)
        if self.component:
            return self.component
        return next((_COMPONENT_WORDS[w] for w in words if w in _COMPONENT_WORDS), None)


@dataclass
class Stack:
    """One stack: the frames of one kind, in the order they were found.

    ``frames`` holds ``(instance, frame index, geometry)`` tuples as series assembly uses.
    """

    kind: FrameKind
    key: tuple
    frames: list[tuple[Any, int, FrameGeometry]]
    label: str = ""

    @property
    def id(self) -> str:
        """A short, stable name of the stack (a hash of its kind; no identifiers)."""
        return hashlib.sha256(json.dumps(self.key, default=str).encode()).hexdigest()[:10]


def _values(value) -> list:
    """A multi-valued element as a list, a single value as a list of one."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | tuple | MultiValue) else [value]


def _cs(item: Dataset | None, kw: str) -> list[str]:
    if item is None:
        return []
    return [v.strip().upper() for v in (raw_strings(item, kw) or [])]


def _float(item: Dataset | None, kw: str) -> float | None:
    if item is None or kw not in item:
        return None
    try:
        value = _values(item[kw].value)[0]
        f = float(value)
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        return None  # an unreadable value makes its own kind: never merged with readable ones
    return round(f, 3) if math.isfinite(f) else None


def _vector(item: Dataset | None, kw: str) -> tuple[float, ...] | None:
    if item is None or kw not in item:
        return None
    try:
        v = tuple(round(float(x), 3) for x in _values(item[kw].value))
    except (TypeError, ValueError, KeyError):
        return None
    return v if len(v) == 3 and all(math.isfinite(x) for x in v) else None


def _direction(item: Dataset | None) -> tuple[float, ...] | None:
    seq = item.get("DiffusionGradientDirectionSequence") if item is not None else None
    return _vector(seq[0], "DiffusionGradientOrientation") if seq else None


def _int(item: Dataset | None, kw: str) -> int | None:
    f = _float(item, kw)
    return int(f) if f is not None else None


def frame_kinds(ds: Dataset) -> list[FrameKind] | None:
    """The kind of every frame of an enhanced CT/MR image or a classic MR image.

    Returns None for a classic CT image (one kind per series). Values that cannot be read
    count as absent; they never raise (geometry is what decides whether an image is
    usable).
    """
    if str(ds.get("SOPClassUID", "")) not in ENHANCED_SOP_CLASSES:
        if (raw_strings(ds, "Modality") or [""])[0].strip().upper() != "MR":
            return None
        # Classic MR: echoes, b-values and time points of one series share positions too.
        return [FrameKind(frame_type=tuple(_cs(ds, "ImageType")), echo_ms=_float(ds, "EchoTime"),
                          b_value=_float(ds, "DiffusionBValue"),
                          b_direction=_vector(ds, "DiffusionGradientOrientation"),
                          temporal=_int(ds, "TemporalPositionIdentifier"))]
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    positional = _positional_dimensions(ds)
    out = []
    for i in range(n_frames(ds)):
        fg = per_frame[i] if i < len(per_frame) else None
        ftype = (functional_group(fg, shared, "MRImageFrameTypeSequence")
                 or functional_group(fg, shared, "CTImageFrameTypeSequence"))
        content = functional_group(fg, shared, "FrameContentSequence")
        diffusion = functional_group(fg, shared, "MRDiffusionSequence")
        dimension = None
        if content is not None and "DimensionIndexValues" in content:
            try:
                values = [int(v) for v in _values(content["DimensionIndexValues"].value)]
            except (TypeError, ValueError):
                values = None  # unreadable: the frame keeps a kind of its own
            if values is not None:
                drop = (positional[1] if positional is not None
                        and len(values) == positional[0] else set())
                dimension = tuple(v for j, v in enumerate(values) if j not in drop)
        component = _cs(ftype, "ComplexImageComponent")
        out.append(FrameKind(
            frame_type=tuple(_cs(ftype, "FrameType")),
            component=component[0] if component else None,
            echo_ms=_float(functional_group(fg, shared, "MREchoSequence"), "EffectiveEchoTime"),
            b_value=_float(diffusion, "DiffusionBValue"),
            b_direction=_direction(diffusion),
            temporal=_int(content, "TemporalPositionIndex"),
            dimension=dimension))
    return out


def _positional_dimensions(ds: Dataset) -> tuple[int, set[int]] | None:
    """(number of dimensions, indices of those pointing at a position), or None."""
    try:
        pointers = [int(item.DimensionIndexPointer)
                    for item in ds.get("DimensionIndexSequence") or []]
    except (AttributeError, TypeError, ValueError):
        return None
    if not pointers:
        return None
    return len(pointers), {j for j, p in enumerate(pointers) if p in _POSITION_POINTERS}


def instance_kinds(inst) -> list[FrameKind | None]:
    """Per-frame kinds of a parsed instance: from its compact header, else its dataset."""
    info = inst.info or {}
    if "frame_kinds" in info:
        kinds = info["frame_kinds"]
        if kinds is None:
            return [None] * inst.n_frames
        return [FrameKind.from_list(k) for k in kinds]
    kinds = frame_kinds(inst.header) if inst.kind == "image" else None
    return list(kinds) if kinds is not None else [None] * inst.n_frames


def _one_to_one(values: list, positions: list[tuple]) -> bool:
    """True if each position has one value and each value one position."""
    by_pos: dict[tuple, set] = {}
    by_val: dict[Any, set[tuple]] = {}
    for v, p in zip(values, positions, strict=True):
        by_pos.setdefault(p, set()).add(v)
        by_val.setdefault(v, set()).add(p)
    return all(len(v) == 1 for v in by_pos.values()) and all(len(v) == 1
                                                             for v in by_val.values())


def _spatial(frames, kinds: list[FrameKind | None]) -> tuple[set[int], bool]:
    """Which dimensions (by index), and whether the temporal position, only say where a
    frame lies or which frame it is: their values map one-to-one onto slice positions
    (a private slice number, a per-slice acquisition counter); for dimensions, also those
    whose value differs in every frame (a frame counter)."""
    positions = [tuple(np.round(g.position, _POSITION_DECIMALS)) for _, _, g in frames]
    temporal = [k.temporal if k is not None else None for k in kinds]
    temporal_spatial = None not in temporal and _one_to_one(temporal, positions)
    dims = [k.dimension if k is not None else None for k in kinds]
    if not dims or any(d is None for d in dims) or len({len(d) for d in dims}) != 1:
        return set(), temporal_spatial
    return ({j for j in range(len(dims[0]))
             if _one_to_one([d[j] for d in dims], positions)
             or len({d[j] for d in dims}) == len(dims)}, temporal_spatial)


def split(frames: list[tuple[Any, int, FrameGeometry]],
          kinds: list[FrameKind | None]) -> list[Stack]:
    """Group ``frames`` (instance, frame index, geometry) into stacks by frame kind.

    Returns one stack when every frame is of one kind (every CT series); stacks are
    ordered by dimension index, time point, b-value and echo time, so the order does not
    depend on the order of the files.
    """
    spatial, temporal_spatial = _spatial(frames, kinds)
    stacks: dict[tuple, Stack] = {}
    for frame, kind in zip(frames, kinds, strict=True):
        kind = kind or FrameKind()
        if temporal_spatial:
            kind = replace(kind, temporal=None)
        dims = (tuple(v for j, v in enumerate(kind.dimension) if j not in spatial)
                if kind.dimension is not None else None)
        key = (kind.frame_type, kind.component, kind.echo_ms, kind.b_value, kind.b_direction,
               kind.temporal, dims)
        if key not in stacks:
            stacks[key] = Stack(kind=kind, key=key, frames=[])
        stacks[key].frames.append(frame)
    # Listed in dimension-index order, whatever order the files arrived in.
    out = sorted(stacks.values(), key=lambda s: (
        s.key[6] or (), s.kind.temporal or 0, s.kind.b_value or 0.0, s.kind.echo_ms or 0.0,
        s.kind.frame_type, s.kind.component or "", json.dumps(s.key, default=str)))
    _label(out)
    return out


def _label(stacks: list[Stack]) -> None:
    """Give every stack a readable label, unique within the series."""
    temporal = len({s.kind.temporal for s in stacks}) > 1
    for s in stacks:
        k = s.kind
        parts = [k.content or "IMAGE"]
        if k.echo_ms:
            parts.append(f"TE {k.echo_ms:g} ms")
        if k.b_value is not None:
            parts.append(f"b {k.b_value:g} s/mm2")
        if k.b_direction is not None and any(k.b_direction):
            parts.append("direction (" + ", ".join(f"{v:g}" for v in k.b_direction) + ")")
        if temporal and k.temporal is not None:
            parts.append(f"time point {k.temporal}")
        s.label = " ".join(parts)
    seen = Counter(s.label for s in stacks)
    for n, s in enumerate(stacks, start=1):
        if seen[s.label] > 1:
            s.label = f"{s.label} (stack {n})"


def _rank(s: Stack) -> tuple:
    k = s.kind
    content = k.content or ""
    derived = content in _MAP_WORDS or k.component in {"PHASE", "REAL", "IMAGINARY"}
    # Frame count before b-value, time and echo: a stray short stack never wins over a volume.
    return (1 if derived else 0, _DIXON_RANK.get(content, 1), -len(s.frames),
            k.b_value or 0.0, k.temporal or 0, k.echo_ms or 0.0)


def biomarker_stack(stacks: list[Stack]) -> Stack:
    """The stack biomarkers use (see the module docstring for the rule)."""
    return min(stacks, key=_rank)


def summary(stacks: list[Stack], chosen: Stack, what: str) -> str:
    """One line saying how a series was split; ``what`` names it ("enhanced MR")."""
    return (f"{what} split into {len(stacks)} stacks: "
            f"{listing([(s.label, len(s.frames)) for s in stacks])}; biomarkers use "
            f"{chosen.label}")


def listing(stacks: list[tuple[str, int]]) -> str:
    """``"MAGNITUDE TE 1.52 ms (32 frames), FIELD_MAP (32 frames)"``, the first few only."""
    listed = ", ".join(f"{label} ({n} frame{'s' if n != 1 else ''})"
                       for label, n in stacks[:_LISTED])
    return listed + (f" and {len(stacks) - _LISTED} more" if len(stacks) > _LISTED else "")


def stack_entry(geometry: dict[str, Any] | None) -> dict[str, Any]:
    """The ``stack`` and ``stacks`` keys of an ingest report's series entry.

    ``stack`` is the label of the stack biomarkers use (None when the series has one
    stack); ``stacks`` lists every stack with its frame count and slice spacing.
    """
    geometry = geometry or {}
    chosen = geometry.get("stack")
    return {"stack": chosen.get("label") if chosen else None,
            "stacks": geometry.get("stacks") or []}
