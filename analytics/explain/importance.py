"""SHAP values of model-matrix rows and the views of them that are data (never figures).

:func:`explain` asks the model's endpoint estimator for its own explanation (scales and
exactness in :mod:`analytics.explain`); :func:`change_since_previous` splits the change
of the model output between two rows by column; :func:`global_importance`,
:func:`beeswarm_data` and :func:`dependence_data` summarise many rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.errors import ModelError
from analytics.explain.contributions import clinical_label, group_explanation
from analytics.explain.points import points_explanation
from analytics.models.explanation import Explanation
from analytics.vocabulary import describe_column

if TYPE_CHECKING:
    from analytics.models.predict import LandmarkModel
    from analytics.models.registry import RegisteredModel

__all__ = [
    "ClinicalImportance",
    "OutputChange",
    "beeswarm_data",
    "change_since_previous",
    "clinical_importance",
    "dependence_data",
    "explain",
    "global_importance",
]

def explain(model: LandmarkModel, X: pd.DataFrame, horizon: float | None = None,
            seed: int = 0) -> Explanation:
    """SHAP values for model-matrix rows ``X`` (see the module docstring for scales).

    Each estimator explains itself (``SurvivalEstimator.explain``); this asks the
    model's endpoint estimator through :meth:`LandmarkModel.explain`.

    Raises
    ------
    ModelError
        For a risk-scale (sampling) explanation without a horizon or background sample.
    """
    return model.explain(X, horizon=horizon, seed=seed)


# --------------------------------------------------------------------------- change
@dataclass(frozen=True)
class OutputChange:
    """How the model output moved from one row to another, split by model-matrix column.

    Attributes
    ----------
    changes
        ``feature``, ``change`` (``shap_i - shap_j``), largest magnitude first; the
        column sums to :attr:`output_change` (the base value cancels) up to rounding,
        exactly for the exact explainers.
    output_change, base_change
        ``output_i - output_j`` and ``base_i - base_j`` on the explanation's scale.
    """

    changes: pd.DataFrame
    output_change: float
    base_change: float


def change_since_previous(expl: Explanation, i: int, j: int) -> OutputChange:
    """Change of model output from row ``j`` (previous) to row ``i``, split by column."""
    d = expl.values[i] - expl.values[j]
    df = pd.DataFrame({"feature": expl.feature_names, "change": d})
    df = df.reindex(df["change"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    return OutputChange(df, float(expl.output[i] - expl.output[j]),
                        float(expl.base_values[i] - expl.base_values[j]))


# --------------------------------------------------------------------------- global
def global_importance(expl: Explanation, rows: np.ndarray | None = None) -> pd.DataFrame:
    """Mean |SHAP| per feature over the cohort or a subgroup (boolean mask ``rows``)."""
    v = expl.values if rows is None else expl.values[np.asarray(rows)]
    df = pd.DataFrame({"feature": expl.feature_names,
                       "label": [describe_column(f)[0] for f in expl.feature_names],
                       "mean_abs_shap": np.abs(v).mean(axis=0) if len(v) else 0.0,
                       "mean_shap": v.mean(axis=0) if len(v) else 0.0})
    return df.sort_values("mean_abs_shap", ascending=False, ignore_index=True)


@dataclass(frozen=True)
class ClinicalImportance:
    """Mean absolute contribution per clinical feature over a model's training sample.

    Attributes
    ----------
    table
        ``feature``, ``label``, ``mean_abs_shap``, ``mean_shap`` (the model's scale),
        ``mean_abs_points`` (percentage points of the risk at :attr:`horizon`, as the
        Patient page apportions each visit's risk; NaN when not computed), largest
        ``mean_abs_shap`` first.
    scale
        The model's scale of ``mean_abs_shap``: ``log_hazard`` or ``risk``.
    n_rows
        Training rows explained.
    horizon
        Years: the risk the points are of (None when not computed).
    """

    table: pd.DataFrame
    scale: str
    n_rows: int
    horizon: float | None = None


def clinical_importance(model: RegisteredModel, horizon: float | None = None,
                        max_rows: int | None = None) -> ClinicalImportance:
    """Mean absolute contribution per clinical feature over training rows, on the model's
    scale and in percentage points of the risk at ``horizon``.

    The explained rows are the training sample stored with the model (its explainer
    background); a feature's history columns (last value, trend, worst, missing) are
    summed per row, and the bookkeeping columns form ``Follow-up``
    (:func:`group_explanation`, as on the patient page), before taking the absolute
    value. Each row's contributions in points are the Patient page's
    (:func:`analytics.explain.points.points_explanation`: they add up from the row's base
    risk to its risk).

    Parameters
    ----------
    horizon
        Years (risk-scale explainers); default the model's longest horizon.
    max_rows
        Rows explained; default the endpoint estimator's ``global_explain_rows``.

    Raises
    ------
    ModelError
        If the model has no stored training sample.
    """
    bg = model.model.background_
    if bg is None or bg.empty:
        raise ModelError(f"model {model.model_id}: no training sample stored to explain")
    n = max_rows or model.model.estimators_["interest"].global_explain_rows
    X = bg[model.features].head(n)
    h = horizon if horizon is not None else max(model.horizons)
    grouped = group_explanation(model.model.explain(X, horizon=h), model.model.feature_groups_)
    v = grouped.values
    risk = model.model.risk(X, [h])[:, 0]
    points = points_explanation(model.model, grouped, X, risk, h).values
    out = pd.DataFrame({"feature": grouped.feature_names,
                        "label": [clinical_label(f)[0] for f in grouped.feature_names],
                        "mean_abs_shap": np.abs(v).mean(axis=0),
                        "mean_shap": v.mean(axis=0),
                        "mean_abs_points": np.nanmean(np.abs(points), axis=0)})
    out = out.sort_values("mean_abs_shap", ascending=False, ignore_index=True)
    return ClinicalImportance(out, grouped.scale, len(X), float(h))


def beeswarm_data(expl: Explanation, max_features: int = 20,
                  rows: np.ndarray | None = None) -> pd.DataFrame:
    """Long table for a beeswarm: ``feature``, ``shap``, ``value``, ``value_rank`` (0-1
    within feature, for colouring), for the ``max_features`` most important features."""
    keep = global_importance(expl, rows)["feature"].head(max_features).tolist()
    sel = np.arange(len(expl.values)) if rows is None else np.flatnonzero(np.asarray(rows))
    parts = []
    for f in keep:
        j = expl.feature_names.index(f)
        x = expl.data[f].to_numpy(np.float64)[sel]
        parts.append(pd.DataFrame({"feature": f, "shap": expl.values[sel, j], "value": x,
                                   "value_rank": pd.Series(x).rank(pct=True).to_numpy(),
                                   "row": sel}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["feature", "shap", "value", "value_rank", "row"])


def dependence_data(expl: Explanation, feature: str, color_by: str | None = None) -> pd.DataFrame:
    """``value`` and ``shap`` of one feature per row (plus ``color`` from another feature).

    Raises
    ------
    ModelError
        If the feature is not in the explanation.
    """
    if feature not in expl.feature_names:
        raise ModelError(f"dependence: {feature!r} is not a model feature "
                         f"(features: {', '.join(expl.feature_names)})")
    j = expl.feature_names.index(feature)
    df = pd.DataFrame({"value": expl.data[feature].to_numpy(np.float64),
                       "shap": expl.values[:, j]})
    if color_by is not None:
        if color_by not in expl.feature_names:
            raise ModelError(f"dependence: colour feature {color_by!r} is not a model feature")
        df["color"] = expl.data[color_by].to_numpy(np.float64)
    return df
