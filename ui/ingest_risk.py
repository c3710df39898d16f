"""The Ingest page's "New risk": after an upload or a PACS link is ingested and its
features extracted, each patient of the new scans is scored with the model the Patient
page uses (the predict use case: permission and audit), from that patient's rows alone;
the stored current risk of those patients is replaced too, so the Cohort page shows the
same value. Where there is no score, the reason is given, never a number.

:func:`new_risk` runs in the ingest job's thread; :func:`show_new_risk` draws its result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st

from analytics.audit import Actor
from analytics.auth import Permission, allowed
from analytics.config import Settings
from analytics.errors import HepaTrackError
from analytics.explain import why_text
from analytics.explain.wording import points_text
from analytics.store.db import Store
from analytics.store.models import find_model
from analytics.store.pseudonyms import view_dates
from analytics.usecases import models as models_uc
from analytics.usecases.context import Context
from analytics.viz.prep import event_text
from ui import loaders
from ui.format import fmt_horizon
from ui.session import key

#: the container the section is drawn in (a browser benchmark waits for its class)
CONTAINER_KEY = "ingest_risk"
#: most reasons shown per patient (the largest contributions, as on the Patient page)
TOP_REASONS = 3
NO_MODEL = ("No trained model yet: no risk to show. Train one on the Models page or with "
            "`hepatrack train`.")
NO_PREDICT = "Your role may not see predictions: no risk is shown here."
HELD = ("Held as an identity conflict: stored, filed under no patient and not scored "
        "until a clinician resolves it (see Identity conflicts below).")
NOT_EXTRACTED = ("Biomarkers of the new scan were not extracted (the option was off): "
                 "no new risk.")


@dataclass(frozen=True)
class PatientRisk:
    """One patient's new risk (fractions), or the reason there is none.

    ``date`` and ``since`` are the dates of the scored visit and of the previous scored
    visit as the viewer may see them (real for the identified view, else stored);
    ``change`` is the risk minus that visit's risk; ``why`` the largest contributions in
    the Patient page's words; ``scan_date`` the new scan's date when it is not the
    scored (latest) visit's, and ``scan_risk`` the risk at the scan's own visit then
    (None when that visit has none).
    """

    pseudonym: str
    risk: float | None = None
    change: float | None = None
    date: str | None = None
    since: str | None = None
    why: tuple[str, ...] = ()
    reason: str | None = None
    scan_date: str | None = None
    scan_risk: float | None = None


@dataclass(frozen=True)
class NewRisk:
    """What the section shows: per patient a risk or a reason; ``reason`` when nobody
    could be scored at all; the model, horizon and endpoint the risks are for."""

    patients: tuple[PatientRisk, ...] = ()
    reason: str | None = None
    model_id: str | None = None
    horizon: float | None = None
    event: str | None = None


def new_series(report) -> list[dict[str, Any]]:
    """New complete CT/MR series of the report (those feature extraction runs on)."""
    return [s for s in report.series if s.get("status") == "complete"
            and not s.get("already_stored") and s.get("modality") != "US"]


def _withheld(report, batch, extract: bool) -> tuple[list[str], dict[str, str]]:
    """Patients with a new series that got features, and the others with the reason."""
    done = set(batch.series_done) if batch is not None else set()
    failed = {f["series_uid"]: f["reason"] for f in batch.series_failed} if batch else {}
    scored: list[str] = []
    why: dict[str, str] = {}
    for s in new_series(report):
        p = s.get("patient")
        if not p:
            continue
        if s["series_uid"] in done:
            scored.append(p)
        elif not extract:
            why.setdefault(p, NOT_EXTRACTED)
        else:
            why.setdefault(p, "Feature extraction failed: "
                           f"{failed.get(s['series_uid'], 'no features')}. No new risk.")
    for h in getattr(report, "held", []):
        if h.get("patient") and not h.get("already_stored"):
            why.setdefault(h["patient"], HELD)
    scored = list(dict.fromkeys(scored))
    return scored, {p: r for p, r in why.items() if p not in scored}


def _scan_dates(report, patients: list[str]) -> dict[str, str]:
    """The latest stored study date of each patient's new series."""
    out: dict[str, str] = {}
    for s in new_series(report):
        p, d = s.get("patient"), s.get("study_date")
        if p in patients and d and d > out.get(p, ""):
            out[p] = d
    return out


def _one(res: dict[str, Any]) -> PatientRisk:
    """The latest visit of one patient's ``predict`` JSON (stored dates)."""
    rows = [r for r in res["trajectory"] if not r.get("requested")]
    last = rows[-1]
    if last["risk"] is None:
        return PatientRisk(res["patient"], date=last.get("date"),
                           reason=f"Not assessable: {last.get('reason') or 'no reason given'}")
    prev = next((r for r in reversed(rows[:-1]) if r["risk"] is not None), None)
    return PatientRisk(res["patient"], risk=float(last["risk"]),
                       change=None if prev is None else float(last["risk"] - prev["risk"]),
                       date=last.get("date"), since=None if prev is None else prev.get("date"),
                       why=tuple(last.get("contributions") or ())[:TOP_REASONS])


def _as_viewed(store: Store, actor: Actor, risks: list[PatientRisk]) -> list[PatientRisk]:
    """``date``, ``since`` and ``scan_date`` as the actor may see them."""
    fields = ("date", "since", "scan_date")
    stored = [getattr(r, f) for r in risks for f in fields]
    shown = view_dates(store, [r.pseudonym for r in risks for _f in fields],
                       [dt.date.fromisoformat(d) if d else None for d in stored],
                       identified=allowed(actor, Permission.VIEW_IDENTIFIED))
    out = []
    for i, r in enumerate(risks):
        got = {f: (d.isoformat() if d else None)
               for f, d in zip(fields, shown[3 * i:3 * i + 3], strict=True)}
        out.append(replace(r, **got))
    return out


def new_risk(store: Store, settings: Settings, actor: Actor, report, batch, *,
             extract: bool = True) -> NewRisk | None:
    """Score the patients of the report's new series that got features (None when the
    report has no new series).

    Permission-checked and audited by the predict use case; a typed error becomes the
    section's reason (the ingest result stays). Runs in the ingest job's thread.
    """
    scored, why = _withheld(report, batch, extract)
    if not scored and not why:
        return None
    withheld = [PatientRisk(p, reason=r) for p, r in why.items()]
    unscored = (NO_PREDICT if not allowed(actor, Permission.PREDICT) else
                NO_MODEL if find_model(store, None) is None else None)
    if not scored or unscored:
        return NewRisk(tuple([PatientRisk(p, reason=unscored) for p in scored] + withheld),
                       reason=unscored)
    scans = _scan_dates(report, scored)
    risks, done = [], None
    for patient in scored:  # one by one: a patient that cannot be scored stops no other
        try:  # its stored current risk too: the Cohort page shows the same value
            (res,) = models_uc.predict(Context(actor, store, settings), models_uc.PredictRequest(
                patients=[patient], record_current=True))
        except HepaTrackError as err:
            risks.append(PatientRisk(patient, reason=f"No risk could be computed: {err}"))
            continue
        done = res
        risks.append(_with_scan(_one(res), res, scans.get(patient)))
    shown = tuple(_as_viewed(store, actor, risks + withheld))
    if done is None:
        return NewRisk(shown)
    return NewRisk(shown, model_id=done["model_id"], horizon=done["horizon"],
                   event=done["event"])


def _with_scan(r: PatientRisk, res: dict[str, Any], scan: str | None) -> PatientRisk:
    """``r`` with the new scan's date and its own visit's risk when the scan (stored
    date ``scan``) is not the scored, latest visit."""
    if scan is None or scan == r.date:
        return r
    at_scan = [x["risk"] for x in res["trajectory"]
               if x.get("date") == scan and not x.get("requested")]
    return replace(r, scan_date=scan, scan_risk=at_scan[-1] if at_scan else None)


# --------------------------------------------------------------------------- drawing
def _patient(p: PatientRisk, label: str, new: NewRisk, page: str) -> None:
    """One patient's row: who and when, the risk and its change, why (or the reason
    there is none, unless the section's reason says it); the open button."""
    horizon = new.horizon
    with st.container(border=True):
        left, mid, right, go = st.columns([3, 2, 3, 2], vertical_alignment="center")
        left.markdown(f"**{label}**  \nvisit {p.date or 'date unknown'}")
        if p.risk is None:
            mid.markdown("**no risk**")
            if p.reason and p.reason != new.reason:
                st.warning(p.reason, icon=":material/block:")
        else:
            mid.metric(f"Risk within {horizon:g} y", f"{100 * p.risk:.1f}%")
            right.metric(f"Change since the visit of {p.since}" if p.since
                         else "Change since the previous visit",
                         points_text(100 * p.change) if p.change is not None else "—",
                         help=None if p.change is not None else
                         "no earlier visit with a risk to compare with")
            if p.why:
                st.caption(why_text(p.why))
        if p.scan_date:
            at_scan = ("" if p.scan_risk is None else
                       f"; at the scan's own visit it was {100 * p.scan_risk:.1f}%")
            st.caption(f"The new scan ({p.scan_date}) is not this patient's latest "
                       f"visit: the risk is that of the latest visit{at_scan}.")
        if go.button("Open patient", key=key(page, f"open-{p.pseudonym}"),
                     icon=":material/person:"):
            st.switch_page("pages/patient.py", query_params={"patient": p.pseudonym})


def show_new_risk(ctx: loaders.AppContext, new: NewRisk | None, page: str) -> None:
    """Draw the "New risk" section of an ingest result (nothing when the upload held no
    new series). Names and real IDs only for a viewer with the identified view
    (:func:`ui.loaders.picker_named`); ``page``: the page's key prefix."""
    if new is None:
        return
    with st.container(key=CONTAINER_KEY):
        st.subheader("New risk")
        if new.reason:
            st.info(new.reason, icon=":material/block:")
        if new.model_id is not None:
            st.caption(f"Model `{new.model_id}` · risk of {event_text(new.event)} within "
                       f"{fmt_horizon(new.horizon)} of the patient's latest visit, from the "
                       "history up to that visit.")
        labels = loaders.picker_named(ctx, tuple(p.pseudonym for p in new.patients)).labels
        for p in new.patients:
            _patient(p, labels.get(p.pseudonym, p.pseudonym), new, page)
