"""``hepatrack masks list | reject | restore``: review of automatic masks.

``reject`` and ``restore`` are recorded under ``--user``, an account whose role may review
masks (clinician); any other account, a disabled one or an unknown name is refused (and
the refusal audited). ``list`` prints every stored mask with the status of each organ.
"""

from __future__ import annotations

import argparse

from analytics import masks_review
from analytics.audit import SYSTEM, Actor
from analytics.cli import CommandResult, command
from analytics.config import Settings
from analytics.errors import AuthError
from analytics.store import open_store


def _actor(store, username: str) -> Actor:
    from analytics.auth import find_user

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
            rows = masks_review.list_masks(store, SYSTEM, args.series)
            lines = [f"{r['series_uid']}  {r['patient']}  {r['format']:<8} "
                     f"{'automatic ' + str(r['method']) if r['automatic'] else 'delivered'}  "
                     + "; ".join(f"{o}: {st}" for o, st in r["status"].items())
                     for r in rows]
            return CommandResult(rows, "\n".join(lines) or "no masks stored")
        actor = _actor(store, args.user)
        if args.masks_command == "reject":
            out = masks_review.reject_mask(store, actor, args.series, args.organ, args.reason)
            return CommandResult(out, f"rejected the automatic {args.organ} mask of "
                                      f"{args.series}: {out['features_withheld']} values "
                                      "withheld")
        out = masks_review.restore_mask(store, actor, args.series, args.organ, args.reason)
        return CommandResult(out, f"restored the automatic {args.organ} mask of "
                                  f"{args.series}: {out['features_restored']} values back")
    finally:
        store.dispose()
