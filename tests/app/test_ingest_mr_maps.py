"""The Ingest page says, per uploaded MR series, which liver measurements it will get and
which it cannot, and why: a PDFF map and an MR elastography map with their liver masks
(with the published thresholds), the Dixon water image that serves the fat image, a T1
of the same study that borrows their mask, and a T1 of another study without any mask."""

from __future__ import annotations

import time

import pytest

from analytics.synthetic.mr_maps import write_mr_study
from tests.app.conftest import new_app
from ui.session import Viewer

CLINICIAN = Viewer("dr.grey", "clinician", "s-mr-maps")
JOB = "ingest:job"


@pytest.fixture(autouse=True)
def _no_totalsegmentator(monkeypatch):
    from analytics.features import totalseg

    monkeypatch.setattr(totalseg, "_installed_version", lambda: None)


def _uploads(tmp_path):
    maps = write_mr_study(tmp_path / "maps", patient_id="MRMAP-1",
                          series=("pdff", "mre", "dixon_water", "t1"))
    alone = write_mr_study(tmp_path / "alone", patient_id="MRMAP-2", series=("t1",))
    files = maps.files() + alone.files()
    return [(f"{p.parent.name}-{p.name}-{n}.dcm", p.read_bytes(), "application/dicom")
            for n, p in enumerate(files)]


def test_the_ingest_table_says_which_measurements_each_mr_series_will_get(home, tmp_path
                                                                          ) -> None:
    at = new_app(CLINICIAN).run()
    at.switch_page("pages/ingest.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="ingest:files").set_value(_uploads(tmp_path)).run()
    at.checkbox(key="ingest:extract").uncheck().run()
    at.button(key="ingest:go").click().run()
    deadline = time.monotonic() + 240.0
    while at.session_state[JOB].running:
        assert time.monotonic() < deadline, "ingest still running"
        time.sleep(0.5)
    at.run()
    assert at.session_state[JOB].error is None, at.session_state[JOB].error
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "measurements" in d.value.columns)
    accepted = table[table["outcome"] == "accepted"]
    by_patient = {}
    for row in accepted.itertuples():
        by_patient.setdefault(row.patient, set()).add(row.measurements)
    assert len(accepted) == 5 and len(by_patient) == 2
    assert sorted(by_patient.values(), key=len) == [
        {"MR image (not a quantitative map): no measurement: needs a liver mask"},
        {"PDFF map: liver PDFF (median, mean) will be measured; >= 5 % is steatosis",
         "MR elastography stiffness map: liver stiffness (median, mean) will be measured; "
         ">= 5 kPa suggests cirrhosis",
         "Dixon water image: used with the Dixon fat image for the signal fat fraction "
         "(measured on the fat image)",
         "MR image (not a quantitative map): liver volume and shape will be measured"},
    ]
