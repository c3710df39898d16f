"""The upload benchmark's end marker, its split of click to score at the job poll, its
server CPU clock and its table of medians (hand-made timelines and rounds)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks.browser_upload import (
    Round,
    TreeCPU,
    decisive_poll,
    end_marker,
    median_of,
    poll_split,
    report_lines,
    run_end,
)


def _page(root, text: str, name: str = "pages/ingest.py") -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_end_marker_is_the_metric_until_the_page_code_names_the_risk_container(tmp_path):
    _page(tmp_path, 'm[4].metric("Features extracted", 1)\n')
    _page(tmp_path, "def counts(): ...\n", "ui/ingest_view.py")
    _page(tmp_path, 'RISK = "ingest_risk"  # a test, not the page\n', "tests/test_x.py")
    assert end_marker(tmp_path) == "metric"
    _page(tmp_path, 'with st.container(key="ingest_risk"):\n    ...\n', "ui/ingest_risk.py")
    assert end_marker(tmp_path) == "risk"


def test_the_end_marker_reads_the_page_itself(tmp_path):
    _page(tmp_path, 'with st.container(key="ingest_risk"):\n    st.metric("New risk", "4 %")\n')
    assert end_marker(tmp_path) == "risk"


def test_the_decisive_poll_is_the_first_after_the_features_whose_reply_runs_on_to_the_score():
    written, shown = 10.0, 12.0
    sends = [9.5, 10.4, 11.4]  # a poll before the features, one too early, the decisive one
    received = [9.52, 9.6, 10.42, 10.5, 11.42, 11.5, 11.7, 11.9]
    assert decisive_poll(sends, received, written, shown) == 11.4
    # the job poll's reply with a pause over half a second in it is not one run
    assert decisive_poll([10.4], [10.42, 11.0, 11.9], written, shown) is None
    assert decisive_poll([12.5], received, written, shown) is None
    # a poll sent before the features were written, run once the server got to it
    assert decisive_poll([9.0, 9.9], [9.02, 9.1, 10.3, 10.5, 10.9], written, 11.0) == 9.9
    assert decisive_poll([9.0, 9.9], [9.02, 9.1, 10.6, 10.9], written, 11.0) is None


def test_the_poll_wait_is_none_when_the_decisive_poll_was_sent_before_the_features():
    assert poll_split(11.4, 10.0, 12.0) == pytest.approx((1.4, 0.6))
    assert poll_split(9.9, 10.0, 11.0) == pytest.approx((0.0, 1.0))
    assert poll_split(None, 10.0, 11.0) == (None, None)


def test_a_script_run_ends_at_the_first_pause_in_the_server_s_messages():
    received = [0.9, 1.05, 1.2, 1.6, 2.3, 2.4]
    assert run_end(received, 1.0) == 1.6  # 1.6 -> 2.3 is a pause: the job poll's silence
    assert run_end(received, 2.5) == 2.5  # nothing came


def test_the_server_clock_counts_a_child_that_has_ended(tmp_path):
    clock = TreeCPU(os.getpid())
    before = clock.seconds()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert clock.seconds() - before >= 0.3
    assert TreeCPU(None).seconds() is None


def _round(score: float, poll: float | None = 0.5, load: float = 1.0) -> Round:
    return Round(settle=7.0, transfer=score / 2, last_upload=score / 3, transfer_cpu=0.7,
                 transfer_browser_cpu=5.0, score=score, score_cpu=score - 1,
                 score_browser_cpu=1.5, click_run=0.4, written=score - 1, poll=poll, rerun_draw=0.3,
                 load_before=load, load_after=load + 1)


def test_medians_leave_out_rounds_that_did_not_measure_a_figure():
    rounds = [_round(4.0, poll=None), _round(6.0, poll=0.2), _round(5.0, poll=0.6)]
    assert median_of(rounds, "score") == 5.0
    assert median_of(rounds, "poll") == pytest.approx(0.4)
    assert median_of([_round(4.0, poll=None)], "poll") is None


def test_the_report_gives_each_side_s_medians_load_and_the_case_against_the_budget():
    results = {"case": [_round(4.0, load=0.5), _round(6.0, load=2.0), _round(5.0)],
               "baseline": [_round(10.0), _round(8.0), _round(12.0, load=3.0)]}
    lines = report_lines(results, {"case": "risk", "baseline": "metric"})
    assert lines[0].startswith("case (risk; load 0.50-3.00), medians of 3: ")
    assert "click to score 5.00 s;" in lines[0]
    assert "transfer 2.50 s;" in lines[0]
    assert lines[1].startswith("baseline (metric; load 1.00-4.00)")
    assert "click to score 10.00 s;" in lines[1]
    assert lines[2] == "case transfer: 2.50 s | baseline: 5.00 s | 2.00x faster"
    assert lines[3] == ("case click to score: 5.00 s | baseline: 10.00 s | 2.00x faster | "
                        "budget 5.00 s: within")
    assert lines[4] == "case click to score server CPU: 4.00 s | baseline: 9.00 s | 2.25x faster"
    over = report_lines({"case": [_round(5.5)], "baseline": [_round(5.0)]},
                        {"case": "metric", "baseline": "metric"})
    assert over[3].endswith("0.91x faster | budget 5.00 s: OVER")


def test_a_round_that_stored_nothing_fails(tmp_path):
    from benchmarks.browser_upload import check_stored, series_uids

    home = tmp_path / "home"
    assert series_uids(home) == set()  # an empty home: nothing ingested
    with pytest.raises(AssertionError, match="expected one new series, found 0"):
        check_stored(home, set(), 0.0, 200)
