"""The store and the cohort list at 50,000 patients and 200,000 series, on PostgreSQL and SQLite.

A throwaway PostgreSQL (the test suite's ``tests.services.postgres_server``) and a SQLite
file get the schema through the normal migration path (``open_store``), then the same
generated rows (seeded, deterministic; bulk-loaded with COPY on PostgreSQL and
``executemany`` on SQLite): patients with their identity rows, studies, series (some
invalid), key and other biomarker values, lab visits and outcomes. Then the reads the
dashboard makes are timed against named baselines in the same process:

- the cohort list (``repo.list_patients``, pseudonymised and identified), read from the
  per-patient summary, against the list aggregated at read time of ``0b5c1e5``
  (``benchmarks/patient_list_0b5c1e5.py``, the code this replaced);
- filtered lists (``repo.find_patients``: search, outcome, modality, scan dates, a first
  page) against the same filters of ``0b5c1e5`` (each also checked against the whole
  list, then pandas);
- the Cohort page's page of 50 rows and its total count (``find_patients`` with a sort,
  ``offset`` and ``limit``, plus ``count_patients``), for every SQL sort in both views
  and with a filter, against the page's way at ``0b5c1e5``: the filtered list of
  ``0b5c1e5``, sorted in pandas (``ui.tables.sort_patients``), its first 50 rows;
- the follow-up timeline (``repo.cohort_timeline``) against its per-row version of
  ``dcaad46`` (kept below);
- the headline counts and one patient's page (detail and series), unchanged, timed alone;
- ``risk``: the Cohort page's page of 50 by current risk plus its count, from the stored
  current risk in SQL, against the page's in-memory way (``ui.cohort_view.page_of``);
- ``picker``: the Patient page's picker search (``LIMIT`` 20) against the whole-list picker.

The generated rows are bulk-loaded outside the store's sessions, so the summary is then
rebuilt once (timed: what a home made before the summary existed costs on first open).
Every case's result is checked equal to its baseline's (and the filters against
hand-computed expectations) before timing; the script exits 1 when a check fails.

    .venv/bin/python benchmarks/store_scale.py [--patients 50000] [--series 200000]
        [--repeat 3] [--backends postgresql,sqlite]
        [--cases list,page,filters,timeline,risk,picker]

For iteration: ``--patients 5000 --series 20000 --cases list,filters --repeat 1``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import io
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
from sqlalchemy import select

from analytics.store import open_store, repo
from analytics.store._repo_util import (
    baseline_of,
    dates_baseline,
    years_between,
)
from analytics.store.db import Store
from analytics.store.patient_summary import rebuild
from analytics.store.schema import Outcome, Patient, Study, Visit
from benchmarks import patient_list_0b5c1e5 as before
from benchmarks.harness import Comparison, compare, format_seconds, measure
from ui.tables import SORTS, sort_patients

KEY = ("liver_volume_ml", "spleen_volume_ml", "liver_hu_mean", "liver_spleen_hu_diff")
OTHER = ("liver_hu_sd", "spleen_hu_mean")
EVENTS = ("censored", "censored", "censored", "death", "decompensation", "hcc", "transplant")
MODALITIES = ("CT", "CT", "CT", "MR", "US")
NOW = "2026-12-01 00:00:00.000000"


# --------------------------------------------------------------------------- data
def generate(n_patients: int, n_series: int, seed: int) -> dict[str, tuple[list[str], list[tuple]]]:
    """Rows of every table the cohort list reads: ``{table: (columns, rows)}``.

    Each patient has 1-3 studies (3 % none); the series are spread over the studies (at
    least one each) until ``n_series``; half of the valid series carry four key and two
    other biomarkers; every patient has 0-4 lab visits (some without a date) and most an outcome.
    """
    rng = random.Random(seed)
    patients, identity, studies, visits, outcomes = [], [], [], [], []
    for pid in range(1, n_patients + 1):
        base = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(2500))
        shift = rng.randrange(-365, 365)
        patients.append((pid, f"HT-{pid:06d}", rng.choice("FM"), 1930 + rng.randrange(60),
                         base if rng.random() < 0.5 else None, "imaging", NOW))
        identity.append((pid, pid, f"MRN{pid:07d}", f"key{pid:07d}",
                         f"{rng.choice(('DOE', 'ROE', 'SMITH', 'JONES'))}^P{pid}",
                         dt.date(1930 + rng.randrange(60), 1 + rng.randrange(12), 1), shift,
                         None))
        for k in range(0 if rng.random() < 0.03 else rng.randrange(1, 4)):
            day = base + dt.timedelta(days=int(k * 365 + rng.randrange(60)))
            studies.append((len(studies) + 1, f"2.25.{pid}.{k}", pid,
                            day if rng.random() > 0.01 else None, "CT abdomen", None, NOW))
        for v in range(rng.randrange(5)):
            t = round(0.5 * v + rng.random() * 0.1, 6)
            visits.append((len(visits) + 1, pid, t,
                           base + dt.timedelta(days=round(t * 365.25))
                           if rng.random() < 0.8 else None, "csv",
                           json.dumps({"bilirubin_mg_dl": round(rng.uniform(0.3, 4), 2)})))
        if rng.random() < 0.9:
            t = round(rng.uniform(0.5, 8), 4)
            outcomes.append((len(outcomes) + 1, pid, t,
                             base + dt.timedelta(days=round(t * 365.25)), rng.choice(EVENTS)))
    if not studies:
        raise ValueError("no studies generated: ask for more patients")
    per_study = [1] * len(studies)
    for _ in range(max(0, n_series - len(studies))):
        per_study[rng.randrange(len(studies))] += 1
    series, features = [], []
    for study, n in zip(studies, per_study, strict=True):
        for j in range(n):
            sid = len(series) + 1
            status = "invalid" if rng.random() < 0.02 else "complete"
            series.append((sid, f"{study[1]}.{j}", f"src{sid}", study[0], rng.choice(MODALITIES),
                           "series", rng.choice(("portal_venous", "arterial", None)), None,
                           100, 100, 512, 512, "[0.7, 0.7, 1.5]", None, status, None,
                           f"dicom/{sid}", "folder", NOW))
            if status == "complete" and rng.random() < 0.5:
                for name in KEY + OTHER:
                    features.append((len(features) + 1, sid, name,
                                     round(rng.gauss(100, 30), 3), "mL", "1.0", None, None,
                                     NOW))
    return {
        "patients": (["id", "pseudonym", "sex", "birth_year", "baseline_date", "source",
                      "created_at"], patients),
        "identity_map": (["id", "patient_id", "real_patient_id", "real_patient_id_key",
                          "patient_name", "birth_date", "date_shift_days", "issuer"], identity),
        "studies": (["id", "study_uid", "patient_id", "study_date", "description",
                     "accession_key", "created_at"], studies),
        "series": (["id", "series_uid", "source_key", "study_id", "modality", "description",
                    "contrast_phase", "frame_of_reference_uid", "n_instances", "n_slices",
                    "rows", "columns", "spacing_mm", "geometry", "status", "status_reason",
                    "storage_dir", "source", "created_at"], series),
        "features": (["id", "series_id", "name", "value", "unit", "extractor_version",
                      "mask_id", "flags", "computed_at"], features),
        "visits": (["id", "patient_id", "time_years", "visit_date", "source", "values"],
                   visits),
        "outcomes": (["id", "patient_id", "time_years", "outcome_date", "event"], outcomes),
    }


def load(store: Store, tables: dict[str, tuple[list[str], list[tuple]]]) -> None:
    """Bulk-insert the generated rows (COPY on PostgreSQL, executemany on SQLite), then
    refresh the planner's statistics."""
    raw = store.engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        cur = dbapi.cursor()
        for table, (columns, rows) in tables.items():
            names = ", ".join(f'"{c}"' for c in columns)
            if store.engine.dialect.name == "postgresql":
                buf = io.StringIO()
                csv.writer(buf).writerows(rows)  # None -> empty field -> NULL
                with cur.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write(buf.getvalue())
            else:
                marks = ", ".join("?" for _ in columns)
                cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})",
                                [tuple(v.isoformat() if isinstance(v, dt.date) else v
                                       for v in row) for row in rows])
        if store.engine.dialect.name == "postgresql":
            for table in tables:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))")
        dbapi.commit()
        cur.execute("ANALYZE")
        dbapi.commit()
    finally:
        raw.close()
    started = time.perf_counter()
    with store.session() as s:  # rows loaded outside the sessions: summarise them once
        rebuild(s)
    print(f"patient_summary rebuilt in {time.perf_counter() - started:.1f} s")
    raw = store.engine.raw_connection()
    try:
        cur = raw.driver_connection.cursor()
        cur.execute("ANALYZE")
        raw.driver_connection.commit()
    finally:
        raw.close()


# --------------------------------------------------------------------------- baseline
# ``repo.cohort_timeline`` as it was at dcaad46, kept verbatim apart from its name.
def rowwise_cohort_timeline(store: Store) -> pd.DataFrame:
    """Baseline: ``repo.cohort_timeline`` as of ``dcaad46`` (a Python loop over rows)."""
    with store.session() as s:
        patients = s.execute(select(Patient.id, Patient.pseudonym,
                                    Patient.baseline_date)).all()
        studies = s.execute(select(Study.patient_id, Study.study_date,
                                   dates_baseline().label("for_baseline"))
                            .where(Study.patient_id.is_not(None))).all()
        visits = s.execute(select(Visit.patient_id, Visit.time_years, Visit.visit_date)).all()
        outcomes = s.execute(select(Outcome.patient_id, Outcome.time_years,
                                    Outcome.event)).all()
    dates_of: dict[int, list[dt.date]] = defaultdict(list)
    base_dates: dict[int, list[dt.date]] = defaultdict(list)
    for r in studies:
        if r.study_date is not None:
            dates_of[r.patient_id].append(r.study_date)
            if r.for_baseline:
                base_dates[r.patient_id].append(r.study_date)
    visit_dates: dict[int, list[dt.date]] = defaultdict(list)
    for r in visits:
        if r.visit_date is not None:
            visit_dates[r.patient_id].append(r.visit_date)
    names = {p.id: p.pseudonym for p in patients}
    base = {p.id: baseline_of(p.baseline_date, base_dates[p.id] + visit_dates[p.id],
                              dates_of[p.id])
            for p in patients}
    rows: list[tuple[str, str, float, str | None]] = []
    for pid, dates in dates_of.items():
        for d in dates:
            rows.append((names[pid], "scan", years_between(d, base[pid]), None))  # type: ignore[arg-type]
    rows += [(names[r.patient_id], "visit", float(r.time_years), None) for r in visits
             if r.time_years is not None]
    rows += [(names[r.patient_id], "outcome", float(r.time_years), r.event) for r in outcomes]
    df = pd.DataFrame(rows, columns=["pseudonym", "kind", "time_years", "event"])
    df["time_years"] = df["time_years"].astype("float64")
    return df.sort_values(["pseudonym", "time_years", "kind"], ignore_index=True)


# --------------------------------------------------------------------------- cases
def _truth(tables: dict[str, tuple[list[str], list[tuple]]]) -> dict[str, Any]:
    """Facts worked out from the generated rows alone, to check the filters against."""
    pseudonym = {r[0]: r[1] for r in tables["patients"][1]}
    identity = {r[1]: r for r in tables["identity_map"][1]}
    study_patient = {r[0]: r[2] for r in tables["studies"][1]}
    events = {r[1]: r[4] for r in tables["outcomes"][1]}
    return {
        "pseudonym": pseudonym, "identity": identity, "events": events,
        "scanned": {pseudonym[p] for p in study_patient.values()},
        "modality": lambda m: {pseudonym[study_patient[r[3]]]
                               for r in tables["series"][1] if r[4] == m},
    }


def _filter_cases(truth: dict[str, Any]) -> list[tuple[str, repo.PatientQuery, bool, set[str],
                                                       Callable[[pd.DataFrame], pd.DataFrame]]]:
    """(name, query, identified, expected pseudonyms, the same filter in pandas)."""
    names = truth["pseudonym"].values()
    ident = {truth["pseudonym"][pid]: r for pid, r in truth["identity"].items()}

    def search_in_table(text: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
        def run(df: pd.DataFrame) -> pd.DataFrame:
            hit = pd.Series(False, index=df.index)
            for col in ("pseudonym", "patient_name", "patient_id"):
                if col in df.columns:
                    hit |= df[col].fillna("").astype(str).str.lower().str.contains(
                        text, regex=False)
            return df[hit]
        return run

    death = {truth["pseudonym"][p] for p, e in truth["events"].items() if e == "death"}
    had = {truth["pseudonym"][p] for p, e in truth["events"].items() if e != "censored"}
    mr = truth["modality"]("MR")
    middle = sorted(names)[len(names) // 2]
    page = sorted(n for n in names if n > middle)[:50]
    return [
        ("search pseudonym 'ht-00012' (pseudonymised)", repo.PatientQuery(search="ht-00012"),
         False, {n for n in names if "ht-00012" in n.lower()}, search_in_table("ht-00012")),
        ("search name 'smith^p12' (identified)", repo.PatientQuery(search="smith^p12"), True,
         {n for n, r in ident.items() if "smith^p12" in r[4].lower()},
         search_in_table("smith^p12")),
        ("search real ID 'mrn00042' (identified)", repo.PatientQuery(search="mrn00042"), True,
         {n for n, r in ident.items() if "mrn00042" in r[2].lower()},
         search_in_table("mrn00042")),
        # identity is never searched where it is not shown: no hit, whoever is behind
        ("search name 'smith' (pseudonymised: no identity searched)",
         repo.PatientQuery(search="smith"), False, set(), search_in_table("smith")),
        ("outcome death (identified)", repo.PatientQuery(events=("death",)), True, death,
         lambda df: df[df["event"] == "death"]),
        ("had an event (pseudonymised)", repo.PatientQuery(had_event=True), False, had,
         lambda df: df[df["event"].notna() & (df["event"] != "censored")]),
        ("has an MR series (pseudonymised)", repo.PatientQuery(modality="MR"), False, mr,
         lambda df: df[df["pseudonym"].isin(mr)]),
        ("no scans (identified)", repo.PatientQuery(has_scans=False), True,
         set(names) - truth["scanned"], lambda df: df[df["n_studies"] == 0]),
        (f"page of 50 after {middle} (identified)",
         repo.PatientQuery(after=middle, limit=50), True, set(page),
         lambda df: df[df["pseudonym"] > middle].head(50)),
    ]


class CheckFailed(Exception):
    """A result differs from its baseline or from the generated truth."""


def _same(case: pd.DataFrame, baseline: pd.DataFrame, what: str) -> None:
    try:
        pd.testing.assert_frame_equal(case.reset_index(drop=True),
                                      baseline.reset_index(drop=True))
    except AssertionError as e:
        raise CheckFailed(f"{what}: case and baseline differ: {e}") from e


def run_backend(store: Store, backend: str, tables: dict, args: argparse.Namespace,
                rows: list[dict[str, Any]]) -> None:
    """Check, then time, every read on one loaded store; append table rows to ``rows``."""
    n = args.patients

    def add(call: str, cmp: Comparison | None, case_s: float | None = None) -> None:
        rows.append({"backend": backend, "call": call,
                     "case_s": cmp.case.median if cmp else case_s,
                     "baseline_s": cmp.baseline.median if cmp else None,
                     "ratio": cmp.ratio if cmp else None})

    cases = set(args.cases.split(","))
    for identified in (False, True) if "list" in cases else ():
        view = "identified" if identified else "pseudonymised"
        _same(repo.list_patients(store, identified=identified),
              before.list_patients(store, identified=identified), f"list_patients {view}")
        add(f"list_patients ({view})", compare(
            f"{backend} repo.list_patients {view}",
            lambda i=identified: repo.list_patients(store, identified=i),
            "list_patients of 0b5c1e5 (aggregated at read time)",
            lambda i=identified: before.list_patients(store, identified=i),
            repeat=args.repeat, warmup=0, units=(n, "patients")))
    if "page" in cases:
        _page_cases(store, backend, args, rows)

    full = ({i: repo.list_patients(store, identified=i) for i in (False, True)}
            if "filters" in cases else {})
    for name, query, identified, expected, in_pandas in (
            _filter_cases(_truth(tables)) if "filters" in cases else ()):
        got = repo.find_patients(store, query, identified=identified)
        if set(got["pseudonym"]) != expected or len(got) != len(expected):
            raise CheckFailed(f"{name}: {len(got)} patients, expected {len(expected)}")
        counted = repo.count_patients(store, query, identified=identified)
        if counted != len(expected):
            raise CheckFailed(f"{name}: counted {counted} patients, expected {len(expected)}")
        _same(got, in_pandas(full[identified]), name)
        if query.limit is None:  # what a page of the filtered list costs: 50 rows + count
            paged = dataclasses.replace(query, limit=50)
            _same(repo.find_patients(store, paged, identified=identified),
                  got.head(50), f"{name}, first page")
            timing = measure(lambda q=paged, i=identified: (
                repo.find_patients(store, q, identified=i),
                repo.count_patients(store, q, identified=i)), repeat=args.repeat, warmup=0)
            print(f"{backend} find_patients {name}, first 50 + count: "
                  f"{format_seconds(timing.median)}")
            add(f"find_patients + count_patients: {name}, first 50", None, timing.median)
        old = _old_query(query)
        _same(got, before.find_patients(store, old, identified=identified),
              f"{name} against 0b5c1e5")
        add(f"find_patients: {name} [{len(got)}]", compare(
            f"{backend} find_patients {name}",
            lambda q=query, i=identified: repo.find_patients(store, q, identified=i),
            "find_patients of 0b5c1e5",
            lambda q=old, i=identified: before.find_patients(store, q, identified=i),
            repeat=args.repeat, warmup=0))

    if "timeline" in cases:
        _timeline_and_rest(store, backend, tables, args, add)
    if "risk" in cases:
        _risk_cases(store, backend, args, rows)
    if "picker" in cases:
        _picker_cases(store, backend, args, add)


def _old_query(query: repo.PatientQuery) -> before.PatientQuery:
    """The same filters as a query of ``0b5c1e5`` (which had no sort, offset or set)."""
    fields = {f.name for f in dataclasses.fields(before.PatientQuery)}
    return before.PatientQuery(**{k: v for k, v in dataclasses.asdict(query).items()
                                  if k in fields})


def _page_cases(store: Store, backend: str, args: argparse.Namespace,
                rows: list[dict[str, Any]]) -> None:
    """The Cohort page's first page of 50 and its count, per SQL sort and view, and with
    a filter, against 0b5c1e5's way (the filtered list, sorted in pandas, 50 rows)."""
    label = {col: name for name, (col, _asc) in SORTS.items()}
    cases = [(sort, identified, repo.PatientQuery(sort=sort))
             for sort in repo.SORT_COLUMNS if sort != "risk"  # the risk cases: "risk"
             for identified in (False, True)]
    cases.append(("last_scan", True, repo.PatientQuery(sort="last_scan", had_event=True)))
    for sort, identified, query in cases:
        view = "identified" if identified else "pseudonymised"
        what = f"page of 50 by {sort} ({view}{', had an event' if query.had_event else ''})"
        page = dataclasses.replace(query, limit=50)

        def case(q=page, full=query, i=identified) -> tuple[pd.DataFrame, int]:
            return (repo.find_patients(store, q, identified=i),
                    repo.count_patients(store, full, identified=i))

        def baseline(full=query, i=identified, s=sort) -> tuple[pd.DataFrame, int]:
            rows = before.find_patients(store, _old_query(full), identified=i)
            return sort_patients(rows, label[s]).head(50), len(rows)

        got, want = case(), baseline()
        _same(got[0], want[0], what)
        if got[1] != want[1]:
            raise CheckFailed(f"{what}: counted {got[1]}, expected {want[1]}")
        # each timed alone (after one untimed call): a page costs milliseconds, and
        # timing it right after a baseline call that built tens of thousands of rows
        # measured that call's aftermath (freed memory, evicted caches) instead
        timing = measure(case, repeat=args.repeat, warmup=1)
        base = measure(baseline, repeat=1, warmup=0)
        print(f"case {backend} {what}: {format_seconds(timing.median)} | baseline 0b5c1e5: "
              f"filtered list, pandas sort, 50 rows: {format_seconds(base.median)} | "
              f"{base.median / timing.median:.1f}x faster")
        rows.append({"backend": backend, "call": f"find_patients + count_patients: {what}",
                     "case_s": timing.median, "baseline_s": base.median,
                     "ratio": base.median / timing.median})


RISK_MODEL, RISK_HORIZON = "bench-cox", 3.0


def _risk_frame(store: Store, seed: int) -> pd.DataFrame:
    """A cohort risk (``overview.cohort_risk`` columns the page uses, plus flags) for every
    patient: seeded values, 5 % not assessable."""
    from analytics.usecases.overview import trend_of

    rng = random.Random(seed)
    names = repo.find_pseudonyms(store, repo.PatientQuery(), identified=False)
    risk = [None if rng.random() < 0.05 else rng.random() for _ in names]
    prev = [rng.random() for _ in names]
    frame = pd.DataFrame({"pseudonym": names, "risk": pd.array(risk, dtype="float64"),
                          "previous_risk": prev, "risk_time": [rng.random() * 5 for _ in names],
                          "risk_date": pd.Timestamp("2024-01-01")
                          + pd.to_timedelta([rng.randrange(700) for _ in names], unit="D"),
                          "reason": ["out of domain" if r is None else None for r in risk]})
    frame["trend"] = [trend_of(p, r) for p, r in zip(frame["previous_risk"], frame["risk"],
                                                      strict=True)]
    frame["flags"] = ["out of domain" if r is None else "" for r in risk]
    return frame


def _register_model(store: Store) -> None:
    from analytics.store.schema import ModelRecord

    with store.session() as s:
        if s.execute(select(ModelRecord.id).where(ModelRecord.model_id == RISK_MODEL)
                     ).scalar() is None:
            s.add(ModelRecord(model_id=RISK_MODEL, kind="cox", event="decompensation",
                              horizons=[RISK_HORIZON], content_sha256="0" * 64,
                              training_data_sha256="0" * 64, artifact_path="none",
                              features=[], training_ranges={}, metrics={}, card={}))


def _risk_cases(store: Store, backend: str, args: argparse.Namespace,
                rows: list[dict[str, Any]]) -> None:
    """The Cohort page's page of 50 sorted by current risk, and its count, from the
    stored current risk in SQL, against the page's in-memory way (every filtered
    patient's pseudonym, the cached risk frame merged and sorted in pandas, the page's
    rows read by pseudonym: ``ui.cohort_view.page_of``); also the risk's write."""
    from analytics.usecases.current_risk import record_risk_frame
    from ui.cohort_view import RISING, CohortView, arrange, patient_table

    frame = _risk_frame(store, args.seed)
    _register_model(store)
    t0, c0 = time.perf_counter(), time.process_time()
    record_risk_frame(store, RISK_MODEL, RISK_HORIZON, frame, data_version="bench")
    print(f"{backend}: current risk of {len(frame):,} patients written in "
          f"{time.perf_counter() - t0:.2f} s ({time.process_time() - c0:.2f} CPU s)")
    by_risk = "Current risk (highest first)"
    for had_event, rising, identified in ((False, False, False), (False, False, True),
                                          (True, False, False), (False, True, False)):
        view = "identified" if identified else "pseudonymised"
        what = (f"page of 50 by risk ({view}{', had an event' if had_event else ''}"
                f"{', rising' if rising else ''})")
        whole = repo.PatientQuery(had_event=had_event, rising=rising, risk_model=RISK_MODEL,
                                  risk_horizon=RISK_HORIZON)
        cohort_view = CohortView("", had_event, by_risk, (RISING,) if rising else ())

        def case(q=whole, i=identified) -> tuple[list[str], int]:
            page = repo.find_patients(store, dataclasses.replace(q, sort="risk", limit=50),
                                      identified=i)
            return page["pseudonym"].tolist(), repo.count_patients(store, q, identified=i)

        def baseline(v=cohort_view, i=identified) -> tuple[list[str], int]:
            names = repo.find_pseudonyms(store, repo.PatientQuery(had_event=v.had_event),
                                         identified=i)
            ordered = arrange(patient_table(pd.DataFrame({"pseudonym": pd.Series(
                names, dtype=object)}), frame), v)["pseudonym"].tolist()
            chosen = tuple(ordered[:50])
            page = repo.find_patients(store, repo.PatientQuery(pseudonyms=chosen),
                                      identified=i)
            page = page.set_index("pseudonym", drop=False).loc[list(chosen)]
            return patient_table(page.reset_index(drop=True), frame)["pseudonym"].tolist(), \
                len(ordered)

        got, want = case(), baseline()
        if got != want:
            raise CheckFailed(f"{what}: SQL page {got[0][:3]}… ({got[1]}) differs from the "
                              f"in-memory page {want[0][:3]}… ({want[1]})")
        cmp = compare(f"{backend} {what}: find_patients + count_patients (risk in SQL)", case,
                      "in-memory risk sort (page_of: pseudonyms, pandas sort, rows by name)",
                      baseline, repeat=args.repeat, warmup=1)
        rows.append({"backend": backend, "call": f"risk in SQL: {what}",
                     "case_s": cmp.case.median, "baseline_s": cmp.baseline.median,
                     "ratio": cmp.ratio})


def _picker_cases(store: Store, backend: str, args: argparse.Namespace,
                  add: Callable[..., None]) -> None:
    """The Patient page's picker search (``find_names`` with a search and ``LIMIT`` 20,
    as ``ui.loaders.picker_search``) against the whole-list picker (every patient's row
    and label)."""
    from ui.tables import patient_choices

    n = args.patients
    for text, identified, expected in ((f"{n // 2:06d}", False, 1), ("0001", False, 20),
                                       (f"MRN{n // 3:07d}", True, 1), ("SMITH", True, 20)):
        view = "identified" if identified else "pseudonymised"
        query = repo.PatientQuery(search=text, limit=20)
        found = repo.find_names(store, query, identified=identified)
        if len(found) != expected:
            raise CheckFailed(f"picker search {text!r}: {len(found)} found, expected "
                              f"{expected}")

        def whole(i=identified) -> int:
            options, label = patient_choices(repo.list_patients(store, identified=i))
            return len([label(p) for p in options])

        def case(q=query, i=identified) -> int:
            options, label = patient_choices(repo.find_names(store, q, identified=i))
            return len([label(p) for p in options])

        add(f"picker search {text!r} ({view}, LIMIT 20)", compare(
            f"{backend} picker search {text!r} ({view}, find_names LIMIT 20 + labels)",
            case, "whole-list picker (list_patients + every label)", whole,
            repeat=args.repeat, warmup=1))


def _timeline_and_rest(store: Store, backend: str, tables: dict, args: argparse.Namespace,
                       add: Callable[..., None]) -> None:
    """The follow-up timeline against its baseline; the headline counts and one patient's
    page timed alone."""
    n = args.patients
    _same(repo.cohort_timeline(store), rowwise_cohort_timeline(store), "cohort_timeline")
    add("cohort_timeline", compare(
        f"{backend} repo.cohort_timeline", lambda: repo.cohort_timeline(store),
        "row-wise cohort_timeline of dcaad46", lambda: rowwise_cohort_timeline(store),
        repeat=args.repeat, warmup=0))
    one = f"HT-{n // 2:06d}"
    for call, fn in (("cohort_summary", lambda: repo.cohort_summary(store)),
                     (f"patient_detail {one} (identified)",
                      lambda: repo.patient_detail(store, one, identified=True)),
                     (f"series_for_patient {one}",
                      lambda: repo.series_for_patient(store, one))):
        timing = measure(fn, repeat=args.repeat, warmup=1)
        print(f"{backend} {call}: {format_seconds(timing.median)} (no baseline: unchanged)")
        add(call, None, timing.median)
    summary = repo.cohort_summary(store)
    want = {"patients": n, "studies": len(tables["studies"][1]),
            "series": len(tables["series"][1])}
    if {k: summary[k] for k in want} != want:
        raise CheckFailed(f"cohort_summary {summary} does not match the generated {want}")


@contextlib.contextmanager
def _stores(backend: str, work: Path) -> Iterator[Store | None]:
    """An empty, migrated store on ``backend`` (None when PostgreSQL is not installed)."""
    if backend == "sqlite":
        store = open_store(url=f"sqlite:///{work / 'scale.db'}", home=work)
        try:
            yield store
        finally:
            store.dispose()
        return
    from tests import services

    if not any((d / "initdb").exists() for d in services.PG_BIN_DIRS):
        print("postgresql: skipped (no initdb under /usr/lib/postgresql/*/bin)")
        yield None
        return
    with services.postgres_server() as pg:
        store = open_store(url=pg.new_database("scale"), home=work)
        try:
            yield store
        finally:
            store.dispose()


def _print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print(f"{'backend':<11}{'call':<76}{'case':>10}{'baseline':>11}{'ratio':>8}")
    for r in rows:
        base = format_seconds(r["baseline_s"]) if r["baseline_s"] is not None else "-"
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] is not None else "-"
        flag = "" if r["case_s"] <= 1.0 else "  (> 1 s)"
        print(f"{r['backend']:<11}{r['call'][:75]:<76}{format_seconds(r['case_s']):>10}"
              f"{base:>11}{ratio:>8}{flag}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=50_000)
    ap.add_argument("--series", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="postgresql,sqlite",
                    help="comma-separated: postgresql, sqlite")
    ap.add_argument("--cases", default="list,page,filters,timeline",
                    help="comma-separated: list (list_patients), page (the Cohort page's "
                         "sorted page of 50 and count), filters (find_patients), timeline "
                         "(cohort_timeline, summary and one patient's page), risk (the page "
                         "sorted by the stored current risk), picker (the picker's search)")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.perf_counter()
    tables = generate(args.patients, args.series, args.seed)
    print(f"generated {', '.join(f'{len(v[1]):,} {k}' for k, v in tables.items())} "
          f"in {time.perf_counter() - started:.1f} s")
    rows: list[dict[str, Any]] = []
    try:
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory() as d, _stores(backend.strip(), Path(d)) as store:
                if store is None:
                    continue
                t = time.perf_counter()
                load(store, tables)
                print(f"{backend}: loaded in {time.perf_counter() - t:.1f} s")
                run_backend(store, backend, tables, args, rows)
    except CheckFailed as e:
        print(f"CHECK FAILED: {e}")
        return 1
    _print_table(rows)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
