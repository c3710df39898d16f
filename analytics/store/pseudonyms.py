"""Which patient pseudonyms the store holds."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from analytics.store.db import Store
from analytics.store.schema import Patient

__all__ = ["known_pseudonyms"]


def known_pseudonyms(store: Store, pseudonyms: Iterable[str]) -> set[str]:
    """The subset of ``pseudonyms`` that name a stored patient."""
    wanted = list(pseudonyms)
    with store.session() as s:
        return set(s.execute(select(Patient.pseudonym)
                             .where(Patient.pseudonym.in_(wanted))).scalars())
