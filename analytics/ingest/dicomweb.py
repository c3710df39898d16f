"""DICOMweb PACS access: QIDO-RS search and WADO-RS retrieval at study or series level.

Searches go through ``dicomweb_client.DICOMwebClient`` on a ``requests.Session`` configured
here (basic or bearer auth, connect/read timeouts). Its own retrying is switched off and
replaced by a bounded budget (``PacsSettings.max_retries``), so a hung PACS fails within
``(1 + max_retries) * (connect + read timeout)`` plus short back-offs.

Socket timeouts bound each wait, not a request: a server that trickles one byte per
read never trips them. Each search request therefore has a total deadline
(``request_deadline_s``) and each series retrieval, retries included, another
(``retrieval_deadline_s``); a watchdog cuts the client's connections when one passes.

Credentials are scoped: they go only to a URL under a configured endpoint (scheme, host,
port and path prefix on a segment boundary, see :func:`in_scope`), and a URL under no
configured endpoint is refused before anything is sent.

Retrieval streams the WADO-RS ``multipart/related`` reply through the same session and
splits it here rather than in dicomweb-client, which parses every part with pydicom
without limits and returns the parts of a truncated reply silently. Each part becomes a
:class:`~analytics.ingest.sources.SourceItem` for the safe parser. A series is incomplete
when the closing boundary is missing, when a part is cut short, or when fewer instances
arrive than QIDO-RS reported.

No credentials, tokens, query values or UIDs are logged: the loggers of dicomweb-client
and urllib3 (which print URLs and query strings) are held at WARNING.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3
from dicomweb_client.api import DICOMwebClient

from analytics.config import IngestLimits, PacsSettings, Settings, dicomweb_root_problem
from analytics.errors import IngestError, LimitExceededError, PacsError
from analytics.ingest.pacs_http import (
    DeadlineWatchdog,
    EndpointScope,
    ScopedAuth,
    endpoint_scope,
    in_scope,
    watched_adapter,
)
from analytics.ingest.sources import SourceItem

log = logging.getLogger(__name__)
for _noisy in ("dicomweb_client", "urllib3", "urllib3.connectionpool"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)  # they log URLs with UIDs and queries

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_CHUNK = 1 << 20
T = TypeVar("T")

WADO_ACCEPT = ('multipart/related; type="application/dicom"; transfer-syntax=*')
WADO_ACCEPT_DEFAULT = 'multipart/related; type="application/dicom"'


@dataclass(frozen=True)
class DicomwebTarget:
    """A parsed ``hepatrack ingest`` URL: the service root and the study/series wanted."""

    base_url: str  # scheme://host[:port]/path-to-dicom-web, without credentials
    study_uid: str
    series_uid: str | None = None
    username: str | None = None
    password: str | None = None


@dataclass
class RetrievedSeries:
    """One series as it came from the PACS."""

    study_uid: str
    series_uid: str
    items: list[SourceItem] = field(default_factory=list)
    expected: int | None = None
    complete: bool = True
    reason: str | None = None  # why it is incomplete (no identifiers in it)


def is_dicomweb_url(source: object) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def parse_dicomweb_url(url: str) -> DicomwebTarget:
    """Split ``…/studies/UID[/series/UID]`` into service root, study and series.

    Raises
    ------
    IngestError
        If the URL names no study (a whole archive is never pulled), or a UID is malformed.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IngestError("not an http(s) DICOMweb URL")
    path = parts.path.rstrip("/")
    m = re.match(r"^(?P<root>.*?)/studies/(?P<study>[^/]+)(?:/series/(?P<series>[^/]+))?$", path)
    if not m:
        raise IngestError(
            "name a study or a series "
            "(…/dicom-web/studies/UID or …/dicom-web/studies/UID/series/UID); "
            "a whole archive is never pulled")
    for label in ("study", "series"):
        uid = m.group(label)
        if uid is not None and (not _UID.match(uid) or len(uid) > 64):
            raise IngestError(f"the {label} UID is not a valid DICOM UID "
                              "(digits and dots, at most 64 characters)")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = urlunsplit((parts.scheme, netloc, m.group("root"), "", ""))
    return DicomwebTarget(base_url=base, study_uid=m.group("study"),
                          series_uid=m.group("series"), username=parts.username,
                          password=parts.password)


def redact_url(url: str) -> str:
    """The URL without credentials, query or UIDs: safe for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    netloc = host + (f":{parts.port}" if parts.port else "")
    path = re.sub(r"/(studies|series|instances)/[^/]+", r"/\1/…", parts.path)
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def pacs_for(target: DicomwebTarget, settings: Settings) -> PacsSettings:
    """The configured endpoint serving ``target`` (the deepest path prefix in scope).

    Credentials come from the endpoint (a ``[[pacs]]`` entry in ``config.toml`` or
    ``HEPATRACK_PACS_URL`` with ``HEPATRACK_PACS_USER``/``PASSWORD``/``TOKEN``), or from
    the URL itself when it is under that endpoint.

    Raises
    ------
    PacsError
        If no configured endpoint covers the URL: nothing is sent to an unconfigured host.
    """
    match: tuple[PacsSettings, EndpointScope] | None = None
    for p in settings.pacs:
        scope = endpoint_scope(p.url)
        if scope is not None and in_scope(target.base_url, scope) and (
                match is None or len(scope.path) > len(match[1].path)):
            match = (p, scope)
    if match is None:
        here = endpoint_scope(target.base_url)
        where = f"{here.origin}{here.path}" if here else redact_url(target.base_url)
        raise PacsError(
            f"{where} is not a configured PACS endpoint; HepaTrack sends requests and "
            "credentials only to configured endpoints",
            hint="add a [[pacs]] entry with this url (and its credentials) to config.toml "
                 "in the home folder, or set HEPATRACK_PACS_URL")
    pacs = replace(match[0], url=target.base_url)
    if target.username is not None:
        pacs = replace(pacs, username=target.username, password=target.password, token=None)
    return pacs


class PacsClient:
    """A DICOMweb endpoint with auth, timeouts and a bounded retry budget.

    Parameters
    ----------
    pacs
        Endpoint, credentials, ``connect_timeout_s``, ``read_timeout_s``, ``max_retries``.
    limits
        ``max_series_bytes`` and ``max_file_bytes`` bound what one retrieval may bring in.
    """

    BACKOFF_S = (0.5, 1.0, 2.0, 4.0)

    def __init__(self, pacs: PacsSettings, limits: IngestLimits | None = None) -> None:
        self.pacs = pacs
        self.limits = limits or IngestLimits()
        self.timeout = (pacs.connect_timeout_s, pacs.read_timeout_s)
        self.watchdog = DeadlineWatchdog()
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc credentials picked up silently
        adapter = watched_adapter(self.watchdog)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.auth = ScopedAuth(pacs)
        self.client = DICOMwebClient(url=pacs.url.rstrip("/"), session=self.session,
                                     timeout=self.timeout)
        self.client.set_http_retry_params(retry=False)
        self.where = redact_url(pacs.url)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> PacsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- deadlines
    def _request_deadline(self, what: str, call: Callable[[], T]) -> Callable[[], T]:
        """``call`` run under the per-request deadline (``request_deadline_s``)."""
        def limited() -> T:
            with self.watchdog.limit(self.pacs.request_deadline_s):
                try:
                    return call()
                except Exception:  # once cut, any failure (even a parse error) is the deadline
                    self._check_deadline(what, self.pacs.request_deadline_s,
                                         "request_deadline_s")
                    raise
        return limited

    def _check_deadline(self, what: str, seconds: float, setting: str) -> None:
        if self.watchdog.expired.is_set():
            raise PacsError(f"PACS {self.where}: {what} did not finish within its "
                            f"{seconds:g} s deadline ({setting}); the connection was cut",
                            hint=f"raise {setting} in the [[pacs]] entry if this PACS is "
                                 "slow but sound")

    # -- bounded retries
    def _with_retries(self, what: str, call: Callable[[], T],
                      deadline: tuple[float, str] | None = None) -> T:
        attempts = 1 + max(0, int(self.pacs.max_retries))
        for attempt in range(attempts):
            if deadline is not None:
                self._check_deadline(what, *deadline)
            try:
                return call()
            except PacsError:
                if deadline is not None:  # a reply cut by the watchdog looks malformed
                    self._check_deadline(what, *deadline)
                raise
            except requests.HTTPError as e:
                status = e.response.status_code if e.response is not None else None
                if status in (401, 403):
                    raise PacsError(f"PACS {self.where}: {what} refused ({status}): check the "
                                    "credentials (HEPATRACK_PACS_USER/PASSWORD/TOKEN)") from None
                if status == 404:
                    raise PacsError(f"PACS {self.where}: {what}: not found (404)") from None
                if status == 400:
                    raise self._bad_request(what) from None
                if status not in _RETRY_STATUS or attempt == attempts - 1:
                    raise PacsError(f"PACS {self.where}: {what} failed (HTTP {status}) after "
                                    f"{attempt + 1} attempt(s)") from None
                reason = f"HTTP {status}"
            except requests.Timeout:
                if deadline is not None:
                    self._check_deadline(what, *deadline)
                reason = (f"no answer within {self.pacs.connect_timeout_s:g} s connect / "
                          f"{self.pacs.read_timeout_s:g} s read timeout")
                if attempt == attempts - 1:
                    raise PacsError(f"PACS {self.where}: {what}: {reason}; gave up after "
                                    f"{attempts} attempt(s)") from None
            except requests.ConnectionError:
                if deadline is not None:
                    self._check_deadline(what, *deadline)
                reason = "connection failed"
                if attempt == attempts - 1:
                    raise PacsError(f"PACS {self.where}: {what}: {reason}; gave up after "
                                    f"{attempts} attempt(s)") from None
            if deadline is not None:
                self._check_deadline(what, *deadline)
            log.info("PACS %s: %s: %s; retry %d of %d", self.where, what, reason, attempt + 1,
                     attempts - 1)
            # an expired deadline ends the back-off at once
            self.watchdog.expired.wait(self.BACKOFF_S[min(attempt, len(self.BACKOFF_S) - 1)])
        raise AssertionError("unreachable")  # pragma: no cover

    def _bad_request(self, what: str) -> PacsError:
        """HTTP 400: most often a URL that is not the DICOMweb root (Orthanc's REST API at
        ``http://host:8042`` answers DICOMweb paths so); the message names the URL."""
        problem = dicomweb_root_problem(self.pacs.url)
        if problem is None:
            return PacsError(f"PACS {self.where}: {what} refused as a bad request (HTTP 400); "
                             "the server did not accept this DICOMweb request")
        return PacsError(f"PACS {self.where}: {what} refused as a bad request (HTTP 400): "
                         f"{self.where} is not a DICOMweb root; {problem}",
                         hint="set the url of this [[pacs]] entry (or HEPATRACK_PACS_URL) "
                              "to the DICOMweb root, for Orthanc …/dicom-web")

    # -- QIDO-RS
    def search_series(self, study_uid: str, series_uid: str | None = None
                      ) -> list[dict[str, Any]]:
        """QIDO-RS series of a study: ``[{series_uid, modality, n_instances}]``."""
        filters = {"SeriesInstanceUID": series_uid} if series_uid else None
        found = self._with_retries("series search", self._request_deadline(
            "series search", lambda: self.client.search_for_series(
                study_instance_uid=study_uid, search_filters=filters,
                fields=["NumberOfSeriesRelatedInstances", "Modality"])))
        out = []
        for item in found:
            uid = _json_value(item, "0020000E")
            if uid:
                n = _json_value(item, "00201209")
                out.append({"series_uid": str(uid), "modality": _json_value(item, "00080060"),
                            "n_instances": int(n) if n is not None else None})
        return out

    # -- WADO-RS
    def retrieve_series(self, study_uid: str, series_uid: str, expected: int | None = None
                        ) -> RetrievedSeries:
        """Retrieve one series; incomplete if the reply was cut or short of ``expected``.

        Raises
        ------
        PacsError
            If the PACS cannot be reached or refuses within the retry budget, or the
            retrieval, retries included, outlasts ``retrieval_deadline_s``.
        """
        with self.watchdog.limit(self.pacs.retrieval_deadline_s):
            return self._retrieve_series(study_uid, series_uid, expected)

    def _retrieve_series(self, study_uid: str, series_uid: str, expected: int | None
                         ) -> RetrievedSeries:
        url = f"{self.pacs.url.rstrip('/')}/studies/{quote(study_uid)}/series/{quote(series_uid)}"
        deadline = (self.pacs.retrieval_deadline_s, "retrieval_deadline_s")
        best: RetrievedSeries | None = None
        attempts = 1 + max(0, int(self.pacs.max_retries))
        for attempt in range(attempts):
            got = self._with_retries("series retrieval", lambda: self._get_series(url),
                                     deadline)
            self._check_deadline("series retrieval", *deadline)
            got.study_uid, got.series_uid, got.expected = study_uid, series_uid, expected
            if expected is not None and got.complete and len(got.items) < expected:
                got.complete = False
                got.reason = (f"PACS sent {len(got.items)} of the {expected} instances its "
                              "QIDO-RS search reported")
            if best is None or len(got.items) > len(best.items) or got.complete:
                best = got
            if got.complete:
                break
            log.info("PACS %s: incomplete series reply (%s); retry %d of %d", self.where,
                     got.reason, attempt + 1, attempts - 1)
        assert best is not None
        return best

    def _get_series(self, url: str) -> RetrievedSeries:
        try:
            resp = self._open(url, WADO_ACCEPT)
        except requests.HTTPError as e:
            if e.response is None or e.response.status_code not in (400, 406):
                raise
            resp = self._open(url, WADO_ACCEPT_DEFAULT)  # server refuses transfer-syntax=*
        with resp:
            ctype = resp.headers.get("Content-Type", "")
            boundary = _boundary(ctype)
            if not ctype.lower().startswith("multipart/related") or boundary is None:
                raise PacsError(f"PACS {self.where}: series retrieval answered "
                                f"{ctype.split(';')[0] or 'no content type'}, expected "
                                "multipart/related with a boundary")
            out = RetrievedSeries(study_uid="", series_uid="")
            # a short body is detected by the multipart check, not by urllib3 (which would
            # drop the bytes it buffered when the declared length is not met)
            resp.raw.enforce_content_length = False
            try:
                chunks = resp.raw.stream(_CHUNK, decode_content=True)
                for n, part in enumerate(split_multipart(chunks, boundary, self.limits)):
                    out.items.append(SourceItem.from_bytes(f"dicomweb part {n + 1}", part))
            except TruncatedReply as e:
                out.complete = False
                out.reason = str(e)
            except LimitExceededError as e:
                raise PacsError(f"PACS {self.where}: series retrieval: {e}") from None
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                out.complete = False
                out.reason = f"the reply stopped mid-transfer ({type(e).__name__})"
        return out

    def _open(self, url: str, accept: str) -> requests.Response:
        resp = self.session.get(url, headers={"Accept": accept}, stream=True,
                                timeout=self.timeout)
        if resp.status_code >= 400:
            resp.close()
            resp.raise_for_status()
        return resp


class TruncatedReply(Exception):
    """A multipart reply ended before its closing boundary."""


def _boundary(content_type: str) -> str | None:
    m = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    return m.group(1).strip() if m else None


def split_multipart(chunks: Iterator[bytes], boundary: str, limits: IngestLimits
                    ) -> Iterator[bytes]:
    """Yield the bodies of a ``multipart/related`` stream, checking its closing boundary.

    Raises
    ------
    TruncatedReply
        If the stream ends inside a part or before the closing ``--boundary--``; the parts
        yielded before are complete.
    LimitExceededError
        If a part exceeds ``max_file_bytes`` or the reply exceeds ``max_series_bytes``.
    """
    delim = b"--" + boundary.encode("latin-1")
    buf = bytearray()
    total = 0
    state = "preamble"
    part_start = 0
    scan_from = 0
    for chunk in chunks:
        if not chunk:
            continue
        total += len(chunk)
        if total > limits.max_series_bytes:
            raise LimitExceededError(f"reply exceeds the per-series cap of "
                                     f"{limits.max_series_bytes} bytes (max_series_bytes)")
        buf += chunk
        while True:
            if state == "preamble":
                i = buf.find(delim)
                if i < 0:
                    break
                del buf[:i]
                state, scan_from = "after_delim", 0
            if state == "after_delim":
                if len(buf) < len(delim) + 2:
                    break
                tail = bytes(buf[len(delim):len(delim) + 2])
                if tail == b"--":
                    return  # closing boundary: everything arrived
                j = buf.find(b"\r\n\r\n", len(delim))
                if j < 0:
                    if len(buf) > 64 * 1024:
                        raise TruncatedReply("a part header does not end")
                    break
                part_start = j + 4
                state, scan_from = "body", part_start
            if state == "body":
                k = buf.find(b"\r\n" + delim, scan_from)
                if k < 0:
                    scan_from = max(part_start, len(buf) - len(delim) - 2)
                    if len(buf) - part_start > limits.max_file_bytes:
                        raise LimitExceededError(f"a part exceeds the per-file cap of "
                                                 f"{limits.max_file_bytes} bytes")
                    break
                yield bytes(buf[part_start:k])
                del buf[:k + 2]
                state = "after_delim"
    if state == "body":
        raise TruncatedReply("the reply was cut inside an instance (no closing boundary)")
    raise TruncatedReply("the reply ended without its closing boundary")


def _json_value(item: dict[str, Any], tag: str) -> Any:
    """First value of a DICOM JSON attribute (PN as its alphabetic form), or None."""
    attr = item.get(tag) or {}
    values = attr.get("Value") or []
    if not values:
        return None
    v = values[0]
    if isinstance(v, dict):
        return v.get("Alphabetic")
    return v


def fetch(url: str, settings: Settings) -> list[RetrievedSeries]:
    """Retrieve the series named by a DICOMweb URL (a study's series, or one series).

    Raises
    ------
    IngestError
        If the URL names no study or has a malformed UID.
    PacsError
        If the PACS cannot be reached, refuses, or the study has no series.
    """
    target = parse_dicomweb_url(url)
    with PacsClient(pacs_for(target, settings), settings.limits) as pacs:
        found = pacs.search_series(target.study_uid, target.series_uid)
        if target.series_uid and not found:
            # some archives do not filter on SeriesInstanceUID: retrieve it anyway
            found = [{"series_uid": target.series_uid, "n_instances": None}]
        if not found:
            raise PacsError(f"PACS {pacs.where}: the study has no series there")
        return [pacs.retrieve_series(target.study_uid, s["series_uid"], s.get("n_instances"))
                for s in found if not target.series_uid or s["series_uid"] == target.series_uid]


def search_studies(pacs_settings: PacsSettings, patient_id: str | None = None,
                   date_range: tuple[Any, Any] | None = None, modality: str | None = None,
                   accession: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """QIDO-RS study search for the PACS search form.

    Parameters
    ----------
    pacs_settings
        The endpoint (its ``url`` is the DICOMweb root).
    patient_id, modality, accession
        Exact-match filters (``ModalitiesInStudy`` for ``modality``).
    date_range
        ``(first, last)`` dates (``datetime.date`` or ``YYYYMMDD``); either may be None.
    limit
        At most this many studies.

    Returns
    -------
    list of dict
        ``study_uid, patient_id, patient_name, study_date (YYYY-MM-DD or None), modalities,
        description, accession, n_series, n_instances, url`` (``url`` is what ``hepatrack
        ingest`` takes). Identified data: for clinician views, never logged.
    """
    filters: dict[str, Any] = {}
    if patient_id:
        filters["PatientID"] = patient_id
    if modality:
        filters["ModalitiesInStudy"] = modality
    if accession:
        filters["AccessionNumber"] = accession
    if date_range and any(date_range):
        first, last = (_qido_date(d) for d in date_range)
        filters["StudyDate"] = f"{first}-{last}"
    fields = ["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances", "PatientName", "PatientID", "AccessionNumber"]
    with PacsClient(pacs_settings) as pacs:
        found = pacs._with_retries("study search", pacs._request_deadline(
            "study search", lambda: pacs.client.search_for_studies(
                limit=max(1, int(limit)), fields=fields, search_filters=filters or None)))
    out = []
    for item in found[:limit]:
        uid = _json_value(item, "0020000D")
        if not uid:
            continue
        date = _json_value(item, "00080020")
        mods = (item.get("00080061") or {}).get("Value") or []
        n_series, n_inst = _json_value(item, "00201206"), _json_value(item, "00201208")
        out.append({
            "study_uid": str(uid), "patient_id": _json_value(item, "00100020"),
            "patient_name": _json_value(item, "00100010"),
            "study_date": f"{date[:4]}-{date[4:6]}-{date[6:8]}" if date and len(date) >= 8
            else None,
            "modalities": [str(m) for m in mods],
            "description": _json_value(item, "00081030"),
            "accession": _json_value(item, "00080050"),
            "n_series": int(n_series) if n_series is not None else None,
            "n_instances": int(n_inst) if n_inst is not None else None,
            "url": f"{pacs_settings.url.rstrip('/')}/studies/{uid}",
        })
    return out


def _qido_date(d: Any) -> str:
    if d is None or d == "":
        return ""
    if hasattr(d, "strftime"):
        return d.strftime("%Y%m%d")
    text = str(d).replace("-", "")
    if not (len(text) == 8 and text.isdigit()):
        raise IngestError(f"date range: {d!r} is not a date (expected YYYY-MM-DD)")
    return text
