"""The one writer of "why this score" and "what changed" text.

Every sentence the patient page, the MDT view, the PDF report and ``hepatrack predict``
show about a score is written here, from the explanation's numbers:

- :func:`contribution_sentence`: one clinical feature's share of a score, with the
  patient's value, its unit and its change since the previous visit
  (``"Platelets 141 10⁹/L (-28 10⁹/L since the previous visit) raised the 3-year risk"``);
- :func:`why_text`: the largest of those joined into one line (``"Why: …; …."``);
- :func:`risk_sentence`: the risk at a visit with its interval;
- :func:`change_sentence`: how much the risk moved since the reference scan or visit;
- :func:`value_text`: a value with its unit (``"3.1 g/dL"``, ``"not measured"``);
- :func:`change_text`: a change with its unit and what it is since
  (``"+120 mL since the previous scan"``);
- :func:`imaging_text`: the imaging biomarkers behind a score, each with its value, its
  change since the previous scan and its contribution
  (``"Imaging: Spleen volume 410 mL (+120 mL since the previous scan): +0.18."``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analytics.vocabulary import LANDMARK

__all__ = ["NEGLIGIBLE_SHAP", "PREVIOUS_SCAN", "PREVIOUS_VISIT", "change_sentence",
           "change_text", "contribution_sentence", "imaging_text", "number_text",
           "risk_name", "risk_sentence", "value_text", "verb", "why_text"]

#: a contribution smaller than this (on its scale) "did not change" the risk
NEGLIGIBLE_SHAP = 1e-3
#: what a change is measured since: labs and scores, imaging biomarkers
PREVIOUS_VISIT = "previous visit"
PREVIOUS_SCAN = "previous scan"


def number_text(x: float) -> str:
    """Three significant figures, or whole numbers with thousands separators from 1000."""
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def value_text(value: float | str | None, unit: str) -> str:
    """``"3.1 g/dL"``, a category as it is, or ``"not measured"``."""
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


def verb(shap: float) -> str:
    """``raised``, ``lowered`` or ``did not change`` (below :data:`NEGLIGIBLE_SHAP`)."""
    return ("did not change" if abs(shap) < NEGLIGIBLE_SHAP
            else "raised" if shap > 0 else "lowered")


def contribution_sentence(label: str, unit: str, value: object, change: float | None,
                          shap: float, horizon: float | None, feature: str,
                          since: str = PREVIOUS_VISIT) -> str:
    """One feature's share of a score in the clinic's words.

    Parameters
    ----------
    label, unit
        The feature's display label and unit (empty when it has none).
    value
        The patient's value at the visit (number or category), None if never measured.
    change
        Value minus the value at the previous visit, None when there is none.
    shap
        The feature's summed contribution (any scale; only its sign and size matter).
    horizon
        Years, named in the text (``"raised the 2-year risk"``).
    feature
        The feature's name (time since baseline gets no "since the previous visit").
    since
        What ``change`` is measured since (:data:`PREVIOUS_SCAN` for imaging
        biomarkers, whose change is between the last two scans).
    """
    u = f" {unit}" if unit else ""
    if value is None:
        head = f"{label} not measured yet"
    elif isinstance(value, str):
        head = f"{label} {value}"
    else:
        head = f"{label} {number_text(float(value))}{u}"
    if change is not None and feature != LANDMARK and abs(change) > 0:
        head += f" ({change_text(change, unit, since)})"
    return f"{head} {verb(shap)} the {risk_name(horizon)}"


def imaging_text(items: Sequence[tuple[str, str, float | None, float | None, float]]) -> str:
    """``"Imaging: Spleen volume 410 mL (+120 mL since the previous scan): +0.18."``

    Parameters
    ----------
    items
        ``(label, unit, value, change since the previous scan, shap)`` of each measured
        imaging biomarker, in the order to show; empty gives ``""``.
    """
    parts = []
    for label, unit, value, change, shap in items:
        head = f"{label} {value_text(value, unit)}"
        if change is not None and abs(change) > 0:
            head += f" ({change_text(change, unit, PREVIOUS_SCAN)})"
        parts.append(f"{head}: {shap:+.2f}")
    return "Imaging: " + "; ".join(parts) + "." if parts else ""


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
