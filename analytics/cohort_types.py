"""The cohort table handed from ``analytics.cohort`` to the models.

One internal outcome format (a DataFrame with ``duration``/``event``), converted to
lifelines or scikit-survival shapes only at the estimator boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: columns of ``CohortTable.visits`` that are identifiers, not features
VISIT_KEYS = ("patient", "time", "date", "series_uid", "modality", "contrast_phase",
              "automatic_segmentation")
CENSORED = "censored"
#: a scan visit takes each lab from the nearest draw within this many days (cohort table)
DEFAULT_LAB_WINDOW_DAYS = 90


@dataclass
class CohortTable:
    """Visits x features, plus one outcome row per patient.

    Attributes
    ----------
    visits
        One row per patient visit, sorted by ``patient``, ``time``. Columns: ``patient``
        (pseudonym, str), ``time`` (years since the patient's baseline), ``date``
        (datetime64, may be NaT), ``series_uid``/``modality``/``contrast_phase`` (None for
        lab-only visits), ``automatic_segmentation`` (comma-separated names of the
        features this visit measured on an automatic segmentation; None when none), then
        one column per feature (labs, imaging biomarkers, generic covariates), NaN where
        not measured at that visit (a value withheld with a reason is NaN too).
    outcomes
        One row per patient with a known end of follow-up: ``patient``, ``duration``
        (years from baseline to event or censoring), ``event`` (event name, or
        ``"censored"``). A patient with visits but no outcome has no row here: they can
        be scored, not used to train.
    feature_meta
        Per feature column: ``{"kind": "lab"|"imaging"|"generic"|"score", "unit": str,
        "categorical": bool}``.
    warnings
        What the builder left out or could not place, one line each.
    """

    visits: pd.DataFrame
    outcomes: pd.DataFrame
    feature_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.visits.columns if c not in VISIT_KEYS]

    @property
    def event_names(self) -> list[str]:
        return sorted(set(self.outcomes["event"]) - {CENSORED})
