"""Cohort stage: import visits/outcomes CSVs, build the visits x features table, export.

Public API::

    import_cohort(store, visits, outcomes, *, actor=None) -> ImportReport
    build_cohort(store, *, lab_window_days=90, with_scores=False) -> CohortTable
    cohort_from_frames(visits, outcomes, *, on_error="raise", with_scores=False)
        -> CohortTable
    export(store, what, out, *, actor=None) -> dict

Modules: ``reader`` (CSV rows and cells), ``columns`` (known columns, plausibility ranges
and their sources, event names), ``validate`` (what is rejected or warned about, across
rows and files), ``rows`` (per-row checks), ``records`` (issues and accepted rows),
``importer`` (store writes), ``table`` (merging scans and labs), ``export``.
"""

from analytics.cohort.export import export, features_frame, predictions_frame, write_table
from analytics.cohort.importer import ImportReport, import_cohort
from analytics.cohort.table import DEFAULT_LAB_WINDOW_DAYS, build_cohort, cohort_from_frames
from analytics.cohort.validate import Issue

__all__ = [
    "DEFAULT_LAB_WINDOW_DAYS",
    "ImportReport",
    "Issue",
    "build_cohort",
    "cohort_from_frames",
    "export",
    "features_frame",
    "import_cohort",
    "predictions_frame",
    "write_table",
]
