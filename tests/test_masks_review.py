"""A clinician rejects an automatic mask: its organ's numbers are withheld everywhere they
are read (features export, cohort table, Patient page), the review is audited, and a
restore puts the measured values back. Real unenhanced CT (``example_ct_sm``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, select

from analytics import audit
from analytics.cli import main
from analytics.cohort.export import features_frame
from analytics.cohort.table import build_cohort
from analytics.errors import PermissionDeniedError, StoreError
from analytics.features.batch import run_batch
from analytics.store import open_store
from analytics.store.repo import patient_detail
from analytics.store.schema import AuditRecord, Feature, FeatureRun, MaskRejection, Series
from analytics.usecases.context import Context
from analytics.usecases.mask_review import MaskReviewRequest, reject_mask, restore_mask
from tests.features.automask_data import measured_home

CLINICIAN = audit.Actor("dr.grey", "clinician", "s-1")
LIVER_FEATURES = ("liver_hu_mean", "liver_hu_median", "liver_surface_nodularity")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    settings, uids = measured_home(tmp_path_factory.mktemp("review"), synthetic=False)
    store = open_store(settings)
    yield settings, store, uids["real"]
    store.dispose()


def _values(store, uid: str) -> dict[str, tuple[float | None, dict]]:
    with store.session() as s:
        rows = s.execute(select(Feature.name, Feature.value, Feature.flags)
                         .join(Series, Feature.series_id == Series.id)
                         .where(Series.series_uid == uid)).all()
    return {n: (v, f or {}) for n, v, f in rows}


def _patient(store, uid: str) -> str:
    from analytics.store.schema import Patient, Study

    with store.session() as s:
        return s.scalar(select(Patient.pseudonym).join(Study).join(Series)
                        .where(Series.series_uid == uid))


def test_rejecting_the_liver_withholds_its_numbers_everywhere_and_restoring_brings_them_back(
        measured):
    _settings, store, uid = measured
    before = _values(store, uid)
    assert all(before[n][0] is not None for n in LIVER_FEATURES)
    spleen_before = before["spleen_hu_mean"][0]

    out = reject_mask(Context(CLINICIAN, store),
                      MaskReviewRequest(uid, "liver", "outline includes the right kidney"))
    assert out["features_withheld"] >= len(LIVER_FEATURES)
    after = _values(store, uid)
    why = "automatic liver mask rejected by a clinician: outline includes the right kidney"
    for name in (*LIVER_FEATURES, "liver_spleen_hu_diff"):
        value, flags = after[name]
        assert value is None and flags["mask_source"] == "rejected" and flags["reason"] == why
    assert after["spleen_hu_mean"][0] == spleen_before  # the spleen is not touched

    export = features_frame(store).set_index("series_uid").loc[uid]
    assert pd.isna(export["liver_hu_mean"])
    assert export["liver_hu_mean__source"] == "rejected"
    assert export["liver_hu_mean__reason"] == why
    assert export["spleen_hu_mean"] == pytest.approx(spleen_before)
    visits = build_cohort(store).visits
    assert visits["liver_hu_mean"].isna().all()  # what the models train and predict on
    assert visits["spleen_hu_mean"].to_numpy() == pytest.approx([spleen_before])
    bio = patient_detail(store, _patient(store, uid), identified=False).biomarkers
    row = bio[bio["name"] == "liver_hu_mean"].iloc[0]
    assert np.isnan(row["value"]) and row["reason"] == why

    with store.session() as s:
        rej = s.scalar(select(MaskRejection))
        assert (rej.organ, rej.rejected_by, rej.reason) == (
            "liver", "dr.grey", "outline includes the right kidney")
        assert rej.rejected_at is not None and rej.restored_at is None
        rec = s.scalar(select(AuditRecord).where(AuditRecord.action == "mask_reject"))
        assert (rec.username, rec.outcome, rec.uids) == ("dr.grey", "ok", [uid])
        assert rec.detail["mask_id"] == rej.mask_id and rec.detail["organ"] == "liver"

    restore_mask(Context(CLINICIAN, store),
                 MaskReviewRequest(uid, "liver", "checked again: acceptable"))
    assert _values(store, uid) == before
    with store.session() as s:
        rej = s.scalar(select(MaskRejection))
        assert rej.restored_by == "dr.grey" and rej.restored_at is not None
        assert s.scalar(select(AuditRecord.outcome).where(
            AuditRecord.action == "mask_restore")) == "ok"
    assert audit.verify(store).ok


def test_a_rejection_holds_when_the_same_extraction_runs_again(measured):
    settings, store, uid = measured
    reject_mask(Context(CLINICIAN, store),
                MaskReviewRequest(uid, "spleen", "spleen outline leaks into the stomach"))
    with store.session() as s:
        s.execute(delete(FeatureRun))
    run_batch(store, settings, [uid])
    value, flags = _values(store, uid)["spleen_hu_mean"]
    assert value is None and flags["mask_source"] == "rejected"
    restore_mask(Context(CLINICIAN, store), MaskReviewRequest(uid, "spleen"))
    assert _values(store, uid)["spleen_hu_mean"][0] is not None


@pytest.mark.parametrize("role", ["researcher", "admin"])
def test_a_role_without_the_review_permission_is_refused_and_the_refusal_audited(
        measured, role):
    _settings, store, uid = measured
    with pytest.raises(PermissionDeniedError, match=f"{role}.*may not review masks"):
        reject_mask(Context(audit.Actor("someone", role, "s-2"), store),
                    MaskReviewRequest(uid, "liver", "wrong"))
    with store.session() as s:
        assert s.scalar(select(AuditRecord.outcome).where(
            AuditRecord.action == "mask_reject", AuditRecord.role == role)) == "denied"
        assert s.scalar(select(MaskRejection).where(MaskRejection.restored_at.is_(None))) \
            is None


@pytest.mark.parametrize(
    ("organ", "reason", "match"),
    [pytest.param("kidney", "wrong", r"has no 'kidney' \(it holds: liver, spleen\)",
                  id="organ-not-in-mask"),
     pytest.param("liver", "", "reason: empty", id="no-reason"),
     pytest.param("liver", "x" * 201, "reason: 201 characters; at most 200", id="too-long")],
)
def test_a_rejection_without_a_valid_organ_or_reason_is_refused(measured, organ, reason,
                                                                match):
    _settings, store, uid = measured
    with pytest.raises(StoreError, match=match):
        reject_mask(Context(CLINICIAN, store), MaskReviewRequest(uid, organ, reason))


def test_the_cli_rejects_lists_and_restores_under_a_clinicians_account(measured, capsys):
    from analytics.auth import create_user

    settings, store, uid = measured
    create_user(store, "dr.cli", "clinician", "a-long-enough-password")
    create_user(store, "res.cli", "researcher", "a-long-enough-password")
    home = ["--home", str(settings.home)]
    assert main([*home, "masks", "reject", "--series", uid, "--organ", "liver",
                 "--reason", "misses segment 7", "--user", "res.cli"]) == 2
    assert "may not review masks" in capsys.readouterr().err
    assert main([*home, "masks", "reject", "--series", uid, "--organ", "liver",
                 "--reason", "misses segment 7", "--user", "dr.cli", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["organ"] == "liver"
    assert main([*home, "masks", "list", "--series", uid, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["automatic"] and row["format"] == "seg"
    assert row["status"] == {"liver": "rejected: misses segment 7", "spleen": "measured"}
    assert main([*home, "masks", "restore", "--series", uid, "--organ", "liver",
                 "--user", "dr.cli"]) == 0
    assert "restored the automatic liver mask" in capsys.readouterr().out


def test_each_organ_of_an_automatic_mask_has_one_status_and_a_rejection_outranks_the_gate():
    from analytics.masks_review import organ_status

    segments = {"liver": {"voxels": 10, "withheld": "volume 5200 mL, no liver is that big"},
                "spleen": {"voxels": 4}, "aorta": {"voxels": 2}}
    assert organ_status(segments, {"aorta": "not the aorta"}) == {
        "liver": "withheld: volume 5200 mL, no liver is that big", "spleen": "measured",
        "aorta": "rejected: not the aorta"}
    assert organ_status(segments, {"liver": "cuts the kidney"})["liver"] == (
        "rejected: cuts the kidney")


def test_the_legend_names_automatic_outlines_and_only_they_are_offered_for_review():
    from ui.patient_view import overlay_legend, reviewable_outlines

    texts = {"liver": "automatic, withheld: volume 5200 mL", "spleen": "delivered (seg)"}
    assert overlay_legend(("liver", "spleen"), texts) == (
        "Overlay: Liver (bluish green; automatic, withheld: volume 5200 mL), Spleen (orange)")
    assert reviewable_outlines(texts) == {"liver": "Liver: automatic, withheld: volume 5200 mL"}
