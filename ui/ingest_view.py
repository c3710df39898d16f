"""The Ingest page's work (run in a background job) and its result table."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analytics.audit import Actor
from analytics.config import PacsSettings, Settings
from analytics.features.totalseg import series_needing_mask
from analytics.ingest.nifti_masks import parse_label_table
from analytics.store.db import Store
from analytics.usecases import ingest as ingest_uc
from analytics.usecases.context import Context
from ui.jobs import Job

RESULT_COLUMNS = ("item", "outcome", "patient", "study_date", "modality", "slices", "masks",
                  "reason", "warning")
#: feature extraction after ingest runs in this many worker processes
FEATURE_WORKERS = 1
#: longest a single series' feature extraction may take from the dashboard
FEATURE_TIMEOUT_S = 1800


@dataclass
class FeatureSummary:
    """Outcome of the feature extraction that follows an ingest."""

    series_done: list[str] = field(default_factory=list)
    series_failed: list[dict[str, str]] = field(default_factory=list)


def _features(job: Job, settings: Settings, series: list[str]) -> FeatureSummary | None:
    """Extract features of the new series, one ``hepatrack features --series`` process
    each (``analytics.features.batch.run_batch`` there).

    A separate process, not the dashboard's: dask's worker processes are spawned by
    re-running the parent's main script, which in the dashboard is the Streamlit app,
    and a large CT's arrays stay out of the server's memory.
    """
    if not series:
        return None
    out = FeatureSummary()
    for n, uid in enumerate(series, start=1):
        job.report(f"features: series {n} of {len(series)}", (n - 1) / len(series))
        cmd = [sys.executable, "-m", "analytics", "--home", str(settings.home), "features",
               "--series", uid, "--workers", str(FEATURE_WORKERS), "--json"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=FEATURE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            out.series_failed.append({"series_uid": uid, "reason": "feature extraction took "
                                      f"longer than {FEATURE_TIMEOUT_S} s"})
            continue
        try:
            payload = json.loads(proc.stdout) if proc.returncode == 0 else None
        except ValueError:
            payload = None
        if payload is None:
            last = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            out.series_failed.append({"series_uid": uid, "reason": last[0][:500]})
            continue
        out.series_done += list(payload.get("done", []))
        out.series_failed += list(payload.get("series_failed", []))
        job.log(f"features done: series …{uid[-12:]}")
    job.report(f"features: {len(out.series_done)} of {len(series)} series done", 1.0)
    return out


def _new_complete(report) -> list[str]:
    return [s["series_uid"] for s in report.series
            if s.get("status") == "complete" and not s.get("already_stored")]


def _needs_mask(store: Store, report) -> dict[str, str]:
    """Complete series of the report that get no liver values without a mask (MR)."""
    return series_needing_mask(store, [s["series_uid"] for s in report.series
                                       if s.get("status") == "complete"])


def label_table(text: str | None) -> dict[int, str] | None:
    """The NIfTI label table typed on the page (``5=liver,1=spleen`` or a table name).

    Raises
    ------
    MaskError
        If the text is not such a table (the message says what was expected).
    """
    return parse_label_table(text)


def ingest_uploads_job(job: Job, store: Store, settings: Settings, actor: Actor,
                       files: list[tuple[str, bytes]], *, extract: bool = True,
                       assign_patient: str | None = None,
                       labels: dict[int, str] | None = None) -> dict[str, Any]:
    """Ingest uploaded files (``analytics.usecases.ingest.ingest_upload``: permission
    and audit), then extract features of new series.

    ``assign_patient`` files images whose Patient ID is empty under that ID (the user's
    explicit choice; a file's own Patient ID always wins); ``labels`` names the values of
    NIfTI label maps in the upload (see :func:`label_table`).
    """
    size = sum(len(b) for _n, b in files)
    job.report(f"reading {len(files)} files ({size / 2**20:.1f} MiB)", 0.0)

    def progress(message: str, fraction: float | None) -> None:
        job.report(message, fraction)
        if fraction is None:
            job.log(message)

    report = ingest_uc.ingest_upload(
        Context(actor, store, settings),
        ingest_uc.UploadRequest(files, assign_patient=assign_patient, labels=labels,
                                progress=progress))
    for s in report.series:
        job.log(f"series …{s['series_uid'][-12:]}: {s.get('slices')} slices, "
                f"{'already stored' if s.get('already_stored') else s.get('status')}")
    batch = _features(job, settings, _new_complete(report)) if extract else None
    return {"report": report, "features": batch, "names": [n for n, _b in files],
            "needs_mask": _needs_mask(store, report)}


def link_pacs_job(job: Job, store: Store, settings: Settings, actor: Actor,
                  urls: list[str], pacs_name: str, *, extract: bool = True) -> dict[str, Any]:
    """Retrieve studies from a PACS over DICOMweb and ingest them
    (``analytics.usecases.ingest.link_pacs``: permission and audit)."""
    job.report(f"retrieving {len(urls)} studies from {pacs_name}", None)
    report = ingest_uc.link_pacs(Context(actor, store, settings), ingest_uc.PacsLinkRequest(
        list(urls), pacs_name, progress=job.report))
    batch = _features(job, settings, _new_complete(report)) if extract else None
    return {"report": report, "features": batch, "names": [],
            "needs_mask": _needs_mask(store, report)}


def search_pacs(store: Store, actor: Actor, pacs: PacsSettings, **filters: Any
                ) -> pd.DataFrame:
    """QIDO-RS study search (``analytics.usecases.ingest.search_pacs``) as a table.

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest.
    PacsError
        If the PACS cannot be reached or refuses.
    """
    found = ingest_uc.search_pacs(Context(actor, store),
                                  ingest_uc.PacsSearchRequest(pacs, **filters))
    df = pd.DataFrame(found, columns=["study_date", "patient_name", "patient_id",
                                      "modalities", "description", "accession", "n_series",
                                      "n_instances", "study_uid", "url"])
    df["modalities"] = df["modalities"].map(lambda m: ", ".join(m) if isinstance(m, list)
                                            else m)
    return df


def result_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per series (accepted, duplicate, incomplete) and per refused file.

    ``outcome``: ``accepted`` (stored now), ``duplicate`` (already stored), ``incomplete``
    (stored, not scored: the reason says why), ``rejected``, ``quarantined``,
    ``conflict``; then features ``failed`` rows from the extraction that followed. An MR
    series that has no liver values for want of a mask says so in ``reason``
    (``result["needs_mask"]``).
    """
    report = result["report"]
    needs = result.get("needs_mask") or {}
    rows = []
    for s in report.series:
        outcome = ("duplicate" if s.get("already_stored") else
                   "accepted" if s.get("status") == "complete" else
                   str(s.get("status") or "accepted"))
        reason = "; ".join(r for r in (s.get("reason"), needs.get(s["series_uid"])) if r)
        rows.append({"item": f"series {s['series_uid']}", "outcome": outcome,
                     "patient": s.get("patient"), "study_date": s.get("study_date"),
                     "modality": s.get("modality"), "slices": s.get("slices"),
                     "masks": s.get("masks"), "reason": reason,
                     "warning": "; ".join(s.get("warnings", []))})
    for kind, items in (("rejected", report.rejected), ("quarantined", report.quarantined),
                        ("conflict", report.conflicts)):
        for r in items:
            rows.append({"item": r.file, "outcome": kind, "reason": r.reason})
    batch = result.get("features")
    if batch is not None:
        for f in batch.series_failed:
            rows.append({"item": f"series {f['series_uid']}", "outcome": "features failed",
                         "reason": f["reason"]})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def counts(result: dict[str, Any]) -> dict[str, int]:
    """Headline numbers of an ingest result."""
    report = result["report"]
    batch = result.get("features")
    return {"series": report.series_ingested, "instances": report.instances,
            "duplicates": report.duplicates,
            "refused": len(report.rejected) + len(report.quarantined) + len(report.conflicts),
            "features": len(batch.series_done) if batch is not None else 0,
            "warnings": sum(1 for s in report.series if s.get("warnings"))}
