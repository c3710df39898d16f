"""``hepatrack users`` and ``hepatrack audit`` (the system account acts)."""

from __future__ import annotations

import argparse
import getpass
import sys

from analytics import audit
from analytics.cli import EXIT_INTERNAL, CommandResult, command
from analytics.config import Settings
from analytics.store import open_store
from analytics.usecases import admin
from analytics.usecases.context import Context


@command("users")
def users(args: argparse.Namespace, settings: Settings) -> CommandResult:
    store = open_store(settings)
    ctx = Context.cli(store, settings)
    if args.users_command == "list":
        rows = admin.users(ctx)
        text = "\n".join(f"{r['username']:<24} {r['role']}" for r in rows) or "no users"
        return CommandResult(rows, text)
    password = args.password
    if password is None:
        password = (getpass.getpass("password: ") if sys.stdin.isatty()
                    else sys.stdin.readline().rstrip("\n"))
    admin.add_user(ctx, admin.NewUser(args.username, args.role, password))
    return CommandResult({"username": args.username, "role": args.role},
                         f"created {args.role} {args.username!r}")


@command("audit")
def audit_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    if args.audit_command == "verify" and getattr(args, "file", None):
        report = audit.verify_export(args.file, settings.site_secret())
    else:
        store = open_store(settings)
        try:
            if args.audit_command == "export":
                got = audit.export_trail(store, args.out)
                return CommandResult(got, f"wrote {got['records']} audit records and the "
                                          f"anchor to {got['out']}")
            report = audit.verify(store)
        finally:
            store.dispose()
    payload = {"ok": report.ok, "records": report.records, "problems": report.problems}
    if report.ok:
        return CommandResult(payload, f"audit trail intact: {report.records} records")
    text = f"audit trail BROKEN ({len(report.problems)} problems):\n" + "\n".join(
        report.problems)
    print(text, file=sys.stderr)
    return CommandResult(payload, "", EXIT_INTERNAL)
