"""Training use case: cohort -> landmark rows -> cross-validation -> final fit -> registry.

``train_model`` is what ``hepatrack train`` and ``hepatrack demo`` call. The JSON it
returns is the ``train --json`` contract (ARCHITECTURE.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.cohort_types import CENSORED, CohortTable
from analytics.config import Settings
from analytics.errors import ModelError
from analytics.models.card import build_card, imaging_comparison_section
from analytics.models.crossval import cross_validate, single_threaded_blas
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import LandmarkData, build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.progress import ProgressCallback, report
from analytics.models.registry import (
    RegisteredModel,
    jsonable,
    new_model_id,
    save_model,
    training_data_hash,
)
from analytics.models.score_cache import clinical_cache_dir
from analytics.models.settings import ModelSettings
from analytics.store.db import Store
from analytics.store.models import real_id_pseudonyms

log = logging.getLogger(__name__)



def cause_log_hazard(h: dict[str, Any], stage: float, age_years: float,
                     portal_pressure_z: float = 0.0) -> float:
    """Log hazard per year of one cause from its ``truth.json`` parameters.

    ``log_h0 + beta_stage * s + ln(RR(s)) + beta_age_per_decade * (age - age_ref_years) / 10
    + beta_portal * portal_pressure_z * smoothstep(portal_knots, s)``
    with ``ln(RR)`` linear in ``s`` between ``(stage_knots, ln(stage_rr))`` (constant beyond
    the end knots; 0 without knots, as in truth files of the earlier linear generator) and
    the portal term 0 in truth files without ``beta_portal``.
    """
    v = h["log_h0"] + h.get("beta_stage", 0.0) * stage + h["beta_age_per_decade"] * (
        age_years - h.get("age_ref_years", 60.0)) / 10
    knots = h.get("stage_knots") or []
    if knots:
        v += float(np.interp(stage, knots, np.log(np.asarray(h["stage_rr"], dtype=float))))
    beta_portal = h.get("beta_portal", 0.0)
    if beta_portal and portal_pressure_z:
        a, b = h["portal_knots"]
        u = min(max((stage - a) / (b - a), 0.0), 1.0)
        v += beta_portal * portal_pressure_z * u * u * (3.0 - 2.0 * u)
    return float(v)


@dataclass
class Truth:
    """True hazards of a synthetic cohort, for the oracle C-index.

    ``visits``: ``patient``, ``time`` and one ``log_hazard:<cause>`` column per cause
    (plus ``true_log_hazard`` of the generator's event of interest). ``params``: per
    patient, the generator's latent state (stage course and portal pressure) and hazard
    parameters, when the file has them,
    so the hazard is exact at any landmark time; otherwise the last visit's value is
    carried forward.
    """

    visits: pd.DataFrame
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_of_interest: str | None = None

    def rename(self, mapping: dict[str, str]) -> Truth:
        return Truth(self.visits.assign(patient=self.visits["patient"].map(
                         lambda x: mapping.get(x, x))),
                     {mapping.get(k, k): v for k, v in self.params.items()},
                     self.event_of_interest)

    def log_hazard(self, patients: np.ndarray, times: np.ndarray,
                   causes: tuple[str, ...]) -> np.ndarray:
        """Log of the summed hazard of ``causes`` at each (patient, time); NaN if unknown."""
        out = np.full(len(patients), np.nan)
        for i, (p, t) in enumerate(zip(patients, times, strict=True)):
            par = self.params.get(p)
            if par is not None and all(c in par["hazards"] for c in causes):
                stage = float(np.clip(par["stage0"] + par["progression_per_year"] * t, 0, 4))
                age = par["age_at_baseline_years"] + t
                z = par.get("portal_pressure_z", 0.0)
                logs = [cause_log_hazard(par["hazards"][c], stage, age, z) for c in causes]
                out[i] = float(np.logaddexp.reduce(logs))
        todo = np.isnan(out)
        if todo.any():
            cols = [f"log_hazard:{c}" for c in causes]
            v = self.visits.sort_values(["patient", "time"])
            if all(c in v for c in cols):
                lh = np.logaddexp.reduce(v[cols].to_numpy(float), axis=1)
            elif len(causes) == 1 and causes[0] == self.event_of_interest:
                lh = v["true_log_hazard"].to_numpy(float)
            else:
                return out
            by_p = {p: (g["time"].to_numpy(float), lh[v.index.get_indexer(g.index)])
                    for p, g in v.assign(_i=range(len(v))).groupby("patient")}
            for i in np.flatnonzero(todo):
                tv = by_p.get(patients[i])
                if tv is None:
                    continue
                k = np.searchsorted(tv[0], times[i] + 1e-9, side="right") - 1
                if k >= 0:
                    out[i] = tv[1][k]
        return out


def load_truth(path: str | Path) -> Truth:
    """Read a synthetic cohort's ``truth.json`` (format ``hepatrack-synthetic-truth``).

    Raises
    ------
    ModelError
        If the file is unreadable or lists no patients with visit hazards.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        rows, params = [], {}
        for pat in doc["patients"]:
            pid = str(pat["patient_id"])
            for v in pat.get("visits", []):
                r = {"patient": pid, "time": float(v["time_years"]),
                     "true_log_hazard": float(v["true_log_hazard"])}
                for c, val in (v.get("true_log_hazard_by_cause") or {}).items():
                    r[f"log_hazard:{c}"] = float(val)
                rows.append(r)
            if {"stage0", "progression_per_year", "age_at_baseline_years",
                    "hazards"} <= set(pat):
                params[pid] = {k: pat[k] for k in ("stage0", "progression_per_year",
                                                    "age_at_baseline_years", "hazards")}
                # the patient's portal pressure (SD above the stage's), absent in older files
                params[pid]["portal_pressure_z"] = float(pat.get("portal_pressure_z", 0.0))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{p}: not a readable synthetic truth file ({e})") from e
    if not rows:
        raise ModelError(f"{p}: no patient visits with true_log_hazard")
    return Truth(pd.DataFrame(rows), params, doc.get("event_of_interest"))


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


def truth_for_cohort(truth: Truth, store: Store | None, cohort: CohortTable) -> Truth:
    """Map truth patient ids to cohort pseudonyms (directly, or via the identity map)."""
    known = set(cohort.outcomes["patient"])
    ids = set(truth.visits["patient"])
    if store is None or len(ids & known) == len(ids):
        return truth
    pairs = real_id_pseudonyms(store)
    mapping = {str(a): str(b) for a, b in pairs if str(a) in ids}
    return truth.rename(mapping)


@single_threaded_blas
def train_model(store: Store, settings: Settings, cohort: CohortTable,
                model_settings: ModelSettings | None = None, *, truth: Truth | None = None,
                activate: bool = True, created_by: str | None = None,
                progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Cross-validate, fit on every patient, and register a landmark model.

    Parameters
    ----------
    store, settings
        The store and the HepaTrack settings (home, models directory).
    cohort
        Visits and outcomes.
    model_settings
        Estimator, endpoint, horizons, cross-validation (default :class:`ModelSettings`).
    truth
        True hazards of a synthetic cohort, for the oracle C-index.
    activate
        Make the new model the active one.
    created_by
        Account name recorded with the model.
    progress
        Called with every fold fitted, bootstrap replicate and clinical score validated,
        then the final fit (:class:`analytics.models.progress.TrainingStep`), in order.

    Returns
    -------
    dict
        ``model_id``, ``model``, ``event``, ``n_patients``, ``cv`` (``folds``,
        ``c_index``, ``td_auc`` by horizon, ``ibs``, ``calibration_slope`` and more),
        ``baselines``, ``features``, ``features_left_out`` (feature -> reason),
        ``feature_support`` (feature -> patients measured and endpoint events among
        them), ``imaging_comparison`` (the model against the same model without its
        imaging features, :func:`analytics.models.crossval.compare_imaging`), and
        ``oracle_c_index`` when ``truth`` is given.

    Raises
    ------
    ModelError
        On a cohort too small to model or an endpoint it does not have.
    """
    ms = model_settings or ModelSettings()
    if cohort.outcomes.empty or cohort.visits.empty:
        raise ModelError("cohort is empty: import visits and outcomes first "
                         "(hepatrack import-cohort)")
    events = resolve_events(cohort.outcomes, list(ms.event) if ms.event else None)
    lm = ms.landmark_settings()
    if not settings.model_automatic_segmentation:  # the site's rule
        lm = dataclasses.replace(lm, automatic_segmentation=False)
    data = build_landmark_data(cohort, events, lm)
    log.info("cross-validating %s on %d landmark rows", ms.kind, len(data.rows))
    cvres = cross_validate(data, ms, baselines=True, truth=truth, progress=progress,
                           cache_dir=clinical_cache_dir(settings.home))
    report(progress, "final_fit", 0, 1, f"{ms.kind} on every patient")
    model = LandmarkModel(ms).fit(data)
    report(progress, "final_fit", 1, 1, f"{ms.kind} on every patient")
    model_id = new_model_id(ms.kind)
    data_hash = training_data_hash(cohort)
    cv = jsonable(cvres["cv"])
    payload: dict[str, Any] = {
        "model_id": model_id, "model": ms.kind, "event": events.label,
        "competing_events": {k: list(v) for k, v in events.competing.items()},
        "horizons": list(ms.horizons), "n_patients": int(cohort.outcomes["patient"].nunique()),
        "n_patients_modelled": int(data.rows["patient"].nunique()),
        "n_landmark_rows": len(data.rows), "landmarks": data.landmarks,
        "cv": cv, "baselines": jsonable(cvres.get("baselines", {})),
        "features": model.features, "features_left_out": data.spec.excluded,
        "feature_support": data.spec.support,
        "imaging_comparison": jsonable(cvres["imaging_comparison"]),
    }
    if "oracle_c_index" in cvres:
        payload["oracle_c_index"] = jsonable(cvres["oracle_c_index"])
    registered = RegisteredModel(
        model, model_id, card=_card(model, model_id, data, cohort, cvres, data_hash),
        metrics=jsonable({k: v for k, v in payload.items()
                          if k in ("cv", "baselines", "oracle_c_index",
                                   "imaging_comparison")}))
    save_model(store, settings, registered, training_data_sha256=data_hash, activate=activate,
               created_by=created_by)
    return jsonable(payload)


def _card(model: LandmarkModel, model_id: str, data: LandmarkData, cohort: CohortTable,
          cvres: dict[str, Any], data_hash: str) -> dict[str, Any]:
    """The model card of a model fitted on ``data`` (see :mod:`analytics.models.card`)."""
    counts = cohort.outcomes["event"].astype(str).value_counts()
    fitted = {c: est.penalizer_ for c, est in model.estimators_.items()
              if hasattr(est, "penalizer_")}
    params = model.params
    card_params = {**params, "penalizer_by_cause": fitted} if fitted else params
    card = build_card(
        model_id=model_id, kind=model.kind, params=card_params,
        events=model.events_.to_json(), horizons=model.horizons, landmarks=data.landmarks,
        features=model.features, design=model.design_.to_json(),
        n_patients=int(data.rows["patient"].nunique()), n_rows=len(data.rows),
        n_events=int((data.rows["cause"] == "interest").sum()),
        event_counts={k: int(v) for k, v in counts.items() if k != CENSORED},
        training_data_sha256=data_hash, cv=jsonable(cvres["cv"]),
        baselines=jsonable(cvres.get("baselines", {})),
        oracle_c_index=cvres.get("oracle_c_index"),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        explainer=model.estimators_["interest"].explainer,
        excluded={**data.spec.excluded, **_dropped_columns(model, data)},
        support=data.spec.support, groups=model.feature_groups_,
        automatic_segmentation=data.spec.automatic_segmentation)
    if "imaging_comparison" in cvres:
        card["imaging_comparison"] = imaging_comparison_section(cvres["imaging_comparison"])
    return jsonable(card)


def _dropped_columns(model: LandmarkModel, data: LandmarkData) -> dict[str, str]:
    """History columns of the kept features that the design dropped (constant in the
    training rows), so the card lists every left-out column with its reason."""
    used = {model.design_.source_column(c) for c in model.features}
    return {c: "constant in the training rows" for c in data.spec.columns
            if c not in used}
