"""The fitted landmark model.

:class:`LandmarkModel` bundles the design (imputation), one cause-specific hazard model
for the endpoint and one per competing cause, and turns them into the cumulative
incidence of the endpoint by each horizon:

``CIF(H | s, x) = sum_i S(t_{i-1}) (1 - exp(-dA_i)) dA_1i / dA_i`` over the jump times
``t_i <= H`` of the cause-specific cumulative hazards (``dA_i`` = the summed increment of
all causes, ``dA_1i`` the endpoint's, ``S = exp(-A)``): the Aalen-Johansen combination
with exponential mass within each step. With no competing cause it is exactly
``1 - exp(-A_1(H))``. Competing events are not treated as censoring.

Risk intervals (``ci``): Cox, delta method on the endpoint's log hazard with the
patient-clustered robust variance (baseline-hazard uncertainty ignored); GBM,
2.5-97.5 percentiles over ``ModelSettings.interval_refits`` refits of the endpoint model
on patient-level bootstrap samples (competing-cause models held fixed); RSF, none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analytics.errors import ModelError
from analytics.models.domain import CHECKED_STATS, TrainingDomain
from analytics.models.endpoint import EventSpec
from analytics.models.estimators import CoxPH, Design, SurvivalEstimator, make_estimator
from analytics.models.explanation import Explanation
from analytics.models.history import history_features
from analytics.models.history_spec import STATIC_FEATURES, FeatureSpec
from analytics.models.landmark import LandmarkData, LandmarkSettings
from analytics.models.settings import ModelSettings

#: grid points used to combine competing cause-specific hazards
MAX_GRID = 400
_CHUNK = 4000
#: training rows kept with the model as the explainer background
BACKGROUND_ROWS = 200
Z95 = 1.959963984540054


class LandmarkModel:
    """A landmark supermodel (endpoint + competing causes): ``LandmarkModel(settings).fit(data)``.

    The constructor only stores the settings; :meth:`fit` learns everything else and
    returns ``self``. Fitted attributes end in ``_`` and are never changed afterwards, so
    one fitted model can be shared between threads and users.

    Parameters
    ----------
    settings
        Estimator kind and parameters, seed and interval refits (:class:`ModelSettings`).
    intervals
        Prepare risk intervals (robust Cox variance of the endpoint model, GBM bootstrap
        refits); cross-validation fits skip them.

    Attributes
    ----------
    events_, landmark_settings_, spec_, landmarks_
        Endpoint, stacking settings, history columns and landmark grid of the data.
    design_
        Imputation and encoding fitted on the training rows.
    estimators_
        One fitted hazard model per cause (``"interest"`` first).
    ensemble_
        Bootstrap refits of the endpoint model (GBM/RSF risk intervals).
    background_
        A sample of training model-matrix rows (explainer background).
    domain_
        The training domain that gates every scored row (None: no gate).
    feature_groups_
        Model-matrix column -> the clinical feature it derives from.
    event_times_
        Jump times of every cause's cumulative hazard (the incidence grid's knots).
    """

    def __init__(self, settings: ModelSettings | None = None, *, intervals: bool = True) -> None:
        self.settings = settings or ModelSettings()
        self.intervals = intervals

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.settings.params)

    @property
    def horizons(self) -> list[float]:
        return [float(h) for h in self._fitted("landmark_settings_").horizons]

    @property
    def features(self) -> list[str]:
        """Model-matrix columns (the names SHAP values are keyed by)."""
        return list(self._fitted("design_").columns)

    def _fitted(self, name: str) -> Any:
        try:
            return self.__dict__[name]
        except KeyError:
            raise ModelError("LandmarkModel is not fitted; call fit first") from None

    def fit(self, data: LandmarkData, rows: np.ndarray | None = None) -> LandmarkModel:
        """Fit the endpoint model and every competing cause on landmark rows.

        Parameters
        ----------
        data
            Stacked landmark rows (their horizons are the model's).
        rows
            Boolean mask or indices of ``data.rows`` to train on (cross-validation).

        Returns
        -------
        LandmarkModel
            ``self``, fitted.

        Raises
        ------
        ModelError
            With fewer than 2 endpoint events in the training rows.
        """
        st = self.settings
        train = data.rows if rows is None else data.rows.iloc[np.flatnonzero(rows)
                                                               if np.asarray(rows).dtype == bool
                                                               else rows]
        design = Design.fit(train, _numeric_history(data.spec), data.spec.categorical,
                            _log_candidates(data.spec), clipped_columns(data.spec),
                            neutral=data.spec.neutral_columns)
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
            est = make_estimator(st.kind, **st.params)
            est = est.with_interval_variance(self.intervals and cause == "interest")
            ests[cause] = est.fit(X, y, groups=groups)
        refits = (st.interval_refits if self.intervals and ests["interest"].intervals_by_refits
                  else 0)
        self._set_fitted(
            events=data.events, landmark_settings=data.settings, spec=data.spec,
            design=design, estimators=ests, landmarks=list(data.landmarks),
            ensemble=(_bootstrap(st.kind, dict(st.params), X, train, refits, st.seed)
                      if refits else []),
            background=X.sample(n=min(BACKGROUND_ROWS, len(X)), random_state=st.seed),
            domain=TrainingDomain.from_training(train, data.spec))
        return self

    @classmethod
    def from_fitted(cls, settings: ModelSettings, *, events: EventSpec,
                    landmark_settings: LandmarkSettings, spec: FeatureSpec, design: Design,
                    estimators: dict[str, SurvivalEstimator], landmarks: list[float],
                    ensemble: list[SurvivalEstimator] | None = None,
                    background: pd.DataFrame | None = None,
                    domain: TrainingDomain | None = None) -> LandmarkModel:
        """A fitted model from its stored parts (what the registry loads)."""
        model = cls(settings)
        model._set_fitted(events=events, landmark_settings=landmark_settings, spec=spec,
                          design=design, estimators=estimators, landmarks=list(landmarks),
                          ensemble=list(ensemble or []), background=background, domain=domain)
        return model

    def _set_fitted(self, *, events: EventSpec, landmark_settings: LandmarkSettings,
                    spec: FeatureSpec, design: Design, estimators: dict[str, SurvivalEstimator],
                    landmarks: list[float], ensemble: list[SurvivalEstimator],
                    background: pd.DataFrame | None, domain: TrainingDomain | None) -> None:
        self.events_ = events
        self.landmark_settings_ = landmark_settings
        self.spec_ = spec
        self.design_ = design
        self.estimators_ = estimators
        self.landmarks_ = landmarks
        self.ensemble_ = ensemble
        self.background_ = background
        self.domain_ = domain
        self.feature_groups_ = {c: spec.source_of(design.source_column(c))[0]
                                for c in design.columns}
        self.event_times_ = np.unique(np.concatenate(
            [e.event_times() for e in estimators.values()]))

    # ---------------------------------------------------------------- prediction
    def matrix(self, history: pd.DataFrame) -> pd.DataFrame:
        """Model matrix from history rows (see :func:`history_features`)."""
        return self._fitted("design_").transform(history)

    def log_hazard(self, X: pd.DataFrame) -> np.ndarray:
        """The endpoint model's log relative hazard (PH models)."""
        return self._fitted("estimators_")["interest"].predict_log_hazard(X)

    def risk(self, X: pd.DataFrame, horizons: list[float] | None = None,
             interest: SurvivalEstimator | None = None,
             cause_specific: bool = False,
             competing_cumhaz: np.ndarray | None = None,
             grid: np.ndarray | None = None) -> np.ndarray:
        """Cumulative incidence of the endpoint by each horizon, shape ``(n, len(h))``.

        ``cause_specific``: ``1 - exp(-A_1(h))`` instead, the endpoint's risk were no
        competing event possible (what metrics that censor competing events assess).
        ``competing_cumhaz``: the competing causes' summed cumulative hazards on
        ``event_grid(horizons)`` when already computed (``len(X) <= _CHUNK``); ``grid``:
        ``event_grid(horizons)`` when already computed (repeated calls pass it along).
        """
        hs = np.asarray(horizons or self.horizons, np.float64)
        interest = interest or self.estimators_["interest"]
        others = [e for c, e in self.estimators_.items() if c != "interest"]
        x = X[self.features].to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        if not others or cause_specific:
            return 1.0 - np.exp(-interest.cumulative_hazard(x, hs))
        grid = self.event_grid(hs) if grid is None else grid
        out = np.empty((len(x), len(hs)))
        for start in range(0, len(x), _CHUNK):
            xs = x[start:start + _CHUNK]
            a1 = interest.cumulative_hazard(xs, grid)
            a_others = (competing_cumhaz if competing_cumhaz is not None and len(x) <= _CHUNK
                        else self.competing_cumhaz(xs, grid))
            out[start:start + _CHUNK] = cumulative_incidence(a1, a1 + a_others, grid, hs)
        return out

    def incidence_by_cause(self, X: pd.DataFrame, times: np.ndarray) -> dict[str, np.ndarray]:
        """Cumulative incidence of every cause at ``times``: cause -> ``(n, len(times))``.

        The causes' incidences plus event-free survival sum to one; the endpoint's equals
        :meth:`risk`.
        """
        times = np.asarray(times, np.float64)
        x = X[self.features].to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        grid = self.event_grid(times)
        hazards = {c: e.cumulative_hazard(x, grid) for c, e in self.estimators_.items()}
        a_all = sum(hazards.values())
        return {c: cumulative_incidence(a, a_all, grid, times) for c, a in hazards.items()}

    def competing_cumhaz(self, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Summed cumulative hazard of every competing cause on ``grid``."""
        others = [e for c, e in self.estimators_.items() if c != "interest"]
        return sum((e.cumulative_hazard(x, grid) for e in others),
                   np.zeros((len(x), len(grid))))

    def event_grid(self, hs: np.ndarray) -> np.ndarray:
        """Times at which the causes' cumulative hazards are combined, up to ``max(hs)``.

        The hazards' jump times (at most :data:`MAX_GRID` of them, by quantiles) plus
        the horizons themselves.
        """
        hs = np.asarray(hs, np.float64)
        g = self._fitted("event_times_")
        g = g[g <= hs.max()]
        if len(g) > MAX_GRID:
            g = np.quantile(g, np.linspace(0, 1, MAX_GRID))
        return np.unique(np.concatenate([g, hs]))

    def risk_interval(self, X: pd.DataFrame, horizon: float) -> np.ndarray | None:
        """95% interval of the risk by ``horizon``, shape ``(n, 2)``; None if unavailable.

        The endpoint estimator's own interval of its log hazard
        (:meth:`SurvivalEstimator.log_hazard_shift`, the Cox delta method) when it has
        one, else percentiles over the bootstrap refits, else None.
        """
        est = self.estimators_["interest"]
        X = X[self.features].to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        grid = self.event_grid(np.array([horizon]))  # once for every risk() below
        shift = est.log_hazard_shift(X, Z95)
        if shift is not None:
            out = np.empty((len(X), 2))
            for a in range(0, len(X), _CHUNK):  # offsets must align with risk()'s chunks
                xs, sh = X[a:a + _CHUNK], shift[a:a + _CHUNK]
                out[a:a + _CHUNK, 0] = self.risk(xs, [horizon], grid=grid,
                                                 interest=_ShiftedCox(est, -sh))[:, 0]
                out[a:a + _CHUNK, 1] = self.risk(xs, [horizon], grid=grid,
                                                 interest=_ShiftedCox(est, sh))[:, 0]
            return out
        if not self.ensemble_:
            return None
        draws = np.empty((len(X), len(self.ensemble_)))
        for a in range(0, len(X), _CHUNK):
            xs = X[a:a + _CHUNK]
            comp = self.competing_cumhaz(xs, grid) if len(self.estimators_) > 1 else None
            for j, m in enumerate(self.ensemble_):  # competing causes computed once
                draws[a:a + _CHUNK, j] = self.risk(xs, [horizon], interest=m, grid=grid,
                                                   competing_cumhaz=comp)[:, 0]
        return np.column_stack([np.quantile(draws, 0.025, axis=1),
                                np.quantile(draws, 0.975, axis=1)])

    def history(self, visits: pd.DataFrame, at: pd.DataFrame) -> pd.DataFrame:
        """History rows at ``at`` (``patient``, ``landmark``) from visits up to each time."""
        return history_features(visits, at, self._fitted("spec_"))

    def explain(self, X: pd.DataFrame, horizon: float | None = None,
                seed: int = 0) -> Explanation:
        """SHAP values of model-matrix rows ``X``: the endpoint estimator's own explainer.

        Proportional-hazards estimators explain their log relative hazard exactly; the
        others explain the cumulative incidence by ``horizon`` (competing causes
        included) against the stored training background.
        """
        cols = self.features

        def risk_at_horizon(a: np.ndarray) -> np.ndarray:
            return self.risk(pd.DataFrame(a, columns=cols), [horizon])[:, 0]

        return self.estimators_["interest"].explain(  # it selects its own columns of X
            X, horizon=horizon, output=risk_at_horizon, background=self.background_,
            seed=seed)


def cumulative_incidence(a_cause: np.ndarray, a_all: np.ndarray, grid: np.ndarray,
                         times: np.ndarray) -> np.ndarray:
    """Cumulative incidence of one cause at ``times`` from cumulative hazards on ``grid``.

    ``CIF(t) = sum_{t_i <= t} S(t_{i-1}) (1 - exp(-dA_i)) dA_ci / dA_i`` (Aalen-Johansen
    with exponential mass within each grid step; ``dA_i`` summed over all causes,
    ``S = exp(-A)``), clipped to [0, 1].

    Parameters
    ----------
    a_cause, a_all
        The cause's and all causes' summed cumulative hazards on ``grid``, shape
        ``(n, len(grid))``.
    grid
        Ascending times (years) containing every value of ``times``.
    times
        Years at which the incidence is returned.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, len(times))``.
    """
    d1 = np.diff(a_cause, axis=1, prepend=0.0)
    da = np.diff(a_all, axis=1, prepend=0.0)
    s_prev = np.exp(-np.concatenate([np.zeros((len(a_all), 1)), a_all[:, :-1]], axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(da > 0, d1 / da, 0.0)
    cif = np.cumsum(s_prev * (1.0 - np.exp(-da)) * share, axis=1)
    return np.clip(cif[:, np.searchsorted(grid, times)], 0.0, 1.0)


class _ShiftedCox(SurvivalEstimator):
    """A Cox model whose log hazard is moved by a per-row offset (for intervals)."""

    kind = "cox"

    def __init__(self, base: CoxPH, offset: np.ndarray) -> None:
        self.base = base
        self.offset = offset

    def cumulative_hazard(self, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        return self.base.cumulative_hazard(X, times) * np.exp(self.offset)[:, None]


def _numeric_history(spec: FeatureSpec) -> list[str]:
    return [c for c in spec.columns if c not in spec.categorical]


def clipped_columns(spec: FeatureSpec) -> list[str]:
    """Derived history columns clipped to the training range instead of refused."""
    return [c for c in spec.columns
            if c not in spec.categorical and spec.source_of(c)[1] not in CHECKED_STATS]


def _log_candidates(spec: FeatureSpec) -> list[str]:
    """Level-type history columns (values, not slopes/changes/counts) may be log-scaled."""
    out = []
    for c in spec.columns:
        base, stat = spec.source_of(c)
        if stat in ("last", "worst", "mean_1y") and base in spec.numeric \
                and base not in STATIC_FEATURES:
            out.append(c)
    return out


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
