"""Relational schema of the store (SQLAlchemy 2.x declarative).

Identifiers:
- ``patients.pseudonym`` is what every other table and every research view uses.
- ``identity_map`` holds the real identifiers and the per-patient date shift; only
  identified (clinician) views read it.
- DICOM UIDs stored in ``studies``/``series``/``instances`` are the de-identified ones;
  ``instances.source_key`` is an HMAC of the original SOPInstanceUID, used for dedup.

Times: ``visits.time_years`` and ``outcomes.time_years`` are years since the patient's
baseline; dates are the shifted (de-identified) dates.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = "0001"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    sex: Mapped[str | None] = mapped_column(String(1))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    baseline_date: Mapped[dt.date | None] = mapped_column(Date)  # shifted date
    source: Mapped[str] = mapped_column(String(32), default="imaging")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class IdentityMap(Base):
    """Real identifiers: read only by identified (clinician) views."""

    __tablename__ = "identity_map"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    real_patient_id: Mapped[str] = mapped_column(String(128))
    real_patient_id_key: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    patient_name: Mapped[str | None] = mapped_column(String(256))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    date_shift_days: Mapped[int] = mapped_column(Integer, default=0)
    issuer: Mapped[str | None] = mapped_column(String(128))


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # empty while the study is held as an identity conflict (``identity_holds``): it is
    # then filed under no patient, and every view that joins a patient leaves it out
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True,
                                                   nullable=True)
    study_date: Mapped[dt.date | None] = mapped_column(Date)  # shifted date
    description: Mapped[str | None] = mapped_column(String(256))
    accession_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    patient: Mapped[Patient | None] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class IdentityHold(Base):
    """A study whose identity fields disagree with the stored patient of its Patient ID.

    Its instances are stored, its ``studies.patient_id`` stays empty (filed under nobody,
    not scored) until a clinician resolves it: ``same`` files it under ``patient_id``;
    ``different`` under ``resolved_patient_id``, a patient with its own pseudonym. The
    identifiers received are kept here, as in ``identity_map``: identified views only.
    """

    __tablename__ = "identity_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    real_patient_id: Mapped[str] = mapped_column(String(128))
    patient_name: Mapped[str | None] = mapped_column(String(256))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(1))
    issuer: Mapped[str | None] = mapped_column(String(128))
    date_shift_days: Mapped[int] = mapped_column(Integer, default=0)
    fields: Mapped[list[Any]] = mapped_column(JSON)  # names of the fields that differ
    status: Mapped[str] = mapped_column(String(16), default="held")  # held | same | different
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    source_key: Mapped[str] = mapped_column(String(64), index=True)  # HMAC of original UID
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    # the cohort list's "has a series of this modality" filter
    modality: Mapped[str] = mapped_column(String(16), index=True)
    description: Mapped[str | None] = mapped_column(String(256))
    contrast_phase: Mapped[str | None] = mapped_column(String(32))
    frame_of_reference_uid: Mapped[str | None] = mapped_column(String(64))
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    n_slices: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    spacing_mm: Mapped[list[Any] | None] = mapped_column(JSON)  # [x, y, z]
    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # complete | incomplete | invalid
    status: Mapped[str] = mapped_column(String(16), default="complete")
    status_reason: Mapped[str | None] = mapped_column(Text)
    storage_dir: Mapped[str] = mapped_column(String(512))  # relative to HEPATRACK_HOME
    source: Mapped[str | None] = mapped_column(String(512))  # upload / folder / dicomweb (no PHI)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")
    masks: Mapped[list[Mask]] = relationship(back_populates="series")


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    source_key: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    slice_position_mm: Mapped[float | None] = mapped_column(Float)
    n_frames: Mapped[int] = mapped_column(Integer, default=1)
    path: Mapped[str] = mapped_column(String(512))  # relative to HEPATRACK_HOME
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    transfer_syntax_uid: Mapped[str | None] = mapped_column(String(64))

    series: Mapped[Series] = relationship(back_populates="instances")


class Mask(Base):
    __tablename__ = "masks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    # seg | rtstruct | nifti | auto
    format: Mapped[str] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(String(512))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    # {"liver": {"label": 1, "source_name": "Liver", "voxels": 12345}, ...}
    segments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    method: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    series: Mapped[Series] = relationship(back_populates="masks")

    __table_args__ = (UniqueConstraint("series_id", "content_sha256", name="uq_mask_content"),)


class MaskRejection(Base):
    """A clinician's rejection of one organ of an automatic mask; its numbers are withheld.

    Active while ``restored_at`` is empty; a restore fills ``restored_*`` (the row stays as
    the record of the review). Rejecting again after a restore adds a new row.
    """

    __tablename__ = "mask_rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mask_id: Mapped[int] = mapped_column(ForeignKey("masks.id"), index=True)
    organ: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    rejected_by: Mapped[str] = mapped_column(String(128))
    rejected_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    restored_by: Mapped[str | None] = mapped_column(String(128))
    restored_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    restore_reason: Mapped[str | None] = mapped_column(Text)


class Feature(Base):
    """One biomarker value of one series, from one extractor version."""

    __tablename__ = "features"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    # the cohort list asks whether any value of a key biomarker exists (one index probe)
    name: Mapped[str] = mapped_column(String(128), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))
    extractor_version: Mapped[str] = mapped_column(String(32))
    mask_id: Mapped[int | None] = mapped_column(ForeignKey("masks.id"))
    flags: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    __table_args__ = (
        UniqueConstraint("series_id", "name", "extractor_version", name="uq_feature"),
    )


class FeatureRun(Base):
    """Status of feature extraction for one series and extractor version."""

    __tablename__ = "feature_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    extractor_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # done | failed
    reason: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float | None] = mapped_column(Float)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    __table_args__ = (
        UniqueConstraint("series_id", "extractor_version", name="uq_feature_run"),
    )


class CohortImport(Base):
    """One ``import-cohort`` run that wrote visits: the visits file's base name (no
    folder; None for a table given in memory) and when it was imported."""

    __tablename__ = "cohort_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_name: Mapped[str | None] = mapped_column(String(255))
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Visit(Base):
    """One patient visit: a lab draw, a scan, or both."""

    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    time_years: Mapped[float] = mapped_column(Float)
    visit_date: Mapped[dt.date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(32), default="csv")  # csv | imaging
    # the import that inserted the visit or last changed its values; None: not recorded
    # (visits stored before imports were recorded)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("cohort_imports.id"))
    # {"bilirubin_mg_dl": 1.2, "sex": "F", ...}: labs and generic features as imported
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        UniqueConstraint("patient_id", "time_years", "source", name="uq_visit"),
    )


class Outcome(Base):
    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    time_years: Mapped[float] = mapped_column(Float)
    outcome_date: Mapped[dt.date | None] = mapped_column(Date)
    event: Mapped[str] = mapped_column(String(64))  # e.g. death, transplant, censored


class PatientSummary(Base):
    """What the cohort list shows of a patient's scans and visits, one row per patient.

    Derived data: ``analytics.store.patient_summary`` writes it in the same transaction as
    every change to the rows it summarises, so it always equals a recomputation from them.
    Every patient has exactly one row. Dates are the stored (shifted) dates, never real
    ones (no identity here); the latest value of each key biomarker is ``NULL`` when the
    patient has none. No foreign key: a row outlives nothing, the
    transaction that deletes a patient deletes its row.
    """

    __tablename__ = "patient_summary"

    patient_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # the patient's pseudonym and follow-up, so a sorted page is chosen from this table alone
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    follow_up_years: Mapped[float | None] = mapped_column(Float)
    n_studies: Mapped[int] = mapped_column(Integer)
    n_series: Mapped[int] = mapped_column(Integer)
    n_visits: Mapped[int] = mapped_column(Integer)
    first_scan: Mapped[dt.date | None] = mapped_column(Date)
    last_scan: Mapped[dt.date | None] = mapped_column(Date)
    # the latest non-null value of each key biomarker (patient_list.KEY_BIOMARKERS)
    liver_volume_ml: Mapped[float | None] = mapped_column(Float)
    spleen_volume_ml: Mapped[float | None] = mapped_column(Float)
    liver_hu_mean: Mapped[float | None] = mapped_column(Float)
    liver_spleen_hu_diff: Mapped[float | None] = mapped_column(Float)
    liver_surface_nodularity: Mapped[float | None] = mapped_column(Float)
    liver_pdff_median_pct: Mapped[float | None] = mapped_column(Float)
    liver_mre_stiffness_median_kpa: Mapped[float | None] = mapped_column(Float)
    us_hepatorenal_index: Mapped[float | None] = mapped_column(Float)


class CurrentRisk(Base):
    """Each patient's current risk under one model and horizon: the risk at the latest
    visit, the visit before it, and the date of the last data it uses ("as of").

    Derived data, written whole per model and horizon when that model's cohort risk is
    computed (``analytics.usecases.current_risk``), so the cohort list can sort, filter
    and page by risk in SQL. Rows of a model are only ever read for that model: a newer
    model has none until its own are written. ``risk`` is ``NULL`` (with ``reason``) when
    the latest visit is not assessable. ``as_of`` is the stored (shifted) date.
    ``data_version`` is the store's data version the risk was computed from.
    """

    __tablename__ = "current_risk"

    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    horizon_years: Mapped[float] = mapped_column(Float, primary_key=True)
    patient_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    risk: Mapped[float | None] = mapped_column(Float)
    previous_risk: Mapped[float | None] = mapped_column(Float)
    risk_time_years: Mapped[float | None] = mapped_column(Float)
    as_of: Mapped[dt.date | None] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(Text)
    data_version: Mapped[str | None] = mapped_column(String(64))
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    __table_args__ = (
        # a page sorted by risk is read from this index (model, horizon, risk)
        Index("ix_current_risk_rank", "model_id", "horizon_years", "risk"),
    )


class ModelRecord(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # cox | gbm | rsf
    event: Mapped[str] = mapped_column(String(128))
    horizons: Mapped[list[Any]] = mapped_column(JSON)
    content_sha256: Mapped[str] = mapped_column(String(64))
    training_data_sha256: Mapped[str] = mapped_column(String(64))
    artifact_path: Mapped[str] = mapped_column(String(512))
    features: Mapped[list[Any]] = mapped_column(JSON)
    training_ranges: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    time_years: Mapped[float] = mapped_column(Float)
    horizon_years: Mapped[float] = mapped_column(Float)
    risk: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    __table_args__ = (
        UniqueConstraint("model_id", "patient_id", "time_years", "horizon_years",
                         name="uq_prediction"),
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    # analytics.names.name_key(username): one account per name whatever its case or spaces
    username_key: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))  # None for SSO-only users
    role: Mapped[str] = mapped_column(String(16))  # clinician | researcher | admin
    display_name: Mapped[str | None] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AuditRecord(Base):
    """Append-only, hash-chained audit trail; ``seq`` is gap-free."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    ts: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    username: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(16))
    session_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    patient_pseudonym: Mapped[str | None] = mapped_column(String(64))
    uids: Mapped[list[Any] | None] = mapped_column(JSON)
    model_version: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class StoreInfo(Base):
    """Facts about this database itself, e.g. ``store_id`` (names its audit anchor)."""

    __tablename__ = "store_info"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class NoteRecord(Base):
    """MDT meeting notes per patient."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    author: Mapped[str] = mapped_column(String(128))
    meeting: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class MdtRecord(Base):
    """What an MDT meeting asked, discussed and decided about one patient (one row per
    patient and meeting; a later save replaces the text, each save is audited)."""

    __tablename__ = "mdt_records"
    __table_args__ = (UniqueConstraint("patient_id", "meeting", name="uq_mdt_record"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    meeting: Mapped[str] = mapped_column(String(128))
    question: Mapped[str] = mapped_column(Text, default="")
    discussion: Mapped[str] = mapped_column(Text, default="")
    decision: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Blob(Base):
    """Small binary artifacts kept in the database (e.g. rendered key images)."""

    __tablename__ = "blobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(256), unique=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class UltrasoundRoi(Base):
    """An ROI a sonographer placed on one frame of an ultrasound series (mm on the frame's
    calibrated image region; one current ROI per role; every save is audited)."""

    __tablename__ = "ultrasound_rois"
    __table_args__ = (UniqueConstraint("series_id", "role", name="uq_ultrasound_roi"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    frame_index: Mapped[int] = mapped_column(Integer)  # 0-based, over the series' frames
    role: Mapped[str] = mapped_column(String(16))  # liver | kidney
    shape: Mapped[str] = mapped_column(String(16))  # box | circle
    x_mm: Mapped[float] = mapped_column(Float)
    depth_mm: Mapped[float] = mapped_column(Float)
    width_mm: Mapped[float] = mapped_column(Float)
    height_mm: Mapped[float] = mapped_column(Float)
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
