"""The cohort table with risk columns: merge, filters, sort choices, pages, column display."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from analytics.names import clinical_name
from analytics.store import repo
from analytics.store.repo import KEY_BIOMARKERS
from analytics.usecases.overview import TREND_ARROWS, TREND_THRESHOLD
from analytics.vocabulary import label_with_unit
from ui import loaders, tables
from ui.format import fmt_count

RISING, OUT_OF_DOMAIN, AUTOMATIC, EVENT = ("Rising risk", "Out of domain",
                                           "Automatic segmentation", "Had an event")
FILTERS = (RISING, OUT_OF_DOMAIN, AUTOMATIC, EVENT)
#: the Cohort page's charts, drawn when chosen (``chart_choices``)
RISK_CHART, INCIDENCE_CHART, FOLLOW_UP_CHART, BIOMARKER_CHART = (
    "Current risk", "Incidence by risk group", "Follow-up", "Biomarkers by outcome")
RISK_COLUMNS = ("risk_pct", "risk_as_of", "trend", "risk_change_pct", "flags")
#: the filters that need the model's risk (the outcome filter runs in the database)
RISK_FILTERS = (RISING, OUT_OF_DOMAIN, AUTOMATIC)
#: rows per page of the cohort table (the first is the default)
PAGE_SIZES = (100, 50, 250, 1000)
#: what an identity or date cell says when the store has nothing for it (never "None")
NOT_RECORDED = {"patient_name": "name not recorded", "patient_id": "ID not recorded",
                "birth_date": "not recorded", "first_scan": "no scan", "last_scan": "no scan"}


def patient_table(patients: pd.DataFrame, risk: pd.DataFrame | None) -> pd.DataFrame:
    """``repo.list_patients`` rows plus, with a model, ``risk_pct`` (latest assessable
    visit, percent), ``risk_as_of`` (the date of the last data the risk uses, as the
    viewer sees dates), ``trend`` (arrow), ``risk_change_pct`` (percentage points since
    the previous visit) and ``flags``."""
    if risk is None:
        return patients
    r = risk.set_index("pseudonym")
    out = patients.copy()
    p = out["pseudonym"]
    out["risk_pct"] = (p.map(r["risk"]) * 100).astype("float64")
    out["risk_as_of"] = pd.to_datetime(p.map(r["risk_date"]))
    out["risk_change_pct"] = ((p.map(r["risk"]) - p.map(r["previous_risk"])) * 100
                              ).astype("float64")
    out["trend"] = p.map(r["trend"]).map(TREND_ARROWS).fillna("")
    out["flags"] = p.map(r["flags"]).fillna("")
    return out


def for_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: identity and date cells the store has nothing for say so
    (:data:`NOT_RECORDED`) instead of an empty ``None``; dates as ``YYYY-MM-DD`` text;
    names in clinical form ("Jane DOE").

    Search, sort and filters work on the table itself, before this.
    """
    out = table.copy()
    if "patient_name" in out.columns:  # DICOM "FAMILY^GIVEN" as clinicians write it
        out["patient_name"] = out["patient_name"].map(
            lambda v: clinical_name(v) if isinstance(v, str) and v else v)
    for col, missing in NOT_RECORDED.items():
        if col not in out.columns:
            continue
        values = out[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            values = values.dt.strftime("%Y-%m-%d")
        out[col] = values.astype(object).where(values.notna(), missing)
    for col in _measured_columns(out):
        out[col] = [NOT_MEASURED if pd.isna(v) else f"{v:.4g}" for v in out[col]]
    return out


#: what a biomarker cell of a patient without that measurement says (not a grey "None")
NOT_MEASURED = "—"


def _measured_columns(table: pd.DataFrame) -> list[str]:
    """The key imaging biomarker columns present as numbers (empty for patients without a
    scan): shown as text, so a missing value reads "—" (Streamlit draws a missing number as
    a grey "None", and a styler would cost seconds on a large cohort)."""
    return [c for c in KEY_BIOMARKERS
            if c in table.columns and pd.api.types.is_numeric_dtype(table[c])]


def display_config(table: pd.DataFrame) -> dict[str, Any]:
    """Column configs of the columns :func:`for_display` turns into text, and of the
    risk's "as of" date."""
    cfg: dict[str, Any] = {col: st.column_config.TextColumn(label_with_unit(col))
                           for col in NOT_RECORDED if col in table.columns}
    cfg |= {col: st.column_config.TextColumn(label_with_unit(col), alignment="right")
            for col in _measured_columns(table)}
    if "risk_as_of" in table.columns:
        cfg["risk_as_of"] = st.column_config.DateColumn(
            "Risk as of", format="YYYY-MM-DD",
            help="Date of the last visit or scan the current risk uses")
    return cfg


def chart_choices(*, has_risk: bool, has_biomarkers: bool) -> list[str]:
    """The charts the Cohort page offers, in page order: the risk charts with a model,
    the follow-up always, the biomarker distribution when a key biomarker is measured.
    Each is drawn when the viewer chooses it (none at first paint)."""
    return ([RISK_CHART, INCIDENCE_CHART] if has_risk else []) + [FOLLOW_UP_CHART] + (
        [BIOMARKER_CHART] if has_biomarkers else [])


def apply_filters(table: pd.DataFrame, chosen: list[str]) -> pd.DataFrame:
    """Rows meeting every chosen filter of :data:`FILTERS`."""
    keep = pd.Series(True, index=table.index)
    for f in chosen:
        if f == RISING:
            keep &= table.get("risk_change_pct", pd.Series(np.nan, index=table.index)
                              ) >= TREND_THRESHOLD * 100
        elif f == OUT_OF_DOMAIN:
            keep &= table.get("flags", pd.Series("", index=table.index)).str.contains(
                "out of domain", regex=False)
        elif f == AUTOMATIC:
            keep &= table.get("flags", pd.Series("", index=table.index)).str.contains(
                "automatic segmentation", regex=False)
        elif f == EVENT:
            keep &= table["event"].notna() & (table["event"] != "censored")
    return table[keep]


def sort_choices(*, has_risk: bool) -> list[str]:
    """The sorts of ``ui.tables.SORTS`` the cohort table offers: its own columns, and the
    risk ones with a model (current risk second)."""
    choices = [k for k, (col, _asc) in tables.SORTS.items()
               if col in repo.SORT_COLUMNS or (has_risk and col in RISK_COLUMNS)]
    if has_risk:
        choices.remove("Current risk (highest first)")
        choices.insert(1, "Current risk (highest first)")
    return choices


def column_order(table: pd.DataFrame) -> list[str]:
    """Display order: who, risk, last scan, key biomarkers, flags, outcome, the rest."""
    first = ["pseudonym", "patient_name", "patient_id", "risk_pct", "risk_as_of", "trend",
             "last_scan",
             *KEY_BIOMARKERS, "flags", "event", "follow_up_years"]
    head = [c for c in first if c in table.columns]
    # one birth fact per view: the identified view shows the birth date, not its year
    hidden = {"risk_change_pct"} | ({"birth_year"} if "birth_date" in table.columns else set())
    return head + [c for c in table.columns if c not in head and c not in hidden]


def risk_column_config(table: pd.DataFrame) -> dict[str, Any]:
    """Column configs of the risk columns (percent, arrows, flags)."""
    if "risk_pct" not in table.columns:
        return {}
    return {
        "risk_pct": st.column_config.NumberColumn(
            "Current risk (%)", format="%.1f",
            help="Risk of the model's endpoint within the chosen horizon, at the latest "
                 "visit; empty when that visit is outside the model's domain"),
        "trend": st.column_config.TextColumn(
            "Trend", help=f"Change since the previous visit: ↑ / ↓ at least "
                          f"{TREND_THRESHOLD * 100:g} percentage point, → otherwise"),
        "risk_change_pct": st.column_config.NumberColumn("Change (points)", format="%+.1f"),
        "flags": st.column_config.TextColumn(
            "Flags", help="out of domain: the latest visit cannot be scored; automatic "
                          "segmentation: some biomarkers come from automatic masks"),
    }


def risk_caption(gi) -> str:
    """What the current-risk histogram shows, and what its dashed lines are: the cut-offs
    of the risk groups, thirds of the risk at the *first* visit (the incidence chart
    follows patients from that visit), not thirds of the current risk drawn."""
    text = "Current risk: at each patient's latest visit inside the model's domain."
    if gi is None or not gi.cuts:
        return text
    cuts = " and ".join(f"{100 * c:.1f}%" for c in gi.cuts)
    return (text + f" Dashed lines ({cuts}): the risk-group cut-offs, thirds of the risk "
            "at the first visit, from which the incidence by risk group is followed; they "
            "are not thirds of the current risk drawn here.")


def incidence_caption(gi) -> str:
    """What the incidence chart shows, how the groups were formed, and its caveat."""
    method = ("1 - Kaplan-Meier" if gi.method == "kaplan_meier" else
              "Aalen-Johansen cumulative incidence (competing events are not censored)")
    cuts = ", ".join(f"{100 * c:.1f}%" for c in gi.cuts)
    text = (f"Observed {method} after the first visit, by predicted risk at the first visit "
            f"(thirds; cut points {cuts}); shaded: 95% pointwise intervals. ")
    if gi.excluded:
        text += (f"{gi.excluded} patients left out (first visit not assessable, or no "
                 "outcome or follow-up after it). ")
    return text + ("Apparent separation: when the model was trained on these patients it "
                   "is optimistic; the Models page shows cross-validated performance.")


# --------------------------------------------------------------------------- pages
@dataclass(frozen=True)
class CohortView:
    """What the viewer asked of the cohort table: the search, the outcome filter (in the
    database), the sort (a label of ``ui.tables.SORTS``) and the filters on risk."""

    search: str
    had_event: bool
    sort: str
    risk_filters: tuple[str, ...]

    @property
    def orders_by_risk(self) -> bool:
        """True when the order or the filters need the model's risk, which the database
        does not hold: then the page is chosen in memory from the risk frame."""
        return (tables.SORTS[self.sort][0] not in repo.SORT_COLUMNS
                or bool(self.risk_filters))


#: the cohort table's current-risk sort, which the store can do itself (highest first,
#: unknown last, ties by pseudonym)
RISK_SORT_COLUMN = "risk_pct"


def page_of(ctx: loaders.AppContext, view: CohortView, risk: pd.DataFrame | None,
            page: int, size: int, *, stored: tuple[str, float] | None = None
            ) -> tuple[pd.DataFrame, int]:
    """Rows ``page * size`` to ``(page + 1) * size`` of the cohort table as the viewer
    sorted and filtered it (:func:`patient_table` rows), and how many rows the whole
    table has.

    Sorts by the list's own columns are done, filtered and paged in the database
    (``repo.find_patients``); so is the current-risk order when ``stored`` names the
    model and horizon whose current risk the store holds as ``risk`` (``dash.cohort_risk``
    keeps them equal). Other sorts and filters on risk order every filtered patient's
    risk in memory and read only the page's rows: the same rows, in the same order, as
    sorting and filtering the whole table.
    """
    column = tables.SORTS[view.sort][0]
    in_sql = column == RISK_SORT_COLUMN and stored is not None and not view.risk_filters
    if not view.orders_by_risk or in_sql:
        rows, total = loaders.patient_page(
            ctx, view.search, had_event=view.had_event,
            sort="risk" if in_sql else column, offset=page * size, limit=size,
            risk=stored if in_sql else None)
        return patient_table(rows, risk), total
    names = loaders.pseudonyms(ctx, view.search, had_event=view.had_event)
    ordered = arrange(patient_table(pd.DataFrame({"pseudonym": pd.Series(names, dtype=object)}),
                                    risk), view)["pseudonym"].tolist()
    chosen = tuple(ordered[page * size:(page + 1) * size])
    if not chosen:  # nobody, or past the end: the page says so and shows no table
        return pd.DataFrame({"pseudonym": pd.Series([], dtype=object)}), len(ordered)
    return patient_table(loaders.patients_named(ctx, chosen), risk), len(ordered)


def arrange(table: pd.DataFrame, view: CohortView) -> pd.DataFrame:
    """``table`` (with its risk columns) sorted and filtered on risk as ``view`` says."""
    return apply_filters(tables.sort_patients(table, view.sort), list(view.risk_filters))


def whole_table(found: pd.DataFrame, view: CohortView, risk: pd.DataFrame | None
                ) -> pd.DataFrame:
    """Every row of the cohort table as the viewer sorted and filtered it, from the
    filtered list ``found`` (for the charts and the download, not for the page)."""
    return arrange(patient_table(found, risk), view)


def whole_table_reader(ctx: loaders.AppContext, view: CohortView, risk: pd.DataFrame | None
                       ) -> Callable[[], pd.DataFrame]:
    """A callable giving :func:`whole_table` straight from the store, for a download made
    on the click (off the script thread: no Streamlit cache inside)."""
    store, identified = ctx.store, bool(ctx.viewer.identified)
    query = repo.PatientQuery(search=view.search.strip() or None, had_event=view.had_event)

    def read() -> pd.DataFrame:
        return whole_table(repo.find_patients(store, query, identified=identified), view, risk)

    return read


def page_count(total: int, size: int) -> int:
    """Pages of ``size`` rows that ``total`` rows fill (at least one)."""
    return max(1, math.ceil(total / size))


def rows_caption(total: int, patients: int, page: int, size: int) -> str:
    """"12 of 50,000 patients" and, when the table has more than one page, which rows
    this page shows."""
    text = f"{total} of {fmt_count(patients, 'patient')}"
    if total > size:
        first = page * size + 1
        text += f" · rows {first:,}–{min(total, first + size - 1):,}"
    return text
