"""The Ingest page's work (run in a background job), its result table, the studies held
as identity conflicts and the stored series that need mending."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analytics.audit import Actor
from analytics.auth import Permission, allowed
from analytics.config import PacsSettings, Settings
from analytics.errors import FeatureError
from analytics.features import warm
from analytics.features.batch import SeriesTimeout, run_batch
from analytics.features.mr_companions import measurement_plans
from analytics.features.totalseg import series_needing_mask
from analytics.ingest.nifti_masks import parse_label_table
from analytics.ingest.ultrasound_series import measurement_words
from analytics.ingest.warm import warm_parser
from analytics.names import clinical_name
from analytics.store.db import Store
from analytics.store.pseudonyms import view_dates
from analytics.usecases import identity as identity_uc
from analytics.usecases import ingest as ingest_uc
from analytics.usecases import series_repair as repair_uc
from analytics.usecases.context import Context
from ui import ingest_risk
from ui.jobs import Job

RESULT_COLUMNS = ("item", "outcome", "patient", "study_date", "modality", "slices", "masks",
                  "measurements", "reason", "warning")
#: what a count cell says when there is nothing to count for the row (never "None")
NO_VALUE = "—"
#: longest a single series' feature extraction may take from the dashboard
FEATURE_TIMEOUT_S = 1800


@dataclass
class FeatureSummary:
    """Outcome of the feature extraction that follows an ingest."""

    series_done: list[str] = field(default_factory=list)
    series_failed: list[dict[str, str]] = field(default_factory=list)


def warm_features(settings: Settings | None = None) -> None:
    """Start the dashboard's feature worker and parse workers if they are not running (the
    Ingest page calls this when it opens, so the first upload finds them warm)."""
    warm.warm_executor()
    warm_parser(settings.limits if settings is not None else None)


def _features(job: Job, store: Store, settings: Settings, series: list[str]
              ) -> FeatureSummary | None:
    """Extract features of the new series on the dashboard's warm feature worker
    (:mod:`analytics.features.warm`), one series after another; this process writes them.

    The worker is a process of its own: a large CT's arrays stay out of the server's
    memory. A series over :data:`FEATURE_TIMEOUT_S` is recorded as failed and its worker
    is replaced.
    """
    if not series:
        return None
    out = FeatureSummary()
    for n, uid in enumerate(series, start=1):
        job.report(f"features: series {n} of {len(series)}", (n - 1) / len(series))
        executor = warm.warm_executor()
        try:
            batch = run_batch(store, settings, [uid], executor=executor,
                              timeout_s=FEATURE_TIMEOUT_S)
        except SeriesTimeout:
            warm.discard(executor)  # still busy with the series: start a fresh one
            out.series_failed.append({"series_uid": uid, "reason": "feature extraction took "
                                      f"longer than {FEATURE_TIMEOUT_S} s"})
            continue
        except FeatureError as e:
            out.series_failed.append({"series_uid": uid, "reason": str(e)[:500]})
            continue
        if any(f["reason"].startswith("worker failed") for f in batch.series_failed):
            warm.discard(executor)
        out.series_done += batch.series_done
        out.series_failed += batch.series_failed
        job.log(f"features done: series …{uid[-12:]}")
    job.report(f"features: {len(out.series_done)} of {len(series)} series done", 1.0)
    return out


def _new_complete(report) -> list[str]:
    """New complete CT/MR series: ultrasound is measured with ROIs on its own page."""
    return [s["series_uid"] for s in ingest_risk.new_series(report)]


def _needs_mask(store: Store, report) -> dict[str, str]:
    """Complete series of the report that get no liver values without a mask (MR)."""
    return series_needing_mask(store, [s["series_uid"] for s in report.series
                                       if s.get("status") == "complete"])


def _measurements(store: Store, settings: Settings, report) -> dict[str, str]:
    """Per complete series: which liver measurements it will get, which not and why."""
    return measurement_plans(store, settings, [s["series_uid"] for s in report.series
                                               if s.get("status") == "complete"])


def label_table(text: str | None) -> dict[int, str] | None:
    """The NIfTI label table typed on the page (``5=liver,1=spleen`` or a table name).

    Raises
    ------
    MaskError
        If the text is not such a table (the message says what was expected).
    """
    return parse_label_table(text)


def _result(job: Job, store: Store, settings: Settings, actor: Actor, report,
            names: list[str], *, extract: bool) -> dict[str, Any]:
    """An ingest job's result: features of the new series extracted (``extract``), then
    the new risk of their patients (:func:`ui.ingest_risk.new_risk`), both in the job."""
    batch = _features(job, store, settings, _new_complete(report)) if extract else None
    if batch is not None and batch.series_done:
        job.report("scoring the patients of the new series", None)
    risk = ingest_risk.new_risk(store, settings, actor, report, batch, extract=extract)
    return {"report": report, "features": batch, "names": names,
            "needs_mask": _needs_mask(store, report),
            "measurements": _measurements(store, settings, report),
            "study_dates": ingest_uc.report_study_dates(Context(actor, store), report),
            "risk": risk}


def ingest_uploads_job(job: Job, store: Store, settings: Settings, actor: Actor,
                       files: list[tuple[str, bytes]], *, extract: bool = True,
                       assign_patient: str | None = None,
                       labels: dict[int, str] | None = None) -> dict[str, Any]:
    """Ingest uploaded files (``analytics.usecases.ingest.ingest_upload``: permission
    and audit), then extract features of new series and score their patients
    (``result["risk"]``, :func:`ui.ingest_risk.new_risk`).

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
    return _result(job, store, settings, actor, report, [n for n, _b in files],
                   extract=extract)


def link_pacs_job(job: Job, store: Store, settings: Settings, actor: Actor,
                  urls: list[str], pacs_name: str, *, extract: bool = True) -> dict[str, Any]:
    """Retrieve studies from a PACS over DICOMweb and ingest them
    (``analytics.usecases.ingest.link_pacs``: permission and audit); then as
    :func:`ingest_uploads_job`."""
    job.report(f"retrieving {len(urls)} studies from {pacs_name}", None)
    report = ingest_uc.link_pacs(Context(actor, store, settings), ingest_uc.PacsLinkRequest(
        list(urls), pacs_name, progress=job.report))
    return _result(job, store, settings, actor, report, [], extract=extract)


def search_pacs(store: Store, actor: Actor, pacs: PacsSettings, *,
                settings: Settings | None = None, **filters: Any) -> pd.DataFrame:
    """QIDO-RS study search (``analytics.usecases.ingest.search_pacs``) as a table (no
    name or ID, dates shifted as ingest stores them, for a role without the identified
    view).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest.
    PacsError
        If the PACS cannot be reached or refuses.
    """
    found = ingest_uc.search_pacs(Context(actor, store, settings),
                                  ingest_uc.PacsSearchRequest(pacs, **filters))
    df = pd.DataFrame(found, columns=["study_date", "patient_name", "patient_id",
                                      "modalities", "description", "accession", "n_series",
                                      "n_instances", "study_uid", "url"])
    df["modalities"] = df["modalities"].map(lambda m: ", ".join(m) if isinstance(m, list)
                                            else m)
    return df


def result_table(result: dict[str, Any],
                 resolved: dict[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """One row per series (accepted, duplicate, incomplete) and per refused file.

    ``outcome``: ``accepted`` (stored now), ``duplicate`` (already stored), ``incomplete``
    (stored, not scored: the reason says why), ``held`` (stored, filed under no patient:
    an identity conflict; the reason names the stored patient's pseudonym and the fields
    that differ, never their values), ``rejected``, ``quarantined``, ``conflict``; then features ``failed`` rows from the extraction that followed. An MR
    series that has no liver values for want of a mask says so in ``reason``
    (``result["needs_mask"]``). ``measurements`` says per stored series which liver
    measurements feature extraction will make and which it cannot, and why
    (``result["measurements"]``). ``study_date`` is the date as the viewer may see it
    (``result["study_dates"]``: real for the identified view, else the stored one).
    A held series resolved since (``resolved``: series UID -> outcome and patient, from
    :class:`HoldResolved`) shows that outcome and the patient it is filed under.
    """
    report = result["report"]
    needs = result.get("needs_mask") or {}
    plans = result.get("measurements") or {}
    dates = result.get("study_dates") or {}
    rows = []
    for s in report.series:
        outcome = ("duplicate" if s.get("already_stored") else
                   "accepted" if s.get("status") == "complete" else
                   str(s.get("status") or "accepted"))
        reason = "; ".join(r for r in (s.get("reason"), needs.get(s["series_uid"])) if r)
        rows.append({"item": f"series {s['series_uid']}", "outcome": outcome,
                     "patient": s.get("patient"),
                     "study_date": dates.get(s["series_uid"], s.get("study_date")),
                     "modality": s.get("modality"), "slices": s.get("slices"),
                     "masks": NO_VALUE if s.get("masks") is None else s.get("masks"),
                     "measurements": measurement_words(s) or plans.get(s["series_uid"], ""),
                     "reason": reason,
                     "warning": "; ".join(s.get("warnings", []))})
    resolved = resolved or {}
    for h in getattr(report, "held", []):
        outcome, patient = resolved.get(h["series_uid"], ("held", h.get("patient")))
        rows.append({"item": f"series {h['series_uid']}", "outcome": outcome,
                     "patient": patient,
                     "study_date": dates.get(h["series_uid"], h.get("study_date")),
                     "modality": h.get("modality"), "slices": h.get("slices"),
                     "masks": NO_VALUE, "reason": h.get("reason")})
    for kind, items in (("rejected", report.rejected), ("quarantined", report.quarantined),
                        ("conflict", report.conflicts)):
        for r in items:
            rows.append({"item": r.file, "outcome": kind, "masks": NO_VALUE,
                         "reason": r.reason})
    batch = result.get("features")
    if batch is not None:
        for f in batch.series_failed:
            rows.append({"item": f"series {f['series_uid']}", "outcome": "features failed",
                         "masks": NO_VALUE, "reason": f["reason"]})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def counts(result: dict[str, Any],
           resolved: dict[str, tuple[str, str]] | None = None) -> dict[str, int]:
    """Headline numbers of an ingest result. ``instances`` counts every instance stored
    now, ``held_instances`` those of them held for identity review (filed under no
    patient) and not resolved since (``resolved``, as for :func:`result_table`)."""
    report = result["report"]
    batch = result.get("features")
    held = [h for h in getattr(report, "held", []) if h["series_uid"] not in (resolved or {})]
    return {"series": report.series_ingested, "instances": report.instances,
            "duplicates": report.duplicates,
            "refused": len(report.rejected) + len(report.quarantined) + len(report.conflicts),
            "features": len(batch.series_done) if batch is not None else 0,
            "warnings": sum(1 for s in report.series if s.get("warnings")),
            "held": len(held),
            "held_instances": sum(int(h.get("slices") or 0) for h in held
                                  if not h.get("already_stored"))}


HELD_COLUMNS = ("hold", "stored patient", "study date", "series", "differs")
#: identity field (``HeldStudy.fields``) -> the words of its stored/received columns
HELD_FIELDS = {"name": "name", "birth_date": "birth date", "sex": "sex", "issuer": "issuer"}
IDENTIFIED_COLUMNS = tuple(f"{side} {w}" for w in HELD_FIELDS.values()
                           for side in ("stored", "received"))


def _identified_columns(fields: set[str]) -> list[str]:
    """A clinician's column order: what differs, then the stored and received values of
    the differing fields side by side, then the rest (the table is read left to right)."""
    first = [f for f in HELD_FIELDS if f in fields]
    rest = [f for f in HELD_FIELDS if f not in fields]
    pairs = [f"{side} {HELD_FIELDS[f]}" for f in first for side in ("stored", "received")]
    tail = [f"{side} {HELD_FIELDS[f]}" for f in rest for side in ("stored", "received")]
    return ["hold", "differs", *pairs, "stored patient", "study date", "series", *tail]


def held_studies(store: Store, actor: Actor) -> pd.DataFrame:
    """The studies held as identity conflicts (``usecases.identity.list_held_studies``).

    Names (in clinical form), birth dates, sexes and issuers (stored and received) only
    for a role with the identified view, with the differing fields first; otherwise the
    pseudonym and the names of the fields that differ. ``study date`` is the date as the
    viewer may see it, as in the ingest result: real for the identified view, else the
    stored (shifted) one.

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest.
    """
    held = identity_uc.list_held_studies(Context(actor, store))
    dates = view_dates(store, [h.patient for h in held], [h.study_date for h in held],
                       identified=allowed(actor, Permission.VIEW_IDENTIFIED))
    rows, fields = [], set()
    for h, date in zip(held, dates, strict=True):
        row = {"hold": h.hold_id, "stored patient": h.patient,
               "study date": date.isoformat() if date else None,
               "series": h.n_series, "differs": h.as_dict()["differs"]}
        if h.stored is not None and h.received is not None:
            fields |= set(h.fields)
            for side, facts in (("stored", h.stored), ("received", h.received)):
                row[f"{side} name"] = clinical_name(facts["patient_name"])
                row[f"{side} birth date"] = facts["birth_date"]
                row[f"{side} sex"] = facts["sex"]
                row[f"{side} issuer"] = facts["issuer"]
        rows.append(row)
    identified = bool(rows) and "stored name" in rows[0]
    columns = _identified_columns(fields) if identified else list(HELD_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


def _who(name: Any, born: Any) -> str:
    """``"David Q GARCIA, born 1970-01-01"`` from what a row has of the two."""
    parts = [str(name) if isinstance(name, str) and name else "name not recorded"]
    if isinstance(born, str) and born:
        parts.append(f"born {born}")
    return ", ".join(parts)


def hold_choices(held: pd.DataFrame) -> dict[int, str]:
    """What the hold picker says of each held study of :func:`held_studies` (identified
    view): the received identity, the study date and the stored patient it collides with,
    so the clinician need not match hold numbers against the table."""
    out = {}
    for row in held.to_dict("records"):
        study = f"study {row['study date']}" if row.get("study date") else "study date unknown"
        out[int(row["hold"])] = (
            f"hold {row['hold']}: {_who(row.get('received name'), row.get('received birth date'))}"
            f", {study} · stored as {row['stored patient']} "
            f"({_who(row.get('stored name'), row.get('stored birth date'))})")
    return out


@dataclass(frozen=True)
class HoldResolved:
    """What resolving a hold did: ``message`` to show, and per series of the study the
    result-table ``outcome`` and ``patient`` it now has (:func:`result_table`'s
    ``resolved``)."""

    message: str
    series: dict[str, tuple[str, str]]


def resolve_held(store: Store, settings: Settings, actor: Actor, hold_id: int,
                 decision: str) -> HoldResolved:
    """Resolve one held study (``usecases.identity.resolve_held_study``); what was done.

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest or see identified data.
    StoreError
        Unknown or already resolved hold.
    """
    out = identity_uc.resolve_held_study(Context(actor, store, settings),
                                         identity_uc.ResolveRequest(int(hold_id), decision))
    if out.decision == "same":
        message, outcome = f"Filed under the stored patient {out.patient}.", "filed: same patient"
    else:
        message = (f"Filed under {'a new patient' if out.new_patient else 'patient'} "
                   f"{out.patient} (another person with the same Patient ID).")
        outcome = "filed: other patient"
    return HoldResolved(message, {uid: (outcome, out.patient) for uid in out.series_uids})


UNFINISHED_COLUMNS = ("series_uid", "patient", "status", "reason", "instances")


def unfinished_series(store: Store, actor: Actor) -> pd.DataFrame:
    """Stored series that are invalid or incomplete (``patient`` empty while held).

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest.
    """
    rows = [(s.series_uid, s.patient, s.status, s.status_reason, s.n_instances)
            for s in repair_uc.list_unfinished_series(Context(actor, store))]
    return pd.DataFrame(rows, columns=list(UNFINISHED_COLUMNS))


def repair_series(store: Store, settings: Settings, actor: Actor, action: str,
                  series_uid: str, files: list[tuple[str, bytes]] | None = None) -> str:
    """Complete, replace or remove a stored series (``usecases.series_repair``); a
    sentence saying what was done.

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest.
    StoreError, IngestError
        Unknown series, nothing to mend, or a replacement that stored nothing.
    """
    ctx = Context(actor, store, settings)
    if action == "remove":
        r = repair_uc.remove_series(ctx, series_uid).removed
        return (f"Removed the series: {r.instances} instances, {r.masks} masks, "
                f"{r.feature_values} feature values.")
    req = repair_uc.SeriesFilesRequest(series_uid, list(files or []))
    fn = repair_uc.complete_series if action == "complete" else repair_uc.replace_series
    out = fn(ctx, req)
    rep = out.report
    said = (f"{rep.instances} instances stored, {rep.replaced} broken instances replaced, "
            f"{len(rep.conflicts)} conflicts, {len(rep.rejected)} refused")
    state = f"the series is now {out.status}" if out.status else "the old series was removed"
    return f"{said}; {state}" + (f" ({out.note})." if out.note else ".")
