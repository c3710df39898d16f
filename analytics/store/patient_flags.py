"""Facts about patients that the cohort list flags (for example: an automatic
segmentation was measured on one of their series)."""

from __future__ import annotations

from sqlalchemy import select

from analytics.store.db import Store
from analytics.store.schema import Mask, Patient, Series, Study

__all__ = ["automatic_segmentation_patients"]


def automatic_segmentation_patients(store: Store) -> set[str]:
    """Pseudonyms of patients with at least one series segmented automatically."""
    with store.session() as s:
        rows = s.execute(select(Patient.pseudonym).distinct()
                         .join(Study, Study.patient_id == Patient.id)
                         .join(Series, Series.study_id == Study.id)
                         .join(Mask, Mask.series_id == Series.id)
                         .where(Mask.automatic.is_(True))).scalars()
        return set(rows)
