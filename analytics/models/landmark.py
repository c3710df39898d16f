"""Landmark datasets: stacked landmark rows and the settings that stack them.

A landmark "supermodel" (van Houwelingen 2007) predicts, at any time ``s``,
``P(event in (s, s + H] | event-free at s, history up to s)``. Training rows are stacked
over landmark times on a grid; each row holds the history features at ``s`` and the
outcome measured from ``s``, administratively censored at ``s + H_max``. The landmark
time enters as covariates ``landmark_years`` and ``landmark_years_sq`` (a smooth baseline
in ``s``), so one model serves every ``s`` inside the trained landmark range.

Each row's history features are built by :mod:`analytics.models.history` (which describes
them) from the columns :mod:`analytics.models.history_spec` chooses; the endpoint and its
competing causes are :mod:`analytics.models.endpoint`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.cohort_types import CENSORED, CohortTable
from analytics.errors import ModelError, SettingsError
from analytics.models.endpoint import EventSpec
from analytics.models.history import history_features
from analytics.models.history_spec import (
    DEFAULT_IMAGING_STATS,
    DEFAULT_SCAN_CHANGE,
    DEFAULT_STATS,
    IMAGING_STATS,
    FeatureSpec,
    feature_spec,
)
from analytics.models.patient_order import patient_order_keys

__all__ = ["LandmarkData", "LandmarkSettings", "build_landmark_data", "landmark_grid"]


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
        patient's imaging terms are exactly 0 (:mod:`analytics.models.history`), so a
        rarely measured feature does not reach the others through an imputed value. The
        defaults (10 patients, 5 events) follow events-per-variable reasoning for
        penalised Cox models: below about 5 events a coefficient is biased and its interval invalid
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
        :data:`~analytics.models.history_spec.IMAGING_STATS`;
        :mod:`analytics.models.history`).
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
