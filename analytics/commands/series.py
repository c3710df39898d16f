"""``hepatrack series complete | replace | remove --series UID [FILE...]``.

``complete`` ingests re-sent instances of a series stored as invalid or incomplete (an
intact copy replaces the stored broken one with the same SOP Instance UID); ``replace``
stores the files in place of the series (the old one is removed once the new one is
stored); ``remove`` deletes it. Each is audited; the command line acts as the system
account unless ``--user`` names an enabled account allowed to ingest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analytics.cli import CommandResult, command
from analytics.commands.masks import _actor
from analytics.config import Settings
from analytics.errors import IngestError
from analytics.store import open_store
from analytics.usecases.context import Context
from analytics.usecases.series_repair import (
    SeriesFilesRequest,
    complete_series,
    remove_series,
    replace_series,
)


def _read(sources: list[str], cap: int) -> list[tuple[str, bytes]]:
    """``(display name, bytes)`` of the files named and of the files in the folders named.

    Raises
    ------
    IngestError
        If a source does not exist, or the files together exceed ``cap`` bytes.
    """
    out: list[tuple[str, bytes]] = []
    total = 0
    for src in sources:
        path = Path(src)
        if not path.exists():
            raise IngestError(f"{src}: no such file or folder")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            total += f.stat().st_size
            if total > cap:
                raise IngestError(f"{src}: the files sent are over the upload cap of {cap} "
                                  "bytes (max_upload_bytes)")
            out.append((f.name, f.read_bytes()))
    return out


@command("series")
def series_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    try:
        ctx = (Context(_actor(store, args.user), store, settings) if args.user
               else Context.cli(store, settings))
        if args.series_command == "remove":
            out = remove_series(ctx, args.series)
            r = out.removed
            return CommandResult(out.as_dict(), f"removed series {args.series}: "
                                                f"{r.instances} instances, {r.masks} masks, "
                                                f"{r.feature_values} feature values")
        files = _read(args.files, settings.limits.max_upload_bytes)
        req = SeriesFilesRequest(args.series, files)
        out = (complete_series if args.series_command == "complete" else replace_series)(ctx, req)
        rep = out.report
        summary = (f"{args.series_command} series {args.series}: {rep.instances} instances "
                   f"stored, {rep.replaced} replaced, {len(rep.conflicts)} conflicts, "
                   f"{len(rep.rejected)} rejected; status now {out.status or 'removed'}"
                   + (f" ({out.note})" if out.note else ""))
        return CommandResult(out.as_dict(), summary)
    finally:
        store.dispose()
