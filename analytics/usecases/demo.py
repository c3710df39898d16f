"""``hepatrack demo``: build the sample cohort and run every stage, idempotently.

Stages, each skipped when its work is already in the store:
synthesize (only into an empty home) -> ingest DICOM + SEG -> import labs and outcomes
-> extract imaging features (Dask) -> train the default model -> demo accounts.

The demo accounts' passwords are generated once and kept in
``HEPATRACK_HOME/demo_credentials.txt`` (mode 0600), so every run can print them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analytics.cohort import build_cohort
from analytics.config import Settings
from analytics.features.batch import run_batch
from analytics.models.settings import ModelSettings
from analytics.models.training import load_truth, truth_for_cohort
from analytics.store import open_store
from analytics.store.repo import cohort_summary
from analytics.synthetic import CohortConfig, generate_cohort, load_cohort_config
from analytics.usecases import models as model_use_cases
from analytics.usecases.admin import NewUser, add_user, users
from analytics.usecases.cohort import ImportRequest, import_cohort
from analytics.usecases.context import Context
from analytics.usecases.ingest import PathsRequest, ingest_paths

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
                       imaging_patients=12, max_scans_per_patient=4)
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


def _train(ctx: Context, sample: Path) -> dict[str, Any]:
    cohort = build_cohort(ctx.store)
    truth_path = sample / "truth.json"
    truth = (truth_for_cohort(load_truth(truth_path), ctx.store, cohort)
             if truth_path.exists() else None)
    res = model_use_cases.train(ctx, model_use_cases.TrainRequest(
        cohort, ModelSettings(kind="cox"), truth=truth, created_by="demo"))
    return {"model_id": res["model_id"], "c_index": res["cv"]["c_index"],
            "oracle_c_index": res.get("oracle_c_index")}


def _accounts(ctx: Context, settings: Settings) -> dict[str, dict[str, str]]:
    creds = _credentials(settings)
    existing = {u["username"] for u in users(ctx)}
    for username, role in DEMO_USERS:
        if username not in existing:
            add_user(ctx, NewUser(username, role, creds[username], f"Demo {role}"))
    return {u: {"role": r, "password": creds[u]} for u, r in DEMO_USERS}


def run_demo(settings: Settings, *, patients: int | None = None, seed: int | None = None,
             workers: int = 2, say: Say = print) -> dict[str, Any]:
    """Run every stage that still has work to do (as the system account); return what
    each stage did."""
    settings.ensure_home()
    store = open_store(settings)
    ctx = Context.cli(store, settings)
    out: dict[str, Any] = {"home": str(settings.home)}
    t0 = time.perf_counter()
    sample = settings.home / SAMPLE_DIR
    try:
        counts = cohort_summary(store)
        if counts["patients"] == 0 and not (sample / "truth.json").exists():
            say(f"synthesizing the sample cohort into {sample} ...")
            manifest = generate_cohort(sample, demo_config(patients, seed))
            out["synth"] = {"patients": manifest.n_patients, "series": len(manifest.series_dirs),
                            "seconds": round(manifest.seconds, 1)}
        _load(ctx, sample, counts, out, say)
        say("extracting imaging biomarkers ...")
        batch = run_batch(store, settings, workers=workers).as_payload()
        out["features"] = {k: batch[k] for k in ("series_done", "series_skipped", "seconds")}
        out["features"]["series_failed"] = len(batch["series_failed"])
        if counts["models"] == 0:
            say("training the default model (penalised Cox, landmark supermodel) ...")
            out["train"] = _train(ctx, sample)
        out["accounts"] = _accounts(ctx, settings)
    finally:
        store.dispose()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
