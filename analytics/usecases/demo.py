"""``hepatrack demo``: build the sample cohort and run every stage, idempotently.

Stages, each skipped when its work is already in the store:
synthesize (only into an empty home) -> ingest DICOM + SEG -> import labs and outcomes,
then the imported imaging measurements (``imaging.csv``) -> extract imaging features
(Dask) -> render and store each patient's key image (``analytics.usecases.keyview``) ->
train the default model -> demo accounts.

Imaging in the demo comes two ways (``sample_data/demo.toml``): the first patients' CT +
SEG series go through the whole pipeline (ingest, segmentation masks, extraction), so the
pages have images; the patients under imaging follow-up get their biomarkers as imported
measurements, the values the extractor would report, as a site imports its imaging
reports. Both fill the same biomarker columns of the cohort table.

The demo accounts' passwords are generated once and kept in
``HEPATRACK_HOME/demo_credentials.txt`` (mode 0600), so every run can print them.
"""

from __future__ import annotations

import csv
import os
import resource
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analytics.cohort import build_cohort
from analytics.config import Settings
from analytics.features.batch import run_batch
from analytics.models.crossval import ORACLE
from analytics.models.settings import ModelSettings
from analytics.models.training import load_truth, truth_for_cohort
from analytics.store import open_store
from analytics.store.repo import cohort_summary
from analytics.synthetic import CohortConfig, generate_cohort, load_cohort_config
from analytics.synthetic.cohort import IMAGING_CSV
from analytics.usecases import models as model_use_cases
from analytics.usecases.admin import NewUser, add_user, users
from analytics.usecases.cohort import ImportRequest, import_cohort
from analytics.usecases.context import Context
from analytics.usecases.ingest import PathsRequest, ingest_paths
from analytics.usecases.keyview import render_missing

SAMPLE_DIR = "sample_cohort"
DEMO_USERS = (("demo.clinician", "clinician"), ("demo.researcher", "researcher"),
              ("demo.admin", "admin"))
_REPO_DEMO_TOML = Path(__file__).resolve().parents[2] / "sample_data" / "demo.toml"

Say = Callable[[str], None]


def demo_config(patients: int | None = None, seed: int | None = None):
    """The demo cohort config: ``sample_data/demo.toml`` when present, else the defaults."""
    overrides = {"n_patients": patients, "seed": seed}
    if _REPO_DEMO_TOML.is_file():
        return load_cohort_config(_REPO_DEMO_TOML, **overrides)
    cfg = CohortConfig(n_patients=patients or 2000, seed=7 if seed is None else seed,
                       imaging_patients=12, max_scans_per_patient=4, measured_fib4_min=1.3)
    return cfg.validate()


def _credentials(settings: Settings) -> dict[str, str]:
    path = settings.home / "demo_credentials.txt"
    if path.exists():
        pairs = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
        return {u.strip(): p.strip() for u, p in pairs}
    creds = {u: secrets.token_urlsafe(12) for u, _ in DEMO_USERS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{u}: {p}\n" for u, p in creds.items())
    return creds


def _load(ctx: Context, sample: Path, counts: dict[str, Any], out: dict[str, Any],
          say: Say) -> None:
    """Ingest the sample's DICOM (into an empty store) and import its labs and outcomes."""
    if (sample / "dicom").is_dir() and counts["series"] == 0:
        say("ingesting DICOM series and segmentations ...")
        rep = ingest_paths(ctx, PathsRequest([sample / "dicom"]))
        out["ingest"] = {"series_ingested": rep.series_ingested,
                         "rejected": len(rep.rejected)}
    if (sample / "labs.csv").exists():
        say("importing labs and outcomes ...")
        imp = import_cohort(ctx, ImportRequest(sample / "labs.csv", sample / "outcomes.csv"))
        out["import"] = {k: v for k, v in imp.to_json().items()
                         if k in ("patients", "visits", "events")}
    if (sample / IMAGING_CSV).exists():
        say("importing imaging measurements ...")
        imp = import_cohort(ctx, ImportRequest(sample / IMAGING_CSV, sample / "outcomes.csv"))
        rep = imp.to_json()
        out["import_imaging"] = {"patients": len(_csv_patients(sample / IMAGING_CSV)),
                                 "visits": rep["visits"], "rejected": len(rep["rejected"])}


def _csv_patients(path: Path) -> set[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["patient_id"] for row in csv.DictReader(fh)}


def imaging_figures(comparison: dict[str, Any]) -> dict[str, Any]:
    """C-index and td-AUC with and without imaging, the oracle's, and the share of the
    labs-only model's gap to the oracle that imaging closes, per subset of the stored
    imaging comparison (``all``, ``with_scans``); empty when nothing was compared.

    ``gap_closed`` = (with - without) / (oracle - without), on the C-index; None without
    an oracle or when the model without imaging is already at it.
    """
    if comparison.get("status") != "compared":
        return {}
    out: dict[str, Any] = {}
    for key in ("all", "with_scans"):
        part = comparison.get(key) or {}
        if "with_imaging" not in part:
            continue
        w, wo = part["with_imaging"], part["without_imaging"]
        oracle = (part.get("references") or {}).get(ORACLE) or {}
        c_or = oracle.get("c_index")
        gap = (c_or - wo["c_index"]) if c_or is not None else None
        out[key] = {
            "patients": part["n_patients"], "events": part["n_events"],
            "with_imaging": w["c_index"], "without_imaging": wo["c_index"],
            "difference_ci": part["difference"]["c_index_ci"],
            "td_auc_with": w["td_auc"], "td_auc_without": wo["td_auc"],
            "oracle": c_or, "oracle_td_auc": oracle.get("td_auc"),
            "gap_closed": ((w["c_index"] - wo["c_index"]) / gap
                           if gap is not None and gap > 0 else None)}
    return out


def _train(ctx: Context, sample: Path) -> dict[str, Any]:
    cohort = build_cohort(ctx.store)
    truth_path = sample / "truth.json"
    truth = (truth_for_cohort(load_truth(truth_path), ctx.store, cohort)
             if truth_path.exists() else None)
    res = model_use_cases.train(ctx, model_use_cases.TrainRequest(
        cohort, ModelSettings(kind="cox"), truth=truth, created_by="demo"))
    return {"model_id": res["model_id"], "c_index": res["cv"]["c_index"],
            "oracle_c_index": res.get("oracle_c_index"),
            "imaging_features": (res.get("imaging_comparison") or {}).get(
                "imaging_features", []),
            "imaging": imaging_figures(res.get("imaging_comparison") or {})}


def _accounts(ctx: Context, settings: Settings) -> dict[str, dict[str, str]]:
    creds = _credentials(settings)
    existing = {u["username"] for u in users(ctx)}
    for username, role in DEMO_USERS:
        if username not in existing:
            add_user(ctx, NewUser(username, role, creds[username], f"Demo {role}"))
    return {u: {"role": r, "password": creds[u]} for u, r in DEMO_USERS}


def _cpu_seconds() -> float:
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_demo(settings: Settings, *, patients: int | None = None, seed: int | None = None,
             workers: int = 2, say: Say = print) -> dict[str, Any]:
    """Run every stage that still has work to do (as the system account); return what
    each stage did."""
    settings.ensure_home()
    store = open_store(settings)
    ctx = Context.cli(store, settings)
    out: dict[str, Any] = {"home": str(settings.home)}
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}
    cpu_since = [_cpu_seconds()]

    def lap(name: str, since: float) -> float:
        """Wall seconds of a stage, and its CPU seconds (this process and the worker
        processes it waited for), which a busy machine does not inflate."""
        now, used = time.perf_counter(), _cpu_seconds()
        stages[name] = round(now - since, 1)
        cpu[name] = round(used - cpu_since[0], 1)
        cpu_since[0] = used
        return now

    sample = settings.home / SAMPLE_DIR
    try:
        counts = cohort_summary(store)
        t = t0
        if counts["patients"] == 0 and not (sample / "truth.json").exists():
            say(f"synthesizing the sample cohort into {sample} ...")
            manifest = generate_cohort(sample, demo_config(patients, seed), workers=workers)
            out["synth"] = {"patients": manifest.n_patients, "series": len(manifest.series_dirs),
                            "dicom_patients": manifest.config.n_imaging,
                            "measured_patients": manifest.n_measured_patients,
                            "events": manifest.events, "seconds": round(manifest.seconds, 1)}
            t = lap("synthesize", t)
        _load(ctx, sample, counts, out, say)
        t = lap("ingest_and_import", t)
        say("extracting imaging biomarkers ...")
        batch = run_batch(store, settings, workers=workers).as_payload()
        out["features"] = {k: batch[k] for k in ("series_done", "series_skipped", "seconds")}
        out["features"]["series_failed"] = len(batch["series_failed"])
        t = lap("features", t)
        # the Patient page then serves each scan's key image as stored: a first start of
        # the dashboard does not render them while a clinician waits
        say("rendering the key images ...")
        out["key_images"] = render_missing(store, settings)
        t = lap("key_images", t)
        if counts["models"] == 0:
            say("training the default model (penalised Cox, landmark supermodel) ...")
            out["train"] = _train(ctx, sample)
            t = lap("train", t)
        out["accounts"] = _accounts(ctx, settings)
    finally:
        store.dispose()
    out["stages"] = stages
    out["stages_cpu"] = cpu
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
