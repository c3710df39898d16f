"""A PACS ``url`` must be the DICOMweb root: refused when the settings are read, and a
bad-request answer from a server names the URL and the ``/dicom-web`` suffix."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from analytics.config import PacsSettings, load_settings
from analytics.errors import ConfigError, PacsError
from analytics.ingest.dicomweb import search_studies


def _config(home, url: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[[pacs]]\nname = "main"\nurl = "{url}"\n')


def test_a_config_url_without_dicom_web_is_refused_naming_the_setting_and_the_fix(home):
    _config(home, "http://127.0.0.1:8042")
    with pytest.raises(ConfigError) as e:
        load_settings(home)
    assert str(e.value) == (
        f"{home / 'config.toml'} [[pacs]] entry 1 url = 'http://127.0.0.1:8042': expected "
        "the DICOMweb root, a URL ending in /dicom-web (Orthanc; /dicomWeb on Google Cloud "
        "Healthcare, /rs on dcm4chee-arc), e.g. http://127.0.0.1:8042/dicom-web")


def test_an_environment_url_without_dicom_web_is_refused_without_its_credentials(
        home, monkeypatch):
    monkeypatch.setenv("HEPATRACK_PACS_URL", "https://bob:hunter22@pacs.example/orthanc/")
    with pytest.raises(ConfigError, match=r"^HEPATRACK_PACS_URL = 'https://pacs\.example/"
                                          r"orthanc/': expected the DICOMweb root.*e\.g\. "
                                          r"https://pacs\.example/orthanc/dicom-web$") as e:
        load_settings(home)
    assert "hunter22" not in str(e.value) and "bob" not in str(e.value)


@pytest.mark.parametrize("url", ["ftp://pacs/dicom-web", "pacs:8042/dicom-web"])
def test_a_url_that_is_not_http_is_refused(home, url):
    _config(home, url)
    with pytest.raises(ConfigError, match="expected an http\\(s\\) URL of the PACS's "
                                          "DICOMweb root"):
        load_settings(home)


@pytest.mark.parametrize("url", [
    "http://pacs:8042/dicom-web", "http://pacs:8042/dicom-web/", "https://h/x/DICOM-WEB",
    "https://healthcare.googleapis.com/v1/projects/p/locations/l/datasets/d/dicomStores/s/"
    "dicomWeb", "http://arc:8080/dcm4chee-arc/aets/DCM4CHEE/rs"])
def test_dicomweb_roots_of_common_servers_are_accepted(home, url):
    _config(home, url)
    assert load_settings(home).pacs[0].url == url


@pytest.fixture
def rest_api() -> Iterator[str]:
    """A server that answers every request with a bare 400, as Orthanc's REST API answers
    DICOMweb paths sent to it without /dicom-web."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_bad_request_from_a_server_that_is_not_the_dicomweb_root_names_the_url_and_suffix(
        rest_api):
    pacs = PacsSettings(url=rest_api, connect_timeout_s=2.0, read_timeout_s=2.0,
                        max_retries=2)
    with pytest.raises(PacsError) as e:
        search_studies(pacs, patient_id="P1")
    assert str(e.value) == (
        f"PACS {rest_api}: study search refused as a bad request (HTTP 400): {rest_api} is "
        "not a DICOMweb root; expected the DICOMweb root, a URL ending in /dicom-web (Orthanc; "
        "/dicomWeb on Google Cloud Healthcare, /rs on dcm4chee-arc), e.g. "
        f"{rest_api}/dicom-web")
    assert "/dicom-web" in e.value.hint


def test_a_bad_request_at_a_dicomweb_root_says_the_server_refused_the_request(rest_api):
    pacs = PacsSettings(url=f"{rest_api}/dicom-web", connect_timeout_s=2.0,
                        read_timeout_s=2.0)
    with pytest.raises(PacsError, match=r"study search refused as a bad request \(HTTP 400\); "
                                        "the server did not accept this DICOMweb request"):
        search_studies(pacs, patient_id="P1")
