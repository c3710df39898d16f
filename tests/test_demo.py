"""The demo's stages run as the system account through the use cases: each stage writes its
one audit record, and the demo accounts are made once."""

from __future__ import annotations

from sqlalchemy import select

from analytics import audit, auth
from analytics.features.batch import run_batch
from analytics.store import key_images, open_store
from analytics.store.repo import cohort_summary
from analytics.store.schema import AuditRecord
from analytics.usecases.context import Context
from analytics.usecases.demo import DEMO_USERS, _accounts, _load
from analytics.usecases.keyview import render_missing


def test_the_demo_loads_the_sample_and_makes_its_accounts_once(settings, synthetic_cohort):
    settings.ensure_home()
    store = open_store(settings)
    try:
        ctx = Context.cli(store, settings)
        out: dict = {}
        _load(ctx, synthetic_cohort.out_dir, cohort_summary(store), out, lambda _m: None)
        assert out["ingest"]["series_ingested"] == 6 and out["ingest"]["rejected"] == 0
        assert out["import"]["patients"] == 8
        first = _accounts(ctx, settings)
        again = _accounts(ctx, settings)
        assert first == again and sorted(first) == sorted(u for u, _r in DEMO_USERS)
        assert {u["username"] for u in auth.list_users(store)} == set(first)
        with store.session() as s:
            trail = s.execute(select(AuditRecord.action, AuditRecord.outcome,
                                     AuditRecord.username).order_by(AuditRecord.seq)).all()
        assert [tuple(r) for r in trail] == [
            ("ingest", "ok", "system"), ("import_cohort", "ok", "system"),
            *[("user_add", "ok", "system")] * len(DEMO_USERS)]
        assert audit.verify(store).ok
    finally:
        store.dispose()


def test_the_demo_stores_each_scanned_patients_key_image_after_extraction(
        settings, synthetic_cohort):
    settings.ensure_home()
    store = open_store(settings)
    try:
        ctx = Context.cli(store, settings)
        _load(ctx, synthetic_cohort.out_dir, cohort_summary(store), {}, lambda _m: None)
        run_batch(store, settings, workers=1)
        newest = key_images.newest_series(store, 5000)
        assert newest  # the fixture's CT patients
        # the stage the demo runs after extraction
        first = render_missing(store, settings)
        assert first == {"rendered": len(newest), "current": 0, "failed": 0}
        assert all(key_images.read(store, uid) is not None for uid in newest)
        # a later run (or the dashboard's warm-up) finds every one current
        assert render_missing(store, settings) == {"rendered": 0, "current": len(newest),
                                                   "failed": 0}
    finally:
        store.dispose()
