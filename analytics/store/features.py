"""Features, feature runs and automatic masks in the store.

The batch client writes one series' outcome in ONE transaction: it opens the session and
passes it to :func:`measured_mask_id`, :func:`replace_features` and :func:`save_run` (and
the review's :func:`analytics.store.mask_reviews.feature_states` /
:func:`~analytics.store.mask_reviews.set_feature_state`), so nothing is half-written when
one of them fails. The worker side reads what it needs with its own short sessions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from analytics.store.db import Store
from analytics.store.schema import Feature, FeatureRun, Instance, Mask, Patient, Series, Study

__all__ = [
    "AutoSegTarget",
    "FeatureExportRows",
    "FeatureRow",
    "StoredMask",
    "auto_mask_row",
    "auto_seg_target",
    "done_run_settings",
    "feature_export_rows",
    "instance_paths",
    "latest_auto_mask_in",
    "latest_run_mask",
    "measured_mask_id",
    "replace_features",
    "save_run",
    "seg_paths",
    "series_id",
    "series_ids",
    "series_phase",
]


@dataclass(frozen=True)
class StoredMask:
    """One ``masks`` row: a delivered or automatic mask of a stored series."""

    id: int
    series_id: int
    format: str
    path: str | None
    sop_instance_uid: str | None
    content_sha256: str
    segments: dict[str, Any]
    automatic: bool
    method: str | None

    @classmethod
    def of(cls, row: Mask) -> StoredMask:
        return cls(id=row.id, series_id=row.series_id, format=row.format, path=row.path,
                   sop_instance_uid=row.sop_instance_uid, content_sha256=row.content_sha256,
                   segments=dict(row.segments or {}), automatic=bool(row.automatic),
                   method=row.method)


@dataclass(frozen=True)
class AutoSegTarget:
    """Where an automatic SEG of a series goes, and the one already stored (if any)."""

    series_id: int
    source_key: str
    stored_path: str | None = None
    stored_sop_instance_uid: str | None = None


@dataclass(frozen=True)
class FeatureRow:
    """One feature value to store (``flags`` None when there is nothing to say)."""

    name: str
    value: float | None
    unit: str
    flags: dict[str, Any] | None = None


# --------------------------------------------------------------------------- series
def series_phase(store: Store, series_uid: str) -> tuple[str | None, dict[str, Any]] | None:
    """``(contrast_phase, geometry)`` stored for the series at ingest, None if unknown."""
    with store.session() as s:
        row = s.execute(select(Series.contrast_phase, Series.geometry).where(
            Series.series_uid == series_uid)).first()
    if row is None:
        return None
    return row.contrast_phase, dict(row.geometry or {})


def series_ids(s: Session, series_uids: Sequence[str] | None) -> list[tuple[int, str] | None]:
    """``(id, uid)`` of each requested series (None where unknown); every complete CT/MR
    series filed under a patient (none held as an identity conflict) when ``series_uids`` is
    None (ultrasound is measured with ROIs, :mod:`analytics.store.ultrasound`)."""
    if series_uids is None:
        return [(r.id, r.series_uid) for r in s.execute(
            select(Series.id, Series.series_uid).join(Study, Series.study_id == Study.id)
            .where(Series.status == "complete", Study.patient_id.is_not(None),
                   Series.modality != "US")
            .order_by(Series.id)).all()]
    out: list[tuple[int, str] | None] = []
    for uid in series_uids:
        row = s.execute(select(Series.id, Series.series_uid).where(
            Series.series_uid == uid)).first()
        out.append((row.id, row.series_uid) if row is not None else None)
    return out


def series_id(s: Session, series_uid: str) -> int | None:
    """The row id of a stored series, None if it is not in the store."""
    return s.scalar(select(Series.id).where(Series.series_uid == series_uid))


def instance_paths(store: Store, series_id: int) -> dict[str, str]:
    """SOP Instance UID -> stored file path (relative to the home) of a series."""
    with store.session() as s:
        return dict(s.execute(select(Instance.sop_instance_uid, Instance.path)
                              .where(Instance.series_id == series_id)).all())


# --------------------------------------------------------------------------- runs
def done_run_settings(s: Session, extractor_version: str) -> dict[int, dict[str, Any]]:
    """Series id -> settings of its finished run of ``extractor_version``."""
    return {r.series_id: dict(r.settings or {}) for r in s.scalars(select(FeatureRun).where(
        FeatureRun.extractor_version == extractor_version, FeatureRun.status == "done"))}


def save_run(s: Session, series_id: int, extractor_version: str, *, status: str,
             reason: str | None, seconds: float, settings: dict[str, Any],
             finished_at: dt.datetime) -> None:
    """Create or update the series' run of ``extractor_version`` (in the caller's
    transaction)."""
    run = s.scalar(select(FeatureRun).where(FeatureRun.series_id == series_id,
                                            FeatureRun.extractor_version == extractor_version))
    if run is None:
        run = FeatureRun(series_id=series_id, extractor_version=extractor_version, status=status)
        s.add(run)
    run.seconds = seconds
    run.finished_at = finished_at
    run.status, run.reason, run.settings = status, reason, settings


def replace_features(s: Session, series_id: int, extractor_version: str,
                     rows: Sequence[FeatureRow], mask_id: int | None) -> None:
    """Replace the series' features of ``extractor_version`` by ``rows`` (in the caller's
    transaction)."""
    s.execute(delete(Feature).where(Feature.series_id == series_id,
                                    Feature.extractor_version == extractor_version))
    for row in rows:
        s.add(Feature(series_id=series_id, name=row.name, value=row.value, unit=row.unit,
                      extractor_version=extractor_version, mask_id=mask_id, flags=row.flags))


# --------------------------------------------------------------------------- masks
def measured_mask_id(s: Session, series_id: int, auto: dict[str, Any] | None) -> int | None:
    """The masks row the features were computed on: the first delivered mask, or the
    automatic one (its row created once per content)."""
    if auto is None:
        row = s.scalar(select(Mask).where(Mask.series_id == series_id,
                                          Mask.automatic.is_(False)).order_by(Mask.id))
        return row.id if row is not None else None
    return auto_mask_row(s, series_id, auto).id


def auto_mask_row(s: Session, series_id: int, auto: dict[str, Any]) -> StoredMask:
    """The ``masks`` row of an automatic mask set, added once per digest (client side)."""
    row = s.scalar(select(Mask).where(Mask.series_id == series_id,
                                      Mask.content_sha256 == auto["sha256"]))
    if row is None:
        row = Mask(series_id=series_id, format=auto.get("format", "auto"),
                   path=auto.get("path"), sop_instance_uid=auto.get("sop_instance_uid"),
                   content_sha256=auto["sha256"], segments=auto["segments"], automatic=True,
                   method=auto["method"])
        s.add(row)
        s.flush()
    elif row.path is None and auto.get("path"):
        row.format, row.path = "seg", auto["path"]
        row.sop_instance_uid = auto.get("sop_instance_uid")
    return StoredMask.of(row)


def auto_seg_target(store: Store, series_uid: str, sha256: str) -> AutoSegTarget | None:
    """Where the automatic SEG of digest ``sha256`` goes, with the file already stored for
    it (if any); None if the series is not in the store."""
    with store.session() as s:
        series = s.scalar(select(Series).where(Series.series_uid == series_uid))
        if series is None:
            return None
        stored = s.scalar(select(Mask).where(Mask.series_id == series.id,
                                             Mask.content_sha256 == sha256))
        if stored is not None and stored.path:
            return AutoSegTarget(series.id, series.source_key, stored.path,
                                 stored.sop_instance_uid)
        return AutoSegTarget(series.id, series.source_key)


def latest_run_mask(s: Session, series_id: int) -> tuple[StoredMask, str] | None:
    """The automatic mask of the series' newest finished feature run and that run's
    extractor version, or None when that run used no automatic mask."""
    run = s.scalar(select(FeatureRun).where(FeatureRun.series_id == series_id,
                                            FeatureRun.status == "done")
                   .order_by(FeatureRun.finished_at.desc(), FeatureRun.id.desc()).limit(1))
    mask_id = (run.settings or {}).get("auto_mask_id") if run is not None else None
    if mask_id is None:
        return None
    mask = s.get(Mask, int(mask_id))
    if mask is None or mask.series_id != series_id or not mask.automatic:
        return None
    return StoredMask.of(mask), run.extractor_version


def latest_auto_mask_in(s: Session, series_id: int) -> StoredMask | None:
    """The automatic mask of the series' newest finished feature run (the one measured),
    or None when that run used no automatic mask."""
    found = latest_run_mask(s, series_id)
    return found[0] if found is not None else None


# --------------------------------------------------------------------------- exports
class SeriesIdRow(NamedTuple):
    series_id: int
    series_uid: str
    study_date: dt.date | None
    patient: str
    modality: str


class FeatureExportRow(NamedTuple):
    id: int
    series_id: int
    name: str
    value: float | None
    unit: str
    computed_at: dt.datetime
    flags: dict[str, Any] | None
    mask_id: int | None


class RunRow(NamedTuple):
    series_id: int
    status: str
    reason: str | None
    settings: dict[str, Any] | None


@dataclass(frozen=True)
class FeatureExportRows:
    """What the features export is built from, read in one transaction.

    ``mask_formats``: mask id -> format of delivered masks (automatic masks are kept as
    SEG too, so only delivered ones name a delivered format); ``mask_engines``: mask id ->
    method of automatic masks; ``runs``: series id -> its newest feature run.
    """

    series: list[SeriesIdRow]
    features: list[FeatureExportRow]
    mask_formats: dict[int, str]
    mask_engines: dict[int, str | None]
    runs: dict[int, RunRow]


def feature_export_rows(store: Store) -> FeatureExportRows:
    """Every series with its patient, every feature row, mask and newest run."""
    with store.session() as s:
        series = s.execute(
            select(Series.id, Series.series_uid, Study.study_date,
                   Patient.pseudonym.label("patient"), Series.modality)
            .join(Study, Series.study_id == Study.id)
            .join(Patient, Study.patient_id == Patient.id)).all()
        rows = s.execute(select(Feature.id, Feature.series_id, Feature.name, Feature.value,
                                Feature.unit, Feature.computed_at, Feature.flags,
                                Feature.mask_id)).all()
        mask_rows = s.execute(select(Mask.id, Mask.format, Mask.automatic, Mask.method)).all()
        runs = {}
        for r in s.execute(select(FeatureRun.series_id, FeatureRun.status, FeatureRun.reason,
                                  FeatureRun.settings).order_by(FeatureRun.finished_at,
                                                                FeatureRun.id)):
            runs[r.series_id] = RunRow(*r)  # the newest run of each series wins
    return FeatureExportRows(
        series=[SeriesIdRow(*r) for r in series], features=[FeatureExportRow(*r) for r in rows],
        mask_formats={r.id: r.format for r in mask_rows if not r.automatic},
        mask_engines={r.id: r.method for r in mask_rows if r.automatic}, runs=runs)


def seg_paths(store: Store) -> dict[int, str]:
    """Mask id -> stored path of every mask kept as a DICOM SEG file."""
    with store.session() as s:
        return dict(s.execute(select(Mask.id, Mask.path).where(
            Mask.format == "seg", Mask.path.is_not(None))).all())
