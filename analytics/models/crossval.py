"""Honest validation: repeated K-fold cross-validation grouped by patient.

A patient's landmark rows are always in the same fold, and everything learned from data
(imputation medians, indicators, coefficients, trees, baseline hazards) is fitted on the
training folds only. Folds are stratified by whether the patient has an endpoint event.
Patients are dealt (and drawn by the bootstrap) in the order of the landmark rows, which
:mod:`analytics.models.patient_order` makes the same in every home holding the same
cohort: two homes built from one cohort get the same folds and the same figures, whatever
their pseudonyms.

Headline figures are the mean over repeats of each repeat's out-of-fold metrics. 95%
intervals are percentile intervals over ``n_bootstrap`` patient-level bootstrap samples;
replicate ``b`` uses the out-of-fold predictions of repeat ``b mod repeats``, so the
interval covers both sampling and fold-assignment variability.

Clinical baselines (MELD, MELD-Na, FIB-4, APRI, ALBI, Mayo PBC, and with elastography or
metabolic inputs FAST, Agile 3+, Agile 4, NFS and the Baveno VII stiffness band; only
those whose input columns the cohort has, computed on at least
:data:`~analytics.models.baselines.BASELINE_MIN_COVERAGE` of the rows) are scored on the
same landmark rows from the last values so far. As markers they give C-index and td-AUC
directly; as a fold-wise Cox recalibration (score + landmark terms, fitted on the
training folds) they give risks for the Brier score and calibration. The model's own C-index on the same rows is reported beside each,
with a patient-bootstrap 95% interval of the score's C-index (``ci``); the scores'
figures, which do not depend on the model, are :mod:`analytics.models.baselines`'s.

What imaging adds (:func:`compare_imaging`): the same model without its imaging features,
cross-validated on the same folds, against the model with them, with paired
patient-bootstrap intervals of the differences (:mod:`analytics.models.imaging_comparison`).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.errors import ModelError
from analytics.models import imaging_comparison as imaging
from analytics.models.baselines import (
    baseline_scores,
    marker_c_index_ci,
    pooled_harrell_c,
    score_metrics,
)
from analytics.models.bootstrap import (
    patient_draws,
    percentile_intervals,
    replicate_metrics,
    reweightable,
)
from analytics.models.landmark import LandmarkData
from analytics.models.predict import LandmarkModel
from analytics.models.progress import ProgressCallback, report
from analytics.models.scores import CLINICAL_SCORES
from analytics.models.settings import ModelSettings
from analytics.models.validation import (
    harrell_c,
    landmark_metrics,
    net_benefit,
    td_auc,
)

log = logging.getLogger(__name__)

DCA_THRESHOLDS = np.round(np.arange(0.05, 0.55, 0.05), 2)


#: evaluation times of the integrated Brier score and calibration (over the longest horizon)
N_GRID = 12


def patient_folds(patients: np.ndarray, has_event: np.ndarray, k: int,
                  rng: np.random.Generator) -> dict[Any, int]:
    """Fold of each patient: shuffled, dealt round-robin within event strata.

    The shuffle permutes ``patients`` as given, so the folds are a function of that order
    and ``rng`` only (:func:`oof_predictions` passes the landmark rows' order)."""
    out: dict[Any, int] = {}
    for stratum in (True, False):
        p = patients[has_event == stratum]
        p = p[rng.permutation(len(p))]
        start = len(out) % k
        for i, pid in enumerate(p):
            out[pid] = (start + i) % k
    return out


def codes(data: LandmarkData) -> np.ndarray:
    """1 endpoint, 2 competing event, 0 censored (per landmark row)."""
    cause = data.rows["cause"]
    return np.where(cause == "interest", 1, np.where(cause.notna(), 2, 0))


def eval_grid(h_max: float, n: int) -> np.ndarray:
    return np.linspace(h_max / n, h_max, n)


def oof_predictions(data: LandmarkData, cv: ModelSettings, *,
                    progress: ProgressCallback | None = None,
                    stage: str = "folds") -> list[pd.DataFrame]:
    """Out-of-fold risks for every landmark row, one frame per repeat (``cv.repeats`` of
    ``cv.folds`` patient-grouped folds, seeded by ``cv.seed``); each fitted fold is
    reported to ``progress`` as a step of ``stage``."""
    rows = data.rows
    hs = list(data.settings.horizons)
    grid = eval_grid(data.settings.horizon_max, N_GRID)
    # patients in row order (:mod:`analytics.models.patient_order`), not by pseudonym
    per_patient = rows.groupby("patient", sort=False)["cause"].apply(
        lambda c: bool((c == "interest").any()))
    pats, has_ev = per_patient.index.to_numpy(), per_patient.to_numpy()
    k = min(cv.folds, len(pats))
    if k < 2:
        raise ModelError(f"--cv {cv.folds}: need at least 2 folds and 2 patients")
    frames = []
    report(progress, stage, 0, k * cv.repeats)
    for r in range(cv.repeats):
        rng = np.random.default_rng(cv.seed + 7919 * r)
        fold_of = patient_folds(pats, has_ev, k, rng)
        fold = rows["patient"].map(fold_of).to_numpy()
        risk = np.full((len(rows), len(hs) + len(grid)), np.nan)
        cs_risk = np.full((len(rows), len(hs) + len(grid)), np.nan)
        for f in range(k):
            test = fold == f
            model = LandmarkModel(cv, intervals=False).fit(data, rows=~test)
            X = model.matrix(rows[test])
            risk[test] = model.risk(X, [*hs, *grid.tolist()])
            cs_risk[test] = (model.risk(X, [*hs, *grid.tolist()], cause_specific=True)
                             if data.events.competing else risk[test])
            report(progress, stage, r * k + f + 1, k * cv.repeats,
                   f"fold {f + 1} of {k}, repeat {r + 1} of {cv.repeats}")
        fr = pd.DataFrame({"patient": rows["patient"].to_numpy(),
                           "landmark": rows["landmark"].to_numpy(),
                           "duration": rows["duration"].to_numpy(), "code": codes(data),
                           "fold": fold}, index=rows.index)
        for j, h in enumerate(hs):
            fr[f"risk_{h:g}"] = risk[:, j]
            fr[f"cs_risk_{h:g}"] = cs_risk[:, j]
        for i in range(len(grid)):
            fr[f"cs_risk_grid_{i}"] = cs_risk[:, len(hs) + i]
        frames.append(fr)
    return frames


def _headline(m: dict, hs: list[float]) -> dict[str, float]:
    out = {"c_index": m["c_index"], "uno_c": m["uno_c"]}
    for h in hs:
        out[f"td_auc_{h:g}"] = m["td_auc"][f"{h:g}"]
        if "calibration" in m:
            cal = m["calibration"][f"{h:g}"]
            out[f"calibration_slope_{h:g}"] = cal.slope
            out[f"ici_{h:g}"] = cal.ici
    if "ibs" in m:
        out["ibs"] = m["ibs"]
    return out


def bootstrap_ci(frames: list[pd.DataFrame], metric_fn, n_bootstrap: int,
                 seed: int, *, progress: ProgressCallback | None = None,
                 stage: str = "bootstrap") -> dict[str, list[float]]:
    """Percentile 95% intervals of ``metric_fn(frame) -> {name: value}`` by patient bootstrap.

    A patient drawn twice contributes two copies of all their rows, under two ids. Each
    replicate is reported to ``progress`` as a step of ``stage``.
    """
    if n_bootstrap <= 0:
        return {}
    pats = frames[0]["patient"].unique()
    positions = []
    for fr in frames:
        codes = pd.Categorical(fr["patient"], categories=pats).codes
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(len(pats) + 1))
        positions.append((order, starts))
    draws: dict[str, list[float]] = {}
    report(progress, stage, 0, n_bootstrap)
    for b, pick in enumerate(patient_draws(len(pats), n_bootstrap, seed)):
        r = b % len(frames)
        order, starts = positions[r]
        lens = starts[pick + 1] - starts[pick]
        idx = np.concatenate([order[starts[p]:starts[p + 1]] for p in pick])
        sample = frames[r].iloc[idx].reset_index(drop=True)
        sample["patient"] = np.repeat(np.arange(len(pick)), lens)
        for key, v in metric_fn(sample).items():
            draws.setdefault(key, []).append(v)
        report(progress, stage, b + 1, n_bootstrap, f"replicate {b + 1} of {n_bootstrap}")
    return percentile_intervals(draws, n_bootstrap)


def model_bootstrap_ci(frames: list[pd.DataFrame], hs: list[float], h_max: float,
                       grid: np.ndarray, n_bootstrap: int, seed: int, *,
                       progress: ProgressCallback | None = None) -> dict[str, list[float]]:
    """The model's headline metrics' intervals: :func:`bootstrap_ci` of
    ``_headline(landmark_metrics(fr, hs, h_max, grid, with_brier=False))``, with the same
    draws, each replicate computed by reweighting the fixed rows
    (:mod:`analytics.models.bootstrap`; rows are resampled only where a duration or risk
    is not finite). Each replicate is reported to ``progress`` as a ``bootstrap`` step."""
    if n_bootstrap <= 0:
        return {}
    if not reweightable(frames, hs, len(grid)):
        return bootstrap_ci(
            frames, lambda fr: _headline(landmark_metrics(fr, hs, h_max, grid,
                                                          with_brier=False), hs),
            n_bootstrap, seed, progress=progress)
    metrics = replicate_metrics(frames, hs, h_max, grid)
    pats = frames[0]["patient"].unique()
    patient_of_row = [pd.Categorical(fr["patient"], categories=pats).codes for fr in frames]
    draws: dict[str, list[float]] = {}
    report(progress, "bootstrap", 0, n_bootstrap)
    for b, pick in enumerate(patient_draws(len(pats), n_bootstrap, seed)):
        r = b % len(frames)
        weight = np.bincount(pick, minlength=len(pats))[patient_of_row[r]].astype(float)
        for key, v in metrics(r, weight).items():
            draws.setdefault(key, []).append(v)
        report(progress, "bootstrap", b + 1, n_bootstrap, f"replicate {b + 1} of {n_bootstrap}")
    return percentile_intervals(draws, n_bootstrap)


def _mean_metrics(ms: list[dict], hs: list[float]) -> dict:
    first = ms[0]

    def avg(get) -> float:
        v = np.asarray([get(m) for m in ms], float)
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    out: dict[str, Any] = {
        "c_index": avg(lambda m: m["c_index"]),
        "uno_c": avg(lambda m: m["uno_c"]),
        "td_auc": {f"{h:g}": avg(lambda m, h=h: m["td_auc"][f"{h:g}"]) for h in hs},
        "n_rows": first["n_rows"], "n_events": first["n_events"],
    }
    if "brier" in first:
        out["brier"] = {f"{h:g}": avg(lambda m, h=h: m["brier"][f"{h:g}"]) for h in hs}
        out["ibs"] = avg(lambda m: m["ibs"])
    if "calibration" in first:
        out["calibration"] = {}
        for h in hs:
            key = f"{h:g}"
            cal = first["calibration"][key].to_json()
            for name in ("slope", "intercept", "ici", "e50", "e90"):
                cal[name] = avg(lambda m, key=key, name=name: getattr(m["calibration"][key],
                                                                       name))
            out["calibration"][key] = cal
    return out


def single_threaded_blas(fn):
    """Run ``fn`` with BLAS and OpenMP limited to one thread, set together once.

    Model fitting and validation make many small matrix-vector products, for which
    OpenBLAS's thread start-up costs more than the product: on a loaded 2-core machine a
    60,000-element dot product took 400 us with its threads and 19 us without, and
    training on 2,000 patients took 147 s instead of 237 s. OpenMP pools (scikit-learn,
    and xgboost's when its ``nthread`` is not set) get the same limit: xgboost with 2
    threads was 5x slower than with 1 on such a machine, and its estimators here pass
    ``nthread`` (``n_jobs``, default 1) explicitly.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return fn(*args, **kwargs)
    return wrapper


@single_threaded_blas
def cross_validate(data: LandmarkData, cv: ModelSettings | None = None,
                   baselines: bool = True, truth: Any = None,
                   imaging_comparison: bool = True, *,
                   progress: ProgressCallback | None = None,
                   cache_dir: Path | None = None) -> dict[str, Any]:
    """Cross-validated metrics of a landmark model, clinical baselines and the oracle.

    Parameters
    ----------
    data
        Stacked landmark rows.
    cv
        Estimator kind and parameters, folds, repeats, seed and bootstrap replicates
        (default :class:`ModelSettings`).
    baselines
        Also validate the clinical scores on the same folds.
    truth
        Optional true hazards (:class:`analytics.models.training.Truth`): the oracle
        C-index ranks each landmark row by the true endpoint log hazard at the landmark.
    imaging_comparison
        Also compare the model with the same model without its imaging features
        (:func:`compare_imaging`).
    progress
        Called with each fold fitted, bootstrap replicate and clinical score validated
        (:class:`analytics.models.progress.TrainingStep`).
    cache_dir
        Where the clinical scores' figures are kept between runs (a home's
        :func:`~analytics.models.score_cache.clinical_cache_dir`); None: in this process only.

    Returns
    -------
    dict
        JSON-able: ``cv`` (``folds``, ``repeats``, ``c_index``, ``uno_c``, ``td_auc``,
        ``brier``, ``ibs``, ``calibration``, ``calibration_slope``, ``ci`` (95%
        intervals), ``decision_curve``, ``per_landmark``); plus ``baselines``,
        ``oracle_c_index`` and ``imaging_comparison``.
    """
    cv = cv or ModelSettings()
    hs = [float(h) for h in data.settings.horizons]
    h_max = data.settings.horizon_max
    grid = eval_grid(h_max, N_GRID)
    frames = oof_predictions(data, cv, progress=progress)
    per_repeat = [landmark_metrics(fr, hs, h_max, grid) for fr in frames]
    res = _mean_metrics(per_repeat, hs)
    res = {"folds": min(cv.folds, data.rows["patient"].nunique()), "repeats": cv.repeats,
           **res}
    res["calibration_slope"] = res["calibration"][f"{h_max:g}"]["slope"]
    res["ci"] = model_bootstrap_ci(frames, hs, h_max, grid, cv.n_bootstrap, cv.seed,
                                   progress=progress)
    dca = net_benefit(frames[0]["duration"], frames[0]["code"], frames[0][f"risk_{h_max:g}"],
                      h_max, DCA_THRESHOLDS)
    res["decision_curve"] = {"horizon": h_max, **{c: dca[c].round(5).tolist()
                                                  for c in dca.columns}}
    res["per_landmark"] = _per_landmark(frames[0], hs)
    out: dict[str, Any] = {"cv": res}
    if baselines:
        out["baselines"] = clinical_baselines(data, frames, cv, progress=progress,
                                              cache_dir=cache_dir)
    if truth is not None:
        out["oracle_c_index"] = oracle_c_index(data, truth)
    if imaging_comparison:
        out["imaging_comparison"] = compare_imaging(data, frames, cv, truth,
                                                    progress=progress)
    return out


def _per_landmark(frame: pd.DataFrame, hs: list[float]) -> list[dict]:
    out = []
    for s, g in frame.groupby("landmark"):
        t, c = g["duration"].to_numpy(), g["code"].to_numpy()
        out.append({"landmark": float(s), "n": len(g), "events": int((c == 1).sum()),
                    "c_index": harrell_c(t, c, g[f"cs_risk_{max(hs):g}"].to_numpy())[0],
                    "td_auc": {f"{h:g}": td_auc(t, c, g[f"cs_risk_{h:g}"].to_numpy(), h)
                               for h in hs}})
    return out


# --------------------------------------------------------------------------- baselines
def clinical_baselines(data: LandmarkData, frames: list[pd.DataFrame],
                       cv: ModelSettings, *, progress: ProgressCallback | None = None,
                       cache_dir: Path | None = None) -> dict[str, Any]:
    """Each available clinical score validated on the model's folds (see module doc);
    each score done is reported to ``progress``. The scores' metrics and intervals
    depend on the rows, outcomes, folds and scores only: with ``cache_dir`` they are kept
    there (:func:`score_metrics`, :func:`marker_c_index_ci`) for the next training."""
    scores = baseline_scores(data.rows)
    report(progress, "baselines", 0, len(scores.columns))
    hs = [float(h) for h in data.settings.horizons]
    h_max = data.settings.horizon_max
    grid = eval_grid(h_max, N_GRID)
    out: dict[str, Any] = {}
    for n_done, name in enumerate(scores.columns, 1):
        sc = scores[name].to_numpy(float)
        ok = np.isfinite(sc)
        model_c = [pooled_harrell_c(fr[ok], f"cs_risk_{h_max:g}") for fr in frames]
        m = _mean_metrics(score_metrics([fr[ok].assign(score=sc[ok]) for fr in frames], hs,
                                        h_max, grid, cache_dir=cache_dir), hs)
        m["calibration_slope"] = m["calibration"][f"{h_max:g}"]["slope"]
        m["model_c_index_same_rows"] = float(np.nanmean(model_c))
        # the score's interval does not depend on the model: the rows, outcomes and score
        m["ci"] = marker_c_index_ci(frames[0].loc[ok, ["patient", "landmark", "duration",
                                                       "code"]].assign(score=sc[ok]),
                                    cv.n_bootstrap, cv.seed, cache_dir=cache_dir)
        m["coverage"] = float(ok.mean())
        d = CLINICAL_SCORES[name]
        m["label"] = d.label
        m["reference"] = d.reference
        out[name] = m
        report(progress, "baselines", n_done, len(scores.columns), d.label)
    return out


# --------------------------------------------------------------------------- oracle
def true_log_hazard(data: LandmarkData, truth: Any) -> np.ndarray:
    """The true endpoint log hazard at each landmark row (NaN where unknown).

    ``truth`` answers ``log_hazard(patients, times, causes)`` (see
    :class:`analytics.models.training.Truth`).
    """
    return np.asarray(truth.log_hazard(data.rows["patient"].to_numpy(),
                                       data.rows["landmark"].to_numpy(),
                                       data.events.of_interest), float)


def oracle_c_index(data: LandmarkData, truth: Any) -> float:
    """Harrell's C of the true endpoint log hazard at each landmark, same rows and endpoint.

    ``truth`` answers ``log_hazard(patients, times, causes)`` (see
    :class:`analytics.models.training.Truth`).
    """
    fr = pd.DataFrame({"patient": data.rows["patient"].to_numpy(),
                       "landmark": data.rows["landmark"].to_numpy(),
                       "duration": data.rows["duration"].to_numpy(), "code": codes(data)},
                      index=data.rows.index)
    fr["score"] = true_log_hazard(data, truth)
    fr = fr[np.isfinite(fr["score"])]
    if fr.empty:
        return float("nan")
    return landmark_metrics(fr, [], data.settings.horizon_max, score="score")["c_index"]


# --------------------------------------------------------------------------- imaging
#: the true hazard's marker name in the comparison's references
ORACLE = "oracle"


def compare_imaging(data: LandmarkData, frames: list[pd.DataFrame], cv: ModelSettings,
                    truth: Any = None, *, progress: ProgressCallback | None = None
                    ) -> dict[str, Any]:
    """What imaging adds: the model against the same model without its imaging features.

    The model without imaging (:func:`analytics.models.imaging_comparison.without_imaging`)
    is cross-validated with :func:`oof_predictions` on the same rows and settings, so
    every patient is in the same fold for both models (checked). See
    :mod:`analytics.models.imaging_comparison` for the metrics and intervals.

    Parameters
    ----------
    data
        Stacked landmark rows of the model.
    frames
        The model's out-of-fold predictions (:func:`oof_predictions`), one per repeat.
    cv
        The settings the frames were made with (folds, repeats, seed, bootstrap).
    truth
        Optional true hazards: the oracle is a reference marker on the same rows.
    progress
        Called with each fold of the model without imaging and each bootstrap replicate.

    Returns
    -------
    dict
        ``status`` (``"compared"`` or ``"nothing_to_compare"`` with ``message``),
        ``imaging_features`` (base features left out of the model without imaging),
        ``dropped_columns``, ``folds``, ``repeats``, ``n_bootstrap``, and per subset
        (``all``, ``with_scans``) the figures of
        :func:`analytics.models.imaging_comparison.summarise`.

    Raises
    ------
    ModelError
        If the two models' folds differ (a bug: they share rows and seed).
    """
    bases = imaging.imaging_bases(data.spec)
    if not bases:
        return imaging.nothing_to_compare(data.spec)
    lean = imaging.without_imaging(data, bases)
    lean_frames = oof_predictions(lean, cv, progress=progress, stage="imaging_folds")
    for fr, lf in zip(frames, lean_frames, strict=True):
        if not np.array_equal(fr["fold"].to_numpy(), lf["fold"].to_numpy()):
            raise ModelError("imaging comparison: the models without and with imaging were "
                             "cross-validated on different folds")
    hs = [float(h) for h in data.settings.horizons]
    if all(np.allclose(fr[f"cs_risk_{h:g}"], lf[f"cs_risk_{h:g}"], equal_nan=True)
           for fr, lf in zip(frames, lean_frames, strict=True) for h in hs):
        return imaging.nothing_to_compare(
            data.spec, imaging.NOTHING_TO_COMPARE + " (the imaging columns were constant "
            "in training)")
    markers = baseline_scores(data.rows).set_axis(data.rows.index)
    labels = {name: CLINICAL_SCORES[name].label for name in markers.columns}
    if truth is not None:
        markers[ORACLE] = true_log_hazard(data, truth)
        labels[ORACLE] = "Oracle (true hazard)"
    has_scan = imaging.scan_rows(data.rows, bases)
    paired = [imaging.paired_frame(fr, lf, has_scan, hs, markers)
              for fr, lf in zip(frames, lean_frames, strict=True)]
    h_max = data.settings.horizon_max
    ci = bootstrap_ci(paired, lambda fr: imaging.paired_statistics(fr, hs, h_max),
                      cv.n_bootstrap, cv.seed, progress=progress, stage="imaging_bootstrap")
    dropped = [c for c in data.spec.columns if data.spec.source_of(c)[0] in bases]
    return {"status": "compared", "imaging_features": bases, "dropped_columns": dropped,
            "folds": int(frames[0]["fold"].nunique()), "repeats": len(frames),
            "n_bootstrap": cv.n_bootstrap,
            **imaging.summarise(paired, hs, h_max, ci, labels)}
