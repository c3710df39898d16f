"""SHAP explanations of landmark predictions, returned as data (never figures).

Scales and exactness:

- Cox: ``log_hazard`` scale, exact: ``shap_j = beta_j (x_j - mean_j)`` with ``mean`` the
  training-sample mean (the background), base value 0 (the log hazard is centred there).
- GBM (xgboost ``survival:cox``): ``log_hazard`` (margin) scale, exact path-dependent
  TreeSHAP (xgboost ``pred_contribs``); the background is the training sample through the
  trees' cover statistics.
- RSF: ``risk`` scale (cumulative incidence by the horizon), permutation-sampling SHAP
  (:func:`permutation_shap`, the algorithm of shap's ``PermutationExplainer`` with an
  independent masker) against :data:`RSF_BACKGROUND` rows of the training background
  stored with the model and :data:`RSF_PERMUTATIONS` feature orders (an antithetic pair):
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
from analytics.models.estimators import CoxPH, GBMCox
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
]

RSF_PERMUTATIONS = 2
#: background rows (seeded sample of the stored training background) for RSF explanations
RSF_BACKGROUND = 10
_NEGLIGIBLE = 1e-3


@dataclass
class Explanation:
    """SHAP values of ``n`` rows on one scale.

    Attributes
    ----------
    values
        ``(n, p)`` contributions, one column per model-matrix feature.
    base_values
        ``(n,)`` expected model output over the background.
    output
        ``(n,)`` model output on :attr:`scale` (``base + values.sum(1)``).
    data
        The model-matrix rows explained (``(n, p)`` DataFrame).
    scale
        ``"log_hazard"`` or ``"risk"``.
    horizon
        Horizon of a ``risk``-scale explanation (None on the log-hazard scale).
    """

    values: np.ndarray
    base_values: np.ndarray
    output: np.ndarray
    data: pd.DataFrame
    scale: str
    horizon: float | None = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.data.columns)

    def frame(self) -> pd.DataFrame:
        """SHAP values as a DataFrame (rows as in :attr:`data`)."""
        return pd.DataFrame(self.values, index=self.data.index, columns=self.feature_names)

    def row(self, i: int) -> dict[str, float]:
        return {f: float(v) for f, v in zip(self.feature_names, self.values[i], strict=True)}


def explain(model: LandmarkModel, X: pd.DataFrame, horizon: float | None = None,
            seed: int = 0) -> Explanation:
    """SHAP values for model-matrix rows ``X`` (see the module docstring for scales).

    Raises
    ------
    ModelError
        For an RSF explanation without a horizon or background sample.
    """
    est = model.estimators["interest"]
    if isinstance(est, CoxPH):
        xm = est._matrix(X)
        vals = (xm - est.mean_) * est.coef_
        base = np.zeros(len(X))
        out = vals.sum(axis=1)
        return Explanation(vals, base, out, X[est.feature_names_in_], "log_hazard")
    if isinstance(est, GBMCox):
        vals, base = est.contributions(X)
        # the booster's own margin; TreeSHAP in float32 adds up to it within ~1e-6
        return Explanation(vals, base, est.predict_log_hazard(X), X[est.feature_names_in_],
                           "log_hazard")
    return _sampling_explanation(model, X, horizon, seed)


def permutation_shap(f, x: np.ndarray, background: np.ndarray, n_permutations: int = 2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Permutation-sampling SHAP values (interventional, independent background).

    For each row and each sampled feature order (antithetic pairs: an order and its
    reverse), features are switched from the background to the row's values one at a
    time and the mean model output over the background is recorded; each feature gets
    its marginal change, averaged over orders. Every order telescopes from
    ``mean f(background)`` to ``f(x)``, so ``base + sum(values) == f(x)`` exactly.
    Cost: ``n_rows x n_permutations x (p + 1) x len(background)`` evaluations, in one
    batch.

    Returns
    -------
    values, base, output
        ``(n, p)``, ``(n,)``, ``(n,)``.
    """
    x = np.atleast_2d(np.asarray(x, np.float64))
    bg = np.asarray(background, np.float64)
    n, p = x.shape
    b = len(bg)
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(n):
        row_orders = []
        for _k in range(max(1, n_permutations // 2)):
            perm = rng.permutation(p)
            row_orders += [perm, perm[::-1]]
        orders.append(row_orders[:max(1, n_permutations)])
    k_perm = len(orders[0])
    batch = np.empty((n, k_perm, p + 1, b, p))
    for i in range(n):
        for j, perm in enumerate(orders[i]):
            z = np.repeat(bg[None, :, :], p + 1, axis=0)
            for step in range(1, p + 1):
                z[step:, :, perm[step - 1]] = x[i, perm[step - 1]]
            batch[i, j] = z
    out = np.asarray(f(batch.reshape(-1, p)), np.float64).reshape(n, k_perm, p + 1, b)
    v = out.mean(axis=3)  # (n, k_perm, p + 1)
    values = np.zeros((n, p))
    for i in range(n):
        for j, perm in enumerate(orders[i]):
            values[i, perm] += np.diff(v[i, j])
    values /= k_perm
    base = v[:, 0, 0]
    output = v[:, 0, -1]
    return values, base, output


def _sampling_explanation(model: LandmarkModel, X: pd.DataFrame, horizon: float | None,
                          seed: int) -> Explanation:
    if horizon is None:
        raise ModelError("an RSF explanation is on the risk scale: give a horizon")
    bg = getattr(model, "background", None)
    if bg is None or len(bg) == 0:
        raise ModelError("model has no background sample to explain against")
    cols = model.features
    bgx = bg[cols].sample(n=min(RSF_BACKGROUND, len(bg)), random_state=seed)

    def f(a: np.ndarray) -> np.ndarray:
        return model.risk(pd.DataFrame(a, columns=cols), [horizon])[:, 0]

    vals, base, out = permutation_shap(f, X[cols].to_numpy(np.float64),
                                       bgx.to_numpy(np.float64), RSF_PERMUTATIONS, seed)
    return Explanation(vals, base, out, X[cols], "risk", horizon)


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


def _groups(model: LandmarkModel, columns: list[str]) -> list[str]:
    """The feature each model-matrix column belongs to (cached on the model)."""
    cache = model.__dict__.setdefault("_explain_groups", {})
    key = tuple(columns)
    if key not in cache:
        cache[key] = [model.spec.source_of(model.design.source_column(c))[0] for c in columns]
    return cache[key]


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
    for g, v in zip(_groups(model, expl.feature_names), expl.values[i], strict=True):
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
        if previous is not None and g in history and g not in model.spec.categorical:
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
