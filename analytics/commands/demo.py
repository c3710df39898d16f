"""``hepatrack demo``: the sample cohort through every stage, then how to log in."""

from __future__ import annotations

import argparse
import sys

from analytics.cli import CommandResult, command
from analytics.config import Settings
from analytics.usecases.demo import run_demo


@command("demo")
def demo_cmd(args: argparse.Namespace, settings: Settings) -> CommandResult:
    def say(msg: str) -> None:
        print(f"demo: {msg}", file=sys.stderr, flush=True)

    out = run_demo(settings, patients=args.patients, seed=args.seed, say=say)
    lines = [f"HepaTrack demo ready in {out['home']} ({out['seconds']} s)."]
    if "train" in out:
        t = out["train"]
        oracle = (f", oracle {t['oracle_c_index']:.3f}"
                  if t.get("oracle_c_index") is not None else "")
        lines.append(f"  model {t['model_id']}: cross-validated C-index "
                     f"{t['c_index']:.3f}{oracle}")
    lines.append("Sign in at http://localhost:8501 with one of these demo accounts:")
    lines += [f"  {u:<18} {a['role']:<11} password: {a['password']}"
              for u, a in out["accounts"].items()]
    lines.append(f"(also in {out['home']}/demo_credentials.txt)")
    return CommandResult(out, "\n".join(lines))
