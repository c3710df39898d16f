"""Cohort stage: re-importing a cohort, and attaching lab draws to scans.

1. ``import_cohort`` of a synthetic labs cohort that is already stored (the idempotent
   upsert path a nightly re-import takes) against the straightforward per-row upsert: one
   SELECT per visit row to find it, then UPDATE or INSERT. Both leave the same rows.
2. The vectorised lab-to-scan merge of ``build_cohort`` (two ``merge_asof`` per column)
   against a per-scan Python loop applying the same rule (nearest draw within the window,
   not across another scan, earlier on a tie). The script checks both give the same
   table before timing.

    .venv/bin/python benchmarks/bench_cohort.py [--patients N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from sqlalchemy import select

from analytics.cohort import import_cohort
from analytics.cohort.importer import pseudonymiser
from analytics.cohort.reader import read_table
from analytics.cohort.table import _attach_labs
from analytics.cohort.validate import PatientContext, patient_key, validate
from analytics.store import open_store
from analytics.store.schema import Outcome, Patient, Visit
from analytics.synthetic.cohort import CohortConfig, generate_cohort
from benchmarks.harness import compare

WINDOW_YEARS = 90 / 365.25
ATTACH_PATIENTS = 60
#: distances closer than this are equal (the cohort table's own tolerance)
TIE_YEARS = 1e-9
LAB_COLUMNS = ["bilirubin_mg_dl", "albumin_g_dl", "inr", "platelets_10e9_l", "age_years"]


def per_row_upsert(store, visits_csv: Path, outcomes_csv: Path) -> None:
    """Baseline: the same validated rows, one SELECT + UPDATE/INSERT per row.

    Patients are pseudonymised and their dates shifted as ``import_cohort`` does (the
    site secret's pseudonym and date shift of each real id), so both stores hold the same
    pseudonyms, dates and values.
    """
    vt, ot = read_table(visits_csv, "visits"), read_table(outcomes_csv, "outcomes")
    pseudonymise = pseudonymiser(store.site_secret())
    keys = {k for k in (patient_key(r.cells.get("patient_id")) for r in vt.rows + ot.rows)
            if k}
    new = {k: pseudonymise(k) for k in keys}
    data = validate(vt, ot, {k: PatientContext(pseudonym=n.pseudonym, shift_days=n.shift_days)
                             for k, n in new.items()})
    with store.session() as s:
        ids: dict[str, int] = {}
        for key in sorted({v.key for v in data.visits} | {o.key for o in data.outcomes}):
            name = new[key].pseudonym
            p = s.execute(select(Patient).where(Patient.pseudonym == name)).scalar()
            if p is None:
                p = Patient(pseudonym=name, source="csv")
                s.add(p)
                s.flush()
            ids[key] = p.id
        for v in data.visits:
            row = s.execute(select(Visit).where(Visit.patient_id == ids[v.key],
                                                Visit.visit_date == v.date,
                                                Visit.source == "csv")).scalar()
            if row is None:
                s.add(Visit(patient_id=ids[v.key], time_years=v.time_years,
                            visit_date=v.date, source="csv", values=v.values))
            elif row.values != v.values:
                row.values = v.values
        for o in data.outcomes:
            row = s.execute(select(Outcome).where(Outcome.patient_id == ids[o.key])).scalar()
            if row is None:
                s.add(Outcome(patient_id=ids[o.key], time_years=o.time_years,
                              outcome_date=o.date, event=o.event))


def loop_attach(scans: pd.DataFrame, labs: pd.DataFrame, columns: list[str],
                window: float) -> pd.DataFrame:
    """Baseline: for every scan and column, scan the patient's draws in Python."""
    out = scans.sort_values("time", kind="stable").reset_index(drop=True).copy()
    by_patient = {p: g for p, g in labs.groupby("patient")}
    scan_times = {p: sorted(g["time"]) for p, g in out.groupby("patient")}
    for i, scan in out.iterrows():
        draws = by_patient.get(scan["patient"])
        times = scan_times[scan["patient"]]
        for c in columns:
            best = None
            for _, d in draws.iterrows() if draws is not None else []:
                if pd.isna(d[c]) or abs(d["time"] - scan["time"]) > window + 1e-9:
                    continue
                lo, hi = sorted((d["time"], scan["time"]))
                if any(lo < t < hi for t in times):
                    continue
                # distances within TIE_YEARS are a tie, which the earlier draw wins: a
                # scan 20 days after one draw and 20 days before the next is 1e-16 y
                # nearer to one of them only by the rounding of days / 365.25
                dist = abs(d["time"] - scan["time"])
                if best is None or dist < best[0] - TIE_YEARS or (
                        dist <= best[0] + TIE_YEARS and d["time"] < best[2]):
                    best = (dist, d[c], d["time"])
            if best is not None:
                value = best[1] + (scan["time"] - best[2] if c == "age_years" else 0.0)
                out.at[i, c] = value
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_cohort(root / "c", CohortConfig(n_patients=args.patients, imaging_patients=0,
                                                 seed=2))
        visits_csv, outcomes_csv = root / "c" / "labs.csv", root / "c" / "outcomes.csv"
        n_rows = sum(1 for _ in visits_csv.open()) - 1

        a = open_store(url=f"sqlite:///{root / 'a.db'}")
        b = open_store(url=f"sqlite:///{root / 'b.db'}")
        import_cohort(a, visits_csv, outcomes_csv)
        per_row_upsert(b, visits_csv, outcomes_csv)
        with a.session() as s1, b.session() as s2:
            q = select(Patient.pseudonym, Visit.visit_date, Visit.values).join(
                Patient, Visit.patient_id == Patient.id).order_by(Patient.pseudonym,
                                                                  Visit.visit_date)
            assert [tuple(r) for r in s1.execute(q)] == [tuple(r) for r in s2.execute(q)]
        compare("import_cohort re-import (set-based upsert)",
                lambda: import_cohort(a, visits_csv, outcomes_csv),
                "per-row SELECT + UPDATE/INSERT", lambda: per_row_upsert(b, visits_csv,
                                                                          outcomes_csv),
                repeat=3, units=(n_rows, "rows"))
        a.dispose()
        b.dispose()

        labs = pd.read_csv(visits_csv, parse_dates=["date"]).rename(
            columns={"patient_id": "patient"})
        first = labs.groupby("patient")["date"].transform("min")
        labs["time"] = (labs["date"] - first).dt.days / 365.25
        # the Python loop is slow: time the merge on the first ATTACH_PATIENTS patients;
        # scans on a third of the visit days, shifted by 20 days so labs are near, not on
        labs = labs[labs["patient"].isin(sorted(labs["patient"].unique())[:ATTACH_PATIENTS])]
        scans = labs.iloc[::3][["patient", "time"]].copy()
        scans["time"] += 20 / 365.25
        scans = scans.drop_duplicates().reset_index(drop=True)
        fast = _attach_labs(scans.copy(), labs, LAB_COLUMNS, WINDOW_YEARS)
        slow = loop_attach(scans.copy(), labs, LAB_COLUMNS, WINDOW_YEARS)
        key = ["patient", "time"]
        fast = fast.sort_values(key, ignore_index=True)[key + LAB_COLUMNS]
        slow = slow.sort_values(key, ignore_index=True)[key + LAB_COLUMNS]
        np.testing.assert_allclose(fast[LAB_COLUMNS].to_numpy(float),
                                   slow[LAB_COLUMNS].to_numpy(float), equal_nan=True)
        compare("merge_asof lab-to-scan attach", lambda: _attach_labs(
                    scans.copy(), labs, LAB_COLUMNS, WINDOW_YEARS),
                "per-scan Python loop", lambda: loop_attach(scans.copy(), labs, LAB_COLUMNS,
                                                            WINDOW_YEARS),
                repeat=3, units=(len(scans), "scans"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
