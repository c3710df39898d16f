"""The ``hepatrack`` command (also ``python -m analytics``).

Exit status: 0 on success, 2 on bad input (one line on stderr saying what and where),
1 on internal failure. ``--json`` output keys are a stable contract (ARCHITECTURE.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from analytics.config import Settings, load_settings
from analytics.errors import HepaTrackError
from analytics.features import radiomics_configs
from analytics.models.settings import KINDS, ModelSettings

log = logging.getLogger("hepatrack")

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


class CommandResult:
    """What a command returns: a JSON-able payload, a human summary and an exit code."""

    def __init__(self, payload: Any, summary: str = "", exit_code: int = EXIT_OK) -> None:
        self.payload = payload
        self.summary = summary
        self.exit_code = exit_code


Handler = Callable[[argparse.Namespace, Settings], CommandResult]
_HANDLERS: dict[str, Handler] = {}

#: the module that registers each command; only the one asked for is imported, so
#: ``hepatrack ingest`` does not pay for the models, the cohort or the dashboard stack
COMMAND_MODULES: dict[str, str] = {
    "demo": "analytics.commands.demo",
    "serve": "analytics.commands.serve",
    "synth": "analytics.commands.synth",
    "ingest": "analytics.commands.ingest",
    "features": "analytics.commands.features",
    "import-cohort": "analytics.commands.cohort",
    "export": "analytics.commands.cohort",
    "train": "analytics.commands.models",
    "predict": "analytics.commands.models",
    "report": "analytics.commands.report",
    "users": "analytics.commands.admin",
    "audit": "analytics.commands.admin",
    "masks": "analytics.commands.masks",
    "identity": "analytics.commands.identity",
    "series": "analytics.commands.series",
}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[name] = fn
        return fn

    return register


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


def _radiomics_config(name: str) -> str:
    if name not in radiomics_configs.CONFIGS:
        raise argparse.ArgumentTypeError(
            f"unknown radiomics configuration {name!r}; expected one of: "
            f"{', '.join(radiomics_configs.names())}")
    return name


def _radiomics_help() -> str:
    return radiomics_configs.help_text().replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    """The ``hepatrack`` parser: global options, then one sub-parser per command."""
    p = argparse.ArgumentParser(prog="hepatrack", description=__doc__.splitlines()[0])
    p.add_argument("--home", help="home directory (default $HEPATRACK_HOME or ./.hepatrack)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in _COMMAND_PARSERS:
        add_command(sub)
    return p


def _add_demo(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("demo", help="build the sample cohort and run every stage")
    s.add_argument("--patients", type=int, default=None)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--json", action="store_true")


def _add_serve(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="run the dashboard")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--address", default="localhost")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("synth", help="write a synthetic longitudinal cohort")
    s.add_argument("--patients", type=int, default=None, help="default 12 (or --config)")
    s.add_argument("--seed", type=int, default=None, help="default 7 (or --config)")
    s.add_argument("--out", required=True)
    s.add_argument("--full", action="store_true", help="512x512 slices at clinical spacing")
    s.add_argument("--imaging-patients", type=int, default=None, metavar="N",
                   help="only the first N patients get CT + SEG (the rest labs only)")
    s.add_argument("--config", default=None, help="cohort TOML, e.g. sample_data/demo.toml")
    s.add_argument("--workers", type=int, default=1, help="processes writing imaging")
    s.add_argument("--json", action="store_true")


def _add_ingest(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("ingest", help="ingest DICOM files, folders, zips or a DICOMweb URL")
    s.add_argument("sources", nargs="+", metavar="SOURCE")
    s.add_argument("--json", action="store_true")
    s.add_argument("--no-deidentify", action="store_true",
                   help="store identifiers as received (research sites with consent only)")
    s.add_argument("--patient", metavar="ID", default=None,
                   help="Patient ID for images whose Patient ID (0010,0020) is empty "
                        "(without it they are refused); never overrides a file's own")
    s.add_argument("--labels", metavar="TABLE", default=None,
                   help="label names of NIfTI label maps: value=name pairs (5=liver,1=spleen) "
                        "or totalsegmentator-v1 / -v2 / -mr / -liver-vessels")


def _add_features(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("features", help="extract imaging biomarkers")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--all", action="store_true")
    g.add_argument("--series", metavar="UID")
    g.add_argument("--engines", action="store_true",
                   help="say which segmentation engine a run would use on CT and MR, and "
                        "whether TotalSegmentator is installed with its weights; runs nothing")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--scheduler", metavar="ADDR",
                   help="address of a running dask scheduler (tcp://host:8786); default "
                        "the dask_scheduler setting or HEPATRACK_SCHEDULER, else a "
                        "local cluster of --workers processes")
    s.add_argument("--radiomics", action="store_true",
                   help="also compute IBSI radiomics with MIRP (research mode)")
    s.add_argument("--radiomics-config", metavar="NAME", type=_radiomics_config, default=None,
                   help="radiomics configuration (implies --radiomics; default: the site's "
                        "radiomics_config setting): " + _radiomics_help())
    s.add_argument("--segmentation", choices=["auto", "classical", "totalsegmentator"],
                   default="auto",
                   help="engine for organs without a delivered mask: auto (TotalSegmentator "
                        "if installed with its weights, else classical on CT; MR needs "
                        "TotalSegmentator or a mask), classical (CT only), totalsegmentator")
    s.add_argument("--json", action="store_true")


def _add_import_cohort(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("import-cohort", help="import visits and outcomes CSVs")
    s.add_argument("--visits", required=True)
    s.add_argument("--outcomes", required=True)
    s.add_argument("--sex-coding", metavar="CODE=SEX,...", default=None,
                   help="how the visits file's numeric sex codes read, e.g. 1=M,2=F "
                        "(without it numeric codes are left empty with a warning)")
    s.add_argument("--json", action="store_true")


def _model_defaults() -> argparse.Namespace:
    """The field defaults of :class:`ModelSettings`, read from the class: building an
    instance validates its landmark settings, which imports pandas for every command."""
    return argparse.Namespace(**{f.name: f.default for f in dataclasses.fields(ModelSettings)
                                 if f.default is not dataclasses.MISSING})


def _add_train(sub: argparse._SubParsersAction) -> None:
    d = _model_defaults()  # every default of ``train`` comes from the model settings
    s = sub.add_parser("train", help="train a survival model")
    s.add_argument("--model", choices=list(KINDS), default=d.kind)
    s.add_argument("--event", default=None, help="event(s) of interest, comma-separated")
    s.add_argument("--horizons", type=_float_list, default=list(d.horizons))
    s.add_argument("--cv", type=int, default=d.folds)
    s.add_argument("--repeats", type=int, default=d.repeats, help="repeats of the K-fold CV")
    s.add_argument("--bootstrap", type=int, default=d.n_bootstrap,
                   help="patient-bootstrap replicates for 95%% intervals")
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--truth", default=None,
                   help="synthetic truth.json for the oracle C-index (default: found in home)")
    s.add_argument("--json", action="store_true")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("predict", help="risk trajectory of a patient")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--patient", metavar="ID")
    g.add_argument("--all", action="store_true")
    s.add_argument("--at", type=float, default=None, metavar="T")
    s.add_argument("--horizon", type=float, default=None, metavar="H")
    s.add_argument("--model-id", default=None)
    s.add_argument("--json", action="store_true")


def _add_report(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("report", help="MDT PDF report")
    s.add_argument("--patient", required=True, action="append")
    s.add_argument("--out", required=True)


def _add_export(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("export", help="export features, cohort, predictions or masks")
    s.add_argument("--what", choices=["features", "cohort", "predictions", "masks"],
                   required=True)
    s.add_argument("--out", required=True, help="a .csv/.parquet file; a folder for masks")


def _add_masks(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("masks", help="list, reject or restore automatic masks")
    ms = s.add_subparsers(dest="masks_command", required=True)
    a = ms.add_parser("list")
    a.add_argument("--series", metavar="UID", default=None)
    a.add_argument("--json", action="store_true")
    for verb in ("reject", "restore"):
        a = ms.add_parser(verb)
        a.add_argument("--series", metavar="UID", required=True)
        a.add_argument("--organ", required=True, help="liver, spleen, ...")
        a.add_argument("--reason", required=verb == "reject", default=None)
        a.add_argument("--user", required=True, metavar="NAME",
                       help="the clinician's account the review is recorded under")
        a.add_argument("--json", action="store_true")


def _add_identity(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("identity", help="list or resolve studies held as identity conflicts")
    ids = s.add_subparsers(dest="identity_command", required=True)
    a = ids.add_parser("list")
    a.add_argument("--all", action="store_true", help="resolved holds too")
    a.add_argument("--json", action="store_true")
    a = ids.add_parser("resolve")
    a.add_argument("--hold", type=int, required=True, metavar="N", help="from identity list")
    a.add_argument("--decision", choices=["same", "different"], required=True,
                   help="same: file under the stored patient; different: a new patient")
    a.add_argument("--user", required=True, metavar="NAME",
                   help="the clinician's account the decision is recorded under")
    a.add_argument("--json", action="store_true")


def _add_series(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("series", help="complete, replace or remove a stored series")
    ss = s.add_subparsers(dest="series_command", required=True)
    for verb, what in (("complete", "re-sent instances (files or folders)"),
                       ("replace", "the series stored in its place (files or folders)")):
        a = ss.add_parser(verb)
        a.add_argument("--series", metavar="UID", required=True, help="the stored series UID")
        a.add_argument("files", nargs="+", metavar="FILE", help=what)
        a.add_argument("--user", metavar="NAME", default=None,
                       help="the account the action is recorded under (default: system)")
        a.add_argument("--json", action="store_true")
    a = ss.add_parser("remove")
    a.add_argument("--series", metavar="UID", required=True)
    a.add_argument("--user", metavar="NAME", default=None)
    a.add_argument("--json", action="store_true")


def _add_users(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("users", help="manage local accounts")
    us = s.add_subparsers(dest="users_command", required=True)
    a = us.add_parser("add")
    a.add_argument("username")
    a.add_argument("--role", choices=["clinician", "researcher", "admin"], required=True)
    a.add_argument("--password", default=None, help="default: read from stdin")
    us.add_parser("list")


def _add_audit(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("audit", help="audit trail")
    au = s.add_subparsers(dest="audit_command", required=True)
    v = au.add_parser("verify")
    v.add_argument("--file", default=None, help="verify an export written by 'audit export'")
    e = au.add_parser("export")
    e.add_argument("--out", required=True, help="JSON file: records, hashes and the anchor")


#: the sub-parser of every command, in the order ``hepatrack --help`` lists them
_COMMAND_PARSERS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_demo, _add_serve, _add_synth, _add_ingest, _add_features, _add_import_cohort,
    _add_train, _add_predict, _add_report, _add_export, _add_masks, _add_identity,
    _add_series, _add_users, _add_audit,
)


def _emit(result: CommandResult, as_json: bool) -> None:
    if as_json:
        if isinstance(result.payload, list) and result.payload:
            # one element per line: Python's indenting encoder is pure Python and took
            # most of a minute on every patient of a cohort; the compact one is C
            sys.stdout.write("[\n" + ",\n".join(
                json.dumps(x, default=str, allow_nan=False) for x in result.payload)
                + "\n]\n")
            return
        json.dump(result.payload, sys.stdout, indent=2, default=str, allow_nan=False)
        sys.stdout.write("\n")
    elif result.summary:
        print(result.summary)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        _quiet_libraries()
    try:
        handler = load_handler(args.command)
        settings = load_settings(args.home)
        if handler is None:
            print(f"hepatrack: command {args.command!r} is not available yet", file=sys.stderr)
            return EXIT_INTERNAL
        result = handler(args, settings)
    except HepaTrackError as e:
        print(f"hepatrack {args.command}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("hepatrack: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal bug: one line here, the traceback in the log
        log.exception("internal failure in %s", args.command)
        print(f"hepatrack {args.command}: internal error: {type(e).__name__}: {e}",
              file=sys.stderr)
        return EXIT_INTERNAL
    _emit(result, getattr(args, "json", False))
    return result.exit_code


def _quiet_libraries() -> None:
    """Keep the terminal for HepaTrack's own messages; -v shows the libraries' chatter."""
    import warnings

    # dask.distributed logs every scheduler/worker event at INFO through its own handlers
    for name in ("distributed", "distributed.scheduler", "distributed.nanny",
                 "distributed.core", "distributed.worker", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # near-constant history columns in some landmark folds: the fit is penalised and sound
    warnings.filterwarnings("ignore", message=r".*have very low variance.*")


def load_handler(name: str) -> Handler | None:
    """The handler of command ``name``, importing only the module that registers it.

    Returns None for a command with no handler module.
    """
    import importlib

    module = COMMAND_MODULES.get(name)
    if module is None:
        return None
    importlib.import_module(module)
    return _HANDLERS.get(name)


if __name__ == "__main__":  # pragma: no cover
    # run as ``python -m analytics.cli``: handlers register in the imported module's
    # table, not in this ``__main__`` copy, so dispatch through the real module
    from analytics.cli import main as _main

    sys.exit(_main())
