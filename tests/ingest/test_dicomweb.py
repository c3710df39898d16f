"""DICOMweb: URL forms, multipart checks, hung and truncating servers, a real Orthanc."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from analytics.config import IngestLimits, PacsSettings, load_settings
from analytics.errors import IngestError, LimitExceededError, PacsError
from analytics.ingest.dicomweb import (
    PacsClient,
    TruncatedReply,
    endpoint_scope,
    fetch,
    in_scope,
    parse_dicomweb_url,
    search_studies,
    split_multipart,
)
from analytics.ingest.pipeline import ingest_sources
from analytics.store import open_store
from analytics.store.schema import Mask, Series
from tests.ingest.dicom_samples import Study, ct_series, encode, seg_for
from tests.ingest.slow_pacs import trickling_server

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"
BOUNDARY = "hepatrack-test-boundary"


# --------------------------------------------------------------------------- URL forms
@pytest.mark.parametrize(("url", "base", "study", "series"), [
    (f"http://pacs:8042/dicom-web/studies/{STUDY}", "http://pacs:8042/dicom-web", STUDY, None),
    (f"https://h/x/dicom-web/studies/{STUDY}/series/{SERIES}/", "https://h/x/dicom-web", STUDY,
     SERIES),
    (f"http://u:p@h/dicom-web/studies/{STUDY}", "http://h/dicom-web", STUDY, None),
])
def test_url_forms(url, base, study, series):
    t = parse_dicomweb_url(url)
    assert (t.base_url, t.study_uid, t.series_uid) == (base, study, series)


@pytest.mark.parametrize(("url", "match"), [
    ("http://pacs/dicom-web", "name a study or a series"),
    ("http://pacs/dicom-web/studies", "name a study or a series"),
    ("http://pacs/dicom-web/studies/1.2.abc", "study UID is not a valid DICOM UID"),
    (f"http://pacs/dicom-web/studies/{STUDY}/series/{'1.' * 40}1", "series UID is not a valid"),
    ("ftp://pacs/dicom-web/studies/1.2", "not an http"),
], ids=["root", "studies", "bad-study", "long-series", "ftp"])
def test_url_forms_refused(url, match):
    with pytest.raises(IngestError, match=match):
        parse_dicomweb_url(url)


# --------------------------------------------------------------------------- multipart
def _multipart(parts: list[bytes], closed: bool = True) -> bytes:
    body = b"".join(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
                    + p + b"\r\n" for p in parts)
    return body + (b"--" + BOUNDARY.encode() + b"--\r\n" if closed else b"")


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_split_multipart_whole_reply(chunk):
    parts = [b"first\r\n--not-the-boundary", b"", b"third" * 100]
    got = list(split_multipart(_chunks(_multipart(parts), chunk), BOUNDARY, IngestLimits()))
    assert got == parts


@pytest.mark.parametrize(("body", "n_complete", "match"), [
    (_multipart([b"a" * 50, b"b" * 50], closed=False) + b"--" + BOUNDARY.encode(), 2,
     "without its closing boundary"),
    (_multipart([b"a" * 50, b"b" * 50], closed=False), 1, "cut inside an instance"),
    (_multipart([b"a" * 50, b"b" * 50])[:-70], 1, "cut inside an instance"),
], ids=["closing-delimiter-cut", "no-closing-boundary", "cut-mid-part"])
def test_split_multipart_truncated(body, n_complete, match):
    got = []
    with pytest.raises(TruncatedReply, match=match):
        for part in split_multipart(_chunks(body, 16), BOUNDARY, IngestLimits()):
            got.append(part)
    assert len(got) == n_complete and got[0] == b"a" * 50


def test_split_multipart_caps_a_part():
    limits = IngestLimits(max_file_bytes=100)
    with pytest.raises(LimitExceededError, match="per-file cap"):
        list(split_multipart(_chunks(_multipart([b"x" * 500]), 64), BOUNDARY, limits))


# --------------------------------------------------------------------------- local fake PACS
class FakePacs:
    """A tiny DICOMweb server on 127.0.0.1: QIDO series search and WADO series retrieval."""

    def __init__(self, instances: list[bytes], study: str, series: str) -> None:
        self.instances, self.study, self.series = instances, study, series
        self.mode = "full"  # full | cut | cut_declared | short | bad_pixels | redirect
        self.redirect_to = ""
        self.seen_auth: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_GET(self):
                fake.seen_auth.append(self.headers.get("Authorization"))
                path = self.path.split("?")[0]
                if fake.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", fake.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.endswith(f"/studies/{fake.study}/series"):
                    body = json.dumps([{"0020000E": {"vr": "UI", "Value": [fake.series]},
                                        "00080060": {"vr": "CS", "Value": ["CT"]},
                                        "00201209": {"vr": "IS",
                                                     "Value": [len(fake.instances)]}}]).encode()
                    self._reply(body, "application/dicom+json")
                elif path.endswith(f"/studies/{fake.study}/series/{fake.series}"):
                    self._series()
                else:
                    self.send_error(404)

            def _reply(self, body: bytes, ctype: str, length: int | None = None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def _series(self) -> None:
                ctype = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
                if fake.mode == "short":
                    self._reply(_multipart(fake.instances[:-1]), ctype)
                    return
                if fake.mode == "bad_pixels":  # well-formed reply, last instance cut short
                    self._reply(_multipart([*fake.instances[:-1], fake.instances[-1][:-200]]),
                                ctype)
                    return
                full = _multipart(fake.instances)
                if fake.mode == "full":
                    self._reply(full, ctype)
                    return
                cut = full[: len(full) - len(fake.instances[-1]) // 2 - 40]
                if fake.mode == "cut_declared":  # promises more bytes than it sends
                    self._reply(cut, ctype, length=len(full))
                else:  # no length, connection closed before the closing boundary
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(cut)
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_pacs() -> Iterator[tuple[FakePacs, list]]:
    images = ct_series(Study(), 3)
    pacs = FakePacs([encode(d) for d in images], images[0].StudyInstanceUID,
                    images[0].SeriesInstanceUID)
    yield pacs, images
    pacs.close()


def _with_pacs(settings, pacs_url, **kw):
    entry = PacsSettings(name="test", url=pacs_url, connect_timeout_s=2.0, read_timeout_s=5.0,
                         max_retries=1, **kw)
    return dataclasses.replace(settings, pacs=(entry,))


@pytest.mark.parametrize("mode", ["cut", "cut_declared", "short", "bad_pixels"])
def test_truncated_or_short_reply_marks_the_series_incomplete_and_a_refetch_completes_it(
        fake_pacs, settings, parser, mode):
    pacs, _ = fake_pacs
    settings = _with_pacs(settings, pacs.url)
    store = open_store(settings)
    pacs.mode = mode
    url = f"{pacs.url}/studies/{pacs.study}"
    report = ingest_sources([url], settings, store, parser=parser)
    (summary,) = report.series
    assert summary["status"] == "incomplete"
    assert "of the 3 instances" in summary["reason"] or "boundary" in summary["reason"]
    assert report.incomplete[0]["series_uid"] == summary["series_uid"]
    assert summary["slices"] == 2 and report.instances == 2
    if mode == "bad_pixels":
        (rejected,) = report.rejected
        assert "PACS reply cut short" in rejected.reason
    pacs.mode = "full"
    again = ingest_sources([url], settings, store, parser=parser)
    assert (again.instances, again.duplicates) == (1, 2)
    with store.session() as s:
        series = s.execute(select(Series)).scalar_one()
    assert (series.status, series.n_instances, series.n_slices) == ("complete", 3, 3)
    store.dispose()


def test_bearer_token_is_sent(fake_pacs, settings):
    pacs, _ = fake_pacs
    settings = _with_pacs(settings, pacs.url, token="tok-123")
    (got,) = fetch(f"{pacs.url}/studies/{pacs.study}/series/{pacs.series}", settings)
    assert got.complete and len(got.items) == 3 and got.expected == 3
    assert set(pacs.seen_auth) == {"Bearer tok-123"}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_credentials_from_the_environment(fake_pacs, home, monkeypatch):
    pacs, _ = fake_pacs
    monkeypatch.setenv("HEPATRACK_PACS_URL", pacs.url)
    monkeypatch.setenv("HEPATRACK_PACS_USER", "alice")
    monkeypatch.setenv("HEPATRACK_PACS_PASSWORD", "s3cret")
    fetch(f"{pacs.url}/studies/{pacs.study}", load_settings(home))
    assert set(pacs.seen_auth) == {_basic("alice", "s3cret")}


# --------------------------------------------------------------------------- credential scope
@pytest.mark.parametrize(("endpoint", "url", "covered"), [
    ("https://pacs.hospital.org", "https://pacs.hospital.org.attacker.net/dicom-web", False),
    ("https://pacs.hospital.org", "https://pacs.hospital.org@attacker.net/dicom-web", False),
    ("http://127.0.0.1", "http://127.0.0.1:8710/dicom-web", False),
    ("http://pacs/dicom", "http://pacs/dicom-web", False),
    ("https://pacs/dicom-web", "http://pacs/dicom-web", False),
    ("http://pacs/dicom-web", "http://pacs/dicom-web/../admin", False),
    ("http://pacs:8042/dicom-web", "http://pacs:8043/dicom-web", False),
    ("https://pacs.hospital.org", "https://pacs.hospital.org:443/dicom-web", True),
    ("https://PACS.hospital.org:443/dicom-web/", "https://pacs.hospital.org/dicom-web/studies/1",
     True),
    ("http://pacs/dicom-web", "http://pacs:80/dicom-web", True),
], ids=["longer-host", "userinfo-host", "other-port", "path-not-on-segment", "other-scheme",
        "dot-segments", "next-port", "default-https-port", "case-and-slash", "default-http-port"])
def test_an_endpoint_covers_only_its_scheme_host_port_and_path(endpoint, url, covered):
    assert in_scope(url, endpoint_scope(endpoint)) is covered


def test_a_look_alike_host_is_refused_before_anything_is_sent(settings):
    settings = _with_pacs(settings, "https://pacs.hospital.org", username="u", password="p")
    with pytest.raises(PacsError, match=r"https://pacs\.hospital\.org\.attacker\.net:443/dicom-web "
                                        r"is not a configured PACS endpoint") as e:
        fetch(f"https://pacs.hospital.org.attacker.net/dicom-web/studies/{STUDY}", settings)
    assert "config.toml" in e.value.hint


def test_environment_credentials_never_go_to_an_unconfigured_url(fake_pacs, settings,
                                                                   monkeypatch):
    pacs, _ = fake_pacs
    monkeypatch.setenv("HEPATRACK_PACS_USER", "alice")
    monkeypatch.setenv("HEPATRACK_PACS_PASSWORD", "s3cret")
    port = pacs.server.server_address[1]
    with pytest.raises(PacsError, match=rf"http://127\.0\.0\.1:{port}/dicom-web is not a "
                                        r"configured PACS endpoint"):
        fetch(f"{pacs.url}/studies/{pacs.study}", settings)
    assert pacs.seen_auth == []  # not one request reached the server


def test_an_endpoint_without_a_port_does_not_lend_its_credentials_to_another_port(
        fake_pacs, settings):
    pacs, _ = fake_pacs
    settings = _with_pacs(settings, "http://127.0.0.1", username="alice", password="s3cret")
    with pytest.raises(PacsError, match=r"127\.0\.0\.1:\d+/dicom-web is not a configured PACS"):
        fetch(f"{pacs.url}/studies/{pacs.study}", settings)
    assert pacs.seen_auth == []


def test_credentials_do_not_follow_a_redirect_to_another_port(fake_pacs, settings):
    pacs, images = fake_pacs
    elsewhere = FakePacs([encode(d) for d in images], pacs.study, pacs.series)
    try:
        pacs.mode, pacs.redirect_to = "redirect", elsewhere.url.removesuffix("/dicom-web")
        settings = _with_pacs(settings, pacs.url, username="alice", password="s3cret")
        (got,) = fetch(f"{pacs.url}/studies/{pacs.study}", settings)
        assert got.complete and len(got.items) == 3
        assert set(pacs.seen_auth) == {_basic("alice", "s3cret")}
        assert elsewhere.seen_auth and set(elsewhere.seen_auth) == {None}
    finally:
        elsewhere.close()


# --------------------------------------------------------------------------- total deadlines
@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_trickling_series_retrieval_fails_at_its_deadline(mode):
    with trickling_server(mode, interval_s=0.5, max_s=45) as slow:
        pacs = PacsSettings(url=slow.url, connect_timeout_s=2.0, read_timeout_s=2.0,
                            max_retries=2, retrieval_deadline_s=3.0)
        began = time.monotonic()
        with PacsClient(pacs) as client, pytest.raises(
                PacsError, match=r"series retrieval did not finish within its 3 s deadline "
                                 r"\(retrieval_deadline_s\); the connection was cut"):
            client.retrieve_series(STUDY, SERIES, expected=1)
        took = time.monotonic() - began
    assert took < 3.0 + 10.0  # the deadline plus a generous margin; it trickles for 45 s


@pytest.mark.timeout(60)
def test_a_trickling_study_search_fails_at_its_request_deadline():
    with trickling_server("json", interval_s=0.5, max_s=45) as slow:
        pacs = PacsSettings(url=slow.url, connect_timeout_s=2.0, read_timeout_s=2.0,
                            max_retries=2, request_deadline_s=2.0)
        began = time.monotonic()
        with pytest.raises(PacsError, match=r"study search did not finish within its 2 s "
                                            r"deadline \(request_deadline_s\)"):
            search_studies(pacs, patient_id="P1")
        took = time.monotonic() - began
    assert took < 2.0 + 10.0 and slow.connections == 1  # no retry after the deadline


@pytest.fixture
def hung_server() -> Iterator[tuple[str, list]]:
    """Accepts TCP connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/dicom-web", accepted
    stop.set()
    t.join(2)
    for c in accepted:
        c.close()
    sock.close()


@pytest.mark.timeout(60)
def test_hung_pacs_fails_within_the_retry_budget(hung_server, settings):
    url, accepted = hung_server
    settings = dataclasses.replace(settings, pacs=(PacsSettings(
        url=url, connect_timeout_s=0.5, read_timeout_s=0.5, max_retries=2),))
    with pytest.raises(PacsError, match=r"no answer within 0.5 s connect / 0.5 s read timeout; "
                                        r"gave up after 3 attempt"):
        fetch(f"{url}/studies/{STUDY}", settings)
    assert len(accepted) == 3  # one try and two retries, then it gives up


@pytest.mark.timeout(60)
def test_unreachable_pacs_is_a_clear_error(settings):
    from tests.services import free_port

    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    settings = dataclasses.replace(settings, pacs=(PacsSettings(
        url=url, connect_timeout_s=0.5, read_timeout_s=0.5, max_retries=1),))
    with pytest.raises(PacsError, match="connection failed; gave up after 2 attempt"):
        fetch(f"{url}/studies/{STUDY}", settings)


# --------------------------------------------------------------------------- real Orthanc
@pytest.fixture
def orthanc_study(orthanc):
    orthanc.clear()
    study = Study()
    images = ct_series(study, 4)
    for ds in images:
        orthanc.upload(encode(ds))
    orthanc.upload(encode(seg_for(images)))
    yield orthanc, study, images
    orthanc.clear()


def test_orthanc_study_and_series_urls(orthanc_study, settings, parser, monkeypatch, caplog):
    orthanc, study, images = orthanc_study
    monkeypatch.setenv("HEPATRACK_PACS_URL", orthanc.dicomweb_url)
    monkeypatch.setenv("HEPATRACK_PACS_USER", orthanc.username)
    monkeypatch.setenv("HEPATRACK_PACS_PASSWORD", orthanc.password)
    settings = load_settings(settings.home)
    store = open_store(settings)
    caplog.set_level(logging.DEBUG)
    report = ingest_sources([f"{orthanc.dicomweb_url}/studies/{study.study_uid}"], settings,
                            store, parser=parser)
    assert (report.series_ingested, report.instances, report.masks) == (1, 4, 1)
    assert report.series[0]["status"] == "complete" and report.series[0]["slices"] == 4
    series_url = (f"{orthanc.dicomweb_url}/studies/{study.study_uid}/series/"
                  f"{images[0].SeriesInstanceUID}")
    again = ingest_sources([series_url], settings, store, parser=parser)
    assert (again.instances, again.duplicates) == (0, 4)
    with store.session() as s:
        assert s.execute(select(Mask.format)).scalars().all() == ["seg"]
    for leak in (orthanc.password, orthanc.username, study.patient_id, "Doe", study.study_uid,
                 images[0].SeriesInstanceUID, "Authorization"):
        assert leak not in caplog.text
    store.dispose()


def test_orthanc_search_studies(orthanc_study):
    orthanc, study, _ = orthanc_study
    pacs = PacsSettings(url=orthanc.dicomweb_url, username=orthanc.username,
                        password=orthanc.password)
    (found,) = search_studies(pacs, patient_id=study.patient_id, modality="CT",
                              date_range=("2020-01-01", "2020-01-31"))
    assert found["study_uid"] == study.study_uid and found["patient_id"] == study.patient_id
    assert found["study_date"] == "2020-01-15" and found["n_series"] == 2
    assert found["url"].endswith(f"/studies/{study.study_uid}")
    assert search_studies(pacs, patient_id="NOBODY") == []
    assert search_studies(pacs, date_range=("2021-01-01", None)) == []


def test_orthanc_wrong_password_is_refused_without_echoing_it(orthanc_study):
    orthanc, study, _ = orthanc_study
    pacs = PacsSettings(url=orthanc.dicomweb_url, username=orthanc.username,
                        password="wrong-password-xyz", max_retries=0)
    with pytest.raises(PacsError, match=r"refused \(401\): check the credentials") as e:
        search_studies(pacs, patient_id=study.patient_id)
    assert "wrong-password-xyz" not in str(e.value)


def test_pacs_deadlines_are_read_from_config_and_unknown_keys_refused(home):
    from analytics.errors import ConfigError

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('[[pacs]]\nurl = "https://pacs.example/dicom-web"\n'
                                      'request_deadline_s = "20"\nretrieval_deadline_s = 300\n')
    (pacs,) = load_settings(home).pacs
    assert (pacs.request_deadline_s, pacs.retrieval_deadline_s) == (20.0, 300.0)
    (home / "config.toml").write_text('[[pacs]]\nurl = "https://pacs.example/dicom-web"\n'
                                      'total_timeout = 20\n')
    with pytest.raises(ConfigError, match=r"\[\[pacs\]\] entry 1: unknown keys "
                                          r"\['total_timeout'\]"):
        load_settings(home)
