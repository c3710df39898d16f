"""``hepatrack train`` / ``predict`` end to end on an imported synthetic cohort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from analytics.cli import main
from analytics.config import load_settings
from analytics.store import open_store
from analytics.store.models import prediction_rows
from analytics.store.schema import AuditRecord, Prediction


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A home with an imported labs-only synthetic cohort (truth.json beside its CSVs)."""
    from analytics.cohort import import_cohort
    from analytics.synthetic import CohortConfig, generate_cohort

    home = tmp_path_factory.mktemp("cli") / "home"
    m = generate_cohort(home / "synthetic", CohortConfig(n_patients=90, seed=3,
                                                         imaging_patients=0))
    store = open_store(load_settings(home))
    import_cohort(store, m.labs_csv, m.outcomes_csv)
    store.dispose()
    return home


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def train_run(home) -> tuple[dict, str]:
    """``hepatrack train --json``: the parsed stdout and the stderr text."""
    import contextlib
    import io

    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        code = main(["--home", str(home), "train", "--cv", "3", "--repeats", "1",
                     "--bootstrap", "5", "--json"])
    assert code == 0
    return json.loads(buf.getvalue()), err.getvalue()


@pytest.fixture(scope="module")
def trained(train_run):
    return train_run[0]


def test_train_prints_its_progress_on_stderr_and_only_json_on_stdout(train_run):
    _payload, err = train_run  # stdout parsed as one JSON document in the fixture
    lines = err.splitlines()
    folds = [ln for ln in lines if "] cross-validation:" in ln]
    assert [ln.split("] ", 1)[1] for ln in folds] == [
        f"cross-validation: {i} of 3 folds done (fold {i} of 3, repeat 1 of 1)"
        for i in (1, 2, 3)]
    assert any("bootstrap intervals: 5 of 5 replicates done" in ln for ln in lines)
    assert lines[-1].endswith("final fit: 1 of 1 fits done (cox on every patient)")
    assert lines[-1].startswith("[100%]")


def test_train_json_contract(trained):
    for key in ("model_id", "model", "event", "n_patients", "cv", "baselines",
                "oracle_c_index"):
        assert key in trained, key
    assert trained["model"] == "cox" and trained["n_patients"] == 90
    assert trained["event"] == ",".join(sorted(set(trained["event"].split(","))))
    assert "transplant" not in trained["event"].split(",")
    assert {"folds", "c_index", "td_auc", "ibs", "calibration_slope"} <= set(trained["cv"])
    assert set(trained["cv"]["td_auc"]) == {"1", "2", "3"}
    assert {"meld", "fib4", "albi"} <= set(trained["baselines"])
    assert 0.5 < trained["oracle_c_index"] <= 1 and trained["truth_file"].endswith("truth.json")


def test_predict_one_patient_with_at(home, trained, capsys):
    settings = load_settings(home)
    store = open_store(settings)
    from analytics.cohort import build_cohort

    visits = build_cohort(store).visits
    pid = visits["patient"].value_counts().index[0]
    code, out, err = _run(capsys, "--home", str(home), "predict", "--patient", pid,
                          "--at", "1.25", "--horizon", "2", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["patient"] == pid and res["model_id"] == trained["model_id"]
    traj = res["trajectory"]
    assert len(traj) == visits[visits["patient"] == pid]["time"].nunique() + 1
    for r in traj:
        assert {"time", "date", "horizon", "risk", "ci", "shap", "base_value", "shap_scale",
                "model_output"} <= set(r)
        assert r["horizon"] == 2.0 and r["shap_scale"] == "log_hazard"
        if r["risk"] is None:
            assert r["reason"]
        else:
            assert r["base_value"] + sum(r["shap"].values()) == pytest.approx(
                r["model_output"], abs=1e-6)
    assert res["at"]["time"] == 1.25 and res["at"]["requested"]
    with store.session() as s:
        n = s.execute(select(func.count()).select_from(Prediction)).scalar_one()
        audited = s.execute(select(func.count()).select_from(AuditRecord)
                            .where(AuditRecord.action == "predict")).scalar_one()
    assert n == len(traj) and audited >= 1
    store.dispose()


def test_predict_all_lists_every_patient(home, trained, capsys):
    code, out, _ = _run(capsys, "--home", str(home), "predict", "--all", "--json")
    assert code == 0
    res = json.loads(out)
    assert isinstance(res, list) and len(res) == 90
    assert out.splitlines()[1:-1] == [json.dumps(r) + "," for r in res[:-1]] + [
        json.dumps(res[-1])]  # one patient per line
    assert all(r["model_id"] == trained["model_id"] for r in res)
    # every patient's trajectory is cached, with the risks printed (one transaction)
    store = open_store(load_settings(home))
    cached = {(r.patient, r.time_years): r.risk for r in prediction_rows(store)
              if r.model_id == trained["model_id"]}
    store.dispose()
    printed = {(p["patient"], row["time"]): row["risk"] for p in res
               for row in p["trajectory"]}
    assert printed.keys() <= cached.keys()  # (an earlier test's --at row may be there too)
    assert len({p for p, _ in cached}) == 90
    assert all(cached[k] == pytest.approx(v, rel=1e-12) if v is not None else cached[k] is None
               for k, v in printed.items())


def _assert_same(a, b, where="") -> None:
    """Equal JSON, numbers to 1e-12 (one patient's matrix and the whole cohort's round the
    last bit differently)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-12), where
    else:
        assert a == b, where


def test_one_patient_scored_from_its_own_rows_equals_its_entry_in_predict_all(home, trained,
                                                                           capsys):
    code, out, _ = _run(capsys, "--home", str(home), "predict", "--all", "--json")
    assert code == 0
    everyone = {r["patient"]: r for r in json.loads(out)}
    # the patients with the most and the fewest visits (different columns measured)
    for pid in (max(everyone, key=lambda p: len(everyone[p]["trajectory"])),
                min(everyone, key=lambda p: len(everyone[p]["trajectory"]))):
        code, out, err = _run(capsys, "--home", str(home), "predict", "--patient", pid,
                              "--json")
        assert code == 0, err
        _assert_same(json.loads(out), everyone[pid])


@pytest.mark.parametrize(("argv", "match"), [
    pytest.param(["predict", "--patient", "NOBODY"], "no visits for this patient",
                 id="unknown-patient"),
    pytest.param(["predict", "--all", "--horizon", "7"], "trained for horizons 1, 2, 3",
                 id="untrained-horizon"),
    pytest.param(["train", "--event", "deth"], "not an event in the cohort", id="bad-event"),
    pytest.param(["train", "--cv", "1"], "at least 2 folds", id="one-fold"),
    pytest.param(["train", "--truth", "/nonexistent/truth.json"], "file not found",
                 id="missing-truth"),
])
def test_bad_input_exits_2_with_one_line(home, trained, capsys, argv, match):
    code, _, err = _run(capsys, "--home", str(home), *argv)
    assert code == 2
    assert match in err and len(err.strip().splitlines()) == 1
