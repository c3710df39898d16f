"""Which history columns a landmark model reads, and which of the cohort's features enter it.

:class:`FeatureSpec` names the model's numeric, categorical and imaging features and
derives their history columns (built by :mod:`analytics.models.history`);
:func:`feature_spec` chooses them from a cohort, leaving out a feature measured in too few
patients or before too few endpoint events (:func:`feature_support`); :func:`model_visits`
is the visits as a model reads them (values measured on an automatic segmentation left
out when the settings say so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics.cohort_types import CENSORED, VISIT_KEYS, CohortTable
from analytics.errors import ModelError
from analytics.models.endpoint import EventSpec
from analytics.vocabulary import LANDMARK, LANDMARK_SQ, feature_info

__all__ = [
    "AUTOMATIC_COLUMN", "DEFAULT_IMAGING_STATS", "DEFAULT_SCAN_CHANGE", "DEFAULT_STATS",
    "GLOBAL_FEATURES", "HISTORY_STATS", "IMAGING_STATS", "STATIC_FEATURES", "FeatureSpec",
    "feature_spec", "feature_support", "model_visits",
]

#: features that do not change along a visit history (no slope / worst value)
STATIC_FEATURES = frozenset({"age_years", "sex"})
#: history statistics besides the last value: see :mod:`analytics.models.history`
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

GLOBAL_FEATURES = (LANDMARK, LANDMARK_SQ, "n_visits", "years_since_last_visit")


@dataclass
class FeatureSpec:
    """The history columns derived from the cohort's features.

    ``support``: per feature considered, ``{"patients": n, "events": e}``: patients with
    an outcome in whom it was measured, and those of them with an endpoint event after
    its first measurement (what it was, or would have been, learnt from).
    ``imaging_history``: imaging biomarkers get the scan history
    (:mod:`analytics.models.history`); False in specs stored before it existed, whose
    imaging columns had the statistics.
    ``imaging_stats`` and ``scan_change``: which scan-history columns (as
    :class:`~analytics.models.landmark.LandmarkSettings`); all of them for every
    biomarker in specs stored before these existed.
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
        As :class:`~analytics.models.landmark.LandmarkSettings`.
    min_patients, min_events
        A column measured in fewer than ``min_patients`` patients with an outcome, or
        with fewer than ``min_events`` endpoint events among them, is left out with
        the reason in ``excluded`` (see
        :class:`~analytics.models.landmark.LandmarkSettings`). Each floor is
        capped at what the whole cohort has (its patients, its endpoint events), so a
        small cohort keeps the features measured in all its patients and events.
    events
        The endpoint whose events are counted; None counts every event.
    automatic_segmentation
        Count (and later read) values measured on an automatic segmentation.
    imaging_stats, scan_change
        The imaging biomarkers' scan-history columns
        (:class:`~analytics.models.landmark.LandmarkSettings`).

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
