"""The browser benchmarks' sides: ``--baseline`` is a folder of code or a git revision
exported from this repository, and defaults to HEAD so ``make bench`` runs them bare."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from benchmarks import browser

ROOT = Path(__file__).resolve().parents[2]


def _sides(*argv: str) -> dict[str, Path]:
    ap = argparse.ArgumentParser()
    browser.add_side_options(ap)
    return browser.chosen_sides(ap.parse_args(list(argv)))


def test_a_folder_is_the_baseline_as_given(tmp_path: Path) -> None:
    assert _sides("--baseline", str(tmp_path)) == {"case": browser.ROOT,
                                                   "baseline": tmp_path.resolve()}
    assert _sides("--baseline", str(tmp_path), "--only", "baseline") == {
        "baseline": tmp_path.resolve()}


def test_without_a_baseline_head_is_exported_as_committed() -> None:
    sides = _sides()
    exported = sides["baseline"]
    assert exported != browser.ROOT
    try:
        _same_as_committed(exported)
    finally:
        shutil.rmtree(exported)


def _same_as_committed(exported: Path) -> None:
    committed = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:benchmarks/browser.py"],
                               check=True, capture_output=True).stdout
    assert (exported / "benchmarks" / "browser.py").read_bytes() == committed
    assert (exported / "analytics" / "__main__.py").is_file()
