"""Ultrasound page: a clinician places a liver box and a kidney circle on a stored synthetic
frame, reads the hepatorenal index (checked against a value computed by hand from the
stored pixels, and against the generator's truth), saves the ROIs (audited, stored with
the series, in the cohort at the study date); a researcher may measure but not save."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import select

from analytics.cohort import build_cohort
from analytics.config import load_settings
from analytics.ingest.pipeline import ingest_sources
from analytics.models.history_spec import feature_spec
from analytics.store import open_store
from analytics.store.schema import AuditRecord, Feature, Instance, UltrasoundRoi
from analytics.synthetic.ultrasound import default_truth, render_frame, ultrasound_dataset
from tests.app.conftest import new_app, patient_charts
from tests.ingest.conftest import to_bytes
from ui.session import Viewer

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")
RESEARCHER = Viewer("ana.res", "researcher", "s-res")
TRUTH = default_truth()
# ROI sizes keep every edge between pixel centres (0.2 mm pixels): no rounding at the rim
LIVER = {"x": 20.0, "depth": 25.0, "width": 20.1, "height": 12.1}
KIDNEY = {"x": 47.8, "depth": 25.0, "diameter": 10.1}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("us-app")
    frames = [render_frame(TRUTH, np.random.default_rng(k)) for k in range(3)]
    (root / "in").mkdir()
    (root / "in" / "us.dcm").write_bytes(to_bytes(ultrasound_dataset(frames, TRUTH)))
    home = root / "home"
    settings = load_settings(home=home)
    store = open_store(settings)
    report = ingest_sources([str(root / "in")], settings, store)
    assert report.series_ingested == 1, report.as_dict()
    uid, patient = report.series[0]["series_uid"], report.series[0]["patient"]
    store.dispose()
    return home, uid, patient


@pytest.fixture
def us_home(template, tmp_path, monkeypatch):
    src, uid, patient = template
    dst = tmp_path / "home"
    shutil.copytree(src, dst)
    monkeypatch.setenv("HEPATRACK_HOME", str(dst))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    return dst, uid, patient


def _by_hand(home, uid: str, frame: int) -> float:
    """Liver box over kidney circle mean grey, from the stored pixels, pixel by pixel."""
    store = open_store(load_settings(home=home))
    with store.session() as s:
        path = s.scalar(select(Instance.path))
    store.dispose()
    pixels = dcmread(home / path).pixel_array[frame].astype(float)
    x0, y0 = TRUTH.region_px[:2]
    liver, kidney = [], []
    for row in range(pixels.shape[0]):
        depth = (row - y0) * 0.2
        for col in range(pixels.shape[1]):
            x = (col - x0) * 0.2
            if (abs(x - LIVER["x"]) <= LIVER["width"] / 2
                    and abs(depth - LIVER["depth"]) <= LIVER["height"] / 2):
                liver.append(pixels[row, col])
            if (x - KIDNEY["x"]) ** 2 + (depth - KIDNEY["depth"]) ** 2 <= (
                    KIDNEY["diameter"] / 2) ** 2:
                kidney.append(pixels[row, col])
    assert len(liver) == 101 * 61
    return float(np.mean(liver) / np.mean(kidney))


def _page(viewer: Viewer):
    at = new_app(viewer)
    at.run()
    at.switch_page("pages/ultrasound.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _place(at, uid: str, frame: int) -> None:
    at.number_input(key=f"ultrasound:frame-{uid}").set_value(frame)
    at.number_input(key=f"ultrasound:liver-x-{uid}").set_value(LIVER["x"])
    at.number_input(key=f"ultrasound:liver-depth-{uid}").set_value(LIVER["depth"])
    at.number_input(key=f"ultrasound:liver-width-{uid}").set_value(LIVER["width"])
    at.number_input(key=f"ultrasound:liver-height-{uid}").set_value(LIVER["height"])
    at.radio(key=f"ultrasound:kidney-shape-{uid}").set_value("circle")
    at.number_input(key=f"ultrasound:kidney-x-{uid}").set_value(KIDNEY["x"])
    at.number_input(key=f"ultrasound:kidney-depth-{uid}").set_value(KIDNEY["depth"])
    at.number_input(key=f"ultrasound:kidney-width-{uid}").set_value(KIDNEY["diameter"])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _metric(at, label: str) -> str:
    (m,) = [m for m in at.metric if m.label == label]
    return m.value


def test_a_clinician_places_rois_reads_the_hepatorenal_index_and_saves_it(us_home):
    dst, uid, patient = us_home
    at = _page(CLINICIAN)
    _place(at, uid, frame=2)
    expected = _by_hand(dst, uid, frame=1)
    assert _metric(at, "Hepatorenal index") == f"{expected:.3f}"
    assert expected == pytest.approx(TRUTH.liver_level_at(25.0) / TRUTH.kidney_level, rel=0.03)
    assert not at.warning  # same depth: no warning
    fig = at.get("plotly_chart")[0].proto.spec
    assert '"type":"rect"' in fig.replace(" ", "") and '"type":"circle"' in fig.replace(" ", "")

    (save,) = [b for b in at.button if b.label == "Save ROIs and measurements"]
    save.click().run()
    assert not at.exception and any("Saved: 2 ROI(s) on frame 2" in s.value for s in at.success)
    store = open_store(load_settings(home=dst))
    with store.session() as s:
        rois = s.execute(select(UltrasoundRoi).order_by(UltrasoundRoi.role)).scalars().all()
        hri = s.scalar(select(Feature.value).where(Feature.name == "us_hepatorenal_index"))
        audits = s.execute(select(AuditRecord.action, AuditRecord.outcome)
                           .where(AuditRecord.action == "ultrasound_roi")).all()
    cohort = build_cohort(store)
    store.dispose()
    assert [(r.role, r.shape, r.frame_index, r.author) for r in rois] == [
        ("kidney", "circle", 1, "dr.grey"), ("liver", "box", 1, "dr.grey")]
    assert rois[1].width_mm == pytest.approx(20.1)
    assert hri == pytest.approx(expected)
    assert audits == [("ultrasound_roi", "ok")]
    visit = cohort.visits[cohort.visits["modality"] == "US"]
    assert visit["us_hepatorenal_index"].tolist() == pytest.approx([expected])
    assert visit["date"].notna().all()  # a visit at the (shifted) study date
    meta = cohort.feature_meta["us_hepatorenal_index"]
    assert (meta["kind"], meta["unit"]) == ("imaging", "ratio")  # a model feature like CT's
    assert feature_spec(cohort).imaging.count("us_hepatorenal_index") == 1
    assert cohort.visits["us_hepatorenal_index"].dropna().tolist() == pytest.approx([expected])

    again = _page(CLINICIAN)  # the saved ROIs come back for review
    assert any("ROIs saved by dr.grey on frame 2" in str(c.value) for c in again.caption)
    assert _metric(again, "Hepatorenal index") == f"{expected:.3f}"

    # the ultrasound visit's measurements are offered in the Patient page's biomarker chart
    pat = new_app(CLINICIAN)
    pat.query_params["patient"] = patient
    pat.run()
    pat.switch_page("pages/patient.py").run()
    assert not pat.exception, [e.value for e in pat.exception]
    patient_charts(pat, "Biomarkers over time")
    chosen = pat.multiselect(key="patient:biomarkers")
    assert any("Hepatorenal index (ultrasound)" in str(o) for o in chosen.options)
    # the Cohort list shows the latest index as a column, like the CT biomarkers
    cohort_page = new_app(CLINICIAN).run()
    assert not cohort_page.exception, [e.value for e in cohort_page.exception]
    listing = cohort_page.dataframe[0].value.set_index("pseudonym")
    # shown as text (a dash where a patient has none), rounded as the list rounds it
    assert float(listing.loc[patient, "us_hepatorenal_index"]) == pytest.approx(expected,
                                                                               abs=5e-4)
    # and the timeline (chosen as a person would) names the study an ultrasound
    patient_charts(pat, "Timeline")
    assert not pat.exception, [e.value for e in pat.exception]
    timeline = next(c for c in pat.get("plotly_chart") if '"Scans"' in c.proto.spec)
    assert '"customdata":["Ultrasound"]' in timeline.proto.spec.replace(" ", "")


def test_rois_at_different_depths_show_the_depth_warning(us_home):
    _, uid, _ = us_home
    at = _page(CLINICIAN)
    _place(at, uid, frame=1)
    at.number_input(key=f"ultrasound:liver-depth-{uid}").set_value(40.0).run()
    assert any("15 mm apart in depth" in w.value for w in at.warning)


def test_an_roi_outside_the_image_region_is_an_error_naming_the_region(us_home):
    _, uid, _ = us_home
    at = _page(CLINICIAN)
    at.number_input(key=f"ultrasound:liver-x-{uid}").set_value(-20.0).run()
    assert not at.exception
    assert any("liver ROI reaches outside the image region" in e.value for e in at.error), [
        (e.value) for e in at.error] + [m.value for m in at.metric]


def test_a_researcher_measures_but_is_not_offered_saving(us_home):
    at = _page(RESEARCHER)
    assert _metric(at, "Hepatorenal index") != "—"
    assert not [b for b in at.button if b.label == "Save ROIs and measurements"]
    assert any("needs the clinician role" in str(c.value) for c in at.caption)


def test_the_ingest_page_says_what_an_uploaded_ultrasound_allows(settings, monkeypatch):
    monkeypatch.setenv("HEPATRACK_HOME", str(settings.home))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    frame = render_frame(TRUTH, np.random.default_rng(9))
    data = to_bytes(ultrasound_dataset([frame], TRUTH, patient_id="US-UP"))
    at = new_app(CLINICIAN).run()
    at.switch_page("pages/ingest.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="ingest:files").set_value([("us.dcm", data, "application/dicom")])
    at.run()
    at.button(key="ingest:go").click().run()  # feature extraction left on
    deadline = time.monotonic() + 240
    while at.session_state["ingest:job"].running:
        assert time.monotonic() < deadline, "ingest still running"
        time.sleep(0.5)
    at.run()
    assert at.session_state["ingest:job"].error is None
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    assert table["outcome"].tolist() == ["accepted"]  # no "features failed" for ultrasound
    (row,) = table.itertuples()
    assert row.modality == "US" and row.slices == 1
    assert row.measurements.startswith("will measure hepatorenal index, liver echo texture")
    assert "pixels outside the ultrasound image region blanked" in row.measurements
