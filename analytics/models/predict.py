"""The fitted landmark model and risk trajectories.

:class:`LandmarkModel` bundles the design (imputation), one cause-specific hazard model
for the endpoint and one per competing cause, and turns them into the cumulative
incidence of the endpoint by each horizon:

``CIF(H | s, x) = sum_i S(t_{i-1}) (1 - exp(-dA_i)) dA_1i / dA_i`` over the jump times
``t_i <= H`` of the cause-specific cumulative hazards (``dA_i`` = the summed increment of
all causes, ``dA_1i`` the endpoint's, ``S = exp(-A)``): the Aalen-Johansen combination
with exponential mass within each step. With no competing cause it is exactly
``1 - exp(-A_1(H))``. Competing events are not treated as censoring.

Risk intervals (``ci``): Cox, delta method on the endpoint's log hazard with the
patient-clustered robust variance (baseline-hazard uncertainty ignored); GBM/RSF,
2.5-97.5 percentiles over ``n_bootstrap`` refits of the endpoint model on
patient-level bootstrap samples (competing-cause models held fixed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics.errors import ModelError
from analytics.models.estimators import CoxPH, Design, SurvivalEstimator, make_estimator
from analytics.models.landmark import (
    EventSpec,
    FeatureSpec,
    LandmarkData,
    LandmarkSettings,
    history_features,
)

#: grid points used to combine competing cause-specific hazards
MAX_GRID = 400
_CHUNK = 4000
Z95 = 1.959963984540054


@dataclass
class LandmarkModel:
    """A fitted landmark supermodel (endpoint + competing causes)."""

    kind: str
    events: EventSpec
    settings: LandmarkSettings
    spec: FeatureSpec
    design: Design
    estimators: dict[str, SurvivalEstimator]
    landmarks: list[float]
    ensemble: list[SurvivalEstimator] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def horizons(self) -> list[float]:
        return [float(h) for h in self.settings.horizons]

    @property
    def features(self) -> list[str]:
        """Model-matrix columns (the names SHAP values are keyed by)."""
        return list(self.design.columns)

    @classmethod
    def fit(cls, data: LandmarkData, kind: str = "cox", params: dict[str, Any] | None = None,
            n_bootstrap: int = 0, seed: int = 0, rows: np.ndarray | None = None,
            design: Design | None = None) -> LandmarkModel:
        """Fit the endpoint model and every competing cause on landmark rows.

        Parameters
        ----------
        data
            Stacked landmark rows.
        kind
            ``cox``, ``gbm`` or ``rsf``.
        params
            Estimator parameters.
        n_bootstrap
            Patient-bootstrap refits of the endpoint model for risk intervals (GBM/RSF).
        rows
            Boolean mask or indices of ``data.rows`` to train on (cross-validation).
        design
            A fitted design to reuse; default: fitted on the training rows.
        """
        params = dict(params or {})
        train = data.rows if rows is None else data.rows.iloc[np.flatnonzero(rows)
                                                               if np.asarray(rows).dtype == bool
                                                               else rows]
        design = design or Design.fit(train, _numeric_history(data.spec), data.spec.categorical)
        X = design.transform(train)
        groups = train["patient"].to_numpy()
        ests: dict[str, SurvivalEstimator] = {}
        for cause in data.events.causes:
            y = pd.DataFrame({"duration": train["duration"].to_numpy(),
                              "event": (train["cause"] == cause).to_numpy()})
            if y["event"].sum() < 2:
                if cause == "interest":
                    raise ModelError(f"training rows: fewer than 2 '{data.events.label}' "
                                     "events; cannot fit")
                continue  # a competing cause absent from this training fold
            ests[cause] = make_estimator(kind, **params).fit(X, y, groups=groups)
        model = cls(kind=kind, events=data.events, settings=data.settings, spec=data.spec,
                    design=design, estimators=ests, landmarks=list(data.landmarks),
                    params=params)
        if n_bootstrap and kind != "cox":
            model.ensemble = _bootstrap(kind, params, X, train, n_bootstrap, seed)
        return model

    # ---------------------------------------------------------------- prediction
    def matrix(self, history: pd.DataFrame) -> pd.DataFrame:
        """Model matrix from history rows (see :func:`history_features`)."""
        return self.design.transform(history)

    def log_hazard(self, X: pd.DataFrame) -> np.ndarray:
        """The endpoint model's log relative hazard (PH models)."""
        return self.estimators["interest"].predict_log_hazard(X)

    def risk(self, X: pd.DataFrame, horizons: list[float] | None = None,
             interest: SurvivalEstimator | None = None) -> np.ndarray:
        """Cumulative incidence of the endpoint by each horizon, shape ``(n, len(h))``."""
        hs = np.asarray(horizons or self.horizons, np.float64)
        interest = interest or self.estimators["interest"]
        others = [e for c, e in self.estimators.items() if c != "interest"]
        if not others:
            return 1.0 - np.exp(-interest.cumulative_hazard(X, hs))
        grid = self._grid(hs)
        out = np.empty((len(X), len(hs)))
        for start in range(0, len(X), _CHUNK):
            xs = X.iloc[start:start + _CHUNK]
            a1 = interest.cumulative_hazard(xs, grid)
            a_all = a1 + sum(e.cumulative_hazard(xs, grid) for e in others)
            d1 = np.diff(a1, axis=1, prepend=0.0)
            da = np.diff(a_all, axis=1, prepend=0.0)
            s_prev = np.exp(-np.concatenate([np.zeros((len(xs), 1)), a_all[:, :-1]], axis=1))
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(da > 0, d1 / da, 0.0)
            inc = s_prev * (1.0 - np.exp(-da)) * share
            cif = np.cumsum(inc, axis=1)
            out[start:start + _CHUNK] = cif[:, np.searchsorted(grid, hs)]
        return np.clip(out, 0.0, 1.0)

    def _grid(self, hs: np.ndarray) -> np.ndarray:
        jumps = []
        for e in self.estimators.values():
            if e.proportional_hazards:
                jumps.append(e.baseline_times_)
            else:
                jumps.append(e.forest_.unique_times_)
        g = np.unique(np.concatenate(jumps))
        g = g[g <= hs.max()]
        if len(g) > MAX_GRID:
            g = np.quantile(g, np.linspace(0, 1, MAX_GRID))
        return np.unique(np.concatenate([g, hs]))

    def risk_interval(self, X: pd.DataFrame, horizon: float) -> np.ndarray | None:
        """95% interval of the risk by ``horizon``, shape ``(n, 2)``; None if unavailable."""
        est = self.estimators["interest"]
        if isinstance(est, CoxPH):
            se = est.log_hazard_se(X)
            lo = _shifted_cox(est, -Z95 * se)
            hi = _shifted_cox(est, Z95 * se)
            return np.column_stack([self.risk(X, [horizon], interest=lo)[:, 0],
                                    self.risk(X, [horizon], interest=hi)[:, 0]])
        if not self.ensemble:
            return None
        draws = np.column_stack([self.risk(X, [horizon], interest=m)[:, 0]
                                 for m in self.ensemble])
        return np.column_stack([np.quantile(draws, 0.025, axis=1),
                                np.quantile(draws, 0.975, axis=1)])

    def history(self, visits: pd.DataFrame, at: pd.DataFrame) -> pd.DataFrame:
        """History rows at ``at`` (``patient``, ``landmark``) from visits up to each time."""
        return history_features(visits, at, self.spec)


class _ShiftedCox(SurvivalEstimator):
    """A Cox model whose log hazard is moved by a per-row offset (for intervals)."""

    kind = "cox"

    def __init__(self, base: CoxPH, offset: np.ndarray) -> None:
        self.base = base
        self.offset = offset

    def cumulative_hazard(self, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        return self.base.cumulative_hazard(X, times) * np.exp(self.offset)[:, None]


def _shifted_cox(est: CoxPH, offset: np.ndarray) -> _ShiftedCox:
    return _ShiftedCox(est, offset)


def _numeric_history(spec: FeatureSpec) -> list[str]:
    return [c for c in spec.columns if c not in spec.categorical]


def _bootstrap(kind: str, params: dict[str, Any], X: pd.DataFrame, train: pd.DataFrame,
               n: int, seed: int) -> list[SurvivalEstimator]:
    rng = np.random.default_rng(seed)
    pats = train["patient"].to_numpy()
    up, inv = np.unique(pats, return_inverse=True)
    members = []
    by_patient = [np.flatnonzero(inv == i) for i in range(len(up))]
    event = (train["cause"] == "interest").to_numpy()
    for b in range(n):
        pick = rng.integers(0, len(up), len(up))
        idx = np.concatenate([by_patient[i] for i in pick])
        # repeated patients get distinct group ids so inner splits stay patient-grouped
        grp = np.concatenate([np.full(len(by_patient[i]), k) for k, i in enumerate(pick)])
        if event[idx].sum() < 2:
            continue
        y = pd.DataFrame({"duration": train["duration"].to_numpy()[idx], "event": event[idx]})
        p = dict(params)
        if "random_state" in make_estimator(kind).get_params():
            p["random_state"] = int(seed * 1000 + b)
        members.append(make_estimator(kind, **p).fit(X.iloc[idx].reset_index(drop=True), y,
                                                     groups=grp))
    return members
