"""The definition of one column, and the words its fields take."""

from __future__ import annotations

from dataclasses import dataclass, field

HIGHER_IS_WORSE = "higher is worse"
LOWER_IS_WORSE = "lower is worse"
NEUTRAL = "context dependent"

CT = "CT"
MR = "MR"

#: where a column's values come from
IMAGING = "imaging"  # computed from a scan series (analytics.features)
LAB = "lab"  # a numeric visits.csv column: labs, age, any generic measurement
CODED = "coded"  # a visits.csv column with a fixed set of codes
DERIVED = "derived"  # computed from other columns: clinical scores, history features
RECORD = "record"  # identifiers, dates and counts of the store's tables (not a feature)
SOURCES = (IMAGING, LAB, CODED, DERIVED, RECORD)

#: units that are not shown next to a value: dimensionless, a category code, none
HIDDEN_UNITS = frozenset({"", "1", "code", "ratio"})


@dataclass(frozen=True)
class Column:
    """Everything HepaTrack knows about one column name.

    Attributes
    ----------
    name
        Stable machine name (column of the cohort table, the exports and the model).
    label
        Human label, without the unit; the same on every page, figure and report.
    unit
        Unit string (``"mL"``, ``"HU"``, ``"mg/dL"``, ``"1"`` for dimensionless,
        ``"code"`` for categorical codes, ``""`` for none).
    source
        ``"imaging"``, ``"lab"``, ``"coded"``, ``"derived"`` or ``"record"``.
    direction
        ``"higher is worse"``, ``"lower is worse"`` or ``"context dependent"``.
    definition
        How it is measured, with the citation for any range or threshold.
    modalities
        Modalities where an imaging feature is defined (``("CT",)``, ``("CT", "MR")``).
    normal_range
        ``(low, high)`` in ``unit`` where a published source gives one; either end may be
        None.
    plausible_range
        ``(low, high)``: a visits.csv value outside it is imported with a warning.
    categorical
        True for coded categories (the codes are listed in ``codes``).
    codes
        For categorical columns: code -> meaning.
    requires
        Conditions for the value to be computed (e.g. ``("unenhanced",)``).
    unit_aliases
        Other-unit spellings of the column in a visits file: name -> factor, value in
        this column's unit = value / factor.
    thresholds
        Published decision thresholds in ``unit``: ``(value, meaning)``, the meaning
        holding at or above the value (e.g. ``(5.0, "suggests cirrhosis")``).
    """

    name: str
    label: str
    unit: str
    source: str
    direction: str = NEUTRAL
    definition: str = ""
    modalities: tuple[str, ...] = ()
    normal_range: tuple[float | None, float | None] | None = None
    plausible_range: tuple[float, float] | None = None
    categorical: bool = False
    codes: dict[object, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    unit_aliases: dict[str, float] = field(default_factory=dict)
    thresholds: tuple[tuple[float, str], ...] = ()

    @property
    def shown_unit(self) -> str:
        """The unit as shown beside a value: empty for dimensionless and coded columns."""
        return "" if self.unit in HIDDEN_UNITS else self.unit

    @property
    def low_is_worse(self) -> bool:
        """True when a low value is the worse one."""
        return self.direction == LOWER_IS_WORSE
