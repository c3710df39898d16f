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
    if "synth" in out:
        c = out["synth"]
        lines.append(f"  cohort: {c['patients']} patients; {c['dicom_patients']} with CT + SEG "
                     f"({c['series']} series), {c['measured_patients']} with imported "
                     "imaging measurements")
    if out.get("stages"):
        cpu = out.get("stages_cpu") or {}
        lines.append("  stages (s, CPU s): " + ", ".join(
            f"{k} {v} ({cpu.get(k, '?')})" for k, v in out["stages"].items()))
    if "train" in out:
        t = out["train"]
        oracle = (f", oracle {t['oracle_c_index']:.3f}"
                  if t.get("oracle_c_index") is not None else "")
        lines.append(f"  model {t['model_id']}: cross-validated C-index "
                     f"{t['c_index']:.3f}{oracle}")
        for key, part in (t.get("imaging") or {}).items():
            who = "all patients" if key == "all" else "patients with scans"
            closed = (f"; imaging closes {100 * part['gap_closed']:.0f} % of the gap to the "
                      f"oracle {part['oracle']:.3f}" if part.get("gap_closed") is not None
                      else "")
            lines.append(f"    {who} ({part['patients']}): C-index with imaging "
                         f"{part['with_imaging']:.3f}, without {part['without_imaging']:.3f}"
                         f"{closed}")
    lines.append("Sign in at http://localhost:8501 with one of these demo accounts:")
    lines += [f"  {u:<18} {a['role']:<11} password: {a['password']}"
              for u, a in out["accounts"].items()]
    lines.append(f"(also in {out['home']}/demo_credentials.txt)")
    return CommandResult(out, "\n".join(lines))
