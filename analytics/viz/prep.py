"""Data preparation shared by the plotly builders (pages) and the matplotlib renderers
(MDT PDF), so both draw exactly the same numbers.

Each function takes the engine's data (``analytics.explain``, ``analytics.usecases.overview``)
and returns plain arrays and labels; no figure objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics import vocabulary
from analytics.viz.palette import OKABE_ITO

if TYPE_CHECKING:
    from analytics.explain import Trajectory

#: colours and dashes of risk groups (colour and line style both differ)
GROUP_STYLE: dict[str, tuple[str, str]] = {
    "Low": (OKABE_ITO["bluish_green"], "solid"),
    "Intermediate": (OKABE_ITO["orange"], "dash"),
    "High": (OKABE_ITO["vermillion"], "dot"),
}
RAISES = OKABE_ITO["vermillion"]
LOWERS = OKABE_ITO["blue"]
RISK_LINE = OKABE_ITO["blue"]
RISK_BAND = "rgba(86, 180, 233, 0.28)"  # Okabe-Ito sky blue, translucent


def event_text(event: str) -> str:
    """``"death,decompensation"`` -> ``"death or decompensation"``, ``"hcc"`` -> ``"HCC"``
    (:func:`analytics.vocabulary.event_words`)."""
    return vocabulary.event_words(event)


def risk_axis_title(event: str, horizon: float) -> str:
    return f"Risk of {event_text(event)} within {horizon:g} y (%)"


@dataclass
class TrajectoryData:
    """Arrays of a risk trajectory, risks in percent.

    ``segments`` are runs of consecutive assessable visits (the line and band break at an
    unassessable visit instead of bridging it).
    """

    time: np.ndarray
    risk_pct: np.ndarray
    low_pct: np.ndarray
    high_pct: np.ndarray
    is_scan: np.ndarray
    assessable: np.ndarray
    reason: list[str | None]
    date: list[str | None]
    segments: list[np.ndarray] = field(default_factory=list)
    outcome_event: str | None = None
    outcome_time: float | None = None
    selected_time: float | None = None
    y_max: float = 10.0

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.low_pct).any())


def trajectory_data(trajectory: Trajectory, *, outcome_event: str | None = None,
                    outcome_time: float | None = None,
                    selected_time: float | None = None) -> TrajectoryData:
    """Trajectory arrays from :attr:`analytics.explain.Trajectory.points`."""
    points = trajectory.points
    ok = points["assessable"].to_numpy(bool)
    risk = points["risk"].to_numpy(float) * 100
    lo = points["ci_low"].to_numpy(float) * 100
    hi = points["ci_high"].to_numpy(float) * 100
    segments: list[np.ndarray] = []
    run: list[int] = []
    for i, flag in enumerate(ok):
        if flag:
            run.append(i)
        elif run:
            segments.append(np.array(run))
            run = []
    if run:
        segments.append(np.array(run))
    top = np.nanmax(np.concatenate([risk[ok], hi[ok][np.isfinite(hi[ok])]])) \
        if ok.any() else 0.0
    return TrajectoryData(
        time=points["time"].to_numpy(float), risk_pct=risk, low_pct=lo, high_pct=hi,
        is_scan=points["is_scan"].to_numpy(bool), assessable=ok,
        reason=[r if isinstance(r, str) else None for r in points["reason"]],
        date=[d if isinstance(d, str) else None for d in points["date"]],
        segments=segments, outcome_event=outcome_event, outcome_time=outcome_time,
        selected_time=selected_time, y_max=float(max(10.0, min(100.0, top * 1.15))))


def outcome_label(event: str | None, time: float | None) -> str | None:
    if event is None or time is None:
        return None
    return f"{vocabulary.event_label(event)} at {time:.1f} y"


def step_colours(shap: np.ndarray) -> list[str]:
    """Raising steps vermillion, lowering steps blue (the sign also shows as +/-)."""
    return [RAISES if v > 0 else LOWERS for v in np.asarray(shap, float)]


def signed(v: float, digits: int = 2) -> str:
    return f"{v:+.{digits}f}"


def scale_text(scale: str, horizon: float | None = None) -> str:
    """Axis title for a contribution scale: ``"percentage points of the 3-year risk"``,
    ``"log relative hazard"``, ``"risk (fraction)"``."""
    if scale == "points":
        return ("percentage points of the risk" if horizon is None
                else f"percentage points of the {horizon:g}-year risk")
    return {"log_hazard": "log relative hazard", "risk": "risk (fraction)"}.get(scale, scale)


def level_text(value: float, scale: str) -> str:
    """A waterfall's base or total: ``"12.3%"`` on the points scale (a risk in percent),
    else ``"0.35"``."""
    return f"{value:.1f}%" if scale == "points" else f"{value:.2f}"


def step_text(value: float, scale: str) -> str:
    """A waterfall step or change: ``"+3.1"`` points (``"+0.04"`` below a tenth), else
    two decimals."""
    if scale == "points" and abs(value) >= 0.095:
        return signed(value, 1)
    return signed(value)


#: lab columns of the cohort CSV format shown in biomarker tables, in clinical order
TABLE_LABS = ("bilirubin_mg_dl", "albumin_g_dl", "inr", "platelets_10e9_l",
              "creatinine_mg_dl", "sodium_mmol_l", "ast_u_l", "alt_u_l", "alp_u_l")
SUMMARY_COLUMNS = ("name", "label", "unit", "kind", "latest", "latest_time", "previous",
                   "change", "normal_low", "normal_high", "flag")


def normal_range(name: str) -> tuple[float | None, float | None] | None:
    """The vocabulary's published normal range of ``name`` (None if it has none)."""
    return vocabulary.normal_range(name)


def _flag(value: float, rng: tuple[float | None, float | None] | None) -> str:
    if rng is None or not np.isfinite(value):
        return ""
    lo, hi = rng
    if lo is not None and value < lo:
        return "below normal"
    if hi is not None and value > hi:
        return "above normal"
    return "within normal"


def biomarker_summary(biomarkers: pd.DataFrame, visits: pd.DataFrame, *,
                      imaging: tuple[str, ...] | list[str] | None = None,
                      labs: tuple[str, ...] | list[str] = TABLE_LABS) -> pd.DataFrame:
    """Latest and previous value of each imaging biomarker and lab, with normal ranges.

    Parameters
    ----------
    biomarkers
        ``PatientDetail.biomarkers`` (long: ``time_years``, ``name``, ``value``, ``unit``).
    visits
        ``PatientDetail.visits`` (``time_years`` and one column per lab).
    imaging
        Imaging biomarkers to list, in order; default the core biomarkers present.
    labs
        Lab columns to list, in order, when present.

    Returns
    -------
    pandas.DataFrame
        :data:`SUMMARY_COLUMNS`: ``kind`` is ``imaging`` or ``lab``; ``change`` is latest
        minus previous (NaN with one value); ``normal_low``/``normal_high`` from the
        feature registry (NaN where it quotes none); ``flag`` ``below normal``,
        ``above normal``, ``within normal`` or empty (no range).
    """
    rows = []
    names = list(imaging) if imaging is not None else [
        n for n in vocabulary.CORE_FEATURES if not biomarkers.empty and (biomarkers["name"] == n).any()]
    for n in names:
        part = biomarkers[(biomarkers["name"] == n) & biomarkers["value"].notna()] \
            if not biomarkers.empty else biomarkers
        if part.empty:
            continue
        part = part.sort_values("time_years", kind="stable", na_position="first")
        unit = part["unit"].dropna().iloc[-1] if part["unit"].notna().any() else None
        rows.append(("imaging", n, part["value"].to_numpy(float),
                     part["time_years"].to_numpy(float), unit))
    for n in labs:
        if visits.empty or n not in visits.columns:
            continue
        vals = pd.to_numeric(visits[n], errors="coerce")
        ok = vals.notna().to_numpy()
        if not ok.any():
            continue
        order = np.argsort(visits["time_years"].to_numpy(float)[ok], kind="stable")
        rows.append(("lab", n, vals.to_numpy(float)[ok][order],
                     visits["time_years"].to_numpy(float)[ok][order], None))
    out = []
    for kind, n, values, times, unit in rows:
        rng = normal_range(n) if kind == "imaging" else None
        latest = float(values[-1])
        previous = float(values[-2]) if len(values) > 1 else np.nan
        shown_unit = vocabulary.shown_unit(n, unit)
        out.append({"name": n, "label": vocabulary.label_with_unit(n, unit), "unit":
                    "" if shown_unit in (None, "1", "code") else shown_unit, "kind": kind,
                    "latest": latest, "latest_time": float(times[-1]), "previous": previous,
                    "change": latest - previous if np.isfinite(previous) else np.nan,
                    "normal_low": rng[0] if rng and rng[0] is not None else np.nan,
                    "normal_high": rng[1] if rng and rng[1] is not None else np.nan,
                    "flag": _flag(latest, rng)})
    return pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))


def range_text(low: float, high: float, unit: str = "") -> str:
    """``"≥ 40 HU"``, ``"≤ 314 mL"``, ``"1-2 "`` or an em dash when no range is quoted."""
    u = f" {unit}" if unit else ""
    lo_ok, hi_ok = np.isfinite(low), np.isfinite(high)
    if lo_ok and hi_ok:
        return f"{low:g}-{high:g}{u}"
    if lo_ok:
        return f"≥ {low:g}{u}"
    if hi_ok:
        return f"≤ {high:g}{u}"
    return "—"
