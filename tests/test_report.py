"""The MDT PDF pack: one page per patient with the parts the MDT needs, permissions,
audit before drawing, atomic writes, and the ``hepatrack report`` command."""

from __future__ import annotations

import io

import pandas as pd
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
    assert "overlay: Liver" in texts[0] and "W 400 / L 50 HU" in texts[0]
    assert len(reader.pages[0].images) == 4
    assert "No complete CT or MR series stored." in texts[2]
    assert len(reader.pages[2].images) == 3


def test_the_pack_names_the_endpoint_and_the_overlaid_organs_in_words(home):
    from analytics.models.registry import load_model
    from analytics.vocabulary import event_words

    t, settings, store = home
    codes = load_model(store, settings).events.label
    assert "," in codes  # a composite endpoint, stored as comma-joined codes
    res = build_mdt_report(Context(CLINICIAN, store, settings), ReportRequest(
        [t.imaging[0]], meeting="2025-03-14 Hepatology MDT", horizon=2.0))
    text = _flat(_text(res.pdf)[0])
    assert f"endpoint {event_words(codes)}, horizon 2 y." in text
    assert codes not in text
    assert "overlay: Liver" in text and "liver_vessels" not in text


def test_overlay_labels_are_the_key_images_legend_words():
    from types import SimpleNamespace

    from analytics.usecases.report import _overlay_labels

    stack = SimpleNamespace(structures=("liver", "liver_vessels", "spleen", "left_kidney"))
    assert _overlay_labels(stack) == [("liver", "Liver"), ("liver_vessels", "Hepatic vessels"),
                                      ("spleen", "Spleen"), ("left_kidney", "left kidney")]


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
    # the stored DICOM name Doe^Jane in clinical form: given name, family name in capitals
    assert "Jane DOE · HT-0001" in texts[1] and "Doe^Jane" not in texts[1]
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


def _seeded_store(tmp_path):
    from analytics.config import load_settings
    from analytics.store import open_store
    from tests.app.conftest import seed_without_model

    settings = load_settings(tmp_path / "home")
    settings.ensure_home()
    store = open_store(settings)
    seed_without_model(store)
    return settings, store


def test_the_pack_carries_identity_scores_labs_and_the_meetings_record(tmp_path):
    import datetime as dt

    from sqlalchemy import select, update

    from analytics.store.schema import Feature, Patient, Series, Visit
    from analytics.usecases.mdt import MdtRecordRequest, record_discussion

    settings, store = _seeded_store(tmp_path)
    meeting = "2025-03-14 Hepatology MDT"
    # HT-0001 (Doe^Jane, born 1960-01-02): a full lab draw at 0.5 y, an aetiology, and a
    # portal-venous scan at 1 y after the unenhanced one at 0 y
    with store.session() as s:
        pid = s.execute(select(Patient.id).where(Patient.pseudonym == "HT-0001")).scalar()
        s.add(Visit(patient_id=pid, time_years=0.75, source="csv", values={
            "bilirubin_mg_dl": 2.5, "albumin_g_dl": 3.0, "inr": 2.0,
            "creatinine_mg_dl": 1.2, "sodium_mmol_l": 133.0, "platelets_10e9_l": 95.0,
            "ast_u_l": 88.0, "alt_u_l": 61.0, "ascites_grade": 1,
            "encephalopathy_grade": 0, "aetiology": "alcohol-related"}))
        s.execute(update(Series).where(Series.series_uid == "2.25.11")
                  .values(contrast_phase="unenhanced"))
        sid = s.execute(select(Series.id).where(Series.series_uid == "2.25.21")).scalar()
        s.execute(update(Feature).where(Feature.series_id == sid,
                                        Feature.name == "liver_hu_mean").values(value=30.0))
    ctx = Context(CLINICIAN, store, settings,
                  clock=lambda: dt.datetime(2025, 3, 14, 9, 0, tzinfo=dt.UTC))
    record_discussion(ctx, MdtRecordRequest(
        "HT-0001", meeting, question="Is she a transplant candidate?",
        discussion="Child-Pugh B with ascites; MELD 21.", decision="Refer for assessment."))
    res = build_mdt_report(ctx, ReportRequest(["HT-0001"], meeting=meeting))
    text = _flat(_text(res.pdf)[0])
    assert text.startswith("Jane DOE · HT-0001")
    # age on 2025-03-14 from the birth date 1960-01-02
    assert "Age 65 y" in text and "aetiology alcohol-related" in text
    # MELD (Kamath 2001, OPTN rounding): 3.78 ln 2.5 + 11.2 ln 2.0 + 9.57 ln 1.2 + 6.43
    # = 3.4636 + 7.7632 + 1.7448 + 6.43 = 19.40 -> 19
    assert "MELD 19 (at 0.8 y)" in text
    # Child-Pugh: bilirubin 2.5 (2) + albumin 3.0 (2) + INR 2.0 (2) + mild ascites (2)
    # + no encephalopathy (1) = 9 points, class B
    assert "Child-Pugh B (9 points, at 0.8 y)" in text
    # ALBI: 0.66 log10(2.5 x 17.1) - 0.085 x 30 = 0.66 x 1.63094 - 2.55 = -1.4736, which is
    # in (-2.60, -1.39]: grade 2
    assert "ALBI -1.47, grade 2 (at 0.8 y)" in text
    for lab in ("INR", "Platelets", "Creatinine (mg/dL)", "Sodium (mmol/L)", "AST (U/L)",
                "ALT (U/L)", "Bilirubin (mg/dL)", "Albumin (g/dL)"):
        assert lab in text, lab
    assert "95 (0.8)" in text and "133 (0.8)" in text and "88 (0.8)" in text
    for part in ("Question: Is she a transplant candidate?",
                 "Discussion: Child-Pugh B with ascites; MELD 21.",
                 "Decision: Refer for assessment.", f"Meeting: {meeting}"):
        assert part in text, part
    # attenuation: 30 HU portal venous after 55 HU unenhanced is not compared, not flagged
    assert "Liver attenuation, mean (HU) [PV] 30 (1.0) no same-phase scan — —" in text
    assert "compared only with the previous scan of the same contrast phase" in text
    store.dispose()


def test_a_pseudonymised_pack_withholds_the_meetings_free_text(tmp_path):
    from analytics.usecases.mdt import MdtRecordRequest, record_discussion

    settings, store = _seeded_store(tmp_path)
    record_discussion(Context(CLINICIAN, store, settings), MdtRecordRequest(
        "HT-0001", "m1", question="Call Jane's daughter?", decision="Yes."))
    res = build_mdt_report(Context(RESEARCHER, store, settings),
                           ReportRequest(["HT-0001"], meeting="m1"))
    text = _flat(_text(res.pdf)[0])
    assert not res.identified and "daughter" not in text and "Jane" not in text
    assert "MDT record: withheld from a pseudonymised pack" in text
    assert "Age about" in text  # the birth year only
    store.dispose()


def test_every_lab_of_the_table_fits_on_the_page_with_all_imaging_biomarkers(tmp_path):
    from reportlab.pdfgen.canvas import Canvas

    from analytics.viz import pack_pdf
    from analytics.viz.prep import TABLE_LABS, biomarker_summary
    from analytics.vocabulary import CORE_FEATURES

    bio = pd.DataFrame({"time_years": 1.0, "name": list(CORE_FEATURES), "value": 1.0,
                        "unit": "", "contrast_phase": "unenhanced"})
    visits = pd.DataFrame({"time_years": [1.0], **{n: [2.0] for n in TABLE_LABS}})
    df = biomarker_summary(bio, visits)
    assert len(df) == len(CORE_FEATURES) + len(TABLE_LABS)
    page = pack_pdf.PatientPage("P1", "P1", "", biomarkers=df)
    text = _flat(PdfReader(io.BytesIO(pack_pdf.render_pdf(
        [page], header="h", footer="f", intended_use="u"))).pages[0].extract_text())
    assert Canvas  # reportlab draws the page; every row label is on it
    for label in df["label"]:
        assert label.split(",")[0] in text, label


def test_the_packs_imaging_line_shows_no_attenuation_change_across_contrast_phases():
    from types import SimpleNamespace

    from analytics.usecases.report import _imaging_text_within_phase
    from analytics.viz.prep import biomarker_summary

    def contribution(feature, label, unit, value, change, points):
        return SimpleNamespace(feature=feature, label=label, unit=unit, value=value,
                               change=change, amount=lambda scale="points": points)

    spleen = contribution("spleen_volume_ml", "Spleen volume", "mL", 410.0, 120.0, 1.8)
    liver = contribution("liver_hu_mean", "Liver attenuation, mean", "HU", 105.0, 45.0, 0.9)
    view = SimpleNamespace(imaging=lambda i: [spleen, liver],
                           imaging_since=lambda i: "previous scan")

    def table(phases):
        bio = pd.DataFrame({"time_years": [0.0, 1.0, 0.0, 1.0],
                            "name": ["spleen_volume_ml"] * 2 + ["liver_hu_mean"] * 2,
                            "value": [290.0, 410.0, 60.0, 105.0],
                            "unit": ["mL", "mL", "HU", "HU"], "contrast_phase": phases * 2})
        return biomarker_summary(bio, pd.DataFrame({"time_years": []}))

    # portal venous at 1 y after unenhanced at 0 y: the +45 HU is not a change
    text = _imaging_text_within_phase(view, 0, table(["unenhanced", "portal_venous"]))
    assert "(+120 mL since the previous scan)" in text
    assert "Liver attenuation, mean 105 HU: +0.9 points" in text and "HU since" not in text
    # both portal venous: the change is within the phase and is kept
    text = _imaging_text_within_phase(view, 0, table(["portal_venous", "portal_venous"]))
    assert "Liver attenuation, mean 105 HU (+45 HU since the previous scan)" in text
