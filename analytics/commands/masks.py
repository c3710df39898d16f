"""``hepatrack masks list | reject | restore``: review of automatic masks.

``reject`` and ``restore`` are recorded under ``--user``, an account whose role may review
masks (clinician); any other account, a disabled one or an unknown name is refused (and
the refusal audited). ``list`` prints every stored mask with the status of each organ.
"""

from __future__ import annotations

import argparse

from analytics.audit import Actor
from analytics.auth import find_user
from analytics.cli import CommandResult, command
from analytics.config import Settings
from analytics.errors import AuthError
from analytics.store import open_store
from analytics.usecases.context import Context
from analytics.usecases.mask_review import (
    MaskReviewRequest,
    list_masks,
    reject_mask,
    restore_mask,
)


def _actor(store, username: str) -> Actor:
    user = find_user(store, username)
    if user is None or user.disabled:
        raise AuthError(f"--user {username}: no enabled account of that name",
                        hint="add one with: hepatrack users add NAME --role clinician")
    return Actor(user.username, user.role, "cli")


@command("masks")
def masks_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    try:
        if args.masks_command == "list":
            rows = list_masks(Context.cli(store, settings), args.series)
            lines = [f"{r['series_uid']}  {r['patient']}  {r['format']:<8} "
                     f"{'automatic ' + str(r['method']) if r['automatic'] else 'delivered'}  "
                     + "; ".join(f"{o}: {st}" for o, st in r["status"].items())
                     for r in rows]
            return CommandResult(rows, "\n".join(lines) or "no masks stored")
        ctx = Context(_actor(store, args.user), store, settings)
        req = MaskReviewRequest(args.series, args.organ, args.reason)
        if args.masks_command == "reject":
            out = reject_mask(ctx, req)
            return CommandResult(out, f"rejected the automatic {args.organ} mask of "
                                      f"{args.series}: {out['features_withheld']} values "
                                      "withheld")
        out = restore_mask(ctx, req)
        return CommandResult(out, f"restored the automatic {args.organ} mask of "
                                  f"{args.series}: {out['features_restored']} values back")
    finally:
        store.dispose()
