"""``hepatrack identity list | resolve``: studies held as identity conflicts.

``list`` prints the held studies by the stored patient's pseudonym and the names of the
fields that differ (the command line has no identified view). ``resolve`` files one under
the stored patient (``--decision same``) or a new patient (``different``), recorded under
``--user``: an enabled account whose role may ingest and see identified data (clinician).
"""

from __future__ import annotations

import argparse

from analytics.cli import CommandResult, command
from analytics.commands.masks import _actor
from analytics.config import Settings
from analytics.store import open_store
from analytics.usecases.context import Context
from analytics.usecases.identity import ResolveRequest, list_held_studies, resolve_held_study


def _line(h) -> str:
    return (f"hold {h.hold_id}  {h.status:9} stored patient {h.patient}  "
            f"{h.study_date.isoformat() if h.study_date else '-':10}  {h.n_series} series  "
            f"differs: {h.as_dict()['differs']}"
            + (f"  -> {h.resolved_patient}" if h.resolved_patient else ""))


@command("identity")
def identity_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    try:
        if args.identity_command == "list":
            held = list_held_studies(Context.cli(store, settings), open_only=not args.all)
            return CommandResult([h.as_dict() for h in held],
                                 "\n".join(_line(h) for h in held)
                                 or "no study is held as an identity conflict")
        ctx = Context(_actor(store, args.user), store, settings)
        out = resolve_held_study(ctx, ResolveRequest(args.hold, args.decision))
        verb = "a new patient" if out.new_patient else "patient"
        return CommandResult(out.as_dict(), f"hold {out.hold_id}: {out.decision} patient; "
                                            f"study filed under {verb} {out.patient}")
    finally:
        store.dispose()
