"""Row-level validation of a cohort import: what is rejected, what is only a warning.

The rules (each rejection names the file, the 1-based data row, the CSV line and the
reason; the other rows go on):

Rejected visit rows
    empty or over-long ``patient_id``; no ``time``/``date``; a negative ``time``; a
    ``date`` that is not ISO (``YYYY-MM-DD``) or lies before the patient's stored
    baseline date; an unparseable value (the column and the value are named); a
    physically impossible value (negative concentration, zero INR, age over 130); a
    duplicate (same patient and same time, or same date: the later row is rejected); a
    visit after the end of follow-up (visit time > outcome time); a patient without an
    outcome (no usable row in outcomes.csv and none stored: "unknown patient").
Rejected outcome rows
    empty ``patient_id``; no or bad ``time``/``date``; an end of follow-up before the
    patient's first visit; an empty or numeric ``event`` (0/1 codes are ambiguous); an
    event that is a spelling of "no event" (``alive``, ``none``...: write ``censored``);
    an event that is not a name (letters, digits, underscores); a second row for the same
    patient; a patient with no visit rows in visits.csv and no scans or visits stored
    ("unknown patient").
Warnings (the row is imported as given)
    an unknown code in ``sex``/``dialysis``/``edema``/``diabetes`` (that one value is
    left empty; the warning names the value and the accepted codes), among them a numeric
    ``sex`` code when the file declares no convention (``sex_coding``, e.g. ``1=M,2=F``);
    a value outside its column's plausible range (with a unit hint; see
    :mod:`analytics.cohort.columns`); a censored lab value such as ``<0.2`` (the bound is
    imported); an event name HepaTrack does not know (imported as its own event type); a
    generic column with a few non-numeric values (kept as text); a patient whose ``sex``
    differs between rows; times above 50 years (days or months?).

Row order in the file carries no meaning: visits are sorted by time, so rows out of time
order are accepted. Missing values are normal and never reject a row.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from analytics.cohort.columns import (
    CODED_COLUMNS,
    DATE_COLUMN,
    EVENT_COLUMN,
    ID_COLUMN,
    IMPORTED_IMAGING_COLUMNS,
    KNOWN_EVENTS,
    LAB_COLUMNS,
    RESERVED,
    RESERVED_FEATURE_NAMES,
    TIME_COLUMN,
    UNIT_ALIASES,
)
from analytics.cohort.reader import RawRow, RawTable
from analytics.cohort.records import (
    DAYS_PER_YEAR,
    TIME_EPS,
    Issue,
    OutcomeRecord,
    PatientContext,
    StoredOutcome,
    ValidatedCohort,
    VisitRecord,
)
from analytics.cohort.rows import (
    Collector,
    fmt,
    generic_types,
    parse_event,
    parse_values,
    parse_when,
    patient_key,
    row_patient_key,
)
from analytics.cohort_types import CENSORED
from analytics.errors import CohortError

__all__ = ["DAYS_PER_YEAR", "TIME_EPS", "Issue", "PatientContext", "StoredOutcome",
           "ValidatedCohort", "patient_key", "validate"]

LONG_TIME_YEARS = 50.0


def _require(table: RawTable, needed: tuple[str, ...], what: str) -> None:
    for col in needed:
        if col not in table.columns:
            raise CohortError(f"{table.name}: missing column {col!r}; expected {what}",
                              hint="see 'Cohort CSV format' in the documentation")
    if TIME_COLUMN not in table.columns and DATE_COLUMN not in table.columns:
        raise CohortError(f"{table.name}: needs a 'time' column (years since baseline) or a "
                          f"'date' column (ISO dates); found {table.columns}")


def _shift(date: dt.date | None, ctx: PatientContext | None) -> dt.date | None:
    if date is None or ctx is None or not ctx.shift_days:
        return date
    return date + dt.timedelta(days=int(ctx.shift_days))


def _years(later: dt.date, earlier: dt.date) -> float:
    return (later - earlier).days / DAYS_PER_YEAR


def validate(visits: RawTable, outcomes: RawTable,
             contexts: Mapping[str, PatientContext] | None = None, *,
             sex_coding: Mapping[str, str] | None = None) -> ValidatedCohort:
    """Check both tables row by row and across files; resolve every time.

    Parameters
    ----------
    visits, outcomes
        The read tables (see :func:`analytics.cohort.reader.read_table`).
    contexts
        Store knowledge per CSV ``patient_id`` (date shift, baseline, stored outcome);
        None or missing keys mean a patient the store does not know.
    sex_coding
        The visits file's declared numeric sex convention
        (:func:`analytics.cohort.columns.parse_sex_coding`); without it a numeric ``sex``
        is an unknown code.

    Returns
    -------
    ValidatedCohort
        Accepted visit and outcome records with ``time_years`` in years since the
        patient's baseline (see :mod:`analytics.cohort.table` for the baseline rule) and
        dates shifted into the store's de-identified calendar.

    Raises
    ------
    CohortError
        If a table lacks a required column (nothing is validated then).
    """
    contexts = contexts or {}
    _require(visits, (ID_COLUMN,), "patient_id, time or date, then feature columns")
    _require(outcomes, (ID_COLUMN, EVENT_COLUMN), "patient_id, time or date, event")
    run = _Run(visits, outcomes, contexts, Collector(visits.name), Collector(outcomes.name),
               sex_coding=dict(sex_coding or {}))
    for check in _CHECKS:
        check(run)
    return _result(run)


@dataclass
class _Run:
    """What the checks of one import share; each check reads what earlier ones filled in.

    ``vcol`` and ``ocol`` keep the first rejection of a row, so the order of
    :data:`_CHECKS` decides which reason a row with several problems is given.
    """

    visits: RawTable
    outcomes: RawTable
    contexts: Mapping[str, PatientContext]
    vcol: Collector
    ocol: Collector
    sex_coding: dict[str, str] = field(default_factory=dict)  # declared numeric codes
    warnings: list[Issue] = field(default_factory=list)  # file- and column-level
    value_cols: list[str] = field(default_factory=list)  # as named in the visits file
    aliases: dict[str, tuple[str, float]] = field(default_factory=dict)  # -> (lab, divisor)
    categorical: set[str] = field(default_factory=set)
    vrecs: list[VisitRecord] = field(default_factory=list)
    all_visit_keys: set[str] = field(default_factory=set)  # also of rejected visit rows
    n_values: Counter[str] = field(default_factory=Counter)
    orecs: dict[str, OutcomeRecord] = field(default_factory=dict)
    rejected_outcome_row: dict[str, int] = field(default_factory=dict)
    baselines: dict[str, dt.date | None] = field(default_factory=dict)
    outcome_time: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    sex: dict[str, str] = field(default_factory=dict)


def _check_layout(run: _Run) -> None:
    """Malformed lines are rejected; both 'time' and 'date', or extra outcome columns, warn."""
    visits, outcomes = run.visits, run.outcomes
    for table, col in ((visits, run.vcol), (outcomes, run.ocol)):
        for row, line, msg in table.malformed:
            col.rejected[row] = Issue(table.name, row, line, msg)
    for table in (visits, outcomes):
        if TIME_COLUMN in table.columns and DATE_COLUMN in table.columns:
            run.warnings.append(Issue(table.name, None, None, "both 'time' and 'date' columns: "
                                      "the date is used where given, the time elsewhere"))
    extra = [c for c in outcomes.columns if c not in (*RESERVED, EVENT_COLUMN)]
    if extra:
        run.warnings.append(Issue(outcomes.name, None, None, f"columns {extra} are not part of "
                                  "the outcomes format and are ignored"))


def _check_value_columns(run: _Run) -> None:
    """The visits file's value columns: reserved names, unit aliases, generic column types."""
    visits, warnings = run.visits, run.warnings
    for c in visits.columns:
        if c in RESERVED:
            continue
        if c in RESERVED_FEATURE_NAMES:
            warnings.append(Issue(visits.name, None, None, column=c, reason=(
                f"column {c!r} is reserved for the cohort table (scans, outcomes) and is "
                "ignored")))
            continue
        if c in UNIT_ALIASES:
            target, factor = UNIT_ALIASES[c]
            if target in visits.columns:
                warnings.append(Issue(visits.name, None, None, column=c, reason=(
                    f"columns {c} and {target} both present: {c} is kept as a generic "
                    f"column, the scores use {target}")))
            else:
                run.aliases[c] = (target, factor)
                warnings.append(Issue(visits.name, None, None, column=c, reason=(
                    f"column {c} is imported as {target} (divided by {factor:.6g})")))
        run.value_cols.append(c)
    generic = [c for c in run.value_cols
               if c not in LAB_COLUMNS and c not in CODED_COLUMNS and c not in run.aliases
               and c not in IMPORTED_IMAGING_COLUMNS]
    run.categorical, type_warnings = generic_types(visits, generic)
    warnings += type_warnings


def _parse_visit_rows(run: _Run) -> None:
    """Each visit row's patient, time or date and values (types, codes, plausible ranges)."""
    visits, vcol, contexts = run.visits, run.vcol, run.contexts
    for r in visits.rows:
        key = row_patient_key(r, vcol, contexts)
        if key is None:
            continue
        run.all_visit_keys.add(key)
        when = parse_when(visits, r, vcol)
        values = parse_values(visits, r, run.value_cols, run.categorical, vcol, run.aliases,
                              run.sex_coding)
        if when is None or values is None:
            continue
        run.n_values.update(values.keys())
        run.vrecs.append(VisitRecord(key, r.row, r.line, when[0], _shift(when[1],
                                     contexts.get(key)), values))


def _parse_outcome_rows(run: _Run) -> None:
    """Each outcome row's patient (one row each), time or date and event name."""
    outcomes, ocol, contexts = run.outcomes, run.ocol, run.contexts
    first_outcome: dict[str, RawRow] = {}
    unknown_events: Counter[str] = Counter()
    for r in outcomes.rows:
        key = row_patient_key(r, ocol, contexts)
        if key is None:
            continue
        if key in first_outcome:
            first = first_outcome[key]
            ocol.reject(r, f"second outcome row for patient {key!r} (first at row "
                           f"{first.row}, line {first.line}); one row per patient")
            continue
        first_outcome[key] = r
        when = parse_when(outcomes, r, ocol)
        event, why = parse_event(r.cells.get(EVENT_COLUMN))
        if why is not None:
            ocol.reject(r, why)
        if when is None or event is None:
            run.rejected_outcome_row.setdefault(key, r.row)
            continue
        if event != CENSORED and event not in KNOWN_EVENTS:
            unknown_events[event] += 1
        run.orecs[key] = OutcomeRecord(key, r.row, r.line, when[0],
                                       _shift(when[1], contexts.get(key)), event)
    for event, n in sorted(unknown_events.items()):
        run.warnings.append(Issue(outcomes.name, None, None, column=EVENT_COLUMN,
                                  reason=f"event {event!r} ({n} rows) is not a known event "
                                         f"name ({', '.join(sorted(KNOWN_EVENTS))}); imported "
                                         "as its own event type"))


def _resolve_baselines(run: _Run) -> None:
    """Each patient's baseline date: the stored one, else the earliest date known."""
    dated: dict[str, list[dt.date]] = defaultdict(list)
    for v in run.vrecs:
        if v.date is not None:
            dated[v.key].append(v.date)
    for key in {v.key for v in run.vrecs} | set(run.orecs):
        run.baselines[key] = _baseline_date(run.contexts.get(key), dated.get(key, []))


def _baseline_date(ctx: PatientContext | None, visit_dates: list[dt.date]) -> dt.date | None:
    """A patient's baseline date (de-identified calendar), or None when only times are known.

    Parameters
    ----------
    ctx
        What the store knows of the patient (None: a patient new to the store).
    visit_dates
        Dates of the patient's visit rows in this file (shifted).

    Returns
    -------
    datetime.date or None
        The stored baseline date if there is one; else the earliest of ``visit_dates`` and
        the patient's earliest stored date.
    """
    if ctx is not None and ctx.baseline_date is not None:
        return ctx.baseline_date
    candidates = list(visit_dates)
    if ctx is not None and ctx.earliest_date is not None:
        candidates.append(ctx.earliest_date)
    return min(candidates) if candidates else None


def _resolve_visit_times(run: _Run) -> None:
    """Years since baseline of each visit; a date before the stored baseline is rejected."""
    for v in run.vrecs:
        base = run.baselines[v.key]
        if v.date is None:
            v.time_years = float(v.time_given)  # type: ignore[arg-type]
        elif base is not None and v.date < base:
            run.vcol.reject(v, f"date {v.date.isoformat()} (de-identified calendar) is before "
                               f"the patient's baseline date {base.isoformat()}")
        else:
            v.time_years = _years(v.date, base)  # type: ignore[arg-type]


def _resolve_outcome_times(run: _Run) -> None:
    """Each patient's end of follow-up: from this file's outcome row, else the stored one.

    Rejects an outcome dated without a baseline, before the baseline or before the first
    visit, and an outcome of a patient with no visits here or in the store.
    """
    ocol, contexts, baselines = run.ocol, run.contexts, run.baselines
    first_time: dict[str, float] = {}
    for v in run.vrecs:
        if v.row not in run.vcol.rejected:
            first_time[v.key] = min(first_time.get(v.key, math.inf), v.time_years)
    for key, o in run.orecs.items():
        base = baselines.get(key)
        if o.date is None:
            o.time_years = float(o.time_given)  # type: ignore[arg-type]
        elif base is None:
            ocol.reject(o, "the outcome has a date but the patient's visits have only times "
                           "and no baseline date is stored; give 'time' (years since "
                           "baseline) instead")
            run.rejected_outcome_row.setdefault(key, o.row)
            continue
        else:
            o.time_years = _years(o.date, base)
        if o.time_years < 0:
            ocol.reject(o, f"end of follow-up on {o.date} (de-identified calendar) is before "
                           f"the patient's baseline date {base}")
            run.rejected_outcome_row.setdefault(key, o.row)
            continue
        if key in first_time and o.time_years < first_time[key] - TIME_EPS:
            ocol.reject(o, f"end of follow-up at {fmt(o.time_years)} years is before the "
                           f"patient's first visit at {fmt(first_time[key])} years")
            run.rejected_outcome_row.setdefault(key, o.row)
            continue
        if (key not in run.all_visit_keys
                and not (contexts.get(key) and contexts[key].has_records)):
            ocol.reject(o, f"unknown patient {key!r}: no rows in {run.visits.name} and no "
                           "scans or visits stored")
            continue
        run.outcome_time[key] = (o.time_years, o.event, f"{run.outcomes.name} row {o.row}")
    for key, ctx in contexts.items():
        # a stored outcome stands unless this file replaces it with an accepted row
        if key not in run.outcome_time and ctx.outcome is not None:
            base = baselines.get(key)
            t = (_years(ctx.outcome.date, base) if ctx.outcome.date is not None and base
                 else ctx.outcome.time_years)
            run.outcome_time[key] = (t, ctx.outcome.event, "the stored outcome")


def _check_visits_in_follow_up(run: _Run) -> None:
    """Duplicated visits, visits of patients without an outcome, visits after its time."""
    vcol, outcome_time = run.vcol, run.outcome_time
    seen: dict[tuple[str, float], VisitRecord] = {}
    for v in sorted(run.vrecs, key=lambda v: v.row):
        if v.row in vcol.rejected:
            continue
        slot = (v.key, round(v.time_years / TIME_EPS))
        if slot in seen:
            first = seen[slot]
            vcol.reject(v, f"duplicated visit: patient {v.key!r} at {fmt(v.time_years)} years "
                           f"is already on row {first.row} (line {first.line})")
            continue
        seen[slot] = v
        if v.key not in outcome_time:
            if v.key in run.rejected_outcome_row:
                why = (f"the patient's outcome row ({run.outcomes.name} row "
                       f"{run.rejected_outcome_row[v.key]}) was rejected")
            else:
                why = f"no row in {run.outcomes.name} and no outcome stored"
            vcol.reject(v, f"unknown patient {v.key!r}: {why}; every patient needs an end of "
                           "follow-up")
            continue
        t_end, event, where = outcome_time[v.key]
        if v.time_years > t_end + TIME_EPS:
            vcol.reject(v, f"visit at {fmt(v.time_years)} years is after the end of follow-up "
                           f"at {fmt(t_end)} years ({event}, {where})")


def _check_sex(run: _Run) -> None:
    """Warn on a patient whose ``sex`` differs between accepted rows; the first is kept."""
    vcol, sex = run.vcol, run.sex
    for v in run.vrecs:
        s = v.values.get("sex")
        if v.row in vcol.rejected or not isinstance(s, str):
            continue
        if v.key in sex and sex[v.key] != s:
            vcol.warn(RawRow(v.row, v.line, {}), f"sex {s!r} differs from {sex[v.key]!r} on an "
                      f"earlier row of patient {v.key!r}; the first is kept", column="sex")
            continue
        sex.setdefault(v.key, s)


def _check_time_unit(run: _Run) -> None:
    """Warn when given times exceed :data:`LONG_TIME_YEARS` (days or months?)."""
    for table, times in ((run.visits, [v.time_given for v in run.vrecs]),
                         (run.outcomes, [o.time_given for o in run.orecs.values()])):
        given = [t for t in times if t is not None]
        if given and max(given) > LONG_TIME_YEARS:
            run.warnings.append(Issue(table.name, None, None, column=TIME_COLUMN,
                                      reason=f"times up to {fmt(max(given))} years: 'time' is "
                                             "in years since baseline; are these days or "
                                             "months?"))


#: the checks in the order they run; a later check sees the earlier ones' rejections
_CHECKS: tuple[Callable[[_Run], None], ...] = (
    _check_layout,
    _check_value_columns,
    _parse_visit_rows,
    _parse_outcome_rows,
    _resolve_baselines,
    _resolve_visit_times,
    _resolve_outcome_times,
    _check_visits_in_follow_up,
    _check_sex,
    _check_time_unit,
)


def _result(run: _Run) -> ValidatedCohort:
    """The accepted records (visits by patient and time) and every rejection and warning."""
    vcol, ocol = run.vcol, run.ocol
    v_rejected, v_warnings = vcol.finish(run.n_values)
    o_rejected, o_warnings = ocol.finish(Counter())
    accepted_v = [v for v in run.vrecs if v.row not in vcol.rejected]
    accepted_o = [o for o in run.orecs.values() if o.row not in ocol.rejected]
    accepted_v.sort(key=lambda v: (v.key, v.time_years))
    return ValidatedCohort(
        visits_file=run.visits.name, outcomes_file=run.outcomes.name,
        visits=accepted_v, outcomes=accepted_o,
        value_columns=[run.aliases.get(c, (c,))[0] for c in run.value_cols],
        categorical=run.categorical, rejected=v_rejected + o_rejected,
        warnings=run.warnings + v_warnings + o_warnings, sex=run.sex,
        baselines={k: b for k, b in run.baselines.items()},
    )
