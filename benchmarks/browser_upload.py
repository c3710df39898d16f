"""Upload to score on screen in a real browser (the Ingest page), against a baseline.

A 512 x 512 x 200 CT + SEG, 201 files. Target (issue 20): upload to score on screen <= 5 s.

Data (``--data DIR``, built on first use by ``benchmarks/upload_to_score.py``'s helpers):
``DIR/upload`` (200 CT files and a SEG of the first imaging patient of the cohort, 114 MB)
and ``DIR/template`` (a home of 300 patients with their CTs, features and a trained Cox
model). Two servers run the same work: this checkout (the case) and ``--baseline`` (an
exported tree, e.g. ``git archive main | tar -x -C DIR``), rounds interleaved (case,
baseline, then baseline, case, ...) so a slow spell on the shared machine hits both.

Each round and side starts a fresh copy of the template home (with the benchmark's
clinician added), starts the server (``benchmarks/browser.py``'s ``server``) and, in
headless ``/usr/bin/chromium``, does what a clinician does:

- signs in (until the Cohort page is drawn, as ``benchmarks/browser.py`` does) and opens
  the Ingest page; waits until its file uploader is drawn and the app idle, then until the
  server and its warm workers (the feature worker and parse pool the page starts) use less
  than ``QUIET_CPU_S`` CPU seconds in a second, then ``SETTLE_S`` more (an open page);
- ``transfer``: chooses the 201 files in the "Files or zip archives" uploader and waits
  until the page's button reads "Ingest 201 file(s)" and is enabled (every file sent to
  the server and the script rerun that counts them); ``last upload`` is when the last of
  the uploader's HTTP requests ended;
- ``click to score``: clicks that button until the score is on screen: the Ingest page's
  new-risk section (``.st-key-ingest_risk``) showing a percentage where the side's code has
  one (its ``pages/ingest.py`` or ``ui/*.py`` name ``ingest_risk``), otherwise the
  "Features extracted" metric showing 1 (printed per side: ``marker``).

Each wait gives the server's CPU seconds (the Streamlit process, the children it reaped and
every live process under it: the warm feature worker and parse workers) and the browser's
(Playwright's driver and Chromium). Click to score is split with the server's clock and the
page's: ``the click's script run`` (from the click until the server's messages first pause:
the run that reads the uploads' bytes and starts the job), ``features written`` (the
series' feature rows' ``computed_at``, read back from the home), ``poll`` (from then until
the page sent the job poll that found the job done, zero when a busy server ran a poll sent
before: the Ingest page polls its job once a second from the browser,
``@st.fragment(run_every=1.0)``; the job's last steps after the feature rows are written
are in this part too) and ``rerun + draw`` (from that poll, or the features written if
later, until the score is on screen: the poll's fragment run, the whole page's rerun it
asks for, and drawing).

After each round the home is checked through the store's API: exactly one new series, 200
slices, complete, its feature run done with feature values written after the click; a
round that ended without the work fails.

    .venv/bin/python benchmarks/browser_upload.py --baseline /tmp/main-copy [--rounds 3]
        [--data DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.browser import (
    IDLE_JS,
    MENU,
    PASSWORD,
    TIMEOUT_MS,
    USER,
    _split,
    add_side_options,
    browser_cpu_seconds,
    chosen_sides,
    launch,
    server,
    sign_in_to_cohort,
)
from benchmarks.harness import format_seconds

#: issue 20: upload to score on screen
BUDGET_S = 5.0
#: the page's uploader, its ingest button and the new-risk section
UPLOADER = '.st-key-ingest-files input[type="file"]'
GO = ".st-key-ingest-go button"
RISK_KEY = "ingest_risk"
#: the server and its warm workers are quiet: less CPU than this in one second (the page's
#: job poll costs a few tens of milliseconds a second)
QUIET_CPU_S = 0.15
#: then as long again, as an open page has before a clinician has chosen the files
SETTLE_S = 3.0

#: the end markers: the new risk in percent, or the "Features extracted" metric showing 1
MARKER_JS = {
    "risk": """() => {
      const r = document.querySelector('.st-key-ingest_risk');
      return !!r && r.innerText.includes('%');
    }""",
    "metric": """() => [...document.querySelectorAll('[data-testid="stMetric"]')].some(m =>
      m.innerText.includes('Features extracted') &&
      (m.querySelector('[data-testid="stMetricValue"]') || {}).innerText === '1')""",
}

#: each websocket message the page sends (a rerun request: a click, a job poll), on the
#: wall clock (epoch milliseconds), beside ``benchmarks/browser.py``'s received messages
_SENDS_INIT_JS = """(() => {
  const sent = window.__sent = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (...a) {
    sent.push(performance.timeOrigin + performance.now());
    return send.apply(this, a);
  };
})()"""

_BUTTON_READY_JS = """(label) => {
  const b = document.querySelector('.st-key-ingest-go button');
  return !!b && !b.disabled && b.innerText.includes(label);
}"""


def end_marker(src: Path) -> str:
    """``"risk"`` when the side's Ingest page shows the new risk (its ``pages/ingest.py`` or
    a ``ui/*.py`` module names the ``ingest_risk`` container), else ``"metric"``."""
    for path in [src / "pages" / "ingest.py", *sorted((src / "ui").glob("*.py"))]:
        if path.is_file() and RISK_KEY in path.read_text(encoding="utf-8"):
            return "risk"
    return "metric"


class TreeCPU:
    """CPU seconds (user + system) of a process, the children it reaped and every live
    process under it, read from ``/proc``; the same ``seconds()`` as ``ServerCPU``."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def seconds(self) -> float | None:
        if self.pid is None:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        kids: dict[int, list[int]] = {}
        own: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                pid = int(entry.name)
                kids.setdefault(int(stat[1]), []).append(pid)
                own[pid] = sum(int(x) for x in stat[11:15]) / tick  # reaped children too
        if self.pid not in own:
            return None
        total, todo = 0.0, [self.pid]
        while todo:
            pid = todo.pop()
            total += own.get(pid, 0.0)
            todo.extend(kids.get(pid, []))
        return total


@dataclass(frozen=True)
class Stored:
    """What the round left in the home: the new series and when its features were
    written (the server's wall clock, epoch seconds)."""

    series_uid: str
    features: int
    written: float


def series_uids(home: Path) -> set[str]:
    """Every stored series of a home."""
    from analytics.config import load_settings
    from analytics.store import open_store
    from analytics.store.features import feature_export_rows

    store = open_store(load_settings(home))
    try:
        return {r.series_uid for r in feature_export_rows(store).series}
    finally:
        store.dispose()


def check_stored(home: Path, before: set[str], clicked: float, slices: int) -> Stored:
    """The round's work, read back through the store: exactly one new series of ``slices``
    slices, complete, its feature run done and feature values written after ``clicked``.

    Raises
    ------
    AssertionError
        If any of it is missing: the round "finished" without the work.
    """
    from analytics.config import load_settings
    from analytics.store import open_store
    from analytics.store.dicom import series_summary
    from analytics.store.features import feature_export_rows

    store = open_store(load_settings(home))
    try:
        rows = feature_export_rows(store)
        new = [r for r in rows.series if r.series_uid not in before]
        assert len(new) == 1, f"expected one new series, found {len(new)}"
        summary = series_summary(store, new[0].series_uid)
    finally:
        store.dispose()
    assert summary is not None and summary.status == "complete", summary
    assert summary.n_slices == slices, f"{summary.n_slices} slices stored, not {slices}"
    run = rows.runs.get(new[0].series_id)
    assert run is not None and run.status == "done", f"feature run: {run}"
    values = [f for f in rows.features if f.series_id == new[0].series_id]
    assert any(f.value is not None for f in values), "no feature value written"
    written = max(_epoch(f.computed_at) for f in values)
    assert written >= clicked, "feature values older than the click"
    return Stored(new[0].series_uid, len(values), written)


def _epoch(stamp: dt.datetime) -> float:
    """A stored UTC time (SQLite returns it without its zone) as epoch seconds."""
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()


#: the longest pause between the server's messages within one script run and its reruns
#: (a job poll that finds the job still running is followed by about a second of silence)
GAP_S = 0.5


def run_end(received: list[float], start: float) -> float:
    """When the server's messages from ``start`` on first pause longer than
    :data:`GAP_S`: the end of the script run (and the reruns it asked for) that began
    there (``start`` if none came)."""
    end = start
    for t in sorted(r for r in received if r >= start):
        if t - end > GAP_S:
            break
        end = t
    return end


def decisive_poll(sends: list[float], received: list[float], written: float,
                  shown: float) -> float | None:
    """The job poll that found the job done (epoch seconds): the first message the page
    sent, from the last one before the features were written on (a busy server runs a
    poll some time after it was sent), from which the server's messages ran on, no pause
    over :data:`GAP_S`, until the score was on screen at ``shown``. None if there is none."""
    last = max((r for r in received if r <= shown), default=None)
    before = [s for s in sends if s <= written][-1:]
    for sent in before + [s for s in sends if written < s <= shown]:
        if last is not None and run_end(received, sent) >= last:
            return sent
    return None


def poll_split(poll: float | None, written: float, shown: float
               ) -> tuple[float | None, float | None]:
    """(from the features written until the decisive poll was sent, none if it was sent
    before; from then until the score was on screen)."""
    if poll is None:
        return None, None
    return max(0.0, poll - written), shown - max(poll, written)


@dataclass
class Round:
    """One side's round: each wait in seconds (``None`` where not measured)."""

    settle: float
    transfer: float
    last_upload: float | None
    transfer_cpu: float | None
    transfer_browser_cpu: float | None
    score: float
    score_cpu: float | None
    score_browser_cpu: float | None
    click_run: float
    written: float
    poll: float | None
    rerun_draw: float | None
    load_before: float
    load_after: float


def open_ingest(page, cpu: TreeCPU) -> float:
    """From the Cohort page to the Ingest page drawn and settled (its warm workers
    started and quiet, then ``SETTLE_S``); the seconds it took."""
    t0 = time.perf_counter()
    page.locator(MENU).get_by_text("Ingest", exact=True).click()
    page.wait_for_function(IDLE_JS, arg=[0, "Ingest", 0, None, UPLOADER], polling=50,
                           timeout=TIMEOUT_MS)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        c0 = cpu.seconds() or 0.0
        time.sleep(1.0)
        if (cpu.seconds() or 0.0) - c0 < QUIET_CPU_S:
            break
    time.sleep(SETTLE_S)
    return time.perf_counter() - t0


def transfer(page, files: list[Path], cpu: TreeCPU) -> tuple[float, float | None,
                                                               float | None, float | None]:
    """Choose ``files`` in the uploader until the ingest button counts them and is
    enabled: (seconds, seconds until the last upload request ended, server CPU, browser
    CPU)."""
    ends: list[float] = []

    def finished(request) -> None:
        if "/_stcore/upload_file" in request.url:
            t = request.timing
            ends.append((t["startTime"] + max(0.0, t["responseEnd"])) / 1000)

    page.on("requestfinished", finished)
    c0, b0 = cpu.seconds(), browser_cpu_seconds()
    e0, t0 = time.time(), time.perf_counter()
    page.locator(UPLOADER).first.set_input_files([str(f) for f in files])
    page.wait_for_function(_BUTTON_READY_JS, arg=f"Ingest {len(files)} file(s)", polling=50,
                           timeout=TIMEOUT_MS)
    total = time.perf_counter() - t0
    c1, b1 = cpu.seconds(), browser_cpu_seconds()
    page.remove_listener("requestfinished", finished)
    if len(ends) < len(files):
        raise AssertionError(f"{len(ends)} upload requests for {len(files)} files")
    return (total, max(ends) - e0, _less(c1, c0), _less(b1, b0))


def _less(after: float | None, before: float | None) -> float | None:
    return after - before if after is not None and before is not None else None


def click_to_score(page, marker: str, cpu: TreeCPU):
    """Click the ingest button until ``marker`` is on screen: the wait (``_split``), the
    click's and the score's wall clock (epoch seconds) and the page's messages."""
    t0_page = page.evaluate("performance.now()")
    c0, b0 = cpu.seconds(), browser_cpu_seconds()
    clicked, t0 = time.time(), time.perf_counter()
    page.locator(GO).click()
    page.wait_for_function(MARKER_JS[marker], polling=50, timeout=TIMEOUT_MS)
    total, shown = time.perf_counter() - t0, time.time()
    wait = _split(page, t0_page, total, cpu, c0, b0)  # type: ignore[arg-type]
    return wait, clicked, shown, messages(page)


def messages(page) -> tuple[list[float], list[float]]:
    """The websocket messages the page sent and received so far (epoch seconds)."""
    sent, got = page.evaluate(
        "[window.__sent, window.__ht.ws.map(t => performance.timeOrigin + t)]")
    return [s / 1000 for s in sent], [g / 1000 for g in got]


@contextlib.contextmanager
def fresh_home(template: Path, into: Path, src: Path) -> Iterator[Path]:
    """A copy of the template home with the benchmark's clinician (removed after)."""
    from benchmarks.upload_to_score import hepatrack

    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(template, into)
    hepatrack(src, "--home", str(into), "users", "add", "--role", "clinician",
              "--password", PASSWORD, USER)
    try:
        yield into
    finally:
        shutil.rmtree(into, ignore_errors=True)


def one_round(browser, name: str, src: Path, data: Path, files: list[Path],
              slices: int) -> Round:
    load_before = os.getloadavg()[0]
    marker = end_marker(src)
    with fresh_home(data / "template", data / f"browser-{name}" / "home", src) as home:
        before = series_uids(home)
        with server(src, home, data / f"browser-{name}" / "serve.log") as (url, _ready, sc):
            cpu = TreeCPU(sc.pid)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(_SENDS_INIT_JS)
            blank = context.new_page()
            _, page = sign_in_to_cohort(browser, url, 0, tab_of=blank)
            blank.close()
            settle = open_ingest(page, cpu)
            moved, last_upload, moved_cpu, moved_browser = transfer(page, files, cpu)
            wait, clicked, shown, (sends, received) = click_to_score(page, marker, cpu)
            context.close()
        stored = check_stored(home, before, clicked, slices)
    poll = decisive_poll(sends, received, stored.written, shown)
    r = Round(settle, moved, last_upload, moved_cpu, moved_browser, wait.total, wait.cpu,
              wait.browser_cpu, run_end(received, clicked) - clicked,
              stored.written - clicked,
              *poll_split(poll, stored.written, shown), load_before, os.getloadavg()[0])
    print(f"  {name} [{marker}; load {r.load_before:.2f} -> {r.load_after:.2f}]: "
          + "; ".join(f"{label} {_text(getattr(r, what))}" for what, label in FIGURES)
          + f"; page sent {len([s for s in sends if s >= clicked])} messages after the "
          f"click; {stored.features} feature values", flush=True)
    return r


#: the figures of a round, in the order they are printed
FIGURES = (("settle", "Ingest page open and settled"), ("transfer", "transfer"),
           ("last_upload", "last upload request ended"), ("transfer_cpu", "transfer server CPU"),
           ("transfer_browser_cpu", "transfer browser CPU"), ("score", "click to score"),
           ("score_cpu", "click to score server CPU"),
           ("score_browser_cpu", "click to score browser CPU"),
           ("click_run", "the click's script run"),
           ("written", "click to features written"), ("poll", "then until the job poll"),
           ("rerun_draw", "then rerun + draw"))


def _text(seconds: float | None) -> str:
    return "n/a" if seconds is None else format_seconds(seconds)


def median_of(rounds: list[Round], what: str) -> float | None:
    """The median of a figure over the rounds that measured it (None if none did)."""
    got = [v for v in (getattr(r, what) for r in rounds) if v is not None]
    return statistics.median(got) if got else None


def report_lines(results: dict[str, list[Round]], markers: dict[str, str]) -> list[str]:
    """Each side's medians (with the load before and after its rounds), then the case
    against the baseline and the budget."""
    lines = []
    for name, rounds in results.items():
        lines.append(
            f"{name} ({markers[name]}; load {min(r.load_before for r in rounds):.2f}-"
            f"{max(r.load_after for r in rounds):.2f}), medians of {len(rounds)}: "
            + "; ".join(f"{label} {_text(median_of(rounds, what))}" for what, label in FIGURES))
    if {"case", "baseline"} <= set(results):
        for what, label in (("transfer", "transfer"), ("score", "click to score"),
                            ("score_cpu", "click to score server CPU")):
            case, base = median_of(results["case"], what), median_of(results["baseline"], what)
            if case is None or base is None:
                continue
            line = (f"case {label}: {format_seconds(case)} | baseline: {format_seconds(base)}"
                    f" | {base / case:.2f}x faster")
            if what == "score":
                line += (f" | budget {format_seconds(BUDGET_S)}: "
                         f"{'within' if case <= BUDGET_S else 'OVER'}")
            lines.append(line)
    return lines


def upload_files(upload: Path) -> list[Path]:
    """The study's files as a clinician chooses them: every CT slice and the SEG."""
    files = sorted(p for p in upload.rglob("*.dcm") if p.is_file())
    if not files:
        raise SystemExit(f"no DICOM files under {upload}")
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_side_options(ap)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=Path("/tmp/hepatrack-bench-upload"),
                    help="the cohort, upload and template home (built here when missing)")
    ap.add_argument("--slices", type=int, default=200)
    a = ap.parse_args()
    from benchmarks.upload_to_score import build_home, write_cohort, write_upload

    if not (a.data / "template" / "hepatrack.db").exists():
        shutil.rmtree(a.data / "cohort", ignore_errors=True)
        shutil.rmtree(a.data / "upload", ignore_errors=True)
        write_cohort(a.data / "cohort", 300)
        write_upload(a.data / "cohort", a.data / "upload", a.slices)
        build_home(a.data / "template", a.data / "cohort")
    files = upload_files(a.data / "upload")
    size = sum(f.stat().st_size for f in files)
    sides = chosen_sides(a)
    markers = {name: end_marker(src) for name, src in sides.items()}
    print(f"{len(files)} files, {size / 1e6:.1f} MB; end markers: {markers}; load "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    from playwright.sync_api import sync_playwright

    results: dict[str, list[Round]] = {k: [] for k in sides}
    with sync_playwright() as pw:
        browser = launch(pw)
        for r in range(a.rounds):
            print(f"round {r + 1} of {a.rounds}", flush=True)
            for name in (list(sides) if r % 2 == 0 else list(reversed(sides))):
                results[name].append(one_round(browser, name, sides[name], a.data, files,
                                               a.slices))
        browser.close()
    print(f"== upload to score on screen, {len(files)} files ({size / 1e6:.1f} MB), "
          f"{a.rounds} interleaved rounds; load now {os.getloadavg()[0]:.2f} ==")
    for line in report_lines(results, markers):
        print(line)


if __name__ == "__main__":
    main()
