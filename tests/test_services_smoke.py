"""The real services start and answer (they are what the other suites depend on)."""

import json
import urllib.request

from sqlalchemy import text

from analytics.store import make_engine


def test_postgres_answers(postgres):
    url = postgres.new_database("smoke")
    with make_engine(url).connect() as c:
        assert c.execute(text("select 1 + 1")).scalar() == 2


def test_orthanc_dicomweb_needs_credentials_and_answers(orthanc):
    assert json.loads(orthanc._request("GET", "/dicom-web/studies")) == []
    try:
        urllib.request.urlopen(orthanc.base_url + "/dicom-web/studies", timeout=5)
        raise AssertionError("anonymous request was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 401
