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

Imaging biomarkers (``FeatureSpec.imaging``: scans come every year or two, and only for
part of a cohort) get a scan history instead of the slope and worst value:

- ``f``: the value of the last scan so far (LOCF);
- ``f_measured``: 1 once a scan has measured ``f``, else 0;
- ``f_years_since_scan``: years from that scan to ``s``;
- ``f_scan_change``: last value minus the previous scan's value (0 with one scan).

Which of the last three enter the model is a setting, because each costs a coefficient
learnt only from the scanned patients' events (``LandmarkSettings.imaging_stats``,
``scan_change``): by default every biomarker gets its last value and ``f_measured``, and
only the spleen volume (:data:`DEFAULT_SCAN_CHANGE`, the biomarker whose change between
scans tracks portal hypertension) gets ``f_scan_change``. Models stored before the
setting existed keep all three for every biomarker. ``f_scan_change`` of every imaging
biomarker is still returned beside the model columns, for the explanations' "change since
the previous scan".

Before ``f`` is measured, all of them are missing (``f_measured`` is 0), and the design
(:class:`analytics.models.design.Design`, ``neutral`` columns) turns every one of them
into exactly 0: an unscanned patient's imaging terms add nothing to the linear predictor,
whatever the scanned patients measured. A withheld value (NaN in the store, with its
reason) is a missing value like any other, never a zero. Values measured on an
automatic segmentation are read only when ``FeatureSpec.automatic_segmentation`` allows
it (the visits' ``automatic_segmentation`` column names them).

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
from analytics.errors import ModelError, SettingsError
from analytics.models.patient_order import patient_order_keys
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
    "feature_info", "feature_spec", "feature_support", "history_features", "landmark_grid",
    "model_visits", "resolve_events",
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
#: scan history of an imaging biomarker, in place of the history statistics
IMAGING_STATS = ("measured", "years_since_scan", "scan_change")
#: the scan history every imaging biomarker gets by default (besides its last value)
DEFAULT_IMAGING_STATS = ("measured",)
#: imaging biomarkers that also get ``<f>_scan_change`` by default
DEFAULT_SCAN_CHANGE = ("spleen_volume_ml",)
#: visits column naming the features a visit measured on an automatic segmentation
AUTOMATIC_COLUMN = "automatic_segmentation"
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
    min_feature_patients, min_feature_events
        A feature enters the model when enough is known to estimate it: measured in at
        least ``min_feature_patients`` patients with an outcome, and at least
        ``min_feature_events`` of them had an endpoint event after it was first
        measured. Otherwise it is left out and named, with its counts, in the model
        card. Coverage as a fraction of the cohort is not the criterion: a CT biomarker
        scanned in 15% of a large cohort can carry dozens of events, and an unscanned
        patient's imaging terms are exactly 0 (module docstring), so a rarely measured
        feature does not reach the others through an imputed value. The defaults (10
        patients, 5 events) follow events-per-variable reasoning for penalised Cox
        models: below about 5 events a coefficient is biased and its interval invalid
        (Peduzzi et al., J Clin Epidemiol 1995), while 5-9 events per variable is usually
        adequate (Vittinghoff & McCulloch, Am J Epidemiol 2007); the ridge penalty, scaled
        per event, shrinks what few events remain uncertain about. The count is per
        feature: its history columns are correlated views of one measurement.
        Each floor is capped at what the whole cohort has, so a small cohort keeps the
        features measured in all its patients.
    automatic_segmentation
        Use values measured on an automatic segmentation (the site's
        ``model_automatic_segmentation``); False leaves them missing.
    imaging_stats
        Scan-history columns of every imaging biomarker (some of
        :data:`IMAGING_STATS`; module docstring).
    scan_change
        Imaging biomarkers that also get ``<f>_scan_change``.
    """

    horizons: tuple[float, ...] = (1.0, 2.0, 3.0)
    step: float = 0.5
    landmark_max: float | None = None
    at_visits: bool = False
    interactions: bool = False
    min_at_risk: int = 20
    min_at_risk_fraction: float = 0.2
    stats: tuple[str, ...] = DEFAULT_STATS
    min_feature_patients: int = 10
    min_feature_events: int = 5
    automatic_segmentation: bool = True
    imaging_stats: tuple[str, ...] = DEFAULT_IMAGING_STATS
    scan_change: tuple[str, ...] = DEFAULT_SCAN_CHANGE

    def __post_init__(self) -> None:
        stats = tuple(self.imaging_stats)
        unknown = [st for st in stats if st not in IMAGING_STATS]
        if unknown:
            raise SettingsError("imaging_stats", f"expected some of {list(IMAGING_STATS)}, "
                                                 f"got {list(stats)}")
        object.__setattr__(self, "imaging_stats", stats)
        object.__setattr__(self, "scan_change", tuple(self.scan_change))
        for name in ("min_feature_patients", "min_feature_events"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or v < 0:
                raise SettingsError(name, f"expected a number of patients (an integer >= 0), "
                                          f"got {v!r}")
            object.__setattr__(self, name, int(v))
        if not isinstance(self.automatic_segmentation, bool):
            raise SettingsError("automatic_segmentation",
                                f"expected true or false, got {self.automatic_segmentation!r}")

    @property
    def horizon_max(self) -> float:
        return float(max(self.horizons))


@dataclass
class FeatureSpec:
    """The history columns derived from the cohort's features.

    ``support``: per feature considered, ``{"patients": n, "events": e}``: patients with
    an outcome in whom it was measured, and those of them with an endpoint event after
    its first measurement (what it was, or would have been, learnt from).
    ``imaging_history``: imaging biomarkers get the scan history (module docstring);
    False in specs stored before it existed, whose imaging columns had the statistics.
    ``imaging_stats`` and ``scan_change``: which scan-history columns (as
    :class:`LandmarkSettings`); all of them for every biomarker in specs stored before
    these existed.
    """

    numeric: list[str]
    categorical: list[str]
    low_is_worse: dict[str, bool]
    interactions: bool = False
    imaging: list[str] = field(default_factory=list)
    stats: tuple[str, ...] = DEFAULT_STATS
    excluded: dict[str, str] = field(default_factory=dict)
    support: dict[str, dict[str, int]] = field(default_factory=dict)
    automatic_segmentation: bool = True
    imaging_history: bool = True
    imaging_stats: tuple[str, ...] = DEFAULT_IMAGING_STATS
    scan_change: tuple[str, ...] = DEFAULT_SCAN_CHANGE

    def has_scan_history(self, f: str) -> bool:
        """Whether numeric feature ``f`` gets the scan history (an imaging biomarker)."""
        return self.imaging_history and f in self.imaging

    def scan_stats(self, f: str) -> list[str]:
        """The scan-history statistics of imaging biomarker ``f`` in the model, in
        :data:`IMAGING_STATS` order."""
        return [st for st in IMAGING_STATS if st in self.imaging_stats
                or (st == "scan_change" and f in self.scan_change)]

    @property
    def columns(self) -> list[str]:
        cols = list(GLOBAL_FEATURES)
        for f in self.numeric:
            cols.append(f)
            if self.has_scan_history(f):
                cols += [f"{f}_{st}" for st in self.scan_stats(f)]
                continue
            if f not in STATIC_FEATURES:
                cols += [f"{f}_{st}" for st in self.stats]
            if self.interactions:
                cols.append(f"{f}_x_landmark")
        cols += self.categorical
        return cols

    @property
    def neutral_columns(self) -> list[str]:
        """Scan-history columns: missing before the first scan, then exactly 0 in the design."""
        return [c for f in self.numeric if self.has_scan_history(f)
                for c in (f, *(f"{f}_{st}" for st in self.scan_stats(f) if st != "measured"))]

    def source_of(self, column: str) -> tuple[str, str]:
        """(base feature, statistic) of a history column."""
        if column in (LANDMARK, LANDMARK_SQ):
            return LANDMARK, "landmark"
        if column in GLOBAL_FEATURES:
            return column, "global"
        for stat in (*HISTORY_STATS, *IMAGING_STATS, "x_landmark"):
            base = column.removesuffix(f"_{stat}")
            if base != column and base in self.numeric:
                return base, stat
        return column, "last"

    def to_json(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical,
                "low_is_worse": self.low_is_worse, "interactions": self.interactions,
                "imaging": self.imaging, "stats": list(self.stats),
                "excluded": self.excluded, "support": self.support,
                "automatic_segmentation": self.automatic_segmentation,
                "imaging_history": self.imaging_history,
                "imaging_stats": list(self.imaging_stats), "scan_change": list(self.scan_change)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureSpec:
        return cls(numeric=list(d["numeric"]), categorical=list(d["categorical"]),
                   low_is_worse={k: bool(v) for k, v in d["low_is_worse"].items()},
                   interactions=bool(d.get("interactions", False)),
                   imaging=list(d.get("imaging", [])),
                   stats=tuple(d.get("stats", DEFAULT_STATS)),
                   excluded=dict(d.get("excluded", {})),
                   support={k: {"patients": int(v["patients"]), "events": int(v["events"])}
                            for k, v in d.get("support", {}).items()},
                   automatic_segmentation=bool(d.get("automatic_segmentation", True)),
                   imaging_history=bool(d.get("imaging_history", False)),
                   imaging_stats=tuple(d.get("imaging_stats", IMAGING_STATS)),
                   scan_change=tuple(d.get("scan_change", ())))


def model_visits(visits: pd.DataFrame, automatic_segmentation: bool = True) -> pd.DataFrame:
    """The visits as a model reads them: values measured on an automatic segmentation
    missing unless ``automatic_segmentation`` allows them.

    The visits' ``automatic_segmentation`` column (comma-separated feature names, None
    when the visit has none) says which values came from an automatic mask. ``visits``
    is not changed.
    """
    if automatic_segmentation or AUTOMATIC_COLUMN not in visits.columns:
        return visits
    names = visits[AUTOMATIC_COLUMN]
    combos = [c for c in names.dropna().unique() if isinstance(c, str) and c]
    if not combos:
        return visits
    out = visits.copy()
    for combo in combos:  # few distinct lists of names, however many visits
        cols = [c for c in combo.split(",") if c in out.columns]
        out.loc[(names == combo).to_numpy(), cols] = np.nan
    return out


def feature_support(cohort: CohortTable, column: str, of_interest: tuple[str, ...] | None = None,
                    visits: pd.DataFrame | None = None) -> dict[str, int]:
    """Patients with an outcome in whom ``column`` was measured, and how many of them had
    an endpoint event (``of_interest``; None: any event) after its first measurement."""
    v = cohort.visits if visits is None else visits
    measured = v.loc[v[column].notna(), ["patient", "time"]]
    first = measured.groupby("patient")["time"].min()
    out = cohort.outcomes.set_index("patient")
    first = first[first.index.isin(out.index)]
    ev = out["event"].astype(str).reindex(first.index)
    is_event = ev.isin(of_interest) if of_interest else ev != CENSORED
    before = out["duration"].reindex(first.index) >= first - 1e-9
    return {"patients": len(first), "events": int((is_event & before).sum())}


def feature_spec(cohort: CohortTable, interactions: bool = False,
                 stats: tuple[str, ...] = DEFAULT_STATS, *, min_patients: int = 0,
                 min_events: int = 0, events: EventSpec | None = None,
                 automatic_segmentation: bool = True,
                 imaging_stats: tuple[str, ...] = DEFAULT_IMAGING_STATS,
                 scan_change: tuple[str, ...] = DEFAULT_SCAN_CHANGE) -> FeatureSpec:
    """Split the cohort's feature columns into numeric and categorical history inputs.

    Parameters
    ----------
    cohort
        Visits and outcomes.
    interactions, stats
        As :class:`LandmarkSettings`.
    min_patients, min_events
        A column measured in fewer than ``min_patients`` patients with an outcome, or
        with fewer than ``min_events`` endpoint events among them, is left out with
        the reason in ``excluded`` (see :class:`LandmarkSettings`). Each floor is
        capped at what the whole cohort has (its patients, its endpoint events), so a
        small cohort keeps the features measured in all its patients and events.
    events
        The endpoint whose events are counted; None counts every event.
    automatic_segmentation
        Count (and later read) values measured on an automatic segmentation.
    imaging_stats, scan_change
        The imaging biomarkers' scan-history columns (:class:`LandmarkSettings`).

    Raises
    ------
    ModelError
        If no feature column is left.
    """
    numeric, categorical, imaging = [], [], []
    excluded: dict[str, str] = {}
    support: dict[str, dict[str, int]] = {}
    visits = model_visits(cohort.visits, automatic_segmentation)
    interest = events.of_interest if events is not None else None
    # a feature that knows as much as the whole cohort is never short of information
    ev = cohort.outcomes["event"].astype(str)
    n_events = int((ev.isin(interest) if interest else ev != CENSORED).sum())
    min_patients = min(min_patients, int(cohort.outcomes["patient"].nunique()))
    min_events = min(min_events, n_events)
    for col in cohort.feature_columns:
        if col == AUTOMATIC_COLUMN:
            continue
        meta = cohort.feature_meta.get(col, {})
        s = visits[col]
        sup = support[col] = feature_support(cohort, col, interest, visits)
        why = _too_little(sup, min_patients, min_events)
        if why:
            excluded[col] = why
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
                       excluded=excluded, support=support,
                       automatic_segmentation=automatic_segmentation,
                       imaging_stats=tuple(imaging_stats), scan_change=tuple(scan_change))


def _too_little(sup: dict[str, int], min_patients: int, min_events: int) -> str | None:
    """Why a feature with this support is left out; None when it is enough."""
    n, e = sup["patients"], sup["events"]
    if n < min_patients:
        return f"measured in {n} patients (fewer than {min_patients})"
    if e < min_events:
        return (f"measured in {n} patients, {e} of them with an endpoint event after "
                f"the first measurement (fewer than {min_events})")
    return None


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
        Which columns to build; values measured on an automatic segmentation are read
        only if ``spec.automatic_segmentation`` (:func:`model_visits`), and a feature
        column absent from ``visits`` counts as never measured.

    Returns
    -------
    pandas.DataFrame
        One row per row of ``at`` (same index): ``patient``, ``landmark`` and
        :attr:`FeatureSpec.columns`, then ``<f>_scan_change`` of every imaging biomarker
        not already among them, plus ``last_visit_time``, ``modality`` and
        ``contrast_phase`` of the last imaging visit so far (None if none).
        Only visits with ``time <= landmark`` are read.
    """
    v = model_visits(visits, spec.automatic_segmentation)
    absent = [f for f in (*spec.numeric, *spec.categorical) if f not in v.columns]
    if absent:  # a feature the patient's visits never mention is a feature never measured
        v = v.assign(**dict.fromkeys(absent, np.nan))
    v = v.sort_values(["patient", "time"], kind="stable")
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
    # every biomarker's change since the previous scan, in the model or not (explanations)
    shown = [f"{f}_scan_change" for f in spec.numeric if spec.has_scan_history(f)]
    res = res[[*spec.columns, *(c for c in shown if c not in spec.columns)]]
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
    if spec.has_scan_history(f):
        out.update(_scan_history(f, fv, ft, fc.to_numpy(), idx, ok, s, last))
        return out
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
    low = spec.low_is_worse.get(f, False)
    if len(grp) and grp[0] == grp[-1]:  # one patient (sorted by patient): no grouping
        cs = _kahan_cumsum(np.column_stack([ft, fv, ft * ft, ft * fv, np.ones(len(fv))]))
        worst_all = (np.minimum if low else np.maximum).accumulate(fv)
        first_of = np.full(len(fv), fv[0])
    else:
        df = pd.DataFrame({"g": grp, "t": ft, "v": fv, "tt": ft * ft, "tv": ft * fv,
                           "one": 1.0})
        by = df.groupby("g", sort=False)
        cs = by[["t", "v", "tt", "tv", "one"]].cumsum().to_numpy()
        worst_all = (by["v"].cummin() if low else by["v"].cummax()).to_numpy()
        first_of = (by["v"].transform("first").to_numpy() if "change" in spec.stats
                    else None)
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
        change = np.zeros(n_at)
        change[ok] = fv[idx[ok]] - first_of[idx[ok]]
        stats["change"] = change
    return stats


def _kahan_cumsum(a: np.ndarray) -> np.ndarray:
    """Running sums down the columns of ``a``, compensated as pandas' grouped ``cumsum``
    adds (Kahan), so one patient's sums equal those of the grouped cohort-wide pass."""
    out = np.empty_like(a)
    acc = np.zeros(a.shape[1])
    comp = np.zeros(a.shape[1])
    for i in range(len(a)):
        y = a[i] - comp
        t = acc + y
        comp = (t - acc) - y
        acc = t
        out[i] = t
    return out


def _scan_history(f: str, fv: np.ndarray, ft: np.ndarray, grp: np.ndarray, idx: np.ndarray,
                  ok: np.ndarray, s: np.ndarray, last: np.ndarray) -> dict[str, np.ndarray]:
    """Measured indicator, years since the last scan and change since the previous scan
    of an imaging biomarker (module docstring); NaN before its first scan."""
    since = np.full(len(s), np.nan)
    change = np.full(len(s), np.nan)
    if ok.any():
        i = idx[ok]
        since[ok] = s[ok] - ft[i]
        prev = np.maximum(i - 1, 0)
        has_prev = (i > 0) & (grp[prev] == grp[i])
        change[ok] = np.where(has_prev, last[ok] - fv[prev], 0.0)
    return {f"{f}_measured": ok.astype(np.float64), f"{f}_years_since_scan": since,
            f"{f}_scan_change": change}


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
                                min_patients=settings.min_feature_patients,
                                min_events=settings.min_feature_events, events=events,
                                automatic_segmentation=settings.automatic_segmentation,
                                imaging_stats=settings.imaging_stats,
                                scan_change=settings.scan_change)
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
    # patients in an order every home holding this cohort shares (folds, bootstrap draws)
    at["_order"] = at["patient"].map(patient_order_keys(cohort.visits, cohort.outcomes))
    at = at.sort_values(["_order", "patient", "landmark"], kind="stable").drop(
        columns="_order").reset_index(drop=True)
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
