"""The dashboard's and the command line's actions, each one function
``(context, request) -> result`` that checks the actor's permission and runs inside one
audited step (:mod:`analytics.usecases.context`).

Modules: ``ingest`` (upload, paths, PACS search and link), ``identity`` (studies held
as identity conflicts: list, resolve), ``series_repair`` (complete, replace, remove a
stored series), ``cohort`` (import, export of tables and masks, a page's table downloaded
as CSV), ``models`` (train, predict, activate), ``mask_review`` (reject, restore), ``mdt``
(notes, meeting lists and each patient's question, discussion and decision), ``mdt_facts``
(age, aetiology, MELD, Child-Pugh, ALBI as the MDT reads them), ``report`` (the MDT PDF
pack), ``admin`` (audit trail with filters and its CSV export; users: add, role, disable,
password reset; settings), ``model_admin`` (the Models page's tables), ``overview`` and
``keyimage`` (what the dashboard draws), ``demo`` (every stage on the sample cohort).
Pages (``pages/``, ``ui/*_view.py``) and commands (``analytics/commands/``) are thin
adapters over these functions.
"""

from analytics.usecases.context import Context, audited, authorize

__all__ = ["Context", "audited", "authorize"]
