"""Model use cases: train (``Permission.TRAIN``, audited ``train``), predict trajectories
(``Permission.PREDICT``, audited ``predict``; cached in the store) and choose the active
model (``Permission.ACTIVATE_MODEL``, audited ``activate_model``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.audit import SYSTEM
from analytics.auth import Permission, allowed
from analytics.cohort import build_cohort
from analytics.cohort_types import CohortTable
from analytics.errors import ConfigError, ModelError
from analytics.explain import patient_trajectories_json
from analytics.models.progress import ProgressCallback
from analytics.models.registry import RegisteredModel, load_model
from analytics.models.scoring import resolve_horizon
from analytics.models.settings import ModelSettings
from analytics.models.training import Truth, train_model
from analytics.store.models import (
    StoredPrediction,
    model_exists,
    replace_patients_predictions,
    set_active_model,
)
from analytics.usecases.context import Context, audited, authorize
from analytics.usecases.current_risk import record_cohort_risk, record_patients_risk

__all__ = ["PredictRequest", "TrainRequest", "activate_model", "predict", "train"]


@dataclass(frozen=True)
class TrainRequest:
    """What to train on and how; ``activate`` asks for the new model to become active
    (granted only to a role that may activate models); ``created_by`` names who made it
    (default the actor; nobody for the command line); ``progress`` hears every fold,
    bootstrap replicate and the final fit (``analytics.models.progress``)."""

    cohort: CohortTable
    model_settings: ModelSettings
    activate: bool = True
    truth: Truth | None = None
    created_by: str | None = None
    progress: ProgressCallback | None = None


@dataclass(frozen=True)
class PredictRequest:
    """Patients to score (every patient of the cohort when ``patients`` is None);
    ``record_current`` also stores the named patients' current risk at every horizon of
    the model (the Ingest page after their new scans; the whole cohort's is stored
    whenever every patient is scored)."""

    patients: list[str] | None = None
    horizon: float | None = None
    at: float | None = None
    model_id: str | None = None
    cache: bool = True
    record_current: bool = False


def _settings(ctx: Context):
    if ctx.settings is None:
        raise ConfigError("models: the site settings (models folder) are needed")
    return ctx.settings


def train(ctx: Context, req: TrainRequest) -> dict[str, Any]:
    """Cross-validate, fit and register a model (``analytics.models.training``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not train (refusal audited).
    ModelError
        On a cohort too small to model or an endpoint it does not have.
    """
    actor = authorize(ctx, Permission.TRAIN, "train")
    ms = req.model_settings
    detail = {"model": ms.kind, "event": ",".join(ms.event) if ms.event else "default",
              "cv": ms.folds, "horizons": ",".join(f"{h:g}" for h in ms.horizons)}
    # the command line's models are shown as trained by "the command line"
    created_by = req.created_by or (None if actor == SYSTEM else actor.username)
    with audited(ctx, "train", detail=detail):
        res = train_model(ctx.store, _settings(ctx), req.cohort, ms, truth=req.truth,
                          activate=req.activate and allowed(actor, Permission.ACTIVATE_MODEL),
                          created_by=created_by, progress=req.progress)
        # the new model's current risk, so the cohort list can sort by it in SQL
        record_cohort_risk(ctx.store, load_model(ctx.store, _settings(ctx), res["model_id"]),
                           req.cohort.visits)
        return res


def _stored(res: dict[str, Any]) -> list[StoredPrediction]:
    """The cached rows of one patient's ``predict`` JSON (strict JSON values already)."""
    return [StoredPrediction(time_years=r["time"], horizon_years=r["horizon"], risk=r["risk"],
                             ci_low=(r.get("ci") or [None, None])[0],
                             ci_high=(r.get("ci") or [None, None])[1], reason=r.get("reason"),
                             explanation={"shap": r["shap"], "base_value": r["base_value"],
                                          "shap_scale": r["shap_scale"],
                                          "model_output": r["model_output"]})
            for r in res["trajectory"]]


def _trajectories(store, model: RegisteredModel, cohort: CohortTable, patients: list[str],
                  req: PredictRequest) -> list[dict[str, Any]]:
    """Every patient's ``predict`` JSON, scored together
    (:func:`analytics.explain.patient_trajectories_json`) and cached in one transaction."""
    out = patient_trajectories_json(model, cohort.visits, patients, horizon=req.horizon,
                                    at=req.at)
    if req.cache:
        replace_patients_predictions(store, model.model_id, {
            res["patient"]: _stored(res) for res in out if res.get("model_id") is not None})
    if req.patients is None and req.at is None:
        # every patient scored: their current risk at this horizon, for the cohort list
        record_cohort_risk(store, model, cohort.visits,
                           [resolve_horizon(model.model, req.horizon)])
    elif req.record_current and req.at is None:
        # these patients' current risk, from the rows just built (their own alone)
        record_patients_risk(store, model, cohort.visits)
    return out


def predict(ctx: Context, req: PredictRequest) -> list[dict[str, Any]]:
    """Risk trajectories (``analytics.explain.patient_trajectory``), one per patient,
    scored together and cached in the ``predictions`` table.

    Raises
    ------
    PermissionDeniedError
        If the actor may not predict (refusal audited).
    ModelError
        No model, or a patient without visits in the cohort.
    """
    authorize(ctx, Permission.PREDICT, "predict")
    model = load_model(ctx.store, _settings(ctx), req.model_id)
    # one patient is scored from that patient's rows alone, not from the whole cohort
    cohort = build_cohort(ctx.store, patients=None if req.patients is None
                          else list(req.patients))
    known = sorted(set(cohort.visits["patient"]))
    if req.patients is None:
        patients = known
    else:
        patients = list(req.patients)
        for p in patients:
            if p not in known:
                raise ModelError(f"--patient {p}: no visits for this patient in the cohort")
    with audited(ctx, "predict", model_version=model.model_id,
                 patient=patients[0] if req.patients is not None and len(patients) == 1
                 else None, detail={"patients": len(patients)}):
        return _trajectories(ctx.store, model, cohort, patients, req)


def activate_model(ctx: Context, model_id: str) -> None:
    """Make ``model_id`` the one active model.

    Raises
    ------
    PermissionDeniedError
        If the actor may not activate models (refusal audited).
    ModelError
        If the model is not registered.
    """
    authorize(ctx, Permission.ACTIVATE_MODEL, "activate_model")
    if not model_exists(ctx.store, model_id):
        raise ModelError(f"model {model_id}: not in the registry")
    with audited(ctx, "activate_model", model_version=model_id):
        set_active_model(ctx.store, model_id)
