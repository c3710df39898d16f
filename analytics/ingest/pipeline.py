"""Ingest orchestration: sources -> safe parsing -> series -> de-identification -> commit.

:func:`ingest_sources` takes local files, folders, zip archives and DICOMweb URLs;
:func:`ingest_uploads` takes in-memory uploads. Both return an :class:`IngestReport` whose
``as_dict()`` is the JSON contract of ``hepatrack ingest --json``. Bad input never stops a
batch: every refused file, instance, series or mask is reported with its reason and the
rest goes on. Every parse of a whole file (identifier repair, de-identification) runs in
the limited workers of the batch's :class:`SafeParser`, never in this process. Parsed file
bytes are dropped after the header pass and read again one series at a time, so memory is
bounded by the largest series, not the batch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from analytics.config import Settings
from analytics.errors import HepaTrackError, IngestError
from analytics.ingest.clean_copy import CleanRequest
from analytics.ingest.compact import needs_repair
from analytics.ingest.deid import Deidentifier
from analytics.ingest.dicomweb import RetrievedSeries, fetch, is_dicomweb_url, redact_url
from analytics.ingest.findings import Rejection
from analytics.ingest.identifiers import resolve
from analytics.ingest.link_masks import SeriesVolumes, count_masks, ingest_mask
from analytics.ingest.prepare import SeriesJob, ingest_series
from analytics.ingest.reader import ParsedInstance, SafeParser, zero_preamble
from analytics.ingest.results import BatchEntry, IngestReport
from analytics.ingest.sources import SourceItem, iter_local_source, iter_upload
from analytics.ingest.warm import borrow, pool_size
from analytics.store.db import Store
from analytics.store.instances import clean_stale_staging, fingerprint

log = logging.getLogger(__name__)

Progress = Callable[[str, float | None], None]
MASK_KINDS = ("seg", "rtstruct", "nifti")
#: de-identified copies made with the header parse and held for a batch, at most (bytes);
#: the files past it are read again and de-identified one series at a time
CLEAN_AT_PARSE_BYTES = 512 * 1024 * 1024


def _unique_names(items: Iterable[SourceItem | Rejection], prefix: str = ""
                  ) -> Iterator[SourceItem | Rejection]:
    """Give every item a distinct display name (archives may repeat entry names)."""
    seen: dict[str, int] = {}
    for it in items:
        if isinstance(it, SourceItem):
            name = prefix + it.name
            n = seen.get(name, 0)
            seen[name] = n + 1
            if n or prefix:
                it = SourceItem(name=name if not n else f"{name} [{n + 1}]", size=it.size,
                                _opener=it._opener)
        yield it


def _source_kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return "file"
    return "zip" if head.startswith(b"PK") else "file"


class _Batch:
    """Parses sources and collects instances by series."""

    def __init__(self, settings: Settings, parser: SafeParser, report: IngestReport,
                 progress: Progress | None, clean: CleanRequest | None = None) -> None:
        self.settings = settings
        self.parser = parser
        self.clean = clean  # de-identify at parse time (one budget for the batch)
        self.report = report
        self.progress = progress
        self.series: dict[str, list[BatchEntry]] = {}
        self.masks: list[BatchEntry] = []
        self.pending: list[BatchEntry] = []  # images whose identifiers need a repair
        self.pacs_series: dict[str, RetrievedSeries] = {}
        self.parsed = 0

    def add_items(self, items: Iterable[SourceItem | Rejection], source: str,
                  pacs: RetrievedSeries | None = None) -> None:
        table: dict[str, SourceItem] = {}

        def feed() -> Iterator[SourceItem | Rejection]:
            for it in items:
                if isinstance(it, SourceItem):
                    table[it.name] = it
                yield it

        for res in self.parser.parse_many(feed(), clean=self.clean):
            self.parsed += 1
            if self.progress and self.parsed % 50 == 0:
                self.progress(f"read {self.parsed} files", None)
            if isinstance(res, Rejection):
                self.report.rejected.append(res)
                continue
            item = table.pop(res.name)
            content, meta = fingerprint(res.data)
            # the bytes are dropped: their identity for duplicate checks is the fingerprint
            same = hashlib.sha256(f"{content}:{meta}".encode()).hexdigest()
            entry = BatchEntry(parsed=dataclasses.replace(res, data=b"", _sha256=same),
                               item=item, size=len(res.data), source=source,
                               content_sha256=content, meta_sha256=meta, pacs=pacs)
            if res.kind in MASK_KINDS:
                self.masks.append(entry)
            elif needs_repair(res.info):
                self.pending.append(entry)
            elif res.kind in ("image", "ultrasound", "other"):
                key = res.series_uid or f"no-series:{res.name}"
                self.series.setdefault(key, []).append(entry)
                if pacs is not None:
                    self.pacs_series[key] = pacs
            else:  # pragma: no cover - reader kinds are exhaustive
                self.report.rejected.append(Rejection(res.name, f"unsupported kind {res.kind}"))

    def add_source(self, source: str | Path) -> None:
        if is_dicomweb_url(source):
            try:
                fetched = fetch(str(source), self.settings)
            except HepaTrackError as e:
                self.report.rejected.append(Rejection(redact_url(str(source)), str(e), "pacs"))
                return
            for k, rs in enumerate(fetched, start=1):
                self.add_items(_unique_names(rs.items, prefix=f"PACS series {k}: "),
                               "dicomweb", pacs=rs)
                if not rs.items and not rs.complete:
                    self.report.incomplete.append({"series_uid": None, "reason": rs.reason})
            return
        path = Path(source)
        self.add_items(_unique_names(iter_local_source(path, self.settings.limits)),
                       _source_kind(path))

    def add_upload(self, name: str, data: bytes) -> None:
        self.add_items(_unique_names(iter_upload(name, data, self.settings.limits)), "upload")

    def resolve_identifiers(self, secret: bytes, assign_patient: str | None) -> None:
        """Group the images with empty identifiers into series (derived UIDs)."""
        groups, rejected = resolve(self.pending, secret, assign_patient)
        self.report.rejected.extend(rejected)
        for uid, entries in groups.items():
            self.series.setdefault(uid, []).extend(entries)
        self.pending = []


def reload(entry: BatchEntry, parser: SafeParser) -> ParsedInstance:
    """The parsed instance with its bytes read again (and checked unchanged).

    Identifiers an export left empty are written in ``parser``'s limited worker: that
    re-encoding reads the whole file, elements after the pixel data included.

    Raises
    ------
    IngestError
        If the file cannot be read or changed since it was parsed.
    InvalidDicomError, LimitExceededError
        If writing the repaired identifiers breaks the parse limits (the file is refused).
    """
    try:
        data = entry.item.read()
    except (OSError, HepaTrackError) as e:
        raise IngestError(f"{entry.parsed.name}: cannot read it again ({e})") from e
    if entry.parsed.kind != "nifti":  # a NIfTI file's first 128 bytes are its header
        data, _ = zero_preamble(data)
    if fingerprint(data) != (entry.content_sha256, entry.meta_sha256):
        raise IngestError(f"{entry.parsed.name}: the file changed while it was being ingested")
    if entry.repair is not None:
        data = parser.deidentify(data, name=entry.parsed.name, secret=b"", deidentify=False,
                                 repair=dict(entry.repair.values))
        return dataclasses.replace(entry.parsed, data=data, _header=None, clean=None,
                                   _sha256=None)
    return dataclasses.replace(entry.parsed, data=data)


def _run(settings: Settings, store: Store, feed: Callable[[_Batch], None], *,
         progress: Progress | None, deidentify: bool | None, parser: SafeParser | None,
         assign_patient: str | None = None,
         labels: dict[int, str] | None = None,
         complete_series: str | None = None) -> IngestReport:
    deid = settings.deidentify if deidentify is None else bool(deidentify)
    settings.ensure_home()
    report = IngestReport()
    clean_stale_staging(settings)
    deidentifier = Deidentifier(settings.site_secret())
    run = functools.partial(_run_with, settings, store, feed, report, deidentifier,
                            progress=progress, deid=deid, assign_patient=assign_patient,
                            labels=labels, complete_series=complete_series)
    if parser is not None:
        return run(parser)
    with borrow(settings.limits) as warm:  # the dashboard's warm workers, when free
        return run(warm)


def _run_with(settings: Settings, store: Store, feed: Callable[[_Batch], None],
              report: IngestReport, deidentifier: Deidentifier, parser: SafeParser | None, *,
              progress: Progress | None, deid: bool, assign_patient: str | None,
              labels: dict[int, str] | None, complete_series: str | None) -> IngestReport:
    own = parser is None
    parser = parser or SafeParser(settings.limits, workers=pool_size())
    try:
        clean = (CleanRequest(deidentifier.secret,
                              min(CLEAN_AT_PARSE_BYTES, settings.limits.max_series_bytes))
                 if deid else None)
        batch = _Batch(settings, parser, report, progress, clean)
        feed(batch)
        batch.resolve_identifiers(deidentifier.secret, assign_patient)
        jobs = sorted(batch.series.items(), key=lambda kv: kv[0])
        again = functools.partial(reload, parser=parser)
        volumes = SeriesVolumes(store, settings)
        for n, (_key, entries) in enumerate(jobs, start=1):
            if progress:
                progress(f"storing series {n} of {len(jobs)}", n / max(1, len(jobs)))
            job = SeriesJob(entries=entries, pacs=batch.pacs_series.get(_key))
            ingest_series(job, settings, store, deidentifier, report, deid=deid, reload=again,
                          parser=parser, complete=complete_series, grids=volumes.grids)
        for entry in batch.masks:
            ingest_mask(entry, settings, store, deidentifier, report, deid=deid, reload=again,
                        batch_series=batch.series, parser=parser, labels=labels, volumes=volumes)
        count_masks(store, report)
    finally:
        if own:
            parser.close()
    return report


def ingest_sources(sources: list[str | Path], settings: Settings, store: Store, *,
                   progress: Progress | None = None, deidentify: bool | None = None,
                   parser: SafeParser | None = None,
                   assign_patient: str | None = None,
                   labels: dict[int, str] | None = None,
                   complete_series: str | None = None) -> IngestReport:
    """Ingest DICOM files, folders, zip archives and DICOMweb study/series URLs.

    Parameters
    ----------
    sources
        Paths (file, folder, ``.zip``) and ``http(s)://…/studies/UID[/series/UID]`` URLs.
    settings, store
        Home, limits, PACS endpoints; the open store.
    progress
        Called as ``progress(message, fraction or None)``.
    deidentify
        Override ``settings.deidentify`` (default on).
    parser
        A running :class:`SafeParser` pool to reuse (a long-lived app); one is started
        and stopped for this call when None.
    assign_patient
        The Patient ID to give images whose Patient ID (0010,0020) is empty; without it
        they are refused. A file that has a Patient ID keeps it.
    labels
        NIfTI label value -> structure name for the label maps of this batch
        (``analytics.ingest.nifti_masks.parse_label_table`` reads the user's text).
    complete_series
        The stored UID of a series stored as invalid or incomplete that these files
        complete: a file with intact pixel data replaces the stored broken copy of the same
        SOP Instance UID (elsewhere another content under a stored UID is a conflict).

    Returns
    -------
    IngestReport
        Counts, per-series summaries and every refusal with its reason.

    Who may ingest, and the audit record, are the use case's
    (:mod:`analytics.usecases.ingest`): this stage takes no actor.
    """
    def feed(batch: _Batch) -> None:
        for src in sources:
            batch.add_source(src)

    return _run(settings, store, feed, progress=progress, deidentify=deidentify, parser=parser,
                assign_patient=assign_patient, labels=labels, complete_series=complete_series)


def ingest_uploads(files: list[tuple[str, bytes]], settings: Settings, store: Store, *,
                   progress: Progress | None = None, deidentify: bool | None = None,
                   parser: SafeParser | None = None,
                   assign_patient: str | None = None,
                   labels: dict[int, str] | None = None,
                   complete_series: str | None = None) -> IngestReport:
    """Ingest in-memory uploads ``[(file name, bytes)]`` (single files or zip archives).

    Same contract as :func:`ingest_sources`; names are for display only.
    """
    def feed(batch: _Batch) -> None:
        for name, data in files:
            batch.add_upload(name, data)

    return _run(settings, store, feed, progress=progress, deidentify=deidentify, parser=parser,
                assign_patient=assign_patient, labels=labels, complete_series=complete_series)
