"""What the Ingest page's "New risk" adds to an ingest job, per patient of an upload, on a
copy of a home with a trained model and imaging (default: a copy of ``--home``, e.g. the
demo home; the case writes predictions, current risk and audit records into the copy).

Case: :func:`ui.ingest_risk.new_risk` for one patient whose newest scan is the "new"
series (the predict use case for that patient, as the job calls it for each patient: permission, audit, the model loaded, the
patient's cohort rows built, scored and explained, the predictions cached, and with
``record_current`` the patient's current risk at every horizon of the model from the
same rows; the dates as the viewer sees them). Baseline: the predict use case alone for the same
patient (``PredictRequest(patients=[p])``, what ``hepatrack predict --patient`` and the
upload-to-score benchmark run). Wall and CPU seconds per call, interleaved, medians over
``--patients`` patients with a scan times ``--repeat`` rounds, with the load average.

    .venv/bin/python benchmarks/ingest_risk.py --home /tmp/demo31/home [--patients 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics.audit import Actor  # noqa: E402
from analytics.cohort import build_cohort  # noqa: E402
from analytics.config import load_settings  # noqa: E402
from analytics.store import open_store  # noqa: E402
from analytics.usecases.context import Context  # noqa: E402
from analytics.usecases.models import PredictRequest, predict  # noqa: E402
from ui.ingest_risk import new_risk  # noqa: E402
from ui.ingest_view import FeatureSummary  # noqa: E402

CLINICIAN = Actor("bench.clinician", "clinician", "bench")


def _scanned(store, n: int) -> list[tuple[str, str, str]]:
    """(patient, series UID, stored date) of the newest scan of ``n`` scanned patients."""
    visits = build_cohort(store).visits
    scans = visits.dropna(subset=["series_uid"]).sort_values("time")
    newest = scans.groupby("patient").tail(1).sort_values("patient")
    rows = newest.iloc[:: max(1, len(newest) // n)].head(n)
    return [(str(p), str(u), str(d.date()) if d == d else None)
            for p, u, d in zip(rows["patient"], rows["series_uid"], rows["date"], strict=True)]


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path("/tmp/demo31/home"))
    ap.add_argument("--patients", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-risk-") as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(a.home, home)
        settings = load_settings(home)
        store = open_store(settings)
        ctx = Context(CLINICIAN, store, settings)
        picked = _scanned(store, a.patients)
        print(f"{len(picked)} scanned patients of {a.home}; load "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        def case(p: str, uid: str, day: str | None):
            report = SimpleNamespace(held=[], series=[{
                "series_uid": uid, "status": "complete", "modality": "CT", "patient": p,
                "study_date": day}])
            got = new_risk(store, settings, CLINICIAN, report,
                           FeatureSummary(series_done=[uid]))
            assert got is not None and len(got.patients) == 1, got
            return got

        def base(p: str, _uid: str, _day: str | None):
            return predict(ctx, PredictRequest(patients=[p]))

        for args in picked:  # warm: imports, the model's first load
            case(*args)
            base(*args)
        runs: dict[str, list[tuple[float, float]]] = {"case": [], "base": []}
        for _ in range(a.repeat):
            for args in picked:
                runs["case"].append(_timed(lambda args=args: case(*args)))
                runs["base"].append(_timed(lambda args=args: base(*args)))
        store.dispose()
    med = {k: (statistics.median(w for w, _c in v), statistics.median(c for _w, c in v))
           for k, v in runs.items()}
    (cw, cc), (bw, bc) = med["case"], med["base"]
    print(f"case new_risk of one patient (predict + current risk at every horizon + dates): "
          f"{1000 * cw:.0f} ms wall, {1000 * cc:.0f} ms CPU | baseline predict use case "
          f"alone: {1000 * bw:.0f} ms wall, {1000 * bc:.0f} ms CPU | added by the current "
          f"risk and dates: {1000 * (cw - bw):.0f} ms wall, {1000 * (cc - bc):.0f} ms CPU "
          f"(medians of {len(runs['case'])} calls each); load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
