"""Cohort list: set-based ``repo.list_patients`` against one query batch per patient.

Baseline: the straightforward ORM loop a page might write (for each patient, read its
identity, studies, series counts, visits, outcome and features). Both build the same table
from the same SQLite store; the script checks that before timing.

    .venv/bin/python benchmarks/bench_repo.py [--patients N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
from sqlalchemy import func, select

from analytics.store import open_store, repo
from analytics.store.schema import (
    Feature,
    IdentityMap,
    Outcome,
    Patient,
    Series,
    Study,
    Visit,
)
from benchmarks.harness import compare

FEATURES = ["liver_volume_ml", "spleen_volume_ml", "liver_hu_mean", "liver_spleen_hu_diff",
            "liver_surface_nodularity", "liver_hu_sd", "spleen_hu_mean", "liver_hu_median"]


def seed(store, n_patients: int, rng: random.Random) -> None:
    """``n_patients`` with 3 studies x 2 series x 8 features and 4 lab visits each."""
    with store.session() as s:
        for i in range(n_patients):
            base = dt.date(2018, 1, 1) + dt.timedelta(days=rng.randrange(700))
            p = Patient(pseudonym=f"HT-{i:05d}", sex=rng.choice("FM"),
                        birth_year=1940 + rng.randrange(40), baseline_date=base)
            s.add(p)
            s.flush()
            s.add(IdentityMap(patient_id=p.id, real_patient_id=f"MRN{i}",
                              real_patient_id_key=f"k{i}", patient_name=f"Name^{i}",
                              date_shift_days=-rng.randrange(1, 365)))
            for k in range(3):
                st = Study(study_uid=f"2.25.{i}.{k}", patient_id=p.id,
                           study_date=base + dt.timedelta(days=365 * k))
                s.add(st)
                s.flush()
                for j, phase in enumerate(("arterial", "portal_venous")):
                    se = Series(series_uid=f"2.25.{i}.{k}.{j}", source_key=f"s{i}.{k}.{j}",
                                study_id=st.id, modality="CT", contrast_phase=phase,
                                storage_dir="dicom/x")
                    s.add(se)
                    s.flush()
                    s.add_all([Feature(series_id=se.id, name=f, value=rng.gauss(100, 20),
                                       unit="mL", extractor_version="1.0") for f in FEATURES])
            s.add_all([Visit(patient_id=p.id, time_years=0.5 * v, source="csv",
                             values={"bilirubin_mg_dl": 1.0}) for v in range(4)])
            s.add(Outcome(patient_id=p.id, time_years=3.0, event=rng.choice(
                ["censored", "death", "decompensation"])))


def per_patient_list(store) -> pd.DataFrame:
    """Baseline: the same columns, one round of queries per patient."""
    rows = []
    with store.session() as s:
        for p in s.execute(select(Patient).order_by(Patient.pseudonym)).scalars():
            idm = s.execute(select(IdentityMap).where(IdentityMap.patient_id == p.id)).scalar()
            studies = s.execute(select(Study).where(Study.patient_id == p.id)).scalars().all()
            n_series = sum(s.execute(select(func.count(Series.id))
                                     .where(Series.study_id == st.id)).scalar()
                           for st in studies)
            out = s.execute(select(Outcome).where(Outcome.patient_id == p.id)).scalar()
            visits = s.execute(select(Visit).where(Visit.patient_id == p.id)).scalars().all()
            latest: dict[str, float] = {}
            for st in sorted(studies, key=lambda x: x.study_date):
                for se in s.execute(select(Series).where(Series.study_id == st.id)
                                    .order_by(Series.id)).scalars():
                    for f in s.execute(select(Feature).where(
                            Feature.series_id == se.id,
                            Feature.name.in_(repo.KEY_BIOMARKERS))).scalars():
                        if f.value is not None:
                            latest[f.name] = f.value
            shift = dt.timedelta(days=idm.date_shift_days)
            dates = {st.study_date for st in studies}
            dates |= {p.baseline_date + dt.timedelta(days=round(v.time_years * 365.25))
                      for v in visits}
            rows.append({"pseudonym": p.pseudonym, "patient_name": idm.patient_name,
                         "n_studies": len(studies), "n_series": n_series,
                         "first_scan": min(st.study_date for st in studies) - shift,
                         "n_visits": len(dates), "event": out.event,
                         "liver_volume_ml": latest.get("liver_volume_ml")})
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        store = open_store(url=f"sqlite:///{Path(d) / 'bench.db'}")
        seed(store, args.patients, random.Random(7))
        fast = repo.list_patients(store, identified=True)
        slow = per_patient_list(store)
        cols = list(slow.columns)
        got = fast[cols].assign(first_scan=fast["first_scan"].dt.date)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), slow, check_dtype=False)
        print(f"list_patients, SQLite, {args.patients} patients x 3 studies x 2 series x "
              f"{len(FEATURES)} features (results identical)")
        compare("set-based repo.list_patients", lambda: repo.list_patients(store,
                                                                          identified=True),
                "per-patient ORM queries", lambda: per_patient_list(store),
                repeat=args.repeat, units=(args.patients, "patients"), memory=True)
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
