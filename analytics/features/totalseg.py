"""TotalSegmentator, the preferred automatic segmentation when it is installed *with its
weights* (an optional extra, detected at run time; nothing is downloaded), and the
hand-off to it: canonical (S, P, L) arrays to NIfTI and back.

Engines (``FeatureSettings.segmentation``, ``hepatrack features --segmentation``):
``auto`` uses TotalSegmentator when it is available for the series' modality, else the
classical pipeline on CT and nothing on MR; ``classical`` is the classical pipeline (CT
only); ``totalsegmentator`` requires it. The classical pipeline never runs on MR: it
searches Hounsfield-unit windows, which MR intensities are not.

TotalSegmentator runs its ``total`` task on CT and ``total_mr`` on MR, restricted to the
liver and spleen (``roi_subset``), with ``fast`` (its 3 mm models) unless a CUDA GPU is
present. It would download missing weights on first use, so HepaTrack calls it only when
every weights folder that run needs is already on disk (see :func:`required_datasets`).
Facts from TotalSegmentator's sources (``map_to_binary.py``, ``python_api.py``,
``map_tasks_config.py``; v2.2 to v2.18): both class maps give spleen 1 and liver 5; the
``total`` fast model is dataset 297 and its ``roi_subset`` crop model 298; ``total_mr``'s
fast model (also its crop model) is 732 before v2.5 and 852 from v2.5.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytics.errors import FeatureError, MissingExtraError
from analytics.ingest.resample import index_affine
from analytics.store.dicom import delivered_segments

TOTALSEG_METHOD = "totalsegmentator"
CLASSICAL = "classical"
#: method name of the classical pipeline (``analytics.features.segmentation``); defined
#: here, with the engine names, so the engine chooser needs no import of the pipeline
CLASSICAL_METHOD = "classical-v4"
ENGINES = ("auto", CLASSICAL, TOTALSEG_METHOD)
#: TotalSegmentator's task for each modality
TASKS = {"CT": "total", "MR": "total_mr"}
#: class ids of the structures used here, per task (its ``class_map``)
TASK_LABELS = {"total": {"spleen": 1, "liver": 5}, "total_mr": {"spleen": 1, "liver": 5}}
#: TotalSegmentator's ``total`` task labels of the organs used here (its class map)
TOTALSEG_LABELS = TASK_LABELS["total"]
ROI_SUBSET = ["liver", "spleen"]
INSTALL_HINT = ("install it into HepaTrack's environment (offline: pip install --no-index "
                "--find-links WHEELHOUSE 'hepatrack[totalsegmentator]') and copy its weights "
                "to $TOTALSEG_HOME_DIR/nnunet/results (default ~/.totalsegmentator); "
                "README: TotalSegmentator (optional)")
#: why an MR series without a delivered liver mask has no organ values
MR_NEEDS_MASK = ("needs a liver mask (MR has no automatic segmentation here: deliver a "
                 "SEG/RTSTRUCT/NIfTI mask or install TotalSegmentator)")
MIN_VERSION = (2, 2)


@dataclass(frozen=True)
class TotalSegStatus:
    """Whether TotalSegmentator can run here for one modality, and how.

    Attributes
    ----------
    available
        Installed, supported version, and every weights folder of the run on disk.
    reason
        Why not (empty when available).
    version
        The installed TotalSegmentator version, or None.
    task, fast
        The task it runs for the modality and whether with ``fast`` (no CUDA GPU).
    weights_dir
        Where its weights are looked for.
    notes
        Things a site should know.
    """

    available: bool
    reason: str
    version: str | None
    task: str
    fast: bool
    weights_dir: Path
    notes: tuple[str, ...] = ()

    @property
    def engine(self) -> str:
        """The engine label recorded with every value it gives."""
        return engine_label(self.version, self.task, self.fast)


def engine_label(version: str | None, task: str, fast: bool) -> str:
    """``"TotalSegmentator 2.18.0 total --fast"``: engine, version, task and mode."""
    return f"TotalSegmentator {version or '?'} {task}" + (" --fast" if fast else "")


def _installed_version() -> str | None:
    if importlib.util.find_spec("totalsegmentator") is None:
        return None
    try:
        return importlib.metadata.version("TotalSegmentator")
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_available() -> bool:
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def totalseg_home() -> Path:
    """TotalSegmentator's home folder: ``$TOTALSEG_HOME_DIR`` or ``~/.totalsegmentator``."""
    env = os.environ.get("TOTALSEG_HOME_DIR")
    return Path(env) if env else Path.home() / ".totalsegmentator"


def weights_dir() -> Path:
    """Where TotalSegmentator reads its weights (``$TOTALSEG_WEIGHTS_PATH`` if set)."""
    env = os.environ.get("TOTALSEG_WEIGHTS_PATH")
    return Path(env) if env else totalseg_home() / "nnunet" / "results"


def required_datasets(task: str, fast: bool, version: str) -> tuple[int, ...]:
    """nnU-Net dataset ids a liver/spleen ``roi_subset`` run of ``task`` loads.

    Raises
    ------
    FeatureError
        If ``task`` is not ``total`` or ``total_mr``.
    """
    if task == "total":
        return (297, 298) if fast else (291, 292, 293, 294, 295, 298)
    if task == "total_mr":
        base = 850 if _version_tuple(version) >= (2, 5) else 730
        return (base + 2,) if fast else (base, base + 1, base + 2)
    raise FeatureError(f"TotalSegmentator task {task!r}: expected total or total_mr")


def _missing_weights(folder: Path, ids: tuple[int, ...]) -> list[int]:
    present = set()
    if folder.is_dir():
        for d in folder.iterdir():
            m = re.match(r"Dataset(\d+)_", d.name)
            if m and d.is_dir() and any(d.rglob("*.pth")):
                present.add(int(m.group(1)))
    return [i for i in ids if i not in present]


def _usage_stats_off() -> bool:
    """True if TotalSegmentator's ``config.json`` switches its usage statistics off."""
    try:
        text = (totalseg_home() / "config.json").read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r'"send_usage_stats"\s*:\s*false', text) is not None


def totalsegmentator_status(modality: str = "CT") -> TotalSegStatus:
    """Whether TotalSegmentator can segment ``modality`` (``CT`` or ``MR``) here."""
    task = TASKS.get((modality or "").upper(), "total")
    folder = weights_dir()
    version = _installed_version()
    if version is None:
        return TotalSegStatus(False, "TotalSegmentator is not installed", None, task, True,
                              folder)
    if _version_tuple(version) < MIN_VERSION:
        return TotalSegStatus(False, f"TotalSegmentator {version} is older than 2.2 (no "
                              "total_mr task)", version, task, True, folder)
    fast = not _cuda_available()
    missing = _missing_weights(folder, required_datasets(task, fast, version))
    if missing:
        names = ", ".join(f"Dataset{i}_*" for i in missing)
        # the folder itself is in ``weights_dir``: a reason may be stored, a path may not
        return TotalSegStatus(False, f"TotalSegmentator {version} is installed but the "
                              f"weights of its {task} task are not in its weights folder "
                              f"($TOTALSEG_HOME_DIR/nnunet/results or $TOTALSEG_WEIGHTS_PATH: "
                              f"{names}); HepaTrack never downloads them", version, task,
                              fast, folder)
    if not _usage_stats_off():
        # it would report each run to its authors' server: nothing leaves the site unasked
        return TotalSegStatus(False, f"TotalSegmentator {version} would send usage "
                              "statistics after every run: set \"send_usage_stats\": false "
                              "in $TOTALSEG_HOME_DIR/config.json", version, task, fast, folder)
    return TotalSegStatus(True, "", version, task, fast, folder)


def totalsegmentator_available(modality: str = "CT") -> bool:
    """True if TotalSegmentator is installed with the weights it needs for ``modality``."""
    return totalsegmentator_status(modality).available


def choose_engine(method: str, modality: str) -> str | None:
    """The engine a run of ``method`` uses on ``modality``: ``totalsegmentator``,
    ``classical``, or None (MR without TotalSegmentator: it needs a delivered mask).

    Raises
    ------
    FeatureError
        If ``method`` is unknown, or ``classical`` is asked for on MR.
    MissingExtraError
        If ``totalsegmentator`` is asked for and cannot run (says why and how to install).
    """
    if method not in ENGINES:
        raise FeatureError(f"segmentation method {method!r}: expected auto, classical or "
                           "totalsegmentator")
    modality = (modality or "").upper()
    if method == CLASSICAL:
        if modality != "CT":
            raise FeatureError(f"classical segmentation is CT-only (modality {modality}): "
                               "it searches Hounsfield-unit windows")
        return CLASSICAL
    status = totalsegmentator_status(modality)
    if status.available:
        return TOTALSEG_METHOD
    if method == TOTALSEG_METHOD:
        raise MissingExtraError(f"segmentation 'totalsegmentator' asked for, but "
                                f"{status.reason}: {INSTALL_HINT}", hint=INSTALL_HINT)
    return CLASSICAL if modality == "CT" else None


def engine_summary(method: str = "auto") -> dict[str, object]:
    """Which engine ``method`` would use on CT and on MR, and TotalSegmentator's state."""
    out: dict[str, object] = {"requested": method}
    for modality in ("CT", "MR"):
        status = totalsegmentator_status(modality)
        try:
            engine = choose_engine(method, modality)
        except FeatureError as e:
            engine, why = None, str(e)
        else:
            why = "" if engine is not None else MR_NEEDS_MASK
        out[modality] = {
            "engine": (status.engine if engine == TOTALSEG_METHOD else
                       CLASSICAL_METHOD if engine == CLASSICAL else None),
            "reason": why,
            "totalsegmentator": {"available": status.available, "reason": status.reason,
                                 "version": status.version, "task": status.task,
                                 "weights_dir": str(status.weights_dir),
                                 "notes": list(status.notes)}}
    return out


def series_needing_mask(store, series_uids: list[str]) -> dict[str, str]:
    """Stored series that will have no liver values for want of a mask: an MR series
    without a delivered liver mask where TotalSegmentator cannot run for MR.

    Returns
    -------
    dict
        Series UID -> :data:`MR_NEEDS_MASK`, for those of ``series_uids`` concerned.
    """
    if not series_uids or choose_engine("auto", "MR") is not None:
        return {}
    out = {}
    for uid, modality, delivered in delivered_segments(store, series_uids):
        if (modality or "").upper() != "MR":
            continue
        if not any("liver" in (segments or {}) for segments in delivered):
            out[uid] = MR_NEEDS_MASK
    return out


# --------------------------------------------------------------------------- hand-off
def canonical_affine(origin_mm, direction, spacing_mm, perm, flips, shape) -> np.ndarray:
    """4x4 affine: canonical index (S, P, L axes) -> patient LPS position, mm.

    ``origin_mm``, ``direction`` and ``spacing_mm`` describe the volume's own ``[z, y, x]``
    grid (as :class:`~analytics.ingest.volume.Volume`); ``perm``, ``flips`` and ``shape``
    (of the canonical array) the :class:`~analytics.features.geometry.Orientation`.
    """
    native = index_affine(origin_mm, direction, spacing_mm)  # (i, j, k) -> LPS
    m = np.zeros((4, 4))
    m[3, 3] = 1.0
    for k in range(3):
        native_axis = 2 - perm[k]  # numpy axis a is affine index 2 - a
        m[native_axis, k] = -1.0 if flips[k] else 1.0
        m[native_axis, 3] = shape[k] - 1 if flips[k] else 0.0
    return native @ m


_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def canonical_to_nifti(image: np.ndarray, spacing: tuple[float, float, float],
                       affine_lps: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """A canonical (S, P, L) array as NIfTI voxel data and its RAS+ affine.

    NIfTI world axes point to the patient's right, anterior and superior; the canonical
    array's axes run inferior->superior, anterior->posterior, right->left, so the voxel
    axes become (x = left->right, y = posterior->anterior, z = inferior->superior).

    Parameters
    ----------
    image
        Canonical array.
    spacing
        Canonical spacing (S, P, L), mm.
    affine_lps
        The canonical array's index -> LPS affine (:func:`canonical_affine`); with it the
        NIfTI affine places every voxel where the scanner did (obliquity included).
        Without it the affine is a diagonal at the origin (orientation only).
    """
    data = np.ascontiguousarray(np.transpose(image, (2, 1, 0))[::-1, ::-1, :])
    if affine_lps is None:
        return data, np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    n_l, n_p = image.shape[2], image.shape[1]
    # NIfTI voxel (x, y, z) is canonical (s, p, l) = (z, n_p - 1 - y, n_l - 1 - x)
    to_canon = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, n_p - 1.0],
                         [-1.0, 0.0, 0.0, n_l - 1.0], [0.0, 0.0, 0.0, 1.0]])
    return data, _LPS_TO_RAS @ affine_lps @ to_canon


def nifti_to_canonical(data: np.ndarray) -> np.ndarray:
    """Inverse of :func:`canonical_to_nifti` for data on the same voxel grid."""
    return np.ascontiguousarray(np.transpose(np.asarray(data)[::-1, ::-1, :], (2, 1, 0)))


def run_totalsegmentator(image: np.ndarray, spacing: tuple[float, float, float], *,
                         modality: str = "CT", affine_lps: np.ndarray | None = None
                         ) -> tuple[dict[str, np.ndarray], str]:
    """Liver and spleen masks from TotalSegmentator on a canonical image (weights local).

    Returns
    -------
    masks, engine
        Canonical boolean masks by organ, and the engine label (version, task, mode).

    Raises
    ------
    MissingExtraError
        If TotalSegmentator or the weights of this run are not installed.
    FeatureError
        If it fails, or returns a label map on another grid than the image it was given.
    """
    import tempfile

    import nibabel as nib

    status = totalsegmentator_status(modality)
    if not status.available:
        raise MissingExtraError(f"{status.reason}: {INSTALL_HINT}", hint=INSTALL_HINT)
    from totalsegmentator.python_api import totalsegmentator  # type: ignore[import-not-found]

    data, affine = canonical_to_nifti(image.astype(np.float32), spacing, affine_lps)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "image.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), src)
        try:
            out = totalsegmentator(str(src), None, ml=True, task=status.task,
                                   fast=status.fast, roi_subset=list(ROI_SUBSET), quiet=True,
                                   device="cpu" if status.fast else "gpu")
        except Exception as e:  # a third-party run: its failure is the series', not a bug
            raise FeatureError(f"{status.engine} failed: {type(e).__name__}: {e}") from e
    labels = np.asarray(out.dataobj)
    if labels.shape != data.shape or not np.allclose(out.affine, affine, atol=1e-3):
        raise FeatureError(f"{status.engine} returned a label map of shape {labels.shape} "
                           f"on another grid than its input {data.shape}")
    canon = nifti_to_canonical(labels)
    return ({name: canon == value for name, value in TASK_LABELS[status.task].items()},
            status.engine)

