"""The feature registry: which imaging biomarkers the extraction computes, and where the
masks behind each value came from.

Each biomarker's label, unit, direction, normal range and definition live in the
vocabulary (:mod:`analytics.vocabulary.imaging`); this module gives the extraction and the
exports their view of it (:data:`FEATURES`, :func:`feature_def`) and the ``mask_source``
words. Core names are fixed (ARCHITECTURE.md); others may be added, never renamed.
"""

from __future__ import annotations

from analytics.vocabulary import (
    CORE_FEATURES,
    CT,
    HIGHER_IS_WORSE,
    IMAGING_COLUMNS,
    LOWER_IS_WORSE,
    MR,
    NEUTRAL,
    PHASE_CODES,
    RADIOMICS_PREFIX,
    STEATOSIS_CODES,
    Column,
    imaging_feature,
)

__all__ = [
    "AUTOMATIC", "CORE_FEATURES", "CT", "FEATURES", "HEADER", "HIGHER_IS_WORSE",
    "LOWER_IS_WORSE", "MASK_SOURCES", "MR", "NEUTRAL", "NIFTI", "NO_MASK", "PHASE_CODES",
    "RADIOMICS_PREFIX", "REJECTED", "RTSTRUCT", "SEG", "STEATOSIS_CODES", "WITHHELD",
    "applies_to", "feature_def",
]

#: where the masks behind a feature came from: its ``mask_source`` flag and its
#: ``<feature>__source`` column in the features export
SEG, RTSTRUCT, NIFTI = "seg", "rtstruct", "nifti"  # delivered with the images
AUTOMATIC = "automatic"  # HepaTrack's own segmentation (no mask was delivered)
WITHHELD = "withheld"  # a delivered mask failed and no automatic one was used: no value
REJECTED = "rejected"  # a clinician rejected the automatic mask: no value
HEADER = "header"  # needs no mask: read from the DICOM header at ingest
NO_MASK = "none"  # a mask the feature needs is absent
MASK_SOURCES = (SEG, RTSTRUCT, NIFTI, AUTOMATIC, WITHHELD, REJECTED, HEADER, NO_MASK)

#: every registered imaging feature, by name
FEATURES: dict[str, Column] = IMAGING_COLUMNS


def feature_def(name: str) -> Column:
    """The definition of imaging feature ``name``.

    IBSI radiomics features (``radiomics_<roi>_<mirp name>``) get a generic definition.

    Raises
    ------
    FeatureError
        If ``name`` is not a registered feature.
    """
    return imaging_feature(name)


def applies_to(name: str, modality: str) -> bool:
    """True if ``name`` is defined for ``modality`` (``"CT"`` or ``"MR"``)."""
    return modality.upper() in feature_def(name).modalities
