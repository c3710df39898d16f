"""Why a visit gets no score, in one plain sentence, and whether imaging alone can give one.

The training domain (:mod:`analytics.models.domain`) lists every reason a visit is not
assessable in the model's own terms (history columns such as
``bilirubin_mg_dl_worst``); the command line and the JSON keep those. A clinician needs
what is missing and what to add: :func:`plain_reason` folds the findings of one visit
into their clinical features (a lab's last value, trend and worst value are one lab),
named by the vocabulary, with the window in which a lab draw counts for the visit.

:func:`imaging_only_note` says whether the model can score a scan without labs. The
landmark model learns imaging biomarkers beside the labs (a scan history); it has no
version without them, so a scan alone gets no number, and the note says which inputs the
model needs and which imaging biomarkers enter once they are there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from analytics.cohort_types import DEFAULT_LAB_WINDOW_DAYS
from analytics.models.domain import DomainFinding
from analytics.models.history_spec import GLOBAL_FEATURES, FeatureSpec
from analytics.vocabulary import LANDMARK, describe_column, label

if TYPE_CHECKING:
    from analytics.models.predict import LandmarkModel

__all__ = ["imaging_only_note", "plain_reason", "plain_reasons", "required_inputs"]

#: what the patient's record lacks when these are missing (not a lab to draw)
_PATIENT_FACTS = {"age_years": "age", "sex": "sex"}
#: history statistics that exist without any measurement (a slope is 0 before two values)
_ALWAYS_DEFINED = frozenset({"slope", "change", "global", "landmark", "measured",
                             "years_since_scan", "scan_change"})


def _join(items: Sequence[str], last: str = "and") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def _bases(columns: Sequence[str], spec: FeatureSpec) -> list[str]:
    """The clinical features behind history columns, in order, without the global ones."""
    out: list[str] = []
    for c in columns:
        base = spec.source_of(c)[0]
        if base in GLOBAL_FEATURES or base == LANDMARK:
            continue
        if base not in out:
            out.append(base)
    return out


def _missing_clause(bases: list[str], window_days: float) -> str:
    labs = [label(b) for b in bases if b not in _PATIENT_FACTS]
    facts = [_PATIENT_FACTS[b] for b in bases if b in _PATIENT_FACTS]
    patient = f"the patient's {_join(facts)}" if facts else ""
    if labs:
        what = _join(labs)
        add = (f"add {'it' if len(labs) == 1 else 'them'} (measured on or before this "
               f"visit, or up to {window_days:g} days after a scan)")
        if facts:
            add += f" and {patient}"
        return f"{what} {'is' if len(labs) == 1 else 'are'} not on record; {add}"
    return (f"{patient} {'is' if len(facts) == 1 else 'are'} not on record; add "
            f"{'it' if len(facts) == 1 else 'them'}")


def _other_clause(f: DomainFinding) -> str:
    name, unit = describe_column(f.column)
    u = f" {unit}" if unit else ""
    if f.kind == "range" and f.column == LANDMARK:
        return (f"this visit is {f.value:.1f} years after the first one, beyond the "
                f"{f.high:g} years the model was trained on")
    if f.kind == "range":
        return (f"{name} {f.value:.3g}{u} is outside the values the model was trained on "
                f"({f.low:.3g} to {f.high:.3g}{u})")
    if f.kind == "level":
        return f"{name} {f.value} never occurred in the training data"
    if f.kind == "modality":
        return f"the model was not trained on {f.value} scans"
    if f.kind == "undefined":
        return f"some imaging values are not defined for {f.value} scans"
    if f.kind == "phase":
        return f"the model was not trained on the {str(f.value).replace('_', ' ')} phase"
    return f.text


def plain_reason(findings: Sequence[DomainFinding], spec: FeatureSpec,
                 window_days: float = DEFAULT_LAB_WINDOW_DAYS) -> str | None:
    """One sentence saying why a visit gets no score and what to add; None if it gets one.

    Parameters
    ----------
    findings
        The visit's findings (:meth:`TrainingDomain.findings`).
    spec
        The model's history columns (to fold a column into its clinical feature).
    window_days
        Days after a scan within which a lab draw still counts for it.

    Returns
    -------
    str or None
        E.g. ``"No score for this visit: Bilirubin, Albumin and INR are not on record;
        add them (measured on or before this visit, or up to 90 days after a scan)."``
    """
    if not findings:
        return None
    missing = _bases([f.column for f in findings if f.kind == "missing"], spec)
    clauses = [_missing_clause(missing, window_days)] if missing else []
    seen: set[str] = set()
    for f in findings:
        if f.kind == "missing":
            continue
        key = f"{f.kind}:{spec.source_of(f.column)[0] if f.kind == 'range' else f.column}"
        if key not in seen:
            seen.add(key)
            clauses.append(_other_clause(f))
    return f"No score for this visit: {'; '.join(clauses)}."


def plain_reasons(model: LandmarkModel, findings: Sequence[Sequence[DomainFinding]],
                  window_days: float = DEFAULT_LAB_WINDOW_DAYS) -> list[str | None]:
    """:func:`plain_reason` of every row's findings with the model's history columns."""
    spec = model.spec_
    return [plain_reason(f, spec, window_days) for f in findings]


def required_inputs(model: LandmarkModel) -> list[str]:
    """The clinical features the model needs at every visit (the domain's required
    columns folded into their features), in model order."""
    domain, spec = model.domain_, model.spec_
    if domain is None:
        return []
    return _bases([c for c in domain.required
                   if spec.source_of(c)[1] not in _ALWAYS_DEFINED], spec)


def imaging_only_note(model: LandmarkModel) -> str:
    """Whether the model scores a scan without labs, in one sentence.

    The model gives no imaging-only number when it needs anything besides imaging
    biomarkers, age and sex (labs): the note names what it needs and which imaging
    biomarkers enter the score once those are there.
    """
    spec = model.spec_
    needed = [b for b in required_inputs(model)
              if b not in spec.imaging and b not in _PATIENT_FACTS]
    imaging = [label(b) for b in spec.imaging]
    if not needed:
        return ("This model scores a scan from its imaging biomarkers with the patient's "
                "age and sex; no labs are needed.")
    verb = "enters" if len(imaging) == 1 else "enter"
    uses = (f"; once they are added, the scan's {_join(imaging)} {verb} the score" if imaging
            else "; it uses no imaging biomarker, so the scan's measurements are shown "
                 "under Biomarkers over time and do not enter the score")
    return (f"No imaging-only score: this model was trained with "
            f"{_join([label(b) for b in needed])} at every visit and has no version "
            f"without them{uses}.")
