"""``hepatrack features [--all | --series UID | --engines] [--workers N] [--scheduler ADDR]
[--radiomics] [--radiomics-config NAME] [--segmentation auto|classical|totalsegmentator]``.

``--radiomics-config NAME`` picks a named radiomics configuration
(``analytics.features.radiomics_configs``) and implies ``--radiomics``; without it the
site's ``radiomics_config`` setting is used. The name is recorded in each feature run,
the full settings with the radiomics values.

JSON keys: ``series_done`` (count), ``series_failed`` (list of ``{series_uid, reason}``),
``series_skipped`` (count, already done for this extractor version), ``seconds``, and
``radiomics_failed`` (list of ``{series_uid, reason}``: series whose core features were
stored but whose ``--radiomics`` failed).

Exit 2 when the one ``--series`` asked for failed, when ``--radiomics`` could not run
because its optional extra is missing (stderr says how to install it), or when the
radiomics of the one ``--series`` failed; a batch with some failed series exits 0 and lists
them. ``segmentation`` in the JSON says which engine the run used for CT and MR (see
``analytics.features.totalseg.engine_summary``); ``--engines`` prints only that and runs
nothing. ``--segmentation totalsegmentator`` without TotalSegmentator and its weights
exits 2 before any series, naming how to install it.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from analytics.cli import EXIT_BAD_INPUT, EXIT_OK, CommandResult, command
from analytics.config import Settings
from analytics.features.batch import run_batch
from analytics.features.extract import FeatureSettings
from analytics.features.totalseg import engine_summary
from analytics.store.db import open_store


@command("features")
def features_command(args: argparse.Namespace, settings: Settings) -> CommandResult:
    engines = engine_summary(args.segmentation)
    if args.engines:
        return CommandResult({"segmentation": engines}, _engines_text(engines))
    store = open_store(settings)
    bar = None

    def progress(done: int, total: int, series_uid: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, file=sys.stderr, unit="series", desc="features",
                       disable=not sys.stderr.isatty() and not args.verbose)
        bar.n = done
        bar.set_postfix_str(series_uid[-12:], refresh=False)
        bar.refresh()

    try:
        report = run_batch(
            store, settings, series_uids=None if args.all else [args.series],
            workers=args.workers, scheduler=args.scheduler or settings.dask_scheduler,
            radiomics=args.radiomics or args.radiomics_config is not None,
            radiomics_config=args.radiomics_config, progress=progress,
            feature_settings=FeatureSettings(segmentation=args.segmentation))
    finally:
        if bar is not None:
            bar.close()
        store.dispose()
    payload = report.as_payload()
    payload["segmentation"] = engines
    summary = (f"features: {payload['series_done']} series done, "
               f"{len(payload['series_failed'])} failed, {payload['series_skipped']} "
               f"already done, {payload['seconds']:.1f} s")
    for f in payload["series_failed"]:
        summary += f"\n  failed {f['series_uid']}: {f['reason']}"
    for f in payload["radiomics_failed"]:
        summary += f"\n  radiomics failed {f['series_uid']} (core features stored): " \
                   f"{f['reason']}"
    # one requested series that failed is bad input; a batch with some failures is not
    code = EXIT_BAD_INPUT if args.series and payload["series_failed"] else EXIT_OK
    if payload["radiomics_failed"] and (args.series or report.missing_extra):
        code = EXIT_BAD_INPUT
        print(f"hepatrack features: radiomics failed for {len(payload['radiomics_failed'])} "
              f"series (core features stored): {payload['radiomics_failed'][0]['reason']}",
              file=sys.stderr)
    return CommandResult(payload, summary, code)


def _engines_text(engines: dict) -> str:
    lines = [f"segmentation {engines['requested']}:"]
    for modality in ("CT", "MR"):
        e = engines[modality]
        ts = e["totalsegmentator"]
        lines.append(f"  {modality}: {e['engine'] or 'none: ' + e['reason']}")
        if not ts["available"]:
            lines.append(f"    TotalSegmentator not used: {ts['reason']}")
        lines += [f"    note: {n}" for n in ts["notes"]]
    return "\n".join(lines)
