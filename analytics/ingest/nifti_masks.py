"""NIfTI masks: label names, grid and placement on an image series through the affine.

A NIfTI file names no image series and, as a label map, no structures. Its label names
come from, in this order: the file's own name when it is a binary mask named after its
structure (``liver.nii.gz``, TotalSegmentator's per-structure files), the label table the
user passes (``5=liver,1=spleen`` or a named table such as ``totalsegmentator-v2``), or
the label table TotalSegmentator writes into the file (a NIfTI header extension). Its
place in the patient comes from its affine alone (RAS+; DICOM is LPS), never from the
array shape, so any voxel order lands on the same anatomy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from analytics.config import IngestLimits
from analytics.errors import MaskError
from analytics.ingest.header import bounded_inflate
from analytics.ingest.resample import resample_nearest, volume_affine
from analytics.ingest.structures import canonical_structure
from analytics.ingest.volume import Volume

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: TotalSegmentator's class ids for the structures HepaTrack reads (the other ids name
#: structures it does not measure). From ``totalsegmentator/map_to_binary.py``
#: (``class_map``: ``total_v1``, ``total``, ``total_mr``, ``liver_vessels``).
TOTALSEGMENTATOR_LABELS: dict[str, dict[int, str]] = {
    "totalsegmentator-v1": {1: "spleen", 5: "liver", 7: "aorta", 8: "inferior_vena_cava",
                            9: "portal_vein_and_splenic_vein"},
    "totalsegmentator-v2": {1: "spleen", 5: "liver", 52: "aorta", 63: "inferior_vena_cava",
                            64: "portal_vein_and_splenic_vein"},
    "totalsegmentator-mr": {1: "spleen", 5: "liver", 23: "aorta", 24: "inferior_vena_cava",
                            25: "portal_vein_and_splenic_vein"},
    "totalsegmentator-liver-vessels": {1: "liver_vessels", 2: "liver_tumor"},
}
#: TotalSegmentator's default task is ``total``: its v2 ids
TOTALSEGMENTATOR_LABELS["totalsegmentator"] = TOTALSEGMENTATOR_LABELS["totalsegmentator-v2"]

_CARET_LABEL = re.compile(rb'<Label\s+Key="(\d+)"[^>]*>\s*<!\[CDATA\[([^\]<>]{1,128})\]\]>')
_PAIR = re.compile(r"^\s*(\d{1,5})\s*[=:]\s*(.+?)\s*$")


def parse_label_table(text: str | Mapping[int, str] | None) -> dict[int, str] | None:
    """A label table from the user: ``"5=liver,1=spleen"`` or a named table.

    Parameters
    ----------
    text
        ``value=name`` pairs separated by commas or semicolons, a table name from
        :data:`TOTALSEGMENTATOR_LABELS` (``totalsegmentator-v2`` ...), a mapping, or None.

    Returns
    -------
    dict or None
        Label value -> structure name; None for empty input.

    Raises
    ------
    MaskError
        A pair that is not ``value=name``, a name that is not a structure HepaTrack reads,
        or an unknown table name.
    """
    if text is None:
        return None
    if isinstance(text, Mapping):
        pairs = {int(k): str(v) for k, v in text.items()}
    else:
        text = text.strip()
        if not text:
            return None
        named = TOTALSEGMENTATOR_LABELS.get(text.lower())
        if named is not None:
            return dict(named)
        pairs = {}
        for part in re.split(r"[,;]", text):
            if not part.strip():
                continue
            m = _PAIR.match(part)
            if m is None:
                known = ", ".join(sorted(TOTALSEGMENTATOR_LABELS))
                raise MaskError(f"label table: {part.strip()!r} is not value=name (expected "
                                f"e.g. 5=liver,1=spleen, or one of: {known})")
            pairs[int(m.group(1))] = m.group(2)
    unknown = [name for name in pairs.values() if canonical_structure(name) is None]
    if unknown:
        raise MaskError(f"label table: {', '.join(map(repr, unknown))} is not a structure "
                        "HepaTrack reads (liver, spleen, liver vessels, lesion, portal and "
                        "splenic vein, inferior vena cava, aorta, or a synonym)")
    return pairs or None


@dataclass(frozen=True)
class NiftiMask:
    """A NIfTI label map: voxels ``[k, j, i]`` and their index -> LPS affine."""

    data: np.ndarray  # [k, j, i]
    affine_lps: np.ndarray  # index (i, j, k) -> LPS mm
    shape_ijk: tuple[int, int, int]
    axcodes: str  # orientation of the file's axes, e.g. "RAS", "LAS", "LPS"
    extension_labels: dict[int, str]  # from a TotalSegmentator label-table extension

    def values(self) -> list[int]:
        """The non-zero label values present."""
        return [int(v) for v in np.unique(self.data) if v != 0]


def load_nifti(raw: bytes, what: str, limits: IngestLimits, *, header_only: bool = False
               ) -> NiftiMask:
    """Parse NIfTI-1/2 bytes (plain or gzip, inflation bounded).

    Parameters
    ----------
    header_only
        Skip reading the voxels (``data`` is then an empty array).

    Raises
    ------
    MaskError
        Not a readable NIfTI file, not 3-D, or an affine that is not invertible.
    """
    import nibabel as nib

    if raw[:2] == b"\x1f\x8b":
        raw = bounded_inflate(raw, limits.max_inflated_bytes, wbits=16 + 15, what=what)
    try:
        cls = nib.Nifti2Image if raw[4:8] in (b"n+2\0", b"ni2\0") else nib.Nifti1Image
        img = cls.from_bytes(raw)
        shape = tuple(int(n) for n in img.shape)
        data = np.zeros((0, 0, 0), np.uint8) if header_only else np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=float)
        ext = b"\n".join(e.get_content() if isinstance(e.get_content(), bytes) else b""
                         for e in img.header.extensions)
    except Exception as e:  # nibabel raises many types for a bad header
        raise MaskError(f"{what}: not a readable NIfTI file ({e})") from e
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
        data = data[..., 0] if data.ndim > 3 else data
    if len(shape) != 3:
        raise MaskError(f"{what}: NIfTI label map has shape {list(shape)}; expected 3-D")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise MaskError(f"{what}: NIfTI affine is not invertible; cannot place the mask")
    lps = _RAS_TO_LPS @ affine  # NIfTI voxel (i, j, k) -> RAS mm; LPS = diag(-1, -1, 1) RAS
    axcodes = "".join(nib.aff2axcodes(affine))
    labels = {int(k): v.decode("utf-8", "replace").strip()
              for k, v in _CARET_LABEL.findall(ext)}
    src = (np.zeros((0, 0, 0), np.uint8) if header_only
           else np.ascontiguousarray(np.transpose(np.asarray(data), (2, 1, 0))))
    return NiftiMask(data=src, affine_lps=lps, shape_ijk=shape,  # type: ignore[arg-type]
                     axcodes=axcodes, extension_labels=labels)


#: more distinct non-zero values than any label map holds (TotalSegmentator's has 117)
MAX_LABELS = 1000


def structure_labels(nm: NiftiMask, name: str | None, labels: Mapping[int, str] | None,
                     what: str) -> dict[int, str]:
    """Which label value is which structure (only structures HepaTrack reads).

    A binary mask named after its structure takes its name; else the user's table; else
    the table in the file. Raises MaskError when none names a structure.
    """
    values = nm.values()
    if values and (values[0] < 0 or len(values) > MAX_LABELS):
        # negative or thousands of values: intensities (a CT or MR volume), not labels
        raise MaskError(f"{what}: a NIfTI image (values {values[0]} to {values[-1]}, "
                        f"{len(values)} distinct), not a mask: images are taken as DICOM "
                        "series and NIfTI files only as masks; not stored")
    stem = PurePosixPath(name or "").name.split(".")[0] if name else ""
    if len(values) <= 1 and canonical_structure(stem):
        return dict.fromkeys(values or [1], stem)
    table = dict(labels) if labels else dict(nm.extension_labels)
    if not table and len(values) <= 1 and stem:
        raise MaskError(f"{what}: a binary mask named {stem!r}, which is not a structure "
                        "HepaTrack reads (liver, spleen, liver vessels, lesion, portal and "
                        "splenic vein, inferior vena cava, aorta); not stored")
    if not table:
        shown = f"{values[:12]}"[:-1] + (", ...]" if len(values) > 12 else "]")
        raise MaskError(f"{what}: NIfTI label map with labels {shown} but no label names: "
                        f"pass a label table (e.g. --labels 5=liver,1=spleen or "
                        f"--labels totalsegmentator-v2), or name a binary mask after its "
                        f"structure (e.g. liver.nii.gz)")
    used = {v: n for v, n in table.items() if canonical_structure(n)}
    if not used:
        raise MaskError(f"{what}: none of its labels names a structure HepaTrack reads "
                        f"(liver, spleen, liver vessels, lesion, vessel trunks, aorta); "
                        f"labels found: {values[:12]}{' ...' if len(values) > 12 else ''}")
    return used


def describe_grid(affine_lps: np.ndarray, shape_ijk: tuple[int, int, int],
                  axcodes: str | None = None) -> str:
    """A one-line grid description: voxels, spacing, orientation and LPS field of view."""
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    lo, hi = field_of_view(affine_lps, shape_ijk)
    fov = ", ".join(f"{ax} {a:.1f}..{b:.1f}" for ax, a, b in zip("xyz", lo, hi, strict=True))
    codes = f" {axcodes}" if axcodes else ""
    return (f"{'x'.join(str(n) for n in shape_ijk)} voxels of "
            f"{'x'.join(f'{s:.3g}' for s in spacing)} mm{codes}, field of view {fov} mm LPS")


def field_of_view(affine_lps: np.ndarray, shape_ijk: tuple[int, int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) LPS corners (mm) of the box the voxels cover (voxel edges, not centres)."""
    corners = np.array([[i, j, k, 1.0] for i in (-0.5, shape_ijk[0] - 0.5)
                        for j in (-0.5, shape_ijk[1] - 0.5) for k in (-0.5, shape_ijk[2] - 0.5)])
    pts = (affine_lps @ corners.T)[:3].T
    return pts.min(axis=0), pts.max(axis=0)


def same_field_of_view(a_affine: np.ndarray, a_shape: tuple[int, int, int],
                       b_affine: np.ndarray, b_shape: tuple[int, int, int]) -> bool:
    """True when two grids cover the same box in the patient, to half the larger voxel."""
    a_lo, a_hi = field_of_view(a_affine, a_shape)
    b_lo, b_hi = field_of_view(b_affine, b_shape)
    voxel = np.maximum(np.abs(a_affine[:3, :3]).max(axis=1), np.abs(b_affine[:3, :3]).max(axis=1))
    tol = 0.5 * voxel + 0.01
    return bool(np.all(np.abs(a_lo - b_lo) <= tol) and np.all(np.abs(a_hi - b_hi) <= tol))


def volume_grid(volume: Volume) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The image volume's index -> LPS affine and its (i, j, k) shape."""
    nz, ny, nx = volume.shape
    return volume_affine(volume), (nx, ny, nz)


def read_nifti(raw: bytes, reference: Volume, what: str, name: str | None,
               labels: Mapping[int, str] | None, limits: IngestLimits
               ) -> dict[str, np.ndarray]:
    """The NIfTI's structures on ``reference``'s grid, placed through the affine.

    Raises
    ------
    MaskError
        Unreadable file, no label names, or a grid that does not cover the image series'
        field of view (both grids are named).
    """
    nm = load_nifti(raw, what, limits)
    table = structure_labels(nm, name, labels, what)
    ref_affine, ref_shape = volume_grid(reference)
    if not same_field_of_view(nm.affine_lps, nm.shape_ijk, ref_affine, ref_shape):
        mine = describe_grid(nm.affine_lps, nm.shape_ijk, nm.axcodes)
        raise MaskError(f"{what}: its grid ({mine}) does not cover the image series' grid "
                        f"({describe_grid(ref_affine, ref_shape)}); expected a mask of this "
                        f"series")
    masks: dict[str, np.ndarray] = {}
    for value, label in table.items():
        structure = canonical_structure(label)
        if structure is None:
            continue
        mask = resample_nearest(nm.data == value, nm.affine_lps, reference)
        masks[structure] = masks[structure] | mask if structure in masks else mask
    return masks
