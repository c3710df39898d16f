"""Mending a stored series: complete it with re-sent instances, replace it, or remove it.

A series stored with a broken instance is never scored, and until now nothing could mend
it: the intact copy sent again was refused as a conflict (same SOP Instance UID, other
content). Each action here needs ``Permission.INGEST`` (clinicians and administrators)
and writes one audit record (``series_complete``, ``series_replace``, ``series_remove``)
before anything is stored or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analytics.auth import Permission
from analytics.config import Settings
from analytics.errors import ConfigError, IngestError, StoreError
from analytics.ingest.pipeline import Progress, ingest_uploads
from analytics.ingest.reader import SafeParser
from analytics.ingest.results import IngestReport
from analytics.store import series_admin
from analytics.store.series_admin import RemovedSeries, SeriesState
from analytics.usecases.context import Context, audited, authorize

__all__ = ["SeriesFilesRequest", "SeriesRepair", "complete_series", "list_unfinished_series",
           "remove_series", "replace_series"]


@dataclass(frozen=True)
class SeriesFilesRequest:
    """A stored series (its stored UID) and the files ``[(display name, bytes)]`` sent
    to complete or replace it."""

    series_uid: str
    files: list[tuple[str, bytes]] = field(default_factory=list)
    progress: Progress | None = None
    parser: SafeParser | None = None


@dataclass(frozen=True)
class SeriesRepair:
    """What one action did: the ingest of the files sent, the series removed, or both."""

    series_uid: str
    action: str  # complete | replace | remove
    report: IngestReport | None = None
    removed: RemovedSeries | None = None
    status: str | None = None  # of the series afterwards (None: no longer stored)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"series_uid": self.series_uid, "action": self.action,
                "status": self.status, "note": self.note,
                "ingest": self.report.as_dict() if self.report is not None else None,
                "removed": self.removed.as_dict() if self.removed is not None else None}


def _settings(ctx: Context) -> Settings:
    if ctx.settings is None:
        raise ConfigError("series repair: the site settings (home, limits) are needed")
    return ctx.settings


def _state(ctx: Context, series_uid: str) -> SeriesState:
    state = series_admin.series_state(ctx.store, series_uid)
    if state is None:
        raise StoreError(f"series {series_uid}: not in the store",
                         hint="pick a series UID from the patient's series table")
    return state


def _status(ctx: Context, series_uid: str) -> str | None:
    state = series_admin.series_state(ctx.store, series_uid)
    return state.status if state is not None else None


def list_unfinished_series(ctx: Context) -> list[SeriesState]:
    """Stored series that are invalid or incomplete (what may need mending); a read of
    pseudonymised rows, no audit record.

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited).
    """
    authorize(ctx, Permission.INGEST, "view_cohort")
    return series_admin.unfinished_series(ctx.store)


def complete_series(ctx: Context, req: SeriesFilesRequest) -> SeriesRepair:
    """Ingest re-sent instances of a series stored as invalid or incomplete: an intact
    copy replaces the stored broken one with the same SOP Instance UID, a missing one is
    added, and the whole series is judged again (audited ``series_complete``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited).
    StoreError
        Unknown series, or a series already complete.
    """
    authorize(ctx, Permission.INGEST, "series_complete")
    state = _state(ctx, req.series_uid)
    if state.status == "complete":
        raise StoreError(f"series {req.series_uid}: already complete; nothing to mend",
                         hint="use replace to store another series in its place")
    detail = {"files": len(req.files), "status_before": state.status}
    with audited(ctx, "series_complete", patient=state.patient, uids=[req.series_uid],
                 detail=detail):
        report = ingest_uploads(req.files, _settings(ctx), ctx.store, progress=req.progress,
                                parser=req.parser, complete_series=req.series_uid)
    return SeriesRepair(req.series_uid, "complete", report=report,
                        status=_status(ctx, req.series_uid))


def replace_series(ctx: Context, req: SeriesFilesRequest) -> SeriesRepair:
    """Store the files sent in place of a stored series (audited ``series_replace``).

    The files are ingested first; the old series is removed only once a new series of
    them is filed under a patient, so a failed replacement loses nothing. Files of the
    same series complete it instead (as :func:`complete_series`).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited).
    StoreError
        Unknown series.
    IngestError
        If nothing of the files was stored (the old series is kept).
    """
    authorize(ctx, Permission.INGEST, "series_replace")
    state = _state(ctx, req.series_uid)
    detail = {"files": len(req.files), "status_before": state.status}
    with audited(ctx, "series_replace", patient=state.patient, uids=[req.series_uid],
                 detail=detail):
        settings = _settings(ctx)
        report = ingest_uploads(req.files, settings, ctx.store, progress=req.progress,
                                parser=req.parser, complete_series=req.series_uid)
        filed = [s["series_uid"] for s in report.series]
        if req.series_uid in filed:
            return SeriesRepair(req.series_uid, "replace", report=report,
                                status=_status(ctx, req.series_uid),
                                note="the files belong to the same series: it was completed")
        if not filed:
            why = "; ".join(f"{r.file}: {r.reason}" for r in
                            (report.rejected + report.conflicts)[:3]) or (
                "held as an identity conflict" if report.held else "no DICOM image found")
            raise IngestError(f"series {req.series_uid}: the replacement was not stored "
                              f"({why}); the stored series is kept")
        removed = series_admin.remove_series(ctx.store, settings, req.series_uid)
    return SeriesRepair(req.series_uid, "replace", report=report, removed=removed,
                        note=f"replaced by {', '.join(filed)}")


def remove_series(ctx: Context, series_uid: str) -> SeriesRepair:
    """Delete a stored series, its masks and feature values (audited ``series_remove``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited).
    StoreError
        Unknown series.
    """
    authorize(ctx, Permission.INGEST, "series_remove")
    state = _state(ctx, series_uid)
    detail = {"status_before": state.status, "instances": state.n_instances}
    with audited(ctx, "series_remove", patient=state.patient, uids=[series_uid],
                 detail=detail):
        removed = series_admin.remove_series(ctx.store, _settings(ctx), series_uid)
    return SeriesRepair(series_uid, "remove", removed=removed)
