"""``hepatrack ingest SOURCE... [--json] [--no-deidentify] [--patient ID] [--labels TABLE]``.

Each stored series says which liver measurements feature extraction will make and which
it cannot, and why (``measurements`` in the JSON; a line under each MR series in the
text summary).

Exit 0 when anything was ingested or was already stored; 2 when everything was refused
(or nothing was found), with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import sys

from analytics.cli import EXIT_BAD_INPUT, EXIT_OK, CommandResult, command
from analytics.config import Settings
from analytics.features.mr_companions import measurement_plans
from analytics.ingest.nifti_masks import parse_label_table
from analytics.ingest.results import IngestReport
from analytics.ingest.stacks import listing
from analytics.ingest.ultrasound_series import measurement_words
from analytics.store import open_store
from analytics.usecases.context import Context
from analytics.usecases.ingest import PathsRequest, ingest_paths


def _summary(report: IngestReport) -> str:
    lines = [f"ingested {report.series_ingested} series ({report.instances} instances); "
             f"{report.duplicates} already stored; {report.masks} masks; "
             f"{len(report.rejected)} rejected; {len(report.quarantined)} quarantined; "
             f"{len(report.conflicts)} conflicts"
             + (f"; {len(report.held)} held (identity conflict)" if report.held else "")
             + (f"; {report.replaced} broken instances replaced" if report.replaced else "")]
    for s in report.series:
        state = "already stored" if s.get("already_stored") else s["status"]
        lines.append(f"  {s['patient']}  {s['study_date'] or '-':10}  {s['modality']:3} "
                     f"{s['slices']:4} slices  {s['masks']} masks  {state}"
                     + (f": {s['reason']}" if s.get("reason") else ""))
        lines.extend(f"    warning: {w}" for w in s.get("warnings", []))
        if s.get("measurements") and s.get("modality") == "MR":  # CT: always the same
            lines.append(f"    measurements: {s['measurements']}")
        if s.get("stacks"):
            lines.append(f"    split into {len(s['stacks'])} stacks: "
                         + listing([(t["label"], t["frames"]) for t in s["stacks"]])
                         + f"; biomarkers use {s['stack']}")
    for h in report.held:
        lines.append(f"  held: series {h['series_uid']} (hold {h['hold_id']}): {h['reason']}; "
                     "resolve with: hepatrack identity resolve")
    for label, items in (("rejected", report.rejected), ("quarantined", report.quarantined),
                         ("conflict", report.conflicts)):
        lines.extend(f"  {label}: {r.file}: {r.reason}" for r in items)
    return "\n".join(lines)


@command("ingest")
def run(args: argparse.Namespace, settings: Settings) -> CommandResult:
    """Ingest the sources into the store named by the settings (as the system account)."""
    labels = parse_label_table(getattr(args, "labels", None))  # a bad table stops here: exit 2
    store = open_store(settings)
    try:
        report = ingest_paths(Context.cli(store, settings), PathsRequest(
            list(args.sources), deidentify=False if args.no_deidentify else None,
            assign_patient=args.patient, labels=labels))
        plans = measurement_plans(store, settings, [
            x["series_uid"] for x in report.series if x.get("status") == "complete"])
        for x in report.series:  # which liver measurements each series will get, and why not
            if isinstance(x.get("measurements"), dict):  # ultrasound: its frame measurements
                x["measurements"] = measurement_words(x)
            elif x["series_uid"] in plans:
                x["measurements"] = plans[x["series_uid"]]
    finally:
        store.dispose()
    code = EXIT_OK if report.anything_stored else EXIT_BAD_INPUT
    if code != EXIT_OK:
        first = (report.rejected or report.quarantined or report.conflicts or [None])[0]
        why = f"{first.file}: {first.reason}" if first else "no DICOM files found in the sources"
        print(f"hepatrack ingest: nothing ingested ({why})", file=sys.stderr)
    return CommandResult(report.as_dict(), _summary(report), code)
