"""Clinical scores as baselines: which scores are reported, and their figures on given folds.

A clinical score (:mod:`analytics.models.scores`) is a baseline when the cohort has its
input columns, it is known on at least :data:`BASELINE_MIN_COVERAGE` of the landmark rows
and it is not constant there. On the model's out-of-fold frames it is scored as a marker
(C-index, td-AUC) and, through a fold-wise Cox recalibration (score + landmark terms,
fitted on the training folds), for the Brier score and calibration
(:func:`score_metrics`); its pooled C-index gets a patient-bootstrap interval
(:func:`marker_c_index_ci`). Neither depends on the model, only on the rows, outcomes,
folds and scores, so both are cached by that content, in the process and in a home's
cache directory (:mod:`analytics.models.score_cache`).
:func:`analytics.models.crossval.clinical_baselines` reports them beside the model.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.models import score_cache
from analytics.models.bootstrap import patient_draws, percentile_intervals
from analytics.models.concordance import ConcordancePairs
from analytics.models.estimators import CoxPH
from analytics.models.scores import available_scores, compute_scores
from analytics.models.validation import harrell_c, landmark_metrics
from analytics.vocabulary import LANDMARK, LANDMARK_SQ

__all__ = ["BASELINE_MIN_COVERAGE", "baseline_scores", "marker_c_index_ci", "pooled_harrell_c",
           "score_columns", "score_metrics"]

#: a score is reported as a baseline when it can be computed on this share of rows
BASELINE_MIN_COVERAGE = 0.5


def score_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Clinical scores from the last values so far: one column per score whose input
    columns are all in ``rows`` (a cohort without ``lsm_kpa`` gets no FAST or Agile
    column), in :data:`~analytics.models.scores.CLINICAL_SCORES` order."""
    return compute_scores(rows, available_scores(rows.columns))


def baseline_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """The clinical scores reported as baselines: :func:`score_columns` known on at least
    :data:`BASELINE_MIN_COVERAGE` of the rows and not constant there."""
    scores = score_columns(rows)
    keep = []
    for name in scores.columns:
        sc = scores[name].to_numpy(float)
        ok = np.isfinite(sc)
        if ok.mean() >= BASELINE_MIN_COVERAGE and np.ptp(sc[ok]) > 0:
            keep.append(name)
    return scores[keep]



#: per-repeat metrics of clinical scores kept in the process (like their intervals)
_score_metrics_cache: OrderedDict[str, list[dict]] = OrderedDict()
_SCORE_COLUMNS = ["patient", "landmark", "duration", "code", "fold", "score"]


def pooled_harrell_c(frame: pd.DataFrame, marker: str) -> float:
    """Harrell's C of ``marker`` pooled within landmarks: the ``c_index`` of
    :func:`landmark_metrics` (``score=marker``), without its other metrics."""
    num = den = 0
    for _, g in frame.groupby("landmark", sort=True):
        _, a, b = harrell_c(g["duration"].to_numpy(float), g["code"].to_numpy(),
                            g[marker].to_numpy(float))
        num, den = num + a, den + b
    return num / den if den else float("nan")


def score_metrics(frames: list[pd.DataFrame], hs: list[float], h_max: float,
                  grid: np.ndarray, *, cache_dir: Path | None = None) -> list[dict]:
    """Per repeat, a clinical score's metrics on its rows of ``frames``: discrimination
    as a marker, Brier score and calibration of its fold-wise Cox recalibration.

    They depend on the rows, outcomes, folds and score only, never on the model, so they
    are cached by that content (and the horizons): training another model on the same
    cohort refits no recalibration, in this process, nor in another one when
    ``cache_dir`` (the home's, :func:`~analytics.models.score_cache.clinical_cache_dir`) is given.
    """
    key = _frame_digest(pd.concat([fr[_SCORE_COLUMNS] for fr in frames], keys=range(len(
        frames))), hs, h_max, grid.tolist())
    with _marker_ci_lock:
        if key in _score_metrics_cache:
            _score_metrics_cache.move_to_end(key)
            return copy.deepcopy(_score_metrics_cache[key])
    stored = score_cache.read(cache_dir, "metrics", key)
    if stored is not None:
        per_repeat = [score_cache.metrics_from_json(m) for m in stored]
        with _marker_ci_lock:
            _score_metrics_cache[key] = copy.deepcopy(per_repeat)
        return per_repeat
    per_repeat = []
    for fr in frames:
        sub = fr.copy()
        risk = _recalibrated_risk(sub, [*hs, *grid.tolist()])
        for j, h in enumerate(hs):
            sub[f"risk_{h:g}"] = sub[f"cs_risk_{h:g}"] = risk[:, j]
        for i in range(len(grid)):
            sub[f"cs_risk_grid_{i}"] = risk[:, len(hs) + i]
        marker = landmark_metrics(sub, hs, h_max, score="score")
        prob = landmark_metrics(sub, hs, h_max, grid)
        per_repeat.append({**prob, "c_index": marker["c_index"], "uno_c": marker["uno_c"],
                           "td_auc": marker["td_auc"]})
    with _marker_ci_lock:
        _score_metrics_cache[key] = copy.deepcopy(per_repeat)
        while len(_score_metrics_cache) > MARKER_CI_CACHE_SIZE:
            _score_metrics_cache.popitem(last=False)
    score_cache.write(cache_dir, "metrics", key, [score_cache.metrics_to_json(m) for m in per_repeat])
    return per_repeat


#: bootstrap intervals of clinical scores kept in the process (few: one per score, per
#: cohort, per bootstrap setting), so training another model on the same cohort reuses them
MARKER_CI_CACHE_SIZE = 64
_marker_ci_cache: OrderedDict[str, dict[str, list[float]]] = OrderedDict()
_marker_ci_lock = threading.Lock()


def _frame_digest(frame: pd.DataFrame, *extra: object) -> str:
    h = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    h.update(repr(extra).encode())
    return h.hexdigest()


def marker_c_index_ci(frame: pd.DataFrame, n_bootstrap: int, seed: int, *,
                      cache_dir: Path | None = None) -> dict[str, list[float]]:
    """Patient-bootstrap 95% interval of a marker's pooled within-landmark Harrell's C.

    The replicates draw the same patients as :func:`analytics.models.crossval.bootstrap_ci`
    with the same seed (:func:`~analytics.models.bootstrap.patient_draws`), and each
    replicate's C-index equals the one computed on the resampled rows (a patient drawn
    twice counts twice): the pairs are counted once, sorted, and every replicate
    only reweights them (:class:`analytics.models.concordance.ConcordancePairs`).
    Intervals are cached by the frame's content, ``n_bootstrap`` and ``seed``: they do
    not depend on any model (in this process, and in ``cache_dir`` when given).

    Parameters
    ----------
    frame
        ``patient``, ``landmark``, ``duration`` (years), ``code`` (1 endpoint, 2
        competing, 0 censored) and a finite ``score`` per landmark row.
    n_bootstrap, seed
        Replicates (none: ``{}``) and the seed of
        :func:`analytics.models.crossval.bootstrap_ci`.

    Returns
    -------
    dict
        ``{"c_index": [low, high]}``.
    """
    if n_bootstrap <= 0:
        return {}
    cols = frame[["patient", "landmark", "duration", "code", "score"]]
    key = _frame_digest(cols, n_bootstrap, seed)
    with _marker_ci_lock:
        if key in _marker_ci_cache:
            _marker_ci_cache.move_to_end(key)
            return {k: list(v) for k, v in _marker_ci_cache[key].items()}
    stored = score_cache.read(cache_dir, "ci", key)
    if stored is not None:
        with _marker_ci_lock:
            _marker_ci_cache[key] = stored
        return {k: list(v) for k, v in stored.items()}
    pats = cols["patient"].unique()
    patient_of_row = pd.Categorical(cols["patient"], categories=pats).codes
    pairs = ConcordancePairs(cols["duration"].to_numpy(float),
                             cols["code"].to_numpy() == 1, cols["score"].to_numpy(float),
                             group=cols["landmark"].to_numpy())
    draws = []
    for pick in patient_draws(len(pats), n_bootstrap, seed):
        weight = np.bincount(pick, minlength=len(pats))[patient_of_row].astype(float)
        conc, tied, comparable = pairs.counts(weight)
        draws.append((2 * conc + tied) / (2 * comparable) if comparable else float("nan"))
    out = percentile_intervals({"c_index": draws}, n_bootstrap)
    with _marker_ci_lock:
        _marker_ci_cache[key] = out
        while len(_marker_ci_cache) > MARKER_CI_CACHE_SIZE:
            _marker_ci_cache.popitem(last=False)
    score_cache.write(cache_dir, "ci", key, out)
    return {k: list(v) for k, v in out.items()}


def _recalibrated_risk(sub: pd.DataFrame, times: list[float]) -> np.ndarray:
    """Fold-wise Cox on (score, landmark, landmark^2): out-of-fold risks at ``times``."""
    risk = np.full((len(sub), len(times)), np.nan)
    X = pd.DataFrame({"score": sub["score"].to_numpy(), LANDMARK: sub["landmark"].to_numpy(),
                      LANDMARK_SQ: sub["landmark"].to_numpy() ** 2})
    X = X.loc[:, X.nunique() > 1]
    y = pd.DataFrame({"duration": sub["duration"].to_numpy(), "event": sub["code"].to_numpy() == 1})
    fold = sub["fold"].to_numpy()
    for f in np.unique(fold):
        tr = fold != f
        if y["event"][tr].sum() < 2:
            continue
        est = CoxPH(penalizer=0.0).fit(X[tr], y[tr])
        risk[~tr] = 1 - np.exp(-est.cumulative_hazard(X[~tr], np.asarray(times)))
    return risk
