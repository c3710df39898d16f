"""Studies held as identity conflicts: the comparison, the hold rows and their resolution.

A study whose Patient ID names a stored patient but whose name, birth date, sex or issuer
of patient ID disagree with that patient's is never filed under it silently
(RELIABILITY.md 38). Its instances are stored (:mod:`analytics.store.instances`), its study
row is filed under nobody (``studies.patient_id`` empty) and an ``identity_holds`` row
keeps what was received until a clinician says whether it is the same patient or another.

Names are compared in a normalised form (case, spaces, trailing empty components and
Unicode forms ignored), so ``MUELLER^MICHAEL`` and ``Mueller^Michael^`` agree while another
family name does not. A field known on one side only is not a disagreement: it is unknown.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.errors import StoreError
from analytics.store.db import Store
from analytics.store.schema import IdentityHold, IdentityMap, Patient, Study

__all__ = ["FIELD_LABELS", "HeldStudy", "IdentityFacts", "Resolution", "differing_fields",
           "list_holds", "normal_name", "resolve_hold"]

HELD, SAME, DIFFERENT = "held", "same", "different"
#: identity field -> how reports name it (never its value)
FIELD_LABELS = {"name": "name", "birth_date": "birth date", "sex": "sex",
                "issuer": "issuer of patient ID"}


@dataclass(frozen=True)
class IdentityFacts:
    """The identity fields compared between a study and the stored patient."""

    patient_name: str | None = None
    birth_date: dt.date | None = None
    sex: str | None = None
    issuer: str | None = None


def normal_name(name: str | None) -> tuple[str, ...]:
    """A DICOM person name (``Family^Given^Middle^Prefix^Suffix``) as compared.

    NFKC, case-folded, inner spaces collapsed, only the alphabetic group (before ``=``),
    trailing empty components dropped.
    """
    text = unicodedata.normalize("NFKC", name or "").split("=", 1)[0]
    parts = [" ".join(p.casefold().split()) for p in text.split("^")]
    while parts and not parts[-1]:
        parts.pop()
    return tuple(parts)


def _names_differ(a: str | None, b: str | None) -> bool:
    """Family and given names must agree; a middle name, prefix or suffix only when both
    sides give it (exports often drop them)."""
    na, nb = normal_name(a), normal_name(b)
    if not na or not nb:
        return False
    for k in range(max(len(na), len(nb))):
        x = na[k] if k < len(na) else ""
        y = nb[k] if k < len(nb) else ""
        if (k < 2 or (x and y)) and x != y:
            return True
    return False


def differing_fields(stored: IdentityFacts, received: IdentityFacts) -> list[str]:
    """Names (keys of :data:`FIELD_LABELS`) of the fields that disagree, in that order."""
    out = []
    if _names_differ(stored.patient_name, received.patient_name):
        out.append("name")
    if stored.birth_date and received.birth_date and stored.birth_date != received.birth_date:
        out.append("birth_date")
    if stored.sex and received.sex and stored.sex.upper() != received.sex.upper():
        out.append("sex")
    if (stored.issuer and received.issuer
            and " ".join(stored.issuer.casefold().split())
            != " ".join(received.issuer.casefold().split())):
        out.append("issuer")
    return out


def stored_facts(s: Session, patient_id: int) -> IdentityFacts:
    """The stored patient's identity fields (its identity row and its sex)."""
    idm = s.execute(select(IdentityMap).where(IdentityMap.patient_id == patient_id)).scalar()
    sex = s.execute(select(Patient.sex).where(Patient.id == patient_id)).scalar()
    if idm is None:
        return IdentityFacts(sex=sex)
    return IdentityFacts(idm.patient_name, idm.birth_date, sex, idm.issuer)


def open_hold_of_study(s: Session, study_uid: str) -> IdentityHold | None:
    """The unresolved hold of a stored study, None if it is not held."""
    return s.execute(select(IdentityHold).join(Study, IdentityHold.study_id == Study.id)
                     .where(Study.study_uid == study_uid, IdentityHold.status == HELD)
                     ).scalar_one_or_none()


def add_hold(s: Session, study_id: int, patient_id: int, real_patient_id: str,
             received: IdentityFacts, date_shift_days: int, fields: list[str]) -> IdentityHold:
    """Write the hold row of a study just stored under nobody (in the caller's transaction)."""
    hold = IdentityHold(
        study_id=study_id, patient_id=patient_id, real_patient_id=real_patient_id[:128],
        patient_name=received.patient_name and received.patient_name[:256],
        birth_date=received.birth_date, sex=received.sex,
        issuer=received.issuer and received.issuer[:128], date_shift_days=date_shift_days,
        fields=list(fields), status=HELD)
    s.add(hold)
    s.flush()
    return hold


@dataclass(frozen=True)
class HeldStudy:
    """One hold as listed. ``stored`` and ``received`` (identity fields, real values) are
    filled only for identified views; ``fields`` names what differs, never values."""

    hold_id: int
    patient: str  # pseudonym of the stored patient of that Patient ID
    study_uid: str
    study_date: dt.date | None  # shifted (stored) date
    n_series: int
    fields: list[str]
    status: str
    resolved_patient: str | None = None
    stored: dict[str, Any] | None = None
    received: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"hold_id": self.hold_id, "patient": self.patient, "study_uid": self.study_uid,
               "study_date": self.study_date.isoformat() if self.study_date else None,
               "series": self.n_series, "fields": list(self.fields),
               "differs": ", ".join(FIELD_LABELS[f] for f in self.fields),
               "status": self.status, "resolved_patient": self.resolved_patient}
        if self.stored is not None:
            out.update(stored=self.stored, received=self.received)
        return out


def _facts_dict(f: IdentityFacts, patient_id: str | None) -> dict[str, Any]:
    return {"patient_id": patient_id, "patient_name": f.patient_name,
            "birth_date": f.birth_date.isoformat() if f.birth_date else None,
            "sex": f.sex, "issuer": f.issuer}


def list_holds(store: Store, *, identified: bool, open_only: bool = True) -> list[HeldStudy]:
    """Held studies, oldest first (``open_only``: the unresolved ones).

    ``identified`` adds the stored and the received identity fields (real values).
    """
    with store.session() as s:
        q = select(IdentityHold).order_by(IdentityHold.id)
        if open_only:
            q = q.where(IdentityHold.status == HELD)
        out = []
        for h in s.execute(q).scalars():
            study = s.get(Study, h.study_id)
            pseudo = s.get(Patient, h.patient_id).pseudonym
            other = (s.get(Patient, h.resolved_patient_id).pseudonym
                     if h.resolved_patient_id else None)
            stored = received = None
            if identified:
                real = s.execute(select(IdentityMap.real_patient_id)
                                 .where(IdentityMap.patient_id == h.patient_id)).scalar()
                stored = _facts_dict(stored_facts(s, h.patient_id), real)
                received = _facts_dict(_received(h), h.real_patient_id)
            out.append(HeldStudy(h.id, pseudo, study.study_uid, study.study_date,
                                 len(study.series), list(h.fields or []), h.status, other,
                                 stored, received))
    return out


def _received(h: IdentityHold) -> IdentityFacts:
    return IdentityFacts(h.patient_name, h.birth_date, h.sex, h.issuer)


@dataclass(frozen=True)
class Resolution:
    """What a resolution did: the study is now filed under ``patient``."""

    hold_id: int
    decision: str
    patient: str
    new_patient: bool
    series_uids: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"hold_id": self.hold_id, "decision": self.decision, "patient": self.patient,
                "new_patient": self.new_patient, "series": list(self.series_uids)}


#: (Patient ID, n, stored patient's pseudonym) -> (pseudonym, identity key) of the n-th
#: patient sharing one Patient ID (n >= 2)
Mint = Callable[[str, int, str], tuple[str, str]]


def resolve_hold(store: Store, hold_id: int, decision: str, username: str, *,
                 mint: Mint, now: dt.datetime) -> Resolution:
    """File a held study: ``same`` under the stored patient, ``different`` under another.

    ``different`` files it under an earlier "different" patient of the same Patient ID
    whose identity agrees with the study's, else under a new patient whose pseudonym and
    identity key ``mint(real Patient ID, n, stored pseudonym)`` gives (the first unused ``n`` from 2). The
    new patient keeps the date shift the study's files were stored with, so its intervals
    hold. One transaction.

    Raises
    ------
    StoreError
        Unknown hold, already resolved, or a decision other than same/different.
    """
    if decision not in (SAME, DIFFERENT):
        raise StoreError(f"identity hold {hold_id}: decision {decision!r} is not one of "
                         f"{SAME}, {DIFFERENT}")
    with store.session() as s:
        hold = s.get(IdentityHold, hold_id)
        if hold is None:
            raise StoreError(f"identity hold {hold_id}: no such held study",
                             hint="list them with: hepatrack identity list")
        if hold.status != HELD:
            raise StoreError(f"identity hold {hold_id}: already resolved ({hold.status})")
        study = s.get(Study, hold.study_id)
        new = False
        if decision == SAME:
            target = s.get(Patient, hold.patient_id)
        else:
            target = _other_patient(s, hold)
            if target is None:
                stored = s.get(Patient, hold.patient_id).pseudonym
                target, new = _new_patient(s, hold, mint, stored), True
            hold.resolved_patient_id = target.id
        study.patient_id = target.id
        hold.status, hold.resolved_by, hold.resolved_at = decision, username[:128], now
        s.flush()
        return Resolution(hold.id, decision, target.pseudonym, new,
                          sorted(se.series_uid for se in study.series))


def _other_patient(s: Session, hold: IdentityHold) -> Patient | None:
    """An earlier "different" patient of the same Patient ID whose identity agrees."""
    rows = s.execute(select(IdentityMap.patient_id)
                     .where(IdentityMap.real_patient_id == hold.real_patient_id,
                            IdentityMap.patient_id != hold.patient_id)).scalars().all()
    for pid in rows:
        if not differing_fields(stored_facts(s, pid), _received(hold)):
            return s.get(Patient, pid)
    return None


def _new_patient(s: Session, hold: IdentityHold, mint: Mint, stored: str) -> Patient:
    for n in range(2, 1000):
        pseudonym, key = mint(hold.real_patient_id, n, stored)
        taken = s.execute(select(Patient.id).where(Patient.pseudonym == pseudonym)).first()
        taken = taken or s.execute(select(IdentityMap.id).where(
            IdentityMap.real_patient_id_key == key)).first()
        if not taken:
            break
    else:  # pragma: no cover - a thousand patients sharing one ID
        raise StoreError(f"identity hold {hold.id}: no free pseudonym for another patient")
    birth_year = ((hold.birth_date + dt.timedelta(days=hold.date_shift_days)).year
                  if hold.birth_date else None)
    patient = Patient(pseudonym=pseudonym, sex=hold.sex, birth_year=birth_year,
                      source="imaging")
    s.add(patient)
    s.flush()
    s.add(IdentityMap(patient_id=patient.id, real_patient_id=hold.real_patient_id,
                      real_patient_id_key=key, patient_name=hold.patient_name,
                      birth_date=hold.birth_date, date_shift_days=hold.date_shift_days,
                      issuer=hold.issuer))
    s.flush()
    return patient
