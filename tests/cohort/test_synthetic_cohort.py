"""End to end on the synthetic cohort: labs.csv + outcomes.csv against truth.json.

Two cohorts: a labs-only research cohort imported through the command line, and the same
kind of cohort whose patients were first seen as imaging patients (pseudonyms, per-patient
date shifts and scans made exactly as ingest makes them), to check that the lab calendar
and the scan calendar line up.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from analytics.cli import main
from analytics.cohort import build_cohort, import_cohort
from analytics.config import load_settings
from analytics.ingest import deid
from analytics.store import open_store
from analytics.store.schema import Feature, Series
from analytics.synthetic.cohort import CohortConfig, generate_cohort
from tests.cohort.conftest import add_patient, add_scan

N_PATIENTS = 24


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic") / "cohort"
    generate_cohort(out, CohortConfig(n_patients=N_PATIENTS, imaging_patients=0, seed=11))
    return out, json.loads((out / "truth.json").read_text())


def test_cli_import_matches_truth_and_is_idempotent(synthetic, home, capsys):
    out, truth = synthetic
    argv = ["--home", str(home), "import-cohort", "--visits", str(out / "labs.csv"),
            "--outcomes", str(out / "outcomes.csv"), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    n_visits = sum(len(p["visits"]) for p in truth["patients"])
    n_events = sum(p["event"] != "censored" for p in truth["patients"])
    assert (payload["patients"], payload["visits"], payload["events"]) == (
        N_PATIENTS, n_visits, n_events)
    assert payload["rejected"] == [] and payload["warnings"] == []

    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["visits_unchanged"], again["visits_inserted"], again["patients_created"]) == (
        n_visits, 0, 0)

    settings = load_settings(home)
    store = open_store(settings)
    table = build_cohort(store)
    store.dispose()
    worst = 0.0
    for p in truth["patients"]:
        # labs-only patients get the pseudonym image ingest would give them
        name = deid.patient_pseudonym(settings.site_secret(), p["patient_id"])
        v = table.visits[table.visits["patient"] == name]
        truth_times = np.array([x["time_years"] for x in p["visits"]])
        assert len(v) == len(truth_times)
        worst = max(worst, float(np.max(np.abs(v["time"].to_numpy() - truth_times))))
        o = table.outcomes.set_index("patient").loc[name]
        assert o["event"] == p["event"]
        assert o["duration"] == pytest.approx(p["event_time_years"], abs=1e-6)
    assert worst < 1e-6  # truth.json rounds times to 6 decimals


def test_imaging_patients_get_labs_on_their_scan_calendar(synthetic, store):
    out, truth = synthetic
    secret = b"s" * 32
    labs = list(csv.DictReader((out / "labs.csv").open(encoding="utf-8")))
    scans: dict[str, list[str]] = {}
    for p in truth["patients"]:
        pid = p["patient_id"]
        pseudonym = deid.patient_pseudonym(secret, pid)
        shift = deid.date_shift_days(secret, pid)
        add_patient(store, pseudonym, real_id=pid, shift_days=shift)
        # every third visit has a scan, stored on the shifted date as ingest stores it
        for k, visit in enumerate(p["visits"]):
            if k % 3 == 0:
                day = dt.date.fromisoformat(visit["date"]) + dt.timedelta(days=shift)
                scans.setdefault(pseudonym, []).append(
                    add_scan(store, pseudonym, day, {"liver_volume_ml": 1000.0 + k}))
    report = import_cohort(store, out / "labs.csv", out / "outcomes.csv")
    assert report.rejected == [] and report.patients_created == 0

    table = build_cohort(store)
    assert not any(p.startswith("SYN") for p in table.visits["patient"])  # real ids gone
    for p in truth["patients"]:
        pseudonym = deid.patient_pseudonym(secret, p["patient_id"])
        v = table.visits[table.visits["patient"] == pseudonym].reset_index(drop=True)
        # same-day labs are part of the scan visit: one row per truth visit
        assert len(v) == len(p["visits"])
        np.testing.assert_allclose(v["time"], [x["time_years"] for x in p["visits"]],
                                   atol=1e-6)
        assert v["series_uid"].dropna().tolist() == scans[pseudonym]
        rows = [r for r in labs if r["patient_id"] == p["patient_id"]]
        for k in range(0, len(rows), 3):  # the scan visit carries that day's labs
            value = rows[k]["bilirubin_mg_dl"]
            if value:
                assert v.loc[k, "bilirubin_mg_dl"] == float(value)
        o = table.outcomes.set_index("patient").loc[pseudonym]
        assert o["duration"] == pytest.approx(p["event_time_years"], abs=1e-6)


def test_ingested_scans_and_imported_labs_share_one_calendar(synthetic_cohort, home, capsys):
    """Real ingest (de-identified: pseudonyms, shifted dates) then import-cohort."""
    m = synthetic_cohort
    truth = m.truth()
    assert main(["--home", str(home), "ingest", str(m.out_dir / "dicom"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rejected"] == []
    assert main(["--home", str(home), "import-cohort", "--visits", str(m.labs_csv),
                 "--outcomes", str(m.outcomes_csv), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["patients_created"] == sum(not p["imaging"] for p in truth["patients"])

    settings = load_settings(home)
    secret = settings.site_secret()
    store = open_store(settings)
    # the features stage's output, written as it writes it: the generator's exact volumes
    by_source = {}
    with store.session() as s:
        for sid, key in s.execute(select(Series.id, Series.source_key)):
            by_source[key] = sid
        for rec in truth["series"]:
            s.add(Feature(series_id=by_source[deid.source_key(secret, rec["series_uid"])],
                          name="liver_volume_ml", value=rec["liver_volume_ml"], unit="mL",
                          extractor_version="truth"))
    table = build_cohort(store)
    store.dispose()

    volumes = {(rec["patient_id"], rec["study_date"]): rec["liver_volume_ml"]
               for rec in truth["series"]}
    for p in truth["patients"]:
        name = deid.patient_pseudonym(secret, p["patient_id"])  # imaging or labs only
        v = table.visits[table.visits["patient"] == name].reset_index(drop=True)
        assert len(v) == len(p["visits"])  # a scan and that day's labs are one visit
        np.testing.assert_allclose(v["time"], [x["time_years"] for x in p["visits"]],
                                   atol=1e-6)
        assert v["series_uid"].notna().tolist() == [x["has_scan"] for x in p["visits"]]
        for k, x in enumerate(p["visits"]):
            if x["has_scan"]:
                assert v.loc[k, "liver_volume_ml"] == volumes[(p["patient_id"], x["date"])]
                assert v.loc[k, "age_years"] == pytest.approx(x["age_years"])
        o = table.outcomes.set_index("patient").loc[name]
        assert (o["event"], o["duration"]) == (p["event"], pytest.approx(
            p["event_time_years"], abs=1e-6))
