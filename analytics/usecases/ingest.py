"""Ingest use cases: an upload, local paths or DICOMweb URLs (the command line), a PACS
search and a PACS link. Each needs ``Permission.INGEST`` and writes one audit record
(``upload``, ``ingest``, ``pacs_link``) before any data is stored."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics import audit
from analytics.auth import Permission, allowed
from analytics.config import PacsSettings
from analytics.errors import ConfigError
from analytics.ingest.deid import date_shift_days
from analytics.ingest.dicomweb import is_dicomweb_url, search_studies
from analytics.ingest.pipeline import IngestReport, Progress, ingest_sources, ingest_uploads
from analytics.ingest.reader import SafeParser
from analytics.store.pseudonyms import view_dates
from analytics.usecases.context import Context, audited, authorize

__all__ = ["PacsLinkRequest", "PacsSearchRequest", "PathsRequest", "UploadRequest",
           "ingest_paths", "ingest_upload", "link_pacs", "report_study_dates", "search_pacs"]


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    """How ingested files are filed (shared by uploads and paths; keyword-only)."""

    assign_patient: str | None = None
    labels: dict[int, str] | None = None
    deidentify: bool | None = None
    progress: Progress | None = None
    parser: SafeParser | None = None


@dataclass(frozen=True)
class UploadRequest(IngestOptions):
    """Uploaded files ``[(display name, bytes)]`` and how to file them."""

    files: list[tuple[str, bytes]]


@dataclass(frozen=True)
class PathsRequest(IngestOptions):
    """Files, folders, zip archives and DICOMweb URLs (``hepatrack ingest SOURCE...``)."""

    sources: list[str | Path]


@dataclass(frozen=True)
class PacsSearchRequest:
    """A QIDO-RS study search on one configured PACS."""

    pacs: PacsSettings
    patient_id: str | None = None
    modality: str | None = None
    date_range: tuple[Any, Any] | None = None


@dataclass(frozen=True)
class PacsLinkRequest:
    """DICOMweb study URLs found by :func:`search_pacs`, retrieved and ingested."""

    urls: list[str]
    pacs_name: str
    progress: Progress | None = None


def _settings(ctx: Context):
    if ctx.settings is None:
        raise ConfigError("ingest: the site settings (home, limits) are needed")
    return ctx.settings


def _deidentify(ctx: Context, asked: bool | None) -> bool:
    return _settings(ctx).deidentify if asked is None else bool(asked)


def ingest_upload(ctx: Context, req: UploadRequest) -> IngestReport:
    """Ingest uploaded files (audited ``upload``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited; nothing is read).
    AuditError
        If the upload cannot be audited (nothing is stored).
    """
    authorize(ctx, Permission.INGEST, "upload")
    size = sum(len(b) for _n, b in req.files)
    detail = {"files": len(req.files), "bytes": size,
              "patient_assigned": bool(req.assign_patient),
              "deidentify": _deidentify(ctx, req.deidentify)}
    with audited(ctx, "upload", detail=detail):
        return ingest_uploads(req.files, _settings(ctx), ctx.store, progress=req.progress,
                              deidentify=req.deidentify, parser=req.parser,
                              assign_patient=req.assign_patient, labels=req.labels)


def ingest_paths(ctx: Context, req: PathsRequest) -> IngestReport:
    """Ingest local paths and DICOMweb URLs (audited ``ingest``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited).
    AuditError
        If the ingest cannot be audited (nothing is stored).
    """
    authorize(ctx, Permission.INGEST, "ingest")
    kinds = sorted({"dicomweb" if is_dicomweb_url(s) else "path" for s in req.sources})
    detail = {"what": "+".join(kinds) or "nothing", "sources": len(req.sources),
              "deidentify": _deidentify(ctx, req.deidentify),
              "patient_assigned": bool(req.assign_patient)}
    with audited(ctx, "ingest", detail=detail):
        return ingest_sources(list(req.sources), _settings(ctx), ctx.store,
                              progress=req.progress, deidentify=req.deidentify,
                              parser=req.parser, assign_patient=req.assign_patient,
                              labels=req.labels)


def search_pacs(ctx: Context, req: PacsSearchRequest) -> list[dict[str, Any]]:
    """QIDO-RS study search (``analytics.ingest.dicomweb.search_studies``).

    A role without the identified view gets no name or Patient ID, and each study date
    shifted as ingest stores it (a study without a Patient ID gets no date): the search
    and the ingest result then show the same date. The one ``pacs_link`` record (step ``search``, with the number of results) is written
    before the results are returned: if it cannot be written nobody sees them.

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest.
    PacsError
        If the PACS cannot be reached or refuses.
    """
    authorize(ctx, Permission.INGEST, "pacs_link")
    found = search_studies(req.pacs, patient_id=req.patient_id, modality=req.modality,
                           date_range=req.date_range)
    audit.record(ctx.store, ctx.actor, "pacs_link",
                 detail={"step": "search", "pacs": req.pacs.name, "results": len(found)})
    if allowed(ctx.actor, Permission.VIEW_IDENTIFIED):
        return found
    return [_pseudonymised(ctx, f) for f in found]


def _pseudonymised(ctx: Context, study: dict[str, Any]) -> dict[str, Any]:
    """A found study as a role without the identified view sees it: no name or ID, and the
    study date shifted as ingest will store it (the date its result then shows)."""
    out = {**study, "patient_name": None, "patient_id": None}
    pid, date = study.get("patient_id"), study.get("study_date")
    if date and (ctx.settings is None or ctx.settings.deidentify):
        shift = date_shift_days(ctx.store.site_secret(), pid) if pid else None
        out["study_date"] = (None if shift is None else
                             (dt.date.fromisoformat(date) + dt.timedelta(days=shift)).isoformat())
    return out


def link_pacs(ctx: Context, req: PacsLinkRequest) -> IngestReport:
    """Retrieve studies from a PACS over DICOMweb and ingest them (audited ``pacs_link``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited).
    """
    authorize(ctx, Permission.INGEST, "pacs_link")
    detail = {"step": "retrieve", "studies": len(req.urls), "pacs": req.pacs_name}
    with audited(ctx, "pacs_link", detail=detail):
        return ingest_sources(list(req.urls), _settings(ctx), ctx.store,
                              progress=req.progress)


def report_study_dates(ctx: Context, report: IngestReport) -> dict[str, str | None]:
    """The study date of every series of ``report`` as the actor may see it.

    The report (the ``--json`` contract) carries the stored, shifted dates. A role with
    the identified view gets the real ones (those of the file or the PACS); any other
    role keeps the stored ones, so one screen never mixes the two.

    Returns
    -------
    dict
        ``{series_uid: "YYYY-MM-DD" or None}`` for the accepted and the held series.
    """
    entries = [*report.series, *report.held]
    stored = [dt.date.fromisoformat(e["study_date"]) if e.get("study_date") else None
              for e in entries]
    shown = view_dates(ctx.store, [e.get("patient") for e in entries], stored,
                       identified=allowed(ctx.actor, Permission.VIEW_IDENTIFIED))
    return {e["series_uid"]: d.isoformat() if d else None
            for e, d in zip(entries, shown, strict=True)}
