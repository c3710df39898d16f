"""Generate a whole synthetic cohort: patients, visits, labs, outcomes, CT + SEG, truth.

Every random draw comes from a stream keyed by ``(seed, patient index, purpose)``, so a
patient's course does not depend on how many patients are generated or which of them
get imaging, and the same config gives the same bytes. Output is written to a hidden
sibling directory and renamed into place at the end, so an interrupted run never leaves
a half-written cohort at ``out_dir``.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from analytics.errors import ConfigError
from analytics.synthetic import disease as D
from analytics.synthetic.anatomy import draw_anatomy
from analytics.synthetic.config import (
    CohortConfig,
    CohortManifest,
    load_cohort_config,
    with_overrides,
)
from analytics.synthetic.dicom_writer import (
    DicomIdentity,
    _write_ct_series,
    derived_uid,
    write_seg,
)
from analytics.synthetic.elastography import add_elastography, visit_values
from analytics.synthetic.labs import (
    VISIT_COLUMNS,
    LabBaseline,
    LabResponse,
    blank_missing,
    labs_at,
    visit_times,
)
from analytics.synthetic.measurements import (
    MEASURED_COLUMNS,
    OrganSizes,
    baseline_fib4,
    measure_visit,
)
from analytics.synthetic.names import patient_name, synthetic_patient_id
from analytics.synthetic.phantom import synthesize_visit_volume

__all__ = ["CohortConfig", "CohortManifest", "generate_cohort", "load_cohort_config",
           "with_overrides"]

TRUTH_FORMAT = "hepatrack-synthetic-truth"
TRUTH_VERSION = 1
DAYS_PER_YEAR = 365.25
#: imported imaging measurements (``CohortConfig.measured_fib4_min``), cohort CSV format
IMAGING_CSV = "imaging.csv"
_STREAM = {"traits": 0, "anatomy": 1, "visits": 2, "outcome": 3, "labs": 4, "image": 5,
           "portal": 6, "measure": 7, "lab_response": 8, "elastography": 9}


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def _to_date(baseline: date, t_years: float) -> date:
    return baseline + timedelta(days=round(t_years * DAYS_PER_YEAR))


def _years(baseline: date, d: date) -> float:
    return round((d - baseline).days / DAYS_PER_YEAR, 6)


def _choose(rng: np.random.Generator, n: int, fraction: float) -> set[int]:
    k = round(fraction * n)
    return set(rng.permutation(n)[:k].tolist()) if k else set()


def _patient(cfg: CohortConfig, i: int) -> dict[str, Any]:
    """Draw one patient's course: identity, disease, outcome, visits and labs."""
    traits = _rng(cfg.seed, i, _STREAM["traits"])
    sex = "M" if traits.uniform() < 0.5 else "F"
    age0 = float(traits.uniform(35.0, 75.0))
    end = date.fromisoformat(cfg.study_end)
    follow_up = float(traits.uniform(*cfg.follow_up_years))
    baseline = end - timedelta(days=round(follow_up * DAYS_PER_YEAR))
    birth = baseline - timedelta(days=round(age0 * DAYS_PER_YEAR))
    age0 = (baseline - birth).days / DAYS_PER_YEAR
    disease = D.draw_patient_disease(traits, round(age0, 6),
                                     portal_rng=_rng(cfg.seed, i, _STREAM["portal"]))
    follow_up = _years(baseline, end)
    event, t_event = D.sample_outcome(_rng(cfg.seed, i, _STREAM["outcome"]), disease, follow_up)
    # an event on the baseline day would leave the patient without a visit
    event_date = end if event == "censored" else max(_to_date(baseline, t_event),
                                                      baseline + timedelta(days=1))
    vis_rng = _rng(cfg.seed, i, _STREAM["visits"])
    lab_rng = _rng(cfg.seed, i, _STREAM["labs"])
    base_labs = LabBaseline.draw(lab_rng, sex)
    # a stream of its own, so every other draw stays where it was
    lab_response = LabResponse.draw(_rng(cfg.seed, i, _STREAM["lab_response"]))
    # the baseline visit (t = 0, always kept) draws its labs first, as in the loop below;
    # its FIB-4 decides imaging follow-up before the visit schedule is drawn
    first_labs = labs_at(float(disease.stage_at(0.0)), base_labs, lab_rng, lab_response)
    measured = (i >= cfg.n_imaging and cfg.measured_fib4_min is not None
                and baseline_fib4({"labs": first_labs, "age_years": round(age0, 2)})
                >= cfg.measured_fib4_min)
    visits = []
    for t, has_scan in visit_times(vis_rng, _years(baseline, event_date),
                                   max_scans=None if measured else cfg.max_scans_per_patient):
        d = _to_date(baseline, t)
        if d >= event_date or any(v["date"] == d for v in visits):
            continue
        ty = _years(baseline, d)
        stage = float(disease.stage_at(ty))
        visits.append({
            "date": d, "time_years": ty, "latent_stage": round(stage, 6),
            "age_years": round(age0 + ty, 2), "has_scan": has_scan,
            "labs": labs_at(stage, base_labs, lab_rng, lab_response) if visits
            else first_labs,
            "true_log_hazard_by_cause": {c: round(float(v), 6)
                                         for c, v in disease.log_hazards(ty).items()},
        })
    if measured:
        _measure(cfg, i, sex, disease, visits)
    elasto = add_elastography(visits, disease, _rng(cfg.seed, i, _STREAM["elastography"]))
    pid = synthetic_patient_id(cfg.seed, i)
    name = patient_name(traits, sex)
    traits.normal()  # the weight was drawn here; it now follows the BMI and the height
    height = round(float(traits.normal(1.77 if sex == "M" else 1.64, 0.07)), 2)
    return {
        "index": i, "patient_id": pid, "sex": sex, "birth_date": birth,
        "patient_name": name, "baseline_date": baseline,
        "age_at_baseline_years": disease.age_at_baseline_years, "follow_up_end_date": end,
        "disease": disease, "event": event, "event_date": event_date, "measured": measured,
        "event_time_years": _years(baseline, event_date), "visits": visits,
        "weight_kg": round(elasto.bmi_kg_m2 * height * height, 1), "height_m": height,
        "elastography": elasto,
    }


def _measure(cfg: CohortConfig, i: int, sex: str, disease: D.PatientDisease,
             visits: list[dict]) -> None:
    """Imported imaging measurements at every scan visit of patient ``i`` (in place)."""
    rng = _rng(cfg.seed, i, _STREAM["measure"])
    organs = OrganSizes.draw(rng, sex)
    for v in visits:
        if v["has_scan"]:
            v["measurements"] = measure_visit(v["latent_stage"], disease, organs, rng)


def _series_plan(cfg: CohortConfig, patients: list[dict]) -> list[tuple[dict, int, dict]]:
    """Every scan visit of the imaging patients, with its variant (phase, order, grid)."""
    scans = [(p, k) for p in patients[: cfg.n_imaging]
             for k, v in enumerate(p["visits"]) if v["has_scan"]]
    pick = _rng(cfg.seed, 10**6)
    pv = _choose(pick, len(scans), cfg.portal_venous_fraction)
    desc = _choose(pick, len(scans), cfg.descending_fraction)
    aniso = _choose(pick, len(scans), cfg.anisotropic_fraction)
    plan = []
    for j, (p, k) in enumerate(scans):
        shape, spacing, thickness = cfg.shape, cfg.spacing_mm, cfg.spacing_mm[0]
        if j in aniso:
            # overlapping slices (spacing < thickness) and non-square pixels, same coverage
            factors = (0.8, 1.1, 0.9)
            spacing = tuple(round(s * f, 4) for s, f in zip(cfg.spacing_mm, factors, strict=True))
            shape = tuple(round(n * s / t) for n, s, t in zip(cfg.shape, cfg.spacing_mm,
                                                                   spacing, strict=True))
        plan.append((p, k, {
            "contrast_phase": "portal_venous" if j in pv else "unenhanced",
            "slice_order": "descending" if j in desc else "ascending",
            "shape": shape, "spacing_mm": spacing, "slice_thickness_mm": thickness,
        }))
    return plan


def _anatomy(cfg: CohortConfig, p: dict):
    """Patient ``p``'s anatomy: one per patient, shared by all their scans."""
    return draw_anatomy(_rng(cfg.seed, p["index"], _STREAM["anatomy"]), sex=p["sex"])


def _render(cfg: CohortConfig, p: dict, k: int, variant: dict, anatomy):
    """The volume of visit ``k`` of patient ``p``, and the visit's random stream after it."""
    rng = _rng(cfg.seed, p["index"], _STREAM["image"], k)
    body_offset = tuple(float(v) for v in rng.normal(0.0, [4.0, 3.0, 5.0]))
    scanner_offset = (0.0, float(rng.uniform(-10.0, 30.0)), float(rng.uniform(-260.0, -140.0)))
    noise = cfg.noise_sd_hu if cfg.noise_sd_hu is not None else (20.0 if cfg.full else 12.0)
    vol = synthesize_visit_volume(
        p["visits"][k]["latent_stage"], rng, shape=variant["shape"],
        spacing_mm=variant["spacing_mm"], contrast_phase=variant["contrast_phase"],
        lesions=None if cfg.lesions else 0, anatomy=anatomy, disease=p["disease"],
        noise_sd_hu=noise, body_offset_mm=body_offset, scanner_offset_mm=scanner_offset)
    return vol, rng


def render_imaging(config: CohortConfig):
    """Yield ``(patient_id, visit_index, volume)`` for every series ``generate_cohort``
    would write for ``config``, rendered in memory (no DICOM): the same voxels before
    the DICOM writer rounds them to integers, and the same truth masks."""
    cfg = config.validate()
    patients = [_patient(cfg, i) for i in range(cfg.n_imaging)]
    anatomies: dict[int, Any] = {}
    for p, k, variant in _series_plan(cfg, patients):
        if p["index"] not in anatomies:
            anatomies[p["index"]] = _anatomy(cfg, p)
        yield p["patient_id"], k, _render(cfg, p, k, variant, anatomies[p["index"]])[0]


def _write_series(cfg: CohortConfig, root: Path, p: dict, k: int, variant: dict,
                  anatomy, scan_number: int) -> dict[str, Any]:
    """Render, write CT + SEG for visit ``k`` of patient ``p``; returns its truth record."""
    visit = p["visits"][k]
    seed, pid = cfg.seed, p["patient_id"]
    vol, rng = _render(cfg, p, k, variant, anatomy)
    day = visit["date"]
    ident = DicomIdentity(
        patient_id=pid, patient_name=p["patient_name"], birth_date=p["birth_date"],
        sex=p["sex"], study_uid=derived_uid("study", seed, pid, k),
        series_uid=derived_uid("ct-series", seed, pid, k),
        frame_of_reference_uid=derived_uid("frame-of-reference", seed, pid, k),
        study_date=day, study_time=f"{8 + int(rng.integers(9)):02d}{int(rng.integers(60)):02d}"
                                   f"{int(rng.integers(60)):02d}",
        accession_number=f"A{seed % 1000:03d}{p['index'] + 1:05d}{scan_number:02d}",
        study_id=str(scan_number), patient_weight_kg=p["weight_kg"],
        patient_size_m=p["height_m"])
    study_dir = root / "dicom" / pid / f"S{scan_number:02d}_{day:%Y%m%d}"
    files, datasets = _write_ct_series(vol, study_dir / "CT", ident,
                                       slice_order=variant["slice_order"],
                                       slice_thickness_mm=variant["slice_thickness_mm"],
                                       kvp=120.0)
    seg_sop = derived_uid("seg-instance", seed, pid, k)
    seg_path = write_seg(vol, datasets, study_dir / "SEG" / "SEG0001.dcm", ident,
                         seg_series_uid=derived_uid("seg-series", seed, pid, k),
                         seg_sop_uid=seg_sop)
    rec = {
        "patient_id": pid, "study_uid": ident.study_uid, "series_uid": ident.series_uid,
        "frame_of_reference_uid": ident.frame_of_reference_uid,
        "seg_sop_instance_uid": seg_sop, "study_date": day.isoformat(),
        "time_years": visit["time_years"], "series_dir": str(files[0].parent.relative_to(root)),
        "seg_file": str(seg_path.relative_to(root)), "instances": len(files),
        "slice_order": variant["slice_order"],
        "slice_thickness_mm": variant["slice_thickness_mm"],
        "origin_mm": list(vol.origin_mm),
    }
    rec.update(vol.truth)
    return rec


def _patient_series(cfg: CohortConfig, root: Path, p: dict,
                    items: list[tuple[int, dict]]) -> list[dict[str, Any]]:
    """All series of one patient (one anatomy); safe to run in a worker process."""
    anatomy = _anatomy(cfg, p)
    return [_write_series(cfg, root, p, k, variant, anatomy, n)
            for n, (k, variant) in enumerate(items, start=1)]


def _write_imaging(cfg: CohortConfig, root: Path, patients: list[dict],
                   workers: int | None) -> list[dict[str, Any]]:
    """Write every planned series; returns their truth records in plan order."""
    by_patient: dict[int, list[tuple[int, dict]]] = {}
    for p, k, variant in _series_plan(cfg, patients):
        by_patient.setdefault(p["index"], []).append((k, variant))
    n_series = sum(len(v) for v in by_patient.values())
    if workers is None:
        workers = 1
    workers = min(workers, os.cpu_count() or 1) if n_series >= 4 else 1
    jobs = [(patients[i], items) for i, items in by_patient.items()]
    if workers <= 1 or len(jobs) <= 1:
        results = [_patient_series(cfg, root, p, items) for p, items in jobs]
    else:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_patient_series, cfg, root, p, items) for p, items in jobs]
            results = [f.result() for f in futures]
    records = [rec for recs in results for rec in recs]
    uid_of = {(rec["patient_id"], rec["study_date"]): rec["series_uid"] for rec in records}
    for p in patients:
        for v in p["visits"]:
            v["series_uid"] = uid_of.get((p["patient_id"], v["date"].isoformat()))
    return records


def _write_csvs(root: Path, patients: list[dict], missing_fraction: float, seed: int) -> None:
    rows = []
    for p in patients:
        for v in p["visits"]:
            rows.append({"patient_id": p["patient_id"], "date": v["date"].isoformat(),
                         **v["labs"], "age_years": v["age_years"], "sex": p["sex"],
                         **visit_values(v)})
    blank_missing(rows, _rng(seed, 10**6 + 1), missing_fraction)
    with open(root / "labs.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(VISIT_COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in VISIT_COLUMNS})
    measured = [{"patient_id": p["patient_id"], "date": v["date"].isoformat(),
                 **v["measurements"]}
                for p in patients for v in p["visits"] if "measurements" in v]
    if measured:
        with open(root / IMAGING_CSV, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["patient_id", "date", *MEASURED_COLUMNS],
                               lineterminator="\n")
            w.writeheader()
            w.writerows(measured)
    with open(root / "outcomes.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["patient_id", "date", "event"])
        for p in patients:
            w.writerow([p["patient_id"], p["event_date"].isoformat(), p["event"]])


def _patient_truth(p: dict, imaging: bool) -> dict[str, Any]:
    return {
        "patient_id": p["patient_id"], "sex": p["sex"], "birth_date": p["birth_date"].isoformat(),
        "baseline_date": p["baseline_date"].isoformat(),
        "age_at_baseline_years": p["age_at_baseline_years"],
        "follow_up_end_date": p["follow_up_end_date"].isoformat(),
        **p["disease"].describe(),
        "event": p["event"], "event_date": p["event_date"].isoformat(),
        "event_time_years": p["event_time_years"], "imaging": imaging,
        "imported_imaging": p["measured"],
        "bmi_kg_m2": p["elastography"].bmi_kg_m2, "diabetes": p["elastography"].diabetes,
        "lsm_offset": round(p["elastography"].lsm_offset, 6),
        "vcte_referred": p["elastography"].referred,
        "visits": [{
            "date": v["date"].isoformat(), "time_years": v["time_years"],
            "latent_stage": v["latent_stage"], "age_years": v["age_years"],
            "has_scan": v["has_scan"] and imaging,
            "series_uid": v.get("series_uid"),
            "true_log_hazard": v["true_log_hazard_by_cause"][D.EVENT_OF_INTEREST],
            "true_log_hazard_by_cause": v["true_log_hazard_by_cause"],
            **({"measurements": v["measurements"]} if "measurements" in v else {}),
            **({"elastography": v["elastography"]} if "elastography" in v else {}),
        } for v in p["visits"]],
    }


def generate_cohort(out_dir: str | Path, config: CohortConfig | None = None, *,
                    workers: int | None = None) -> CohortManifest:
    """Write a synthetic cohort to ``out_dir`` (which must not exist or be empty).

    Layout: ``labs.csv``, ``outcomes.csv``, ``truth.json`` and
    ``dicom/<patient>/S<nn>_<date>/{CT/IM0001.dcm..., SEG/SEG0001.dcm}``.

    Parameters
    ----------
    out_dir
        Destination directory.
    config
        What to generate (default ``CohortConfig()``).
    workers
        Processes writing imaging (default 1; spawned, so a calling script needs the
        ``if __name__ == "__main__"`` guard). The output does not depend on it.

    Returns
    -------
    CohortManifest

    Raises
    ------
    ConfigError
        If the config is invalid or ``out_dir`` exists and is not an empty directory.
    """
    cfg = (config or CohortConfig()).validate()
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: output directory exists and is not empty; "
                          "choose a new or empty directory")
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        patients = [_patient(cfg, i) for i in range(cfg.n_patients)]
        series_truth = _write_imaging(cfg, staging, patients, workers)
        instances = sum(rec["instances"] for rec in series_truth)
        _write_csvs(staging, patients, cfg.missing_lab_fraction, cfg.seed)
        truth = {
            "format": TRUTH_FORMAT, "version": TRUTH_VERSION,
            "config": {**asdict(cfg), "shape": list(cfg.shape),
                       "spacing_mm": list(cfg.spacing_mm)},
            "event_of_interest": D.EVENT_OF_INTEREST, "causes": list(D.CAUSES),
            "hazard_formula": D.HAZARD_FORMULA,
            "labels": _labels(),
            "patients": [_patient_truth(p, p["index"] < cfg.n_imaging) for p in patients],
            "series": series_truth,
        }
        (staging / "truth.json").write_text(
            json.dumps(truth, indent=1, sort_keys=True, allow_nan=False) + "\n",
            encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    events = Counter(p["event"] for p in patients)
    return CohortManifest(
        out_dir=out, labs_csv=out / "labs.csv", outcomes_csv=out / "outcomes.csv",
        truth_json=out / "truth.json",
        imaging_csv=out / IMAGING_CSV if (out / IMAGING_CSV).exists() else None,
        n_measured_patients=sum(p["measured"] for p in patients),
        series_dirs=[out / s["series_dir"] for s in series_truth],
        seg_files=[out / s["seg_file"] for s in series_truth], config=cfg,
        n_patients=len(patients), n_visits=sum(len(p["visits"]) for p in patients),
        n_instances=instances, events=dict(sorted(events.items())),
        seconds=time.perf_counter() - started)


def _labels() -> dict[str, int]:
    from analytics.synthetic.phantom import LABELS

    return dict(LABELS)
