"""A small timing harness: a case against a named baseline, in the same process.

Every benchmark script prints its figure beside a baseline measured in the same run, on
the same machine, with the same data, so the ratio means something on a shared 2-core box
where absolute seconds drift. Runs of the case and the baseline are interleaved so that a
slow spell hits both.

    from benchmarks.harness import compare
    compare("set-based list_patients", lambda: ..., "one query per patient", lambda: ...,
            repeat=5, units=(400, "patients"))
    # case set-based list_patients: 41.2 ms (9709 patients/s) | baseline one query per
    # patient: 1.32 s (303 patients/s) | 32.0x faster

Timings are never asserted in tests; tests check this module's arithmetic on fake clocks.
"""

from __future__ import annotations

import gc
import io
import resource
import statistics
import subprocess
import sys
import tarfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Clock = Callable[[], float]


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated calls.

    Attributes
    ----------
    runs
        Seconds of each timed call, in order (warm-up calls excluded).
    """

    runs: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def throughput(self, amount: float) -> float:
        """``amount`` of work per call divided by the median seconds (e.g. MB/s)."""
        return amount / self.median if self.median > 0 else float("inf")


@dataclass(frozen=True)
class Comparison:
    """A case and its baseline, timed in the same process.

    ``ratio`` is baseline median / case median: above 1 the case is faster.
    ``units`` is ``(amount per call, unit name)``, e.g. ``(120.0, "MB")`` gives MB/s.
    Peaks are the largest Python-heap allocation during one call (tracemalloc; NumPy
    buffers included), in MiB, when measured.
    """

    case_name: str
    case: Timing
    baseline_name: str
    baseline: Timing
    units: tuple[float, str] | None = None
    case_peak_mib: float | None = None
    baseline_peak_mib: float | None = None

    @property
    def ratio(self) -> float:
        return self.baseline.median / self.case.median if self.case.median > 0 else float("inf")

    def _part(self, role: str, name: str, timing: Timing, peak: float | None) -> str:
        text = f"{role} {name}: {format_seconds(timing.median)}"
        extra = []
        if self.units is not None:
            amount, unit = self.units
            extra.append(f"{format_rate(timing.throughput(amount))} {unit}/s")
        if peak is not None:
            extra.append(f"peak {peak:.1f} MiB")
        return text + (f" ({', '.join(extra)})" if extra else "")

    def summary(self) -> str:
        """``"case X: 1.23 s | baseline Y: 9.87 s | 8.0x faster"`` (medians)."""
        r = self.ratio
        verdict = (f"{r:.1f}x faster" if r >= 1 else f"{1 / r:.1f}x slower") if r > 0 else "n/a"
        return " | ".join([
            self._part("case", self.case_name, self.case, self.case_peak_mib),
            self._part("baseline", self.baseline_name, self.baseline, self.baseline_peak_mib),
            verdict,
        ])

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures, for scripts that also write results to a file."""
        return {
            "case": self.case_name, "baseline": self.baseline_name,
            "case_median_s": self.case.median, "case_best_s": self.case.best,
            "baseline_median_s": self.baseline.median, "baseline_best_s": self.baseline.best,
            "ratio": self.ratio, "units": list(self.units) if self.units else None,
            "case_peak_mib": self.case_peak_mib, "baseline_peak_mib": self.baseline_peak_mib,
        }


def format_seconds(seconds: float) -> str:
    """Seconds with a readable unit: ``1.23 s``, ``45.6 ms``, ``789 µs``."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def format_rate(rate: float) -> str:
    """A rate with three significant figures, without scientific notation below 1e6."""
    if rate >= 100:
        return f"{rate:,.0f}"
    return f"{rate:.3g}"


def _check_counts(repeat: int, warmup: int) -> None:
    if repeat < 1:
        raise ValueError(f"repeat={repeat}: expected at least 1 timed run")
    if warmup < 0:
        raise ValueError(f"warmup={warmup}: expected 0 or more warm-up runs")


def _timed(fn: Callable[[], Any], clock: Clock) -> float:
    start = clock()
    fn()
    return clock() - start


def measure(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1,
            clock: Clock = time.perf_counter) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed.

    Parameters
    ----------
    fn
        Zero-argument callable; its return value is ignored.
    repeat, warmup
        Timed and untimed call counts.
    clock
        Seconds clock; ``time.perf_counter`` unless a test passes a fake one.

    Raises
    ------
    ValueError
        If ``repeat < 1`` or ``warmup < 0``.
    """
    _check_counts(repeat, warmup)
    for _ in range(warmup):
        fn()
    gc.collect()
    return Timing(tuple(_timed(fn, clock) for _ in range(repeat)))


def traced_peak_mib(fn: Callable[[], Any]) -> float:
    """Largest Python-heap allocation (MiB) during one call of ``fn`` (untimed run)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def compare(case_name: str, case_fn: Callable[[], Any], baseline_name: str,
            baseline_fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1,
            units: tuple[float, str] | None = None, memory: bool = False,
            clock: Clock = time.perf_counter,
            out: Callable[[str], Any] | None = print) -> Comparison:
    """Time a case against a baseline (interleaved runs) and print one summary line.

    Parameters
    ----------
    case_name, case_fn
        What is measured.
    baseline_name, baseline_fn
        What it is compared with, doing the same work.
    repeat, warmup
        Timed and untimed calls of each.
    units
        ``(amount per call, unit)``, e.g. ``(bytes / 2**20, "MB")``, to print throughput.
    memory
        Also measure each function's peak Python-heap allocation in one extra call.
    clock
        Seconds clock (tests pass a fake one).
    out
        Where the summary line goes (``print``), or None for silence.

    Returns
    -------
    Comparison
    """
    _check_counts(repeat, warmup)
    for _ in range(warmup):
        case_fn()
        baseline_fn()
    gc.collect()
    case_runs: list[float] = []
    base_runs: list[float] = []
    for _ in range(repeat):
        case_runs.append(_timed(case_fn, clock))
        base_runs.append(_timed(baseline_fn, clock))
    result = Comparison(
        case_name=case_name, case=Timing(tuple(case_runs)),
        baseline_name=baseline_name, baseline=Timing(tuple(base_runs)), units=units,
        case_peak_mib=traced_peak_mib(case_fn) if memory else None,
        baseline_peak_mib=traced_peak_mib(baseline_fn) if memory else None,
    )
    if out is not None:
        out(result.summary())
    return result


def checkout(rev: str, into: Path, repo: Path | str | None = None) -> Path:
    """The files of revision ``rev`` of ``repo`` (this repository by default), exported
    with ``git archive`` under ``into``: the baseline code a benchmark runs beside this
    checkout's."""
    repo = repo or Path(__file__).resolve().parents[1]
    data = subprocess.run(["git", "-C", str(repo), "archive", rev], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def demo_home(into: Path, patients: int = 300) -> Path:
    """A demo home built by ``hepatrack demo --patients N`` under ``into`` (the synthetic
    cohort with its truth, ingested, featurised and a model trained): what a benchmark
    that needs a home uses when none is named, so ``make bench`` runs it bare."""
    home = into / "home"
    subprocess.run([sys.executable, "-m", "analytics", "--home", str(home), "demo",
                    "--patients", str(patients), "--json"], check=True, capture_output=True,
                   cwd=Path(__file__).resolve().parents[1])
    return home
