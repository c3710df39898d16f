"""Model registry: versioned artifacts under ``settings.models_dir`` and ``models`` rows.

An artifact is one JSON file, ``<models_dir>/<model_id>/model.json``: estimator
parameters and coefficients, baseline hazards, xgboost boosters in xgboost's own JSON,
the design (imputation), the training domain, the background sample, metrics and the
model card. An estimator that cannot be JSON (none today: the random survival forest is
an xgboost booster since it replaced scikit-survival's) is pickled beside it and the JSON
records each pickle's sha256; a pickle is only unpickled after the artifact's own hash
(checked against the database row) and the pickle's hash both match. An artifact whose
``rsf`` estimators are pickled scikit-survival forests is refused with a request to
retrain.

Loading refuses (:class:`ModelIntegrityError`) a hash mismatch, a missing or inconsistent
card, missing/changed horizons, missing or invalid training ranges, and a feature list
that differs from the database row. An artifact of another format version, or whose
stored settings no longer validate, is refused with a message asking for a retrain.

:func:`load_model` returns a :class:`RegisteredModel`: the fitted
:class:`~analytics.models.predict.LandmarkModel` with its id, card and metrics beside it,
never written onto it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import pickle
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.cohort_types import CohortTable
from analytics.config import Settings
from analytics.errors import ModelError, ModelIntegrityError
from analytics.models.card import check_card
from analytics.models.domain import TrainingDomain
from analytics.models.endpoint import EventSpec
from analytics.models.estimators import (
    ESTIMATORS,
    Design,
    SurvivalEstimator,
    estimator_from_json,
)
from analytics.models.history_spec import FeatureSpec
from analytics.models.landmark import LandmarkSettings
from analytics.models.predict import LandmarkModel
from analytics.models.settings import ModelSettings, SettingsError
from analytics.store import models as repo
from analytics.store.db import Store
from analytics.store.models import ModelRow

FORMAT = "hepatrack-landmark-model/1"
ARTIFACT = "model.json"


@dataclass(frozen=True)
class RegisteredModel:
    """A fitted model with what the registry adds to it: its id, card and metrics.

    Built by training (before saving) and by :func:`load_model`; the fitted
    :attr:`model` itself is never changed.

    Attributes
    ----------
    model
        The fitted landmark model.
    model_id
        Registry id (``<kind>-<UTC time>-<random>``).
    card
        Model card (:func:`analytics.models.card.build_card`).
    metrics
        Cross-validated metrics, clinical baselines and the oracle C-index.
    """

    model: LandmarkModel
    model_id: str
    card: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def horizons(self) -> list[float]:
        return self.model.horizons

    @property
    def events(self) -> EventSpec:
        return self.model.events_

    @property
    def features(self) -> list[str]:
        return self.model.features


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers and NaN/inf as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if hasattr(obj, "to_json") and callable(obj.to_json):
        return jsonable(obj.to_json())
    return obj


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def training_data_hash(cohort: CohortTable) -> str:
    """sha256 of the cohort's visits and outcomes in a canonical CSV form."""
    v = cohort.visits.sort_values(["patient", "time"], kind="stable")
    v = v[sorted(v.columns)]
    o = cohort.outcomes.sort_values("patient", kind="stable")
    o = o[sorted(o.columns)]
    h = hashlib.sha256()
    h.update(v.to_csv(index=False, float_format="%.10g").encode())
    h.update(b"\0")
    h.update(o.to_csv(index=False, float_format="%.10g").encode())
    return h.hexdigest()


def new_model_id(kind: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{kind}-{stamp}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- save
def _estimator_json(est: SurvivalEstimator, folder: Path, name: str) -> dict[str, Any]:
    d = est.to_json()
    if est.pickled_attribute is not None:  # the JSON records the pickle's sha256
        data = pickle.dumps(getattr(est, est.pickled_attribute),
                            protocol=pickle.HIGHEST_PROTOCOL)
        fname = f"{name}.pkl"
        (folder / fname).write_bytes(data)
        d["pickle"] = {"file": fname, "sha256": sha256_bytes(data)}
    return d


def save_model(store: Store, settings: Settings, registered: RegisteredModel, *,
               training_data_sha256: str, activate: bool = True,
               created_by: str | None = None) -> str:
    """Write the artifact and its ``models`` row; returns the model id.

    The artifact is written to a temporary directory and renamed into place, then the
    row is inserted; if the insert fails the artifact is removed (nothing half-written).

    Raises
    ------
    ModelError
        If the model has no id, card or training domain.
    """
    model, mid = registered.model, registered.model_id
    if not mid or not registered.card or model.domain_ is None:
        raise ModelError("save_model: the model needs model_id, card and domain before saving")
    settings.ensure_home()
    final = settings.models_dir / mid
    tmp = settings.models_dir / f".{mid}.tmp"
    if final.exists():
        raise ModelError(f"model {mid}: an artifact already exists at {final}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        lm = model.landmark_settings_
        doc = {
            "format": FORMAT, "model_id": mid, "kind": model.kind,
            "events": model.events_.to_json(),
            "settings": {"horizons": list(lm.horizons), "step": lm.step,
                         "landmark_max": lm.landmark_max, "at_visits": lm.at_visits,
                         "interactions": lm.interactions, "min_at_risk": lm.min_at_risk,
                         "min_at_risk_fraction": lm.min_at_risk_fraction},
            "spec": model.spec_.to_json(), "design": model.design_.to_json(),
            "landmarks": model.landmarks_, "params": model.params,
            "features": model.features,
            "estimators": {c: _estimator_json(e, tmp, f"estimator-{c}")
                           for c, e in model.estimators_.items()},
            "ensemble": [_estimator_json(e, tmp, f"ensemble-{i}")
                         for i, e in enumerate(model.ensemble_)],
            "domain": model.domain_.to_json(),
            "background": {"columns": list(model.background_.columns),
                           "values": model.background_.to_numpy(np.float64).tolist()}
            if model.background_ is not None else None,
            "card": dict(registered.card), "metrics": dict(registered.metrics),
            "training_data_sha256": training_data_sha256,
        }
        data = json.dumps(jsonable(doc), sort_keys=True, allow_nan=False).encode("utf-8")
        with open(tmp / ARTIFACT, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        repo.add_model(store, ModelRow(
            model_id=mid, kind=model.kind, event=model.events_.label,
            horizons=[float(h) for h in model.horizons],
            content_sha256=sha256_bytes(data),
            training_data_sha256=training_data_sha256,
            artifact_path=str((final / ARTIFACT).relative_to(settings.home)),
            features=model.features, training_ranges=jsonable(model.domain_.ranges),
            metrics=jsonable(dict(registered.metrics)), card=jsonable(dict(registered.card)),
            created_by=created_by), activate=activate)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return mid


# --------------------------------------------------------------------------- load
def _record(store: Store, model_id: str | None) -> ModelRow:
    rec = repo.find_model(store, model_id)
    if rec is None:
        raise ModelError(f"model {model_id}: not in the registry" if model_id else
                         "no trained model in the registry; run `hepatrack train` first")
    return rec


def list_models(store: Store) -> list[dict[str, Any]]:
    """Registered models, newest first (id, kind, event, horizons, active, C-index)."""
    return [{"model_id": r.model_id, "kind": r.kind, "event": r.event,
             "horizons": r.horizons, "active": r.active,
             "created_at": r.created_at.isoformat() if r.created_at else None,
             "c_index": (r.metrics or {}).get("cv", {}).get("c_index")}
            for r in repo.list_models(store)]


def _load_estimator(d: dict[str, Any], folder: Path) -> SurvivalEstimator:
    cls = ESTIMATORS.get(d.get("kind", ""))
    if cls is not None and cls.pickled_attribute is None and "pickle" in d:
        # scikit-survival forests (kind rsf) were pickled; RSF is an xgboost forest now
        raise ModelIntegrityError(
            f"model artifact {folder}: its {d['kind']} estimator is a pickled forest of an "
            f"earlier HepaTrack version, which this version no longer loads; retrain it "
            f"(hepatrack train --model {d['kind']})")
    if cls is None or cls.pickled_attribute is None:
        return estimator_from_json(d)
    info = d.get("pickle") or {}
    path = folder / str(info.get("file", ""))
    if not info.get("file") or "/" in info["file"] or not path.is_file():
        raise ModelIntegrityError(f"model artifact {folder}: forest file is missing")
    data = path.read_bytes()
    if sha256_bytes(data) != info.get("sha256"):
        raise ModelIntegrityError(f"model artifact {path}: sha256 mismatch; refusing to load")
    # our own artifact; both hashes verified above
    return estimator_from_json(d, pickle.loads(data))


def _format_version(fmt: Any) -> int | None:
    prefix = FORMAT.rsplit("/", 1)[0] + "/"
    if isinstance(fmt, str) and fmt.startswith(prefix) and fmt[len(prefix):].isdigit():
        return int(fmt[len(prefix):])
    return None


def _check_format(fmt: Any, mid: str) -> None:
    """Refuse an artifact of another format version, saying what to do about it."""
    if fmt == FORMAT:
        return
    version, ours = _format_version(fmt), _format_version(FORMAT)
    if version is not None and ours is not None and version < ours:
        raise ModelIntegrityError(f"model {mid} was trained by an older HepaTrack version "
                                  f"(artifact format {fmt}, this version reads {FORMAT}); "
                                  "retrain it")
    if version is not None:
        raise ModelIntegrityError(f"model {mid} was trained by a newer HepaTrack version "
                                  f"(artifact format {fmt}, this version reads {FORMAT}); "
                                  "upgrade HepaTrack or retrain it")
    raise ModelIntegrityError(f"model {mid}: artifact format mismatch ({fmt!r})")


def _landmark_settings(s: dict[str, Any]) -> LandmarkSettings:
    """The landmark settings stored in an artifact (defaults for keys older ones lack)."""
    return LandmarkSettings(
        horizons=tuple(float(h) for h in s["horizons"]), step=float(s["step"]),
        landmark_max=s.get("landmark_max"), at_visits=bool(s.get("at_visits", False)),
        interactions=bool(s.get("interactions", False)),
        min_at_risk=int(s.get("min_at_risk", 20)),
        min_at_risk_fraction=float(s.get("min_at_risk_fraction", 0.2)))


def load_model(store: Store, settings: Settings, model_id: str | None = None) -> RegisteredModel:
    """Load a registered model (the active one by default) after integrity checks.

    Raises
    ------
    ModelError
        If no such model is registered.
    ModelIntegrityError
        If the artifact is missing, its sha256 differs from the row, or its card,
        horizons, training ranges or features are missing or inconsistent.
    """
    rec = _record(store, model_id)
    mid = rec.model_id
    path = (settings.home / rec.artifact_path).resolve()
    if settings.home.resolve() not in path.parents or not path.is_file():
        raise ModelIntegrityError(f"model {mid}: artifact {rec.artifact_path} is missing")
    data = path.read_bytes()
    if sha256_bytes(data) != rec.content_sha256:
        raise ModelIntegrityError(f"model {mid}: artifact sha256 {sha256_bytes(data)[:12]}... "
                                  f"does not match the registry ({rec.content_sha256[:12]}...); "
                                  "refusing to load")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ModelIntegrityError(f"model {mid}: artifact is not valid JSON ({e})") from e
    _check_format(doc.get("format"), mid)
    if doc.get("model_id") != mid:
        raise ModelIntegrityError(f"model {mid}: artifact format/id mismatch "
                                  f"({doc.get('format')!r}, {doc.get('model_id')!r})")
    horizons = doc.get("settings", {}).get("horizons")
    if not horizons or not rec.horizons or any(
            not isinstance(h, int | float) or h <= 0 for h in horizons):
        raise ModelIntegrityError(f"model {mid}: horizons are missing or invalid ({horizons!r})")
    if [float(h) for h in horizons] != [float(h) for h in rec.horizons]:
        raise ModelIntegrityError(f"model {mid}: artifact horizons {horizons} differ from the "
                                  f"registry's {rec.horizons}")
    check_card(doc.get("card"), mid, horizons)
    check_card(rec.card, mid, horizons)
    if doc.get("features") != rec.features:
        raise ModelIntegrityError(f"model {mid}: feature list differs from the registry")
    try:
        spec = FeatureSpec.from_json(doc["spec"])
        design = Design.from_json(doc["design"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelIntegrityError(f"model {mid}: artifact is incomplete ({e})") from e
    # every numeric model input must have a training range (one-hot levels have levels)
    needed = sorted({design.source_column(c) for c in design.columns if "=" not in c}
                    - {"landmark_years_sq"})
    domain = TrainingDomain.from_json(doc.get("domain"), needed)
    TrainingDomain.from_json({"ranges": rec.training_ranges or {}}, needed)
    if jsonable(domain.ranges) != rec.training_ranges:
        raise ModelIntegrityError(f"model {mid}: training ranges differ from the registry")
    settings_obj = _landmark_settings(doc["settings"])
    folder = path.parent
    try:
        ests = {c: _load_estimator(d, folder) for c, d in doc["estimators"].items()}
        ensemble = [_load_estimator(d, folder) for d in doc.get("ensemble", [])]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelIntegrityError(f"model {mid}: artifact is incomplete ({e})") from e
    bg = doc.get("background")
    background = (pd.DataFrame(bg["values"], columns=bg["columns"]) if bg else None)
    if "interest" not in ests:
        raise ModelIntegrityError(f"model {mid}: no endpoint estimator in the artifact")
    try:
        model_settings = ModelSettings(kind=doc["kind"], horizons=settings_obj.horizons,
                                       params=doc.get("params") or {})
    except SettingsError as e:
        raise ModelIntegrityError(f"model {mid}: stored settings are invalid ({e}); "
                                  "retrain it") from e
    model = LandmarkModel.from_fitted(
        model_settings, events=EventSpec.from_json(doc["events"]),
        landmark_settings=settings_obj, spec=spec, design=design, estimators=ests,
        landmarks=list(doc["landmarks"]), ensemble=ensemble, background=background,
        domain=domain)
    return RegisteredModel(model, mid, card=doc["card"], metrics=doc.get("metrics", {}))
