"""Where a patient switch's wall time goes in the browser, element by element.

Issue 18 item 9 / issue 20 target 4: ``browser.py`` times a switch end to end and splits
it at the server's last websocket message; this script says what the browser does with
the rest. One server from this checkout (or ``--src``) on the home in ``--home``/home
(with the ``bench.clinician`` user, e.g. a copy of the demo home; by default
``browser.py``'s labs-only home), one signed-in session on the Patient page, then
``--switches`` switches (labs-only patients, then ones with a CT series) each measured
three ways:

- the websocket deltas of the switch (Chrome DevTools Protocol ``Network`` events, each
  binary frame decoded as Streamlit's ``ForwardMsg``): how many bytes each kind of element
  sends (``plotly_chart``, ``dataframe`` grids, ``selectbox`` with its options …; an
  element the browser already holds comes as a ``ref_hash`` of a few bytes);
- when each chart finished drawing (plotly's ``plotly_afterplot`` on each chart, by the
  element's key), when the key image loaded, and when the server's last message came;
- the main thread's time by what it did: a ``Tracing`` pass (``devtools.timeline``:
  script, style, layout, paint, by event, self time) and a CPU ``Profiler`` pass (script
  self time by bundle: ``PlotlyChart`` is plotly.js, ``DataFrame`` the Glide data grid,
  ``index`` Streamlit's React app).

The machine is shared: the 1-minute load average is printed with each pass.

    PYTHONPATH=. .venv/bin/python benchmarks/switch_profile.py --home /tmp/x  # /tmp/x/home
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.browser import (
    CHROMIUM,
    IDLE_JS,
    MENU,
    TABLE_OR_SELECT,
    TIMEOUT_MS,
    choose_patients,
    server,
    sign_in_to_cohort,
)
from benchmarks.harness import format_seconds

ROOT = Path(__file__).resolve().parents[1]

#: installed before any page script: the time each plotly chart finished drawing, by the
#: ``st-key-…`` class of its element, and each key image's load
_HOOK_JS = """(() => {
  const marks = window.__marks = [];
  const keyOf = el => { const k = el.closest('[class*="st-key-"]');
    return k ? [...k.classList].find(c => c.startsWith('st-key-')) : 'chart'; };
  const hook = div => { if (div.__hooked || !div.on) return; div.__hooked = true;
    div.on('plotly_afterplot', () => marks.push(['plotly ' + keyOf(div), performance.now()])); };
  new MutationObserver(() => {
    document.querySelectorAll('.js-plotly-plot').forEach(hook);
    document.querySelectorAll('[data-testid="stImage"] img').forEach(img => {
      if (img.__hooked) return; img.__hooked = true;
      img.addEventListener('load', () => marks.push(['image', performance.now()]));
    });
  }).observe(document, {subtree: true, childList: true, attributes: true,
                        attributeFilter: ['src']});
})()"""


#: the key image's request as the browser timed it (ms since ``t0``) and its size (bytes)
_MEDIA_JS = """(t0) => performance.getEntriesByType('resource')
  .filter(e => e.name.includes('/media/') && e.startTime >= t0)
  .flatMap(e => [['image requested', e.startTime - t0],
                 ['image first byte', e.responseStart - t0],
                 ['image received (' + e.encodedBodySize + ' B)', e.responseEnd - t0]])"""


def _frame_kinds(payload: str, opcode: int) -> list[tuple[str, int]]:
    """``(kind, bytes)`` of one websocket frame: the element a delta carries
    (``new_element.plotly_chart``), ``add_block``, or the message kind."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    raw = base64.b64decode(payload) if opcode == 2 else payload.encode()
    try:
        msg = ForwardMsg.FromString(raw)
    except Exception:  # a text frame or another protocol: counted whole
        return [("other", len(raw))]
    kind = msg.WhichOneof("type") or "other"
    if kind == "delta":
        d = msg.delta
        sub = d.WhichOneof("type")
        if sub == "new_element":
            el = d.new_element.WhichOneof("type")
            kind = f"element {el}"
            if el == "selectbox":
                kind += f" ({len(d.new_element.selectbox.options)} options)"
        else:
            kind = f"delta {sub}"
    return [(kind, len(raw))]


def _switch(page, patient: str, images: int, start, stop) -> float:
    """Choose ``patient`` and wait until the page is drawn and idle, with ``start()``
    called just before the key press and ``stop()`` once idle (typing into the picker is
    not part of the switch); the page clock at the key press."""
    # the search box where the page has one (Enter opens the patient it names), else the
    # selector's own filter over every option (code before the search picker)
    box = page.locator(".st-key-patient-find input")
    if not box.count():
        box = page.locator(".st-key-patient-pseudonym input")
    box.click()
    box.fill(patient)
    page.evaluate("window.__marks.length = 0")
    start()
    t0 = page.evaluate("performance.now()")
    page.keyboard.press("Enter")
    page.wait_for_function(IDLE_JS, arg=[1, patient, images, None, TABLE_OR_SELECT],
                           polling=50, timeout=TIMEOUT_MS)
    stop()
    return t0


def _timeline_self_times(trace: bytes) -> dict[str, float]:
    """Self time (ms) of each ``devtools.timeline`` event on the renderer's main thread."""
    events = json.loads(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    main = {(e["pid"], e["tid"]) for e in events
            if e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"}
    xs = sorted((e for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) in main
                 and "dur" in e), key=lambda e: (e["ts"], -e["dur"]))
    self_ms: dict[str, float] = collections.defaultdict(float)
    stack: list[list] = []  # [end, name, child time]
    for e in xs:
        while stack and stack[-1][0] <= e["ts"]:
            _end, name, child, dur = stack.pop()
            self_ms[name] += (dur - child) / 1000
        if stack:
            stack[-1][2] += e["dur"]
        stack.append([e["ts"] + e["dur"], e["name"], 0, e["dur"]])
    for _end, name, child, dur in stack:
        self_ms[name] += (dur - child) / 1000
    return dict(self_ms)


def _profile_by_bundle(profile: dict) -> dict[str, float]:
    """Script self time (ms) by bundle (file name before its hash), from a CPU profile."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    out: dict[str, float] = collections.defaultdict(float)
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = nodes[sample]["callFrame"]
        url = frame.get("url") or ""
        name = url.rsplit("/", 1)[-1].split(".")[0] if url else frame["functionName"]
        out[name or "(native)"] += delta / 1000
    return dict(out)


def _print_top(title: str, ms: dict[str, float], n: int, top: int = 12) -> None:
    total = sum(v for k, v in ms.items() if k != "(idle)")
    print(f"  {title} (per switch, busy {total / n:.0f} ms):")
    for k, v in sorted(ms.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {v / n:8.1f} ms  {k}")


def measure(src: Path, home: Path, log: Path, labs: list[str], ct: list[str],
            ct_images: int = 1) -> None:
    from playwright.sync_api import sync_playwright

    with server(src, home, log) as (url, ready, _cpu), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        print(f"server ready {format_seconds(ready)} [load {os.getloadavg()[0]:.2f}]")
        _cohort, page = sign_in_to_cohort(browser, url, 0)
        page.add_init_script(_HOOK_JS)
        page.evaluate(_HOOK_JS)
        cdp = page.context.new_cdp_session(page)
        frames: list[tuple[float, str, int]] = []  # (CDP clock s, payload, opcode)
        sent: list[float] = []  # the rerun request's CDP clock
        cdp.on("Network.webSocketFrameReceived", lambda ev: frames.append(
            (ev["timestamp"], ev["response"]["payloadData"], ev["response"]["opcode"])))
        cdp.on("Network.webSocketFrameSent", lambda ev: sent.append(ev["timestamp"]))
        cdp.send("Network.enable")
        page.locator(MENU).get_by_text("Patient", exact=True).click()
        page.locator(".st-key-patient-pseudonym input").wait_for(timeout=TIMEOUT_MS)
        page.wait_for_function(IDLE_JS, arg=[1, None, 0, None, TABLE_OR_SELECT],
                               polling=50, timeout=TIMEOUT_MS)
        groups = [("labs-only", labs, 0), ("CT", ct, ct_images)]
        for label, patients, images in groups:
            if not patients:
                continue
            sizes: dict[str, list[int]] = collections.defaultdict(list)
            arrive: dict[str, list[float]] = collections.defaultdict(list)
            marks: dict[str, list[float]] = collections.defaultdict(list)
            totals = []
            half = max(1, len(patients) // 2)
            # pass 1: deltas and per-element times, with the timeline trace
            timeline: dict[str, float] = collections.defaultdict(float)

            def trace_start() -> None:
                browser.start_tracing(page=page, categories=["devtools.timeline"])

            def trace_stop(timeline: dict[str, float] = timeline) -> None:
                for k, v in _timeline_self_times(browser.stop_tracing()).items():
                    timeline[k] += v

            for p in patients[:half]:
                frames.clear()
                sent.clear()
                t_wall = time.perf_counter()
                t0 = _switch(page, p, images, trace_start, trace_stop)
                totals.append(time.perf_counter() - t_wall)
                now = page.evaluate("performance.now()")
                marks["total"].append(now - t0)
                for kind, t in page.evaluate("window.__marks"):
                    marks[kind].append(t - t0)
                for kind, t in page.evaluate(_MEDIA_JS, t0):
                    marks[kind].append(t)
                last = page.evaluate(
                    "(t0) => { const w = window.__ht.ws.filter(t => t >= t0); "
                    "return w.length ? w[w.length - 1] - t0 : 0 }", t0)
                marks["server's last message"].append(last)
                for t, payload, opcode in frames:
                    for kind, n in _frame_kinds(payload, opcode):
                        sizes[kind].append(n)
                        if sent:
                            arrive[kind].append(1000 * (t - sent[0]))
            # pass 2: the CPU profile (script by bundle)
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 200})
            bundles: dict[str, float] = collections.defaultdict(float)

            def profile_stop(bundles: dict[str, float] = bundles) -> None:
                for k, v in _profile_by_bundle(cdp.send("Profiler.stop")["profile"]).items():
                    bundles[k] += v

            for p in patients[half:]:
                _switch(page, p, images, lambda: cdp.send("Profiler.start"), profile_stop)
            n1, n2 = half, max(1, len(patients) - half)
            print(f"\n== {label} switches [load {os.getloadavg()[0]:.2f}]: "
                  + ", ".join(format_seconds(t) for t in totals))
            print("  page clock since the key press (median ms; a chart drawn twice "
                  "counts each):")
            for kind, ts in sorted(marks.items(), key=lambda kv: sorted(kv[1])[0]):
                ts = sorted(ts)
                print(f"    {ts[len(ts) // 2]:8.0f} ms  {kind} (x{len(ts) / n1:g})")
            print("  websocket deltas per switch (bytes by element kind; last arrival, ms "
                  "after the rerun request):")
            for kind, ns in sorted(sizes.items(), key=lambda kv: -sum(kv[1])):
                last = statistics.median(arrive[kind]) if arrive[kind] else float("nan")
                print(f"    {sum(ns) / n1:10.0f} B  {kind} (x{len(ns) / n1:g}; "
                      f"median {last:.0f} ms, last {max(arrive[kind], default=0):.0f} ms)")
            _print_top("main thread by timeline event, self time", timeline, n1)
            _print_top("script self time by bundle (CPU profile)", bundles, n2)
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path("/tmp/hepatrack-bench-browser"),
                    help="a directory holding the home in home/ (as browser.py's --home; "
                         "built there on first use: --patients, labs only)")
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--src", type=Path, default=ROOT, help="the code to serve")
    ap.add_argument("--switches", type=int, default=6,
                    help="switches of each kind (half traced, half profiled)")
    ap.add_argument("--ct-images", type=int, default=1,
                    help="images a CT patient's switch waits for (0: code without the key "
                         "image)")
    a = ap.parse_args()
    from analytics.config import load_settings
    from analytics.store import open_store
    from analytics.store.repo import list_patients
    from benchmarks.dashboard import build_home

    home = a.home / "home"
    if not (home / "hepatrack.db").exists():
        build_home(home, a.patients)
    store = open_store(load_settings(home))
    listed = list_patients(store, identified=False)
    store.dispose()
    picks = choose_patients(listed, a.switches, a.switches, False)
    measure(a.src.resolve(), home, a.home / "switch-profile.log", picks.later,
            picks.later_ct, a.ct_images)


if __name__ == "__main__":
    main()
