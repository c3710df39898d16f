"""Features after an upload on the Ingest page run on the dashboard's warm feature worker:
the page starts it when it opens, an upload's series are extracted on it (no
``hepatrack features`` process per upload) and it stays up for the next upload. The page
starts its parse workers too: the upload is parsed and de-identified on them (no pool
started per upload), and they stay up as well."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from analytics.config import load_settings
from analytics.features import warm
from analytics.ingest import pipeline
from analytics.ingest import warm as warm_parse
from analytics.store import open_store
from analytics.store.schema import Feature, Series
from analytics.synthetic import DicomIdentity
from analytics.synthetic.dicom_writer import _write_ct_series, derived_uid, seg_segments, write_seg
from analytics.synthetic.phantom import synthesize_visit_volume
from tests.app.conftest import new_app
from ui.session import Viewer

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")


@pytest.fixture(scope="module")
def upload_files(tmp_path_factory) -> tuple[list[tuple[str, bytes]], float]:
    """A synthetic CT with its SEG as uploaded files, and its liver volume (mL) counted
    by hand from the label map the SEG was written from."""
    out = tmp_path_factory.mktemp("upload")
    ident = DicomIdentity("WARM-1", "WARM^ONE", date(1961, 2, 3), "F", derived_uid("w-st"),
                          derived_uid("w-se"), derived_uid("w-for"), date(2023, 5, 6),
                          "101500", "W1")
    vol = synthesize_visit_volume(1.5, np.random.default_rng(5), lesions=0)
    _, datasets = _write_ct_series(vol, out / "CT", ident, slice_order="ascending",
                                   slice_thickness_mm=None, kvp=120.0)
    write_seg(vol, datasets, out / "seg.dcm", ident, seg_series_uid=derived_uid("w-seg"),
              seg_sop_uid=derived_uid("w-sop"))
    liver_values = next(values for label, values, *_ in seg_segments(vol) if label == "Liver")
    voxel_ml = float(np.prod(vol.spacing_mm)) / 1000.0
    liver_ml = float(np.isin(vol.labels, liver_values).sum()) * voxel_ml
    files = [(p.relative_to(out).as_posix(), p.read_bytes())
             for p in sorted(out.rglob("*.dcm"))]
    return files, liver_ml


def _wait(at, timeout: float = 900.0):
    deadline = time.monotonic() + timeout
    while at.session_state["ingest:job"].running:
        assert time.monotonic() < deadline, f"ingest still running after {timeout} s"
        time.sleep(0.5)
    at.run()
    return at.session_state["ingest:job"]


def test_an_upload_is_extracted_on_the_worker_the_ingest_page_started(
        seeded_home: Path, upload_files, monkeypatch) -> None:
    files, liver_ml = upload_files
    pools: list[object] = []

    class CountedParser(pipeline.SafeParser):
        def __init__(self, *args, **kwargs) -> None:
            pools.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pipeline, "SafeParser", CountedParser)  # a pool started per upload
    at = new_app(CLINICIAN).run()
    at.switch_page("pages/ingest.py").run()
    assert not at.exception, [e.value for e in at.exception]
    worker = warm._executor
    assert worker is not None  # started when the page opened, before any upload
    parse_pool = warm_parse._pool
    assert parse_pool is not None and len(parse_pool._workers) == warm_parse.pool_size()
    parse_pids = [w.proc.pid for w in parse_pool._workers]
    at.file_uploader(key="ingest:files").set_value(
        [(name, data, "application/dicom") for name, data in files]).run()
    assert at.checkbox(key="ingest:extract").value  # biomarkers are extracted by default
    at.button(key="ingest:go").click().run()
    job = _wait(at)
    assert job.error is None and job.bug is None, (job.error, job.bug_trace)
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Series stored"] == "1" and metrics["Features extracted"] == "1"
    (series,) = job.result["report"].series
    assert job.result["features"].series_done == [series["series_uid"]]
    store = open_store(load_settings(seeded_home))
    try:
        with store.session() as s:
            stored = s.scalar(select(Feature.value).join(Series).where(
                Series.series_uid == series["series_uid"], Feature.name == "liver_volume_ml"))
    finally:
        store.dispose()
    assert stored == pytest.approx(liver_ml, rel=1e-9)  # the SEG's liver, counted by hand
    assert warm.warm_executor() is worker  # kept warm for the next upload
    assert pools == []  # parsed and de-identified on the page's warm parse workers
    assert warm_parse._pool is parse_pool  # and they stay up for the next upload
    assert [w.proc.pid for w in parse_pool._workers] == parse_pids
    assert all(w.proc.poll() is None for w in parse_pool._workers)
