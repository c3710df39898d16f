"""What imaging adds: the landmark model with and without its imaging features.

The comparison is paired by construction. Both models are cross-validated on the same
patient-grouped folds (:func:`analytics.models.crossval.compare_imaging`); the model
"without imaging" is the same estimator refitted with every model column whose base
feature is an imaging column left out (the base feature of a column is
:meth:`FeatureSpec.source_of`; a base is an imaging column when the vocabulary defines it
as one, :func:`analytics.vocabulary.imaging_feature`, or the cohort marked it as one).
The global history columns (visits so far, years since the last visit) stay in both
models and count scan visits too: the model without imaging may know that a scan took
place, never what it showed, so the difference may understate what imaging adds.

Both are scored with the validation module's own metrics, as the headline figures are:
Harrell's C pooled within landmark times on the risk at the longest horizon, and the
cumulative/dynamic AUC at each horizon, averaged over landmarks weighted by the cases at
the horizon. A difference is (with imaging) - (without imaging), computed per repeat and
averaged. Its 95% interval resamples patients, recomputes both models' metrics on the
same resample and takes the percentiles of the difference (paired bootstrap).

The same figures are given for the landmark rows of patients who have had at least one
scan at or before the landmark (a scan: an imaging visit, ``modality`` set, or an imaging
value carried forward), with the clinical scores and (synthetic cohorts) the true hazard
as markers on the same rows.

This module holds the pure computations on out-of-fold predictions; it imports nothing
from :mod:`analytics.models.crossval`, which calls it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from analytics.errors import FeatureError
from analytics.models.concordance import TIED_TOL, concordance_counts
from analytics.models.history_spec import FeatureSpec
from analytics.models.ipcw import CensoringSurvival
from analytics.models.landmark import LandmarkData
from analytics.vocabulary import describe_column, imaging_feature

__all__ = [
    "NOTHING_TO_COMPARE",
    "SUBSETS",
    "comparison_counts",
    "concordance_counts",
    "cumulative_dynamic_auc",
    "discrimination",
    "imaging_bases",
    "is_imaging_column",
    "nothing_to_compare",
    "paired_frame",
    "paired_statistics",
    "scan_rows",
    "summarise",
    "without_imaging",
]

NOTHING_TO_COMPARE = "no imaging feature entered the model: nothing to compare"
#: the comparison's row sets: key -> label
SUBSETS = {"all": "All patients", "with_scans": "Patients with scans"}
#: the two models' column prefixes in a paired frame
MODELS = ("with_imaging", "without_imaging")


def is_imaging_column(name: str, spec: FeatureSpec | None = None) -> bool:
    """True if ``name`` is an imaging feature: defined as one by the vocabulary
    (radiomics included) or marked as one by the cohort (``spec.imaging``)."""
    if spec is not None and name in spec.imaging:
        return True
    try:
        imaging_feature(name)
    except FeatureError:
        return False
    return True


def imaging_bases(spec: FeatureSpec) -> list[str]:
    """The model's base features that are imaging columns, in model order."""
    return [f for f in (*spec.numeric, *spec.categorical) if is_imaging_column(f, spec)]


def without_imaging(data: LandmarkData, bases: list[str]) -> LandmarkData:
    """The same landmark rows with the imaging base features (and so every history,
    missing-indicator and one-hot column derived from them) taken out of the model."""
    drop = set(bases)
    spec = data.spec
    lean = dataclasses.replace(
        spec, numeric=[f for f in spec.numeric if f not in drop],
        categorical=[f for f in spec.categorical if f not in drop],
        low_is_worse={f: v for f, v in spec.low_is_worse.items() if f not in drop},
        imaging=[f for f in spec.imaging if f not in drop],
        excluded={**spec.excluded,
                  **{f: "imaging feature, left out for the comparison" for f in bases}})
    return dataclasses.replace(data, spec=lean)


def scan_rows(rows: pd.DataFrame, bases: list[str]) -> np.ndarray:
    """Landmark rows whose patient has had a scan at or before the landmark: an imaging
    visit so far (``modality``) or an imaging value carried forward."""
    has = np.zeros(len(rows), bool)
    if "modality" in rows:
        has |= rows["modality"].notna().to_numpy()
    for f in bases:
        if f in rows:
            has |= rows[f].notna().to_numpy()
    return has


def nothing_to_compare(spec: FeatureSpec, reason: str = NOTHING_TO_COMPARE) -> dict[str, Any]:
    """The stored comparison when no imaging feature is in the model, naming the imaging
    features the coverage rule left out, if any."""
    left_out = {f: f"{describe_column(f)[0]}: {why}" for f, why in spec.excluded.items()
                if is_imaging_column(f, spec)}
    text = reason
    if left_out:
        text += " (left out as too rarely measured: " + "; ".join(left_out.values()) + ")"
    return {"status": "nothing_to_compare", "message": text, "imaging_features": [],
            "imaging_left_out": left_out}


def paired_frame(with_frame: pd.DataFrame, without_frame: pd.DataFrame,
                 has_scan: np.ndarray, hs: list[float],
                 markers: pd.DataFrame | None = None) -> pd.DataFrame:
    """One repeat's out-of-fold risks of both models side by side.

    Columns ``patient``, ``landmark``, ``duration``, ``code``, ``fold``, ``has_scan``,
    ``with_imaging_<h>`` and ``without_imaging_<h>`` (cause-specific risk by ``h``) and
    the reference ``markers`` (clinical scores, true log hazard) as given.
    """
    out = with_frame[["patient", "landmark", "duration", "code", "fold"]].copy()
    out["has_scan"] = has_scan
    for h in hs:
        out[f"with_imaging_{h:g}"] = with_frame[f"cs_risk_{h:g}"].to_numpy()
        out[f"without_imaging_{h:g}"] = without_frame[f"cs_risk_{h:g}"].to_numpy()
    if markers is not None:
        for c in markers.columns:
            out[f"marker:{c}"] = markers[c].to_numpy()
    return out


def discrimination(frame: pd.DataFrame, hs: list[float], h_max: float,
                   predictors: dict[str, Callable[[float], str]]) -> dict[str, dict[str, Any]]:
    """C-index and td-AUC of predictors on the same rows, pooled over landmark times as
    :func:`analytics.models.validation.landmark_metrics` pools them.

    The figures equal :func:`analytics.models.validation.harrell_c` (scikit-survival's
    ``concordance_index_censored``) and :func:`analytics.models.validation.td_auc`
    (``cumulative_dynamic_auc``, censoring weights from the same landmark's rows); they
    are computed here with arrays, once per landmark for every predictor, because the
    paired bootstrap evaluates them thousands of times.

    Parameters
    ----------
    frame
        Landmark rows (``landmark``, ``duration`` in years, ``code``: 1 endpoint, 2
        competing, 0 censored) and the predictors' columns.
    hs, h_max
        Horizons and the longest one (years).
    predictors
        Name -> (horizon -> the predictor's column: a risk by that horizon, or the same
        marker for every horizon).

    Returns
    -------
    dict
        Per predictor: ``c_index`` (Harrell's C on the column of ``h_max``, pairs summed
        within landmark times; competing events censored) and ``td_auc`` keyed by horizon
        (``"<h:g>"``; landmarks weighted by their cases at the horizon).
    """
    num = dict.fromkeys(predictors, 0)
    den = dict.fromkeys(predictors, 0)
    td = {(p, h): ([], []) for p in predictors for h in hs}
    for _, g in frame.groupby("landmark", sort=True):
        t, c = g["duration"].to_numpy(float), g["code"].to_numpy()
        event = c == 1
        weights = _ipcw(t, event) if event.any() and len(t) >= 2 else None
        for p, column in predictors.items():
            if event.any() and len(t) >= 2:
                a, b = concordance_counts(t, event, g[column(h_max)].to_numpy(float))
                num[p], den[p] = num[p] + a, den[p] + b
            for h in hs:
                cases = int((event & (t <= h)).sum())
                if cases:
                    td[p, h][0].append(cumulative_dynamic_auc(
                        t, event, g[column(h)].to_numpy(float), h, weights))
                    td[p, h][1].append(cases)
    return {p: {"c_index": num[p] / den[p] if den[p] else float("nan"),
                "td_auc": {f"{h:g}": _wmean(*td[p, h]) for h in hs}} for p in predictors}


_EPS_T = 1e-7


def _ipcw(time: np.ndarray, event: np.ndarray) -> np.ndarray | None:
    """Inverse probability of censoring weights of the events (the Kaplan-Meier censoring
    estimate on the same rows, scikit-survival's ``CensoringDistributionEstimator``
    computed by :class:`analytics.models.ipcw.CensoringSurvival`); None where it reaches
    zero."""
    t = np.maximum(time, 1e-9)
    try:
        return CensoringSurvival.fit(t, event).ipcw(t, event)
    except ValueError:
        return None


def cumulative_dynamic_auc(time: np.ndarray, event: np.ndarray, risk: np.ndarray,
                           horizon: float, weights: np.ndarray | None) -> float:
    """Cumulative/dynamic AUC at ``horizon``: cases (events by the horizon, weighted by
    ``weights``) against controls (still event-free after it); NaN without either, as
    :func:`analytics.models.validation.td_auc`.

    Each case scores the controls with a lower risk (by more than ``TIED_TOL``) plus half
    those within ``TIED_TOL`` of it, counted by binary search in the sorted control risks.
    """
    if weights is None or len(time) == 0:
        return float("nan")
    h = min(horizon, time.max() - _EPS_T)
    if h < time.min():
        return float("nan")
    case = event & (time <= h)
    control = time > h
    if not case.any() or not control.any():
        return float("nan")
    controls = np.sort(risk[control])
    r = risk[case]
    below = np.searchsorted(controls, r - TIED_TOL, side="left")
    tied = np.searchsorted(controls, r + TIED_TOL, side="right") - below
    score = below + 0.5 * tied
    w = weights[case]
    return float(np.sum(w * score) / (np.sum(w) * control.sum()))


def _wmean(values: list[float], weights: list[int]) -> float:
    v, w = np.asarray(values, float), np.asarray(weights, float)
    ok = np.isfinite(v) & (w > 0)
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")


def _subset(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame if key == "all" else frame[frame["has_scan"].to_numpy(bool)]


def paired_statistics(frame: pd.DataFrame, hs: list[float], h_max: float
                      ) -> dict[str, float]:
    """Both models' metrics and their differences on one (resampled) paired frame.

    Returns
    -------
    dict
        Flat ``"<subset>|<model or difference>|<metric>"`` -> value, metric ``c_index``
        or ``td_auc_<h>`` (the bootstrap statistic of :func:`crossval.bootstrap_ci`).
    """
    out: dict[str, float] = {}
    for key in SUBSETS:
        sub = _subset(frame, key)
        per = discrimination(sub, hs, h_max,
                             {m: (lambda h, m=m: f"{m}_{h:g}") for m in MODELS})
        for metric in ("c_index", *(f"td_auc_{h:g}" for h in hs)):
            vals = {m: _get(per[m], metric) for m in MODELS}
            for m, v in vals.items():
                out[f"{key}|{m}|{metric}"] = v
            out[f"{key}|difference|{metric}"] = vals["with_imaging"] - vals["without_imaging"]
    return out


def _get(m: dict[str, Any], metric: str) -> float:
    if metric == "c_index":
        return float(m["c_index"])
    return float(m["td_auc"][metric.removeprefix("td_auc_")])


def comparison_counts(frame: pd.DataFrame, key: str) -> dict[str, int]:
    """``n_patients``, ``n_events`` (patients with an endpoint event in a window),
    ``n_landmark_rows`` and ``n_events_in_window`` (rows) of one subset."""
    sub = _subset(frame, key)
    ev = sub["code"].to_numpy() == 1
    return {"n_patients": int(sub["patient"].nunique()),
            "n_events": int(sub.loc[ev, "patient"].nunique()),
            "n_landmark_rows": len(sub), "n_events_in_window": int(ev.sum())}


def _references(frame: pd.DataFrame, key: str, hs: list[float], h_max: float,
                labels: dict[str, str]) -> dict[str, Any]:
    """Each marker's C-index and td-AUC on the subset's rows where it is known."""
    sub = _subset(frame, key)
    out = {}
    for name, label in labels.items():
        col = f"marker:{name}"
        if col not in sub:
            continue
        ok = np.isfinite(sub[col].to_numpy(float))
        if ok.sum() < 2:
            continue
        m = discrimination(sub[ok], hs, h_max, {name: lambda _h, col=col: col})[name]
        out[name] = {"label": label, **m, "coverage": float(ok.mean()),
                     "n_landmark_rows": int(ok.sum())}
    return out


def summarise(frames: list[pd.DataFrame], hs: list[float], h_max: float,
              ci: dict[str, list[float]], marker_labels: dict[str, str]) -> dict[str, Any]:
    """The stored comparison from the paired frames (one per repeat) and the bootstrap
    intervals of :func:`paired_statistics`.

    Returns
    -------
    dict
        Per subset (``all``, ``with_scans``): ``label``, the counts of
        :func:`comparison_counts`, then for ``with_imaging``, ``without_imaging`` and
        ``difference``: ``c_index``, ``c_index_ci``, ``td_auc`` and ``td_auc_ci`` keyed
        by horizon (means over repeats; 95% patient-bootstrap intervals), and
        ``references``: clinical scores and the true hazard on the same rows (first
        repeat; markers do not depend on folds). A subset without an endpoint event
        says so in ``message``.
    """
    per_repeat = [paired_statistics(fr, hs, h_max) for fr in frames]
    out: dict[str, Any] = {}
    for key, label in SUBSETS.items():
        part: dict[str, Any] = {"label": label, **comparison_counts(frames[0], key)}
        if part["n_events_in_window"] == 0:
            what = "patient has a scan" if part["n_landmark_rows"] == 0 else \
                "endpoint event among these patients"
            part["message"] = f"no {what}: nothing to compare"
        for m in (*MODELS, "difference"):
            res: dict[str, Any] = {}
            for metric in ("c_index", *(f"td_auc_{h:g}" for h in hs)):
                k = f"{key}|{m}|{metric}"
                v = np.asarray([r[k] for r in per_repeat], float)
                val = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                interval = ci.get(k, [float("nan")] * 2)
                if metric == "c_index":
                    res["c_index"], res["c_index_ci"] = val, interval
                else:
                    h = metric.removeprefix("td_auc_")
                    res.setdefault("td_auc", {})[h] = val
                    res.setdefault("td_auc_ci", {})[h] = interval
            part[m] = res
        part["references"] = _references(frames[0], key, hs, h_max, marker_labels)
        out[key] = part
    return out
