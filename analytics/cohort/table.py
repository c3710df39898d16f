"""The cohort table: one row per patient visit with imaging biomarkers, labs and outcomes.

Time axis
    Times are years (days / 365.25) since the patient's baseline: ``patients.baseline_date``
    when set, else the earliest dated scan or lab visit (the same rule as
    :mod:`analytics.store.repo`). Dates are the store's de-identified (shifted) dates; the
    shift is per patient, so every interval is exact. A lab visit imported with a ``time``
    and no date keeps its time (it counts from the same baseline by the CSV contract)
    and is placed at baseline + time for merging. Dated visits and outcomes are re-timed
    from their dates, so a scan ingested after the labs (which moves the baseline
    earlier) keeps every interval right.
Imaging visits
    Each study date of a patient with a complete series is one imaging visit (before
    feature extraction its biomarkers are NaN). Its biomarkers come from one series: among
    the complete series on that date, the one with the most non-missing features; ties go
    to the portal-venous phase, then unenhanced, then any other phase, then the lowest
    series UID. Quantitative MR map biomarkers (``vocabulary.MR_MAP_FEATURES``: PDFF,
    R2*, MR elastography stiffness, Dixon signal fat fraction) are each measured on a
    series of their own, so a visit the chosen series leaves without one takes it from
    another series of that date, in the same order. Per series and feature the newest extractor
    run wins (even when it could not compute the value: a withheld value is NaN, never
    0). The visit's ``automatic_segmentation`` names the features whose winning value
    was measured on an automatic segmentation (the feature's ``automatic_segmentation``
    flag), so a model can leave them out by site policy. Scans after the patient's end
    of follow-up are left out with a warning.
Merging labs into scans
    For every lab (and every other CSV column) a scan takes the nearest draw within
    ``lab_window_days`` before or after it, without crossing another scan of the patient
    (a draw on the far side of a nearer scan is never used); on a tie the earlier draw
    wins. Draws after the scan carry up to ``lab_window_days`` of look-ahead into the scan
    visit; pass a smaller window to limit it. ``age_years`` is moved to the scan date
    (age at the draw + the interval). A lab visit on the same day as a scan becomes part
    of that scan visit; every other lab visit stays a visit of its own (labs-only
    visits are visits too) and keeps its values even when they were also attached to a
    scan. A visit still without ``age_years`` whose patient has a stored birth year (from
    DICOM) gets the years since the middle of that year (within half a year).
    The visits of a patient whose imported visits carry no ``sex`` get the stored sex
    (DICOM Patient's Sex): one source per fact, the visits' own wherever they have one.
Missing values
    stay NaN: imputation belongs to the models, which learn it on training data only.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analytics import vocabulary
from analytics.cohort.columns import (
    CODED_COLUMNS,
    IMPORTED_IMAGING_COLUMNS,
    KNOWN_COLUMNS,
    LAB_COLUMNS,
)
from analytics.cohort.reader import Source, read_table
from analytics.cohort.validate import DAYS_PER_YEAR, validate
from analytics.cohort_types import DEFAULT_LAB_WINDOW_DAYS, VISIT_KEYS, CohortTable
from analytics.errors import CohortError
from analytics.models.scores import CLINICAL_SCORES, compute_scores
from analytics.store.cohort import FeatureValueRow, SeriesRow, VisitRow, cohort_rows
from analytics.store.db import Store

#: visit keys holding text (None on lab-only visits)
_TEXT_KEYS = ("series_uid", "modality", "contrast_phase", "automatic_segmentation")
SAME_DAY_YEARS = 0.5 / DAYS_PER_YEAR
_EPS = 1e-9


def _phase_rank(phase: str | None) -> int:
    """Preference among a study date's series: portal venous, unenhanced, other, unknown."""
    if not phase:
        return 0
    p = phase.lower()
    if "portal" in p or p in ("venous", "pv"):
        return 3
    if any(k in p for k in ("unenhanced", "native", "non_contrast", "noncontrast", "plain")):
        return 2
    return 1


def _years(later: dt.date | None, earlier: dt.date | None) -> float:
    if later is None or earlier is None:
        return np.nan
    return (later - earlier).days / DAYS_PER_YEAR


def _place(base: dt.date | None, t: float) -> dt.date | None:
    """The date of a time-only visit: baseline + t years, to the nearest day."""
    if base is None or t is None or np.isnan(t):
        return None
    return base + dt.timedelta(days=round(t * DAYS_PER_YEAR))


# --------------------------------------------------------------------------- merging
def _attach_labs(scans: pd.DataFrame, labs: pd.DataFrame, columns: list[str],
                 window_years: float) -> pd.DataFrame:
    """Fill each scan's missing CSV columns from the nearest draw (module docstring)."""
    if scans.empty or labs.empty:
        return scans
    scans = scans.sort_values("time", kind="stable").reset_index(drop=True)
    g = scans.groupby("patient", sort=False)["time"]
    scans["_prev"] = g.shift(1)
    scans["_next"] = g.shift(-1)
    for c in columns:
        draws = labs.loc[labs[c].notna(), ["patient", "time", c]].rename(
            columns={"time": "_t", c: "_v"}).sort_values("_t", kind="stable")
        if draws.empty:
            continue
        if c not in scans.columns:
            scans[c] = np.nan
        picks = {}
        for direction in ("backward", "forward"):
            m = pd.merge_asof(scans[["patient", "time"]], draws, left_on="time",
                              right_on="_t", by="patient", direction=direction,
                              allow_exact_matches=True)
            dist = (m["time"] - m["_t"]).abs()
            ok = m["_v"].notna() & (dist <= window_years + _EPS)
            if direction == "backward":
                ok &= scans["_prev"].isna() | (m["_t"] >= scans["_prev"] - _EPS)
            else:
                ok &= scans["_next"].isna() | (m["_t"] <= scans["_next"] + _EPS)
            picks[direction] = (m["_v"].where(ok), m["_t"].where(ok), dist.where(ok))
        bv, bt, bd = picks["backward"]
        fv, ft, fd = picks["forward"]
        use_fwd = fd.notna() & (bd.isna() | (fd < bd - _EPS))
        value = bv.where(~use_fwd, fv)
        draw_t = bt.where(~use_fwd, ft)
        if c == "age_years":
            value = value + (scans["time"] - draw_t)
        own = scans[c]
        scans[c] = own.where(own.notna(), value)
    return scans.drop(columns=["_prev", "_next"])


def _age_from_birth_year(visits: pd.DataFrame, csv_columns: list[str],
                         birth_years: dict[str, int]) -> tuple[pd.DataFrame, list[str]]:
    """Fill a missing ``age_years`` from the patient's (shifted) birth year, to +-0.5 y.

    Birth dates are de-identified to a year; the middle of that year is used. Stored
    dates and the birth year carry the same shift, so the age keeps its accuracy.
    """
    born = visits["patient"].map(
        {p: pd.Timestamp(y, 7, 1) for p, y in birth_years.items() if y is not None})
    dates = pd.to_datetime(visits["date"])
    age = (dates - born).dt.days / DAYS_PER_YEAR
    if age.notna().sum() == 0:
        return visits, csv_columns
    if "age_years" not in visits.columns:
        visits["age_years"] = np.nan
        csv_columns = [*csv_columns, "age_years"]
    current = pd.to_numeric(visits["age_years"], errors="coerce")
    visits["age_years"] = current.where(current.notna(), age.round(2))
    return visits, csv_columns


def _sex_from_header(visits: pd.DataFrame, csv_columns: list[str], sexes: dict[str, str]
                     ) -> tuple[pd.DataFrame, list[str]]:
    """Give the stored sex (DICOM Patient's Sex) to every visit of a patient whose visits
    carry none: the imported visits stay the one source wherever they have it."""
    if "sex" not in visits.columns:
        visits["sex"] = np.nan
        csv_columns = [*csv_columns, "sex"]
    # one set of the patients whose visits carry a sex, not a Python call per patient
    has = visits["patient"].isin(visits.loc[visits["sex"].notna(), "patient"].unique())
    fill = visits["patient"].map(sexes)
    visits["sex"] = visits["sex"].astype(object).where(has | fill.isna(), fill)
    return visits, csv_columns


def _from_header(visits: pd.DataFrame, csv_columns: list[str],
                 header: tuple[dict[str, int], dict[str, str]] | None
                 ) -> tuple[pd.DataFrame, list[str]]:
    """Age from the stored birth year and sex from the stored sex where visits lack them."""
    birth_years, sexes = header or ({}, {})
    if birth_years:
        visits, csv_columns = _age_from_birth_year(visits, csv_columns, birth_years)
    if sexes and not visits.empty:
        visits, csv_columns = _sex_from_header(visits, csv_columns, sexes)
    return visits, csv_columns


def _assemble(labs: pd.DataFrame, scans: pd.DataFrame, outcomes: pd.DataFrame,
              csv_columns: list[str], categorical: set[str], imaging_units: dict[str, str],
              lab_window_days: float, with_scores: bool, warnings: list[str],
              header: tuple[dict[str, int], dict[str, str]] | None = None) -> CohortTable:
    """Merge lab and scan visits into a :class:`CohortTable`."""
    if lab_window_days < 0:
        raise CohortError(f"lab_window_days must be >= 0, got {lab_window_days!r}")
    window = lab_window_days / DAYS_PER_YEAR
    end = outcomes.set_index("patient")["duration"] if not outcomes.empty else pd.Series(
        dtype="float64")
    if not scans.empty:
        t_end = scans["patient"].map(end)
        late = scans["time"] > t_end + _EPS
        for r in scans[late].itertuples():
            warnings.append(f"patient {r.patient}: scan {r.series_uid} on {r.date} is after "
                            f"the end of follow-up ({end[r.patient]:.3f} years); left out")
        scans = scans[~late]
        scans = _attach_labs(scans, labs, csv_columns, window)
        if not labs.empty and not scans.empty:
            near = pd.merge_asof(
                labs[["patient", "time"]].reset_index().sort_values("time"),
                scans[["patient", "time"]].rename(columns={"time": "_s"}).sort_values("_s"),
                left_on="time", right_on="_s", by="patient", direction="nearest",
                tolerance=SAME_DAY_YEARS)
            absorbed = near.loc[near["_s"].notna(), "index"]
            labs = labs.drop(index=absorbed)
    parts = [f for f in (scans, labs) if not f.empty]
    visits = (pd.concat(parts, ignore_index=True, sort=False) if parts
              else pd.DataFrame(columns=["patient", "time", "date"]))
    visits, csv_columns = _from_header(visits, csv_columns, header)
    lab_order = [c for c in (*LAB_COLUMNS, *CODED_COLUMNS) if c in csv_columns]
    others = sorted(c for c in csv_columns if c not in lab_order)
    imaging = sorted(c for c in imaging_units if c not in csv_columns)
    features = lab_order + others + imaging
    for c in (*VISIT_KEYS, *features):
        if c not in visits.columns:
            visits[c] = None if c in _TEXT_KEYS else np.nan
    visits = visits[[*VISIT_KEYS, *features]]
    visits = visits.sort_values(["patient", "time"], kind="stable", ignore_index=True)
    visits["patient"] = visits["patient"].astype(str)
    visits["time"] = visits["time"].astype("float64")
    visits["date"] = pd.to_datetime(visits["date"])
    for c in _TEXT_KEYS:
        visits[c] = visits[c].astype(object).where(visits[c].notna(), None)
    meta: dict[str, dict[str, Any]] = {}
    for c in features:
        is_cat = c in categorical or c == "sex" or imaging_units.get(c) == "code"
        if is_cat:
            visits[c] = visits[c].astype(object).where(visits[c].notna(), np.nan)
        else:
            visits[c] = pd.to_numeric(visits[c], errors="coerce").astype("float64")
        # the contract's known columns (labs, age, sex, MELD/Mayo modifiers) are "lab";
        # imported imaging measurements are imaging biomarkers like the extracted ones
        kind = ("lab" if c in LAB_COLUMNS or c in CODED_COLUMNS
                else "imaging" if c in imaging or c in IMPORTED_IMAGING_COLUMNS
                else "generic")
        meta[c] = {"kind": kind, "unit": vocabulary.unit(c)
                   if c in KNOWN_COLUMNS or c in IMPORTED_IMAGING_COLUMNS
                   else imaging_units.get(c, ""),
                   "categorical": is_cat}
        if c in IMPORTED_IMAGING_COLUMNS and c in csv_columns:
            meta[c]["imported"] = True
    if with_scores:
        scores = compute_scores(visits)
        for name, d in CLINICAL_SCORES.items():
            if name in visits.columns:
                warnings.append(f"column {name} from the visits data is replaced by the "
                                f"computed {d.label}")
            visits[name] = scores[name]
            meta[name] = {"kind": "score", "unit": d.unit, "categorical": False}
    no_outcome = sorted(set(visits["patient"]) - set(outcomes["patient"]))
    if no_outcome:
        warnings.append(f"{len(no_outcome)} patients have visits but no outcome (e.g. "
                        f"{', '.join(no_outcome[:5])}): they can be scored, not used to train")
    outcomes = outcomes.sort_values("patient", ignore_index=True)
    return CohortTable(visits=visits, outcomes=outcomes, feature_meta=meta, warnings=warnings)


def _outcome_frame(rows: list[tuple[str, float, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["patient", "duration", "event"])
    df["patient"] = df["patient"].astype(str)
    df["duration"] = df["duration"].astype("float64")
    df["event"] = df["event"].astype(str)
    return df


# --------------------------------------------------------------------------- store
def latest_features(rows: list[FeatureValueRow] | list[Any]) -> pd.DataFrame:
    """Feature rows -> newest run per (series, name): series_id, name, value, unit."""
    df = pd.DataFrame(rows, columns=["id", "series_id", "name", "value", "unit",
                                     "computed_at"])
    if df.empty:
        return df
    # a feature named like a visit key (the coded ``contrast_phase`` feature) would make a
    # second column of that name; the visit row already carries the series' own value
    df = df[~df["name"].isin(VISIT_KEYS)].copy()
    df["computed_at"] = pd.to_datetime(df["computed_at"], utc=True)
    df = df.sort_values(["computed_at", "id"], kind="stable")
    return df.drop_duplicates(["series_id", "name"], keep="last")


def build_cohort(store: Store, *, lab_window_days: float = DEFAULT_LAB_WINDOW_DAYS,
                 with_scores: bool = False,
                 patients: Sequence[str] | None = None) -> CohortTable:
    """The cohort table of everything in the store (or of some patients).

    Parameters
    ----------
    store
        The open store.
    lab_window_days
        A scan visit takes each lab from the nearest draw within this many days
        (before or after, never across another scan). 0 keeps same-day labs only.
    with_scores
        Add one column per clinical score (``analytics.models.scores``), kind ``score``.
    patients
        Pseudonyms: build the table of these patients only, from their rows alone (to
        score one patient without reading the cohort). Their rows hold the values of the
        whole table's rows; a column only other patients have is absent (the whole table
        holds NaN there for them).

    Returns
    -------
    CohortTable
        ``visits``: one row per visit (imaging visits and lab-only visits), sorted by
        patient and time, NaN where a value was not measured (no imputation here: the
        models impute, from training data only). ``outcomes``: one row per patient with an
        outcome (``patient``, ``duration`` in years, ``event``); patients without an
        outcome keep their visits (they can be scored) and are named in ``warnings``.

    Notes
    -----
    The merge and time rules are in the module docstring.
    """
    stored = cohort_rows(store, patients)
    patients, visit_rows = stored.patients, stored.visits
    name_of = {p.id: p.pseudonym for p in patients}
    dates: dict[int, list[dt.date]] = defaultdict(list)
    for r in stored.study_dates:
        if r.study_date is not None:
            dates[r.patient_id].append(r.study_date)
    for r in visit_rows:
        if r.visit_date is not None:
            dates[r.patient_id].append(r.visit_date)
    base = {p.id: p.baseline_date or (min(dates[p.id]) if dates[p.id] else None)
            for p in patients}
    warnings: list[str] = []
    labs, csv_columns, categorical = _lab_visits(visit_rows, base, name_of)
    scans, units = _scan_visits(stored.series, stored.features, base, name_of, warnings)
    outcomes = _outcome_frame([
        (name_of[r.patient_id],
         _years(r.outcome_date, base[r.patient_id])
         if r.outcome_date is not None and base[r.patient_id] is not None
         else float(r.time_years), r.event) for r in stored.outcomes])
    return _assemble(labs, scans, outcomes, csv_columns, categorical, units,
                     lab_window_days, with_scores, warnings,
                     header=({p.pseudonym: p.birth_year for p in patients
                              if p.birth_year is not None},
                             {p.pseudonym: p.sex for p in patients if p.sex}))


def _lab_visits(visit_rows: list[VisitRow], base: dict[int, dt.date | None],
                name_of: dict[int, str]) -> tuple[pd.DataFrame, list[str], set[str]]:
    """Lab visits as rows (patient, time, date, values), their columns in order of first
    appearance and the categorical ones."""
    lab_records, csv_columns, categorical = [], [], set()
    seen_cols: set[str] = set()
    for r in visit_rows:
        b = base[r.patient_id]
        t = _years(r.visit_date, b) if r.visit_date is not None else float(r.time_years)
        date = r.visit_date if r.visit_date is not None else _place(b, t)
        values = r.values or {}
        for k, v in values.items():
            if k not in seen_cols:
                seen_cols.add(k)
                csv_columns.append(k)
            if isinstance(v, str):
                categorical.add(k)
        lab_records.append({"patient": name_of[r.patient_id], "time": t, "date": date,
                            **values})
    labs = pd.DataFrame(lab_records, columns=["patient", "time", "date", *csv_columns])
    return labs, csv_columns, categorical


def _scan_visits(series: list[SeriesRow], feature_rows: list[FeatureValueRow],
                 base: dict[int, dt.date | None], name_of: dict[int, str], warnings: list[str]
                 ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Imaging visits: one representative series per patient and study date (most values,
    then the preferred phase); and the unit of each feature."""
    feats = latest_features([r[:6] for r in feature_rows])
    automatic = _automatic_names(feature_rows, feats)
    wide = (feats.pivot(index="series_id", columns="name", values="value") if not feats.empty
            else pd.DataFrame(dtype="float64"))
    units = dict(zip(feats["name"], feats["unit"], strict=True)) if not feats.empty else {}
    n_values = wide.notna().sum(axis=1)
    candidates = []
    undated = 0
    for r in series:
        if r.study_date is None:
            undated += 1
            continue
        candidates.append((r.patient_id, r.study_date, -int(n_values.get(r.id, 0)),
                           -_phase_rank(r.contrast_phase), r.series_uid, r))
    if undated:
        warnings.append(f"{undated} complete series have no study date and cannot be placed "
                        "in time; left out")
    candidates.sort(key=lambda c: c[:5])
    chosen: dict[tuple[int, dt.date], Any] = {}
    same_day: dict[tuple[int, dt.date], list[Any]] = defaultdict(list)
    for c in candidates:
        chosen.setdefault((c[0], c[1]), c[5])
        same_day[(c[0], c[1])].append(c[5])
    rows = []
    for (pid, sdate), r in chosen.items():
        values = _with_map_values(wide, r, same_day[(pid, sdate)])
        rows.append({"patient": name_of[pid], "time": _years(sdate, base[pid]),
                     "date": sdate, "series_uid": r.series_uid, "modality": r.modality,
                     "contrast_phase": r.contrast_phase,
                     "automatic_segmentation": automatic.get(r.id),
                     **{k: v for k, v in values if pd.notna(v)}})
    scans = pd.DataFrame(rows, columns=None if rows else [
        "patient", "time", "date", "series_uid", "modality", "contrast_phase"])
    return scans, units


def _with_map_values(wide: pd.DataFrame, chosen: Any, same_day: list[Any]
                     ) -> list[tuple[str, Any]]:
    """The chosen series' values, plus each MR map biomarker it lacks from the first other
    series of the same date that measured it."""
    values = dict(wide.loc[chosen.id].items()) if chosen.id in wide.index else {}
    for other in same_day:
        if other.id == chosen.id or other.id not in wide.index:
            continue
        for name in (n for n in vocabulary.MR_MAP_FEATURES if n in wide.columns):
            if pd.isna(values.get(name)) and pd.notna(wide.at[other.id, name]):
                values[name] = wide.at[other.id, name]
    return list(values.items())


def _automatic_names(feature_rows: list[FeatureValueRow], latest: pd.DataFrame
                     ) -> dict[int, str]:
    """Series id -> comma-separated names of its latest values measured on an automatic
    segmentation."""
    flagged = {r.id for r in feature_rows if (r.flags or {}).get("automatic_segmentation")}
    if latest.empty or not flagged:
        return {}
    auto = latest[latest["id"].isin(flagged)]
    return {int(sid): ",".join(sorted(g["name"])) for sid, g in auto.groupby("series_id")}


# --------------------------------------------------------------------------- frames
def cohort_from_frames(visits: Source, outcomes: Source, *, on_error: str = "raise",
                       with_scores: bool = False) -> CohortTable:
    """The cohort table of a visits and an outcomes table, without a store.

    The tables follow the cohort CSV format; they are validated exactly as by
    ``import-cohort`` (same rejections and warnings). The patient is the CSV
    ``patient_id``; with dates, the baseline is the patient's earliest visit date.

    Parameters
    ----------
    visits, outcomes
        DataFrames or CSV paths.
    on_error
        ``"raise"`` (default): any rejected row raises. ``"drop"``: rejected rows are left
        out and listed in ``warnings``.
    with_scores
        Add one column per clinical score.

    Returns
    -------
    CohortTable
        As :func:`build_cohort` (no imaging columns). Missing values stay NaN.

    Raises
    ------
    CohortError
        If a table is unreadable or lacks a required column, or (``on_error="raise"``) a
        row is rejected; the message lists the rejected rows.
    """
    if on_error not in ("raise", "drop"):
        raise CohortError(f"on_error must be 'raise' or 'drop', got {on_error!r}")
    data = validate(read_table(visits, "visits"), read_table(outcomes, "outcomes"))
    if data.rejected and on_error == "raise":
        shown = "; ".join(str(i) for i in data.rejected[:5])
        more = f" (and {len(data.rejected) - 5} more)" if len(data.rejected) > 5 else ""
        raise CohortError(f"{len(data.rejected)} rows rejected: {shown}{more}")
    warnings = [str(i) for i in data.rejected] + [str(i) for i in data.warnings]
    rows = []
    for v in data.visits:
        date = v.date or _place(data.baselines.get(v.key), v.time_years)
        rows.append({"patient": v.key, "time": v.time_years, "date": date, **v.values})
    labs = pd.DataFrame(rows, columns=["patient", "time", "date", *data.value_columns])
    outcome_df = _outcome_frame([(o.key, o.time_years, o.event) for o in data.outcomes])
    return _assemble(labs, pd.DataFrame(), outcome_df, data.value_columns, data.categorical,
                     {}, DEFAULT_LAB_WINDOW_DAYS, with_scores, warnings)


__all__ = ["DEFAULT_LAB_WINDOW_DAYS", "build_cohort", "cohort_from_frames"]
