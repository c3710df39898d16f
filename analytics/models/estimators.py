"""Survival estimators behind one interface, and the design matrix they share.

Every estimator follows the scikit-learn contract: ``__init__`` only stores parameters,
``fit(X, y)`` validates and returns ``self``, fitted attributes end in ``_``. ``X`` is a
numeric DataFrame (the output of :class:`Design`), ``y`` the internal outcome format: a
DataFrame with ``duration`` (years) and ``event`` (bool). Conversion to lifelines,
xgboost or scikit-survival shapes happens only inside ``fit``/``predict``.

- :class:`CoxPH`: penalised Cox model with Efron ties, lifelines ``CoxPHFitter``'s model
  fitted by a vectorised Newton-Raphson (:mod:`analytics.models.cox`; the transparent
  default). Log relative hazard ``(x - mean) . beta``.
- :class:`GBMCox`: xgboost ``survival:cox`` (nonlinear, exact TreeSHAP, scales); number
  of rounds by early stopping on a patient-grouped inner split.
- :class:`RSF`: random survival forest (xgboost random-forest mode on the Cox partial
  likelihood: log-rank-like splits, one-step log hazard ratios in the leaves, averaged);
  nonlinear like GBM, exact TreeSHAP, no row limit.

Proportional-hazards models (Cox, GBM, RSF) get a Breslow cumulative baseline hazard on their
own log-hazard output, so every model answers :meth:`SurvivalEstimator.cumulative_hazard`.

Each estimator also answers for itself what callers would otherwise ask of its type:
:meth:`~SurvivalEstimator.explain` (exact linear SHAP for Cox, TreeSHAP for GBM and RSF,
permutation sampling on the risk scale otherwise), :meth:`~SurvivalEstimator.event_times`,
:meth:`~SurvivalEstimator.log_hazard_shift` (its own interval, Cox only) and the class
attributes ``intervals_by_refits``, ``pickled_attribute``, ``explainer`` and
``global_explain_rows``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from analytics.errors import ModelError
from analytics.models.cox import fit_efron_cox
from analytics.models.design import LOG_SKEW_MIN, Design  # re-exported
from analytics.models.explanation import Explanation, permutation_shap

__all__ = ["ESTIMATORS", "LOG_SKEW_MIN", "RSF", "CoxPH", "Design", "GBMCox",
           "SurvivalEstimator", "breslow", "cox_score_residuals", "estimator_from_json",
           "make_estimator", "step_at"]

#: feature orders (an antithetic pair) of the sampling explainer (estimators without an
#: exact one)
SAMPLED_PERMUTATIONS = 2
#: background rows (a seeded sample of the training background) of the sampling explainer
SAMPLED_BACKGROUND = 10


# --------------------------------------------------------------------------- helpers
def _check_xy(X: pd.DataFrame, y: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(X, pd.DataFrame):
        raise ModelError(f"X: expected a pandas DataFrame, got {type(X).__name__}")
    if not {"duration", "event"} <= set(y.columns):
        raise ModelError(f"y: expected columns duration and event, got {list(y.columns)}")
    if len(X) != len(y):
        raise ModelError(f"X has {len(X)} rows but y has {len(y)}")
    x = X.to_numpy(np.float64)
    if not np.isfinite(x).all():
        bad = X.columns[~np.isfinite(x).all(axis=0)].tolist()
        raise ModelError(f"X: non-finite values in columns {bad}; impute first (Design)")
    t = y["duration"].to_numpy(np.float64)
    e = y["event"].to_numpy().astype(bool)
    if not np.isfinite(t).all() or (t < 0).any():
        raise ModelError("y.duration: expected finite, non-negative years")
    if t.size and (t <= 0).any():
        t = np.maximum(t, 1e-6)  # an event on the landmark day: keep it strictly positive
    if e.sum() < 2:
        raise ModelError(f"y.event: {int(e.sum())} events; at least 2 are needed to fit")
    return x, t, e


def breslow(lp: np.ndarray, t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow cumulative baseline hazard at the distinct event times.

    ``H0(t) = sum_{t_i <= t} d_i / sum_{j: t_j >= t_i} exp(lp_j)``.

    Returns
    -------
    times, cumhaz
        Distinct event times (ascending) and ``H0`` just after each.
    """
    order = np.argsort(t, kind="stable")
    t, e, r = t[order], e[order], np.exp(lp[order] - lp.max())
    times, first = np.unique(t, return_index=True)
    # risk-set sums: suffix sums of exp(lp) from each distinct time on
    suffix = np.cumsum(r[::-1])[::-1]
    risk = suffix[first]
    d = np.add.reduceat(e.astype(np.float64), first)
    keep = d > 0
    inc = d[keep] / risk[keep] * np.exp(-lp.max())
    return times[keep], np.cumsum(inc)


def cox_score_residuals(x: np.ndarray, t: np.ndarray, e: np.ndarray,
                        lp: np.ndarray) -> np.ndarray:
    """Cox score residuals (Breslow risk sets), shape ``(n, p)``.

    ``L_i = e_i (x_i - xbar(t_i)) - w_i sum_{k: t_k <= t_i} d_k (x_i - xbar(t_k)) / S0(t_k)``
    with ``w = exp(lp)``, ``S0``/``xbar`` the risk-set sum and weighted mean at event
    time ``t_k``.
    """
    order = np.argsort(t, kind="stable")
    ts, es, xs = t[order], e[order].astype(np.float64), x[order]
    w = np.exp(lp[order] - lp.max())
    times, first = np.unique(ts, return_index=True)
    s0 = np.cumsum(w[::-1])[::-1][first]
    s1 = np.cumsum((w[:, None] * xs)[::-1], axis=0)[::-1][first]
    d = np.add.reduceat(es, first)
    xbar = s1 / s0[:, None]
    a = np.cumsum(d / s0)
    b = np.cumsum((d / s0)[:, None] * xbar, axis=0)
    k = np.searchsorted(times, ts, side="right") - 1  # last event-time index <= t_i
    resid = es[:, None] * (xs - xbar[k]) - w[:, None] * (xs * a[k][:, None] - b[k])
    out = np.empty_like(resid)
    out[order] = resid
    return out


def step_at(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Right-continuous step function ``values`` (0 before ``times[0]``) at ``query``."""
    idx = np.searchsorted(times, query, side="right") - 1
    padded = np.concatenate([[0.0], values])
    return padded[idx + 1]


# --------------------------------------------------------------------------- base
class SurvivalEstimator(BaseEstimator):
    """Base class: one fitted hazard model for one cause.

    Subclasses implement ``_fit`` and either ``_log_hazard`` (proportional hazards; the
    base then fits a Breslow baseline) or ``_cumulative_hazard``.
    """

    kind: ClassVar[str] = "base"
    proportional_hazards: ClassVar[bool] = True
    #: risk intervals come from bootstrap refits of this estimator (no variance of its own)
    intervals_by_refits: ClassVar[bool] = False
    #: a fitted attribute that cannot be JSON (the registry pickles it beside the artifact)
    pickled_attribute: ClassVar[str | None] = None
    #: training rows explained for the global drivers (sampling costs ~1 s per row)
    global_explain_rows: ClassVar[int] = 12
    #: how :meth:`explain` works (named in the model card)
    explainer: ClassVar[str] = ("permutation-sampling SHAP (one antithetic pair of feature "
                                "orders) on the risk at the horizon against 10 training "
                                "background rows")

    def fit(self, X: pd.DataFrame, y: pd.DataFrame,
            groups: np.ndarray | None = None) -> SurvivalEstimator:
        """Fit on model-matrix rows ``X`` and outcomes ``y`` (``duration``, ``event``).

        ``groups`` (patient of each row) keeps a patient's rows together in any inner
        split and clusters the Cox variance.
        """
        x, t, e = _check_xy(X, y)
        self.feature_names_in_ = list(X.columns)
        self.n_train_ = len(x)
        self._fit(x, t, e, groups)
        if self.proportional_hazards:
            lp = self._log_hazard(x)
            self.baseline_times_, self.baseline_cumhaz_ = breslow(lp, t, e)
        return self

    def _matrix(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        if not hasattr(self, "feature_names_in_"):
            raise ModelError(f"{type(self).__name__} is not fitted; call fit first")
        if isinstance(X, np.ndarray):  # already in feature_names_in_ order (internal use)
            if X.ndim != 2 or X.shape[1] != len(self.feature_names_in_):
                raise ModelError(f"X: expected {len(self.feature_names_in_)} columns, "
                                 f"got shape {X.shape}")
            return X.astype(np.float64, copy=False)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ModelError(f"X: missing model columns {missing}")
        return X[self.feature_names_in_].to_numpy(np.float64)

    def predict_log_hazard(self, X: pd.DataFrame) -> np.ndarray:
        """Log relative hazard (the model's output scale for SHAP)."""
        if not self.proportional_hazards:
            raise ModelError(f"{self.kind}: no log relative hazard (not a PH model)")
        return self._log_hazard(self._matrix(X))

    def cumulative_hazard(self, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """Cumulative hazard ``H(t | x)`` at ``times`` (years from the landmark).

        Returns an array of shape ``(len(X), len(times))``.
        """
        x = self._matrix(X)
        times = np.asarray(times, np.float64)
        if self.proportional_hazards:
            h0 = step_at(self.baseline_times_, self.baseline_cumhaz_, times)
            return np.exp(self._log_hazard(x))[:, None] * h0[None, :]
        return self._cumulative_hazard(x, times)

    def predict_risk(self, X: pd.DataFrame, horizon: float) -> np.ndarray:
        """``1 - exp(-H(horizon | x))``: risk by the horizon with no competing causes."""
        return 1.0 - np.exp(-self.cumulative_hazard(X, np.array([horizon]))[:, 0])

    def event_times(self) -> np.ndarray:
        """Times (years, ascending) at which the fitted cumulative hazard jumps."""
        return self.baseline_times_

    def log_hazard_shift(self, X: pd.DataFrame | np.ndarray, z: float) -> np.ndarray | None:
        """Per-row half-width ``z * se`` of the log-hazard interval; None without a variance."""
        return None

    def with_interval_variance(self, on: bool) -> SurvivalEstimator:
        """This estimator, set to estimate (``on``) or skip the variance its intervals need."""
        return self

    def explain(self, X: pd.DataFrame, *, horizon: float | None = None,
                output: Callable[[np.ndarray], np.ndarray] | None = None,
                background: pd.DataFrame | None = None, seed: int = 0) -> Explanation:
        """SHAP values of rows ``X`` on the risk scale by ``horizon``.

        The model-agnostic explainer: permutation-sampling SHAP
        (:func:`analytics.models.explanation.permutation_shap`, :data:`SAMPLED_PERMUTATIONS`
        feature orders) of ``output`` (default :meth:`predict_risk` at ``horizon``)
        against :data:`SAMPLED_BACKGROUND` seeded rows of ``background``. Estimators with
        an exact explainer override this.

        Raises
        ------
        ModelError
            Without a horizon or a background sample.
        """
        if horizon is None:
            raise ModelError(f"an {self.kind.upper()} explanation is on the risk scale: "
                             "give a horizon")
        if background is None or len(background) == 0:
            raise ModelError("model has no background sample to explain against")
        cols = self.feature_names_in_
        bgx = background[cols].sample(n=min(SAMPLED_BACKGROUND, len(background)),
                                      random_state=seed)
        f = output or (lambda a: self.predict_risk(pd.DataFrame(a, columns=cols), horizon))
        vals, base, out = permutation_shap(f, X[cols].to_numpy(np.float64),
                                           bgx.to_numpy(np.float64), SAMPLED_PERMUTATIONS,
                                           seed)
        return Explanation(vals, base, out, X[cols], "risk", horizon)

    # subclasses
    def _fit(self, x, t, e, groups) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _log_hazard(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _cumulative_hazard(self, x, times) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # serialisation (JSON where the library allows it)
    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "params": self.get_params(),
                             "feature_names_in_": self.feature_names_in_,
                             "n_train_": self.n_train_}
        if self.proportional_hazards:
            d["baseline_times_"] = self.baseline_times_.tolist()
            d["baseline_cumhaz_"] = self.baseline_cumhaz_.tolist()
        d.update(self._state())
        return d

    def _state(self) -> dict[str, Any]:
        return {}

    def _restore(self, d: dict[str, Any]) -> None:
        pass


def estimator_from_json(d: dict[str, Any], pickled: Any = None) -> SurvivalEstimator:
    """Rebuild an estimator from :meth:`SurvivalEstimator.to_json` output.

    ``pickled`` is the value of the attribute the class keeps outside JSON
    (:attr:`SurvivalEstimator.pickled_attribute`), already verified and unpickled.
    """
    cls = ESTIMATORS.get(d.get("kind", ""))
    if cls is None or (cls.pickled_attribute is not None and pickled is None):
        raise ModelError(f"model artifact: unknown or non-JSON estimator kind {d.get('kind')!r}")
    est = cls(**d["params"])
    est.feature_names_in_ = list(d["feature_names_in_"])
    est.n_train_ = int(d["n_train_"])
    if cls.proportional_hazards:
        est.baseline_times_ = np.asarray(d["baseline_times_"], np.float64)
        est.baseline_cumhaz_ = np.asarray(d["baseline_cumhaz_"], np.float64)
    est._restore(d)
    if cls.pickled_attribute is not None:
        setattr(est, cls.pickled_attribute, pickled)
    return est


# --------------------------------------------------------------------------- Cox
#: ridge strength per event of the ``"auto"`` Cox penalty (see :class:`CoxPH`)
AUTO_PENALTY = 50.0


def resolve_penalizer(penalizer: float | str, e: np.ndarray,
                      groups: np.ndarray | None) -> float:
    """The lifelines penalizer for ``penalizer`` (a number, or ``"auto"``; see CoxPH)."""
    if isinstance(penalizer, str):
        if penalizer != "auto":
            raise ModelError(f"penalizer: expected a number >= 0 or 'auto', got {penalizer!r}")
        ev = e.astype(bool)
        n_events = (len(np.unique(np.asarray(groups)[ev])) if groups is not None
                    else int(ev.sum()))
        return float(np.clip(AUTO_PENALTY / max(n_events, 1), 0.005, 2.0))
    value = float(penalizer)
    if not np.isfinite(value) or value < 0:
        raise ModelError(f"penalizer: expected a number >= 0 or 'auto', got {penalizer!r}")
    return value


class CoxPH(SurvivalEstimator):
    """Penalised Cox proportional hazards (Efron ties; lifelines ``CoxPHFitter``'s model and
    penalty, fitted by :func:`analytics.models.cox.fit_efron_cox`).

    Parameters
    ----------
    penalizer
        Ridge penalty on standardised coefficients (lifelines ``penalizer``), or
        ``"auto"`` (the default): ``AUTO_PENALTY / events``, clipped to [0.005, 2], with
        ``events`` the number of patients with an event in the training rows. Lifelines
        adds the penalty to the *mean* partial log-likelihood, while the information in
        a Cox fit grows with the number of events, so a fixed value shrinks a large
        cohort's model as hard as a small one's (measured: a fixed 0.5, right for ~100
        events, gave calibration slopes of 1.2-1.3 with ~300 events); dividing by the
        events keeps the prior's strength per event the same. The value used is stored
        as ``penalizer_``.
    l1_ratio
        Elastic-net mix (0 = ridge).
    robust
        Patient-clustered sandwich variance (needs ``groups``); off, the model-based
        variance (cheaper; cross-validation fits need no variance).
    time_resolution
        Durations are rounded up to a multiple of this (default one day, in years; at
        least one step) before the coefficients are fitted. Cohort dates are days, so
        nothing is lost; stacked landmark rows (event date minus landmark) otherwise give
        almost every row its own time (coefficients within 1e-5 of the day grid's). It
        was chosen when lifelines' Efron computation looped in Python over distinct times
        and is kept so that models and their validation do not change. ``None`` fits the
        durations as given.
    """

    kind = "cox"
    explainer = "exact linear SHAP on the log relative hazard"
    global_explain_rows = 200

    def __init__(self, penalizer: float | str = "auto", l1_ratio: float = 0.0,
                 robust: bool = True, time_resolution: float | None = 1.0 / 365.25) -> None:
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.robust = robust
        self.time_resolution = time_resolution

    def _fit(self, x, t, e, groups) -> None:
        self.mean_ = x.mean(axis=0)
        res = self.time_resolution
        # ceil, less a hair so a duration already on the grid stays where it is
        t = np.maximum(np.ceil(t / res - 1e-6), 1.0) * res if res else t
        self.penalizer_ = resolve_penalizer(self.penalizer, e, groups)
        fit = fit_efron_cox(x - self.mean_, t, e, self.penalizer_, self.l1_ratio)
        self.coef_ = fit.coef
        self.variance_ = fit.variance
        if groups is not None and self.robust:
            # lifelines clusters only its standard errors (slowly): the full sandwich (Lin
            # & Wei 1989) from score residuals x model variance, summed within each patient
            xc = x - self.mean_
            resid = cox_score_residuals(xc, t, e, xc @ self.coef_)
            dfbeta = resid @ self.variance_
            g = pd.factorize(np.asarray(groups))[0]
            summed = np.zeros((g.max() + 1, x.shape[1]))
            np.add.at(summed, g, dfbeta)
            self.variance_ = summed.T @ summed
        self.se_ = np.sqrt(np.clip(np.diag(self.variance_), 0, None))

    def _log_hazard(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.coef_

    def log_hazard_se(self, X: pd.DataFrame) -> np.ndarray:
        """Delta-method standard error of the log relative hazard (robust variance)."""
        xc = self._matrix(X) - self.mean_
        return np.sqrt(np.clip(np.einsum("ij,jk,ik->i", xc, self.variance_, xc), 0, None))

    def log_hazard_shift(self, X: pd.DataFrame | np.ndarray, z: float) -> np.ndarray:
        return z * self.log_hazard_se(X)

    def with_interval_variance(self, on: bool) -> CoxPH:
        return self.set_params(robust=bool(on))

    def explain(self, X: pd.DataFrame, **_context: Any) -> Explanation:
        """Exact linear SHAP on the log relative hazard: ``beta_j (x_j - mean_j)``, base 0
        (the log hazard is centred at the training mean)."""
        vals = (self._matrix(X) - self.mean_) * self.coef_
        return Explanation(vals, np.zeros(len(X)), vals.sum(axis=1),
                           X[self.feature_names_in_], "log_hazard")

    @property
    def coefficients_(self) -> pd.Series:
        return pd.Series(self.coef_, index=self.feature_names_in_)

    def _state(self) -> dict[str, Any]:
        return {"mean_": self.mean_.tolist(), "coef_": self.coef_.tolist(),
                "variance_": self.variance_.tolist(), "penalizer_": self.penalizer_}

    def _restore(self, d: dict[str, Any]) -> None:
        self.penalizer_ = d.get("penalizer_", self.penalizer)
        self.mean_ = np.asarray(d["mean_"], np.float64)
        self.coef_ = np.asarray(d["coef_"], np.float64)
        self.variance_ = np.asarray(d["variance_"], np.float64)
        self.se_ = np.sqrt(np.clip(np.diag(self.variance_), 0, None))


# --------------------------------------------------------------------------- xgboost
class GBMCox(SurvivalEstimator):
    """Gradient-boosted Cox model (xgboost ``survival:cox``).

    The margin is the log relative hazard; the number of rounds is chosen by early
    stopping on a patient-grouped inner split (``validation_fraction``), then the model
    is refitted on every row with that many rounds. Above ``refit_max_rows`` training
    rows the early-stopped booster is kept as is (the held-out share adds little there
    and the refit would double the fit time); the Breslow baseline always uses every row.
    ``min_child_weight`` bounds the Cox-loss hessian summed in a leaf (the risk-set
    information it holds); 50 raised the cross-validated C-index of the demo cohort from
    0.687 to 0.707 over 5.
    """

    kind = "gbm"
    intervals_by_refits = True
    explainer = "exact TreeSHAP (xgboost pred_contribs) on the log relative hazard"
    global_explain_rows = 200

    def __init__(self, n_estimators: int = 500, learning_rate: float = 0.05,
                 max_depth: int = 3, min_child_weight: float = 50.0, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, reg_lambda: float = 1.0,
                 validation_fraction: float = 0.2, early_stopping_rounds: int = 30,
                 refit_max_rows: int = 20_000, n_jobs: int = 1,
                 random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.validation_fraction = validation_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.refit_max_rows = refit_max_rows
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _params(self) -> dict[str, Any]:
        return {"objective": "survival:cox", "eval_metric": "cox-nloglik",
                "eta": self.learning_rate, "max_depth": self.max_depth,
                "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                "colsample_bytree": self.colsample_bytree, "lambda": self.reg_lambda,
                "tree_method": "hist", "nthread": self.n_jobs, "seed": self.random_state,
                "base_score": 1.0}

    @staticmethod
    def _label(t: np.ndarray, e: np.ndarray) -> np.ndarray:
        return np.where(e, t, -t)  # xgboost's Cox convention: negative = censored

    def _fit(self, x, t, e, groups) -> None:
        import xgboost as xgb

        n_rounds = self.n_estimators
        if self.validation_fraction and self.early_stopping_rounds:
            g = np.asarray(groups) if groups is not None else np.arange(len(t))
            rng = np.random.default_rng(self.random_state)
            ug = np.unique(g)
            val_groups = rng.choice(ug, size=max(1, int(len(ug) * self.validation_fraction)),
                                    replace=False)
            val = np.isin(g, val_groups)
            if e[val].sum() >= 2 and e[~val].sum() >= 2:
                dtr = xgb.DMatrix(x[~val], label=self._label(t[~val], e[~val]),
                                  nthread=self.n_jobs)
                dva = xgb.DMatrix(x[val], label=self._label(t[val], e[val]),
                                  nthread=self.n_jobs)
                b = xgb.train(self._params(), dtr, num_boost_round=self.n_estimators,
                              evals=[(dva, "val")], verbose_eval=False,
                              early_stopping_rounds=self.early_stopping_rounds)
                n_rounds = max(10, int(b.best_iteration) + 1)
                if len(t) > self.refit_max_rows:
                    self.booster_ = b[:n_rounds]
                    self.n_rounds_ = n_rounds
                    return
        dall = xgb.DMatrix(x, label=self._label(t, e), nthread=self.n_jobs)
        self.booster_ = xgb.train(self._params(), dall, num_boost_round=n_rounds)
        self.n_rounds_ = n_rounds

    def _log_hazard(self, x: np.ndarray) -> np.ndarray:
        # in-place prediction: no DMatrix (whose construction spins up every core)
        return np.asarray(self.booster_.inplace_predict(x, predict_type="margin"),
                          dtype=np.float64)

    def contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Exact TreeSHAP on the margin: (contributions (n, p), bias (n,))."""
        import xgboost as xgb

        c = self.booster_.predict(xgb.DMatrix(self._matrix(X), nthread=self.n_jobs),
                                  pred_contribs=True)
        c = c.astype(np.float64)
        return c[:, :-1], c[:, -1]

    def explain(self, X: pd.DataFrame, **_context: Any) -> Explanation:
        """Exact TreeSHAP on the margin (the log relative hazard)."""
        vals, base = self.contributions(X)
        # the booster's own margin; TreeSHAP in float32 adds up to it within ~1e-6
        return Explanation(vals, base, self.predict_log_hazard(X), X[self.feature_names_in_],
                           "log_hazard")

    def _state(self) -> dict[str, Any]:
        return {"booster_json": self.booster_.save_raw("json").decode("utf-8"),
                "n_rounds_": self.n_rounds_}

    def _restore(self, d: dict[str, Any]) -> None:
        import xgboost as xgb

        self.booster_ = xgb.Booster()
        self.booster_.load_model(bytearray(d["booster_json"].encode("utf-8")))
        self.booster_.set_param({"nthread": self.n_jobs})
        self.n_rounds_ = int(d["n_rounds_"])


# --------------------------------------------------------------------------- RSF
class RSF(GBMCox):
    """Random survival forest: a forest of log-rank-split trees on the Cox log hazard.

    xgboost's random-forest mode on the Cox partial likelihood (``survival:cox``): one
    round of ``n_estimators`` parallel trees, each grown on a ``sample_fraction`` of the
    rows without replacement, with ``max_features`` of the columns drawn afresh at every
    split. At the null model the Cox gradient of a row is minus its martingale residual
    and the hessian about its expected event count, so a split's gain is close to the
    log-rank score statistic of the two sides and a leaf's value is the one-step
    (Newton) log hazard ratio ``(O - E) / (V + lambda)`` of the rows in it; the forest
    is the average of its trees.
    Scale and everything after it are GBM's: a Breslow baseline on the forest's log
    relative hazard, one forest per cause (cause-specific hazards, combined into the
    cumulative incidence by :class:`~analytics.models.predict.LandmarkModel`), exact
    TreeSHAP on the log hazard (xgboost ``pred_contribs``), the booster stored as JSON.
    Unlike scikit-survival's forest, whose leaves held curves of their own, its hazards
    are proportional in time within a landmark row; the landmark time is a column, so a
    patient's hazard still changes from landmark to landmark.

    It replaced scikit-survival's ``RandomSurvivalForest``, which refused more than 5,000
    training rows (its leaves keep a cumulative hazard over every distinct time) and was
    explained by permutation sampling of the risk: ~18 minutes per cross-validation fold
    on a Mayo-PBC-sized cohort. ``benchmarks/forest.py`` compares the two.

    Parameters
    ----------
    n_estimators
        Trees.
    max_depth
        Depth of each tree. TreeSHAP's cost grows with leaves x depth^2: at 10,000 rows
        of 30 columns with a nonlinear hazard, depth 6 took 2.4 times depth 5's time for
        a held-out C-index 0.006 higher.
    min_child_weight
        Least expected events (summed Cox hessian) in a leaf. 1, not more: the whole
        training set holds about one expected event per event, so a small cohort (the
        20 Mayo PBC patients' first landmark, 6 deaths) grew no split at 5;
        ``reg_lambda`` shrinks the leaves with few.
    max_features
        Columns considered at each split: ``"sqrt"`` (sqrt(p), scikit-survival's default),
        ``"log2"``, a fraction in (0, 1] or a count.
    sample_fraction
        Share of the rows each tree is grown on (drawn without replacement).
    reg_lambda
        L2 penalty on leaf values (shrinks leaves with few expected events).
    n_jobs, random_state
        Threads; seed of the row and column draws.
    """

    kind = "rsf"
    intervals_by_refits = False
    explainer = ("exact TreeSHAP (xgboost pred_contribs) on the forest's log relative "
                 "hazard")

    def __init__(self, n_estimators: int = 100, max_depth: int = 5,
                 min_child_weight: float = 1.0, max_features: str | float = "sqrt",
                 sample_fraction: float = 0.632, reg_lambda: float = 1.0, n_jobs: int = 1,
                 random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.max_features = max_features
        self.sample_fraction = sample_fraction
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def feature_fraction(self, n_features: int) -> float:
        """``max_features`` as the share of ``n_features`` columns drawn at each split.

        Raises
        ------
        ModelError
            For a value that is not ``"sqrt"``, ``"log2"``, a fraction in (0, 1] or a
            count >= 1.
        """
        m = self.max_features
        p = max(n_features, 1)
        if m == "sqrt":
            k = np.sqrt(p)
        elif m == "log2":
            k = np.log2(p)
        elif isinstance(m, int | np.integer) and not isinstance(m, bool) and m >= 1:
            k = float(m)
        elif isinstance(m, float) and 0 < m <= 1:
            return float(m)
        else:
            raise ModelError(f"rsf max_features: expected 'sqrt', 'log2', a fraction in "
                             f"(0, 1] or a count >= 1, got {m!r}")
        return float(np.clip(np.ceil(k) / p, 1.0 / p, 1.0))

    def _fit(self, x, t, e, groups) -> None:
        import xgboost as xgb

        params = {"objective": "survival:cox", "eta": 1.0,
                  "num_parallel_tree": int(self.n_estimators),
                  "subsample": self.sample_fraction,
                  "colsample_bynode": self.feature_fraction(x.shape[1]),
                  "max_depth": self.max_depth, "min_child_weight": self.min_child_weight,
                  "lambda": self.reg_lambda, "tree_method": "hist", "nthread": self.n_jobs,
                  "seed": self.random_state, "base_score": 1.0}
        data = xgb.DMatrix(x, label=self._label(t, e), nthread=self.n_jobs)
        self.booster_ = xgb.train(params, data, num_boost_round=1)
        self.n_rounds_ = 1


ESTIMATORS: dict[str, type[SurvivalEstimator]] = {"cox": CoxPH, "gbm": GBMCox, "rsf": RSF}


def make_estimator(kind: str, **params: Any) -> SurvivalEstimator:
    """A fresh estimator of ``kind`` (``cox``, ``gbm`` or ``rsf``)."""
    if kind not in ESTIMATORS:
        raise ModelError(f"--model {kind!r}: expected one of {', '.join(ESTIMATORS)}")
    return ESTIMATORS[kind](**params)


def params_json(est: SurvivalEstimator) -> str:
    """Canonical JSON of an estimator's parameters (for cards and hashes)."""
    return json.dumps(est.get_params(), sort_keys=True, default=str)
