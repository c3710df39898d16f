"""Mask review use cases: list the stored masks, reject or restore one organ of an
automatic mask (``Permission.REVIEW_MASKS``, audited ``mask_reject`` / ``mask_restore``
before the write). The work is :mod:`analytics.masks_review`'s."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from analytics import masks_review
from analytics.auth import Permission
from analytics.usecases.context import Context, audited, authorize

__all__ = ["MaskReviewRequest", "list_masks", "reject_mask", "restore_mask"]


@dataclass(frozen=True)
class MaskReviewRequest:
    """One organ of the automatic mask of a stored series, and why."""

    series_uid: str
    organ: str
    reason: str | None = None


def list_masks(ctx: Context, series_uid: str | None = None) -> list[dict[str, Any]]:
    """Every stored mask with the status of each organ (a read: no audit record).

    Raises
    ------
    PermissionDeniedError
        If the actor may not view pseudonymised data.
    """
    authorize(ctx, Permission.VIEW_PSEUDONYMISED, "view_cohort")
    return masks_review.list_masks(ctx.store, series_uid)


def reject_mask(ctx: Context, req: MaskReviewRequest) -> dict[str, Any]:
    """Reject the automatic mask of one organ: its numbers are withheld everywhere.

    Raises
    ------
    PermissionDeniedError
        If the actor may not review masks (refusal audited).
    StoreError
        Unknown series, no automatic mask or organ, already rejected, or a bad reason.
    """
    actor = authorize(ctx, Permission.REVIEW_MASKS, "mask_reject")
    return masks_review.reject_mask(ctx.store, actor.username, req.series_uid, req.organ,
                                    req.reason or "",
                                    step=functools.partial(audited, ctx, "mask_reject"))


def restore_mask(ctx: Context, req: MaskReviewRequest) -> dict[str, Any]:
    """Lift the active rejection of the automatic mask of one organ.

    Raises
    ------
    PermissionDeniedError
        If the actor may not review masks (refusal audited).
    StoreError
        Unknown series, or no active rejection of that organ.
    """
    actor = authorize(ctx, Permission.REVIEW_MASKS, "mask_restore")
    return masks_review.restore_mask(ctx.store, actor.username, req.series_uid, req.organ,
                                     req.reason,
                                     step=functools.partial(audited, ctx, "mask_restore"))
