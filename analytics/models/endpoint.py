"""The endpoint of a landmark model: the events of interest and the competing causes.

:func:`resolve_events` reads them from the cohort's outcomes (by default every observed
event except transplant, which is a competing risk); :class:`EventSpec` tells the cause
each observed event belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analytics.cohort_types import CENSORED
from analytics.errors import ModelError

__all__ = ["DEFAULT_COMPETING", "MIN_CAUSE_EVENTS", "EventSpec", "resolve_events"]

#: events treated as competing risks, not as part of the default endpoint
DEFAULT_COMPETING = frozenset({"transplant"})
#: competing causes with fewer events are pooled into one ``other`` cause
MIN_CAUSE_EVENTS = 10


@dataclass(frozen=True)
class EventSpec:
    """The endpoint: events of interest (one combined cause) and competing causes.

    ``competing`` maps a cause name to the cohort event names it pools.
    """

    of_interest: tuple[str, ...]
    competing: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ",".join(self.of_interest)

    @property
    def causes(self) -> list[str]:
        """Cause names: ``"interest"`` first, then the competing causes."""
        return ["interest", *self.competing]

    def cause_of(self, event: str) -> str | None:
        """The cause an observed event belongs to; None for censoring."""
        if event == CENSORED:
            return None
        if event in self.of_interest:
            return "interest"
        for cause, names in self.competing.items():
            if event in names:
                return cause
        return None

    def to_json(self) -> dict[str, Any]:
        return {"of_interest": list(self.of_interest),
                "competing": {k: list(v) for k, v in self.competing.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EventSpec:
        return cls(tuple(d["of_interest"]), {k: tuple(v) for k, v in d["competing"].items()})


def resolve_events(outcomes: pd.DataFrame, requested: str | list[str] | None) -> EventSpec:
    """Decide the endpoint and its competing causes.

    Parameters
    ----------
    outcomes
        The cohort's outcomes (``patient``, ``duration``, ``event``).
    requested
        Event names of interest (``"death,transplant"`` is one combined endpoint), or
        None for the default: every observed non-censored event except ``transplant``,
        with transplant a competing risk (it ends the natural history it would censor).

    Returns
    -------
    EventSpec
        Every other observed event becomes a competing cause; causes with fewer than
        :data:`MIN_CAUSE_EVENTS` events are pooled into ``other``.

    Raises
    ------
    ModelError
        If a requested event never occurs in the cohort, or no event of interest occurs.
    """
    counts = outcomes["event"].astype(str).value_counts()
    observed = sorted(e for e in counts.index if e != CENSORED)
    if isinstance(requested, str):
        requested = [e.strip() for e in requested.split(",") if e.strip()]
    if requested:
        unknown = [e for e in requested if e not in observed]
        if unknown:
            raise ModelError(f"--event {','.join(unknown)}: not an event in the cohort "
                             f"outcomes (observed events: {', '.join(observed) or 'none'})")
        interest = tuple(dict.fromkeys(requested))
    else:
        interest = tuple(e for e in observed if e not in DEFAULT_COMPETING)
        if not interest:
            raise ModelError("outcomes: no event other than transplant/censored; name the "
                             f"endpoint with --event (observed: {', '.join(observed) or 'none'})")
    competing: dict[str, tuple[str, ...]] = {}
    small: list[str] = []
    for e in observed:
        if e in interest:
            continue
        (competing.__setitem__(e, (e,)) if counts[e] >= MIN_CAUSE_EVENTS else small.append(e))
    if small:
        name = "other" if "other" not in competing else "other_pooled"
        competing[name] = tuple(small)
    return EventSpec(of_interest=interest, competing=competing)
