"""The per-series cap (RELIABILITY.md 3): a series over ``max_series_bytes`` is refused
before anything of it is written, with a reason naming the cap and the setting; the rest
of the batch is stored."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from analytics.ingest.pipeline import ingest_sources
from analytics.store import open_store
from analytics.store.schema import Instance, Series
from tests.ingest.dicom_samples import Study, ct_series, encode, write_folder


def test_a_series_over_the_cap_is_refused_with_nothing_written_and_the_batch_goes_on(
        tmp_path, settings, parser):
    small = ct_series(Study(), 2)
    big = ct_series(Study(patient_id="MRN-777", patient_name="Roe^Richard"), 6)
    one_file = len(encode(big[0]))
    cap = one_file * 4  # the 2-slice series fits, the 6-slice one does not
    settings = dataclasses.replace(
        settings, limits=dataclasses.replace(settings.limits, max_series_bytes=cap))
    store = open_store(settings)
    report = ingest_sources([str(write_folder(tmp_path / "small", small)),
                             str(write_folder(tmp_path / "big", big))], settings, store,
                            parser=parser)
    assert (report.series_ingested, report.instances) == (1, 2)
    assert len(report.rejected) == 6
    for r in report.rejected:
        assert r.category == "limit"
        assert f"over the per-series cap of {cap} bytes (max_series_bytes" in r.reason
        assert "HEPATRACK_MAX_SERIES_BYTES" in r.reason
    with store.session() as s:
        stored = s.execute(select(Series.status, Series.n_instances)).all()
        instances = s.execute(select(Instance.path)).scalars().all()
    assert stored == [("complete", 2)]  # no row, valid or invalid, for the refused series
    files = [p for p in settings.dicom_dir.rglob("*") if p.is_file()]
    assert len(files) == len(instances) == 2
    store.dispose()
