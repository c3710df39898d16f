"""``hepatrack report --patient ID [--patient ID2 ...] --out FILE.pdf``: the MDT PDF pack.

The command line runs as the system account (an administrator without the identified
view), so the pack is pseudonymised; identified packs are made from the dashboard by a
signed-in clinician.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analytics.cli import CommandResult, command
from analytics.config import Settings
from analytics.errors import StoreError
from analytics.store import open_store
from analytics.usecases.context import Context
from analytics.usecases.report import ReportRequest, build_mdt_report


@command("report")
def report(args: argparse.Namespace, settings: Settings) -> CommandResult:
    out = str(args.out)
    if not out.lower().endswith(".pdf"):
        raise StoreError(f"--out {out}: expected a file name ending in .pdf")
    if not Path(out).resolve().parent.is_dir():
        raise StoreError(f"--out {out}: the folder {Path(out).resolve().parent} does not exist")
    store = open_store(settings)
    try:
        result = build_mdt_report(Context.cli(store, settings), ReportRequest(
            list(args.patient), out, identified=False,
            model_id=getattr(args, "model_id", None), horizon=getattr(args, "horizon", None)))
    finally:
        store.dispose()
    payload = {"out": str(result.path), "pages": result.pages, "patients": result.patients,
               "model_id": result.model_id, "identified": result.identified,
               "warnings": result.warnings}
    lines = [f"wrote {result.pages} page(s) to {result.path} "
             f"(model {result.model_id or 'none'}, pseudonymised)"]
    lines += [f"  note: {w}" for w in result.warnings]
    return CommandResult(payload, "\n".join(lines))
