"""Command start-up: ``hepatrack --help``, ingest of one file, features of one series.

Case: this checkout. Baseline: the same commands run from a named git revision before the
start-up work (every command module imported by every call, a LocalCluster of two workers
for one series, both parse workers started one after the other). Both sides run as
subprocesses on the same real CT (TotalSegmentator's example, written as DICOM by
``tests.realdata``), each from a fresh copy of a home where that side ingested it; runs are
interleaved so a slow spell on the shared machine hits both.

    .venv/bin/python benchmarks/startup.py [--baseline REV] [--repeat N]

The features timing includes the extraction itself (the same work on both sides: no mask is
delivered, so both segment automatically); the difference is start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import checkout, compare  # noqa: E402
from tests.realdata import nifti_ct_as_dicom  # noqa: E402

#: the last revision before the start-up work (lazy commands, in-process single series,
#: parse pool sized to the work)
DEFAULT_BASELINE = "5cbd744"



class Side:
    """One code version: runs ``python -m analytics`` with its own package first."""

    def __init__(self, code: Path, work: Path, src: Path) -> None:
        self.code, self.work, self.src = code, work, src
        self.env = dict(os.environ, PYTHONPATH=str(code))
        self.template = work / "template"
        out = self.run("--home", str(self.template), "ingest", str(src), "--json")
        self.series_uid = json.loads(out)["series"][0]["series_uid"]

    def run(self, *argv: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "analytics", *argv], env=self.env,
                              cwd=self.code, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv}: exit {proc.returncode}: {proc.stderr[-500:]}")
        return proc.stdout

    def fresh_home(self) -> str:
        home = self.work / "home"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(self.template, home)
        return str(home)

    def help(self) -> None:
        self.run("--help")

    def ingest_one(self) -> None:
        home = self.work / "one"
        shutil.rmtree(home, ignore_errors=True)
        self.run("--home", str(home), "ingest", str(next(self.src.rglob("*.dcm"))), "--json")

    def features_one(self) -> None:
        out = json.loads(self.run("--home", self.fresh_home(), "features", "--series",
                                  self.series_uid, "--json"))
        if out["series_done"] != 1:
            raise RuntimeError(f"features: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hepatrack-startup-") as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "src"
        for name, data in nifti_ct_as_dicom():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data)
        case = Side(ROOT, tmp_path / "case", src)
        base = Side(checkout(args.baseline, tmp_path / "baseline-code"),
                    tmp_path / "baseline", src)
        label = f"at {args.baseline}"
        for what, case_fn, base_fn in (
                ("hepatrack --help", case.help, base.help),
                ("hepatrack ingest (one file)", case.ingest_one, base.ingest_one),
                ("hepatrack features --series (one series)", case.features_one,
                 base.features_one)):
            compare(f"{what} now", case_fn, f"{what} {label}", base_fn,
                    repeat=args.repeat, warmup=1)


if __name__ == "__main__":
    main()
