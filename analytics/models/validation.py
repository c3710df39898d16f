"""Validation metrics for landmark predictions (one flat module, fixed argument order).

Every metric takes outcomes as ``(time, cause)`` arrays measured from the landmark
(``cause``: 1 = endpoint, 2 = any competing event, 0 = censored) and a risk estimate.
Discrimination and error are scikit-survival's metrics (computed without its per-row
loops by :mod:`analytics.models.ipcw` and :mod:`analytics.models.concordance`, to the
same values), which treat competing events as censored: ``c_index``, ``uno_c``, ``td_auc``, ``brier`` and ``ibs`` are cause-specific
and are computed on the cause-specific risk ``1 - exp(-A_endpoint(h))`` (the same as
the cumulative incidence when there is no competing cause). Calibration and net benefit
assess the cumulative incidence against the Aalen-Johansen estimate, where competing
events are not censored.

Stacked landmark rows are evaluated per landmark time and pooled: Harrell's C sums
concordant/comparable pairs within each landmark (pairs across landmarks share no time
origin); the other metrics are averaged over landmarks, weighted by the number of
endpoint events (td-AUC: cases at the horizon; Brier/IBS: rows). The censoring
distribution for IPCW is the Kaplan-Meier estimate from the evaluated rows of the same
landmark.

Calibration at horizon ``H`` (Austin & Steyerberg 2020; Andersen & Perme 2010): the
observed risk is the jackknife pseudo-observation of the Aalen-Johansen cumulative
incidence at ``H`` (computed within each landmark), smoothed against the predicted risk
with a tricube local-linear (loess) smoother; ICI, E50 and E90 are the mean, median and
90th percentile of ``|observed - predicted|``. The calibration slope ``b`` comes from a
least-squares fit of ``pseudo = 1 - exp(-exp(a + b cloglog(predicted)))`` (ideal 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from analytics.models import ipcw
from analytics.models.concordance import harrell_counts
from analytics.models.ipcw import CensoringSurvival

__all__ = [
    "Calibration",
    "aalen_johansen",
    "brier",
    "calibration",
    "censoring_of",
    "harrell_c",
    "integrated_brier",
    "landmark_metrics",
    "lowess",
    "net_benefit",
    "pseudo_observations",
    "td_auc",
    "uno_c",
]

_EPS_T = 1e-7


def _times(time: np.ndarray) -> np.ndarray:
    # scikit-survival wants positive times (a landmark row may end at its landmark)
    return np.maximum(np.asarray(time, float), 1e-9)


# --------------------------------------------------------------------------- discrimination
def harrell_c(time: np.ndarray, cause: np.ndarray, risk: np.ndarray) -> tuple[float, int, int]:
    """Harrell's C (scikit-survival's ``concordance_index_censored``, competing events
    censored), counted by sorting (:mod:`analytics.models.concordance`: the same counts,
    O(n log^2 n) instead of O(events x n)).

    Returns
    -------
    c, numerator_x2, comparable_x2
        The C-index and, for pooling, ``2 * (concordant + tied_risk / 2)`` and
        ``2 * comparable pairs`` (integers). NaN, 0, 0 without an event, with fewer than
        two rows, with a non-finite time or risk, or without a comparable pair (where
        scikit-survival raises).
    """
    event = np.asarray(cause) == 1
    t, r = np.asarray(time, float), np.asarray(risk, float)
    if event.sum() == 0 or len(t) < 2 or not (np.isfinite(t).all() and np.isfinite(r).all()):
        return float("nan"), 0, 0
    conc, tied, comparable = harrell_counts(t, event, r)
    if comparable == 0:
        return float("nan"), 0, 0
    num, den = 2 * conc + tied, 2 * comparable
    return num / den, num, den


def uno_c(time: np.ndarray, cause: np.ndarray, risk: np.ndarray, tau: float,
          cens: CensoringSurvival | None = None) -> float:
    """Uno's IPCW C truncated at ``tau`` (scikit-survival's ``concordance_index_ipcw``,
    computed by :func:`analytics.models.ipcw.uno_concordance`); ``cens``: the rows'
    censoring survival when already fitted."""
    event = np.asarray(cause) == 1
    if event.sum() == 0:
        return float("nan")
    try:
        return ipcw.uno_concordance(_times(time), event, risk, tau - _EPS_T, cens)
    except (ValueError, ZeroDivisionError):
        return float("nan")


def td_auc(time: np.ndarray, cause: np.ndarray, risk: np.ndarray, horizon: float,
           cens: CensoringSurvival | None = None) -> float:
    """Cumulative/dynamic AUC at ``horizon`` (scikit-survival's ``cumulative_dynamic_auc``,
    computed by :func:`analytics.models.ipcw.cumulative_dynamic_auc`)."""
    event = np.asarray(cause) == 1
    t = np.asarray(time, float)
    h = min(horizon, t.max() - _EPS_T) if len(t) else horizon
    cases = event & (t <= h)
    if cases.sum() == 0 or (t > h).sum() == 0:
        return float("nan")
    try:
        return ipcw.cumulative_dynamic_auc(_times(t), event, risk, h, cens)
    except ValueError:
        return float("nan")


def brier(time: np.ndarray, cause: np.ndarray, risk: np.ndarray, horizon: float,
          cens: CensoringSurvival | None = None) -> float:
    """IPCW Brier score of ``1 - risk`` at ``horizon`` (scikit-survival's ``brier_score``,
    computed by :func:`analytics.models.ipcw.brier_scores`)."""
    event = np.asarray(cause) == 1
    t = np.asarray(time, float)
    if len(t) < 2 or event.sum() == 0:
        return float("nan")
    h = min(horizon, t.max() - _EPS_T)
    try:
        return float(ipcw.brier_scores(_times(t), event,
                                       1.0 - np.asarray(risk, float).reshape(-1, 1), [h],
                                       cens)[0])
    except ValueError:
        return float("nan")


def integrated_brier(time: np.ndarray, cause: np.ndarray, risk_grid: np.ndarray,
                     grid: np.ndarray, cens: CensoringSurvival | None = None) -> float:
    """Integrated IPCW Brier score over ``grid`` (scikit-survival's
    ``integrated_brier_score``, computed by :func:`analytics.models.ipcw.integrated_brier`).

    ``risk_grid`` has shape ``(n, len(grid))``; grid times at or past the last follow-up
    time are dropped.
    """
    event = np.asarray(cause) == 1
    t = np.asarray(time, float)
    if event.sum() == 0 or len(t) < 2:
        return float("nan")
    keep = (grid < t.max() - _EPS_T) & (grid >= t.min())
    if keep.sum() < 2:
        return float("nan")
    try:
        return ipcw.integrated_brier(_times(t), event, 1.0 - risk_grid[:, keep], grid[keep],
                                     cens)
    except ValueError:
        return float("nan")


def censoring_of(time: np.ndarray, cause: np.ndarray) -> CensoringSurvival:
    """The censoring survival the IPCW metrics of these rows share (competing events
    censored)."""
    return CensoringSurvival.fit(_times(time), np.asarray(cause) == 1)


# --------------------------------------------------------------------------- cumulative incidence
def aalen_johansen(time: np.ndarray, cause: np.ndarray, horizon: float) -> float:
    """Aalen-Johansen cumulative incidence of cause 1 by ``horizon``."""
    t = np.asarray(time, float)
    c = np.asarray(cause)
    if len(t) == 0:
        return float("nan")
    ut = np.unique(t[(c > 0) & (t <= horizon)])
    if len(ut) == 0:
        return 0.0
    at_risk = (t[None, :] >= ut[:, None]).sum(axis=1)
    d1 = ((t[None, :] == ut[:, None]) & (c[None, :] == 1)).sum(axis=1)
    dall = ((t[None, :] == ut[:, None]) & (c[None, :] > 0)).sum(axis=1)
    surv = np.cumprod(1.0 - dall / at_risk)
    s_prev = np.concatenate([[1.0], surv[:-1]])
    return float(np.sum(s_prev * d1 / at_risk))


def pseudo_observations(time: np.ndarray, cause: np.ndarray, horizon: float) -> np.ndarray:
    """Jackknife pseudo-observations of the Aalen-Johansen CIF of cause 1 at ``horizon``.

    ``pseudo_i = n F(H) - (n - 1) F_{-i}(H)``; with no competing events this is the
    Kaplan-Meier pseudo-value of ``1 - S(H)``. Vectorised leave-one-out, O(n m) memory
    for ``m`` distinct event times up to ``H`` (rows processed in chunks).
    """
    t = np.asarray(time, float)
    c = np.asarray(cause)
    n = len(t)
    if n == 0:
        return np.empty(0)
    ut = np.unique(t[(c > 0) & (t <= horizon)])
    if len(ut) == 0:
        return np.zeros(n)
    sort_t = np.sort(t)
    at_risk = n - np.searchsorted(sort_t, ut, side="left")
    idx = np.searchsorted(ut, t)
    hit = (idx < len(ut)) & (ut[np.minimum(idx, len(ut) - 1)] == t)
    d1 = np.bincount(idx[hit & (c == 1)], minlength=len(ut)).astype(float)
    dall = np.bincount(idx[hit & (c > 0)], minlength=len(ut)).astype(float)

    def cif(y: np.ndarray, e1: np.ndarray, ea: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            h_all = np.where(y > 0, ea / y, 0.0)
            h1 = np.where(y > 0, e1 / y, 0.0)
        s = np.cumprod(1.0 - h_all, axis=-1)
        s_prev = np.concatenate([np.ones((*s.shape[:-1], 1)), s[..., :-1]], axis=-1)
        return np.sum(s_prev * h1, axis=-1)

    full = cif(at_risk.astype(float), d1, dall)
    out = np.empty(n)
    step = max(1, 2_000_000 // max(len(ut), 1))
    for a in range(0, n, step):
        ti, ci = t[a:a + step, None], c[a:a + step, None]
        y = at_risk[None, :] - (ti >= ut[None, :])
        same = ti == ut[None, :]
        e1 = d1[None, :] - (same & (ci == 1))
        ea = dall[None, :] - (same & (ci > 0))
        out[a:a + step] = n * full - (n - 1) * cif(y.astype(float), e1, ea)
    return out


# --------------------------------------------------------------------------- calibration
def lowess(x: np.ndarray, y: np.ndarray, at: np.ndarray, frac: float = 0.75) -> np.ndarray:
    """Tricube-weighted local-linear smoother (loess, degree 1, no robustness steps)."""
    x, y, at = (np.asarray(a, float) for a in (x, y, at))
    n = len(x)
    k = min(n, max(3, int(np.ceil(frac * n))))
    out = np.empty(len(at))
    for i, x0 in enumerate(at):
        dist = np.abs(x - x0)
        h = np.partition(dist, k - 1)[k - 1]
        h = h if h > 0 else (dist.max() or 1.0)
        u = dist / (h * 1.0000001)
        w = 1.0 - u * u * u
        # weights below 1e-12 are 0: their cubes would be subnormal numbers, on which
        # every later product runs ~20x slower
        w[w < 1e-4] = 0.0
        w = w * w * w
        sw = w.sum()
        if sw <= 0:
            out[i] = np.nan
            continue
        xm, ym = (w @ x) / sw, (w @ y) / sw
        sxx = w @ (x - xm) ** 2
        slope = (w @ ((x - xm) * (y - ym))) / sxx if sxx > 1e-15 else 0.0
        out[i] = ym + slope * (x0 - xm)
    return out


@dataclass
class Calibration:
    """Calibration of predicted risk at one horizon (see the module docstring)."""

    horizon: float
    slope: float
    intercept: float
    ici: float
    e50: float
    e90: float
    curve: pd.DataFrame  # predicted, observed (smoothed pseudo-observations)
    n: int

    def to_json(self) -> dict:
        return {"horizon": self.horizon, "slope": self.slope, "intercept": self.intercept,
                "ici": self.ici, "e50": self.e50, "e90": self.e90, "n": self.n,
                "curve": {"predicted": self.curve["predicted"].round(5).tolist(),
                          "observed": self.curve["observed"].round(5).tolist()}}


def _cloglog(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(-np.log(1 - p))


def calibration(predicted: np.ndarray, pseudo: np.ndarray, horizon: float,
                frac: float = 0.75, n_points: int = 50) -> Calibration:
    """Calibration slope, ICI, E50, E90 and curve from pseudo-observations."""
    p = np.asarray(predicted, float)
    y = np.asarray(pseudo, float)
    ok = np.isfinite(p) & np.isfinite(y)
    p, y = p[ok], y[ok]
    nan = float("nan")
    if len(p) < 10 or np.ptp(p) == 0:
        return Calibration(horizon, nan, nan, nan, nan, nan,
                           pd.DataFrame({"predicted": [], "observed": []}), len(p))
    grid = np.unique(np.quantile(p, np.linspace(0.01, 0.99, n_points)))
    obs_grid = lowess(p, y, grid, frac)
    obs = np.interp(p, grid, obs_grid)
    err = np.abs(obs - p)
    lp = _cloglog(p)

    def resid(ab: np.ndarray) -> np.ndarray:
        return 1 - np.exp(-np.exp(np.clip(ab[0] + ab[1] * lp, -30, 5))) - y

    fit = least_squares(resid, x0=np.array([0.0, 1.0]), method="lm")
    return Calibration(horizon=horizon, slope=float(fit.x[1]), intercept=float(fit.x[0]),
                       ici=float(err.mean()), e50=float(np.median(err)),
                       e90=float(np.quantile(err, 0.9)),
                       curve=pd.DataFrame({"predicted": grid, "observed": obs_grid}),
                       n=len(p))


def net_benefit(time: np.ndarray, cause: np.ndarray, risk: np.ndarray, horizon: float,
                thresholds: np.ndarray) -> pd.DataFrame:
    """Decision curve: net benefit of acting when ``risk >= threshold``.

    ``NB = F(H | act) P(act) - (1 - F(H | act)) P(act) pt / (1 - pt)`` with ``F`` the
    Aalen-Johansen cumulative incidence (Vickers et al. 2008 for censored data), beside
    "treat all" and "treat none" (0).
    """
    t, c, r = np.asarray(time, float), np.asarray(cause), np.asarray(risk, float)
    f_all = aalen_johansen(t, c, horizon)
    rows = []
    for pt in thresholds:
        act = r >= pt
        p_act = act.mean()
        f = aalen_johansen(t[act], c[act], horizon) if act.any() else 0.0
        w = pt / (1 - pt)
        rows.append({"threshold": float(pt),
                     "net_benefit": float(f * p_act - (1 - f) * p_act * w),
                     "treat_all": float(f_all - (1 - f_all) * w)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- landmark pooling
def _wmean(values: list[float], weights: list[float]) -> float:
    v, w = np.asarray(values, float), np.asarray(weights, float)
    ok = np.isfinite(v) & (w > 0)
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")


def landmark_metrics(frame: pd.DataFrame, horizons: list[float], h_max: float,
                     grid: np.ndarray | None = None, with_calibration: bool = True,
                     score: str | None = None, with_brier: bool = True) -> dict:
    """Every metric on stacked landmark predictions.

    Parameters
    ----------
    frame
        Rows ``landmark``, ``duration``, ``code`` (1 endpoint, 2 competing, 0 censored),
        ``risk_<h>`` (cumulative incidence; calibration) and ``cs_risk_<h>``
        (cause-specific risk; discrimination and Brier, which censor competing events)
        per horizon, ``cs_risk_grid_<i>`` per grid time when ``grid`` is given, and
        optionally ``score`` (a marker used instead of the risk for discrimination).
    horizons, h_max
        Horizons and the administrative censoring time.
    grid
        Times for the integrated Brier score.
    """
    marker = score or f"cs_risk_{h_max:g}"
    num = den = 0
    uno, uno_w, td = [], [], {h: ([], []) for h in horizons}
    br = {h: ([], []) for h in horizons}
    ibs, ibs_w = [], []
    pseudo = {h: np.full(len(frame), np.nan) for h in horizons}
    pos = {k: i for i, k in enumerate(frame.index)}
    for _, g in frame.groupby("landmark", sort=True):
        t, c = g["duration"].to_numpy(float), g["code"].to_numpy()
        m = g[marker].to_numpy(float)
        _, a, b = harrell_c(t, c, m)
        num, den = num + a, den + b
        n_ev = int((c == 1).sum())
        cens = censoring_of(t, c) if n_ev else None
        uno.append(uno_c(t, c, m, h_max, cens))
        uno_w.append(n_ev)
        for h in horizons:
            col = marker if score else f"cs_risk_{h:g}"
            td[h][0].append(td_auc(t, c, g[col].to_numpy(float), h, cens))
            td[h][1].append(int(((c == 1) & (t <= h)).sum()))
            if not score and with_brier:
                br[h][0].append(brier(t, c, g[col].to_numpy(float), h, cens))
                br[h][1].append(len(g))
                if with_calibration:
                    idx = [pos[k] for k in g.index]
                    pseudo[h][idx] = pseudo_observations(t, c, h)
        if grid is not None and not score:
            rg = g[[f"cs_risk_grid_{i}" for i in range(len(grid))]].to_numpy(float)
            ibs.append(integrated_brier(t, c, rg, grid, cens))
            ibs_w.append(len(g))
    out: dict = {
        "c_index": num / den if den else float("nan"),
        "uno_c": _wmean(uno, uno_w),
        "td_auc": {f"{h:g}": _wmean(*td[h]) for h in horizons},
        "n_rows": len(frame),
        "n_events": int((frame["code"] == 1).sum()),
        "n_patients": int(frame["patient"].nunique()) if "patient" in frame else None,
    }
    if not score:
        out["brier"] = {f"{h:g}": _wmean(*br[h]) for h in horizons}
        out["ibs"] = _wmean(ibs, ibs_w) if grid is not None else float("nan")
        if with_calibration:
            out["calibration"] = {f"{h:g}": calibration(frame[f"risk_{h:g}"].to_numpy(float),
                                                        pseudo[h], h)
                                  for h in horizons}
    return out
