"""De-identified values: keyed pseudonyms and UIDs, per-patient date shifts that keep
intervals (hand-computed dates), and free-text descriptors kept only when clean."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.ingest.deid import (
    MAX_SHIFT_DAYS,
    Deidentifier,
    clean_descriptor,
    date_shift_days,
    hmac_uid,
    shift_da,
    shift_dt,
)
from tests.ingest.deid_samples import SECRET, SHIFT, sample_dataset
from tests.ingest.dicom_samples import Study, ct_series, encode, rtstruct_for

OTHER_SECRET = b"q" * 32


def test_pseudonyms_are_keyed_and_stable():
    ds = ct_series(Study(), 1)[0]
    data = encode(ds)
    a1, ia, _ = Deidentifier(SECRET).deidentify_bytes(data)
    a2, _, _ = Deidentifier(SECRET).deidentify_bytes(data)
    _, ib, cb = Deidentifier(OTHER_SECRET).deidentify_bytes(data)
    assert a1 == a2  # same secret, same bytes: stable across runs
    assert ia.pseudonym != ib.pseudonym
    assert cb.SOPInstanceUID != hmac_uid(SECRET, ds.SOPInstanceUID)
    assert cb.SOPInstanceUID == hmac_uid(OTHER_SECRET, ds.SOPInstanceUID)
    assert hmac_uid(SECRET, "1.2.3") != hmac_uid(OTHER_SECRET, "1.2.3")
    assert ia.date_shift_days != ib.date_shift_days  # these two keys give different shifts


def test_date_shift_is_per_patient_and_keeps_intervals():
    d = Deidentifier(SECRET)
    first = ct_series(Study(study_date="20190301"), 1)[0]
    later = ct_series(Study(study_date="20211130"), 1)[0]
    later.AcquisitionDateTime = "20211130235959.5+0100"
    c1, c2 = (d.deidentify_bytes(encode(x))[2] for x in (first, later))
    real = dt.date(2021, 11, 30) - dt.date(2019, 3, 1)
    stored = (dt.datetime.strptime(c2.StudyDate, "%Y%m%d")
              - dt.datetime.strptime(c1.StudyDate, "%Y%m%d"))
    assert stored.days == real.days
    assert c2.AcquisitionDateTime.endswith("235959.5+0100")
    assert -MAX_SHIFT_DAYS <= SHIFT <= -1
    other = date_shift_days(SECRET, "ANOTHER-PATIENT")
    assert other != SHIFT  # per patient (these two IDs differ under this key)
    assert c1.StudyDate == (dt.date(2019, 3, 1) + dt.timedelta(days=SHIFT)).strftime("%Y%m%d")
    assert c1.PatientBirthDate == ""


@pytest.mark.parametrize(("value", "days", "expected"), [
    ("20200115", -10, "20200105"),
    ("20200301", -1, "20200229"),  # leap day
    ("2020.03.01", -1, "20200229"),  # ACR-NEMA form
    ("", -5, ""),
    ("20201345", -1, None),  # not a date
])
def test_shift_da_hand_values(value, days, expected):
    assert shift_da(value, days) == expected


@pytest.mark.parametrize(("value", "days", "expected"), [
    ("20200115102105.25+0100", -15, "20191231102105.25+0100"),
    ("202001151021", -1, "202001141021"),
    ("202003", -1, "202002"),  # month precision: shifted from the 1st, truncated
    ("2020", -1, "2019"),
    ("2020011510a", -1, None),
])
def test_shift_dt_hand_values(value, days, expected):
    assert shift_dt(value, days) == expected


def test_unreadable_dates_are_emptied_not_kept():
    ds = sample_dataset()
    ds.StudyDate = "2020-13-45"
    Deidentifier(SECRET).deidentify(ds)
    assert ds.StudyDate == ""


@pytest.mark.parametrize(("text", "kept"), [
    ("CT ABDOMEN PORTAL VENOUS 2.5mm", True),
    ("AX T1 VIBE FS DYN ART", True),
    ("Liver_seg v2", True),
    ("portal_vein_and_splenic_vein", True),
    ("PDFF MAP", True),  # quantitative MR maps are recognised by their description
    ("FatFrac: IDEAL IQ", True),
    ("R2* map", True),
    ("MRE Elastogram (kPa)", True),
    ("Dixon fat fraction", True),
    ("Liver triphasic Dr Wilson", False),
    ("MRN 12345678", False),
    ("Jane liver", False),  # the patient's own name
])
def test_clean_descriptor(text, kept):
    result = clean_descriptor(text, frozenset({"jane", "doe"}))
    assert (result == text) if kept else (result is None)


def test_failed_roi_name_gets_a_dummy_with_its_number():
    images = ct_series(Study(), 2)
    rt = rtstruct_for(images, roi_names=("Liver", "Wilson liver"))
    clean = Deidentifier(SECRET).deidentify_bytes(encode(rt))[2]
    names = [r.ROIName for r in clean.StructureSetROISequence]
    assert names == ["Liver", "ROI 2"]
    assert "StructureSetName" not in clean
