"""SHAP values per clinical feature: a feature's history columns form one contribution.

A model-matrix column derives from one clinical feature (its last value, trend, worst
value, missing indicator; ``LandmarkModel.feature_groups_``). :func:`group_explanation`
sums the columns of each feature into one :class:`Explanation` whose ``data`` are the
patient's values; the landmark history's bookkeeping columns (time since baseline and
its square, number of visits, time since the last visit) are one group, ``Follow-up``
(:data:`FOLLOW_UP`): they say how long and how closely a patient has been followed, not
anything about the liver. :func:`contributions` reads one row in the clinic's words
(label, unit, value, change since the previous visit, the contribution in percentage
points of the risk when given (:mod:`analytics.explain.points`) and the sentence of
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

from analytics.explain.points import POINTS, points_explanation
from analytics.explain.wording import (
    FOLLOW_UP,
    PREVIOUS_IMPORTED,
    PREVIOUS_SCAN,
    PREVIOUS_VISIT,
    contribution_sentence,
)
from analytics.models.explanation import Explanation
from analytics.models.history_spec import GLOBAL_FEATURES, FeatureSpec
from analytics.vocabulary import LANDMARK, feature_info

if TYPE_CHECKING:
    from analytics.models.predict import LandmarkModel
    from analytics.models.registry import RegisteredModel

__all__ = ["FOLLOW_UP", "FOLLOW_UP_FEATURES", "Contribution", "clinical_contributions",
           "clinical_group", "clinical_label", "contribution_at", "contributions",
           "feature_groups", "group_explanation", "scan_changes"]

#: the landmark history's bookkeeping columns, shown together as "Follow-up"
FOLLOW_UP_FEATURES = frozenset(GLOBAL_FEATURES)
#: visits counted in the follow-up text
VISITS = "n_visits"


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
        The summed SHAP value of the feature's model-matrix columns (the model's scale).
    text
        The sentence (:func:`analytics.explain.wording.contribution_sentence`), in
        percentage points when :attr:`points` is known.
    since
        What ``change`` is measured since: ``"previous visit"``, ``"previous scan"`` or,
        for a patient without a stored scan, ``"previous imported measurement"``.
    points
        The same share in percentage points of the risk at the horizon
        (:mod:`analytics.explain.points`; same sign as ``shap``), None when not computed.
    """

    feature: str
    label: str
    unit: str
    value: float | str | None
    change: float | None
    shap: float
    text: str
    since: str = PREVIOUS_VISIT
    points: float | None = None

    @property
    def imaging(self) -> bool:
        """An imaging biomarker with its scan history (stored scans or imported
        measurements)."""
        return self.since in (PREVIOUS_SCAN, PREVIOUS_IMPORTED)

    def amount(self, scale: str = POINTS) -> float:
        """The contribution on ``scale``: ``points`` (falls back to ``shap`` when no
        points were computed) or the model's own scale."""
        return self.points if scale == POINTS and self.points is not None else self.shap

    def sentence(self, scale: str = POINTS) -> str:
        """:attr:`text`, or the same sentence with the contribution on the model's
        scale (``log_hazard``)."""
        if scale == POINTS:
            return self.text
        return contribution_sentence(self.label, self.unit, self.value, self.change,
                                     self.shap, self.feature, self.since, scale)


def feature_groups(model: RegisteredModel) -> dict[str, str]:
    """Model-matrix column -> the clinical feature it derives from."""
    return dict(model.model.feature_groups_)


def clinical_group(feature: str) -> str:
    """The group a clinical feature is shown in: :data:`FOLLOW_UP` for the bookkeeping
    columns, else the feature itself."""
    return FOLLOW_UP if feature in FOLLOW_UP_FEATURES else feature


@functools.lru_cache(maxsize=1024)
def clinical_label(feature: str) -> tuple[str, str]:
    """(label, unit) of a clinical feature group, for display."""
    if feature == FOLLOW_UP:
        return "Follow-up", ""
    info = feature_info(feature)
    return info.label, info.unit


def follow_up_text(history: pd.DataFrame) -> np.ndarray:
    """``"2.5 years since baseline, 6 visits"`` per history row (None without the
    columns)."""
    n = len(history)
    if LANDMARK not in history.columns:
        return np.full(n, None, dtype=object)
    years = pd.to_numeric(history[LANDMARK], errors="coerce").to_numpy(float)
    visits = (pd.to_numeric(history[VISITS], errors="coerce").to_numpy(float)
              if VISITS in history.columns else np.full(n, np.nan))
    out = []
    for t, k in zip(years, visits, strict=True):
        text = f"{t:.1f} years since baseline"
        if np.isfinite(k):
            text += f", {int(k)} visit{'s' if int(k) != 1 else ''}"
        out.append(text)
    return np.array(out, dtype=object)


def group_explanation(expl: Explanation, group_of: Mapping[str, str],
                      history: pd.DataFrame | None = None) -> Explanation:
    """The explanation with each clinical feature's columns summed into one.

    Parameters
    ----------
    expl
        SHAP values of model-matrix rows.
    group_of
        Model-matrix column -> clinical feature (a column missing here is its own
        group); the bookkeeping features are then pooled into :data:`FOLLOW_UP`.
    history
        History rows in the order of ``expl`` (:func:`history_features` output): the
        grouped explanation's ``data`` are its columns named like the groups (None
        where a group is not a history column, or everywhere without a history);
        :data:`FOLLOW_UP`'s is the follow-up in words (:func:`follow_up_text`).

    Returns
    -------
    Explanation
        Same rows, scale, base values and output; one column per clinical feature in
        the order the features first appear. Sums run column by column in the model's
        order, so each group's value is the same float as a running sum.
    """
    of = [clinical_group(group_of.get(c, c)) for c in expl.feature_names]
    groups = list(dict.fromkeys(of))
    pos = {g: k for k, g in enumerate(groups)}
    values = np.zeros((len(expl.values), len(groups)))
    for j, g in enumerate(of):
        values[:, pos[g]] += expl.values[:, j]
    if history is None:
        history = pd.DataFrame(index=pd.RangeIndex(len(values)))
    data = pd.DataFrame({g: (follow_up_text(history) if g == FOLLOW_UP
                             else history[g].to_numpy() if g in history.columns
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


def _measured(v: object) -> bool:
    if type(v) is float:  # most values: no pandas call per contribution
        return v == v
    return v is not None and bool(pd.notna(v))


def _plain(v: object) -> float | str | None:
    if type(v) is float:
        return None if v != v else v
    if v is None:
        return None
    if isinstance(v, float | np.floating) and np.isnan(v):
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    return str(v)


def contributions(grouped: Explanation, i: int, previous: int | None = None,
                  categorical: Collection[str] = (), top: int | None = None,
                  scan_change: pd.DataFrame | None = None,
                  points: Explanation | None = None,
                  scan_since: str = PREVIOUS_SCAN) -> list[Contribution]:
    """Contributions of row ``i`` of a grouped explanation, largest ``|shap|`` first.

    Parameters
    ----------
    grouped
        :func:`group_explanation` output.
    previous
        Row of the previous visit, for "fell from 180 to 123 since the previous visit".
    categorical
        Features whose change is not a number.
    top
        Keep the largest ``top`` only.
    scan_change
        :func:`scan_changes` of the same rows: its features' change is since the
        previous scan.
    points
        The same groups in percentage points of the risk
        (:func:`analytics.explain.points.points_explanation`): the sentences use them;
        without, they use ``grouped``'s scale.
    scan_since
        What an imaging biomarker's change is since: :data:`PREVIOUS_SCAN`, or
        :data:`PREVIOUS_IMPORTED` when the patient has no stored scan up to the visit.
    """
    names = grouped.feature_names
    imaging = scan_change if scan_change is not None else pd.DataFrame()
    row = grouped.values[i].tolist()
    pts = points.values[i].tolist() if points is not None else [None] * len(names)
    order = sorted(range(len(names)), key=lambda k: -abs(row[k]))
    out = []
    for k in order[:top] if top else order:
        g = names[k]
        col = grouped.data[g].to_numpy()
        out.append(contribution_at(
            g, row[k], col[i], col[previous] if previous is not None else NO_PREVIOUS,
            imaging[g].iloc[i] if g in imaging.columns else NOT_IMAGING, categorical,
            pts[k], grouped.scale, scan_since))
    return out


#: ``before`` of :func:`contribution_at` for a visit without a previous one
NO_PREVIOUS = object()
#: ``scan_change`` of :func:`contribution_at` for a feature without a scan history
NOT_IMAGING = object()


def contribution_at(feature: str, shap: float, value: object, before: object,
                    scan_change: object, categorical: Collection[str],
                    points: float | None, scale: str,
                    scan_since: str = PREVIOUS_SCAN) -> Contribution:
    """One group's :class:`Contribution` at one visit, from its raw values.

    Parameters
    ----------
    feature, shap
        The group and its contribution on ``scale``.
    value, before
        The group's data at the visit and at the previous visit (:data:`NO_PREVIOUS`
        without one).
    scan_change
        The change since the previous scan of an imaging biomarker (NaN: none to
        show), or :data:`NOT_IMAGING`.
    categorical
        Features whose change is not a number.
    points
        The contribution in percentage points (None: the sentence uses ``shap``).
    scale
        The scale of ``shap``.
    scan_since
        What ``scan_change`` is since (:data:`PREVIOUS_IMPORTED`: imported values).
    """
    label, unit = clinical_label(feature)
    plain = _plain(value)
    change, since = None, PREVIOUS_VISIT
    if scan_change is not NOT_IMAGING:
        since = scan_since
        change = float(scan_change) if _measured(scan_change) else None
    elif (before is not NO_PREVIOUS and feature not in categorical and feature != FOLLOW_UP
          and _measured(value) and _measured(before)):
        change = float(value) - float(before)
    text = (contribution_sentence(label, unit, plain, change, points, feature, since, POINTS)
            if points is not None else
            contribution_sentence(label, unit, plain, change, shap, feature, since, scale))
    return Contribution(feature, label, unit, plain, change, shap, text, since, points)


def clinical_contributions(model: LandmarkModel, expl: Explanation, history: pd.DataFrame,
                           i: int, previous: int | None = None, horizon: float | None = None,
                           top: int | None = None) -> list[Contribution]:
    """Contributions of row ``i`` of model-matrix SHAP values, grouped per feature, with
    their percentage points of the risk by ``horizon``.

    Parameters
    ----------
    history
        History rows in the order of the explanation (the patient's values).
    previous
        Row of the previous visit, for "fell from 180 to 123 since the previous visit".
    horizon
        Years; default the explanation's, else the model's longest.
    """
    grouped = group_explanation(expl, model.feature_groups_, history.reset_index(drop=True))
    h = horizon if horizon is not None else expl.horizon or max(model.horizons)
    risk = model.risk(expl.data, [h])[:, 0]
    pts = points_explanation(model, grouped, expl.data, risk, h)
    return contributions(grouped, i, previous, model.spec_.categorical, top,
                         scan_changes(history, model.spec_), pts)
