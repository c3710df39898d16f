"""IPCW metrics without scikit-survival's per-row Python loops: the same numbers, vectorised.

scikit-survival's ``cumulative_dynamic_auc``, ``brier_score``, ``integrated_brier_score``
and ``concordance_index_ipcw`` each fit the censoring distribution with a Kaplan-Meier
estimator whose counting step is a Python loop over the rows, and Uno's C loops over the
events comparing each with every row. Cross-validation calls them per landmark group, per
horizon, per repeat and per bootstrap replicate. Here the censoring distribution is
counted with ``np.unique`` once per group (:class:`CensoringSurvival`) and shared by every
metric of that group; Uno's C counts its pairs by sorting
(:meth:`analytics.models.concordance.ConcordancePairs.per_event`).

Each function follows scikit-survival's own steps and order of operations, and raises
``ValueError`` where it does (times outside follow-up, censoring survival of zero at an
event), so the values agree to the last few bits (``tests/models/test_ipcw.py`` compares
them on random data with tied times, tied risks and censoring).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.models.concordance import DIRECT_MAX_PAIRS, TIED_TOL, ConcordancePairs

__all__ = ["CensoringSurvival", "brier_scores", "cumulative_dynamic_auc", "integrated_brier",
           "uno_concordance"]


@dataclass(frozen=True)
class CensoringSurvival:
    """Kaplan-Meier estimate of the censoring survival ``G(t)`` (scikit-survival's
    ``CensoringDistributionEstimator``): an event at a time counts before a censoring at
    the same time.

    Attributes
    ----------
    unique_time
        ``-inf`` then the distinct follow-up times.
    prob
        ``G`` just after each of them (1 at ``-inf``).
    """

    unique_time: np.ndarray
    prob: np.ndarray

    @classmethod
    def fit(cls, time: np.ndarray, event: np.ndarray) -> CensoringSurvival:
        """From follow-up times (years) and event indicators (True: event, else censored)."""
        t = np.asarray(time, float)
        e = np.asarray(event, bool)
        if e.all():
            uniq = np.unique(t)
            return cls(uniq, np.ones(len(uniq)))
        uniq, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
        n_events = np.bincount(inverse, weights=e, minlength=len(uniq)).astype(int)
        n_censored = counts - n_events
        n_at_risk = len(t) - np.cumsum(np.r_[0, counts])[:-1] - n_events
        ratio = np.divide(n_censored, n_at_risk, out=np.zeros(len(uniq), dtype=float),
                          where=n_censored != 0)
        return cls(np.r_[-np.inf, uniq], np.r_[1.0, np.cumprod(1.0 - ratio)])

    def at(self, time: np.ndarray) -> np.ndarray:
        """``G`` at ``time`` (step function; 0 past the last time when ``G`` reached 0).

        Raises
        ------
        ValueError
            If a time is past the last follow-up time while ``G`` is still positive.
        """
        time = np.asarray(time, float)
        extends = time > self.unique_time[-1]
        if self.prob[-1] > 0 and extends.any():
            raise ValueError(f"time must be smaller than largest observed time point: "
                             f"{self.unique_time[-1]}")
        out = np.empty(time.shape, dtype=float)
        out[extends] = 0.0
        valid = ~extends
        t = time[valid]
        idx = np.searchsorted(self.unique_time, t)
        eps = np.finfo(self.unique_time.dtype).eps
        exact = np.absolute(self.unique_time[idx] - t) < eps
        idx[~exact] -= 1
        out[valid] = self.prob[idx]
        return out

    def ipcw(self, time: np.ndarray, event: np.ndarray) -> np.ndarray:
        """``event / G(time)`` per row (0 for censored rows).

        Raises
        ------
        ValueError
            If ``G`` is 0 at an event time.
        """
        t = np.asarray(time, float)
        e = np.asarray(event, bool)
        g = self.at(t[e])
        if (g == 0.0).any():
            raise ValueError("censoring survival function is zero at one or more time points")
        w = np.zeros(len(t))
        w[e] = 1.0 / g
        return w


def _check_times(time: np.ndarray, times: np.ndarray) -> np.ndarray:
    times = np.unique(np.atleast_1d(np.asarray(times, float)))
    if times.max() >= time.max() or times.min() < time.min():
        raise ValueError(f"all times must be within follow-up time of test data: "
                         f"[{time.min()}; {time.max()}[")
    return times


def _finite(estimate: np.ndarray) -> np.ndarray:
    a = np.asarray(estimate, float)
    if not np.isfinite(a).all():
        raise ValueError("estimate contains NaN or infinity")
    return a


def cumulative_dynamic_auc(time: np.ndarray, event: np.ndarray, risk: np.ndarray,
                           horizon: float, cens: CensoringSurvival | None = None,
                           tied_tol: float = TIED_TOL) -> float:
    """Cumulative/dynamic AUC at ``horizon`` (scikit-survival's ``cumulative_dynamic_auc``
    with the same rows as training and test data and one time point).

    Cases: an event by ``horizon``, weighted by ``1 / G(time)``; controls: follow-up past
    ``horizon``. ``cens`` is the censoring survival of these rows when already fitted.

    Raises
    ------
    ValueError
        As scikit-survival: ``horizon`` outside the follow-up, a non-finite risk, or
        ``G`` of 0 at an event.
    """
    t = np.asarray(time, float)
    e = np.asarray(event, bool)
    r = _finite(risk)
    h = _check_times(t, np.asarray([horizon]))[0]
    cens = cens or CensoringSurvival.fit(t, e)
    w = cens.ipcw(t, e)
    o = np.argsort(-r[:, None], axis=0)[:, 0]  # scikit-survival's order, ties included
    t, e, r, w = t[o], e[o], r[o], w[o]
    is_case = (t <= h) & e
    is_control = t > h
    is_tied = np.absolute(np.diff(np.r_[np.inf, r])) <= tied_tol
    cumsum_tp = np.cumsum(is_case * w)
    cumsum_fp = np.cumsum(is_control)
    true_pos = cumsum_tp / cumsum_tp[-1]
    false_pos = cumsum_fp / is_control.sum()
    idx = np.flatnonzero(is_tied) - 1  # keep the last of each run of tied risks
    tp = np.r_[0, np.delete(true_pos, idx)]
    fp = np.r_[0, np.delete(false_pos, idx)]
    return float(np.trapezoid(tp, fp))


def brier_scores(time: np.ndarray, event: np.ndarray, survival: np.ndarray,
                 times: np.ndarray, cens: CensoringSurvival | None = None) -> np.ndarray:
    """IPCW Brier score of the predicted event-free probabilities at each of ``times``
    (scikit-survival's ``brier_score``, same rows as training and test data).

    ``survival`` has shape ``(n, len(times))``; ``times`` ascending and distinct.

    Raises
    ------
    ValueError
        As scikit-survival (times outside the follow-up, non-finite estimates).
    """
    t = np.asarray(time, float)
    e = np.asarray(event, bool)
    est = _finite(survival)
    times = _check_times(t, times)
    est = est.reshape(-1, 1) if est.ndim == 1 else est
    if est.shape[1] != len(times):
        raise ValueError(f"expected estimate with {len(times)} columns, got {est.shape[1]}")
    cens = cens or CensoringSurvival.fit(t, e)
    g_t = cens.at(times)
    g_t[g_t == 0] = np.inf
    g_y = cens.at(t)
    g_y[g_y == 0] = np.inf
    out = np.empty(len(times))
    for i, h in enumerate(times):
        s = est[:, i]
        is_case = (t <= h) & e
        is_control = t > h
        out[i] = np.mean(np.square(s) * is_case.astype(int) / g_y
                         + np.square(1.0 - s) * is_control.astype(int) / g_t[i])
    return out


def integrated_brier(time: np.ndarray, event: np.ndarray, survival: np.ndarray,
                     times: np.ndarray, cens: CensoringSurvival | None = None) -> float:
    """Trapezoidal integral of :func:`brier_scores` over ``times``, divided by their span
    (scikit-survival's ``integrated_brier_score``)."""
    times = np.unique(np.asarray(times, float))
    if len(times) < 2:
        raise ValueError("At least two time points must be given")
    scores = brier_scores(time, event, survival, times, cens)
    return float(np.trapezoid(scores, times) / (times[-1] - times[0]))


def uno_concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray, tau: float,
                    cens: CensoringSurvival | None = None,
                    tied_tol: float = TIED_TOL) -> float:
    """Uno's IPCW C truncated at ``tau`` (scikit-survival's ``concordance_index_ipcw`` with
    the same rows as training and test data).

    Each comparable pair (Harrell's rules) counts with the weight ``G(t_i)^-2`` of its
    earlier event ``i``, events at or after ``tau`` with weight 0.

    Raises
    ------
    ValueError
        As scikit-survival: no comparable pair, ``G`` of 0 at an event before ``tau``.
    """
    t = np.asarray(time, float)
    e = np.asarray(event, bool)
    r = _finite(risk)
    cens = cens or CensoringSurvival.fit(t, e)
    before = t < tau
    w = np.zeros(len(t))
    w[before] = cens.ipcw(t[before], e[before])
    w = np.square(w)
    conc, tied, comparable, ev = _per_event_pairs(t, e, r, tied_tol)
    if not (comparable > 0).any():
        raise ValueError("Data has no comparable pairs, cannot estimate concordance index.")
    we = w[ev]
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(we * conc + 0.5 * we * tied) / np.sum(we * comparable))


def _per_event_pairs(t: np.ndarray, e: np.ndarray, r: np.ndarray, tied_tol: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per event: concordant, tied-risk and comparable rows, and the event's row index."""
    ev = np.flatnonzero(e)
    if len(ev) * len(t) <= DIRECT_MAX_PAIRS:
        ti, ri = t[ev, None], r[ev, None]
        comparable = (t[None, :] > ti) | ((t[None, :] == ti) & ~e[None, :])
        diff = ri - r[None, :]
        tied = np.abs(diff) <= tied_tol
        return ((comparable & ~tied & (diff > 0)).sum(axis=1),
                (comparable & tied).sum(axis=1), comparable.sum(axis=1), ev)
    pairs = ConcordancePairs(t, e, r, tied_tol=tied_tol)
    conc, tied, comparable = pairs.per_event()
    return conc, tied, comparable, pairs.events_sorted
