"""``hepatrack train`` and ``hepatrack predict``."""

from __future__ import annotations

import argparse
from typing import Any

from analytics import audit
from analytics.cli import CommandResult, command
from analytics.cohort_types import CohortTable
from analytics.config import Settings
from analytics.errors import ModelError
from analytics.models.predict import patient_trajectory
from analytics.models.registry import RegisteredModel, jsonable, load_model
from analytics.models.settings import ModelSettings, SettingsError
from analytics.models.training import find_truth, load_truth, train_model, truth_for_cohort
from analytics.store import open_store
from analytics.store.db import Store
from analytics.store.models import StoredPrediction, replace_predictions


def load_cohort(store: Store) -> CohortTable:
    """The cohort table from the store (``analytics.cohort.build_cohort``)."""
    try:
        from analytics.cohort import build_cohort
    except ImportError as e:
        raise ModelError("the cohort builder (analytics.cohort.build_cohort) is not "
                         "available in this installation") from e
    return build_cohort(store)


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


@command("train")
def train(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    cohort = load_cohort(store)
    truth_path = find_truth(settings, getattr(args, "truth", None))
    truth = truth_for_cohort(load_truth(truth_path), store, cohort) if truth_path else None
    model_settings = settings_from_args(args)
    detail = {"model": args.model, "event": args.event or "default", "cv": args.cv}
    with audit.audited(store, None, "train", detail=detail):
        payload = train_model(store, settings, cohort, model_settings, truth=truth)
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
    return CommandResult(payload, "\n".join(lines))


def _f(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def cache_predictions(store: Store, result: dict[str, Any]) -> int:
    """Store a trajectory's rows in ``predictions`` (replacing earlier ones); rows written."""
    mid = result.get("model_id")
    if mid is None:
        return 0
    return replace_predictions(store, mid, result["patient"], (
        StoredPrediction(time_years=r["time"], horizon_years=r["horizon"], risk=r["risk"],
                         ci_low=(r.get("ci") or [None, None])[0],
                         ci_high=(r.get("ci") or [None, None])[1], reason=r.get("reason"),
                         explanation=jsonable({"shap": r["shap"], "base_value": r["base_value"],
                                               "shap_scale": r["shap_scale"],
                                               "model_output": r["model_output"]}))
        for r in result["trajectory"]))


def predict_patients(store: Store, model: RegisteredModel, cohort: CohortTable,
                     patients: list[str], horizon: float | None, at: float | None,
                     cache: bool = True) -> list[dict[str, Any]]:
    """Trajectories of ``patients`` (cached in the store when ``cache``)."""
    out = []
    for p in patients:
        res = jsonable(patient_trajectory(model, cohort.visits, p, horizon=horizon, at=at))
        if cache:
            cache_predictions(store, res)
        out.append(res)
    return out


@command("predict")
def predict(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    model = load_model(store, settings, getattr(args, "model_id", None))
    cohort = load_cohort(store)
    known = sorted(set(cohort.visits["patient"]))
    if args.all:
        patients = known
    else:
        if args.patient not in known:
            raise ModelError(f"--patient {args.patient}: no visits for this patient in the "
                             "cohort")
        patients = [args.patient]
    with audit.audited(store, None, "predict", model_version=model.model_id,
                       patient=None if args.all else args.patient,
                       detail={"patients": len(patients)}):
        results = predict_patients(store, model, cohort, patients, args.horizon, args.at)
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
