"""``hepatrack import-cohort`` and ``hepatrack export`` (the system account acts).

``import-cohort`` exits 0 when every row was imported and 2 when some rows were rejected
(the good rows are imported all the same; stderr names the first rejected row and the
JSON lists them all under ``rejected``). A file that cannot be read at all, or a malformed
``--sex-coding``, also exits 2.
"""

from __future__ import annotations

import argparse
import sys

from analytics.cli import EXIT_BAD_INPUT, EXIT_OK, CommandResult, command
from analytics.cohort.columns import parse_sex_coding
from analytics.config import Settings
from analytics.store import open_store
from analytics.usecases.cohort import ExportRequest, ImportRequest, export, import_cohort
from analytics.usecases.context import Context


@command("import-cohort")
def import_cohort_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    sex_coding = (parse_sex_coding(args.sex_coding, name="--sex-coding")
                  if args.sex_coding is not None else None)  # refused before any file is read
    store = open_store(settings)
    try:
        report = import_cohort(Context.cli(store, settings),
                               ImportRequest(args.visits, args.outcomes, sex_coding))
    finally:
        store.dispose()
    exit_code = EXIT_OK
    if report.rejected:
        exit_code = EXIT_BAD_INPUT
        print(f"hepatrack import-cohort: {len(report.rejected)} rows rejected, first: "
              f"{report.rejected[0]}", file=sys.stderr)
    return CommandResult(report.to_json(), report.summary(), exit_code)


@command("export")
def export_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    try:
        result = export(Context.cli(store, settings), ExportRequest(args.what, args.out))
    finally:
        store.dispose()
    unit = "files" if args.what == "masks" else "rows"
    return CommandResult(result, f"exported {result['rows']} {args.what} {unit} to "
                                 f"{result['out']}")
