"""One visit's explanation laid out for a chart: the waterfall and the change since a scan.

Both read a visit's grouped contributions (:class:`Contribution`) on one scale:
``points`` (percentage points of the risk at the horizon, from the base risk to the
shown risk; :mod:`analytics.explain.points`) or the model's own scale (``log_hazard``
for Cox, GBM and RSF; ``risk`` for the model-agnostic sampling explainer). The figure builders of :mod:`analytics.viz` and the
PDF take these types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from analytics.explain.contributions import FOLLOW_UP, Contribution
from analytics.explain.points import POINTS
from analytics.explain.wording import change_sentence, change_text, value_text

__all__ = ["BASE_RISK", "OTHER", "ChangeSinceScan", "Waterfall", "change_rows", "step_label",
           "waterfall_steps"]

#: the change-since-scan row for the base risk's own move (competing-cause hazards)
BASE_RISK = "__base__"
#: the row pooling the smaller groups
OTHER = "__other__"
#: a base-risk move below this many points is not a row of its own
BASE_MOVE_MIN = 1e-9


@dataclass(frozen=True)
class Waterfall:
    """The steps from the base to the score of one visit.

    Attributes
    ----------
    steps
        ``label`` (feature label with the patient's value; an imaging biomarker adds its
        change since the previous scan: ``"Spleen volume = 410 mL (+120 mL since the
        previous scan)"``), ``shap`` (the step on :attr:`scale`), ``start`` and ``end``
        (running total before/after the step), ``kind`` (``base``, ``feature``,
        ``other``, ``output``); the last ``end`` equals :attr:`output`.
    base_value, output
        On the ``points`` scale the base risk and the risk in percent; else the
        explanation's base value and the model output.
    scale
        ``points``, ``log_hazard`` or ``risk``.
    horizon
        Years of the risk the points are of (None when not known).
    """

    steps: pd.DataFrame
    base_value: float
    output: float
    scale: str
    horizon: float | None = None


@dataclass(frozen=True)
class ChangeSinceScan:
    """Which clinical features moved the score of a visit since a reference visit.

    Attributes
    ----------
    changes
        ``feature``, ``label``, ``change`` (on :attr:`scale`, largest magnitude first,
        possibly ending in one ``__other__`` row), and ``text``: the label with the
        patient's value at the visit and, for an imaging biomarker, its change since
        the previous scan (``"Spleen volume = 410 mL (+120 mL since the previous
        scan)"``); empty when there is nothing to compare with. On the ``points`` scale
        a ``__base__`` row carries the move of the base risk itself (the competing
        causes' hazards changed), so the rows add up to the change of the risk.
    reference_time, reference_kind
        The reference visit (years since baseline) and whether it was a ``scan`` or
        any assessable ``visit``; None when there is none.
    output_change, risk_change
        Change of the score on :attr:`scale` (points: of the risk, in percentage
        points; else of the model output) and of the risk (fraction).
    scale
        ``points``, ``log_hazard`` or ``risk``.
    """

    changes: pd.DataFrame
    reference_time: float | None
    reference_kind: str | None
    output_change: float | None
    risk_change: float | None
    scale: str

    @property
    def text(self) -> str | None:
        """``"Since the scan at 1.0 y: risk +3.4 percentage points"``, or None."""
        return change_sentence(self.reference_kind, self.reference_time, self.risk_change)


def step_label(c: Contribution) -> str:
    """``"Albumin = 3.1 g/dL"``; an imaging biomarker adds its change since the previous
    scan: ``"Spleen volume = 410 mL (+120 mL since the previous scan)"``; follow-up:
    ``"Follow-up: 2.5 years since baseline, 6 visits"``."""
    if c.feature == FOLLOW_UP:
        return f"{c.label}: {c.value}" if c.value is not None else c.label
    text = f"{c.label} = {value_text(c.value, c.unit)}"
    if c.imaging and c.change is not None:
        text += f" ({change_text(c.change, c.unit, c.since)})"
    return text


def waterfall_steps(cs: Sequence[Contribution], base: float, output: float, scale: str,
                    top: int, horizon: float | None = None) -> Waterfall:
    """The waterfall of one visit's contributions ``cs`` (largest first) on ``scale``.

    The ``top`` largest groups are listed; the rest are one ``other`` step. The steps
    run from ``base`` by the contributions; the ``output`` row ends at the running
    total, which equals ``output`` to float precision.
    """
    points = scale == POINTS
    rows = [{"label": "Base risk" if points else "Base value", "shap": 0.0, "start": base,
             "end": base, "kind": "base"}]
    total = base
    for c in cs[:top]:
        v = c.amount(scale)
        rows.append({"label": step_label(c), "shap": v, "start": total, "end": total + v,
                     "kind": "feature"})
        total += v
    rest = cs[top:]
    if rest:
        s = float(pd.Series([c.amount(scale) for c in rest], dtype="float64").sum())
        rows.append({"label": f"{len(rest)} other features", "shap": s, "start": total,
                     "end": total + s, "kind": "other"})
        total += s
    rows.append({"label": "Risk" if points else "Model output", "shap": 0.0, "start": total,
                 "end": total, "kind": "output"})
    return Waterfall(pd.DataFrame(rows), base, output, scale, horizon)


def change_rows(now: Sequence[Contribution], before: Sequence[Contribution],
                change_of: Mapping[str, float], top: int,
                base_move: float = 0.0) -> pd.DataFrame:
    """The change of each group's contribution since a reference visit, as chart rows.

    Parameters
    ----------
    now, before
        The contributions at the visit and at the reference (labels and values).
    change_of
        Group -> its change on the chart's scale.
    top
        At most ``top`` rows plus one ``__other__`` row.
    base_move
        The base risk's own change (points: the competing causes' share); above
        :data:`BASE_MOVE_MIN` it becomes a ``__base__`` row, so the rows add up to the
        change of the score.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``label``, ``change``, ``text``; largest magnitude first.
    """
    a = {c.feature: c for c in now}
    b = {c.feature: c for c in before}
    feats = list(dict.fromkeys([*a, *b]))
    ch = pd.DataFrame({
        "feature": feats,
        "label": [(a.get(f) or b[f]).label for f in feats],
        "change": [float(change_of.get(f, 0.0)) for f in feats],
        "text": [step_label(a[f]) if f in a else b[f].label for f in feats]})
    if abs(base_move) > BASE_MOVE_MIN:
        label = "Competing events (base risk)"
        ch = pd.concat([ch, pd.DataFrame([{"feature": BASE_RISK, "label": label,
                                           "change": float(base_move), "text": label}])],
                       ignore_index=True)
    ch = ch.reindex(ch["change"].abs().sort_values(ascending=False, kind="stable").index)
    ch = ch.reset_index(drop=True)
    if len(ch) > top:
        rest = ch.iloc[top:]
        ch = pd.concat([ch.iloc[:top], pd.DataFrame([{
            "feature": OTHER, "label": f"{len(rest)} other features",
            "change": float(rest["change"].sum()),
            "text": f"{len(rest)} other features"}])], ignore_index=True)
    return ch
