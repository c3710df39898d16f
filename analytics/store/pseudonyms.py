"""Which patient pseudonyms the store holds, and stored dates as a viewer sees them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import select

from analytics.store._repo_util import shift_date
from analytics.store.db import Store
from analytics.store.schema import IdentityMap, Patient

__all__ = ["known_pseudonyms", "view_dates"]


def known_pseudonyms(store: Store, pseudonyms: Iterable[str]) -> set[str]:
    """The subset of ``pseudonyms`` that name a stored patient."""
    wanted = list(pseudonyms)
    with store.session() as s:
        return set(s.execute(select(Patient.pseudonym)
                             .where(Patient.pseudonym.in_(wanted))).scalars())


def view_dates(store: Store, pseudonyms: Sequence[str | None],
               dates: Sequence[dt.date | None], *, identified: bool
               ) -> list[dt.date | None]:
    """Stored (shifted) dates of the given patients as the viewer sees them.

    Parameters
    ----------
    store
        The open store.
    pseudonyms, dates
        One patient and one stored date per position (None where unknown).
    identified
        True gives the real dates (``stored - date_shift_days`` of each patient's
        identity); False returns the stored dates and reads nothing from the identity map.

    Returns
    -------
    list
        The dates in the order given.
    """
    if not identified:
        return list(dates)
    wanted = sorted({p for p in pseudonyms if p})
    shifts: dict[str, int] = {}
    if wanted:
        with store.session() as s:
            shifts = {r.pseudonym: int(r.date_shift_days or 0) for r in s.execute(
                select(Patient.pseudonym, IdentityMap.date_shift_days)
                .join(IdentityMap, IdentityMap.patient_id == Patient.id)
                .where(Patient.pseudonym.in_(wanted)))}
    return [shift_date(d, shifts.get(p or "", 0), True) for p, d in
            zip(pseudonyms, dates, strict=True)]
