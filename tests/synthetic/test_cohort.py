"""The generated cohort: files, CSV contracts, truth, variety, determinism, disease model."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest

from analytics.cli import main
from analytics.errors import ConfigError
from analytics.synthetic import CohortConfig, generate_cohort, load_cohort_config
from analytics.synthetic.labs import LAB_COLUMNS, VISIT_COLUMNS
from analytics.synthetic.names import synthetic_patient_id

EVENTS = {"decompensation", "hcc", "death", "transplant", "censored"}
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "demo.toml"


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_manifest_points_at_every_output(synthetic_cohort):
    m = synthetic_cohort
    truth = m.truth()
    assert truth["format"] == "hepatrack-synthetic-truth" and truth["version"] == 1
    assert len(truth["patients"]) == m.n_patients == 8
    assert len(truth["series"]) == len(m.series_dirs) == len(m.seg_files) == 6
    for rec, d, seg in zip(truth["series"], m.series_dirs, m.seg_files, strict=True):
        assert d == m.out_dir / rec["series_dir"] and d.is_dir() and seg.is_file()
        files = sorted(d.glob("*.dcm"))
        assert len(files) == rec["instances"] == rec["shape"][0]
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert ds.SeriesInstanceUID == rec["series_uid"]
        assert ds.StudyInstanceUID == rec["study_uid"]
        assert ds.PatientID == rec["patient_id"]
        assert ds.StudyDate == rec["study_date"].replace("-", "")
        assert pydicom.dcmread(seg, stop_before_pixels=True).SOPInstanceUID == \
            rec["seg_sop_instance_uid"]


def test_series_variety_for_other_areas(synthetic_cohort):
    series = synthetic_cohort.truth()["series"]
    assert sum(s["contrast_phase"] == "portal_venous" for s in series) == 2
    assert sum(s["slice_order"] == "descending" for s in series) == 2
    aniso = [s for s in series if s["spacing_mm"][1] != s["spacing_mm"][2]]
    assert len(aniso) == 2
    assert all(s["slice_thickness_mm"] > s["spacing_mm"][0] for s in aniso)


def test_truth_volumes_equal_seg_voxel_counts(synthetic_cohort):
    m = synthetic_cohort
    for rec, seg_path in zip(m.truth()["series"], m.seg_files, strict=True):
        seg = hd.seg.segread(seg_path)
        numbers = {s.SegmentLabel: s.SegmentNumber for s in seg.SegmentSequence}
        voxel_ml = float(np.prod(rec["spacing_mm"])) / 1000.0
        uids = [it.ReferencedSOPInstanceUID
                for it in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
        arr = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids, segment_numbers=sorted(numbers.values()))
        counts = dict(zip(sorted(numbers, key=numbers.get),
                          (arr > 0).sum(axis=(0, 1, 2)).tolist(), strict=True))
        assert counts["Liver"] * voxel_ml == pytest.approx(rec["liver_volume_ml"], rel=1e-9)
        assert counts["Spleen"] * voxel_ml == pytest.approx(rec["spleen_volume_ml"], rel=1e-9)
        assert counts["Hepatic vessels"] / counts["Liver"] == pytest.approx(
            rec["liver_vessel_fraction"], rel=1e-9)
        assert ("Liver lesion" in counts) == (rec["lesion_count"] > 0)


def test_visits_csv_contract(synthetic_cohort, labs_only):
    for m in (synthetic_cohort, labs_only):
        with open(m.labs_csv, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        assert header == list(VISIT_COLUMNS)
    labs = pd.read_csv(labs_only.labs_csv, parse_dates=["date"])
    outcomes = pd.read_csv(labs_only.outcomes_csv, parse_dates=["date"])
    assert list(outcomes.columns) == ["patient_id", "date", "event"]
    assert set(outcomes["event"]) <= EVENTS
    assert outcomes["patient_id"].is_unique and len(outcomes) == 2000
    assert not labs.duplicated(["patient_id", "date"]).any()
    missing = labs[list(LAB_COLUMNS)].isna().to_numpy().mean()
    assert 0.035 < missing < 0.065
    assert labs[["age_years", "sex"]].notna().all().all()
    assert set(labs["sex"]) == {"F", "M"}
    last_visit = labs.groupby("patient_id")["date"].max()
    end = outcomes.set_index("patient_id")["date"]
    assert (last_visit < end.loc[last_visit.index]).all()
    # plausible units
    assert labs["platelets_10e9_l"].dropna().between(20, 600).all()
    assert labs["albumin_g_dl"].dropna().between(1.5, 6.0).all()
    assert labs["bilirubin_mg_dl"].dropna().between(0.1, 30).all()
    assert labs["inr"].dropna().between(0.8, 4).all()


def test_labs_are_drawn_more_often_than_scans(synthetic_cohort):
    truth = synthetic_cohort.truth()
    labs = pd.read_csv(synthetic_cohort.labs_csv)
    for p in truth["patients"][:3]:
        scans = [v for v in p["visits"] if v["has_scan"]]
        lab_rows = labs[labs["patient_id"] == p["patient_id"]]
        assert len(scans) == 2
        assert len(lab_rows) > len(scans)
        dates = set(lab_rows["date"])
        assert all(v["date"] in dates for v in scans)  # a scan visit also has labs
        series_dates = {s["study_date"] for s in truth["series"]
                        if s["patient_id"] == p["patient_id"]}
        assert series_dates == {v["date"] for v in scans}


def test_event_rate_in_the_expected_range(labs_only):
    outcomes = pd.read_csv(labs_only.outcomes_csv)
    rate = (outcomes["event"] == "decompensation").mean()
    # measured 0.15 at seed 7, 2,000 patients (cirrhosis decompensates at 5-8 %/year;
    # analytics/synthetic/disease.py); the composite of decompensation, hcc and death 0.30
    assert 0.08 <= rate <= 0.20
    liver_or_death = outcomes["event"].isin(["decompensation", "hcc", "death"]).mean()
    assert 0.22 <= liver_or_death <= 0.40
    assert set(outcomes["event"]) == EVENTS  # every competing event occurs
    truth = labs_only.truth()
    follow_up = [p["event_time_years"] for p in truth["patients"] if p["event"] == "censored"]
    assert min(follow_up) >= 4.99 and max(follow_up) <= 8.01


def test_true_hazard_ranks_outcomes(labs_only):
    """The true log hazard is what drives events: at each decompensation, the patient's
    hazard then exceeds that of most patients still at risk (measured 0.767 at seed 7;
    the baseline hazard alone ranks worse, 0.686, as the stage keeps progressing)."""
    from analytics.models.training import load_truth

    oracle = load_truth(labs_only.truth_json)
    truth = labs_only.truth()
    pid = np.array([p["patient_id"] for p in truth["patients"]])
    t = np.array([p["event_time_years"] for p in truth["patients"]])
    e = np.array([p["event"] == "decompensation" for p in truth["patients"]])
    pairs = concordant = 0.0
    for i in np.flatnonzero(e):
        at_risk = pid[t > t[i]]
        lh = oracle.log_hazard(np.append(pid[i], at_risk), np.full(len(at_risk) + 1, t[i]),
                               ("decompensation",))
        concordant += (lh[1:] < lh[0]).sum() + 0.5 * (lh[1:] == lh[0]).sum()
        pairs += len(at_risk)
    assert concordant / pairs > 0.74
    for p in truth["patients"][:40]:
        v = p["visits"][-1]
        hz = p["hazards"]["decompensation"]
        # the published liver-related rate ratios vs F0 (Dulai 2017) at F0..F4
        assert hz["stage_knots"] == [0.0, 1.0, 1.5, 2.0, 3.0, 4.0]
        assert hz["stage_rr"] == [1.0, 1.0, 1.41, 9.57, 16.69, 42.30]
        assert hz["beta_stage"] == 0.0
        stage = float(np.clip(p["stage0"] + p["progression_per_year"] * v["time_years"], 0, 4))
        k = max(i for i, x in enumerate(hz["stage_knots"]) if x <= stage)
        k = min(k, len(hz["stage_knots"]) - 2)
        (s0, s1), (r0, r1) = hz["stage_knots"][k:k + 2], hz["stage_rr"][k:k + 2]
        log_rr = np.log(r0) + (stage - s0) / (s1 - s0) * np.log(r1 / r0)
        expected = (hz["log_h0"] + log_rr + hz["beta_age_per_decade"]
                    * (p["age_at_baseline_years"] + v["time_years"] - hz["age_ref_years"]) / 10)
        # the patient's portal pressure, in proportion to portal hypertension (Ripoll 2007)
        a, b = hz["portal_knots"]
        u = min(max((stage - a) / (b - a), 0.0), 1.0)
        expected += hz["beta_portal"] * p["portal_pressure_z"] * u * u * (3 - 2 * u)
        assert v["true_log_hazard"] == pytest.approx(expected, abs=1e-5)
        assert v["latent_stage"] == pytest.approx(stage, abs=1e-5)


def test_oracle_truth_recomputes_the_generator_hazards(labs_only):
    """``Truth.log_hazard`` (the oracle) equals the generator's hazards at any time."""
    from analytics.models.training import load_truth
    from analytics.synthetic.cohort import _patient

    truth = load_truth(labs_only.truth_json)
    rng = np.random.default_rng(0)
    idx = rng.choice(labs_only.config.n_patients, 60, replace=False)
    diseases = {synthetic_patient_id(labs_only.config.seed, int(i)):
                    _patient(labs_only.config, int(i))["disease"]
                for i in idx}
    patients = np.repeat(list(diseases), 5)
    times = rng.uniform(0.0, 8.0, len(patients))
    for causes in [("decompensation",), ("death",), ("death", "decompensation", "hcc")]:
        got = truth.log_hazard(patients, times, causes)
        want = [np.logaddexp.reduce([diseases[p].log_hazards(t)[c] for c in causes])
                for p, t in zip(patients, times, strict=True)]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # crossing the knots: stages 0-4 all occur among the sampled times
    stages = [diseases[p].stage_at(t) for p, t in zip(patients, times, strict=True)]
    assert min(stages) < 1.0 and max(stages) == 4.0
    assert any(1.5 < s < 2.0 for s in stages)


def test_labs_follow_the_latent_stage(labs_only):
    truth = labs_only.truth()
    stage = {(p["patient_id"], v["date"]): v["latent_stage"]
             for p in truth["patients"] for v in p["visits"]}
    labs = pd.read_csv(labs_only.labs_csv)
    labs["stage"] = [stage[(a, b)] for a, b in zip(labs["patient_id"], labs["date"],
                                                   strict=True)]
    rho = labs[["stage", "platelets_10e9_l", "bilirubin_mg_dl", "albumin_g_dl", "inr"]].corr(
        method="spearman")["stage"]
    assert rho["platelets_10e9_l"] < -0.4
    assert rho["bilirubin_mg_dl"] > 0.3
    assert rho["albumin_g_dl"] < -0.3
    assert rho["inr"] > 0.3
    cirrhotic = labs[labs["stage"] > 3.5]["platelets_10e9_l"].median()
    healthy = labs[labs["stage"] < 0.5]["platelets_10e9_l"].median()
    assert 150 < healthy < 350 and cirrhotic < 0.6 * healthy


def test_stage_never_decreases_within_a_patient(labs_only):
    for p in labs_only.truth()["patients"]:
        stages = [v["latent_stage"] for v in p["visits"]]
        assert all(a <= b + 1e-9 for a, b in itertools.pairwise(stages))


def test_same_config_same_bytes_other_seed_differs(tmp_path: Path):
    cfg = CohortConfig(n_patients=3, seed=5, imaging_patients=1, max_scans_per_patient=1)
    a = generate_cohort(tmp_path / "a", cfg)
    b = generate_cohort(tmp_path / "b", cfg)
    c = generate_cohort(tmp_path / "c", CohortConfig(n_patients=3, seed=6, imaging_patients=0))
    assert _tree_hash(a.out_dir) == _tree_hash(b.out_dir)
    assert a.labs_csv.read_bytes() != c.labs_csv.read_bytes()
    # a patient's course does not depend on how many patients are generated
    d = generate_cohort(tmp_path / "d", CohortConfig(n_patients=5, seed=5, imaging_patients=0))
    pa, pd_ = a.truth()["patients"][0], d.truth()["patients"][0]
    assert pa["event_date"] == pd_["event_date"] and pa["stage0"] == pd_["stage0"]


def test_cli_writes_a_cohort_and_reports_json(tmp_path: Path, capsys):
    out = tmp_path / "cli"
    code = main(["synth", "--patients", "4", "--imaging-patients", "0", "--seed", "3",
                 "--out", str(out), "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["patients"] == 4 and payload["imaging_patients"] == 0
    assert payload["series"] == len(json.loads((out / "truth.json").read_text())["series"])
    assert sum(payload["events"].values()) == 4
    # a second run into the same, now non-empty directory is refused with exit 2
    assert main(["synth", "--patients", "4", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_demo_config_loads():
    cfg = load_cohort_config(SAMPLE)
    assert cfg.n_patients == 2000 and cfg.imaging_patients == 12 and cfg.seed == 7
    assert cfg.measured_fib4_min == 1.3


@pytest.mark.parametrize(("text", "match"), [
    pytest.param("[cohort]\nn_patient = 3\n", "unknown keys", id="unknown-key"),
    pytest.param("[cohort]\nn_patients = 0\n", "n_patients", id="no-patients"),
    pytest.param("[cohort]\nn_patients = 3\nimaging_patients = 4\n", "imaging_patients",
                 id="more-imaging-than-patients"),
    pytest.param("[cohort]\nportal_venous_fraction = 1.5\n", "portal_venous_fraction",
                 id="fraction-above-one"),
    pytest.param("[cohort]\nstudy_end = \"end of 2024\"\n", "study_end", id="bad-date"),
    pytest.param("[cohort\n", "cannot read", id="not-toml"),
    pytest.param("[cohort]\nmeasured_fib4_min = -1\n", "measured_fib4_min",
                 id="negative-fib4-cut-off"),
])
def test_bad_cohort_config_is_rejected(tmp_path: Path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_cohort_config(path)


def test_failure_midway_leaves_nothing_behind(tmp_path: Path):
    cfg = CohortConfig(n_patients=2, imaging_patients=1, max_scans_per_patient=1,
                       noise_sd_hu=-5.0)
    with pytest.raises(ConfigError, match="noise_sd_hu"):
        generate_cohort(tmp_path / "out", cfg)
    assert list(tmp_path.iterdir()) == []


def test_a_cohort_of_another_seed_never_reuses_a_patient_id_of_the_demo():
    from analytics.synthetic.cohort import _patient
    from analytics.usecases.demo import demo_config

    demo = demo_config(patients=20)
    other = CohortConfig(n_patients=20, seed=demo.seed + 1).validate()
    demo_ids = {_patient(demo, i)["patient_id"] for i in range(20)}
    other_ids = {_patient(other, i)["patient_id"] for i in range(20)}
    assert demo_ids.isdisjoint(other_ids)
    assert _patient(demo, 0)["patient_id"] == f"SYN{demo.seed}-0001"
    # one ID names one synthetic person: the same seed draws the same identity
    same = CohortConfig(n_patients=3, seed=demo.seed).validate()
    assert ({k: _patient(same, 0)[k] for k in ("patient_id", "patient_name", "birth_date")}
            == {k: _patient(demo, 0)[k] for k in ("patient_id", "patient_name", "birth_date")})
