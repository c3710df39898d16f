"""A clinician's review of automatic masks: reject one organ (numbers withheld), restore it.

A rejection names the automatic mask the latest feature run measured on, one organ in it,
who, when and why. While it is active, every stored feature that depends on that organ
and was computed on that mask has no value, source ``rejected`` and the reason; the value
and provenance it had are kept in its flags (``rejection``) so that a restore puts them
back. Because the stored rows change, every reader (features export, cohort table used
for training and prediction, Patient page) withholds the numbers without knowing about
rejections. Re-running extraction that finds the same mask applies the rejection again
(:func:`apply_rejections` from the batch writer); a new extractor version gives a new
mask, which is not rejected until a clinician looks at it.

Who may review (:attr:`~analytics.auth.Permission.REVIEW_MASKS`) and the audit record
written before each write (``mask_reject``, ``mask_restore``) belong to the use cases in
:mod:`analytics.usecases.mask_review`, which pass their audited step as ``step``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from analytics import audit
from analytics.errors import StoreError
from analytics.features.registry import RADIOMICS_PREFIX, REJECTED
from analytics.names import clean_name
from analytics.store import mask_reviews as repo
from analytics.store.db import Store
from analytics.store.features import StoredMask, latest_auto_mask_in

__all__ = ["MAX_REASON", "apply_rejections", "list_masks", "organ_status", "organs_of_feature",
           "reject_mask", "restore_mask"]

#: longest reason accepted (it is written to the audit trail, which takes no free text)
MAX_REASON = 200


def organs_of_feature(name: str) -> tuple[str, ...]:
    """The organ masks feature ``name`` is computed from (radiomics: its region)."""
    from analytics.features.extract import _depends_on

    if name.startswith(RADIOMICS_PREFIX):
        roi = name.removeprefix(RADIOMICS_PREFIX).split("_", 1)[0]
        return (roi,) if roi in ("liver", "spleen") else ()
    return _depends_on(name)


def _rejected_reason(organ: str, reason: str) -> str:
    return f"automatic {organ} mask rejected by a clinician: {reason}"


def apply_rejections(s, series_id: int) -> int:
    """Bring the series' stored features in line with its active rejections.

    A feature computed on a rejected mask and depending on the rejected organ loses its
    value (kept in ``flags["rejection"]``); one whose rejection was lifted gets it back.
    Idempotent. Returns how many feature rows changed.
    """
    active = repo.active_rejections(s, series_id)
    changed = 0
    for f in repo.feature_states(s, series_id):
        hit = next(((organ, active[(f.mask_id, organ)]) for organ in organs_of_feature(f.name)
                    if (f.mask_id, organ) in active), None)
        flags = dict(f.flags or {})
        kept = flags.get("rejection")
        if hit is not None:
            if kept is None:
                kept = {"value": f.value, "mask_source": flags.get("mask_source"),
                        "reason": flags.get("reason")}
            new = {**flags, "rejection": kept, "mask_source": REJECTED,
                   "reason": _rejected_reason(*hit)}
            if new != flags or f.value is not None:
                repo.set_feature_state(s, f.id, None, new)
                changed += 1
        elif kept is not None:
            flags.pop("rejection")
            for k in ("mask_source", "reason"):
                if kept.get(k) is None:
                    flags.pop(k, None)
                else:
                    flags[k] = kept[k]
            repo.set_feature_state(s, f.id, kept.get("value"), flags or None)
            changed += 1
    return changed


def _clean_reason(reason: object) -> str:
    try:
        text = clean_name(reason, "reason")
    except ValueError as e:
        raise StoreError(str(e), hint="say in a few words why the outline is wrong") from None
    if len(text) > MAX_REASON:
        raise StoreError(f"reason: {len(text)} characters; at most {MAX_REASON}",
                         hint="say in a few words why the outline is wrong")
    return text


def _series_and_mask(s, series_uid: str) -> tuple[int, str, StoredMask]:
    """The series id, its patient's pseudonym and the automatic mask its latest run
    measured."""
    row = repo.series_with_patient(s, series_uid)
    if row is None:
        raise StoreError(f"series {series_uid}: not in the store",
                         hint="list the masks with: hepatrack masks list")
    series_id, pseudonym = row
    mask = latest_auto_mask_in(s, series_id)
    if mask is None:
        raise StoreError(f"series {series_uid}: its latest feature run used no automatic mask",
                         hint="only automatic masks can be rejected")
    return series_id, pseudonym, mask


def _check_organ(mask: StoredMask, organ: str, series_uid: str) -> None:
    if organ not in (mask.segments or {}):
        have = ", ".join(sorted(mask.segments or {})) or "none"
        raise StoreError(f"series {series_uid}: the automatic mask has no {organ!r} "
                         f"(it holds: {have})")


def reject_mask(store: Store, by: str, series_uid: str, organ: str, reason: str, *,
                step: Callable[..., AbstractContextManager[Any]] = audit.unaudited
                ) -> dict[str, Any]:
    """Reject the automatic ``organ`` mask of ``series_uid``: its numbers are withheld.

    Parameters
    ----------
    store
        The open store.
    by
        The username of who rejects (kept with the rejection).
    series_uid
        The (stored) series whose latest feature run measured the mask.
    organ
        ``liver``, ``spleen`` ... (an organ of that automatic mask).
    reason
        Why, in a few words (at most :data:`MAX_REASON` characters, no control characters).
    step
        Called with the audit record's fields (``patient``, ``uids``, ``detail``) around
        the write.

    Returns
    -------
    dict
        ``series_uid``, ``organ``, ``mask_id``, ``reason``, ``features_withheld``.

    Raises
    ------
    StoreError
        Unknown series, no automatic mask or organ, already rejected, or a bad reason.
    """
    text = _clean_reason(reason)
    with store.session() as s:
        series_id, pseudonym, mask = _series_and_mask(s, series_uid)
        _check_organ(mask, organ, series_uid)
        if (mask.id, organ) in repo.active_rejections(s, series_id):
            raise StoreError(f"series {series_uid}: the automatic {organ} mask is already "
                             "rejected", hint=f"restore it first: hepatrack masks restore "
                                              f"--series {series_uid} --organ {organ}")
        mask_id = mask.id
    detail = {"organ": organ, "mask_id": mask_id, "reason": text}
    with step(patient=pseudonym, uids=[series_uid], detail=detail), store.session() as s:
        repo.add_rejection(s, mask_id, organ, text, by)
        n = apply_rejections(s, repo.series_of_mask(s, mask_id))
    return {"series_uid": series_uid, "organ": organ, "mask_id": mask_id, "reason": text,
            "features_withheld": n}


def restore_mask(store: Store, by: str, series_uid: str, organ: str,
                 reason: str | None = None, *,
                 step: Callable[..., AbstractContextManager[Any]] = audit.unaudited
                 ) -> dict[str, Any]:
    """Lift the active rejection of the automatic ``organ`` mask of ``series_uid``
    (``by``: the username of who restores; ``step`` as in :func:`reject_mask`).

    Returns
    -------
    dict
        ``series_uid``, ``organ``, ``mask_id``, ``features_restored``.

    Raises
    ------
    StoreError
        Unknown series, or no active rejection of that organ.
    """
    text = _clean_reason(reason) if reason else None
    row = repo.active_rejection(store, series_uid, organ)
    if row is None:
        raise StoreError(f"series {series_uid}: no active rejection of its automatic "
                         f"{organ} mask", hint="list them with: hepatrack masks list")
    detail = {"organ": organ, "mask_id": row.mask_id, "reason": text}
    with step(patient=row.pseudonym, uids=[series_uid], detail=detail), \
            store.session() as s:
        repo.restore_rejections(s, row.mask_id, organ, by, text)
        n = apply_rejections(s, row.series_id)
    return {"series_uid": series_uid, "organ": organ, "mask_id": row.mask_id,
            "features_restored": n}


def organ_status(segments: dict[str, Any], rejected: dict[str, str]) -> dict[str, str]:
    """Organ -> ``measured``, ``withheld: <reason>`` or ``rejected: <reason>``."""
    out = {}
    for organ, info in (segments or {}).items():
        if organ in rejected:
            out[organ] = f"rejected: {rejected[organ]}"
        elif isinstance(info, dict) and info.get("withheld"):
            out[organ] = f"withheld: {info['withheld']}"
        else:
            out[organ] = "measured"
    return out


def list_masks(store: Store, series_uid: str | None = None) -> list[dict[str, Any]]:
    """Every stored mask (delivered and automatic), one dict each, oldest first.

    Keys: ``series_uid``, ``patient``, ``mask_id``, ``format``, ``automatic``, ``method``,
    ``organs``, ``status`` (organ -> ``measured`` / ``withheld: …`` / ``rejected: …`` for
    automatic masks, ``delivered`` for the others), ``stored`` (a file is kept).
    """
    out = []
    for listing in repo.list_masks(store, series_uid):
        m = listing.mask
        organs = sorted(m.segments)
        status = (organ_status(m.segments, listing.rejected) if m.automatic
                  else dict.fromkeys(organs, "delivered"))
        out.append({"series_uid": listing.series_uid, "patient": listing.pseudonym,
                    "mask_id": m.id, "format": m.format, "automatic": m.automatic,
                    "method": m.method, "organs": organs, "status": status,
                    "stored": bool(m.path)})
    return out
