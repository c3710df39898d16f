"""TotalSegmentator, the preferred automatic segmentation when it is installed *with its
weights* (an optional extra, detected at run time; nothing is downloaded), and the
hand-off to it: canonical (S, P, L) arrays to NIfTI and back.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

TOTALSEG_METHOD = "totalsegmentator"


def totalsegmentator_available() -> bool:
    """True if TotalSegmentator is importable and its weights are already on disk."""
    if importlib.util.find_spec("totalsegmentator") is None:
        return False
    home = Path(os.environ.get("TOTALSEG_HOME_DIR", Path.home() / ".totalsegmentator"))
    weights = home / "nnunet" / "results"
    return weights.is_dir() and any(weights.iterdir())


#: TotalSegmentator's ``total`` task labels of the organs used here (its class map)
TOTALSEG_LABELS = {"spleen": 1, "liver": 5}


def canonical_to_nifti(image: np.ndarray, spacing: tuple[float, float, float]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """A canonical (S, P, L) array as NIfTI voxel data and its RAS+ affine.

    NIfTI world axes point to the patient's right, anterior and superior; the canonical
    array's axes run inferior->superior, anterior->posterior, right->left, so the voxel
    axes become (x = left->right, y = posterior->anterior, z = inferior->superior).
    """
    data = np.ascontiguousarray(np.transpose(image, (2, 1, 0))[::-1, ::-1, :])
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    return data, affine


def nifti_to_canonical(data: np.ndarray) -> np.ndarray:
    """Inverse of :func:`canonical_to_nifti` for data on the same voxel grid."""
    return np.ascontiguousarray(np.transpose(np.asarray(data)[::-1, ::-1, :], (2, 1, 0)))


def run_totalsegmentator(image: np.ndarray, spacing: tuple[float, float, float]
                         ) -> dict[str, np.ndarray]:
    """Liver and spleen masks from TotalSegmentator on a canonical image (weights local)."""
    import tempfile

    import nibabel as nib
    from totalsegmentator.python_api import totalsegmentator  # type: ignore[import-not-found]

    data, affine = canonical_to_nifti(image.astype(np.float32), spacing)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ct.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), src)
        out = totalsegmentator(str(src), None, roi_subset=["liver", "spleen"], ml=True,
                               quiet=True)
        labels = nifti_to_canonical(np.asarray(out.dataobj))
    return {name: labels == value for name, value in TOTALSEG_LABELS.items()}
