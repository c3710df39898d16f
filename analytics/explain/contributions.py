"""SHAP values per clinical feature: a feature's history columns form one contribution.

A model-matrix column derives from one clinical feature (its last value, trend, worst
value, missing indicator; ``LandmarkModel.feature_groups_``). :func:`group_explanation`
sums the columns of each feature into one :class:`Explanation` whose ``data`` are the
patient's values; :func:`contributions` reads one row of it in the clinic's words
(label, unit, value, change since the previous visit and the sentence of
:mod:`analytics.explain.wording`), largest first. An imaging biomarker's change is the
one between its last two scans (its ``_scan_change`` history column,
:func:`scan_changes`), not since the previous visit: labs come far more often than scans.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.explain.wording import PREVIOUS_SCAN, PREVIOUS_VISIT, contribution_sentence
from analytics.models.explanation import Explanation
from analytics.models.landmark import GLOBAL_FEATURES, FeatureSpec
from analytics.vocabulary import describe_column, feature_info

if TYPE_CHECKING:
    from analytics.models.predict import LandmarkModel
    from analytics.models.registry import RegisteredModel

__all__ = ["Contribution", "clinical_contributions", "clinical_label", "contributions",
           "feature_groups", "group_explanation", "scan_changes"]


@dataclass(frozen=True)
class Contribution:
    """One clinical feature's share of a prediction, in the clinic's words.

    Attributes
    ----------
    feature, label, unit
        The clinical feature, its display label and unit.
    value
        The patient's value at the visit (number or category); None if never measured.
    change
        Value minus the value at the previous visit (numeric features), or at the
        previous scan (imaging biomarkers), else None.
    shap
        The summed SHAP value of the feature's model-matrix columns.
    text
        The sentence (:func:`analytics.explain.wording.contribution_sentence`).
    since
        What ``change`` is measured since: ``"previous visit"`` or ``"previous scan"``.
    """

    feature: str
    label: str
    unit: str
    value: float | str | None
    change: float | None
    shap: float
    text: str
    since: str = PREVIOUS_VISIT

    @property
    def imaging(self) -> bool:
        """An imaging biomarker with its scan history."""
        return self.since == PREVIOUS_SCAN


def feature_groups(model: RegisteredModel) -> dict[str, str]:
    """Model-matrix column -> the clinical feature it derives from."""
    return dict(model.model.feature_groups_)


@functools.lru_cache(maxsize=1024)
def clinical_label(feature: str) -> tuple[str, str]:
    """(label, unit) of a clinical feature or global history column, for display."""
    if feature in GLOBAL_FEATURES:
        return describe_column(feature)
    info = feature_info(feature)
    return info.label, info.unit


def group_explanation(expl: Explanation, group_of: Mapping[str, str],
                      history: pd.DataFrame | None = None) -> Explanation:
    """The explanation with each clinical feature's columns summed into one.

    Parameters
    ----------
    expl
        SHAP values of model-matrix rows.
    group_of
        Model-matrix column -> clinical feature (a column missing here is its own group).
    history
        History rows in the order of ``expl`` (:func:`history_features` output): the
        grouped explanation's ``data`` are its columns named like the groups (None
        where a group is not a history column, or everywhere without a history).

    Returns
    -------
    Explanation
        Same rows, scale, base values and output; one column per clinical feature in
        the order the features first appear. Sums run column by column in the model's
        order, so each group's value is the same float as a running sum.
    """
    groups = list(dict.fromkeys(group_of.get(c, c) for c in expl.feature_names))
    pos = {g: k for k, g in enumerate(groups)}
    values = np.zeros((len(expl.values), len(groups)))
    for j, c in enumerate(expl.feature_names):
        values[:, pos[group_of.get(c, c)]] += expl.values[:, j]
    if history is None:
        history = pd.DataFrame(index=pd.RangeIndex(len(values)))
    data = pd.DataFrame({g: (history[g].to_numpy() if g in history.columns
                             else np.full(len(history), None, dtype=object))
                         for g in groups}, index=pd.RangeIndex(len(history)))
    return Explanation(values, expl.base_values, expl.output, data, expl.scale, expl.horizon)


def scan_changes(history: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Change since the previous scan of each imaging biomarker with a scan history.

    One column per such feature (rows as ``history``, index reset): the history's
    ``<feature>_scan_change``; NaN before the first scan and where there is no change to
    show (one scan so far, or two equal values).
    """
    out = {}
    h = history.reset_index(drop=True)
    for f in spec.numeric:
        col = f"{f}_scan_change"
        if spec.has_scan_history(f) and col in h.columns:
            d = pd.to_numeric(h[col], errors="coerce")
            out[f] = d.where(d != 0)
    return pd.DataFrame(out, index=h.index)


def _plain(v: object) -> float | str | None:
    if v is None:
        return None
    if isinstance(v, float | np.floating) and np.isnan(v):
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    return str(v)


def contributions(grouped: Explanation, i: int, previous: int | None = None,
                  categorical: Collection[str] = (), horizon: float | None = None,
                  top: int | None = None,
                  scan_change: pd.DataFrame | None = None) -> list[Contribution]:
    """Contributions of row ``i`` of a grouped explanation, largest ``|shap|`` first.

    Parameters
    ----------
    grouped
        :func:`group_explanation` output.
    previous
        Row of the previous visit, for "(+120 mL since the previous visit)".
    categorical
        Features whose change is not a number.
    horizon
        Named in the text ("raised the 2-year risk"); default the explanation's.
    top
        Keep the largest ``top`` only.
    scan_change
        :func:`scan_changes` of the same rows: its features' change is since the
        previous scan.
    """
    names = grouped.feature_names
    imaging = scan_change if scan_change is not None else pd.DataFrame()
    row = grouped.values[i].tolist()
    h = horizon if horizon is not None else grouped.horizon
    out = []
    for k in sorted(range(len(names)), key=lambda k: -abs(row[k])):
        g, v = names[k], row[k]
        col = grouped.data[g].to_numpy()
        label, unit = clinical_label(g)
        value = _plain(col[i])
        change, since = None, PREVIOUS_VISIT
        if g in imaging.columns:
            since = PREVIOUS_SCAN
            d = imaging[g].iloc[i]
            change = float(d) if pd.notna(d) else None
        elif previous is not None and g not in categorical:
            a, b = col[i], col[previous]
            if a is not None and b is not None and pd.notna(a) and pd.notna(b):
                change = float(a) - float(b)
        out.append(Contribution(g, label, unit, value, change, v,
                                contribution_sentence(label, unit, value, change, v, h, g,
                                                      since), since))
    return out[:top] if top else out


def clinical_contributions(model: LandmarkModel, expl: Explanation, history: pd.DataFrame,
                           i: int, previous: int | None = None, horizon: float | None = None,
                           top: int | None = None) -> list[Contribution]:
    """Contributions of row ``i`` of model-matrix SHAP values, grouped per feature.

    Parameters
    ----------
    history
        History rows in the order of the explanation (the patient's values).
    previous
        Row of the previous visit, for "(+120 mL since the previous visit)".
    horizon
        Named in the text ("raised the 2-year risk").
    """
    grouped = group_explanation(expl, model.feature_groups_, history.reset_index(drop=True))
    return contributions(grouped, i, previous, model.spec_.categorical, horizon, top,
                         scan_changes(history, model.spec_))
