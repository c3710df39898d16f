"""Cohort use cases: import visits and outcomes (``Permission.INGEST``, audited
``import_cohort``), export tables or masks (``Permission.EXPORT_PSEUDONYMISED``, audited
``export``) and download a table as a page shows it (identified tables need
``Permission.EXPORT_IDENTIFIED``). The stage functions in :mod:`analytics.cohort` call the
one audited step just before they write."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analytics.auth import Permission
from analytics.cohort.export import export as export_stage
from analytics.cohort.importer import ImportReport
from analytics.cohort.importer import import_cohort as import_stage
from analytics.cohort.reader import Source
from analytics.csv_safe import write_csv
from analytics.usecases.context import Context, audited, authorize

__all__ = ["ExportRequest", "ImportRequest", "TableDownload", "download_table", "export",
           "import_cohort"]


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


@dataclass(frozen=True)
class TableDownload:
    """A table as a page shows it, to download as CSV: ``what`` names it in the audit
    trail (``cohort_table``); ``identified`` says it carries real names, IDs or dates."""

    table: pd.DataFrame
    what: str
    identified: bool


def download_table(ctx: Context, req: TableDownload) -> bytes:
    """The table as UTF-8 CSV, formula cells neutralised (:mod:`analytics.csv_safe`); one
    audited ``export`` (step ``download``) with the row and column counts, before the bytes.

    Raises
    ------
    PermissionDeniedError
        If the actor may not export this kind of table (refusal audited).
    AuditError
        If the download cannot be audited: then no bytes are given.
    """
    authorize(ctx, Permission.EXPORT_IDENTIFIED if req.identified
              else Permission.EXPORT_PSEUDONYMISED, "export")
    rows, columns = req.table.shape
    with audited(ctx, "export", detail={"step": "download", "what": req.what, "rows": rows,
                                        "columns": columns, "identified": req.identified}):
        return (write_csv(req.table, index=False) or "").encode("utf-8")
