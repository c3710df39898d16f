"""The one writer of "why this score" and "what changed" text.

Every sentence the patient page, the MDT view, the PDF report and ``hepatrack predict``
show about a score is written here, from the explanation's numbers. Contributions are in
percentage points of the risk at the horizon (``"+3.1 points"``,
:mod:`analytics.explain.points`), or on the model's log relative hazard when asked for;
a feature's contribution is that of its value at the visit against the base risk (not of
its change), so the sentence names the value, with the previous one beside it, and the
contribution with its own sign:
``"Platelets 123 ×10⁹/L (180 at the previous visit): +3.1 points"``.

- :func:`contribution_sentence`: one clinical feature's share of a score, with the
  patient's value, its unit and its change since the previous visit or scan;
- :func:`why_text`: the largest of those joined into one line (``"Why: …; …."``);
- :func:`risk_sentence`: the risk at a visit with its interval;
- :func:`change_sentence`: how much the risk moved since the reference scan or visit;
- :func:`value_text`: a value with its unit (``"3.1 g/dL"``, ``"not measured"``);
- :func:`change_text`: a change with its unit and what it is since
  (``"+120 mL since the previous scan"``);
- :func:`amount_text`: a contribution on its scale (``"+3.1 points"``,
  ``"+0.18 log hazard"``);
- :func:`imaging_text`: the imaging biomarkers behind a score, each with its value, its
  change since the previous scan and its contribution
  (``"Imaging: Spleen volume 410 mL (+120 mL since the previous scan): +1.8 points."``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["FOLLOW_UP", "PREVIOUS_IMPORTED", "PREVIOUS_SCAN", "PREVIOUS_VISIT", "amount_text", "change_sentence",
           "change_text", "contribution_sentence", "imaging_text", "number_text",
           "points_text", "risk_name", "risk_sentence", "value_text", "why_text"]

#: what a change is measured since: labs and scores, imaging biomarkers
PREVIOUS_VISIT = "previous visit"
PREVIOUS_SCAN = "previous scan"
#: an imaging biomarker of a patient with no stored scan so far: its values came with the
#: visits file, so they are named as imported measurements, never as scans
PREVIOUS_IMPORTED = "previous imported measurement"
#: what the first imported value of an imaging biomarker is called
IMPORTED = "imported measurement"
#: the group of the landmark history's bookkeeping columns (time since baseline, visits)
FOLLOW_UP = "follow_up"
#: contributions smaller than this many points are written as "0.0 points"
ZERO_POINTS = 0.005


def number_text(x: float) -> str:
    """Three significant figures, or whole numbers with thousands separators from 1000."""
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def value_text(value: float | str | None, unit: str) -> str:
    """``"3.1 g/dL"``, ``"123 ×10⁹/L"``, a category as it is, or ``"not measured"``."""
    if value is None:
        return "not measured"
    if isinstance(value, str):
        return value
    return f"{number_text(value)} {unit}".strip()


def change_text(change: float, unit: str, since: str = PREVIOUS_VISIT) -> str:
    """``"+120 mL since the previous scan"``."""
    u = f" {unit}" if unit else ""
    sign = "+" if change > 0 else "-"
    return f"{sign}{number_text(abs(change))}{u} since the {since}"


def risk_name(horizon: float | None) -> str:
    """``"2-year risk"`` (``"risk"`` without a horizon)."""
    return f"{horizon:g}-year risk" if horizon is not None else "risk"


def points_text(points: float) -> str:
    """``"+3.1 points"``; ``"+0.04 points"`` below a tenth; ``"0.0 points"`` below
    :data:`ZERO_POINTS`."""
    if not math.isfinite(points) or abs(points) < ZERO_POINTS:
        return "0.0 points"
    return f"{points:+.1f} points" if abs(points) >= 0.095 else f"{points:+.2f} points"


def amount_text(amount: float, scale: str = "points") -> str:
    """A contribution on its scale: ``"+3.1 points"`` (``points``), ``"+0.18 log hazard"``
    (``log_hazard``); a ``risk``-scale fraction is written in points."""
    if scale == "log_hazard":
        return f"{amount:+.2f} log hazard"
    return points_text(100.0 * amount if scale == "risk" else amount)


def _with_previous(label: str, value: float, change: float, unit: str, since: str) -> str:
    """``"Platelets 123 ×10⁹/L (180 at the previous visit)"``: the value the contribution
    belongs to, the previous one beside it (a sentence "fell from 180 to 123: +3.1 points"
    would give the change a contribution that is the value's)."""
    u = f" {unit}" if unit else ""
    before, now = number_text(value - change), number_text(value)
    if before == now:  # a change below the shown precision: say it with its sign
        return f"{label} {now}{u} ({change_text(change, unit, since)})"
    return f"{label} {now}{u} ({before} at the {since})"


def contribution_sentence(label: str, unit: str, value: object, change: float | None,
                          amount: float, feature: str, since: str = PREVIOUS_VISIT,
                          scale: str = "points") -> str:
    """One feature's share of a score in the clinic's words.

    ``amount`` is the contribution of the value at the visit against the base risk, so
    the sentence leads with that value; the previous value is told beside it, not as a
    change the amount would belong to. The contribution keeps its own sign: a low value
    can add risk.

    Parameters
    ----------
    label, unit
        The feature's display label and unit (empty when it has none).
    value
        The patient's value at the visit (number or category), None if never measured;
        for :data:`FOLLOW_UP` the follow-up in words.
    change
        Value minus the value at the previous visit (or scan), None when there is none.
    amount
        The feature's contribution on ``scale``.
    feature
        The feature's name.
    since
        What ``change`` is measured since (:data:`PREVIOUS_SCAN` for imaging
        biomarkers, whose change is between the last two scans).
    scale
        ``points`` (percentage points of the risk), ``log_hazard`` or ``risk``.

    Examples
    --------
    ``"Platelets 123 ×10⁹/L (180 at the previous visit): +3.1 points"``,
    ``"Albumin not measured yet: -0.40 points"``,
    ``"Follow-up (2.5 years since baseline, 6 visits): +1.2 points"``.
    """
    u = f" {unit}" if unit else ""
    if feature == FOLLOW_UP:
        head = f"{label} ({value})" if value is not None else label
    elif value is None:
        head = f"{label} not measured yet"
    elif isinstance(value, str):
        head = f"{label} {value}"
    elif change is None and since == PREVIOUS_IMPORTED:
        head = f"{label} {number_text(float(value))}{u} ({IMPORTED})"
    elif change is not None and change == 0:
        head = f"{label} {number_text(float(value))}{u} (unchanged since the {since})"
    elif change is not None:
        head = _with_previous(label, float(value), float(change), unit, since)
    else:
        head = f"{label} {number_text(float(value))}{u}"
    return f"{head}: {amount_text(amount, scale)}"


def imaging_text(items: Sequence[tuple[str, str, float | None, float | None, float]],
                 scale: str = "points", since: str = PREVIOUS_SCAN) -> str:
    """``"Imaging: Spleen volume 410 mL (+120 mL since the previous scan): +1.8 points."``

    Parameters
    ----------
    items
        ``(label, unit, value, change since the previous scan, contribution)`` of each
        measured imaging biomarker, in the order to show; empty gives ``""``.
    scale
        Scale of the contributions (:func:`amount_text`).
    since
        :data:`PREVIOUS_SCAN`, or :data:`PREVIOUS_IMPORTED` for a patient without a
        stored scan: ``"Imaging (imported measurements): Spleen volume 1,019 mL (+241 mL
        since the previous imported measurement): +19.0 points."``
    """
    parts = []
    for label, unit, value, change, amount in items:
        head = f"{label} {value_text(value, unit)}"
        if change is not None and abs(change) > 0:
            head += f" ({change_text(change, unit, since)})"
        parts.append(f"{head}: {amount_text(amount, scale)}")
    title = "Imaging (imported measurements): " if since == PREVIOUS_IMPORTED else "Imaging: "
    return title + "; ".join(parts) + "." if parts else ""


def why_text(sentences: Sequence[str]) -> str:
    """``"Why: a; b."`` (empty without sentences)."""
    return "Why: " + "; ".join(sentences) + "." if sentences else ""


def _pct(x: float | None) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def risk_sentence(event_text: str, horizon: float, time: float, risk: float,
                  ci: tuple[float, float] | None = None) -> str:
    """``"Risk of decompensation within 3 y at the visit at 2.0 y: 12.3% (95% CI …)."``

    Parameters
    ----------
    event_text
        The endpoint in words (``"death or decompensation"``).
    horizon, time
        Years: the horizon and the visit (since baseline).
    risk, ci
        The risk and its 95% interval (fractions); no interval when None or not finite.
    """
    band = (f" (95% CI {_pct(ci[0])}-{_pct(ci[1])})"
            if ci is not None and np.isfinite(ci[0]) else "")
    return (f"Risk of {event_text} within {horizon:g} y at the visit at {time:.1f} y: "
            f"{_pct(risk)}{band}.")


def change_sentence(reference_kind: str | None, reference_time: float | None,
                    risk_change: float | None) -> str | None:
    """``"Since the scan at 1.0 y: risk +3.4 percentage points"``; None with nothing to
    compare with."""
    if reference_kind is None or reference_time is None or risk_change is None:
        return None
    return (f"Since the {reference_kind} at {reference_time:.1f} y: risk "
            f"{risk_change * 100:+.1f} percentage points")
