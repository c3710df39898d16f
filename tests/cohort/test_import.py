"""import-cohort against a real store: counts, idempotence, identity map, atomicity, CLI."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading

import pytest
from sqlalchemy import select, text

from analytics import audit
from analytics.cli import main
from analytics.cohort import import_cohort
from analytics.errors import PermissionDeniedError, StoreError
from analytics.ingest.deid import patient_pseudonym
from analytics.store import open_store
from analytics.store.schema import AuditRecord, Outcome, Patient, Visit
from analytics.usecases import cohort as cohort_use_cases
from analytics.usecases.context import Context
from tests.cohort.conftest import add_patient, add_scan

VISITS = """
patient_id,time,bilirubin_mg_dl,albumin_g_dl,inr,sex,fibrosis_stage
P1,0,1.2,3.9,1.1,M,F2
P1,0.5,,3.6,1.2,M,F3
P1,1.0,2.5,3.1,1.4,M,
P2,0,0.8,4.2,1.0,female,F1
P2,bad,0.8,4.2,1.0,F,F1
"""
OUTCOMES = """
patient_id,time,event
P1,2.0,decompensation
P2,3.5,censored
"""


def stored(store, ids: tuple[str, ...] = ()):
    """Visits, outcomes and patients by pseudonym; the pseudonyms of the real ``ids`` (as
    image ingest would make them) are shown as those ids."""
    real = {patient_pseudonym(store.site_secret(), i): i for i in ids}
    with store.session() as s:
        visits = s.execute(select(Patient.pseudonym, Visit.time_years, Visit.visit_date,
                                  Visit.values).join(Patient, Visit.patient_id == Patient.id)
                           ).all()
        outcomes = s.execute(select(Patient.pseudonym, Outcome.time_years, Outcome.event)
                             .join(Patient, Outcome.patient_id == Patient.id)).all()
        patients = s.execute(select(Patient.pseudonym, Patient.sex, Patient.source)).all()

    def named(rows):
        return sorted(((real.get(r[0], r[0]), *r[1:]) for r in rows), key=lambda r: r[:2])

    return named(visits), named(outcomes), named(patients)


def test_import_is_idempotent_and_counts_updates(db_url, csvs):
    store = open_store(url=db_url)
    v, o = csvs(VISITS, OUTCOMES)
    first = import_cohort(store, v, o)
    assert (first.patients, first.patients_created, first.visits, first.visits_inserted,
            first.outcomes, first.events) == (2, 2, 4, 4, 2, 1)
    assert [(i.file, i.row, i.line) for i in first.rejected] == [("visits.csv", 5, 6)]
    visits, outcomes, patients = stored(store, ('P1', 'P2'))
    assert visits == [
        ("P1", 0.0, None, {"bilirubin_mg_dl": 1.2, "albumin_g_dl": 3.9, "inr": 1.1,
                           "sex": "M", "fibrosis_stage": "F2"}),
        ("P1", 0.5, None, {"albumin_g_dl": 3.6, "inr": 1.2, "sex": "M",
                           "fibrosis_stage": "F3"}),
        ("P1", 1.0, None, {"bilirubin_mg_dl": 2.5, "albumin_g_dl": 3.1, "inr": 1.4,
                           "sex": "M"}),
        ("P2", 0.0, None, {"bilirubin_mg_dl": 0.8, "albumin_g_dl": 4.2, "inr": 1.0,
                           "sex": "F", "fibrosis_stage": "F1"}),
    ]
    assert outcomes == [("P1", 2.0, "decompensation"), ("P2", 3.5, "censored")]
    assert patients == [("P1", "M", "csv"), ("P2", "F", "csv")]

    again = import_cohort(store, v, o)
    assert (again.patients_created, again.visits_inserted, again.visits_updated,
            again.visits_unchanged, again.outcomes_unchanged) == (0, 0, 0, 4, 2)
    assert stored(store, ('P1', 'P2')) == (visits, outcomes, patients)

    v2, o2 = csvs(VISITS.replace("P1,1.0,2.5", "P1,1.0,2.7"),
                  OUTCOMES.replace("P2,3.5,censored", "P2,3.5,death"))
    changed = import_cohort(store, v2, o2)
    assert (changed.visits_updated, changed.visits_unchanged, changed.outcomes_updated) == (
        1, 3, 1)
    visits2, outcomes2, _ = stored(store, ('P1', 'P2'))
    assert visits2[2][3]["bilirubin_mg_dl"] == 2.7 and len(visits2) == 4
    assert outcomes2[1] == ("P2", 3.5, "death")
    store.dispose()


def test_each_file_is_the_truth_for_its_own_columns(store, csvs):
    v, o = csvs("patient_id,time,bilirubin_mg_dl,inr\nP1,0,1.2,1.1\n",
                "patient_id,time,event\nP1,2,censored\n")
    import_cohort(store, v, o)
    # a second file about the same visit with another measurement keeps the labs
    v, o = csvs("patient_id,time,lsm_kpa\nP1,0,9.4\n", "patient_id,time,event\nP1,2,censored\n")
    assert import_cohort(store, v, o).visits_updated == 1
    assert stored(store)[0][0][3] == {"bilirubin_mg_dl": 1.2, "inr": 1.1, "lsm_kpa": 9.4}
    # a value left empty in a file that has the column removes it
    v, o = csvs("patient_id,time,bilirubin_mg_dl,inr\nP1,0,,1.1\n",
                "patient_id,time,event\nP1,2,censored\n")
    import_cohort(store, v, o)
    assert stored(store)[0][0][3] == {"inr": 1.1, "lsm_kpa": 9.4}


def test_identity_map_patient_joins_pseudonym_with_shifted_dates(store, csvs):
    add_patient(store, "HT-7", real_id="MRN-7", shift_days=-40)
    add_scan(store, "HT-7", dt.date(2020, 1, 1), {"liver_volume_ml": 1500.0})
    v, o = csvs("patient_id,date,bilirubin_mg_dl\nMRN-7,2020-03-01,1.0\nMRN-7,2021-01-20,1.3\n",
                "patient_id,date,event\nMRN-7,2022-02-10,hcc\n")
    report = import_cohort(store, v, o)
    assert report.rejected == [] and report.patients_created == 0
    visits, outcomes, patients = stored(store)
    assert [p[0] for p in patients] == ["HT-7"]  # no patient named after the real id
    # shifted: 2020-03-01 - 40 d = 2020-01-21, 20 days after the scan baseline 2020-01-01;
    # 2021-01-20 - 40 d = 2020-12-11, 345 days after it
    assert [(v[1], v[2]) for v in visits] == [
        (pytest.approx(20 / 365.25), dt.date(2020, 1, 21)),
        (pytest.approx(345 / 365.25), dt.date(2020, 12, 11))]
    # 2022-02-10 - 40 d = 2022-01-01: 731 days after 2020-01-01
    assert outcomes == [("HT-7", pytest.approx(731 / 365.25), "hcc")]


def test_csv_id_equal_to_a_pseudonym_reuses_the_patient(store, csvs):
    add_patient(store, "HT-8")
    add_scan(store, "HT-8", dt.date(2019, 5, 1), {"liver_volume_ml": 1400.0})
    v, o = csvs("patient_id,time,inr\nHT-8,0.25,1.3\n", "patient_id,time,event\nHT-8,2,death\n")
    report = import_cohort(store, v, o)
    assert report.patients_created == 0 and report.visits_inserted == 1


def test_an_outcome_for_an_imaging_only_patient_is_accepted(store, csvs):
    add_patient(store, "HT-9", real_id="MRN-9")
    add_scan(store, "HT-9", dt.date(2019, 5, 1), {"liver_volume_ml": 1400.0})
    v, o = csvs("patient_id,time\n", "patient_id,time,event\nMRN-9,1.5,death\n")
    report = import_cohort(store, v, o)
    assert report.rejected == [] and report.outcomes_inserted == 1
    assert stored(store)[1] == [("HT-9", 1.5, "death")]


def test_an_id_matching_several_identity_rows_is_rejected(store, csvs):
    add_patient(store, "HT-10", real_id="MRN-X")
    add_patient(store, "HT-11", real_id="MRN-X")
    v, o = csvs("patient_id,time\nMRN-X,0\n", "patient_id,time,event\nMRN-X,1,death\n")
    report = import_cohort(store, v, o)
    assert {(i.file, i.row) for i in report.rejected} == {("visits.csv", 1),
                                                         ("outcomes.csv", 1)}
    assert all("matches 2 patients in the identity map" in i.reason for i in report.rejected)
    assert stored(store)[0] == []


def test_two_ids_of_one_patient_in_one_import_are_refused(store, csvs):
    add_patient(store, "HT-12", real_id="MRN-12")
    add_scan(store, "HT-12", dt.date(2020, 1, 1), {"liver_volume_ml": 1400.0})
    v, o = csvs("patient_id,time,inr\nMRN-12,0,1.1\nHT-12,1,1.2\n",
                "patient_id,time,event\nMRN-12,2,death\n")
    report = import_cohort(store, v, o)
    assert [(i.row, i.reason) for i in report.rejected] == [
        (2, "patient_id 'HT-12' names the same patient as 'MRN-12'; use one id per patient")]
    assert (report.visits, report.outcomes) == (1, 1)


def test_a_failed_store_write_leaves_nothing_behind(store, csvs):
    # a real database failure half way: outcomes are written after patients and visits
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER no_outcomes BEFORE INSERT ON outcomes "
                          "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    v, o = csvs(VISITS, OUTCOMES)
    with pytest.raises(StoreError, match="nothing was imported"):
        cohort_use_cases.import_cohort(Context.cli(store), cohort_use_cases.ImportRequest(v, o))
    assert stored(store) == ([], [], [])
    with store.session() as s:
        trail = s.execute(select(AuditRecord.action, AuditRecord.outcome)
                          .order_by(AuditRecord.seq)).all()
    assert [tuple(t) for t in trail] == [("import_cohort", "ok"), ("import_cohort", "failed")]


def test_a_role_without_ingest_may_not_import(store, csvs):
    v, o = csvs(VISITS, OUTCOMES)
    researcher = audit.Actor(username="r", role="researcher")
    with pytest.raises(PermissionDeniedError, match="may not ingest"):
        cohort_use_cases.import_cohort(Context(researcher, store),
                                       cohort_use_cases.ImportRequest(v, o))
    assert stored(store) == ([], [], [])


def test_two_concurrent_imports_store_each_row_once(db_url, csvs):
    v, o = csvs(VISITS, OUTCOMES)
    open_store(url=db_url).dispose()
    reports, errors = [], []

    def run() -> None:
        s = open_store(url=db_url)
        try:
            reports.append(import_cohort(s, v, o))
        except Exception as e:  # surfaced by the assertion below
            errors.append(e)
        finally:
            s.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.visits_inserted for r in reports) == [0, 4]
    assert sum(r.patients_created for r in reports) == 2
    store = open_store(url=db_url)
    visits, outcomes, patients = stored(store)
    store.dispose()
    assert (len(visits), len(outcomes), len(patients)) == (4, 2, 2)


# ----------------------------------------------------------------------------- CLI
def test_cli_json_payload_and_exit_status(home, csvs, capsys):
    v, o = csvs(VISITS, OUTCOMES)
    code = main(["--home", str(home), "import-cohort", "--visits", str(v), "--outcomes",
                 str(o), "--json"])
    out, err = capsys.readouterr()
    payload = json.loads(out)
    assert code == 2  # one row rejected; the good rows are imported
    assert {"patients", "visits", "events", "rejected", "warnings"} <= set(payload)
    assert (payload["patients"], payload["visits"], payload["events"]) == (2, 4, 1)
    assert payload["rejected"] == [{
        "file": "visits.csv", "row": 5, "line": 6, "column": None,
        "reason": "time 'bad': expected a number (years since baseline)"}]
    assert err.strip() == ("hepatrack import-cohort: 1 rows rejected, first: visits.csv row 5 "
                           "(line 6): time 'bad': expected a number (years since baseline)")

    v_ok, o_ok = csvs(VISITS.replace("P2,bad,0.8,4.2,1.0,F,F1\n", ""), OUTCOMES)
    assert main(["--home", str(home), "import-cohort", "--visits", str(v_ok),
                 "--outcomes", str(o_ok)]) == 0
    assert "imported 2 patients (0 new), 4 visits (0 new, 0 updated)" in capsys.readouterr().out


@pytest.mark.parametrize("visits, pattern", [
    (None, r"visits.csv: cannot read"),
    (b"patient_id,time\n\xff\xfe,0\n", r"visits.csv: not UTF-8 text \(byte 16, line 2\)"),
    (b"", r"visits.csv: the file is empty"),
    (b"patient_id,inr\nP1,1\n", r"visits.csv: needs a 'time' column"),
], ids=["missing_file", "not_utf8", "empty_file", "no_time_column"])
def test_cli_unreadable_file_exits_2_naming_it(home, tmp_path, capsys, visits, pattern):
    vpath = tmp_path / "visits.csv"
    if visits is not None:
        vpath.write_bytes(visits)
    opath = tmp_path / "outcomes.csv"
    opath.write_text("patient_id,time,event\nP1,1,death\n")
    code = main(["--home", str(home), "import-cohort", "--visits", str(vpath),
                 "--outcomes", str(opath)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(pattern, err), err
