"""Removing a stored series: its rows in one transaction, then its files.

A series stored broken (a stray file, a transfer cut short) is never scored, but until it
is removed it stays on the patient's record. Removal deletes the series' instances, masks,
mask reviews, feature values and runs, and the patient's cached predictions (they were
computed from what the store held); its study goes too when no other series is left in it
(with the study's identity hold, if it was held). The files are deleted once the rows are
committed: a crash in between leaves orphans that :func:`~analytics.store.instances.
sweep_orphans` removes, never a row without its file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from analytics.config import Settings
from analytics.errors import StoreError
from analytics.store.db import Store
from analytics.store.instances import place_files, remove_files
from analytics.store.key_images import KEY_PREFIX
from analytics.store.schema import (
    Blob,
    Feature,
    FeatureRun,
    IdentityHold,
    Instance,
    Mask,
    MaskRejection,
    Patient,
    Prediction,
    Series,
    Study,
)

__all__ = ["RemovedSeries", "SeriesState", "remove_series", "retag_study", "series_state",
           "unfinished_series"]


@dataclass(frozen=True)
class SeriesState:
    """Who a stored series belongs to and its status."""

    series_uid: str
    patient: str | None  # None while its study is held as an identity conflict
    status: str
    status_reason: str | None
    n_instances: int


def series_state(store: Store, series_uid: str) -> SeriesState | None:
    """The stored series' patient and status, None if it is not stored."""
    with store.session() as s:
        row = s.execute(
            select(Series.series_uid, Patient.pseudonym, Series.status, Series.status_reason,
                   Series.n_instances)
            .join(Study, Series.study_id == Study.id)
            .outerjoin(Patient, Study.patient_id == Patient.id)
            .where(Series.series_uid == series_uid)).first()
    return SeriesState(*row) if row is not None else None


def unfinished_series(store: Store) -> list[SeriesState]:
    """Every stored series that is not complete (invalid or incomplete), by patient."""
    with store.session() as s:
        rows = s.execute(
            select(Series.series_uid, Patient.pseudonym, Series.status, Series.status_reason,
                   Series.n_instances)
            .join(Study, Series.study_id == Study.id)
            .outerjoin(Patient, Study.patient_id == Patient.id)
            .where(Series.status != "complete")
            .order_by(Patient.pseudonym, Study.study_date, Series.id)).all()
    return [SeriesState(*r) for r in rows]


@dataclass(frozen=True)
class RemovedSeries:
    """What the removal of one series deleted."""

    series_uid: str
    patient: str | None
    instances: int
    masks: int
    feature_values: int
    study_removed: bool
    files_removed: int

    def as_dict(self) -> dict[str, Any]:
        return {"series_uid": self.series_uid, "patient": self.patient,
                "instances": self.instances, "masks": self.masks,
                "feature_values": self.feature_values, "study_removed": self.study_removed,
                "files_removed": self.files_removed}


def remove_series(store: Store, settings: Settings, series_uid: str) -> RemovedSeries:
    """Delete a stored series (rows in one transaction, then its files).

    Raises
    ------
    StoreError
        If no series has this UID.
    """
    with store.session() as s:
        series = s.execute(select(Series).where(Series.series_uid == series_uid)).scalar()
        if series is None:
            raise StoreError(f"series {series_uid}: not in the store",
                             hint="pick a series UID from the patient's series table")
        study = s.get(Study, series.study_id)
        patient = s.get(Patient, study.patient_id) if study.patient_id else None
        paths = list(s.execute(select(Instance.path).where(Instance.series_id == series.id))
                     .scalars())
        mask_ids = list(s.execute(select(Mask.id).where(Mask.series_id == series.id)).scalars())
        paths += [p for p in s.execute(select(Mask.path).where(Mask.series_id == series.id))
                  .scalars() if p]
        n_features = int(s.execute(select(func.count(Feature.id))
                                   .where(Feature.series_id == series.id)).scalar() or 0)
        s.execute(delete(Feature).where(Feature.series_id == series.id))
        s.execute(delete(FeatureRun).where(FeatureRun.series_id == series.id))
        if mask_ids:
            s.execute(delete(MaskRejection).where(MaskRejection.mask_id.in_(mask_ids)))
            s.execute(delete(Mask).where(Mask.id.in_(mask_ids)))
        n_instances = s.execute(delete(Instance).where(Instance.series_id == series.id)
                                ).rowcount or 0
        s.execute(delete(Blob).where(Blob.key == KEY_PREFIX + series_uid))  # its key image
        s.delete(series)
        s.flush()
        left = s.execute(select(func.count(Series.id)).where(Series.study_id == study.id)
                         ).scalar()
        if not left:
            s.execute(delete(IdentityHold).where(IdentityHold.study_id == study.id))
            s.delete(study)
        if patient is not None:  # computed from what the store held: computed again
            s.execute(delete(Prediction).where(Prediction.patient_id == patient.id))
        result = RemovedSeries(series_uid, patient.pseudonym if patient else None,
                               int(n_instances), len(mask_ids), n_features, not left, 0)
    removed = remove_files(settings, paths)
    return RemovedSeries(**{**result.__dict__, "files_removed": removed})


def retag_study(store: Store, settings: Settings, study_uid: str, old: str, new: str) -> int:
    """Write pseudonym ``new`` in place of ``old`` in the stored files of a study.

    A study held as an identity conflict was de-identified under the pseudonym of the
    stored patient of its Patient ID; filed under another patient, its files (and masks
    made from them) must not carry that patient's pseudonym. Pseudonyms are fixed-length
    keyed tokens (``HT-`` and 16 hex digits), so the bytes are swapped in place: no
    length or offset changes, no parse of the file. Each file is replaced atomically.
    Returns the number of files rewritten (0 when the two differ in length, as for a
    store kept without de-identification, where the IDs are the real ones).
    """
    if len(old) != len(new) or old == new or not (old.isascii() and new.isascii()):
        return 0
    with store.session() as s:
        series_ids = select(Series.id).join(Study, Series.study_id == Study.id).where(
            Study.study_uid == study_uid)
        paths = list(s.execute(select(Instance.path).where(Instance.series_id.in_(series_ids))
                               ).scalars())
        paths += [p for p in s.execute(select(Mask.path).where(
            Mask.series_id.in_(series_ids), Mask.path.like("%.dcm"))).scalars() if p]
    changed = []
    for rel in paths:
        data = (settings.home / rel).read_bytes()
        if old.encode() in data:
            changed.append((rel, data.replace(old.encode(), new.encode())))
    place_files(settings, changed)
    return len(changed)
