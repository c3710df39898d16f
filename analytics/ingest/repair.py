"""The identifiers ingest fills in for one file, and the file re-encoded with them.

:class:`Repair` is decided in :mod:`analytics.ingest.identifiers` and applied in the parse
worker (:mod:`analytics.ingest._worker`); keeping both here lets the worker import it
without the grouping logic and the batch types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analytics.config import IngestLimits
from analytics.ingest.deid import write_dataset
from analytics.ingest.header import parse_dicom


@dataclass
class Repair:
    """What ingest filled in for one file, and the values to write into it."""

    values: dict[str, str] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)  # from the file meta
    derived: list[str] = field(default_factory=list)  # Study/Series Instance UID
    patient_assigned: bool = False


def apply_repair(data: bytes, repair: Repair, limits: IngestLimits) -> bytes:
    """The file re-encoded with its repaired identifiers (pixel data kept byte for byte).

    SOP Class/Instance UIDs recovered from the file meta are written by the same parse
    (``parse_dicom`` recovers them); ``repair.values`` adds the derived and assigned ones.
    """
    ds = parse_dicom(data, limits, stop_before_pixels=False).dataset
    for kw, value in repair.values.items():
        setattr(ds, kw, value)
    return write_dataset(ds)
