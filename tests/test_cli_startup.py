"""Start-up of the ``hepatrack`` command: each command imports only what it uses, and the
parse workers are started for the work there is.

No timings are asserted here (benchmarks/startup.py measures them); these tests check the
mechanisms that make start-up short, so a change that undoes one fails a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.cli import COMMAND_MODULES, build_parser, load_handler
from analytics.config import IngestLimits
from analytics.ingest.reader import GROUP_FILES, ParsedInstance, SafeParser
from analytics.ingest.sources import SourceItem
from tests.realdata import nifti_ct_as_dicom

ROOT = Path(__file__).resolve().parents[1]
#: what ``hepatrack ingest`` must not import: the models, the cohort, Dask, the dashboard
HEAVY = ("sklearn", "lifelines", "sksurv", "shap", "xgboost", "distributed", "streamlit",
         "plotly", "matplotlib", "reportlab")


@pytest.fixture(scope="module")
def real_slices() -> list[tuple[str, bytes]]:
    """Slices of the real TotalSegmentator CT, written as DICOM files in memory."""
    return nifti_ct_as_dicom()


def _subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


def test_every_command_of_the_parser_has_a_handler_module() -> None:
    assert sorted(COMMAND_MODULES) == _subcommands()
    for name in _subcommands():
        assert callable(load_handler(name)), name


def test_an_unknown_command_has_no_handler() -> None:
    assert load_handler("no-such-command") is None


def test_ingest_of_one_file_imports_neither_models_nor_dask_nor_streamlit(
        tmp_path, real_slices) -> None:
    _name, data = real_slices[10]
    src = tmp_path / "slice.dcm"
    src.write_bytes(data)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # ``python -m analytics.cli`` (not only the ``hepatrack`` entry point) must dispatch
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "analytics.cli", "--home",
         str(tmp_path / "home"), "ingest", str(src), "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["instances"] == 1 and report["series"][0]["slices"] == 1
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "pydicom" in imported and "sqlalchemy" in imported  # the parse really ran
    assert sorted(set(HEAVY) & imported) == []


def test_parse_pool_starts_one_worker_for_one_file(real_slices) -> None:
    parser = SafeParser(IngestLimits(), workers=2)
    try:
        name, data = real_slices[0]
        got = list(parser.parse_many([SourceItem.from_bytes(name, data)]))
        assert isinstance(got[0], ParsedInstance) and got[0].modality == "CT"
        assert len(parser._workers) == 1
    finally:
        parser.close()


def test_parse_pool_grows_to_its_size_for_many_files(real_slices) -> None:
    # one worker takes a group of headers; the second starts for the files past it
    names = [f"{n}.dcm" for n in range(GROUP_FILES + 2)]
    parser = SafeParser(IngestLimits(), workers=2)
    try:
        items = [SourceItem.from_bytes(name, real_slices[n % len(real_slices)][1])
                 for n, name in enumerate(names)]
        got = list(parser.parse_many(items))
        assert sorted(p.name for p in got) == sorted(names)
        assert all(isinstance(p, ParsedInstance) for p in got)
        assert len(parser._workers) == 2
    finally:
        parser.close()


def test_a_group_of_headers_starts_one_worker(real_slices) -> None:
    parser = SafeParser(IngestLimits(), workers=2)
    try:
        items = [SourceItem.from_bytes(n, d) for n, d in real_slices[:6]]
        got = list(parser.parse_many(items))
        assert sorted(p.name for p in got) == sorted(n for n, _ in real_slices[:6])
        assert len(parser._workers) == 1  # six headers: no second worker to start
    finally:
        parser.close()


def test_parse_pool_starts_no_worker_when_no_file_is_dicom() -> None:
    parser = SafeParser(IngestLimits(), workers=2)
    try:
        got = list(parser.parse_many([SourceItem.from_bytes("notes.txt", b"x" * 300)]))
        assert "not a DICOM file" in got[0].reason
        assert parser._workers == []
    finally:
        parser.close()


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["ingest", "--help"], ["features", "--help"],
                                  ["train", "--help"], ["predict", "--help"]])
def test_help_of_any_command_imports_no_command_module_nor_pandas_dask_or_argon2(argv) -> None:
    loaded = _modules_after("from analytics.cli import main\n"
                            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass")
    assert "analytics.cli" in loaded
    assert sorted(m for m in loaded if m.startswith("analytics.commands")) == []
    heavy = ("pandas", "dask", "distributed", "argon2", "analytics.auth", "analytics.models.landmark",
             *HEAVY)
    assert sorted(m for m in loaded if m.split(".")[0] in heavy or m in heavy) == []


def test_importing_the_login_module_computes_no_password_hash() -> None:
    loaded = _modules_after("import analytics.auth as a\n"
                            "assert a._dummy_hash.cache_info().currsize == 0")
    assert "analytics.auth" in loaded


def test_train_defaults_on_the_command_line_are_the_model_settings_defaults() -> None:
    from analytics.models.settings import ModelSettings

    args = build_parser().parse_args(["train"])
    d = ModelSettings()
    assert (args.model, args.horizons, args.cv, args.repeats, args.bootstrap, args.seed) == (
        d.kind, list(d.horizons), d.folds, d.repeats, d.n_bootstrap, d.seed)
    assert args.horizons == [1.0, 2.0, 3.0]


def test_top_level_help_lists_every_command_with_its_help_text(capsys) -> None:
    from analytics.cli import main

    with pytest.raises(SystemExit, match="0"):
        main(["--help"])
    text = capsys.readouterr().out
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    listed = {a.dest: a.help for a in sub._choices_actions}
    assert sorted(listed) == sorted(COMMAND_MODULES)
    for name, help_text in listed.items():
        assert help_text and name in text and help_text.split()[0] in text, name
    assert "predict" in text and "risk trajectory of a patient" in text
