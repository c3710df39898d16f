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
    words = vocabulary.outcome_words(event, time)
    return words[:1].upper() + words[1:]


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
                   "change", "normal_low", "normal_high", "flag", "phase", "compared_with")
UNENHANCED = "unenhanced"
#: what the "previous" of an attenuation value is when no earlier scan shares its phase
NO_SAME_PHASE = "no earlier scan in the same phase"
#: the note shown beside every biomarker table (pages and PDF)
PHASE_NOTE = ("CT attenuation (HU) is compared only with the previous scan of the same "
              "contrast phase; normal ranges and fatty-liver flags apply to unenhanced CT "
              "only.")


def normal_range(name: str) -> tuple[float | None, float | None] | None:
    """The vocabulary's published normal range of ``name`` (None if it has none)."""
    return vocabulary.normal_range(name)


def phase_text(phase: object) -> str:
    """``"portal venous"`` for ``"portal_venous"``; ``"phase unknown"`` for None."""
    return str(phase).replace("_", " ") if isinstance(phase, str) and phase else "phase unknown"


def _flag(value: float, rng: tuple[float | None, float | None] | None) -> str:
    if rng is None or not np.isfinite(value):
        return ""
    lo, hi = rng
    if lo is not None and value < lo:
        return "below normal"
    if hi is not None and value > hi:
        return "above normal"
    return "within normal"


def _threshold_flag(name: str, value: float) -> str:
    """The meaning of the highest published threshold ``value`` reaches (``column.
    thresholds``), e.g. ``"suggests cirrhosis (MRE >= 5 kPa)"``; empty when none."""
    reached = [(t, meaning) for t, meaning in vocabulary.column(name).thresholds
               if np.isfinite(value) and value >= t]
    return max(reached)[1] if reached else ""


@dataclass(frozen=True)
class _Series:
    """One biomarker's values in time order, with the phase of each (imaging only)."""

    kind: str
    name: str
    values: np.ndarray
    times: np.ndarray
    unit: str | None = None
    phases: tuple[object, ...] = ()


def _imaging_series(biomarkers: pd.DataFrame, names: list[str]) -> list[_Series]:
    out = []
    for n in names:
        part = biomarkers[(biomarkers["name"] == n) & biomarkers["value"].notna()] \
            if not biomarkers.empty else biomarkers
        if part.empty:
            continue
        part = part.sort_values("time_years", kind="stable", na_position="first")
        unit = part["unit"].dropna().iloc[-1] if part["unit"].notna().any() else None
        phases = (tuple(part["contrast_phase"]) if "contrast_phase" in part.columns
                  else (None,) * len(part))
        out.append(_Series("imaging", n, part["value"].to_numpy(float),
                           part["time_years"].to_numpy(float), unit, phases))
    return out


def _lab_series(visits: pd.DataFrame, labs: tuple[str, ...] | list[str]) -> list[_Series]:
    out = []
    for n in labs:
        if visits.empty or n not in visits.columns:
            continue
        vals = pd.to_numeric(visits[n], errors="coerce")
        ok = vals.notna().to_numpy()
        if not ok.any():
            continue
        order = np.argsort(visits["time_years"].to_numpy(float)[ok], kind="stable")
        out.append(_Series("lab", n, vals.to_numpy(float)[ok][order],
                           visits["time_years"].to_numpy(float)[ok][order]))
    return out


def _known_phase(phase: object) -> str | None:
    return phase if isinstance(phase, str) and phase else None


def _summary_row(s: _Series) -> dict[str, object]:
    """One row of :func:`biomarker_summary`: an attenuation value is compared with the
    latest earlier value of the same (known) phase and flagged only when unenhanced."""
    latest = float(s.values[-1])
    phase = _known_phase(s.phases[-1]) if s.phases else None
    rng = normal_range(s.name) if s.kind == "imaging" else None
    previous = float(s.values[-2]) if len(s.values) > 1 else np.nan
    compared = ("previous scan" if s.kind == "imaging" else "previous value") \
        if len(s.values) > 1 else ""
    if s.name in vocabulary.PHASE_DEPENDENT:
        same = [k for k in range(len(s.values) - 1)
                if phase is not None and _known_phase(s.phases[k]) == phase]
        previous = float(s.values[same[-1]]) if same else np.nan
        compared = f"previous {phase_text(phase)} scan" if same else NO_SAME_PHASE
        if phase != UNENHANCED:
            rng = None  # published thresholds are for unenhanced CT: no flag after contrast
    shown_unit = vocabulary.shown_unit(s.name, s.unit)
    return {"name": s.name, "label": vocabulary.label_with_unit(s.name, s.unit),
            "unit": "" if shown_unit in (None, "1", "code") else shown_unit, "kind": s.kind,
            "latest": latest, "latest_time": float(s.times[-1]), "previous": previous,
            "change": latest - previous if np.isfinite(previous) else np.nan,
            "normal_low": rng[0] if rng and rng[0] is not None else np.nan,
            "normal_high": rng[1] if rng and rng[1] is not None else np.nan,
            "flag": _threshold_flag(s.name, latest) or _flag(latest, rng),
            "phase": phase_text(phase) if s.kind == "imaging" else "",
            "compared_with": compared}


def biomarker_summary(biomarkers: pd.DataFrame, visits: pd.DataFrame, *,
                      imaging: tuple[str, ...] | list[str] | None = None,
                      labs: tuple[str, ...] | list[str] = TABLE_LABS) -> pd.DataFrame:
    """Latest and previous value of each imaging biomarker and lab, with normal ranges.

    CT attenuation (:data:`analytics.vocabulary.PHASE_DEPENDENT`) depends on the contrast
    phase: its previous value is the latest earlier one of the same known phase (none:
    ``compared_with`` says :data:`NO_SAME_PHASE` and there is no change), and its normal
    range and flag are given on unenhanced scans only.

    Parameters
    ----------
    biomarkers
        ``PatientDetail.biomarkers`` (long: ``time_years``, ``name``, ``value``, ``unit``,
        ``contrast_phase``; without ``contrast_phase`` every phase counts as unknown).
    visits
        ``PatientDetail.visits`` (``time_years`` and one column per lab).
    imaging
        Imaging biomarkers to list, in order; default the core biomarkers present, then
        the quantitative MR map biomarkers present (PDFF, R2*, MRE stiffness).
    labs
        Lab columns to list, in order, when present.

    Returns
    -------
    pandas.DataFrame
        :data:`SUMMARY_COLUMNS`: ``kind`` is ``imaging`` or ``lab``; ``change`` is latest
        minus previous (NaN with one value); ``normal_low``/``normal_high`` from the
        feature registry (NaN where it quotes none or the phase rules it out); ``flag``
        the meaning of a published threshold the latest value reaches (``"suggests
        cirrhosis (MRE >= 5 kPa)"``), else ``below normal``, ``above normal``, ``within
        normal`` or empty (no range);
        ``phase`` the latest scan's contrast phase in words (empty for labs);
        ``compared_with`` what ``previous`` is (``"previous scan"``, ``"previous
        portal venous scan"``, :data:`NO_SAME_PHASE`, ``"previous value"`` or empty).
    """
    names = list(imaging) if imaging is not None else [
        n for n in (*vocabulary.CORE_FEATURES, *vocabulary.MR_MAP_FEATURES)
        if not biomarkers.empty and (biomarkers["name"] == n).any()]
    rows = _imaging_series(biomarkers, names) + _lab_series(visits, labs)
    return pd.DataFrame([_summary_row(s) for s in rows], columns=list(SUMMARY_COLUMNS))


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
