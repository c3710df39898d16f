"""What an ingest batch produces: the report (the ``hepatrack ingest --json`` contract) and
the parsed entries it passes between its steps.

These types sit below every ingest step, so the steps (:mod:`~analytics.ingest.prepare`,
:mod:`~analytics.ingest.link_masks`, :mod:`~analytics.ingest.identifiers`) share them
without importing the orchestrator (:mod:`~analytics.ingest.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analytics.ingest.dicomweb import RetrievedSeries
from analytics.ingest.findings import Rejection
from analytics.ingest.reader import ParsedInstance
from analytics.ingest.repair import Repair
from analytics.ingest.sources import SourceItem

__all__ = ["BatchEntry", "IngestReport"]


@dataclass
class IngestReport:
    """Outcome of one ingest call (``as_dict()`` is the ``--json`` contract)."""

    series_ingested: int = 0
    instances: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[Rejection] = field(default_factory=list)
    conflicts: list[Rejection] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    masks: int = 0
    notes: list[str] = field(default_factory=list)
    #: series stored but held as identity conflicts (filed under no patient until a
    #: clinician resolves them): ``{series_uid, study_uid, hold_id, patient, fields,
    #: modality, slices, study_date, already_stored, reason}``; ``patient`` is the stored
    #: patient's pseudonym, ``fields`` the names of the identity fields that differ
    held: list[dict[str, Any]] = field(default_factory=list)
    #: broken stored instances replaced by their re-sent intact copies (series completion)
    replaced: int = 0

    @property
    def anything_stored(self) -> bool:
        """True if something was ingested now or was already stored."""
        return self.instances > 0 or self.duplicates > 0 or self.masks > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "series_ingested": self.series_ingested,
            "instances": self.instances,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
            "series": self.series,
            "quarantined": [r.as_dict() for r in self.quarantined],
            "conflicts": [r.as_dict() for r in self.conflicts],
            "incomplete": self.incomplete,
            "masks": self.masks,
            "held": self.held,
            "replaced": self.replaced,
        }


@dataclass
class BatchEntry:
    """A parsed instance (its bytes dropped) and how to read them again."""

    parsed: ParsedInstance
    item: SourceItem
    size: int
    source: str  # folder | zip | file | upload | dicomweb (no PHI)
    content_sha256: str  # of the dataset body (``store.instances.content_hash``)
    meta_sha256: str  # of the file meta: with the above, detects a file changed since parsing
    pacs: RetrievedSeries | None = None
    repair: Repair | None = None  # identifiers filled in (``analytics.ingest.identifiers``)
