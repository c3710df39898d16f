"""Labels and choices of the patient page (plain pandas, no widgets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from analytics.explain import POINTS, Trajectory
from analytics.usecases.keyimage import OVERLAYS, WINDOWS
from analytics.viz.prep import PHASE_NOTE as PHASE_NOTE
from analytics.viz.prep import biomarker_summary, normal_range, range_text
from analytics.vocabulary import CORE_FEATURES, label_with_unit, visit_source_words
from ui.format import fmt_date


def visit_labels(points: pd.DataFrame, dates: dict[float, str] | None = None) -> list[str]:
    """``"1.2 y · 2021-03-04 · scan · 12.3%"`` (or ``· not assessable``) of every visit, in
    one pass over the columns: the visit picker formats each option on every run.

    ``dates``: real dates by time for identified views (:func:`visit_dates`); None uses the
    stored (shifted) date the risk view carries.
    """
    times = points["time"].to_numpy(float)
    scan = points["is_scan"].to_numpy(bool)
    ok = points["assessable"].to_numpy(bool)
    risk = points["risk"].to_numpy(float)
    stored = points["date"].tolist()
    out = []
    for i, t in enumerate(times):
        date = _nearest(dates, float(t)) if dates is not None else stored[i]
        parts = [f"{t:.1f} y"]
        if date is not None and pd.notna(date) and str(date):
            parts.append(str(date))
        parts.append("scan" if scan[i] else "lab visit")
        parts.append(f"{100 * risk[i]:.1f}%" if ok[i] else "not assessable")
        out.append(" · ".join(parts))
    return out


def has_log_scale(view: Trajectory) -> bool:
    """Whether the model explains a log relative hazard (Cox, GBM) to switch to."""
    return view.scale == "log_hazard"


def explanation_scale(view: Trajectory, log_scale: bool) -> str:
    """The scale the explanation is drawn on: percentage points of the risk, or the
    model's log relative hazard when asked for and there is one."""
    return view.scale if log_scale and has_log_scale(view) else POINTS


def why_heading(view: Trajectory, scale: str) -> str:
    """``"**Why this score** (percentage points of the 3-year risk, per clinical
    feature)"`` or, on the model's scale, ``"… (SHAP, log relative hazard, …)"``."""
    if scale == POINTS:
        return (f"**Why this score** (percentage points of the {view.horizon:g}-year "
                "risk, per clinical feature)")
    return "**Why this score** (SHAP, log relative hazard, per clinical feature)"


def visit_date(points: pd.DataFrame, i: int, dates: dict[float, str] | None = None
               ) -> str | None:
    """``"YYYY-MM-DD"`` of visit ``i`` as the viewer sees dates (``dates`` as in
    :func:`visit_labels`): the date a risk at that visit is "as of"; None if unknown."""
    p = points.iloc[i]
    date = _nearest(dates, float(p["time"])) if dates is not None else p["date"]
    return str(date) if date is not None and pd.notna(date) else None


def _nearest(dates: dict[float, str], t: float, tol: float = 1.5 / 365.25) -> str | None:
    # the cohort table re-times dated visits from their dates: match within a day or so
    best = min(dates, key=lambda k: abs(k - t), default=None)
    return dates[best] if best is not None and abs(best - t) <= tol else None


def visit_dates(detail) -> dict[float, str] | None:
    """Real dates of visits and studies by time for identified views; None otherwise (the
    risk view's own dates are the stored, shifted ones)."""
    if not detail.identified:
        return None
    out: dict[float, str] = {}
    for df, col in ((detail.visits, "visit_date"), (detail.studies, "study_date")):
        if df.empty or col not in df.columns:
            continue
        for t, d in zip(df["time_years"], df[col], strict=True):
            if pd.notna(t) and pd.notna(d):
                out.setdefault(round(float(t), 6), pd.Timestamp(d).strftime("%Y-%m-%d"))
    return out


#: relative widths of the header's Sex, Born, Studies, Series and Outcome metrics: a
#: birth date ("1950-01-06", ~185 px in the metric font) and "Decompensation" (~240 px)
#: need about a third of the ~760 px a 1280-px screen leaves; five equal columns (150 px)
#: cut the date to "1950-0…"
HEADER_WEIGHTS = (0.7, 2.2, 0.8, 0.8, 2.5)


#: largest disagreement (years) between an imported age and the one the birth date gives;
#: a birth year alone (pseudonymised views) is known to half a year more
AGE_TOLERANCE_Y = 1.0


def birth_metric(detail) -> tuple[str, str, str]:
    """The one birth fact a view shows: ``("Born", "1977-04-12", help)`` from the DICOM
    header's birth date for identified views, ``("Birth year", "1975", help)`` (shifted
    with the patient's dates) otherwise."""
    if detail.identified:
        value = (pd.Timestamp(detail.birth_date).strftime("%Y-%m-%d")
                 if detail.birth_date is not None else "—")
        return "Born", value, "Patient's Birth Date from the DICOM header"
    return ("Birth year", str(detail.birth_year) if detail.birth_year else "—",
            "Shifted with the patient's dates, so ages stay right within a year")


def birth_conflict(detail) -> str | None:
    """One sentence when the imported visits' ``age_years`` disagrees with the birth date
    (identified) or birth year (pseudonymised) by more than :data:`AGE_TOLERANCE_Y`;
    None when they agree or one of the two is missing."""
    visits = detail.visits
    if visits.empty or "age_years" not in visits.columns:
        return None
    if detail.identified:
        born, tol, what = detail.birth_date, AGE_TOLERANCE_Y, "birth date"
        shown = pd.Timestamp(born).strftime("%Y-%m-%d") if born is not None else ""
    else:
        born = pd.Timestamp(detail.birth_year, 7, 1) if detail.birth_year else None
        tol, what, shown = AGE_TOLERANCE_Y + 0.5, "birth year", str(detail.birth_year)
    if born is None:
        return None
    age = pd.to_numeric(visits["age_years"], errors="coerce")
    dates = pd.to_datetime(visits["visit_date"], errors="coerce")
    implied = (dates - pd.Timestamp(born)).dt.days / 365.25
    gap = (age - implied).abs()
    if not (gap > tol).any():
        return None
    i = gap.idxmax()
    return (f"The imported visits give an age of {age[i]:.1f} years on "
            f"{dates[i].strftime('%Y-%m-%d')}, but the {what} in the DICOM header ({shown}) "
            f"gives {implied[i]:.1f}: check that both belong to this patient (the model "
            "uses the visits' age).")


def default_visit(points: pd.DataFrame) -> int:
    """The latest assessable visit, else the latest visit."""
    ok = np.flatnonzero(points["assessable"].to_numpy(bool))
    return int(ok[-1]) if len(ok) else len(points) - 1


def series_choices(series: pd.DataFrame) -> dict[str, str]:
    """Complete CT/MR series, newest first: ``{series_uid: "2021-01-01 · CT · ..."}``."""
    if series is None or series.empty:
        return {}
    ok = series[(series["status"] == "complete")
                & series["modality"].astype(str).str.upper().isin(["CT", "MR"])]
    ok = ok.sort_values(["time_years", "series_uid"], ascending=[False, True],
                        na_position="last", kind="stable")
    out = {}
    for r in ok.itertuples():
        when = pd.Timestamp(r.study_date).strftime("%Y-%m-%d") if pd.notna(r.study_date) \
            else "date unknown"
        phase = f" · {str(r.contrast_phase).replace('_', ' ')}" if r.contrast_phase else ""
        desc = f" · {r.description}" if isinstance(r.description, str) and r.description \
            else ""
        out[str(r.series_uid)] = f"{when} · {r.modality}{phase}{desc} · {r.n_slices} slices"
    return out


def series_slices(series: pd.DataFrame, uid: str) -> int | None:
    """The number of slices the series ``uid`` has (its ``n_slices``), None if unknown."""
    if series is None or series.empty or "n_slices" not in series.columns:
        return None
    n = pd.to_numeric(series.loc[series["series_uid"] == uid, "n_slices"], errors="coerce")
    n = n.dropna()
    return int(n.iloc[0]) if len(n) else None


def slice_text(k: int, stack, total: int | None) -> str:
    """Which slice is shown and what the viewer's slices are, so the viewer's count
    agrees with the series' (the scan picker counts every slice of the series, the viewer
    only those around the liver, at most :data:`~analytics.usecases.keyimage.MAX_SLICES`):
    ``"Slice 14 of the 26 around the liver (the series has 44)"``."""
    n = stack.n_slices
    where = " around the liver" if "liver" in stack.structures else ""
    text = f"Slice {k + 1} of the {n}{where}" if where or (total and total > n) \
        else f"Slice {k + 1} of {n}"
    if total and total > n:
        spaced = ", evenly spaced" if not where else ""
        text += f"{spaced} (the series has {total})"
    return text


#: what a clinician reads first in the studies-and-series table; the series UID (a long
#: number nobody reads) goes last
SERIES_FIRST = ("study_date", "modality", "description", "n_instances", "n_slices",
                "contrast_phase", "time_years")


def series_table(series: pd.DataFrame) -> pd.DataFrame:
    """The studies-and-series table as displayed: date, modality, description and number
    of images first, the series UID last (the study UID and geometry left out)."""
    df = series.drop(columns=["study_uid", "geometry"], errors="ignore")
    first = [c for c in SERIES_FIRST if c in df.columns]
    rest = [c for c in df.columns if c not in first and c != "series_uid"]
    return df[first + rest + (["series_uid"] if "series_uid" in df.columns else [])]


#: what the Visits table says of a visit stored before imports were recorded
NOT_RECORDED = "not recorded"


def visits_table(visits: pd.DataFrame) -> pd.DataFrame:
    """The visits table as displayed: where each visit came from in words
    (``"Imported from a cohort file (CSV)"``, not the stored code ``csv``), the cohort
    file's name (``source_file``; ``"—"`` when the viewer may not see it or the table
    was given without a file) and the day it was imported (``imported_on``), both
    ``"not recorded"`` for a visit stored before imports were recorded."""
    if visits.empty or "source" not in visits.columns:
        return visits
    out = visits.assign(source=[visit_source_words(v) for v in visits["source"]])
    if "imported_on" in out.columns:
        recorded = out["imported_on"].notna()
        files = out["source_file"] if "source_file" in out.columns else pd.Series(
            None, index=out.index, dtype=object)
        out["source_file"] = [(str(f) if pd.notna(f) and str(f) else "—") if ok
                              else NOT_RECORDED for f, ok in zip(files, recorded, strict=True)]
        out["imported_on"] = [fmt_date(d) if ok else NOT_RECORDED
                              for d, ok in zip(out["imported_on"], recorded, strict=True)]
    return out


def timeline_scans(detail) -> pd.DataFrame:
    """The patient's studies with the modalities of their series (``modality``: "CT",
    "US", "MR, US"), so the timeline tells an ultrasound from a CT."""
    studies, series = detail.studies, detail.series
    if studies.empty or series.empty:
        return studies
    kinds = series.groupby("study_uid")["modality"].agg(
        lambda m: ", ".join(sorted({str(x) for x in m if pd.notna(x) and str(x)})))
    return studies.assign(modality=studies["study_uid"].map(kinds))


def lab_visits(visits: pd.DataFrame) -> pd.DataFrame:
    """Visit rows that are lab draws (not imaging-only rows)."""
    if visits.empty or "source" not in visits.columns:
        return visits
    return visits[visits["source"] != "imaging"]


def normal_ranges(names: list[str]) -> dict[str, tuple[float | None, float | None]]:
    """Published normal ranges (feature registry) of the names that have one."""
    out = {}
    for n in names:
        rng = normal_range(n)
        if rng is not None:
            out[n] = rng
    return out


#: widths (px) of the biomarker table's columns: wide enough for the longest label, the
#: "below normal" flag and "previous unenhanced scan" without cutting a cell
SUMMARY_WIDTHS = {"Biomarker": 215, "Latest": 64, "At (y)": 46, "Previous": 64,
                  "Change": 80, "Normal range": 80, "Flag": 96, "Phase": 100,
                  "Compared with": 172}


def change_text(value: float | None) -> str | None:
    """A change with its sign always shown: ``"−0.000495"``, ``"+20.5"``, ``"+110"``,
    ``"0"`` (a true minus sign, three significant digits below 100, whole numbers above, no
    exponent); None when there is no change to show."""
    if value is None or pd.isna(value):
        return None
    v = float(value)
    if v == 0:
        return "0"
    if abs(v) >= 100:
        text = f"{v:+.0f}"
    else:
        text = np.format_float_positional(v, precision=3, unique=False, fractional=False,
                                          trim="-", sign=True)
    return text.replace("-", "\u2212")


def show_summary(biomarkers: pd.DataFrame, visits: pd.DataFrame, widget_key: str) -> None:
    """Draw :func:`summary_table` (nothing when it is empty) with the within-phase note,
    as the Patient and MDT pages show it."""
    summary = summary_table(biomarkers, visits)
    if summary.empty:
        return
    number, text = st.column_config.NumberColumn, st.column_config.TextColumn
    w = SUMMARY_WIDTHS
    st.dataframe(summary, hide_index=True, key=widget_key,
                 column_config={"Biomarker": text(width=w["Biomarker"]),
                                "Latest": number(format="%.4g", width=w["Latest"]),
                                "Previous": number(format="%.4g", width=w["Previous"]),
                                "Change": text(width=w["Change"], alignment="right",
                                               help="Latest minus previous, with its sign"),
                                "At (y)": number(format="%.1f", width=w["At (y)"]),
                                "Normal range": text(width=w["Normal range"]),
                                "Flag": text(width=w["Flag"]),
                                "Phase": text(width=w["Phase"]),
                                "Compared with": text(width=w["Compared with"])})
    st.caption(PHASE_NOTE)


def summary_table(biomarkers: pd.DataFrame, visits: pd.DataFrame) -> pd.DataFrame:
    """The biomarker table as displayed: label, latest, previous, change, normal range,
    flag, the latest scan's contrast phase and what the previous value is (attenuation is
    compared within its phase: :data:`analytics.viz.prep.PHASE_NOTE`)."""
    df = biomarker_summary(biomarkers, visits)
    if df.empty:
        return pd.DataFrame(columns=["Biomarker", "Latest", "At (y)", "Previous", "Change",
                                     "Normal range", "Flag", "Phase", "Compared with"])
    return pd.DataFrame({
        "Biomarker": df["label"], "Latest": df["latest"], "At (y)": df["latest_time"],
        "Previous": df["previous"], "Change": [change_text(v) for v in df["change"]],
        "Normal range": [range_text(lo, hi, u) for lo, hi, u in
                         zip(df["normal_low"], df["normal_high"], df["unit"], strict=True)],
        "Flag": df["flag"].replace({"within normal": ""}), "Phase": df["phase"],
        "Compared with": df["compared_with"]})


def not_measured(biomarkers: pd.DataFrame) -> pd.DataFrame:
    """Core biomarkers the latest scan could not measure, with the extractor's reason.

    A missing number is never silent: a vessel fraction on an unenhanced scan, a steatosis
    grade outside the unenhanced phase, an organ the segmentation did not find all say why.
    """
    cols = ["Biomarker", "At (y)", "Why not measured"]
    if biomarkers.empty or "reason" not in biomarkers.columns:
        return pd.DataFrame(columns=cols)
    latest = biomarkers.sort_values("time_years", kind="stable").groupby("name").tail(1)
    gaps = latest[latest["value"].isna() & latest["name"].isin(CORE_FEATURES)]
    order = {n: i for i, n in enumerate(CORE_FEATURES)}
    gaps = gaps.sort_values("name", key=lambda s: s.map(order), kind="stable")
    return pd.DataFrame({"Biomarker": [label_with_unit(n) for n in gaps["name"]],
                         "At (y)": gaps["time_years"].to_numpy(float),
                         "Why not measured": gaps["reason"].fillna("not computed").tolist()},
                        columns=cols)


def overlay_legend(structures: tuple[str, ...], labels_text: dict[str, str] | None = None
                   ) -> str:
    """``"Overlay: Liver (bluish green), Spleen (orange)"`` for the masks present; an
    automatic outline says so: ``Liver (bluish green; automatic (classical-v3, …))``."""
    names = {"#009E73": "bluish green", "#E69F00": "orange", "#56B4E9": "sky blue"}
    texts = {k: v for k, v in (labels_text or {}).items() if v.startswith("automatic")}
    parts = [f"{label} ({names.get(colour, colour)}"
             + (f"; {texts[name]})" if name in texts else ")")
             for name, _b, colour, label in OVERLAYS if name in structures]
    return "Overlay: " + ", ".join(parts) if parts else "No organ masks for this series."


def reviewable_outlines(labels_text: dict[str, str]) -> dict[str, str]:
    """Automatic outlines a clinician may reject or restore: ``{organ: "Liver: automatic
    (…)"}`` (delivered outlines are not reviewed here)."""
    names = {name: label for name, _b, _c, label in OVERLAYS}
    return {organ: f"{names.get(organ, organ)}: {text}"
            for organ, text in labels_text.items() if text.startswith("automatic")
            and organ in ("liver", "spleen")}


WINDOW_LABELS = {k: w.label for k, w in WINDOWS.items()}
#: the Patient page's charts drawn when chosen (the risk and its explanation always are):
#: each plotly chart costs a switch its build on the server and its drawing in the browser;
#: the biomarker trends sit below the fold, under the biomarker table that shows them first
TIMELINE_CHART, CHANGE_CHART = "Timeline", "Change since the last scan"
BIOMARKER_CHART = "Biomarkers over time"
MORE_CHARTS = (TIMELINE_CHART, CHANGE_CHART, BIOMARKER_CHART)
