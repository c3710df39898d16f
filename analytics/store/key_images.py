"""Stored key images: one derived artefact per series (``blobs`` row), with the version of
the inputs it was rendered from.

The Patient page shows a series' key slice with its organ outlines at every patient
switch; reading and decoding the series and its masks for it took seconds. The rendered
key slice and the slider's facts are kept here instead (:mod:`analytics.usecases.keyimage`
builds and reads them). :func:`inputs_version` digests every stored fact the picture
depends on (the series row, its instances' content digests, its mask rows, the reviews of
its automatic masks and its feature runs), so a re-ingested series, a new or replaced
mask, a rejected or restored outline or a new feature run gives another version and the
stored picture is not served again.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from analytics.store.db import Store
from analytics.store.schema import (
    Blob,
    FeatureRun,
    Instance,
    Mask,
    MaskRejection,
    Series,
    Study,
)

__all__ = ["KEY_PREFIX", "PASS_KEY", "forget", "inputs_version", "last_pass", "newest_series",
           "read", "record_pass", "write"]

#: ``blobs.key`` of a series' key image: this prefix and the series UID
KEY_PREFIX = "key-image/"
#: ``blobs.key`` of what the last complete pass over the newest series saw (a caller's
#: token, e.g. the rendering's format and the store's data version)
PASS_KEY = "key-images-pass"


def _key(series_uid: str) -> str:
    return KEY_PREFIX + series_uid


def _text(value) -> str | None:
    return None if value is None else str(value)


def inputs_version(store: Store, series_uid: str) -> str | None:
    """SHA-256 (hex) of every stored fact the series' key image depends on; None when the
    series is not in the store."""
    with store.session() as s:
        series = s.scalar(select(Series).where(Series.series_uid == series_uid))
        if series is None:
            return None
        facts: dict[str, object] = {
            "series": [series.id, series.status, series.n_instances, series.n_slices,
                       _text(series.created_at), series.geometry, series.storage_dir]}
        facts["instances"] = [list(r) for r in s.execute(
            select(Instance.id, Instance.content_sha256, Instance.path)
            .where(Instance.series_id == series.id).order_by(Instance.id)).all()]
        masks = s.execute(
            select(Mask.id, Mask.format, Mask.path, Mask.content_sha256, Mask.automatic,
                   Mask.method, Mask.segments, Mask.created_at)
            .where(Mask.series_id == series.id).order_by(Mask.id)).all()
        facts["masks"] = [[*r[:7], _text(r[7])] for r in masks]
        facts["reviews"] = [[r[0], r[1], r[2], r[3], _text(r[4]), _text(r[5])] for r in s.execute(
            select(MaskRejection.id, MaskRejection.mask_id, MaskRejection.organ,
                   MaskRejection.reason, MaskRejection.rejected_at, MaskRejection.restored_at)
            .where(MaskRejection.mask_id.in_([r[0] for r in masks]))
            .order_by(MaskRejection.id)).all()] if masks else []
        facts["runs"] = [[r[0], r[1], r[2], _text(r[3]), r[4]] for r in s.execute(
            select(FeatureRun.id, FeatureRun.extractor_version, FeatureRun.status,
                   FeatureRun.finished_at, FeatureRun.settings)
            .where(FeatureRun.series_id == series.id).order_by(FeatureRun.id)).all()]
    text = json.dumps(facts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def read(store: Store, series_uid: str) -> bytes | None:
    """The stored key image of a series (as :func:`write` kept it), None if none."""
    with store.session() as s:
        return s.scalar(select(Blob.data).where(Blob.key == _key(series_uid)))


def write(store: Store, series_uid: str, data: bytes) -> None:
    """Keep ``data`` as the series' key image (replacing the one stored before)."""
    try:
        with store.session() as s:
            row = s.scalar(select(Blob).where(Blob.key == _key(series_uid)))
            if row is None:
                s.add(Blob(key=_key(series_uid), data=data))
            else:
                row.data = data
    except IntegrityError:  # another session stored it first: theirs is as good
        pass


def forget(store: Store, series_uid: str | None = None) -> int:
    """Drop the stored key image of a series (every series' when None); rows dropped.
    Either way the last pass's record goes too: the next pass looks at every series."""
    cond = Blob.key == _key(series_uid) if series_uid else Blob.key.startswith(KEY_PREFIX)
    with store.session() as s:
        n = int(s.execute(delete(Blob).where(cond)).rowcount or 0)
        s.execute(delete(Blob).where(Blob.key == PASS_KEY))
    return n


def last_pass(store: Store) -> str | None:
    """The token :func:`record_pass` kept, None if none."""
    with store.session() as s:
        data = s.scalar(select(Blob.data).where(Blob.key == PASS_KEY))
    return bytes(data).decode() if data is not None else None


def record_pass(store: Store, token: str) -> None:
    """Keep ``token`` as what the last complete pass over the newest series saw."""
    with store.session() as s:
        row = s.scalar(select(Blob).where(Blob.key == PASS_KEY))
        if row is None:
            s.add(Blob(key=PASS_KEY, data=token.encode()))
        else:
            row.data = token.encode()


def newest_series(store: Store, limit: int) -> list[str]:
    """UIDs of each patient's newest complete CT or MR series (the one the Patient page
    opens on), patients with the newest scans first; at most ``limit``."""
    with store.session() as s:
        rows = s.execute(
            select(Study.patient_id, Series.series_uid)
            .join(Study, Series.study_id == Study.id)
            .where(Series.status == "complete", Study.patient_id.is_not(None),
                   Series.modality.in_(("CT", "MR")))
            .order_by(Study.study_date.desc().nulls_last(), Series.series_uid)).all()
    seen: set[int] = set()
    out: list[str] = []
    for patient_id, uid in rows:
        if patient_id in seen:
            continue
        seen.add(patient_id)
        out.append(uid)
        if len(out) >= limit:
            break
    return out
