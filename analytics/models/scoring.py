"""Scoring: from a visit history to risk, interval and explanation, in one place.

Every caller that turns visits into numbers (a patient's trajectory, the cohort
overview, ``hepatrack predict``, the MDT report, the cumulative-incidence curves) goes
through :func:`model_rows` (history features at each landmark, the training-domain
check, the model matrix) and, for risks, :func:`score`. A row outside the training
domain gets a reason and no number.

Nothing here is stored on the model: the model is fitted once and shared read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.errors import ModelError
from analytics.models.assessability import plain_reasons
from analytics.models.domain import reason_of

if TYPE_CHECKING:
    from analytics.models.explanation import Explanation
    from analytics.models.predict import LandmarkModel

__all__ = ["ModelRows", "Scores", "model_rows", "resolve_horizon", "score"]


def resolve_horizon(model: LandmarkModel, horizon: float | None, name: str = "horizon") -> float:
    """``horizon`` (years) if the model was trained for it; default the longest.

    Raises
    ------
    ModelError
        If the model was not trained for ``horizon`` (``name`` says which input it was).
    """
    h = float(horizon) if horizon is not None else max(model.horizons)
    if not any(abs(h - x) < 1e-9 for x in model.horizons):
        raise ModelError(f"{name} {h:g}: the model was trained for horizons "
                         f"{', '.join(f'{x:g}' for x in model.horizons)} years")
    return h


@dataclass(frozen=True)
class ModelRows:
    """History rows at the requested landmarks, their domain check and model matrix.

    Attributes
    ----------
    history
        :func:`analytics.models.history.history_features` output, index ``0..n-1`` in
        the order of the requested ``(patient, landmark)`` rows.
    reasons
        Per row, why it is not assessable, or None.
    matrix
        The model matrix of every row (same index).
    plain
        Per row, the same in one plain sentence saying what to add
        (:func:`analytics.models.assessability.plain_reason`), or None.
    """

    history: pd.DataFrame
    reasons: list[str | None]
    matrix: pd.DataFrame
    plain: list[str | None] = field(default_factory=list)

    @property
    def assessable(self) -> np.ndarray:
        return np.array([r is None for r in self.reasons], dtype=bool)


@dataclass(frozen=True)
class Scores(ModelRows):
    """:class:`ModelRows` with the risk by :attr:`horizon`, its interval and explanation.

    Attributes
    ----------
    horizon
        Years.
    risk
        ``(n,)`` cumulative incidence of the endpoint by the horizon; NaN where not
        assessable.
    ci
        ``(n, 2)`` 95% interval (NaN for rows not asked for or not assessable), or None
        when the model gives no interval.
    explanation
        SHAP values of every row when asked for, else None.
    """

    horizon: float = float("nan")
    risk: np.ndarray | None = None
    ci: np.ndarray | None = None
    explanation: Explanation | None = None


def model_rows(model: LandmarkModel, visits: pd.DataFrame, at: pd.DataFrame) -> ModelRows:
    """History features, domain check and model matrix at ``at`` (``patient``, ``landmark``).

    Only visits at or before each landmark are read; a row the training domain refuses
    keeps its reason (:attr:`LandmarkModel.domain_`; None gates nothing).
    """
    hist = model.history(visits, at[["patient", "landmark"]]).reset_index(drop=True)
    domain = model.domain_
    if domain is None:
        return ModelRows(history=hist, reasons=[None] * len(hist), matrix=model.matrix(hist),
                         plain=[None] * len(hist))
    found = domain.findings(hist)
    return ModelRows(history=hist,
                     reasons=[reason_of(row) for row in found],
                     matrix=model.matrix(hist), plain=plain_reasons(model, found))


def score(model: LandmarkModel, visits: pd.DataFrame, at: pd.DataFrame,
          horizon: float | None = None, *, intervals: bool | np.ndarray = True,
          explain: bool = False, seed: int = 0) -> Scores:
    """Risk by ``horizon`` at each ``(patient, landmark)`` of ``at`` from the visits so far.

    Parameters
    ----------
    model
        A fitted landmark model.
    visits
        Cohort visits (``patient``, ``time`` in years, feature columns).
    at
        Rows ``patient``, ``landmark`` (years since baseline), in the order wanted.
    horizon
        Years; default the model's longest horizon.
    intervals
        True: the 95% interval of every assessable row; a boolean mask: of the
        assessable rows it selects only; False: none.
    explain
        Also explain every row (:meth:`LandmarkModel.explain`).
    seed
        Seed of a sampling explainer.

    Returns
    -------
    Scores

    Raises
    ------
    ModelError
        If the model was not trained for ``horizon``.
    """
    h = resolve_horizon(model, horizon)
    rows = model_rows(model, visits, at)
    ok = rows.assessable
    risk = np.where(ok, model.risk(rows.matrix, [h])[:, 0], np.nan)
    # True: every row in one pass (a patient's few visits); a mask: only the assessable
    # rows it names (the cohort's latest visits)
    sel = (np.arange(len(ok)) if intervals is True
           else np.flatnonzero(ok & np.asarray(intervals, dtype=bool)))
    ci = None
    if len(sel):
        band = model.risk_interval(rows.matrix.iloc[sel], h)
        if band is not None:
            ci = np.full((len(ok), 2), np.nan)
            ci[sel] = band
            ci[~ok] = np.nan
    expl = model.explain(rows.matrix, horizon=h, seed=seed) if explain else None
    return Scores(history=rows.history, reasons=rows.reasons, matrix=rows.matrix,
                  plain=rows.plain, horizon=h, risk=risk, ci=ci, explanation=expl)
