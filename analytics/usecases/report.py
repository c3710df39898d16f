"""The MDT PDF pack: one A4 landscape page per patient.

Each page holds the patient's name in clinical form (identified packs), age, aetiology,
MELD, Child-Pugh and ALBI (:mod:`analytics.usecases.mdt_facts`), the meeting's question,
discussion and decision (identified packs only: free text), the risk trajectory at the
chosen horizon (with its interval band, scan markers and the outcome), the SHAP waterfall
of the latest assessable visit, the key image of the latest scan with its
liver/spleen/vessel overlay, every biomarker and lab with published normal ranges (CT
attenuation compared within its contrast phase), the model version with its
cross-validated discrimination and calibration, and the intended-use statement. Figures
are drawn with matplotlib from the same data the dashboard's plotly figures use
(:mod:`analytics.viz.prep`), the page with reportlab (:mod:`analytics.viz.pack_pdf`):
nothing needs a browser.

Access: an identified pack (real names and dates) needs ``EXPORT_IDENTIFIED``; a
pseudonymised one ``EXPORT_PSEUDONYMISED``. Every pack is audited before anything is
drawn, in one ``export`` record that names its patients (``detail["pseudonyms"]``); if the
audit write fails, no PDF is made. The file is written to a temporary name and renamed, so a failure
never leaves half a PDF.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.auth import Permission, allowed
from analytics.cohort import build_cohort
from analytics.errors import HepaTrackError, ModelError, StoreError
from analytics.explain import imaging_text, patient_trajectory, risk_sentence, why_text
from analytics.models.registry import load_model
from analytics.store import mdt_records, repo
from analytics.store.mdt_records import MdtRecordRow
from analytics.store.pseudonyms import known_pseudonyms
from analytics.usecases.context import Context, audited, authorize
from analytics.usecases.keyimage import (
    LIVER_WINDOW,
    OVERLAYS,
    load_key_image,
    png_bytes,
    render_slice,
)
from analytics.usecases.mdt_facts import clinical_facts, no_series_text
from analytics.usecases.model_admin import (
    calibration_curves,
    calibration_summary,
    model_metrics,
    validation_table,
)
from analytics.viz.mpl import calibration_png, trajectory_png, waterfall_png
from analytics.viz.pack_pdf import (
    CALIBRATION_BOX,
    TRAJECTORY_BOX,
    WATERFALL_BOX,
    PatientPage,
    inches,
    render_pdf,
)
from analytics.viz.prep import NO_SAME_PHASE, biomarker_summary, event_text
from analytics.vocabulary import PHASE_DEPENDENT, outcome_words

__all__ = ["INTENDED_USE", "RECORD_WITHHELD", "PatientPage", "ReportRequest", "ReportResult",
           "build_mdt_report", "collect_patient_page", "download_pack", "key_series_uid",
           "record_lines"]

INTENDED_USE = (
    "Intended use: decision support for hepatologists and MDT meetings. HepaTrack estimates "
    "the risk of the named endpoint within the named horizon from the visits so far; it "
    "does not diagnose and does not replace clinical judgement. Scores are shown only for "
    "visits inside the model's training domain; performance outside the training "
    "population is unknown until externally validated.")
Progress = Callable[[str, float], None]


@dataclass
class ReportResult:
    """The made pack: its bytes (and path when written), page count and what was used."""

    pdf: bytes
    pages: int
    patients: list[str]
    model_id: str | None
    identified: bool
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- data
def key_series_uid(series: pd.DataFrame) -> str | None:
    """The series for the key image: the latest complete CT series, else the latest
    complete MR series, else None."""
    if series is None or series.empty:
        return None
    ok = series[series["status"] == "complete"]
    for modality in ("CT", "MR"):
        part = ok[ok["modality"].astype(str).str.upper() == modality]
        if not part.empty:
            part = part.sort_values(["time_years", "n_slices"], na_position="first",
                                    kind="stable")
            return str(part["series_uid"].iloc[-1])
    return None


def _model_text(model, metrics: dict[str, Any], horizon: float) -> str:
    vt = validation_table(metrics, model.horizons)
    m = vt.iloc[0] if len(vt) else None
    cal = calibration_summary(metrics)
    cal_h = cal[np.isclose(cal["horizon"].astype(float), horizon)] if len(cal) else cal
    # the endpoint in words ("death, decompensation or HCC"), not its stored codes
    parts = [f"Model {model.model_id} ({model.kind}), endpoint {event_text(model.events.label)}, "
             f"horizon {horizon:g} y."]
    if m is not None and np.isfinite(m["c_index"]):
        ci = (f" (95% CI {m['c_index_low']:.2f}-{m['c_index_high']:.2f})"
              if np.isfinite(m["c_index_low"]) else "")
        parts.append(f"Cross-validated C-index {m['c_index']:.2f}{ci}.")
        k = f"td_auc_{horizon:g}"
        if k in vt.columns and np.isfinite(m[k]):
            parts.append(f"td-AUC at {horizon:g} y {m[k]:.2f}.")
    if len(cal_h):
        c = cal_h.iloc[0]
        parts.append(f"Calibration at {horizon:g} y: slope {c['slope']:.2f} (ideal 1), "
                     f"ICI {100 * c['ici']:.1f} percentage points.")
    return " ".join(parts)


def _title(detail, pseudonym: str, identified: bool, name: str | None) -> tuple[str, str]:
    """The page's title and subtitle: who (identified or pseudonymised) and the outcome;
    ``name`` is the clinical form of the patient's name (``"Charles LOPEZ"``)."""
    if identified:
        title = f"{name or 'Name not recorded'} · {pseudonym}"
        born = detail.birth_date.isoformat() if detail.birth_date else "—"
        subtitle = f"Patient ID {detail.patient_id or '—'} · born {born} · sex {detail.sex or '—'}"
    else:
        title = pseudonym
        subtitle = (f"Pseudonymised · sex {detail.sex or '—'} · birth year "
                    f"{detail.birth_year or '—'} · dates shifted per patient")
    out = detail.outcome
    if out is not None:
        subtitle += (f" · follow-up: {outcome_words(out.event, out.time_years)}"
                     + (f" ({out.date.isoformat()})" if out.date else ""))
    return title, subtitle


#: what a pseudonymised pack says instead of the meeting's free text
RECORD_WITHHELD = ("withheld from a pseudonymised pack (free text may identify the "
                   "patient)")


def record_lines(record: MdtRecordRow | None, identified: bool,
                 meeting: str | None = None) -> list[tuple[str, str]]:
    """The meeting's record as drawn: question, discussion and decision, or one line
    saying why there is none."""
    if not identified:
        return [("MDT record", RECORD_WITHHELD)]
    if record is None:
        return [("MDT record", f"none recorded{' for ' + meeting if meeting else ''}")]
    return [("Meeting", record.meeting), ("Question", record.question),
            ("Discussion", record.discussion), ("Decision", record.decision)]


#: the pack's figures, drawn at the size of their box on the page (placed at scale 1, so
#: a font's size is its printed size; the smallest text is ``font - 1``, at least 7 pt)
TRAJECTORY_FIGURE = {"size_in": inches(TRAJECTORY_BOX), "font": 8.0}
WATERFALL_FIGURE = {"size_in": inches(WATERFALL_BOX), "font": 8.0}
CALIBRATION_FIGURE = {"size_in": inches(CALIBRATION_BOX), "font": 7.0}


def _imaging_text_within_phase(view, i: int, table: pd.DataFrame, top: int = 3) -> str:
    """``Trajectory.imaging_text``, with a CT attenuation change kept only when it is the
    change since the previous scan of the same contrast phase (the biomarker table's,
    :func:`analytics.viz.prep.biomarker_summary`); otherwise the value is shown alone."""
    rows = {r.name: r for r in table.itertuples()} if len(table) else {}
    items = []
    for c in view.imaging(i)[:top]:
        change = c.change
        if c.feature in PHASE_DEPENDENT and change is not None:
            r = rows.get(c.feature)
            same = (r is not None and r.compared_with != NO_SAME_PHASE
                    and np.isfinite(r.change) and np.isclose(r.change, change))
            change = change if same else None
        items.append((c.label, c.unit, c.value, change, c.amount()))
    return imaging_text(items, since=view.imaging_since(i))


def _risk_part(page: PatientPage, model, visits: pd.DataFrame | None, pseudonym: str,
               horizon: float | None, metrics: dict | None, out) -> None:
    """Trajectory, risk sentence, waterfall, model text and calibration onto ``page``."""
    h = float(horizon) if horizon is not None else max(model.horizons)
    try:
        view = patient_trajectory(model, visits, pseudonym, h)
    except ModelError as e:
        view = None
        page.notes.append(f"Risk not available: {e}")
    if view is not None:
        i = view.latest_index()
        sel = float(view.points["time"].iloc[i]) if i is not None else None
        page.trajectory_png = trajectory_png(
            view, outcome_event=out.event if out else None,
            outcome_time=out.time_years if out else None, selected_time=sel,
            **TRAJECTORY_FIGURE)
        if i is None:
            reasons = {r for r in view.points["reason"].dropna()}
            page.notes.append("No visit is assessable: " + "; ".join(sorted(reasons))[:300])
        else:
            p = view.points.iloc[i]
            page.risk_text = " ".join([risk_sentence(
                event_text(view.event), h, p["time"], p["risk"], (p["ci_low"], p["ci_high"])),
                why_text(view.why(i, top=1))]).strip()
            page.imaging_text = _imaging_text_within_phase(view, i, page.biomarkers)
            page.waterfall_png = waterfall_png(
                view.waterfall(i, top=7), **WATERFALL_FIGURE,
                title=f"Why: percentage points of the {h:g}-year risk at {p['time']:.1f} y")
    page.model_text = _model_text(model, metrics or {}, h)
    if metrics:
        page.calibration_png = calibration_png(calibration_curves(metrics), h,
                                               **CALIBRATION_FIGURE)


def collect_patient_page(store, settings, pseudonym: str, *, identified: bool, model=None,
                         visits: pd.DataFrame | None = None, metrics: dict | None = None,
                         horizon: float | None = None, key_image_png: bytes | None = None,
                         key_image_caption: str | None = None,
                         record: list[tuple[str, str]] | None = None,
                         today: dt.date | None = None) -> PatientPage:
    """Gather and render everything on one patient's page.

    Parts that cannot be made (no model, visit not assessable, no imaging, unreadable
    series) are replaced by a line saying why; only a missing patient is an error.

    Raises
    ------
    StoreError
        If no patient has this pseudonym.
    """
    detail = repo.patient_detail(store, pseudonym, identified=identified)
    facts = clinical_facts(detail, today or dt.datetime.now(dt.UTC).date())
    title, subtitle = _title(detail, pseudonym, identified, facts.name)
    page = PatientPage(pseudonym=pseudonym, title=title, subtitle=subtitle,
                       facts_text=facts.line,
                       mdt_record=record if record is not None else record_lines(
                           None, identified))
    page.biomarkers = biomarker_summary(detail.biomarkers, detail.visits)
    if model is None:
        page.notes.append("No trained model: no risk trajectory or explanation.")
    else:
        _risk_part(page, model, visits, pseudonym, horizon, metrics, detail.outcome)
    if key_image_png is not None:
        page.key_image_png = key_image_png
        page.key_image_caption = key_image_caption or ""
    else:
        uid = key_series_uid(detail.series)
        if uid is None:
            page.key_image_caption = no_series_text(detail.visits)
        else:
            page.key_image_png, page.key_image_caption = _key_image(store, settings, uid,
                                                                    detail.series)
    return page


def _overlay_labels(stack) -> list[tuple[str, str]]:
    """``(mask name, label)`` of the overlaid structures, in the overlay's order and words
    ("Hepatic vessels", not ``liver_vessels``)."""
    labels = {name: label for name, _bit, _colour, label in OVERLAYS}
    return [(n, labels.get(n, n.replace("_", " "))) for n in stack.structures]


def _key_image(store, settings, uid: str, series: pd.DataFrame) -> tuple[bytes | None, str]:
    row = series[series["series_uid"] == uid].iloc[0]
    when = (pd.Timestamp(row["study_date"]).strftime("%Y-%m-%d")
            if pd.notna(row["study_date"]) else f"{row['time_years']:.1f} y")
    try:
        stack = load_key_image(store, settings, uid)
    except HepaTrackError as e:
        return None, f"Key image of the {row['modality']} of {when} not available: {e}"
    k = stack.key_index
    rgb = render_slice(stack, k, LIVER_WINDOW if stack.modality == "CT" else None)
    masks = ", ".join(f"{label} ({stack.labels_text[n]})" if stack.labels_text.get(
        n, "").startswith("automatic") else label for n, label in _overlay_labels(stack)
    ) or "no masks"
    window = LIVER_WINDOW.label if stack.modality == "CT" else "auto window"
    caption = (f"{row['modality']} {when}, slice {k + 1}/{stack.n_slices} (z {stack.z_mm[k]:.0f}"
               f" mm), {window}; overlay: {masks}")
    return png_bytes(rgb), caption


# --------------------------------------------------------------------------- use case
@dataclass(frozen=True)
class ReportRequest:
    """What goes into the MDT pack.

    Attributes
    ----------
    patients
        Pseudonyms, one page each in this order; repeats are dropped.
    out
        Where to write the PDF (atomically); None keeps it in memory only.
    identified
        Real names and dates; default: whatever the actor may see.
    model_id, horizon
        The model (default the active one) and horizon (default its longest).
    meeting
        Meeting name for the header.
    model, visits
        An already loaded model and ``CohortTable.visits`` (the page passes its cached
        ones); loaded here when None.
    key_images
        Already rendered key images by pseudonym: ``(png, caption)`` (the page passes the
        slice the user chose); rendered here from the latest scan otherwise.
    progress
        ``progress(message, fraction)`` after each page.
    """

    patients: list[str]
    out: str | Path | None = None
    identified: bool | None = None
    model_id: str | None = None
    horizon: float | None = None
    meeting: str | None = None
    model: Any = None
    visits: pd.DataFrame | None = None
    key_images: dict[str, tuple[bytes, str]] | None = None
    progress: Progress | None = None


def _patients(store, patients: list[str]) -> list[str]:
    pts = list(dict.fromkeys(p for p in patients if p))
    if not pts:
        raise StoreError("MDT report: no patient given", hint="add patients to the meeting list")
    known = known_pseudonyms(store, pts)
    unknown = [p for p in pts if p not in known]
    if unknown:
        raise StoreError(f"MDT report: patient(s) {', '.join(unknown)} not in the store",
                         hint="pick pseudonyms from the cohort list")
    return pts


def _model_parts(ctx: Context, req: ReportRequest, warnings: list[str]
                 ) -> tuple[Any, dict[str, Any], pd.DataFrame | None]:
    """The model (None, with a warning, when none loads), its metrics and the visits."""
    model, visits = req.model, req.visits
    if model is None:
        try:
            model = load_model(ctx.store, ctx.settings, req.model_id)
        except ModelError as e:
            warnings.append(str(e))
    if model is None:
        return None, {}, visits
    metrics = model_metrics(ctx.store, model.model_id)["metrics"]
    return model, metrics, visits if visits is not None else build_cohort(ctx.store).visits


def _write_atomically(out: str | Path, pdf: bytes) -> Path:
    path = Path(out)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(pdf)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _latest_records(ctx: Context, pts: list[str], meeting: str | None
                    ) -> dict[str, MdtRecordRow]:
    """Each patient's MDT record of ``meeting`` (without one: the latest of any)."""
    out: dict[str, MdtRecordRow] = {}
    for r in mdt_records.records(ctx.store, pts, meeting=meeting):  # newest first
        out.setdefault(r.pseudonym, r)
    return out


def build_mdt_report(ctx: Context, req: ReportRequest) -> ReportResult:
    """Make the MDT pack for ``req.patients`` (one page each, in the given order).

    Raises
    ------
    PermissionDeniedError
        If the actor may not export this kind of pack (refusal audited).
    StoreError
        If a patient is unknown or no patient is given.
    AuditError
        If the export cannot be audited (no PDF is made).
    """
    ident = (allowed(ctx.actor, Permission.VIEW_IDENTIFIED) if req.identified is None
             else req.identified)
    authorize(ctx, Permission.EXPORT_IDENTIFIED if ident else Permission.EXPORT_PSEUDONYMISED,
              "export")
    pts = _patients(ctx.store, req.patients)
    warnings: list[str] = []
    model, metrics, visits = _model_parts(ctx, req, warnings)
    mid = model.model_id if model is not None else None
    detail = {"what": "mdt_pdf", "patients": len(pts), "identified": ident, "pseudonyms": pts}
    with audited(ctx, "export", patient=pts[0] if len(pts) == 1 else None,
                 model_version=mid, detail=detail):
        pages = []
        records = _latest_records(ctx, pts, req.meeting) if ident else {}
        for n, p in enumerate(pts, start=1):
            ki = (req.key_images or {}).get(p)
            pages.append(collect_patient_page(
                ctx.store, ctx.settings, p, identified=ident, model=model, visits=visits,
                metrics=metrics, horizon=req.horizon, key_image_png=ki[0] if ki else None,
                key_image_caption=ki[1] if ki else None,
                record=record_lines(records.get(p), ident, req.meeting),
                today=ctx.clock().date()))
            if req.progress:
                req.progress(f"page {n} of {len(pts)}: {p}", n / len(pts))
        when = ctx.clock().strftime("%Y-%m-%d %H:%M UTC")
        header = f"HepaTrack MDT{' · ' + req.meeting if req.meeting else ''} · {when}"
        footer = (f"Generated by {ctx.username} · "
                  f"{'identified' if ident else 'pseudonymised'} pack · "
                  f"model {mid or 'none'} · confidential clinical document")
        pdf = render_pdf(pages, header=header, footer=footer, intended_use=INTENDED_USE)
        path = _write_atomically(req.out, pdf) if req.out is not None else None
    for page in pages:
        warnings += [f"{page.pseudonym}: {n}" for n in page.notes]
    return ReportResult(pdf=pdf, pages=len(pages), patients=pts, model_id=mid,
                        identified=ident, path=path, warnings=warnings)


def download_pack(ctx: Context, result: ReportResult) -> bytes:
    """The bytes of a made pack, for its download (audited ``export``, step ``download``).

    Raises
    ------
    PermissionDeniedError
        If the actor may not export this kind of pack (refusal audited).
    AuditError
        If the download cannot be audited: then no bytes are given.
    """
    authorize(ctx, Permission.EXPORT_IDENTIFIED if result.identified
              else Permission.EXPORT_PSEUDONYMISED, "export")
    with audited(ctx, "export", detail={"step": "download", "what": "mdt_pack",
                                        "pages": int(result.pages),
                                        "identified": bool(result.identified)}):
        return result.pdf
