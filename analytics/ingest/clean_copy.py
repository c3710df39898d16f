"""De-identified copies made by the parse workers with the header parse.

:class:`CleanRequest` asks :meth:`analytics.ingest.reader.SafeParser.parse_many` for each
stored file's de-identified copy in the request that parses its header; the copy comes back
as a :class:`CleanCopy`; :class:`CleanBudget` bounds the bytes of copies a batch holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from analytics.ingest.findings import Rejection

if TYPE_CHECKING:
    from analytics.ingest.sources import SourceItem


class Job(Protocol):
    """A parse request in flight: the item, its bytes and the ``clean`` meta it asks."""

    item: SourceItem
    data: bytes
    clean: dict | None


Parsed = TypeVar("Parsed")


@dataclass(frozen=True)
class CleanCopy:
    """The de-identified copy a parse worker made in the request that parsed the header
    (``SafeParser.parse_many`` with ``clean``): the bytes to store and what ingest
    files them by (``_worker.CLEAN_FACTS``), or the worker's error reply, raised when the
    copy is used (``SafeParser.cleaned``), where the separate request would have
    raised it."""

    data: bytes
    facts: dict[str, str | None] | None
    failure: dict | None = None


@dataclass(frozen=True)
class CleanRequest:
    """Ask the parse workers for each stored file's de-identified copy with its header.

    ``secret`` is the site secret; ``budget_bytes`` bounds the bytes of the copies held
    for the batch (files past it are de-identified one series at a time, as before).
    """

    secret: bytes
    budget_bytes: int


class CleanBudget:
    """What a :class:`CleanRequest` lets a batch still hold in de-identified copies: a file
    is sent for its copy while its size fits; the copy that comes back is charged instead."""

    def __init__(self, clean: CleanRequest | None) -> None:
        self.clean = clean
        self.left = clean.budget_bytes if clean is not None else 0
        self.reserved: dict[str, int] = {}  # file name -> bytes held back for its copy

    def ask(self, job: Job) -> Job:
        if self.clean is not None and len(job.data) <= self.left:
            self.left -= len(job.data)
            self.reserved[job.item.name] = len(job.data)
            job.clean = {"secret": self.clean.secret.hex(), "name": job.item.name}
        return job

    def settle(self, res: Parsed) -> Parsed:
        """Release what was held back for ``res`` (a parsed instance or a Rejection) and
        charge the copy it came back with."""
        if isinstance(res, Rejection):
            self.left += self.reserved.pop(res.file, 0)
            return res
        self.left += self.reserved.pop(res.name, 0)
        if res.clean is not None:
            self.left -= len(res.clean.data)
        return res


__all__ = ["CleanBudget", "CleanCopy", "CleanRequest"]
