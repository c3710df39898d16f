"""The MDT PDF pack: one page per patient with the parts the MDT needs, permissions,
audit before drawing, atomic writes, and the ``hepatrack report`` command."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from analytics.audit import Actor, verify
from analytics.errors import PermissionDeniedError, StoreError
from analytics.store.schema import AuditRecord
from analytics.usecases.context import Context
from analytics.usecases.report import (
    INTENDED_USE,
    ReportRequest,
    build_mdt_report,
    collect_patient_page,
)
from tests import dashboard_data

CLINICIAN = Actor("dr.grey", "clinician", "s1")
RESEARCHER = Actor("ana.res", "researcher", "s2")


@pytest.fixture
def home(tmp_path_factory, tmp_path):
    t = dashboard_data.template(tmp_path_factory)
    with dashboard_data.open_copy(t, tmp_path / "home") as (settings, store):
        yield t, settings, store


def _text(pdf: bytes) -> list[str]:
    return [p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages]


def _flat(s: str) -> str:
    return " ".join(s.split())


def test_identified_pack_has_one_page_per_patient_with_every_part(home, tmp_path):
    t, settings, store = home
    csv_only = t.pseudonyms["SYN3-0010"]
    patients = [*t.imaging, csv_only]
    out = tmp_path / "pack.pdf"
    res = build_mdt_report(Context(CLINICIAN, store, settings), ReportRequest(
        patients, out, meeting="2025-03-14 Hepatology MDT", horizon=2.0))
    assert res.identified and res.pages == 3 and res.model_id == t.model_id
    assert out.read_bytes() == res.pdf
    reader = PdfReader(io.BytesIO(res.pdf))
    assert len(reader.pages) == 3
    texts = [_flat(x) for x in _text(res.pdf)]
    for i, (p, text) in enumerate(zip(patients, texts, strict=True)):
        assert p in text and f"Page {i + 1} of 3" in text
        assert "2025-03-14 Hepatology MDT" in text
        assert f"Model {t.model_id} (cox)" in text and "horizon 2 y" in text
        assert "Calibration at 2 y: slope" in text and "C-index" in text
        assert _flat(INTENDED_USE)[:80] in text
        assert "identified pack" in text
    # identified: the real (synthetic) patient id and birth date of an imaging patient
    real = next(k for k, v in t.pseudonyms.items() if v == t.imaging[0])
    assert f"Patient ID {real}" in texts[0]
    # the key image: its caption names the overlay; trajectory, waterfall, key image and
    # calibration are four pictures on an imaging patient's page
    assert "overlay: liver" in texts[0] and "W 400 / L 50 HU" in texts[0]
    assert len(reader.pages[0].images) == 4
    assert "No complete CT or MR series stored." in texts[2]
    assert len(reader.pages[2].images) == 3


def test_biomarker_table_shows_the_ground_truth(home):
    from analytics.cohort import build_cohort
    from analytics.models.registry import load_model

    t, settings, store = home
    model = load_model(store, settings)

    p = t.imaging[0]
    page = collect_patient_page(store, settings, p, identified=False, model=model,
                                visits=build_cohort(store).visits, metrics={})
    truth = sorted((s for s in t.series.values() if t.pseudonyms[s["patient_id"]] == p),
                   key=lambda s: s["time_years"])
    assert len(truth) == 2
    vol = page.biomarkers.set_index("name").loc["liver_volume_ml"]
    assert vol["latest"] == pytest.approx(truth[-1]["liver_volume_ml"])
    assert vol["previous"] == pytest.approx(truth[0]["liver_volume_ml"])
    spleen = page.biomarkers.set_index("name").loc["spleen_volume_ml"]
    assert spleen["normal_high"] == 314.0
    assert spleen["flag"] == ("above normal" if truth[-1]["spleen_volume_ml"] > 314
                              else "within normal")
    assert page.title == p and "dates shifted per patient" in page.subtitle
    assert page.trajectory_png[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.waterfall_png is not None and page.key_image_png is not None
    # the risk and its reason, both from the one sentence writer
    from analytics.explain import patient_trajectory
    from analytics.viz.prep import event_text

    trajectory = patient_trajectory(model, build_cohort(store).visits, p)
    i = trajectory.latest_index()
    assert page.risk_text.startswith(f"Risk of {event_text(trajectory.event)} within 3 y at the "
                                     f"visit at {trajectory.points['time'].iloc[i]:.1f} y: ")
    assert page.risk_text.endswith(f" Why: {trajectory.why(i, 1)[0]}.")


def test_every_pack_is_audited_before_it_is_drawn(home):
    t, settings, store = home
    build_mdt_report(Context(CLINICIAN, store, settings),
                     ReportRequest([t.imaging[0], t.pseudonyms["SYN3-0011"]]))
    with store.session() as s:
        rows = s.execute(select(AuditRecord.action, AuditRecord.outcome,
                                AuditRecord.patient_pseudonym, AuditRecord.model_version)
                         .where(AuditRecord.username == "dr.grey")
                         .order_by(AuditRecord.seq)).all()
    # one record for the pack, naming each patient on it, written before it is drawn
    assert [tuple(r) for r in rows] == [("export", "ok", None, t.model_id)]
    with store.session() as s:
        detail = s.execute(select(AuditRecord.detail).where(AuditRecord.username == "dr.grey")
                           ).scalar_one()
    assert detail["pseudonyms"] == [t.imaging[0], t.pseudonyms["SYN3-0011"]]
    assert verify(store).ok


def test_researcher_gets_a_pseudonymised_pack_only(home):
    t, settings, store = home
    res = build_mdt_report(Context(RESEARCHER, store, settings), ReportRequest([t.imaging[0]]))
    assert not res.identified
    text = _flat(_text(res.pdf)[0])
    real = next(k for k, v in t.pseudonyms.items() if v == t.imaging[0])
    assert real not in text and "Pseudonymised" in text
    from analytics.store.schema import IdentityMap

    with store.session() as s:
        names = [n for n in s.execute(select(IdentityMap.patient_name)).scalars() if n]
    assert names, "the synthetic cohort's identity map should hold real names"
    for name in names:  # neither DICOM form nor the readable one reaches the pack
        for part in (p for p in name.split("^") if len(p) > 2):  # not middle initials
            assert part.lower() not in text.lower(), name
    with pytest.raises(PermissionDeniedError, match="may not export identified"):
        build_mdt_report(Context(RESEARCHER, store, settings),
                         ReportRequest([t.imaging[0]], identified=True))


@pytest.mark.parametrize(
    ("patients", "match"),
    [pytest.param([], "no patient given", id="empty"),
     pytest.param(["SYN3-0010", "NOPE-1"], r"patient\(s\) NOPE-1 not in the store",
                  id="unknown")],
)
def test_bad_patient_lists_make_no_file_and_no_audit(home, tmp_path, patients, match):
    t, settings, store = home
    out = tmp_path / "x.pdf"
    with pytest.raises(StoreError, match=match):
        build_mdt_report(Context(CLINICIAN, store, settings),
                         ReportRequest([t.pseudonyms.get(p, p) for p in patients], out))
    assert not out.exists() and not list(tmp_path.glob(".x.pdf*"))
    with store.session() as s:
        assert not s.execute(select(AuditRecord).where(
            AuditRecord.action.in_(["report", "export"]))).first()


def test_without_a_model_the_pack_still_has_the_biomarkers(tmp_path):
    from analytics.config import load_settings
    from analytics.store import open_store
    from tests.app.conftest import seed_without_model

    settings = load_settings(tmp_path / "home")
    settings.ensure_home()
    store = open_store(settings)
    seed_without_model(store)
    res = build_mdt_report(Context(CLINICIAN, store, settings),
                           ReportRequest(["HT-0003", "HT-0001"]))
    assert res.pages == 2 and res.model_id is None
    assert any("no trained model" in w for w in res.warnings)
    texts = [_flat(x) for x in _text(res.pdf)]
    assert "Doe^Jane · HT-0001" in texts[1]
    assert "Liver volume (mL)" in texts[1] and "1,600 (1.0)" in texts[1]
    assert "No trained model" in texts[0]
    store.dispose()


def test_report_command(home, tmp_path, capsys):
    from analytics.cli import main

    t, settings, _store = home
    out = tmp_path / "cli.pdf"
    code = main(["--home", str(settings.home), "report", "--patient", t.imaging[0],
                 "--patient", t.pseudonyms["SYN3-0012"], "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert len(PdfReader(str(out)).pages) == 2
    assert f"wrote 2 page(s) to {out}" in capsys.readouterr().out
    # the command line is the system account: pseudonymised
    assert "pseudonymised pack" in _flat(PdfReader(str(out)).pages[0].extract_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [pytest.param(["--patient", "NOPE-9", "--out", "{tmp}/a.pdf"],
                  "NOPE-9 not in the store", id="unknown-patient"),
     pytest.param(["--patient", "SYN3-0010", "--out", "{tmp}/a.txt"],
                  "expected a file name ending in .pdf", id="not-pdf"),
     pytest.param(["--patient", "SYN3-0010", "--out", "{tmp}/missing/a.pdf"],
                  "does not exist", id="no-folder")],
)
def test_report_command_bad_input_exits_2(home, tmp_path, capsys, args, message):
    from analytics.cli import main

    t, settings, _store = home
    argv = ["--home", str(settings.home), "report",
            *[t.pseudonyms.get(a, a).format(tmp=tmp_path) for a in args]]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "a.pdf").exists()
