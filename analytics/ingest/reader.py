"""Safe parsing of untrusted files: a small persistent pool of limited worker processes.

Each file's header is parsed first in a worker process (``analytics.ingest._worker``) that
runs under RLIMIT_AS and a per-file timeout; a worker that dies or times out is replaced
and the file is reported, the batch goes on. The worker answers with a compact header
(:mod:`analytics.ingest.compact`), enough to sort, check and read pixels; the full
:class:`pydicom.Dataset` is parsed in-process only when asked for, from bytes the worker
already vetted. Pixel values are not read here.

Without de-identified copies to make, the headers of up to ``GROUP_FILES`` files go to a
worker in one request (op ``parse_batch``): one hand-off between the processes per group
instead of per file. A group whose worker dies or runs past ``parse_timeout_s`` blames no
file: each is sent again alone, under its own limits, so the one that kills a worker is
named and the others are parsed.

Whatever reads a whole file (pixels and the elements after them) also runs in a worker,
one request at a time: :meth:`SafeParser.decode` for compressed pixel data and
:meth:`SafeParser.deidentify` for the identifier repair and de-identification of ingest.

Cheap checks run in the parent before any worker is involved: the ``DICM`` prefix, NIfTI
magic, executable code in the 128-byte preamble (CVE-2019-11687: the preamble is zeroed in
``ParsedInstance.data`` and the event noted) and the per-file size cap.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from analytics.config import IngestLimits
from analytics.errors import (
    HepaTrackError,
    IngestError,
    InvalidDicomError,
    LimitExceededError,
    UnsupportedError,
)
from analytics.ingest._channel import WorkerProcess
from analytics.ingest.clean_copy import CleanBudget, CleanCopy, CleanRequest
from analytics.ingest.findings import LIMIT, MALFORMED, NOT_DICOM, TIMED_OUT, Rejection
from analytics.ingest.header import has_dicm, sniff
from analytics.ingest.parsed import ParsedInstance, instance_from_info, parse_trusted
from analytics.ingest.prechecks import nifti_magic, zero_preamble
from analytics.ingest.sources import SourceItem

HEADER_PREFIX_BYTES = 256 * 1024
#: header requests one worker request carries (a batch without de-identified copies):
#: fewer hand-offs between this process and the workers, each a wait for the scheduler
GROUP_FILES = 16


def _prefix_end(data: bytes) -> int:
    """How much of a file to send for its header: up to the pixel data element if a tag
    that looks like it turns up (a wrong guess only costs a second, whole-file request)."""
    for tag in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"):
        at = data.find(tag, 132, HEADER_PREFIX_BYTES)
        if at > 0:
            return at + 12  # tag, VR, reserved bytes and 4-byte length
    return HEADER_PREFIX_BYTES


# --------------------------------------------------------------------------- worker pool
@dataclass
class _Job:
    item: SourceItem
    data: bytes
    notes: list[str]
    deadline: float
    full_sent: bool
    clean: dict | None = None  # the parse request's ``clean`` meta, while it asks for one
    alone: bool = False  # sent in a request of its own (its group failed, or it needs more)
    full_next: bool = False  # its next request carries the whole file


@dataclass
class _Group:
    """Header requests of several files sent to one worker in one request (``parse_batch``).

    If the worker dies, runs past ``parse_timeout_s`` for the group or does not answer for
    every file, no file is blamed: each is sent again alone, under its own limits.
    """

    jobs: list[_Job]
    deadline: float = 0.0


class SafeParser:
    """Context manager owning a pool of parse workers.

    Parameters
    ----------
    limits
        ``parse_memory_bytes`` (RLIMIT_AS of each worker), ``parse_timeout_s`` (per file and
        step), ``max_file_bytes``, ``max_pixel_bytes`` and ``max_inflated_bytes``.
    workers
        Number of worker processes (files are parsed concurrently across them).

    Examples
    --------
    >>> with SafeParser(limits) as parser:                        # doctest: +SKIP
    ...     for result in parser.parse_many(iter_local_source(path, limits)):
    ...         ...
    """

    STARTUP_TIMEOUT_S = 60.0

    def __init__(self, limits: IngestLimits, workers: int = 1) -> None:
        self.limits = limits
        self.n_workers = max(1, int(workers))
        self._workers: list[WorkerProcess] = []
        self._busy: dict[int, _Job] = {}  # worker slot -> parse request outstanding

    # -- lifecycle
    def __enter__(self) -> SafeParser:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, n: int | None = None) -> None:
        """Start worker processes up to ``n`` (default: the pool size); idempotent.

        New workers start concurrently: each one spends its start-up importing pydicom.
        """
        want = self.n_workers if n is None else max(1, min(self.n_workers, n))
        new = [WorkerProcess(self.limits.parse_memory_bytes)
               for _ in range(want - len(self._workers))]
        for i, w in enumerate(new):
            try:
                self._ready(w)
            except IngestError:
                for other in new[i + 1:]:
                    other.kill()
                raise
            self._workers.append(w)

    def _ready(self, w: WorkerProcess) -> WorkerProcess:
        try:
            w.wait_ready(self.STARTUP_TIMEOUT_S)
        except (TimeoutError, EOFError) as e:
            w.kill()
            raise IngestError(f"parse worker failed to start ({e or type(e).__name__})") from e
        return w

    def _spawn(self) -> WorkerProcess:
        return self._ready(WorkerProcess(self.limits.parse_memory_bytes))

    def replace_exited(self) -> int:
        """Replace workers that exited while idle (killed from outside, e.g. by the OOM
        killer), so a long-lived pool never blames the next file for a worker that died
        before it was sent; returns how many were replaced.

        Raises
        ------
        IngestError
            A replacement failed to start.
        """
        gone = [i for i, w in enumerate(self._workers) if w.proc.poll() is not None]
        for i in gone:
            self._workers[i].kill()
            self._workers[i] = self._spawn()
        return len(gone)

    def close(self) -> None:
        """Stop every worker process."""
        for w in self._workers:
            w.kill()
        self._workers.clear()

    # -- parsing
    def _meta(self, op: str, total: int) -> dict:
        return {"op": op, "total": total, "max_file_bytes": self.limits.max_file_bytes,
                "max_pixel_bytes": self.limits.max_pixel_bytes,
                "max_inflated_bytes": self.limits.max_inflated_bytes}

    def _prepare(self, item: SourceItem | Rejection) -> _Job | ParsedInstance | Rejection:
        """Parent-side checks; a job for a worker, or a final result."""
        if isinstance(item, Rejection):
            return item
        if item.size > self.limits.max_file_bytes:
            return Rejection(item.name, f"file is {item.size} bytes, over the per-file cap of "
                                        f"{self.limits.max_file_bytes} bytes (max_file_bytes)",
                             LIMIT)
        try:
            data = item.read()
        except HepaTrackError as e:
            return Rejection(item.name, str(e), LIMIT)
        except OSError as e:
            return Rejection(item.name, f"cannot read file: {e}", MALFORMED)
        if len(data) > self.limits.max_file_bytes:
            return Rejection(item.name, f"file grew past the per-file cap of "
                                        f"{self.limits.max_file_bytes} bytes", LIMIT)
        if not has_dicm(data):
            if nifti_magic(data, self.limits):
                return ParsedInstance(
                    name=item.name, data=data, sop_class_uid=None, sop_instance_uid=None,
                    series_uid=None, study_uid=None, patient_id=None, modality=None,
                    kind="nifti", transfer_syntax_uid=None, notes=["NIfTI file"],
                    info={"kind": "nifti"})
            what = sniff(data)
            return Rejection(item.name, "not a DICOM file (no 'DICM' prefix at byte 128"
                                        + (f"; looks like {what})" if what else ")"), NOT_DICOM)
        data, note = zero_preamble(data)
        return _Job(item=item, data=data, notes=[note] if note else [],
                    deadline=0.0, full_sent=False)

    def _send(self, w: WorkerProcess, job: _Job, full: bool) -> None:
        meta = self._meta("parse", len(job.data))
        if job.clean is not None:  # the copy is made from the whole file, in two steps' time
            meta["clean"], full = job.clean, True
        end = len(job.data) if full else _prefix_end(job.data)
        blob = memoryview(job.data)[:end]
        job.full_sent = end >= len(job.data)
        steps = 2 if job.clean is not None else 1
        job.deadline = time.monotonic() + steps * self.limits.parse_timeout_s
        w.send(meta, blob, job.deadline)

    def _finish(self, job: _Job, reply: dict, blob: bytes = b"") -> ParsedInstance | Rejection:
        if not reply.get("ok"):
            return Rejection(job.item.name, reply.get("reason", "malformed file"),
                             reply.get("category", MALFORMED))
        try:
            inst = instance_from_info(job.item.name, job.data, reply["info"], job.notes,
                                      self.limits)
        except HepaTrackError as e:
            return Rejection(job.item.name, str(e), MALFORMED)
        outcome = reply.get("clean")
        if outcome is not None:
            inst.clean = (CleanCopy(blob, outcome.get("clean")) if outcome.get("ok")
                          else CleanCopy(b"", None, failure=outcome))
        return inst

    def cleaned(self, inst: ParsedInstance) -> tuple[bytes, dict[str, str | None] | None]:
        """The bytes to store and their facts from ``inst.clean``, as
        :meth:`deidentify_read` would give them for a de-identification without repair.

        Raises
        ------
        InvalidDicomError, LimitExceededError, UnsupportedError
            What the worker's de-identification of the file raised.
        """
        copy = inst.clean
        if copy is None:
            raise ValueError(f"{inst.name}: no de-identified copy was made with its header")
        if copy.failure is not None:
            self._raise_for(copy.failure, inst.name)
        return copy.data, copy.facts

    def parse(self, item: SourceItem) -> ParsedInstance | Rejection:
        """Parse one item's header under the limits (see :meth:`parse_many`)."""
        return next(iter(self.parse_many([item])))

    def parse_many(self, items: Iterable[SourceItem | Rejection],
                   clean: CleanRequest | None = None) -> Iterator[ParsedInstance | Rejection]:
        """Parse items concurrently on the pool; yield one result per item, as they finish.

        Rejections in ``items`` pass through unchanged. A worker that crashes or runs past
        ``parse_timeout_s`` is replaced and its file reported; the batch goes on.

        With ``clean``, each file (while the copies fit ``clean.budget_bytes``) is sent
        whole and the worker that parses its header also de-identifies it when it will be
        stored as it is (``_worker.CLEAN_AT_PARSE``): the copy comes back in
        ``ParsedInstance.clean``, so the file is neither read again nor sent twice, and
        the copies are made on every worker at once. A worker that dies or times out on
        such a request parses the file again without it (the copy is then made later,
        alone, and fails there as it would have).
        """
        budget = CleanBudget(clean)
        ask = budget.ask
        pending = iter(items)
        idle = list(range(len(self._workers)))
        busy = self._busy = {}  # worker slot -> job in flight (decode() avoids these)
        exhausted = False
        ahead: list[_Job | ParsedInstance | Rejection] = []  # read while the workers parse

        def take() -> _Job | ParsedInstance | Rejection | None:
            nonlocal exhausted
            if ahead:
                return ahead.pop()
            item = next(pending, None)
            if item is None:
                exhausted = True
                return None
            return self._prepare(item)

        def prefetch() -> None:
            """Read the next file while every worker is busy (no wait for the disk)."""
            if not ahead and not exhausted and busy and not idle:
                prepared = take()
                if prepared is not None:
                    ahead.append(prepared)

        def fill() -> list[ParsedInstance | Rejection]:
            """Hand pending items to idle workers; results that need no worker come back.
            The pool grows to ``n_workers`` only while files wait for a worker."""
            done: list[ParsedInstance | Rejection] = []
            while (ahead or not exhausted) and (idle or len(self._workers) < self.n_workers):
                prepared = take()
                if prepared is None:
                    break
                if not isinstance(prepared, _Job):
                    done.append(prepared)
                    continue
                if not idle:
                    self._workers.append(self._spawn())
                    idle.append(len(self._workers) - 1)
                slot = idle.pop()
                group = (self._group(prepared, take, ahead, done)
                         if clean is None and not prepared.alone else None)
                if group is not None and len(group.jobs) > 1:
                    self._send_group(slot, group, busy, idle, ahead)
                    continue
                failed = self._dispatch(slot, ask(prepared), full=prepared.full_next)
                if failed is None:
                    busy[slot] = prepared
                else:
                    idle.append(slot)
                    done.append(failed)
            return done

        try:
            for res in self._drive(busy, fill, idle, prefetch,
                                   lambda group: _requeue(group, ahead)):
                yield budget.settle(res)
        finally:
            # Abandoned mid-batch: replies still owed would desynchronise the next request.
            for slot in list(busy):
                self._workers[slot].kill()
                self._workers[slot] = self._spawn()
            busy.clear()

    def _send_group(self, slot: int, group: _Group, busy: dict[int, _Job | _Group],
                    idle: list[int], ahead: list) -> None:
        """Hand ``group`` to worker ``slot``; if it cannot take it, each file of the group
        goes back in line to be sent alone."""
        if self._dispatch_group(slot, group):
            busy[slot] = group
            return
        idle.append(slot)
        _requeue(group, ahead)

    def _drive(self, busy: dict[int, _Job | _Group], fill, idle: list[int], prefetch,
               requeue) -> Iterator[ParsedInstance | Rejection]:
        yield from fill()
        while busy:
            prefetch()
            fds = {self._workers[slot].out_fd: slot for slot in busy}
            timeout = max(0.0, min(job.deadline for job in busy.values()) - time.monotonic())
            readable, _, _ = select.select(list(fds), [], [], timeout)
            now = time.monotonic()
            for fd, slot in fds.items():
                job = busy[slot]
                if fd not in readable and now < job.deadline:
                    continue
                del busy[slot]
                if isinstance(job, _Group):
                    idle.append(slot)
                    finished = self._settle_group(slot, job, requeue)
                    immediate = fill()
                    yield from finished
                    yield from immediate
                    continue
                reply, blob, died = self._collect(slot, job)
                full = True  # the worker asked for the whole file
                if died and job.clean is not None:
                    job.clean, reply, full = None, None, False  # parse alone (see parse_many)
                if reply is None:
                    failed = self._dispatch(slot, job, full=full)
                    if failed is None:
                        busy[slot] = job
                        continue
                    reply = failed
                idle.append(slot)
                # Keep the worker busy while this process finishes the previous file.
                immediate = fill()
                yield (reply if isinstance(reply, Rejection)
                       else self._finish(job, reply, blob))
                yield from immediate
            yield from fill()

    @staticmethod
    def _group(first: _Job, take, ahead: list, done: list) -> _Group:
        """``first`` and up to ``GROUP_FILES - 1`` more files to parse (their header
        only) in one request; what needs no worker goes to ``done``."""
        jobs = [first]
        while len(jobs) < GROUP_FILES:
            prepared = take()
            if prepared is None:
                break
            if not isinstance(prepared, _Job):
                done.append(prepared)
            elif prepared.alone:
                ahead.append(prepared)
                break
            else:
                jobs.append(prepared)
        return _Group(jobs)

    def _dispatch_group(self, slot: int, group: _Group) -> bool:
        """Send every header of ``group`` in one request; False (the worker replaced)
        if that failed."""
        parts, blobs, at = [], [], 0
        for job in group.jobs:
            end = _prefix_end(job.data)
            job.full_sent = end >= len(job.data)
            blobs.append(memoryview(job.data)[:end])
            parts.append([at, min(end, len(job.data)), len(job.data)])
            at += parts[-1][1]
        meta = {**self._meta("parse_batch", at), "parts": parts}
        group.deadline = time.monotonic() + self.limits.parse_timeout_s
        try:
            self._workers[slot].send(meta, b"".join(blobs), group.deadline)
        except (TimeoutError, OSError):
            self._replace(slot)
            return False
        return True

    def _settle_group(self, slot: int, group: _Group, requeue
                      ) -> list[ParsedInstance | Rejection]:
        """The results of a group's request; a failed group is sent again file by file."""
        try:
            reply, _ = self._workers[slot].recv(group.deadline)
        except (TimeoutError, EOFError, OSError, ValueError):
            self._replace(slot)
            reply = {}
        parts = reply.get("parts") if reply.get("ok") else None
        if (not isinstance(parts, list) or len(parts) != len(group.jobs)
                or not all(isinstance(part, dict) for part in parts)):
            requeue(group)
            return []
        out: list[ParsedInstance | Rejection] = []
        for job, part in zip(group.jobs, parts, strict=True):
            if not part.get("need_more"):
                out.append(self._finish(job, part))
            elif job.full_sent:
                out.append(Rejection(job.item.name, "malformed file: the header does not end",
                                     MALFORMED))
            else:  # a header longer than its prefix: the whole file, alone
                job.full_next = True
                requeue(_Group([job]))
        return out

    def _replace(self, slot: int) -> None:
        self._workers[slot].kill()
        self._workers[slot] = self._spawn()

    def _fail(self, slot: int, job: _Job, timed_out: bool) -> Rejection:
        w = self._workers[slot]
        if timed_out:
            rej = Rejection(job.item.name, f"timed out: parsing took longer than "
                                           f"{self.limits.parse_timeout_s:g} s (parse_timeout_s)",
                            TIMED_OUT)
        else:
            w.kill()
            rej = Rejection(job.item.name, f"malformed file: the parser process died "
                                           f"({w.describe_death()}) while reading it", MALFORMED)
        w.kill()
        self._workers[slot] = self._spawn()
        return rej

    def _dispatch(self, slot: int, job: _Job, full: bool) -> Rejection | None:
        try:
            self._send(self._workers[slot], job, full)
        except TimeoutError:
            return self._fail(slot, job, timed_out=True)
        except OSError:
            return self._fail(slot, job, timed_out=False)
        return None

    def _collect(self, slot: int, job: _Job) -> tuple[dict | Rejection | None, bytes, bool]:
        """The worker's reply and blob, and whether the worker died or timed out (it is
        then replaced and the reply is the file's Rejection); None if it asked for the
        whole file."""
        try:
            reply, blob = self._workers[slot].recv(job.deadline)
        except TimeoutError:
            return self._fail(slot, job, timed_out=True), b"", True
        except (EOFError, OSError, ValueError):
            return self._fail(slot, job, timed_out=False), b"", True
        if reply.get("need_more"):
            if job.full_sent:
                return Rejection(job.item.name, "malformed file: the header does not end",
                                 MALFORMED), b"", False
            return None, b"", False
        return reply, blob, False

    # -- whole-file requests (decode, de-identify), one at a time, in a worker
    def _request(self, meta: dict, data: bytes, name: str, what: str) -> tuple[dict, bytes]:
        """Send one whole-file request to an idle worker and wait for its reply.

        A worker that dies or runs past ``parse_timeout_s`` is killed and replaced (never
        retried: the same bytes would do the same again).

        Raises
        ------
        LimitExceededError
            The request took longer than ``parse_timeout_s``.
        InvalidDicomError
            The worker died while working on the file (e.g. killed at its memory limit).
        """
        self.start(1)
        # A parse_many() in progress may have a request in flight on any worker: use an
        # idle one, or a worker of its own.
        idle = [n for n in range(len(self._workers)) if n not in self._busy]
        slot = idle[0] if idle else None
        w = self._workers[slot] if slot is not None else self._spawn()
        deadline = time.monotonic() + self.limits.parse_timeout_s
        try:
            w.send(meta, memoryview(data), deadline)
            return w.recv(deadline)
        except (TimeoutError, EOFError, OSError, ValueError) as e:
            timed_out = isinstance(e, TimeoutError)
            w.kill()
            if slot is not None:
                self._workers[slot] = self._spawn()
            if timed_out:
                raise LimitExceededError(
                    f"{name}: limit: {what} took longer than {self.limits.parse_timeout_s:g} s "
                    "(parse_timeout_s)") from None
            raise InvalidDicomError(f"{name}: malformed file: the {what} process died "
                                    f"({w.describe_death()})") from None
        finally:
            if slot is None:
                w.kill()

    @staticmethod
    def _raise_for(reply: dict, name: str) -> None:
        """Raise the typed error a failed reply stands for, naming the file once."""
        if reply.get("ok"):
            return
        cls = {LIMIT: LimitExceededError, "unsupported": UnsupportedError}.get(
            reply.get("category"), InvalidDicomError)
        reason = reply.get("reason") or "malformed file"
        raise cls(reason if reply.get("named") else f"{name}: {reason}")

    def deidentify(self, data: bytes, *, name: str, secret: bytes, deidentify: bool,
                   repair: dict[str, str] | None = None, blank_regions: bool = False) -> bytes:
        """Repair and de-identify a whole file in a worker, under the parse limits.

        The bytes of :meth:`deidentify_read`, without what the worker read from the copy.
        """
        return self.deidentify_read(data, name=name, secret=secret, deidentify=deidentify,
                                    repair=repair, blank_regions=blank_regions)[0]

    def deidentify_read(self, data: bytes, *, name: str, secret: bytes, deidentify: bool,
                        repair: dict[str, str] | None = None, blank_regions: bool = False
                        ) -> tuple[bytes, dict[str, str | None] | None]:
        """Repair and de-identify a whole file in a worker, under the parse limits.

        The worker parses the file once, de-identifies that dataset in memory and encodes
        it once; what ingest files the copy by comes back with it, so nobody parses the
        de-identified bytes again.

        Parameters
        ----------
        data
            The file as received (already through :meth:`parse_many`).
        name
            Display name, for errors.
        secret
            The site secret (sent to the worker over its pipe, never stored).
        deidentify
            Apply the profile (:meth:`analytics.ingest.deid.Deidentifier.deidentify_bytes`).
        repair
            Identifiers to write first (``repair.Repair.values``); None for no repair.
            An empty dict still re-encodes the file (SOP UIDs recovered from the file meta).
        blank_regions
            Blank an ultrasound file's pixels outside its 2-D image regions, after the
            de-identification (``analytics.ingest.ultrasound.blank_bytes``).

        Returns
        -------
        bytes, dict or None
            The bytes to store: byte for byte what the in-process path would give, or
            ``data`` itself when nothing is to be changed; and, when the header was
            de-identified (and the pixels not cleaned after it), the values of the copy
            named in ``analytics.ingest._worker.CLEAN_FACTS`` (None otherwise).

        Raises
        ------
        InvalidDicomError
            Malformed file (unreadable, nested too deeply, needs more memory than
            ``parse_memory_bytes``, or the worker died), or a reason of
            :meth:`~analytics.ingest.deid.Deidentifier.deidentify`.
        LimitExceededError
            More than ``MAX_DEID_ELEMENTS`` elements, or over ``parse_timeout_s``.
        """
        if repair is None and not deidentify and not blank_regions:
            return data, None
        meta = {**self._meta("deidentify", len(data)), "name": name, "repair": repair,
                "deidentify": bool(deidentify), "secret": secret.hex() if deidentify else "",
                "blank_regions": bool(blank_regions)}
        what = ("de-identification" if deidentify else
                "pixel cleaning" if blank_regions else "identifier repair")
        reply, blob = self._request(meta, data, name, what)
        self._raise_for(reply, name)
        if not reply.get("changed"):
            return data, None
        return blob, reply.get("clean")

    # -- pixel decoding of compressed data, in a worker
    def decode(self, inst: ParsedInstance):
        """Decode the pixel data of a (compressed or deflated) instance in a worker.

        Returns
        -------
        numpy.ndarray
            Stored values, shape ``(frames, rows, cols)`` (or with samples last).

        Raises
        ------
        InvalidDicomError
            The codec failed, the worker died, or decoding timed out.
        """
        try:
            reply, blob = self._request(self._meta("decode", len(inst.data)), inst.data,
                                        inst.name, "pixel decoding")
        except LimitExceededError:
            raise InvalidDicomError(f"{inst.name}: pixel decoding timed out after "
                                    f"{self.limits.parse_timeout_s:g} s (parse_timeout_s)"
                                    ) from None
        self._raise_for(reply, inst.name)
        arr = np.frombuffer(blob, dtype=np.dtype(reply["dtype"]))
        shape = tuple(reply["shape"])
        if not inst.info.get("has_frames_tag", "NumberOfFrames" in inst.header):
            shape = (1, *shape)  # one frame: pydicom drops the frame axis
        return arr.reshape(shape)


__all__ = ["ParsedInstance", "SafeParser", "parse_trusted",
           "zero_preamble"]


def _requeue(group: _Group, ahead: list) -> None:
    """Put each file of a group that failed as a whole back in line, to be sent alone
    under its own limits (so a file that kills a worker is named)."""
    for job in group.jobs:
        job.alone = True
        ahead.append(job)
