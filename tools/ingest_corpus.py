"""Ingest a corpus of DICOM files into a throw-away home and tabulate what happened to each.

Usage::

    python tools/ingest_corpus.py [--patient ID] [--json] SOURCE...

SOURCE is a file or folder; with no SOURCE, every file bundled with pydicom and the real
scans in ``tests/data`` are used. Each SOURCE is ingested as its own batch (so one folder's
files are grouped together, and two folders never). Prints one line per refusal reason
(with its count and an example file) and the totals: files stored, refused, quarantined.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def default_sources() -> list[Path]:
    from pydicom.data import get_testdata_files

    files = [Path(p) for p in get_testdata_files()]
    bundled = min({p.parent for p in files}, key=lambda p: len(p.parts))  # test_files
    real = [p for p in sorted((HERE / "tests" / "data").iterdir()) if p.is_dir()]
    return [bundled, *real]


def _shape(reason: str) -> str:
    """A reason with its file-specific numbers and UIDs blanked, to group alike refusals."""
    reason = re.sub(r"\d+(\.\d+)+", "<uid>", reason)
    return re.sub(r"\d+", "N", reason)[:160]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="*", type=Path)
    ap.add_argument("--patient", default="CORPUS-1",
                    help="Patient ID for files that have none (default CORPUS-1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import inspect

    from analytics.config import load_settings
    from analytics.ingest.pipeline import ingest_sources
    from analytics.store import open_store

    # an older engine without the assignment option is measured as it was
    extra = ({"assign_patient": args.patient}
             if "assign_patient" in inspect.signature(ingest_sources).parameters else {})
    sources = args.sources or default_sources()
    settings = load_settings(Path(tempfile.mkdtemp(prefix="corpus-")))
    settings.ensure_home()
    store = open_store(settings)
    totals = collections.Counter()
    per_source: dict[str, collections.Counter] = {}
    reasons: dict[str, list[str]] = collections.defaultdict(list)
    series = []
    try:
        for src in sources:
            report = ingest_sources([src], settings, store, **extra)
            per_source[src.name] = collections.Counter(
                series=report.series_ingested, instances=report.instances,
                masks=report.masks, rejected=len(report.rejected),
                quarantined=len(report.quarantined))
            totals["series stored"] += report.series_ingested
            totals["instances stored"] += report.instances
            totals["masks stored"] += report.masks
            for kind, items in (("rejected", report.rejected),
                                ("quarantined", report.quarantined),
                                ("conflict", report.conflicts)):
                totals[kind] += len(items)
                for r in items:
                    reasons[f"{kind}: {_shape(r.reason)}"].append(f"{src.name}/{r.file}")
            series += [{"source": src.name, **{k: s.get(k) for k in
                                                ("modality", "slices", "status", "reason")}}
                       for s in report.series]
    finally:
        store.dispose()
    if args.json:
        print(json.dumps({"totals": totals, "reasons": reasons, "series": series}, indent=1))
        return 0
    for reason, files in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        print(f"{len(files):4d}  {reason}\n      e.g. {files[0]}")
    bad = [s for s in series if s["status"] != "complete"]
    for s in bad:
        print(f"series not complete: {s}")
    for name, c in per_source.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    print(", ".join(f"{k}: {v}" for k, v in sorted(totals.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
