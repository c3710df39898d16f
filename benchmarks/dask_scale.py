"""Feature extraction of many small series on dask.distributed: throughput against workers.

Data: ``--series`` (default 1,000) small synthetic CT series with their SEG (liver,
spleen, vessels), each a 24 x 64 x 64 volume at 9 x 6 x 6 mm (the project's generator,
``synthesize_visit_volume`` + ``write_ct_series`` + ``write_seg``, one patient per series,
stages 0-3.5), ingested into a template home. Series and home are built once and cached
in ``--cache`` (default ``$TMPDIR/hepatrack-bench-dask``); every run starts from a copy
of the template home (series files hard-linked, the database copied).

Cases: ``run_batch`` on a ``LocalCluster`` it starts itself (processes, one thread each)
with 1, 2 and 4 workers (``--workers``), start-up and shutdown included; then the
"existing cluster" path: a ``LocalCluster`` started here, its address passed as
``scheduler`` (as ``hepatrack features --scheduler`` does). Baseline: the same
``run_batch`` with every series run in this process, one after another (an inline
executor: same loader, extraction and writer, no Dask). Each run's stored features
(``features_frame``) must equal the baseline's, and each series be done once.

Prints series/s per worker count, the speed-up against 1 worker and against the
baseline, and the baseline's CPU seconds per series and stored bytes per series (the
README's estimate for a 1-million-series archive reads these).

    .venv/bin/python benchmarks/dask_scale.py [--series 1000] [--workers 1,2,4]
        [--external-workers 2] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import Executor, Future
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from analytics.cohort.export import features_frame
from analytics.config import Settings
from analytics.features.batch import BatchReport, run_batch
from analytics.ingest.pipeline import ingest_sources
from analytics.store.db import open_store
from analytics.synthetic import (
    DicomIdentity,
    synthesize_visit_volume,
    write_ct_series,
    write_seg,
)
from analytics.synthetic.dicom_writer import derived_uid
from benchmarks.harness import format_rate, format_seconds

SHAPE = (24, 64, 64)
SPACING_MM = (9.0, 6.0, 6.0)
INGEST_CHUNK = 50  # series folders per ingest call


class InlineExecutor(Executor):
    """Runs each submitted call at once, in this process (the serial baseline)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def write_series(src: Path, i: int) -> None:
    """Series ``i``: one patient, one CT + SEG, stage and anatomy drawn from seed ``i``."""
    sv = synthesize_visit_volume(0.5 * (i % 8), np.random.default_rng(1000 + i),
                                 shape=SHAPE, spacing_mm=SPACING_MM, lesions=0)
    ident = DicomIdentity(
        patient_id=f"DASK{i:06d}", patient_name=f"SCALE^PATIENT{i}",
        birth_date=date(1950 + i % 30, 1 + i % 12, 1 + i % 28), sex="FM"[i % 2],
        study_uid=derived_uid("dask-scale", i, "study"),
        series_uid=derived_uid("dask-scale", i, "series"),
        frame_of_reference_uid=derived_uid("dask-scale", i, "for"),
        study_date=date(2024, 1, 2), study_time="093000", accession_number=f"DS{i:06d}")
    folder = src / f"s{i:06d}"
    partial = src / f"s{i:06d}.partial"  # renamed when complete: an interrupted build resumes
    shutil.rmtree(partial, ignore_errors=True)
    files = write_ct_series(sv, partial / "CT", ident)
    write_seg(sv, files, partial / "SEG" / "SEG0001.dcm", ident,
              seg_series_uid=derived_uid("dask-scale", i, "seg"),
              seg_sop_uid=derived_uid("dask-scale", i, "seg-instance"))
    partial.rename(folder)


def build_template(cache: Path, n: int) -> Path:
    """The template home with ``n`` ingested series (built once, then reused)."""
    grid = "x".join(map(str, SHAPE))
    home = cache / f"home-{n}-{grid}"
    if (home / "built.json").exists():
        return home
    src = cache / f"src-{grid}"  # series i is the same for every n: reused by larger runs
    t0 = time.perf_counter()
    for i in range(n):
        if not (src / f"s{i:06d}").exists():
            write_series(src, i)
    written = time.perf_counter() - t0
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home)
    settings.ensure_home()
    store = open_store(settings)
    folders = [src / f"s{i:06d}" for i in range(n)]
    t1 = time.perf_counter()
    try:
        for k in range(0, len(folders), INGEST_CHUNK):
            report = ingest_sources(folders[k:k + INGEST_CHUNK], settings, store)
            if report.rejected:
                raise SystemExit(f"ingest refused files: {report.rejected[:3]}")
    finally:
        store.dispose()
    ingested = time.perf_counter() - t1
    built = {"series": n, "shape": SHAPE, "write_s": written, "ingest_s": ingested,
             "source_bytes": sum(_bytes(f) for f in folders),
             "stored_bytes": _bytes(home / "dicom")}
    (home / "built.json").write_text(json.dumps(built))
    print(f"built {n} series in {cache}: written in {written:.0f} s, ingested in "
          f"{ingested:.0f} s")
    return home


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def fresh_home(template: Path, dest: Path) -> Settings:
    """A copy of the template home: series files hard-linked (only read), the rest copied."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(template / "dicom", dest / "dicom", copy_function=os.link)
    for p in template.iterdir():
        if p.name != "dicom":
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, dest / p.name)
    return Settings(home=dest)


def timed_run(template: Path, work: Path, label: str, **batch) -> tuple[float, float,
                                                                          pd.DataFrame,
                                                                          BatchReport]:
    """One ``run_batch`` of every series on a fresh home: wall s, this process's CPU s,
    the stored features and the report."""
    settings = fresh_home(template, work / label)
    store = open_store(settings)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        report = run_batch(store, settings, **batch)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        frame = features_frame(store).sort_values("series_uid").reset_index(drop=True)
    finally:
        store.dispose()
    shutil.rmtree(work / label, ignore_errors=True)
    return wall, cpu, frame, report


def check_same(label: str, frame: pd.DataFrame, report: BatchReport,
               baseline: pd.DataFrame, n: int) -> None:
    """Every series done exactly once, and the stored features equal the baseline's."""
    if report.series_failed:
        raise SystemExit(f"{label}: series failed: {report.series_failed[:3]}")
    if len(report.series_done) != n or len(set(report.series_done)) != n:
        raise SystemExit(f"{label}: {len(report.series_done)} series done "
                         f"({len(set(report.series_done))} distinct), expected {n}")
    pd.testing.assert_frame_equal(frame, baseline, check_exact=True, obj=label)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    ap.add_argument("--external-workers", type=int, default=2,
                    help="workers of the separately started cluster (0: skip that run)")
    ap.add_argument("--cache", type=Path,
                    default=Path(tempfile.gettempdir()) / "hepatrack-bench-dask")
    args = ap.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    n = args.series

    template = build_template(args.cache, n)
    built = json.loads((template / "built.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="dask-scale-"))
    try:
        base_wall, base_cpu, baseline, report = timed_run(
            template, work, "serial", executor=InlineExecutor())
        check_same("serial", baseline, report, baseline, n)
        print(f"baseline in-process serial: {n} series in {format_seconds(base_wall)} "
              f"({format_rate(n / base_wall)} series/s); {base_cpu / n:.3f} CPU s/series, "
              f"{built['stored_bytes'] / n / 1024:.0f} KiB stored/series "
              f"({built['source_bytes'] / n / 1024:.0f} KiB as delivered), "
              f"{len(baseline.columns)} columns")
        walls: dict[str, tuple[float, float]] = {}
        for k in counts:
            wall, cpu, frame, report = timed_run(template, work, f"local-{k}", workers=k)
            check_same(f"{k} workers", frame, report, baseline, n)
            walls[f"LocalCluster, {k} worker{'s' if k > 1 else ''}"] = wall, cpu
        if args.external_workers:
            walls[f"existing cluster (--scheduler), {args.external_workers} workers"] = \
                external_run(template, work, args.external_workers, baseline, n)
        one = walls.get("LocalCluster, 1 worker", (0.0, 0.0))[0]
        for label, (wall, cpu) in walls.items():
            vs_one = f", {one / wall:.2f}x vs 1 worker" if one else ""
            # the client writes every series: its CPU per series bounds any cluster's rate
            print(f"case {label}: {format_seconds(wall)} ({format_rate(n / wall)} series/s)"
                  f"{vs_one}, client {cpu / n:.3f} CPU s/series | baseline in-process serial: {format_seconds(base_wall)} "
                  f"({format_rate(n / base_wall)} series/s) | {base_wall / wall:.2f}x")
        print(f"results equal across all runs ({n} series, each done once); "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def external_run(template: Path, work: Path, workers: int, baseline: pd.DataFrame,
                 n: int) -> tuple[float, float]:
    """Start a LocalCluster apart from the batch and pass only its address (the path a
    site's existing cluster takes); returns the batch's wall and client CPU seconds."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        wall, cpu, frame, report = timed_run(template, work, "external",
                                             scheduler=cluster.scheduler_address)
    check_same("existing cluster", frame, report, baseline, n)
    return wall, cpu


if __name__ == "__main__":
    raise SystemExit(main())
