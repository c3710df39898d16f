"""Cohort use cases: import visits and outcomes (``Permission.INGEST``, audited
``import_cohort``) and export tables or masks (``Permission.EXPORT_PSEUDONYMISED``,
audited ``export``). The stage functions in :mod:`analytics.cohort` call the one audited
step just before they write."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analytics.auth import Permission
from analytics.cohort.export import export as export_stage
from analytics.cohort.importer import ImportReport
from analytics.cohort.importer import import_cohort as import_stage
from analytics.cohort.reader import Source
from analytics.usecases.context import Context, audited, authorize

__all__ = ["ExportRequest", "ImportRequest", "export", "import_cohort"]


@dataclass(frozen=True)
class ImportRequest:
    """A visits table and an outcomes table (CSV paths or DataFrames), and the visits
    file's numeric sex convention when it has one (``parse_sex_coding("1=M,2=F")``)."""

    visits: Source
    outcomes: Source
    sex_coding: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ExportRequest:
    """``features``, ``cohort``, ``predictions`` (a .csv/.parquet file) or ``masks`` (a
    folder) to ``out``."""

    what: str
    out: str | os.PathLike[str]


def import_cohort(ctx: Context, req: ImportRequest) -> ImportReport:
    """Validate and import the tables (:func:`analytics.cohort.import_cohort`).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited; nothing is read).
    CohortError, StoreError
        As the stage: a file cannot be read, or the store write fails.
    """
    authorize(ctx, Permission.INGEST, "import_cohort")
    return import_stage(ctx.store, req.visits, req.outcomes, settings=ctx.settings,
                        step=functools.partial(audited, ctx, "import_cohort"),
                        sex_coding=req.sex_coding)


def export(ctx: Context, req: ExportRequest) -> dict[str, Any]:
    """Export a table or the stored masks (:func:`analytics.cohort.export`).

    Raises
    ------
    PermissionDeniedError
        If the actor may not export pseudonymised data (refusal audited).
    CohortError
        As the stage: unknown ``what``, a bad file name or an unwritable folder.
    """
    authorize(ctx, Permission.EXPORT_PSEUDONYMISED, "export")
    return export_stage(ctx.store, req.what, req.out, settings=ctx.settings,
                        step=functools.partial(audited, ctx, "export"))
