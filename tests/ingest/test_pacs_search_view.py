"""A PACS search shows a role without the identified view no name or Patient ID and the
study date shifted as ingest will store it, so the search and the ingest result on the
Ingest page agree; a clinician gets the PACS's own date (the PACS is mocked here; the
real Orthanc search is tested in tests/app/test_ingest_pacs.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.audit import Actor
from analytics.config import PacsSettings
from analytics.ingest.deid import date_shift_days
from analytics.store import open_store
from analytics.usecases import ingest as ingest_uc
from analytics.usecases.context import Context

PACS = PacsSettings(name="env", url="http://127.0.0.1:9/dicom-web")
FOUND = [{"study_uid": "1.2.3", "patient_id": "MRN-4711", "patient_name": "MUELLER^MICHAEL",
          "study_date": "2022-03-16", "modalities": ["CT"], "description": "CT ABDOMEN",
          "accession": "A1", "n_series": 1, "n_instances": 3, "url": PACS.url},
         {"study_uid": "1.2.4", "patient_id": None, "patient_name": None,
          "study_date": "2022-03-17", "modalities": ["CT"], "description": None,
          "accession": None, "n_series": 1, "n_instances": 3, "url": PACS.url}]


@pytest.fixture
def search(settings, monkeypatch):
    monkeypatch.setattr(ingest_uc, "search_studies", lambda *a, **k: [dict(f) for f in FOUND])
    store = open_store(settings)
    yield lambda actor: ingest_uc.search_pacs(Context(actor, store, settings),
                                              ingest_uc.PacsSearchRequest(PACS))
    store.dispose()


def test_a_clinician_sees_the_pacs_date_and_identity(search):
    found = search(Actor("dr.grey", "clinician", "s1"))
    assert [f["study_date"] for f in found] == ["2022-03-16", "2022-03-17"]
    assert found[0]["patient_name"] == "MUELLER^MICHAEL"


def test_an_admin_sees_the_date_ingest_will_store_and_no_identity(search, settings):
    found = search(Actor("root", "admin", "s2"))
    shift = date_shift_days(settings.site_secret(), "MRN-4711")
    assert -730 <= shift <= -1
    assert found[0]["study_date"] == (dt.date(2022, 3, 16) + dt.timedelta(days=shift)
                                      ).isoformat()
    assert found[0]["patient_name"] is None and found[0]["patient_id"] is None
    # no Patient ID, no shift to apply: no date rather than the real one
    assert found[1]["study_date"] is None
    assert found[0]["url"] == PACS.url  # still linkable
