"""Contributions on the clinician's scale: percentage points of the risk at the horizon.

The model explains its own output. For the proportional-hazards models (Cox, GBM) that is
the endpoint's log relative hazard ``eta``, which a clinician does not read; the risk
shown is ``r(eta)``, the cumulative incidence by the horizon with the visit's
competing-cause hazards held as they are (``1 - S0(h)^exp(eta)`` without competing
causes). :func:`points_explanation` turns the grouped log-hazard contributions ``c_g``
of one visit into percentage points ``p_g`` of that risk, exactly:

- **Base risk** ``r0 = r(eta0)``: the risk of this visit were its log hazard the base
  value ``eta0`` (the explainer's expected output: the training mean for Cox, the trees'
  expected margin for GBM and RSF), competing causes unchanged. The model gives it directly: the
  endpoint's cumulative hazard is multiplied by ``exp(eta0 - eta)``.
- **Apportioning** (the Aumann-Shapley value of ``r`` along the straight path from
  ``eta0`` to ``eta``): because ``r`` depends on the features only through the sum
  ``eta = eta0 + sum_g c_g``, each group's path integral is
  ``c_g * (r(eta) - r(eta0)) / (eta - eta0)``, its log-hazard contribution times the
  secant slope ``s`` of ``r`` (the derivative ``r'(eta)`` when ``|eta - eta0| <
  1e-6``). ``r`` rises with ``eta``, so ``s >= 0`` and every group keeps the sign of its
  log-hazard contribution; groups that cancel on the log scale cancel in points.
- **Exactness**: ``sum_g c_g`` equals ``eta - eta0`` to float precision for Cox, and to
  ~1e-6 for GBM and RSF (TreeSHAP works in float32); that residual, times ``s``, is spread over
  the groups in proportion to ``|c_g|`` (a share far too small to change a sign), so
  ``r0 + sum_g p_g / 100`` equals the shown risk to float precision. A visit whose
  groups are all zero gets no points and its base risk is its risk.

Models explained on the risk scale already (the model-agnostic permutation SHAP of the
risk at the horizon; the RSF explains its log hazard like GBM) need no apportioning: their contributions are multiplied by 100, the base
value is the base risk, and the same residual rule makes them add up to the shown risk.

The result is an :class:`Explanation` on the ``points`` scale: ``values`` in percentage
points, ``base_values`` and ``output`` the base risk and the risk in percent.

**Change between two visits** (:func:`change_basis`, :func:`change_points`): the risk
moves from ``r_j(eta_j)`` at the reference visit to ``r_i(eta_i)``; ``r_i`` and ``r_j``
differ only by the visits' competing-cause hazards. So
``r_i(eta_i) - r_j(eta_j) = [r_i(eta_i) - r_i(eta_j)] + [r_i(eta_j) - r_j(eta_j)]``: the
first part is apportioned over the groups' log-hazard changes ``c_g,i - c_g,j`` by the
same secant rule (a group whose log-hazard contribution did not move gets exactly zero
points), the second is the competing causes' own share (zero without competing causes).
The parts add up to the change of the shown risk exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.models.estimators import SurvivalEstimator
from analytics.models.explanation import Explanation

if TYPE_CHECKING:
    from analytics.models.predict import LandmarkModel

__all__ = ["POINTS", "ChangeBasis", "apportion", "base_risk", "change_basis", "change_points",
           "points_explanation", "risk_slope"]

#: scale name of contributions in percentage points of the risk at the horizon
POINTS = "points"
#: below this log-hazard distance from the base value the secant is the derivative
FLAT = 1e-6
#: step of the central difference of that derivative (log-hazard units)
STEP = 1e-4
#: rows per model call: within one of the model's chunks (``LandmarkModel.risk``)
ROWS = 2000


class _Offset(SurvivalEstimator):
    """The endpoint's hazard model with its log hazard moved by a per-row offset."""

    kind = "offset"

    def __init__(self, base: SurvivalEstimator, offset: np.ndarray) -> None:
        self.base = base
        self.offset = offset

    def cumulative_hazard(self, X: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        return self.base.cumulative_hazard(X, times) * np.exp(self.offset)[:, None]


def _risk_at(model: LandmarkModel, matrix: pd.DataFrame, horizon: float,
             offset: np.ndarray) -> np.ndarray:
    """Risk by ``horizon`` with the endpoint's log hazard moved by ``offset`` per row."""
    offset = np.asarray(offset, np.float64)
    x = matrix[model.features].to_numpy(np.float64)
    out = np.empty(len(x))
    # the model combines causes in chunks of rows; each offset must meet its own rows
    for a in range(0, len(x), ROWS):
        interest = _Offset(model.estimators_["interest"], offset[a:a + ROWS])
        out[a:a + ROWS] = model.risk(x[a:a + ROWS], [horizon], interest=interest)[:, 0]
    return out


def base_risk(model: LandmarkModel, matrix: pd.DataFrame, expl: Explanation,
              horizon: float) -> np.ndarray:
    """Risk by ``horizon`` of each row were its output the explanation's base value.

    Parameters
    ----------
    model
        The fitted landmark model that scored ``matrix``.
    matrix
        Model-matrix rows (any number: one patient's visits or a cohort's).
    expl
        Their explanation (log-hazard or risk scale).
    horizon
        Years.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` fractions: ``r(eta0)`` with the row's competing-cause hazards; on the
        risk scale the base value itself.
    """
    if expl.scale != "log_hazard":
        return np.asarray(expl.base_values, np.float64)
    return _risk_at(model, matrix, horizon, expl.base_values - expl.output)


def risk_slope(model: LandmarkModel, matrix: pd.DataFrame, expl: Explanation,
               horizon: float, risk: np.ndarray, risk0: np.ndarray) -> np.ndarray:
    """Secant slope ``(r(eta) - r(eta0)) / (eta - eta0)`` of the risk in the log hazard.

    Rows whose output is within :data:`FLAT` of the base value get the derivative
    ``r'(eta)`` (central difference of :data:`STEP`). 1 on the risk scale.
    """
    if expl.scale != "log_hazard":
        return np.ones(len(risk))
    d_eta = np.asarray(expl.output - expl.base_values, np.float64)
    flat = np.abs(d_eta) < FLAT
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(flat, 0.0, (risk - risk0) / np.where(flat, 1.0, d_eta))
    if flat.any():
        rows = np.flatnonzero(flat)
        sub = matrix.iloc[rows]
        up = _risk_at(model, sub, horizon, np.full(len(rows), STEP))
        down = _risk_at(model, sub, horizon, np.full(len(rows), -STEP))
        slope[rows] = (up - down) / (2 * STEP)
    return np.maximum(slope, 0.0)  # r rises with eta; clips a float-noise negative


def apportion(values: np.ndarray, slope: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``values * slope`` per row, the residual to ``total`` spread in proportion to
    ``|values|`` so every row sums to ``total`` (rows of zeros stay zero)."""
    raw = values * slope[:, None]
    weight = np.abs(values)
    wsum = weight.sum(axis=1)
    resid = total - raw.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(wsum > 0, resid / np.where(wsum > 0, wsum, 1.0), 0.0)
    return raw + share[:, None] * weight


def points_explanation(model: LandmarkModel, grouped: Explanation, matrix: pd.DataFrame,
                       risk: np.ndarray, horizon: float) -> Explanation:
    """Grouped contributions in percentage points of the risk by ``horizon`` (module
    docstring: base risk, Aumann-Shapley apportioning, exactness).

    Parameters
    ----------
    model
        The fitted landmark model.
    grouped
        Contributions per clinical feature group of ``matrix``'s rows, on the model's
        scale (:func:`analytics.explain.contributions.group_explanation`).
    matrix
        The model-matrix rows explained.
    risk
        ``(n,)`` the risk shown for each row (fraction; NaN where not assessable).
    horizon
        Years.

    Returns
    -------
    Explanation
        Scale ``points``: ``values`` ``(n, groups)`` in percentage points, ``output`` the
        risk and ``base_values`` the base risk, both in percent;
        ``base_values + values.sum(1) == output`` to float precision (NaN rows stay
        NaN).
    """
    risk = np.asarray(risk, np.float64)
    risk0 = base_risk(model, matrix, grouped, horizon)
    slope = risk_slope(model, matrix, grouped, horizon, risk, risk0)
    values = apportion(np.asarray(grouped.values, np.float64), slope, risk - risk0)
    # a row without any contribution keeps its whole risk as the base
    risk0 = np.where(np.abs(grouped.values).sum(axis=1) > 0, risk0, risk)
    return Explanation(100.0 * values, 100.0 * risk0, 100.0 * risk, grouped.data, POINTS,
                       horizon)


@dataclass(frozen=True)
class ChangeBasis:
    """What apportioning the risk change of each visit since its reference needs.

    Attributes
    ----------
    reference
        ``(n,)`` row of each row's reference visit (-1: none).
    cross_risk
        ``(n,)`` ``r_i(eta_j)``: the risk of row ``i`` at its reference's log hazard
        (fraction; NaN without a reference).
    slope
        ``(n,)`` secant slope of ``r_i`` between ``eta_j`` and ``eta_i``; 1 on the risk
        scale.
    """

    reference: np.ndarray
    cross_risk: np.ndarray
    slope: np.ndarray


def change_basis(model: LandmarkModel, matrix: pd.DataFrame, expl: Explanation,
                 horizon: float, risk: np.ndarray, reference: np.ndarray) -> ChangeBasis:
    """:class:`ChangeBasis` of each row against its ``reference`` row (-1: none).

    On the risk scale (no log hazard to move) ``cross_risk`` is the row's risk less its
    base value's move since the reference, and the slope 1.
    """
    n = len(reference)
    cross, slope = np.full(n, np.nan), np.ones(n)
    rows = np.flatnonzero(reference >= 0)
    refs = reference[rows]
    if not len(rows):
        return ChangeBasis(reference, cross, slope)
    if expl.scale != "log_hazard":
        cross[rows] = risk[rows] - (expl.base_values[rows] - expl.base_values[refs])
        return ChangeBasis(reference, cross, slope)
    out = np.asarray(expl.output, np.float64)
    sub = matrix.iloc[rows]
    cross[rows] = _risk_at(model, sub, horizon, out[refs] - out[rows])
    d = out[rows] - out[refs]
    flat = np.abs(d) < FLAT
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(flat, 0.0, (risk[rows] - cross[rows]) / np.where(flat, 1.0, d))
    if flat.any():
        k = np.flatnonzero(flat)
        up = _risk_at(model, sub.iloc[k], horizon, np.full(len(k), STEP))
        down = _risk_at(model, sub.iloc[k], horizon, np.full(len(k), -STEP))
        s[k] = (up - down) / (2 * STEP)
    slope[rows] = np.maximum(s, 0.0)
    return ChangeBasis(reference, cross, slope)


def change_points(log_changes: np.ndarray, basis: ChangeBasis, i: int,
                  risk: np.ndarray) -> tuple[np.ndarray, float]:
    """Percentage points of the risk change of row ``i`` since its reference.

    Parameters
    ----------
    log_changes
        ``(k,)`` each group's contribution at ``i`` minus at the reference, on the
        model's scale.
    basis
        :func:`change_basis` output.
    risk
        ``(n,)`` the shown risks (fraction).

    Returns
    -------
    points, competing
        ``(k,)`` the groups' points and the competing causes' share
        (``100 * (r_i(eta_j) - r_j(eta_j))`` up to float rounding); they add up to
        ``100 * (risk[i] - risk[reference])``.
    """
    j = int(basis.reference[i])
    cross = float(basis.cross_risk[i])
    if j < 0:
        raise ValueError(f"row {i} has no reference visit")
    own = apportion(np.asarray(log_changes, np.float64)[None, :],
                    np.array([basis.slope[i]]), np.array([risk[i] - cross]))[0]
    points = 100.0 * own
    # the competing causes' share, and any float residual of the groups', closes the sum
    return points, 100.0 * (float(risk[i]) - float(risk[j])) - float(points.sum())
