"""SHAP explanations of landmark predictions, returned as data (never figures).

Scales and exactness:

- Cox: ``log_hazard`` scale, exact: ``shap_j = beta_j (x_j - mean_j)`` with ``mean`` the
  training-sample mean (the background), base value 0 (the log hazard is centred there).
- GBM (xgboost ``survival:cox``): ``log_hazard`` (margin) scale, exact path-dependent
  TreeSHAP (xgboost ``pred_contribs``); the background is the training sample through the
  trees' cover statistics.
- RSF: ``risk`` scale (cumulative incidence by the horizon), permutation-sampling SHAP
  (:func:`permutation_shap`, the algorithm of shap's ``PermutationExplainer`` with an
  independent masker) against ``SAMPLED_BACKGROUND`` rows of the training background
  stored with the model and ``SAMPLED_PERMUTATIONS`` feature orders (an antithetic pair;
  both in ``analytics.models.estimators``):
  a budget of ``2 (p + 1) x 10`` forest evaluations per row; seeded, so reproducible, and
  exactly additive by construction (each order telescopes).

For every scale ``base_value + sum(shap) == model_output``. With competing risks the
log-hazard explanations are of the endpoint's cause-specific hazard.

Clinical wording groups a feature's history columns (last value, trend, worst value,
missing indicator) into one contribution and names the patient's value and its change
since the previous visit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.errors import ModelError
from analytics.models.explanation import Explanation, permutation_shap  # re-exported
from analytics.models.landmark import GLOBAL_FEATURES, LANDMARK, describe_column, feature_info

if TYPE_CHECKING:
    from analytics.models.predict import LandmarkModel

__all__ = [
    "Contribution",
    "Explanation",
    "beeswarm_data",
    "change_since_previous",
    "clinical_contributions",
    "dependence_data",
    "explain",
    "global_importance",
    "permutation_shap",
]

_NEGLIGIBLE = 1e-3


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


# --------------------------------------------------------------------------- wording
@dataclass
class Contribution:
    """One feature's share of a prediction, in the clinic's words."""

    feature: str
    label: str
    unit: str
    value: float | str | None
    change: float | None
    shap: float
    text: str


def clinical_contributions(model: LandmarkModel, expl: Explanation,
                           history: pd.DataFrame | dict[str, np.ndarray], i: int,
                           previous: int | None = None, horizon: float | None = None,
                           top: int | None = None) -> list[Contribution]:
    """Contributions of row ``i`` grouped by feature, largest first, with wording.

    Parameters
    ----------
    history
        History rows (same order as the explanation) giving the patient's values, as a
        DataFrame or a mapping of column -> array.
    previous
        Row of the previous visit, for "(+120 mL since the previous visit)".
    horizon
        Named in the text ("raised the 2-year risk").
    """
    groups: dict[str, float] = {}
    group_of = model.feature_groups_
    for g, v in zip((group_of[c] for c in expl.feature_names), expl.values[i], strict=True):
        groups[g] = groups.get(g, 0.0) + float(v)
    if isinstance(history, pd.DataFrame):
        history = {g: history[g].to_numpy() for g in groups if g in history}
    h = horizon if horizon is not None else expl.horizon
    risk_name = f"{h:g}-year risk" if h is not None else "risk"
    out = []
    for g, v in sorted(groups.items(), key=lambda kv: -abs(kv[1])):
        info = feature_info(g)
        label, unit = describe_column(g) if g in GLOBAL_FEATURES else (info.label, info.unit)
        value = history[g][i] if g in history else None
        change = None
        if previous is not None and g in history and g not in model.spec_.categorical:
            a, b = history[g][i], history[g][previous]
            if pd.notna(a) and pd.notna(b):
                change = float(a) - float(b)
        if isinstance(value, float | np.floating) and np.isnan(value):
            value = None
        verb = ("did not change" if abs(v) < _NEGLIGIBLE
                else "raised" if v > 0 else "lowered")
        out.append(Contribution(g, label, unit, _plain(value), change, v,
                                _sentence(label, unit, value, change, verb, risk_name, g)))
    return out[:top] if top else out


def _plain(v: object) -> float | str | None:
    if v is None:
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    return str(v)


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _sentence(label: str, unit: str, value: object, change: float | None, verb: str,
              risk_name: str, feature: str) -> str:
    u = f" {unit}" if unit else ""
    if value is None:
        head = f"{label} not measured yet"
    elif isinstance(value, str):
        head = f"{label} {value}"
    else:
        head = f"{label} {_fmt(float(value))}{u}"
    if change is not None and feature != LANDMARK and abs(change) > 0:
        sign = "+" if change > 0 else "-"
        head += f" ({sign}{_fmt(abs(change))}{u} since the previous visit)"
    return f"{head} {verb} the {risk_name}"


# --------------------------------------------------------------------------- change
def change_since_previous(expl: Explanation, i: int, j: int) -> pd.DataFrame:
    """Change of model output from row ``j`` (previous) to row ``i``, split by feature.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``change`` (``shap_i - shap_j``), largest magnitude first; the
        column sums to ``output_i - output_j`` (the base value cancels) up to rounding,
        exactly for the exact explainers.
    """
    d = expl.values[i] - expl.values[j]
    df = pd.DataFrame({"feature": expl.feature_names, "change": d})
    df.attrs["output_change"] = float(expl.output[i] - expl.output[j])
    df.attrs["base_change"] = float(expl.base_values[i] - expl.base_values[j])
    return df.reindex(df["change"].abs().sort_values(ascending=False).index).reset_index(drop=True)


# --------------------------------------------------------------------------- global
def global_importance(expl: Explanation, rows: np.ndarray | None = None) -> pd.DataFrame:
    """Mean |SHAP| per feature over the cohort or a subgroup (boolean mask ``rows``)."""
    v = expl.values if rows is None else expl.values[np.asarray(rows)]
    df = pd.DataFrame({"feature": expl.feature_names,
                       "label": [describe_column(f)[0] for f in expl.feature_names],
                       "mean_abs_shap": np.abs(v).mean(axis=0) if len(v) else 0.0,
                       "mean_shap": v.mean(axis=0) if len(v) else 0.0})
    return df.sort_values("mean_abs_shap", ascending=False, ignore_index=True)


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
