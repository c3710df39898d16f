"""Patient-bootstrap draws and intervals, and replicates of the headline metrics by reweighting.

Every patient bootstrap here (the model's headline metrics, the clinical scores' C-index,
the imaging comparison) draws its patients with :func:`patient_draws` and reports
:func:`percentile_intervals` over the replicates, so the same seed draws the same patients
in each.

A replicate of :func:`analytics.models.crossval.bootstrap_ci` draws patients with
replacement and recomputes every metric on the resampled rows (a patient drawn twice
counts twice). Every metric here is a sum over rows or pairs of rows within a landmark
group, so the same replicate is the same sum over the fixed rows, each weighted by how
often its patient was drawn: the sorted structures (Harrell's pairs, the risk order of
the td-AUC, the distinct follow-up times of the censoring survival) are built once per
repeat and landmark, and each replicate only reweights them. No frame is copied, grouped
or sorted per replicate.

The steps mirror :func:`analytics.models.validation.landmark_metrics` (called with a
grid and ``with_brier=False``) and the IPCW functions of :mod:`analytics.models.ipcw`
one for one: the same rows count (those drawn at least once), the same checks give NaN,
and the counts of pairs are the same integers; sums of weighted IPCW terms differ from
the resampled sums only in rounding (``tests/models/test_bootstrap.py`` compares the
intervals with the resampled rows' on the same draws).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.models.concordance import TIED_TOL, ConcordancePairs
from analytics.models.ipcw import CensoringSurvival

__all__ = ["ReweightedMetrics", "patient_draws", "percentile_intervals", "reweightable"]

_EPS_T = 1e-7          # analytics.models.validation._EPS_T
_MIN_TIME = 1e-9       # analytics.models.validation._times


def patient_draws(n_patients: int, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """The patients drawn (with replacement) by each bootstrap replicate."""
    rng = np.random.default_rng(seed + 104729)
    for _ in range(n_bootstrap):
        yield rng.integers(0, n_patients, n_patients)


def percentile_intervals(draws: dict[str, list[float]], n_bootstrap: int
                         ) -> dict[str, list[float]]:
    """Percentile 95% intervals; NaN when under a quarter of the replicates (or 5) gave a
    finite value."""
    out = {}
    for key, v in draws.items():
        a = np.asarray(v, float)
        a = a[np.isfinite(a)]
        out[key] = ([float(np.quantile(a, 0.025)), float(np.quantile(a, 0.975))]
                    if len(a) >= max(5, n_bootstrap // 4) else [float("nan")] * 2)
    return out


def _risk_columns(hs: list[float], n_grid: int) -> list[str]:
    return [*(f"cs_risk_{h:g}" for h in hs), *(f"cs_risk_grid_{i}" for i in range(n_grid))]


def reweightable(frames: list[pd.DataFrame], hs: list[float], n_grid: int) -> bool:
    """Whether every duration and cause-specific risk is finite (the reweighted path's
    sorted structures need finite values; otherwise the rows are resampled)."""
    cols = ["duration", *_risk_columns(hs, n_grid)]
    return all(np.isfinite(fr[cols].to_numpy(float)).all() for fr in frames)


def _censoring(uniq: np.ndarray, inverse: np.ndarray, event: np.ndarray,
               w: np.ndarray) -> CensoringSurvival:
    """:meth:`CensoringSurvival.fit` of the rows repeated ``w`` times (integer weights)."""
    counts_all = np.bincount(inverse, weights=w, minlength=len(uniq))
    keep = counts_all > 0
    counts = np.rint(counts_all[keep]).astype(np.int64)
    t_uniq = uniq[keep]
    n_events = np.rint(np.bincount(inverse, weights=w * event, minlength=len(uniq))[keep]
                       ).astype(int)
    if n_events.sum() == counts.sum():  # every row drawn is an event
        return CensoringSurvival(t_uniq, np.ones(len(t_uniq)))
    n_censored = counts - n_events
    n_at_risk = counts.sum() - np.cumsum(np.r_[0, counts])[:-1] - n_events
    ratio = np.divide(n_censored, n_at_risk, out=np.zeros(len(t_uniq), dtype=float),
                      where=n_censored != 0)
    return CensoringSurvival(np.r_[-np.inf, t_uniq], np.r_[1.0, np.cumprod(1.0 - ratio)])


@dataclass
class _Group:
    """One landmark group of one repeat's out-of-fold frame, with its sorted structures."""

    t: np.ndarray            # duration (years from the landmark)
    tt: np.ndarray           # the same, at least 1e-9 (as the IPCW metrics get it)
    event: np.ndarray        # endpoint
    marker: np.ndarray       # cs_risk at the longest horizon
    risks: list[np.ndarray]  # cs_risk per horizon
    order: list[np.ndarray]  # per horizon, rows by decreasing risk
    grid_risk: np.ndarray    # (rows, grid) cs_risk on the grid
    pairs_t: ConcordancePairs   # Harrell's pairs on the durations
    pairs_tt: ConcordancePairs  # the same on ``tt`` (the same object unless they differ)
    uniq: np.ndarray         # distinct ``tt``
    inverse: np.ndarray      # row -> index into ``uniq``


class ReweightedMetrics:
    """The headline metrics of one repeat's out-of-fold frame under row weights.

    Parameters
    ----------
    frame
        ``landmark``, ``duration``, ``code`` and ``cs_risk_<h>`` per horizon and
        ``cs_risk_grid_<i>`` per grid time (:func:`crossval.oof_predictions`); every
        duration and risk finite (:func:`reweightable`).
    hs, h_max, grid
        Horizons, the longest one and the integrated Brier score's times.
    """

    def __init__(self, frame: pd.DataFrame, hs: list[float], h_max: float,
                 grid: np.ndarray) -> None:
        self.hs, self.h_max, self.grid = hs, h_max, np.asarray(grid, float)
        self.n = len(frame)
        landmark = frame["landmark"].to_numpy()
        t_all = frame["duration"].to_numpy(float)
        ev_all = frame["code"].to_numpy() == 1
        risk_all = [frame[f"cs_risk_{h:g}"].to_numpy(float) for h in hs]
        marker_all = frame[f"cs_risk_{h_max:g}"].to_numpy(float)
        grid_all = frame[[f"cs_risk_grid_{i}" for i in range(len(self.grid))]].to_numpy(float)
        self.groups: list[tuple[np.ndarray, _Group]] = []
        for value in np.unique(landmark):
            rows = np.flatnonzero(landmark == value)
            t, e = t_all[rows], ev_all[rows]
            tt = np.maximum(t, _MIN_TIME)
            m = marker_all[rows]
            pairs_t = ConcordancePairs(t, e, m)
            # clamping changes the pairs only when two distinct times are both clamped
            pairs_tt = (pairs_t if len(np.unique(t[t <= _MIN_TIME])) <= 1
                        else ConcordancePairs(tt, e, m))
            uniq, inverse = np.unique(tt, return_inverse=True)
            risks = [r[rows] for r in risk_all]
            self.groups.append((rows, _Group(
                t=t, tt=tt, event=e, marker=m, risks=risks,
                order=[np.argsort(-r, kind="stable") for r in risks],
                grid_risk=grid_all[rows], pairs_t=pairs_t, pairs_tt=pairs_tt,
                uniq=uniq, inverse=inverse.ravel())))

    # ----------------------------------------------------------------- one replicate
    def headline(self, weight: np.ndarray) -> dict[str, float]:
        """``crossval._headline`` of ``landmark_metrics(resampled, hs, h_max, grid,
        with_brier=False)``, where ``weight[i]`` is how often row ``i`` was drawn."""
        hs = self.hs
        num = den = 0
        uno, uno_w = [], []
        td: dict[float, tuple[list[float], list[int]]] = {h: ([], []) for h in hs}
        ibs, ibs_w = [], []
        for rows, g in self.groups:
            w = weight[rows]
            drawn = w > 0
            total = round(w.sum())
            if total == 0:
                continue  # the group has no rows in this replicate
            n_ev = round(w[g.event].sum())
            a, b = self._harrell(g, w, n_ev, total)
            num, den = num + a, den + b
            cens = _censoring(g.uniq, g.inverse, g.event, w) if n_ev else None
            uno.append(self._uno(g, w, drawn, n_ev, cens))
            uno_w.append(n_ev)
            t_max, t_min = g.t[drawn].max(), g.t[drawn].min()
            ipw = _ipcw(g, drawn, cens) if n_ev else None
            for j, h in enumerate(hs):
                td[h][0].append(self._td_auc(g, j, w, drawn, h, t_max, ipw))
                td[h][1].append(round(w[g.event & (g.t <= h)].sum()))
            ibs.append(self._ibs(g, w, drawn, n_ev, total, t_max, t_min, cens))
            ibs_w.append(total)
        out = {"c_index": num / den if den else float("nan"), "uno_c": _wmean(uno, uno_w)}
        nan = float("nan")
        for h in hs:
            out[f"td_auc_{h:g}"] = _wmean(*td[h])
            # no pseudo-observations without Brier scores: calibration is not estimated
            out[f"calibration_slope_{h:g}"] = nan
            out[f"ici_{h:g}"] = nan
        out["ibs"] = _wmean(ibs, ibs_w)
        return out

    @staticmethod
    def _harrell(g: _Group, w: np.ndarray, n_ev: int, total: int) -> tuple[int, int]:
        if n_ev == 0 or total < 2:
            return 0, 0
        conc, tied, comparable = g.pairs_t.counts(w)
        comparable = round(comparable)
        if comparable == 0:
            return 0, 0
        return 2 * round(conc) + round(tied), 2 * comparable

    def _uno(self, g: _Group, w: np.ndarray, drawn: np.ndarray, n_ev: int,
             cens: CensoringSurvival | None) -> float:
        if n_ev == 0:
            return float("nan")
        tau = self.h_max - _EPS_T
        before = drawn & (g.tt < tau)
        ipcw2 = np.zeros(len(g.tt))
        try:
            ipcw2[before] = cens.ipcw(g.tt[before], g.event[before])
        except (ValueError, ZeroDivisionError):
            return float("nan")
        ipcw2 = np.square(ipcw2)
        conc, tied, comparable = g.pairs_tt.per_event(w)
        ev = g.pairs_tt.events_sorted
        we = ipcw2[ev] * w[ev]
        if not ((comparable > 0) & (w[ev] > 0)).any():
            return float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.sum(we * conc + 0.5 * we * tied) / np.sum(we * comparable))

    @staticmethod
    def _td_auc(g: _Group, j: int, w: np.ndarray, drawn: np.ndarray, horizon: float,
                t_max: float, ipw: np.ndarray | None) -> float:
        h = min(horizon, t_max - _EPS_T)
        cases = g.event & (g.t <= h)
        if w[cases].sum() == 0 or w[g.t > h].sum() == 0:
            return float("nan")
        tt = g.tt[drawn]
        if h >= tt.max() or h < tt.min() or ipw is None:
            return float("nan")
        o = g.order[j]
        o = o[drawn[o]]
        ts, es, rs, ws = g.tt[o], g.event[o], g.risks[j][o], w[o]
        is_case = (ts <= h) & es
        is_control = ts > h
        cumsum_tp = np.cumsum(is_case * ipw[o] * ws)
        cumsum_fp = np.cumsum(is_control * ws)
        true_pos = cumsum_tp / cumsum_tp[-1]
        false_pos = cumsum_fp / cumsum_fp[-1]
        is_tied = np.absolute(np.diff(np.r_[np.inf, rs])) <= TIED_TOL
        idx = np.flatnonzero(is_tied) - 1
        tp = np.r_[0, np.delete(true_pos, idx)]
        fp = np.r_[0, np.delete(false_pos, idx)]
        return float(np.trapezoid(tp, fp))

    def _ibs(self, g: _Group, w: np.ndarray, drawn: np.ndarray, n_ev: int, total: int,
             t_max: float, t_min: float, cens: CensoringSurvival | None) -> float:
        if n_ev == 0 or total < 2:
            return float("nan")
        grid = self.grid
        keep = (grid < t_max - _EPS_T) & (grid >= t_min)
        if keep.sum() < 2:
            return float("nan")
        times = np.unique(grid[keep])
        tt = g.tt[drawn]
        if times.max() >= tt.max() or times.min() < tt.min():
            return float("nan")
        s = 1.0 - g.grid_risk[drawn][:, keep]
        e, ws = g.event[drawn], w[drawn]
        g_t = cens.at(times)
        g_t[g_t == 0] = np.inf
        g_y = cens.at(tt)
        g_y[g_y == 0] = np.inf
        is_case = ((tt[:, None] <= times[None, :]) & e[:, None]).astype(int)
        is_control = (tt[:, None] > times[None, :]).astype(int)
        terms = (np.square(s) * is_case / g_y[:, None]
                 + np.square(1.0 - s) * is_control / g_t[None, :])
        scores = (ws @ terms) / ws.sum()
        return float(np.trapezoid(scores, times) / (times[-1] - times[0]))


def _ipcw(g: _Group, drawn: np.ndarray, cens: CensoringSurvival) -> np.ndarray | None:
    """``event / G(time)`` of the rows drawn (0 elsewhere); None where ``G`` is 0 at an
    event drawn (the td-AUC is then NaN, as scikit-survival raises)."""
    out = np.zeros(len(g.tt))
    try:
        out[drawn] = cens.ipcw(g.tt[drawn], g.event[drawn])
    except ValueError:
        return None
    return out


def _wmean(values: list[float], weights: list[float]) -> float:
    """:func:`analytics.models.validation._wmean`."""
    v, w = np.asarray(values, float), np.asarray(weights, float)
    ok = np.isfinite(v) & (w > 0)
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")


def replicate_metrics(frames: list[pd.DataFrame], hs: list[float], h_max: float,
                      grid: np.ndarray) -> Callable[[int, np.ndarray], dict[str, float]]:
    """``(repeat, row weights) -> headline metrics`` of ``frames[repeat]``, the sorted
    structures of each frame built once."""
    per_frame = [ReweightedMetrics(fr, hs, h_max, grid) for fr in frames]
    return lambda r, weight: per_frame[r].headline(weight)
