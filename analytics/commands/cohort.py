"""``hepatrack import-cohort`` and ``hepatrack export``.

``import-cohort`` exits 0 when every row was imported and 2 when some rows were rejected
(the good rows are imported all the same; stderr names the first rejected row and the
JSON lists them all under ``rejected``). A file that cannot be read at all also exits 2.
"""

from __future__ import annotations

import argparse
import sys

from analytics.cli import EXIT_BAD_INPUT, EXIT_OK, CommandResult, command
from analytics.cohort import export, import_cohort
from analytics.config import Settings
from analytics.store import open_store


@command("import-cohort")
def import_cohort_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    try:
        report = import_cohort(store, args.visits, args.outcomes, settings=settings)
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
        result = export(store, args.what, args.out, settings=settings)
    finally:
        store.dispose()
    unit = "files" if args.what == "masks" else "rows"
    return CommandResult(result, f"exported {result['rows']} {args.what} {unit} to "
                                 f"{result['out']}")
