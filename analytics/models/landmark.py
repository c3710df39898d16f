"""Landmark datasets: history features at a time ``s`` and stacked landmark rows.

A landmark "supermodel" (van Houwelingen 2007) predicts, at any time ``s``,
``P(event in (s, s + H] | event-free at s, history up to s)``. Training rows are stacked
over landmark times on a grid; each row holds the history features at ``s`` and the
outcome measured from ``s``, administratively censored at ``s + H_max``. The landmark
time enters as covariates ``landmark_years`` and ``landmark_years_sq`` (a smooth baseline
in ``s``), so one model serves every ``s`` inside the trained landmark range.

History features of a feature ``f`` at ``s`` use only visits with ``time <= s``:

- ``f``: last observed value (LOCF);
- ``f_slope``: ordinary least-squares slope per year over every measurement so far;
  0 with fewer than two measurements (no change observed yet; ``n_visits`` tells the
  model how much history there is);
- ``f_worst``: the worst value so far: the minimum when low is worse (the
  direction of :mod:`analytics.vocabulary`), the maximum otherwise;
- ``age_years`` is carried forward as age at ``s`` (last recorded age + elapsed time);
  ``age_years`` and categorical columns get no slope or worst value.

Global history features: ``landmark_years`` (= time since baseline), its square,
``n_visits`` (visits so far) and ``years_since_last_visit``. What is still missing is
imputed later by :class:`analytics.models.estimators.Design` (training medians plus
missing indicators, stored with the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics.cohort_types import CENSORED, VISIT_KEYS, CohortTable
from analytics.errors import ModelError
from analytics.vocabulary import (  # re-exported: other stages import them from here
    LANDMARK,
    LANDMARK_SQ,
    LOW_IS_WORSE,
    FeatureInfo,
    applies_to_modality,
    describe_column,
    feature_info,
)

__all__ = [
    "DEFAULT_COMPETING", "GLOBAL_FEATURES", "LANDMARK", "LANDMARK_SQ", "LOW_IS_WORSE",
    "STATIC_FEATURES", "EventSpec", "FeatureInfo", "FeatureSpec", "LandmarkData",
    "LandmarkSettings", "applies_to_modality", "build_landmark_data", "describe_column",
    "feature_info", "feature_spec", "history_features", "landmark_grid", "resolve_events",
]

#: features that do not change along a visit history (no slope / worst value)
STATIC_FEATURES = frozenset({"age_years", "sex"})
#: events treated as competing risks, not as part of the default endpoint
DEFAULT_COMPETING = frozenset({"transplant"})
#: competing causes with fewer events are pooled into one ``other`` cause
MIN_CAUSE_EVENTS = 10

#: history statistics besides the last value: see the module docstring
HISTORY_STATS = ("slope", "worst", "mean_1y", "change")
DEFAULT_STATS = ("slope", "worst")
#: window of the recent mean (years)
RECENT_WINDOW = 1.0

GLOBAL_FEATURES = (LANDMARK, LANDMARK_SQ, "n_visits", "years_since_last_visit")

# --------------------------------------------------------------------------- events
@dataclass(frozen=True)
class EventSpec:
    """The endpoint: events of interest (one combined cause) and competing causes.

    ``competing`` maps a cause name to the cohort event names it pools.
    """

    of_interest: tuple[str, ...]
    competing: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ",".join(self.of_interest)

    @property
    def causes(self) -> list[str]:
        """Cause names: ``"interest"`` first, then the competing causes."""
        return ["interest", *self.competing]

    def cause_of(self, event: str) -> str | None:
        """The cause an observed event belongs to; None for censoring."""
        if event == CENSORED:
            return None
        if event in self.of_interest:
            return "interest"
        for cause, names in self.competing.items():
            if event in names:
                return cause
        return None

    def to_json(self) -> dict[str, Any]:
        return {"of_interest": list(self.of_interest),
                "competing": {k: list(v) for k, v in self.competing.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EventSpec:
        return cls(tuple(d["of_interest"]), {k: tuple(v) for k, v in d["competing"].items()})


def resolve_events(outcomes: pd.DataFrame, requested: str | list[str] | None) -> EventSpec:
    """Decide the endpoint and its competing causes.

    Parameters
    ----------
    outcomes
        The cohort's outcomes (``patient``, ``duration``, ``event``).
    requested
        Event names of interest (``"death,transplant"`` is one combined endpoint), or
        None for the default: every observed non-censored event except ``transplant``,
        with transplant a competing risk (it ends the natural history it would censor).

    Returns
    -------
    EventSpec
        Every other observed event becomes a competing cause; causes with fewer than
        :data:`MIN_CAUSE_EVENTS` events are pooled into ``other``.

    Raises
    ------
    ModelError
        If a requested event never occurs in the cohort, or no event of interest occurs.
    """
    counts = outcomes["event"].astype(str).value_counts()
    observed = sorted(e for e in counts.index if e != CENSORED)
    if isinstance(requested, str):
        requested = [e.strip() for e in requested.split(",") if e.strip()]
    if requested:
        unknown = [e for e in requested if e not in observed]
        if unknown:
            raise ModelError(f"--event {','.join(unknown)}: not an event in the cohort "
                             f"outcomes (observed events: {', '.join(observed) or 'none'})")
        interest = tuple(dict.fromkeys(requested))
    else:
        interest = tuple(e for e in observed if e not in DEFAULT_COMPETING)
        if not interest:
            raise ModelError("outcomes: no event other than transplant/censored; name the "
                             f"endpoint with --event (observed: {', '.join(observed) or 'none'})")
    competing: dict[str, tuple[str, ...]] = {}
    small: list[str] = []
    for e in observed:
        if e in interest:
            continue
        (competing.__setitem__(e, (e,)) if counts[e] >= MIN_CAUSE_EVENTS else small.append(e))
    if small:
        name = "other" if "other" not in competing else "other_pooled"
        competing[name] = tuple(small)
    return EventSpec(of_interest=interest, competing=competing)


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class LandmarkSettings:
    """How landmark rows are stacked.

    Attributes
    ----------
    horizons
        Prediction horizons in years; rows are censored at ``s + max(horizons)``.
    step
        Landmark grid spacing in years (grid starts at 0).
    landmark_max
        Last landmark time; None: the last grid time at which at least
        ``max(min_at_risk, min_at_risk_fraction * n_patients)`` patients are event-free,
        in follow-up and have a visit so far.
    at_visits
        Also landmark at each patient's own visit times (weights frequent visitors more).
    interactions
        Add ``f_x_landmark`` columns (last value x landmark time) for numeric features.
    min_feature_coverage
        A feature measured at least once in fewer than this fraction of the patients with
        an outcome is left out of the model (and named in the model card): its
        coefficient would be learnt from a handful of patients and applied, through the
        imputed median, to everyone else. The sample cohort's CT is such a feature: 12
        of its patients have scans.
    """

    horizons: tuple[float, ...] = (1.0, 2.0, 3.0)
    step: float = 0.5
    landmark_max: float | None = None
    at_visits: bool = False
    interactions: bool = False
    min_at_risk: int = 20
    min_at_risk_fraction: float = 0.2
    stats: tuple[str, ...] = DEFAULT_STATS
    min_feature_coverage: float = 0.2

    @property
    def horizon_max(self) -> float:
        return float(max(self.horizons))


@dataclass
class FeatureSpec:
    """The history columns derived from the cohort's features."""

    numeric: list[str]
    categorical: list[str]
    low_is_worse: dict[str, bool]
    interactions: bool = False
    imaging: list[str] = field(default_factory=list)
    stats: tuple[str, ...] = DEFAULT_STATS
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        cols = list(GLOBAL_FEATURES)
        for f in self.numeric:
            cols.append(f)
            if f not in STATIC_FEATURES:
                cols += [f"{f}_{st}" for st in self.stats]
            if self.interactions:
                cols.append(f"{f}_x_landmark")
        cols += self.categorical
        return cols

    def source_of(self, column: str) -> tuple[str, str]:
        """(base feature, statistic) of a history column."""
        if column in (LANDMARK, LANDMARK_SQ):
            return LANDMARK, "landmark"
        if column in GLOBAL_FEATURES:
            return column, "global"
        for stat in (*HISTORY_STATS, "x_landmark"):
            base = column.removesuffix(f"_{stat}")
            if base != column and base in self.numeric:
                return base, stat
        return column, "last"

    def to_json(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical,
                "low_is_worse": self.low_is_worse, "interactions": self.interactions,
                "imaging": self.imaging, "stats": list(self.stats),
                "excluded": self.excluded}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureSpec:
        return cls(numeric=list(d["numeric"]), categorical=list(d["categorical"]),
                   low_is_worse={k: bool(v) for k, v in d["low_is_worse"].items()},
                   interactions=bool(d.get("interactions", False)),
                   imaging=list(d.get("imaging", [])),
                   stats=tuple(d.get("stats", DEFAULT_STATS)),
                   excluded=dict(d.get("excluded", {})))


def feature_spec(cohort: CohortTable, interactions: bool = False,
                 stats: tuple[str, ...] = DEFAULT_STATS,
                 min_coverage: float = 0.0) -> FeatureSpec:
    """Split the cohort's feature columns into numeric and categorical history inputs.

    A column measured in fewer than ``min_coverage`` of the patients with an outcome is
    left out, with the reason in ``excluded``.
    """
    numeric, categorical, imaging = [], [], []
    excluded: dict[str, str] = {}
    with_outcome = cohort.visits["patient"].isin(cohort.outcomes["patient"])
    n_pat = int(cohort.outcomes["patient"].nunique())
    for col in cohort.feature_columns:
        meta = cohort.feature_meta.get(col, {})
        s = cohort.visits[col]
        if min_coverage > 0 and n_pat:
            n_with = int(cohort.visits.loc[with_outcome & s.notna(), "patient"].nunique())
            if n_with < min_coverage * n_pat:
                excluded[col] = (f"measured in {n_with} of {n_pat} patients "
                                 f"(< {min_coverage:.0%})")
                continue
        is_cat = bool(meta.get("categorical")) or not (
            pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))
        if is_cat and not meta.get("categorical", False):
            # object columns that are all numbers are numeric
            coerced = pd.to_numeric(s, errors="coerce")
            is_cat = bool((coerced.isna() & s.notna()).any())
        (categorical if is_cat else numeric).append(col)
        if meta.get("kind") == "imaging":
            imaging.append(col)
    if not numeric and not categorical:
        left = f"; left out as too rarely measured: {', '.join(excluded)}" if excluded else ""
        raise ModelError("cohort: no feature columns besides identifiers "
                         f"({', '.join(VISIT_KEYS)}){left}; nothing to model")
    return FeatureSpec(numeric=numeric, categorical=categorical,
                       low_is_worse={f: feature_info(f).low_is_worse for f in numeric},
                       interactions=interactions, imaging=imaging, stats=tuple(stats),
                       excluded=excluded)


# --------------------------------------------------------------------------- history
_KEY_SCALE = 1.0e4  # patient code * scale + time: years stay far below the scale


@dataclass(frozen=True)
class _HistoryIndex:
    """Finds, for each requested ``(patient, landmark)``, the last visit at or before it.

    Visits are keyed ``patient code * _KEY_SCALE + time`` in one sorted array, so one
    ``searchsorted`` answers every request at once.
    """

    vcode: np.ndarray
    acode: np.ndarray
    vt: np.ndarray
    q: np.ndarray

    @classmethod
    def build(cls, v: pd.DataFrame, at: pd.DataFrame) -> _HistoryIndex:
        codes, _uniques = pd.factorize(pd.concat([v["patient"], at["patient"]],
                                                 ignore_index=True))
        vcode = codes[: len(v)].astype(np.float64)
        acode = codes[len(v):].astype(np.float64)
        s = at["landmark"].to_numpy(np.float64)
        return cls(vcode, acode, v["time"].to_numpy(np.float64), acode * _KEY_SCALE + s + 1e-9)

    def locate(self, mask: np.ndarray, qq: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Index (into the ``mask``-selected visits) of the last one at or before each
        request (``qq``: other query keys), and whether it is the patient's own."""
        qq = self.q if qq is None else qq
        keys = self.vcode[mask] * _KEY_SCALE + self.vt[mask]
        idx = np.searchsorted(keys, qq, side="right") - 1
        ok = idx >= 0
        ok[ok] = self.vcode[mask][idx[ok]] == self.acode[ok]
        return idx, ok


def history_features(visits: pd.DataFrame, at: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """History features of each ``(patient, landmark)`` from visits up to the landmark.

    Parameters
    ----------
    visits
        Cohort visits (``patient``, ``time`` in years, feature columns).
    at
        Rows ``patient``, ``landmark`` (years since baseline). Order is kept.
    spec
        Which columns to build.

    Returns
    -------
    pandas.DataFrame
        One row per row of ``at`` (same index): ``patient``, ``landmark`` and
        :attr:`FeatureSpec.columns`, plus ``last_visit_time``, ``modality`` and
        ``contrast_phase`` of the last imaging visit so far (None if none).
        Only visits with ``time <= landmark`` are read.
    """
    v = visits.sort_values(["patient", "time"], kind="stable")
    index = _HistoryIndex.build(v, at)
    s = at["landmark"].to_numpy(np.float64)
    out, last_t = _global_history(v, index, s)
    for f in spec.numeric:
        out.update(_numeric_history(v, f, index, s, spec))
    for f in spec.categorical:
        col = v[f]
        mask = col.notna().to_numpy()
        idx, ok = index.locate(mask)
        vals = col[mask].astype(str).to_numpy()
        last = np.full(len(at), None, dtype=object)
        last[ok] = vals[idx[ok]]
        out[f] = last
    modality, phase = _imaging_source(v, index, len(at))
    res = pd.DataFrame(out, index=at.index)
    res = res[spec.columns]
    res.insert(0, "landmark", s)
    res.insert(0, "patient", at["patient"].to_numpy())
    res["last_visit_time"] = last_t
    res["modality"] = modality
    res["contrast_phase"] = phase
    return res


def _global_history(v: pd.DataFrame, index: _HistoryIndex, s: np.ndarray
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The global history columns and the time of the last visit so far."""
    all_idx, has_visit = index.locate(np.ones(len(v), bool))
    n_so_far = np.zeros(len(s))
    if len(v):
        first_pos = v.groupby("patient", sort=False).cumcount().to_numpy()
        n_so_far[has_visit] = first_pos[all_idx[has_visit]] + 1
    last_t = np.full(len(s), np.nan)
    last_t[has_visit] = index.vt[all_idx[has_visit]]
    out = {LANDMARK: s, LANDMARK_SQ: s**2, "n_visits": n_so_far,
           "years_since_last_visit": s - last_t}
    return out, last_t


def _numeric_history(v: pd.DataFrame, f: str, index: _HistoryIndex, s: np.ndarray,
                     spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Last value, history statistics and interaction of one numeric feature."""
    vals = pd.to_numeric(v[f], errors="coerce").to_numpy(np.float64)
    mask = ~np.isnan(vals)
    idx, ok = index.locate(mask)
    fv, ft, fc = vals[mask], index.vt[mask], pd.Series(index.vcode)[mask]
    last = np.full(len(s), np.nan)
    last[ok] = fv[idx[ok]]
    if f == "age_years":
        last[ok] += s[ok] - ft[idx[ok]]  # age at the landmark, not at the last record
    out = {f: last}
    if f not in STATIC_FEATURES:
        stats = _history_stats(f, fv, ft, fc.to_numpy(), idx, ok, index, mask, last, spec)
        for st in spec.stats:
            out[f"{f}_{st}"] = stats[st]
    if spec.interactions:
        out[f"{f}_x_landmark"] = last * s
    return out


def _history_stats(f: str, fv: np.ndarray, ft: np.ndarray, grp: np.ndarray, idx: np.ndarray,
                   ok: np.ndarray, index: _HistoryIndex, mask: np.ndarray, last: np.ndarray,
                   spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Slope, worst value, recent mean and change since the first value (module docstring)."""
    n_at = len(ok)
    df = pd.DataFrame({"g": grp, "t": ft, "v": fv, "tt": ft * ft, "tv": ft * fv, "one": 1.0})
    cs = df.groupby("g", sort=False)[["t", "v", "tt", "tv", "one"]].cumsum().to_numpy()
    worst_fn = "cummin" if spec.low_is_worse.get(f, False) else "cummax"
    worst_all = getattr(df.groupby("g", sort=False)["v"], worst_fn)().to_numpy()
    slope = np.zeros(n_at)
    worst = np.full(n_at, np.nan)
    if ok.any():
        st, sv, stt, stv, n = cs[idx[ok]].T
        den = n * stt - st * st
        with np.errstate(invalid="ignore", divide="ignore"):
            b = np.where((n >= 2) & (den > 1e-12 * np.maximum(n * n, 1)),
                         (n * stv - st * sv) / den, 0.0)
        slope[ok] = b
        worst[ok] = worst_all[idx[ok]]
    stats = {"slope": slope, "worst": worst}
    if "mean_1y" in spec.stats:
        # values in (s - window, s]: cumulative sums at s minus those at s - window
        idx0, ok0 = index.locate(mask, index.q - RECENT_WINDOW)
        mean = np.full(n_at, np.nan)
        if ok.any():
            sv1, n1 = cs[idx[ok], 1], cs[idx[ok], 4]
            sub = ok0[ok]
            sv0 = np.where(sub, cs[np.where(sub, idx0[ok], 0), 1], 0.0)
            n0 = np.where(sub, cs[np.where(sub, idx0[ok], 0), 4], 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean[ok] = np.where(n1 > n0, (sv1 - sv0) / (n1 - n0), last[ok])
        stats["mean_1y"] = mean
    if "change" in spec.stats:
        first_of = df.groupby("g", sort=False)["v"].transform("first").to_numpy()
        change = np.zeros(n_at)
        change[ok] = fv[idx[ok]] - first_of[idx[ok]]
        stats["change"] = change
    return stats


def _imaging_source(v: pd.DataFrame, index: _HistoryIndex, n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The modality / contrast phase that produced the imaging values carried forward."""
    modality = np.full(n, None, dtype=object)
    phase = np.full(n, None, dtype=object)
    if "modality" in v.columns:
        img = v["modality"].notna().to_numpy()
        if img.any():
            idx, ok = index.locate(img)
            modality[ok] = v["modality"].to_numpy()[img][idx[ok]]
            if "contrast_phase" in v.columns:
                phase[ok] = v["contrast_phase"].to_numpy()[img][idx[ok]]
    return modality, phase


# --------------------------------------------------------------------------- stacking
@dataclass
class LandmarkData:
    """Stacked landmark rows and how they were made.

    ``rows`` holds ``patient``, ``landmark``, ``duration`` (years from the landmark,
    censored at ``H_max``), ``event`` (observed event name within the window, else
    ``"censored"``), ``cause`` (``"interest"``, a competing cause name or None) and the
    history features.
    """

    rows: pd.DataFrame
    spec: FeatureSpec
    events: EventSpec
    settings: LandmarkSettings
    landmarks: list[float]

    @property
    def feature_columns(self) -> list[str]:
        return self.spec.columns

    def cause_indicator(self, cause: str) -> np.ndarray:
        """Event indicator for one cause (other causes count as censored)."""
        return (self.rows["cause"] == cause).to_numpy()


def landmark_grid(cohort: CohortTable, settings: LandmarkSettings) -> list[float]:
    """Landmark times: ``0, step, 2 step, ...`` up to ``settings.landmark_max``.

    Raises
    ------
    ModelError
        If not even the first landmark has enough patients at risk.
    """
    out = cohort.outcomes.set_index("patient")["duration"]
    first_visit = cohort.visits.groupby("patient")["time"].min()
    first_visit = first_visit.reindex(out.index)
    n = len(out)
    need = max(settings.min_at_risk, int(np.ceil(settings.min_at_risk_fraction * n)))
    if settings.landmark_max is not None:
        top = float(settings.landmark_max)
    else:
        top = float(np.nanmax(out.to_numpy())) if n else 0.0
    grid: list[float] = []
    k = 0
    while k * settings.step <= top + 1e-9:
        s = round(k * settings.step, 10)
        at_risk = int(((out > s) & (first_visit <= s + 1e-9)).sum())
        if settings.landmark_max is None and at_risk < need:
            break
        grid.append(s)
        k += 1
    if not grid:
        raise ModelError(f"cohort: fewer than {need} patients event-free with a visit at "
                         "landmark 0; not enough data for a landmark model",
                         hint="import more patients or lower min_at_risk")
    return grid


def build_landmark_data(cohort: CohortTable, events: EventSpec,
                        settings: LandmarkSettings | None = None,
                        spec: FeatureSpec | None = None) -> LandmarkData:
    """Stack landmark rows for training and validation.

    A patient contributes a row at landmark ``s`` when event-free and in follow-up at
    ``s`` (``duration > s``) and with at least one visit at or before ``s``.

    Raises
    ------
    ModelError
        If no landmark row can be built or no event of interest falls in any window.
    """
    settings = settings or LandmarkSettings()
    spec = spec or feature_spec(cohort, settings.interactions, settings.stats,
                                settings.min_feature_coverage)
    grid = landmark_grid(cohort, settings)
    outc = cohort.outcomes.set_index("patient")
    first_visit = cohort.visits.groupby("patient")["time"].min()
    pats = outc.index.to_numpy()
    dur = outc["duration"].to_numpy(np.float64)
    fv = first_visit.reindex(outc.index).to_numpy(np.float64)
    parts = []
    for s in grid:
        keep = (dur > s) & (fv <= s + 1e-9)
        parts.append(pd.DataFrame({"patient": pats[keep], "landmark": s}))
    if settings.at_visits:
        vis = cohort.visits[["patient", "time"]].drop_duplicates()
        vis = vis[vis["time"] <= grid[-1] + 1e-9]
        d = outc["duration"].reindex(vis["patient"]).to_numpy()
        vis = vis[d > vis["time"].to_numpy()]
        parts.append(pd.DataFrame({"patient": vis["patient"].to_numpy(),
                                   "landmark": vis["time"].to_numpy(np.float64)}))
    at = pd.concat(parts, ignore_index=True).drop_duplicates(["patient", "landmark"])
    at = at.sort_values(["patient", "landmark"], kind="stable").reset_index(drop=True)
    if at.empty:
        raise ModelError("cohort: no patient is event-free with a visit at any landmark")
    rows = history_features(cohort.visits, at, spec)
    h_max = settings.horizon_max
    d = outc["duration"].reindex(at["patient"]).to_numpy(np.float64) - at["landmark"].to_numpy()
    ev = outc["event"].astype(str).reindex(at["patient"]).to_numpy()
    within = d <= h_max
    rows["duration"] = np.minimum(d, h_max)
    rows["event"] = np.where(within, ev, CENSORED)
    rows["cause"] = [events.cause_of(e) if w else None for e, w in zip(ev, within, strict=True)]
    if not (rows["cause"] == "interest").any():
        raise ModelError(f"cohort: no '{events.label}' event within {h_max:g} years of any "
                         "landmark; nothing to learn")
    return LandmarkData(rows=rows, spec=spec, events=events, settings=settings,
                        landmarks=grid)
