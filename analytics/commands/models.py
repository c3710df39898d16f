"""``hepatrack train`` and ``hepatrack predict`` (the system account acts)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from analytics.cli import CommandResult, command
from analytics.cohort import build_cohort
from analytics.config import Settings
from analytics.models.progress import ProgressCallback, TrainingStep
from analytics.models.settings import ModelSettings, SettingsError
from analytics.models.training import find_truth, load_truth, truth_for_cohort
from analytics.store import open_store
from analytics.usecases import models as model_use_cases
from analytics.usecases.context import Context

#: ``hepatrack train`` flags -> ModelSettings fields (the one place they are mapped)
TRAIN_FLAGS = {"model": "kind", "event": "event", "horizons": "horizons", "cv": "folds",
               "repeats": "repeats", "bootstrap": "n_bootstrap", "seed": "seed"}


def settings_from_args(args: argparse.Namespace) -> ModelSettings:
    """The :class:`ModelSettings` of ``hepatrack train`` flags.

    Raises
    ------
    SettingsError
        Naming the flag (and its field) when a value is out of range.
    """
    values = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items()
              if getattr(args, flag, None) is not None}
    try:
        return ModelSettings.from_mapping(values)
    except SettingsError as e:
        flag = next((f for f, name in TRAIN_FLAGS.items() if name == e.field), e.field)
        raise SettingsError(e.field, e.detail,
                            label=f"--{flag} {values.get(e.field)!s} ({e.field})") from e


#: stages whose every step is printed; the bootstrap prints about every tenth replicate
_EVERY_STEP = {"folds", "imaging_folds", "baselines", "final_fit"}


def stderr_progress(stream: TextIO | None = None) -> ProgressCallback:
    """Training progress as lines on stderr (stdout stays the command's result, so
    ``--json`` output is unchanged): every fold, score and the final fit, and about one
    line in ten bootstrap replicates."""
    def show(step: TrainingStep) -> None:
        if step.done == 0:
            return
        every = 1 if step.stage in _EVERY_STEP else max(1, step.total // 10)
        if step.done % every == 0 or step.done == step.total:
            print(f"[{100 * step.fraction:3.0f}%] {step.describe()}",
                  file=stream or sys.stderr, flush=True)
    return show


@command("train")
def train(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    cohort = build_cohort(store)
    truth_path = find_truth(settings, getattr(args, "truth", None))
    truth = truth_for_cohort(load_truth(truth_path), store, cohort) if truth_path else None
    model_settings = settings_from_args(args)
    payload = model_use_cases.train(Context.cli(store, settings), model_use_cases.TrainRequest(
        cohort, model_settings, truth=truth, progress=stderr_progress()))
    if truth_path:
        payload["truth_file"] = str(truth_path)
    cv = payload["cv"]
    lines = [f"model {payload['model_id']} ({payload['model']}) for {payload['event']}: "
             f"{payload['n_patients']} patients, {payload['n_landmark_rows']} landmark rows",
             f"  cross-validated C-index {_f(cv['c_index'])}  Uno's C {_f(cv['uno_c'])}  "
             f"IBS {_f(cv['ibs'])}  calibration slope {_f(cv['calibration_slope'])}",
             "  td-AUC " + "  ".join(f"{h} y {_f(v)}" for h, v in cv["td_auc"].items())]
    if "oracle_c_index" in payload:
        lines.append(f"  oracle C-index (true hazard) {_f(payload['oracle_c_index'])}")
    for name, b in payload["baselines"].items():
        lines.append(f"  baseline {b.get('label', name)}: C-index {_f(b['c_index'])} "
                     f"(model on the same rows {_f(b['model_c_index_same_rows'])})")
    lines += imaging_lines(payload.get("imaging_comparison") or {})
    return CommandResult(payload, "\n".join(lines))


def _f(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _d(x: Any, ci: Any) -> str:
    """A difference with its 95% interval: ``+0.046 [+0.021, +0.070]``."""
    if x is None:
        return "n/a"
    lo, hi = ci if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
    interval = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else ""
    return f"{x:+.3f}{interval}"


def imaging_lines(comparison: dict[str, Any]) -> list[str]:
    """``hepatrack train``'s lines on what imaging adds (with - without imaging)."""
    if comparison.get("status") != "compared":
        msg = comparison.get("message")
        return [f"  what imaging adds: {msg}"] if msg else []
    lines = ["  what imaging adds (" + ", ".join(comparison["imaging_features"])
             + "; with - without imaging, paired bootstrap 95% CI):"]
    for key in ("all", "with_scans"):
        part = comparison.get(key) or {}
        if not part:
            continue
        head = (f"    {part['label']} ({part['n_patients']} patients, {part['n_events']} "
                "with the event): ")
        if part.get("message"):
            lines.append(head + part["message"])
            continue
        w, wo, d = part["with_imaging"], part["without_imaging"], part["difference"]
        lines.append(head + f"C-index {_f(w['c_index'])} vs {_f(wo['c_index'])}, "
                     f"difference {_d(d['c_index'], d['c_index_ci'])}")
        lines.append("      td-AUC difference " + "  ".join(
            f"{h} y {_d(v, d['td_auc_ci'].get(h))}" for h, v in d["td_auc"].items()))
    return lines


@command("predict")
def predict(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    request = model_use_cases.PredictRequest(
        patients=None if args.all else [args.patient], horizon=args.horizon, at=args.at,
        model_id=getattr(args, "model_id", None))
    results = model_use_cases.predict(Context.cli(store, settings), request)
    lines = []
    for res in results:
        lines.append(f"{res['patient']}  model {res['model_id']}  {res['horizon']:g}-year "
                     f"risk of {res['event']}")
        for r in res["trajectory"]:
            head = f"  t={r['time']:.2f} y {r['date'] or '':<10} "
            if r["risk"] is None:
                lines.append(head + f"not assessable: {r['reason']}")
            else:
                ci = f" [{r['ci'][0]:.1%}-{r['ci'][1]:.1%}]" if r["ci"] else ""
                why = "; ".join(r["contributions"][:2])
                lines.append(head + f"{r['risk']:.1%}{ci}  {why}")
    payload: Any = results if args.all else results[0]
    return CommandResult(payload, "\n".join(lines))
