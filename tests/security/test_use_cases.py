"""Every use case checks the actor's permission in the engine (whatever the page shows)
and writes exactly one audit record per action, before the action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from analytics import audit, auth
from analytics.audit import Actor
from analytics.config import PacsSettings
from analytics.errors import PermissionDeniedError
from analytics.store import open_store
from analytics.store.schema import AuditRecord, ModelRecord
from analytics.usecases import admin, cohort, mask_review, mdt, models, report
from analytics.usecases import identity as identity_uc
from analytics.usecases import ingest as ingest_uc
from analytics.usecases import series_repair as repair_uc
from analytics.usecases.context import Context, record_view
from tests.store.seed import seed_small_cohort

CLINICIAN = Actor("dr.grey", "clinician", "s1")
RESEARCHER = Actor("ana.res", "researcher", "s2")
ADMIN = Actor("root.admin", "admin", "s3")
NOBODY = Actor("x", "nobody", "s4")  # a role that grants nothing
VISITS = pd.DataFrame({"patient_id": ["P1"], "time": [0.0], "inr": [1.1]})
OUTCOMES = pd.DataFrame({"patient_id": ["P1"], "time": [2.0], "event": ["censored"]})
PACS = PacsSettings(name="env", url="http://127.0.0.1:9/dicom-web")


def _pack(identified: bool) -> report.ReportResult:
    return report.ReportResult(pdf=b"%PDF", pages=1, patients=["HT-0001"], model_id=None,
                               identified=identified)


#: (use case, actor lacking its permission, audited action, message)
REFUSALS: list[tuple[str, Callable[[Context, Any], Any], Actor, str, str]] = [
    ("ingest_upload", lambda c, t: ingest_uc.ingest_upload(
        c, ingest_uc.UploadRequest([("a.dcm", b"DICM")])), RESEARCHER, "upload",
     "may not ingest"),
    ("ingest_paths", lambda c, t: ingest_uc.ingest_paths(
        c, ingest_uc.PathsRequest([t])), RESEARCHER, "ingest", "may not ingest"),
    ("search_pacs", lambda c, t: ingest_uc.search_pacs(
        c, ingest_uc.PacsSearchRequest(PACS)), RESEARCHER, "pacs_link", "may not ingest"),
    ("link_pacs", lambda c, t: ingest_uc.link_pacs(c, ingest_uc.PacsLinkRequest(
        [PACS.url + "/studies/1.2.3"], "env")), RESEARCHER, "pacs_link", "may not ingest"),
    ("import_cohort", lambda c, t: cohort.import_cohort(
        c, cohort.ImportRequest(VISITS, OUTCOMES)), RESEARCHER, "import_cohort",
     "may not ingest"),
    ("export_table", lambda c, t: cohort.export(
        c, cohort.ExportRequest("features", t / "f.csv")), NOBODY, "export",
     "may not export pseudonymised"),
    ("export_masks", lambda c, t: cohort.export(
        c, cohort.ExportRequest("masks", t / "masks")), NOBODY, "export",
     "may not export pseudonymised"),
    ("train", lambda c, t: models.train(c, models.TrainRequest(
        None, models.ModelSettings())), CLINICIAN, "train", "may not train"),
    ("predict", lambda c, t: models.predict(c, models.PredictRequest()), NOBODY, "predict",
     "may not predict"),
    ("activate_model", lambda c, t: models.activate_model(c, "cox-1"), RESEARCHER,
     "activate_model", "may not activate model"),
    ("list_masks", lambda c, t: mask_review.list_masks(c), NOBODY, "view_cohort",
     "may not view pseudonymised"),
    ("reject_mask", lambda c, t: mask_review.reject_mask(
        c, mask_review.MaskReviewRequest("1.2.3", "liver", "wrong")), RESEARCHER,
     "mask_reject", "may not review masks"),
    ("restore_mask", lambda c, t: mask_review.restore_mask(
        c, mask_review.MaskReviewRequest("1.2.3", "liver")), ADMIN, "mask_restore",
     "may not review masks"),
    ("add_note", lambda c, t: mdt.add_note(c, mdt.NoteRequest("HT-0001", "text")),
     RESEARCHER, "note", "may not write notes"),
    ("notes_for", lambda c, t: mdt.notes_for(c, ["HT-0001"]), RESEARCHER, "view_patient",
     "may not view identified"),
    ("record_discussion", lambda c, t: mdt.record_discussion(c, mdt.MdtRecordRequest(
        "HT-0001", "m", decision="x")), RESEARCHER, "note", "may not write notes"),
    ("records_for", lambda c, t: mdt.records_for(c, ["HT-0001"]), RESEARCHER,
     "view_patient", "may not view identified"),
    ("mdt_pack", lambda c, t: report.build_mdt_report(
        c, report.ReportRequest(["HT-0001"], identified=True)), RESEARCHER, "export",
     "may not export identified"),
    ("download_pack", lambda c, t: report.download_pack(c, _pack(True)), ADMIN, "export",
     "may not export identified"),
    ("audit_trail", lambda c, t: admin.audit_trail(c), CLINICIAN, "audit_view",
     "may not view audit"),
    ("users", lambda c, t: admin.users(c), RESEARCHER, "user_change", "may not manage users"),
    ("add_user", lambda c, t: admin.add_user(
        c, admin.NewUser("eve.x", "admin", "a long enough secret")), CLINICIAN, "user_add",
     "may not manage users"),
    ("change_role", lambda c, t: admin.change_role(c, admin.RoleChange("eve.x", "admin")),
     CLINICIAN, "user_change", "may not manage users"),
    ("set_account_status", lambda c, t: admin.set_account_status(
        c, admin.AccountStatus("eve.x", True)), RESEARCHER, "user_change",
     "may not manage users"),
    ("reset_password", lambda c, t: admin.reset_password(c, admin.PasswordReset("eve.x")),
     CLINICIAN, "user_change", "may not manage users"),
    ("export_audit", lambda c, t: admin.export_audit(c, admin.AuditFilter()), CLINICIAN,
     "export", "may not view audit"),
    ("download_table", lambda c, t: cohort.download_table(c, cohort.TableDownload(
        VISITS, "cohort_table", identified=True)), RESEARCHER, "export",
     "may not export identified"),
    ("settings_view", lambda c, t: admin.settings_view(c), CLINICIAN, "settings_change",
     "may not change settings"),
    ("change_setting", lambda c, t: admin.change_setting(
        c, admin.SettingChange("deidentify", False)), RESEARCHER, "settings_change",
     "may not change settings"),
    ("record_view", lambda c, t: record_view(c, "view_patient", patient="HT-0001"), NOBODY,
     "view_patient", "may not view pseudonymised"),
    ("list_held_studies", lambda c, t: identity_uc.list_held_studies(c), RESEARCHER,
     "view_patient", "may not ingest"),
    ("resolve_held_study", lambda c, t: identity_uc.resolve_held_study(
        c, identity_uc.ResolveRequest(1, "same")), RESEARCHER, "identity_resolve",
     "may not ingest"),
    ("resolve_held_study_admin", lambda c, t: identity_uc.resolve_held_study(
        c, identity_uc.ResolveRequest(1, "same")), ADMIN, "identity_resolve",
     "may not view identified"),
    ("complete_series", lambda c, t: repair_uc.complete_series(
        c, repair_uc.SeriesFilesRequest("2.25.31")), RESEARCHER, "series_complete",
     "may not ingest"),
    ("replace_series", lambda c, t: repair_uc.replace_series(
        c, repair_uc.SeriesFilesRequest("2.25.31")), RESEARCHER, "series_replace",
     "may not ingest"),
    ("remove_series", lambda c, t: repair_uc.remove_series(c, "2.25.31"), RESEARCHER,
     "series_remove", "may not ingest"),
]


@pytest.fixture
def store(settings):
    settings.ensure_home()
    st = open_store(settings)
    seed_small_cohort(st)
    yield st
    st.dispose()


def _trail(store) -> list[tuple[str, str, str]]:
    with store.session() as s:
        return [tuple(r) for r in s.execute(
            select(AuditRecord.action, AuditRecord.outcome, AuditRecord.username)
            .order_by(AuditRecord.seq)).all()]


@pytest.mark.parametrize(("name", "call", "actor", "action", "match"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_every_use_case_refuses_a_role_without_its_permission(
        store, settings, tmp_path, name, call, actor, action, match):
    with pytest.raises(PermissionDeniedError, match=rf"{actor.username} \({actor.role}\) {match}"):
        call(Context(actor, store, settings), tmp_path)
    # the refusal is the one record: nothing was done, nothing else was written
    assert _trail(store) == [(action, "denied", actor.username)]
    assert not (tmp_path / "f.csv").exists() and not (tmp_path / "masks").exists()
    assert (settings.home / "config.toml").exists() is False


def _model(store) -> None:
    with store.session() as s:
        s.add(ModelRecord(model_id="cox-1", kind="cox", event="x", horizons=[1.0],
                          content_sha256="0" * 64, training_data_sha256="0" * 64,
                          artifact_path="models/none", features=[], training_ranges={},
                          metrics={}, card={}, active=False))


def _account(c: Context) -> None:
    """A researcher account to change, made without a use case (no record)."""
    auth.create_user(c.store, "eve.x", "researcher", "a long enough secret")


#: (use case, actor allowed to use it, its one audited action)
ACTIONS: list[tuple[str, Callable[[Context, Any], Any], Actor, str]] = [
    ("import_cohort", lambda c, t: cohort.import_cohort(
        c, cohort.ImportRequest(VISITS, OUTCOMES)), CLINICIAN, "import_cohort"),
    ("export_table", lambda c, t: cohort.export(
        c, cohort.ExportRequest("cohort", t / "c.csv")), RESEARCHER, "export"),
    ("activate_model", lambda c, t: (_model(c.store), models.activate_model(c, "cox-1")),
     ADMIN, "activate_model"),
    ("add_note", lambda c, t: mdt.add_note(c, mdt.NoteRequest("HT-0001", "text")),
     CLINICIAN, "note"),
    ("record_discussion", lambda c, t: mdt.record_discussion(c, mdt.MdtRecordRequest(
        "HT-0001", "m", question="q", discussion="d", decision="x")), CLINICIAN, "note"),
    ("add_user", lambda c, t: admin.add_user(
        c, admin.NewUser("eve.x", "researcher", "a long enough secret")), ADMIN, "user_add"),
    ("change_setting", lambda c, t: admin.change_setting(
        c, admin.SettingChange("session_timeout_min", 15)), ADMIN, "settings_change"),
    ("change_role", lambda c, t: (_account(c), admin.change_role(
        c, admin.RoleChange("eve.x", "clinician"))), ADMIN, "user_change"),
    ("set_account_status", lambda c, t: (_account(c), admin.set_account_status(
        c, admin.AccountStatus("eve.x", True))), ADMIN, "user_change"),
    ("reset_password", lambda c, t: (_account(c), admin.reset_password(
        c, admin.PasswordReset("eve.x"))), ADMIN, "user_change"),
    ("export_audit", lambda c, t: admin.export_audit(c, admin.AuditFilter()), ADMIN,
     "export"),
    ("download_table", lambda c, t: cohort.download_table(c, cohort.TableDownload(
        VISITS, "cohort_table", identified=True)), CLINICIAN, "export"),
    ("download_pack", lambda c, t: report.download_pack(c, _pack(False)), RESEARCHER,
     "export"),
    ("remove_series", lambda c, t: repair_uc.remove_series(c, "2.25.31"), ADMIN,
     "series_remove"),
]


@pytest.mark.parametrize(("name", "call", "actor", "action"), ACTIONS,
                         ids=[a[0] for a in ACTIONS])
def test_one_action_writes_exactly_one_audit_record(store, settings, tmp_path, name, call,
                                                    actor, action):
    call(Context(actor, store, settings), tmp_path)
    assert _trail(store) == [(action, "ok", actor.username)]
    assert audit.verify(store).ok


def test_an_upload_writes_one_record_and_the_ingest_stage_none(store, settings):
    from tests.ingest.dicom_samples import Study, ct_series, encode

    files = [(f"{i}.dcm", encode(ds)) for i, ds in enumerate(ct_series(Study(), 2))]
    rep = ingest_uc.ingest_upload(Context(CLINICIAN, store, settings),
                                  ingest_uc.UploadRequest(files))
    assert rep.instances == 2
    assert _trail(store) == [("upload", "ok", "dr.grey")]
