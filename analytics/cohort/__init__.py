"""Cohort stage: import visits/outcomes CSVs, build the visits x features table, export.

Public API::

    import_cohort(store, visits, outcomes, *, settings=None, step=unaudited) -> ImportReport
    build_cohort(store, *, lab_window_days=90, with_scores=False) -> CohortTable
    cohort_from_frames(visits, outcomes, *, on_error="raise", with_scores=False)
        -> CohortTable
    export(store, what, out, *, settings=None, step=unaudited) -> dict

Modules: ``reader`` (CSV rows and cells), ``columns`` (known columns, plausibility ranges
and their sources, event names), ``validate`` (what is rejected or warned about, across
rows and files), ``rows`` (per-row checks), ``records`` (issues and accepted rows),
``importer`` (store writes), ``table`` (merging scans and labs), ``export``.

The stage takes no actor and writes no audit record: who may import or export, and the
record, belong to :mod:`analytics.usecases.cohort`, which passes its audited step as
``step``.
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
