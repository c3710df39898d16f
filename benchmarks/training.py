"""``hepatrack train`` and ``hepatrack predict --all`` with defaults, now and at a baseline.

Case: this checkout. Baseline: the same commands from a named git revision (default
``85a2df0``: validation metrics through scikit-survival's per-row loops, every patient
of ``predict --all`` scored and cached one by one). Both sides run as subprocesses on
fresh copies of the same home, interleaved, so a slow spell on the shared machine hits
both. Before timing, the sides' cross-validated metrics must agree (to 1e-9) and their
``predict --all`` JSON must be equal (numbers to 1e-9) with the same model.

Homes: synthetic labs-only cohorts of ``--visits`` visits (about 15.6 visits per patient,
``hepatrack synth`` then ``import-cohort``), and/or ``--home DIR`` (an existing home,
e.g. one ``hepatrack demo`` built; copied, never changed).

Calibration slopes and intercepts are least-squares fits stopped at scipy's default
``xtol`` of 1e-8, so rounding-level changes in the risks (a Cox fit summing in another
order) move their last digits: they are compared to :data:`CALIBRATION_FIT_TOL`. Each
``train`` line is followed by the CPU seconds of both sides' runs and the load average.

    .venv/bin/python benchmarks/training.py [--visits 1000[,10000,100000]] [--home DIR]
        [--baseline REV | --baseline-code DIR] [--repeat N] [--no-predict] [--no-train]

``--baseline-code DIR`` runs the baseline from files already exported there (e.g.
``git archive main | tar -x -C DIR``) instead of exporting ``--baseline``. Each run
starts from a fresh copy of the home, so ``train`` is timed without the clinical scores'
figures a previous training kept in the home (the first training of a cohort).

``--no-train`` times ``predict --all`` alone with each home's active model (a demo home
has one; a synthetic home has none, so train it or use ``--home`` only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import checkout, compare  # noqa: E402

DEFAULT_BASELINE = "85a2df0"
VISITS_PER_PATIENT = 15.6
#: cross-validated figures both sides must agree on
CV_KEYS = ("c_index", "uno_c", "ibs", "calibration_slope")
#: relative tolerance of calibration slopes and intercepts (least-squares fits, see above)
CALIBRATION_FIT_TOL = 1e-6
_CALIBRATION_FITS = ("slope", "intercept", "calibration_slope")



class Side:
    """One code version: ``python -m analytics`` with its own package first."""

    def __init__(self, name: str, code: Path, work: Path) -> None:
        self.name, self.code, self.work = name, code, work
        work.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, PYTHONPATH=str(code))
        self.last: dict[str, object] = {}
        #: CPU seconds (user + system) of each run, by command
        self.cpu: dict[str, list[float]] = {}

    def run(self, *argv: str) -> str:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "analytics", *argv], env=self.env,
                              cwd=self.code, capture_output=True, text=True, timeout=7200)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        command = next((a for a in argv if a in ("train", "predict")), argv[0])
        self.cpu.setdefault(command, []).append(after.ru_utime + after.ru_stime
                                                - before.ru_utime - before.ru_stime)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name} {argv}: exit {proc.returncode}: "
                               f"{proc.stderr[-800:]}")
        return proc.stdout

    def fresh(self, template: Path) -> str:
        home = self.work / "home"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(template, home)
        return str(home)

    def train(self, template: Path) -> None:
        self.last["train"] = json.loads(self.run("--home", self.fresh(template), "train",
                                                 "--json"))

    def predict(self, template: Path) -> None:
        self.last["predict"] = json.loads(self.run("--home", self.fresh(template), "predict",
                                                   "--all", "--json"))


def same(a, b, where: str = "") -> None:
    """Equal JSON: keys, lists and texts equal, numbers to 1e-9 (relative; calibration
    fits to :data:`CALIBRATION_FIT_TOL`)."""
    if isinstance(b, dict):
        if set(a) != set(b):
            raise AssertionError(f"{where}: keys differ ({sorted(set(a) ^ set(b))})")
        for k in b:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(b, list):
        if len(a) != len(b):
            raise AssertionError(f"{where}: {len(a)} items against {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(b, float) and isinstance(a, float | int):
        rel = CALIBRATION_FIT_TOL if where.rsplit(".", 1)[-1] in _CALIBRATION_FITS else 1e-9
        if not (math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
                or (math.isnan(a) and math.isnan(b))):
            raise AssertionError(f"{where}: {a!r} against {b!r}")
    elif a != b:
        raise AssertionError(f"{where}: {a!r} against {b!r}")


def synthetic_home(case: Side, visits: int, work: Path) -> Path:
    """A home holding a labs-only synthetic cohort of about ``visits`` visits."""
    cohort, home = work / f"cohort-{visits}", work / f"template-{visits}"
    patients = max(20, round(visits / VISITS_PER_PATIENT))
    case.run("synth", "--patients", str(patients), "--imaging-patients", "0", "--seed", "11",
             "--out", str(cohort))
    case.run("--home", str(home), "import-cohort", "--visits", str(cohort / "labs.csv"),
             "--outcomes", str(cohort / "outcomes.csv"), "--json")
    return home


def bench_home(label: str, template: Path, case: Side, base: Side, repeat: int,
               predict: bool, train: bool = True) -> None:
    print(f"== {label} ==", flush=True)
    if not train:  # the home's own active model scores on both sides
        bench_predict(label, template, case, base, repeat)
        return
    case.train(template)
    base.train(template)
    for k in CV_KEYS:
        same(case.last["train"]["cv"][k], base.last["train"]["cv"][k], f"cv.{k}")
    same(case.last["train"]["baselines"], base.last["train"]["baselines"], "baselines")
    compare(f"hepatrack train now ({label})", lambda: case.train(template),
            f"hepatrack train at {base.name} ({label})", lambda: base.train(template),
            repeat=repeat, warmup=0)
    print(f"  train CPU s (median of timed runs): now "
          f"{statistics.median(case.cpu['train'][-repeat:]):.1f}, at {base.name} "
          f"{statistics.median(base.cpu['train'][-repeat:]):.1f}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    if not predict:
        return
    trained = case.work / "home"  # the home case trained last: one model for both sides
    with_model = case.work / "with-model"
    shutil.rmtree(with_model, ignore_errors=True)
    shutil.copytree(trained, with_model)
    bench_predict(label, with_model, case, base, repeat)


def bench_predict(label: str, with_model: Path, case: Side, base: Side, repeat: int) -> None:
    """``predict --all`` on copies of ``with_model``: equal JSON first, then timed."""
    case.predict(with_model)
    base.predict(with_model)
    same(case.last["predict"], base.last["predict"], "predict")
    compare(f"hepatrack predict --all now ({label})", lambda: case.predict(with_model),
            f"hepatrack predict --all at {base.name} ({label})",
            lambda: base.predict(with_model), repeat=repeat, warmup=0)
    print(f"  predict CPU s (median of timed runs): now "
          f"{statistics.median(case.cpu['predict'][-repeat:]):.1f}, at {base.name} "
          f"{statistics.median(base.cpu['predict'][-repeat:]):.1f}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", default="1000",
                    help="comma-separated cohort sizes in visits ('' for none)")
    ap.add_argument("--home", default=None, help="also an existing home (copied)")
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare")
    ap.add_argument("--baseline-code", default=None, metavar="DIR",
                    help="baseline files already exported to DIR (instead of --baseline)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-predict", action="store_true")
    ap.add_argument("--no-train", action="store_true",
                    help="time predict --all only, with each home's active model")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hepatrack-train-") as tmp:
        work = Path(tmp)
        case = Side("this checkout", ROOT, work / "case")
        if a.baseline_code:
            base = Side(Path(a.baseline_code).name, Path(a.baseline_code).resolve(),
                        work / "baseline")
        else:
            base = Side(a.baseline, checkout(a.baseline, work / "baseline-code"),
                        work / "baseline")
        if a.home:
            bench_home(f"home {a.home}", Path(a.home), case, base, a.repeat, not a.no_predict,
                       not a.no_train)
        for v in [int(x) for x in a.visits.split(",") if x.strip()]:
            bench_home(f"{v:,} visits", synthetic_home(case, v, work), case, base, a.repeat,
                       not a.no_predict, not a.no_train)


if __name__ == "__main__":
    main()
