"""The benchmark harness's arithmetic and wording, on a deterministic fake clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchmarks.harness import (
    Comparison,
    Timing,
    compare,
    format_seconds,
    measure,
    traced_peak_mib,
)


class FakeClock:
    """A clock that moves only when a fake workload says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds) -> Callable[[], None]:
        durations = iter(seconds) if isinstance(seconds, list) else None

        def fn() -> None:
            self.now += next(durations) if durations is not None else seconds
        return fn


def test_measure_skips_warmup_and_reports_best_and_median():
    clock = FakeClock()
    # first call is warm-up (10 s, not counted), then 3, 1, 2
    t = measure(clock.work([10.0, 3.0, 1.0, 2.0]), repeat=3, warmup=1, clock=clock)
    assert t.runs == (3.0, 1.0, 2.0)
    assert (t.best, t.median) == (1.0, 2.0)
    assert t.throughput(50.0) == 25.0


def test_compare_ratio_and_summary_line():
    clock = FakeClock()
    lines: list[str] = []
    c = compare("set-based", clock.work(1.25), "per-patient", clock.work(10.0),
                repeat=3, warmup=1, clock=clock, out=lines.append)
    assert c.case.runs == (1.25, 1.25, 1.25) and c.baseline.runs == (10.0, 10.0, 10.0)
    assert c.ratio == 8.0
    assert lines == ["case set-based: 1.25 s | baseline per-patient: 10.00 s | 8.0x faster"]


def test_slower_case_and_throughput_wording():
    c = Comparison("new", Timing((0.5, 0.5)), "old", Timing((0.125, 0.125)),
                   units=(100.0, "MB"))
    assert c.ratio == 0.25
    assert c.summary() == ("case new: 500.0 ms (200 MB/s) | baseline old: 125.0 ms "
                           "(800 MB/s) | 4.0x slower")
    assert c.as_dict()["ratio"] == 0.25


def test_interleaved_runs_share_a_slow_spell():
    clock = FakeClock()
    # a slow spell doubles every call from the 3rd call on: both sides see it once each
    calls = {"n": 0}

    def work(base):
        def fn():
            calls["n"] += 1
            clock.now += base * (2 if calls["n"] in (3, 4) else 1)
        return fn

    c = compare("a", work(1.0), "b", work(4.0), repeat=2, warmup=0, clock=clock, out=None)
    assert c.case.runs == (1.0, 2.0) and c.baseline.runs == (4.0, 8.0)
    assert c.ratio == 4.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.0, "2.00 s"), (0.0456, "45.6 ms"), (0.000789, "789 µs")],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"repeat": 0}, r"repeat=0: expected at least 1", id="no-runs"),
        pytest.param({"warmup": -1}, r"warmup=-1: expected 0 or more", id="negative-warmup"),
    ],
)
def test_bad_counts_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure(lambda: None, **kwargs)


def test_traced_peak_sees_a_known_allocation():
    # a 16 MiB bytes object is allocated and freed inside the call
    peak = traced_peak_mib(lambda: bytes(16 * 2**20))
    assert 16.0 <= peak < 17.0


def test_peak_rss_matches_the_kernels_high_water_mark():
    from pathlib import Path

    from benchmarks.harness import peak_rss_mib

    status = Path("/proc/self/status").read_text()
    hwm_kib = int(next(line for line in status.splitlines()
                       if line.startswith("VmHWM:")).split()[1])
    assert abs(peak_rss_mib() - hwm_kib / 1024) < 8.0  # same counter, read moments apart
