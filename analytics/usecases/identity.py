"""Identity conflicts: list the studies held because their identity fields disagree with
the stored patient of their Patient ID, and resolve one (RELIABILITY.md 38).

Listing needs ``Permission.INGEST``; the stored and received names, birth dates, sexes
and issuers are shown only to a role with the identified view (the listing is then
audited as ``view_patient``). Resolving needs both (a clinician: the judgement is made on
the identified fields) and writes one ``identity_resolve`` record before the study is
filed; a study filed under another patient has its stored files carry that patient's
pseudonym. The work is :mod:`analytics.store.identity_holds`'.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics import audit
from analytics.auth import Permission, allowed
from analytics.errors import ConfigError, StoreError
from analytics.ingest.deid import patient_key, patient_pseudonym
from analytics.store import identity_holds, series_admin
from analytics.store.identity_holds import HeldStudy, Resolution
from analytics.usecases.context import Context, audited, authorize

__all__ = ["DECISIONS", "ResolveRequest", "list_held_studies", "resolve_held_study"]

DECISIONS = (identity_holds.SAME, identity_holds.DIFFERENT)


@dataclass(frozen=True)
class ResolveRequest:
    """A held study (``hold_id``) and the clinician's decision: ``same`` or ``different``."""

    hold_id: int
    decision: str


def list_held_studies(ctx: Context, *, open_only: bool = True) -> list[HeldStudy]:
    """The held studies; identity values only for a role with the identified view.

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest (refusal audited).
    AuditError
        If identified values are to be shown and their view cannot be audited.
    """
    actor = authorize(ctx, Permission.INGEST, "view_patient")
    identified = allowed(actor, Permission.VIEW_IDENTIFIED)
    held = identity_holds.list_holds(ctx.store, identified=identified, open_only=open_only)
    if identified and held:  # real identifiers are about to be shown
        audit.record(ctx.store, actor, "view_patient",
                     detail={"what": "identity conflicts", "studies": len(held)})
    return held


def _mint(secret: bytes):
    """The pseudonym and identity key of the n-th patient sharing one Patient ID: keyed
    like every other (an unkeyed name would let anyone confirm a guessed ID)."""
    def mint(real_patient_id: str, n: int, stored_pseudonym: str) -> tuple[str, str]:
        tag = f"{real_patient_id}\x1f{n}"
        if stored_pseudonym == real_patient_id:  # stored without de-identification
            return f"{real_patient_id}~{n}", patient_key(secret, tag)
        return patient_pseudonym(secret, tag), patient_key(secret, tag)
    return mint


def resolve_held_study(ctx: Context, req: ResolveRequest) -> Resolution:
    """File a held study under the stored patient (``same``) or another one
    (``different``: a patient with its own pseudonym), audited ``identity_resolve``.

    Raises
    ------
    PermissionDeniedError
        If the actor may not ingest or may not see identified data (refusal audited).
    StoreError
        Unknown or already resolved hold, or a decision other than same/different.
    AuditError
        If the record cannot be written (the study stays held).
    """
    actor = authorize(ctx, Permission.INGEST, "identity_resolve")
    authorize(ctx, Permission.VIEW_IDENTIFIED, "identity_resolve")
    if req.decision not in DECISIONS:
        raise StoreError(f"identity hold {req.hold_id}: decision {req.decision!r} is not one "
                         f"of {', '.join(DECISIONS)}")
    if ctx.settings is None:
        raise ConfigError("identity conflicts: the site settings (site secret) are needed")
    held = {h.hold_id: h for h in identity_holds.list_holds(ctx.store, identified=False)}
    hold = held.get(req.hold_id)
    if hold is None:
        raise StoreError(f"identity hold {req.hold_id}: no such study waiting for a decision",
                         hint="list them with: hepatrack identity list")
    detail = {"hold_id": req.hold_id, "decision": req.decision, "fields": hold.fields}
    with audited(ctx, "identity_resolve", patient=hold.patient, uids=[hold.study_uid],
                 detail=detail):
        out = identity_holds.resolve_hold(
            ctx.store, req.hold_id, req.decision, actor.username,
            mint=_mint(ctx.settings.site_secret()), now=ctx.clock())
        if out.patient != hold.patient:  # the files name the stored patient: not any more
            series_admin.retag_study(ctx.store, ctx.settings, hold.study_uid, hold.patient,
                                     out.patient)
    return out
