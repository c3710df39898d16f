"""Training use case: cohort -> landmark rows -> cross-validation -> final fit -> registry.

``train_model`` is what ``hepatrack train`` and ``hepatrack demo`` call. The JSON it
returns is the ``train --json`` contract (ARCHITECTURE.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.cohort_types import CENSORED, CohortTable
from analytics.config import Settings
from analytics.errors import ModelError
from analytics.models.card import build_card
from analytics.models.crossval import CVSettings, cross_validate
from analytics.models.domain import TrainingDomain
from analytics.models.landmark import LandmarkSettings, build_landmark_data, resolve_events
from analytics.models.predict import LandmarkModel
from analytics.models.registry import jsonable, new_model_id, save_model, training_data_hash
from analytics.store.db import Store

log = logging.getLogger(__name__)

#: bootstrap refits of the endpoint model kept for GBM risk intervals
GBM_INTERVAL_REFITS = 20


def load_truth(path: str | Path) -> pd.DataFrame:
    """Read a synthetic cohort's ``truth.json`` into ``patient``, ``time``, ``true_log_hazard``.

    Accepts records carrying ``true_log_hazard`` (or ``log_hazard``) and a time
    (``time``/``time_years``/``t``), nested anywhere; the patient is the record's
    ``patient``/``patient_id``/``pseudonym`` or the key of the enclosing object.

    Raises
    ------
    ModelError
        If the file is unreadable or has no such records.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{p}: cannot read truth JSON ({e})") from e
    rows: list[dict[str, Any]] = []

    def walk(node: Any, patient: str | None) -> None:
        if isinstance(node, dict):
            pid = next((str(node[k]) for k in ("patient", "patient_id", "pseudonym")
                        if k in node and isinstance(node[k], str | int)), patient)
            lh = node.get("true_log_hazard", node.get("log_hazard"))
            t = next((node[k] for k in ("time", "time_years", "t") if k in node), None)
            if isinstance(lh, int | float) and isinstance(t, int | float) and pid is not None:
                rows.append({"patient": pid, "time": float(t), "true_log_hazard": float(lh)})
            for k, v in node.items():
                if isinstance(v, list | dict):
                    walk(v, pid if pid is not None and pid != patient else
                         (k if isinstance(v, dict | list) and patient is None
                          and k not in ("patients", "visits", "truth") else pid))
        elif isinstance(node, list):
            for v in node:
                walk(v, patient)

    walk(doc, None)
    if not rows:
        raise ModelError(f"{p}: no records with true_log_hazard and time")
    return pd.DataFrame(rows).drop_duplicates(["patient", "time"])


def find_truth(settings: Settings, explicit: str | None) -> Path | None:
    """The truth file: ``explicit``, else ``truth.json`` in the home or one level below."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ModelError(f"--truth {explicit}: file not found")
        return p
    home = settings.home
    for cand in [home / "truth.json", *sorted(home.glob("*/truth.json")),
                 *sorted(home.glob("*/*/truth.json"))]:
        if cand.is_file():
            return cand
    return None


def truth_for_cohort(truth: pd.DataFrame, store: Store | None, cohort: CohortTable) -> pd.DataFrame:
    """Map truth patient ids to cohort pseudonyms (directly, or via the identity map)."""
    known = set(cohort.outcomes["patient"])
    if truth["patient"].isin(known).mean() > 0.5 or store is None:
        return truth[truth["patient"].isin(known)]
    from sqlalchemy import select

    from analytics.store.schema import IdentityMap, Patient

    with store.session() as s:
        pairs = s.execute(select(IdentityMap.real_patient_id, Patient.pseudonym)
                          .join(Patient, Patient.id == IdentityMap.patient_id)).all()
    mapping = {str(a): str(b) for a, b in pairs}
    t = truth.assign(patient=truth["patient"].map(lambda x: mapping.get(x, x)))
    return t[t["patient"].isin(known)]


def train_model(store: Store, settings: Settings, cohort: CohortTable, *, kind: str = "cox",
                event: str | list[str] | None = None,
                horizons: tuple[float, ...] | list[float] = (1.0, 2.0, 3.0),
                folds: int = 5, repeats: int = 2, n_bootstrap: int = 100, seed: int = 0,
                params: dict[str, Any] | None = None, truth: pd.DataFrame | None = None,
                landmark: LandmarkSettings | None = None, activate: bool = True,
                created_by: str | None = None) -> dict[str, Any]:
    """Cross-validate, fit on every patient, and register a landmark model.

    Returns
    -------
    dict
        ``model_id``, ``model``, ``event``, ``n_patients``, ``cv`` (``folds``,
        ``c_index``, ``td_auc`` by horizon, ``ibs``, ``calibration_slope`` and more),
        ``baselines``, and ``oracle_c_index`` when ``truth`` is given.

    Raises
    ------
    ModelError
        On invalid options or a cohort too small to model.
    """
    hs = tuple(float(h) for h in horizons)
    if not hs or any(not np.isfinite(h) or h <= 0 for h in hs):
        raise ModelError(f"--horizons {','.join(map(str, horizons))}: expected positive years")
    if folds < 2:
        raise ModelError(f"--cv {folds}: expected at least 2 folds")
    if cohort.outcomes.empty or cohort.visits.empty:
        raise ModelError("cohort is empty: import visits and outcomes first "
                         "(hepatrack import-cohort)")
    events = resolve_events(cohort.outcomes, event)
    lm = landmark or LandmarkSettings(horizons=hs)
    if lm.horizons != hs:
        lm = LandmarkSettings(**{**lm.__dict__, "horizons": hs})
    data = build_landmark_data(cohort, events, lm)
    params = dict(params or {})
    log.info("cross-validating %s on %d landmark rows", kind, len(data.rows))
    cvres = cross_validate(data, kind, params,
                           CVSettings(folds=folds, repeats=repeats, seed=seed,
                                      n_bootstrap=n_bootstrap),
                           baselines=True, truth=truth)
    model = LandmarkModel.fit(data, kind, params, seed=seed,
                              n_bootstrap=GBM_INTERVAL_REFITS if kind == "gbm" else 0)
    model.model_id = new_model_id(kind)
    model.domain = TrainingDomain.from_training(data.rows, data.spec)
    data_hash = training_data_hash(cohort)
    counts = cohort.outcomes["event"].astype(str).value_counts()
    cv = jsonable(cvres["cv"])
    explainer = {"cox": "exact linear SHAP on the log relative hazard",
                 "gbm": "exact TreeSHAP (xgboost pred_contribs) on the log relative hazard",
                 "rsf": "permutation-sampling SHAP (one antithetic pair of feature orders) "
                        "on the risk at the horizon against 10 training background rows"}[kind]
    model.card = jsonable(build_card(
        model_id=model.model_id, kind=kind, params=params, events=events.to_json(),
        horizons=list(hs), landmarks=data.landmarks, features=model.features,
        design=model.design.to_json(), n_patients=int(data.rows["patient"].nunique()),
        n_rows=len(data.rows), n_events=int((data.rows["cause"] == "interest").sum()),
        event_counts={k: int(v) for k, v in counts.items() if k != CENSORED},
        training_data_sha256=data_hash, cv=cv, baselines=jsonable(cvres.get("baselines", {})),
        oracle_c_index=cvres.get("oracle_c_index"),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), explainer=explainer))
    payload: dict[str, Any] = {
        "model_id": model.model_id, "model": kind, "event": events.label,
        "competing_events": {k: list(v) for k, v in events.competing.items()},
        "horizons": list(hs), "n_patients": int(cohort.outcomes["patient"].nunique()),
        "n_patients_modelled": int(data.rows["patient"].nunique()),
        "n_landmark_rows": len(data.rows), "landmarks": data.landmarks,
        "cv": cv, "baselines": jsonable(cvres.get("baselines", {})),
        "features": model.features,
    }
    if "oracle_c_index" in cvres:
        payload["oracle_c_index"] = jsonable(cvres["oracle_c_index"])
    model.metrics = jsonable({k: v for k, v in payload.items()
                              if k in ("cv", "baselines", "oracle_c_index")})
    save_model(store, settings, model, training_data_sha256=data_hash, activate=activate,
               created_by=created_by)
    return jsonable(payload)
