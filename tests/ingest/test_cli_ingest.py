"""``hepatrack ingest``: JSON contract, exit status and PACS URLs through the real command."""

from __future__ import annotations

import json
import zipfile

import pytest

from analytics.cli import main
from tests.ingest.dicom_samples import Study, ct_series, encode, seg_for, write_folder
from tests.ingest.identity_samples import Person, RealStudy, real_slices

CONTRACT = {"series_ingested", "instances", "duplicates", "rejected", "series"}
SERIES_KEYS = {"series_uid", "patient", "study_date", "modality", "slices", "masks"}


def _run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in argv and out.strip() else None), err


def test_folder_then_zip_reingest(tmp_path, home, capsys):
    images = ct_series(Study(), 3)
    folder = write_folder(tmp_path / "src", images)
    (folder / "seg.dcm").write_bytes(encode(seg_for(images)))
    code, first, err = _run(capsys, "--home", str(home), "ingest", str(folder), "--json")
    assert code == 0, err
    assert set(first) >= CONTRACT and set(first["series"][0]) >= SERIES_KEYS
    assert (first["series_ingested"], first["instances"], first["duplicates"]) == (1, 3, 0)
    assert first["series"][0]["masks"] == 1 and first["series"][0]["slices"] == 3
    assert first["series"][0]["patient"].startswith("HT-")
    archive = tmp_path / "again.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.iterdir():
            zf.writestr(f.name, f.read_bytes())
    code, again, _ = _run(capsys, "--home", str(home), "ingest", str(archive), "--json")
    assert code == 0  # everything already stored is still a success
    assert (again["series_ingested"], again["instances"], again["duplicates"]) == (0, 0, 4)


def test_human_summary_names_each_series(tmp_path, home, capsys):
    folder = write_folder(tmp_path / "src", ct_series(Study(), 2))
    (folder / "junk.bin").write_bytes(b"junk")
    assert main(["--home", str(home), "ingest", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ingested 1 series (2 instances); 0 already stored; 0 masks; "
                             "1 rejected")
    assert out[1].split()[0].startswith("HT-") and out[1].rstrip().endswith("complete")
    assert out[2] == "  rejected: junk.bin: not a DICOM file (no 'DICM' prefix at byte 128)"


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: (p / "a.txt").write_bytes(b"plain text"), "not a DICOM file"),
    (lambda p: None, "no DICOM files found"),
], ids=["only-junk", "empty-folder"])
def test_nothing_ingested_exits_2_with_one_line(tmp_path, home, capsys, make, expected):
    folder = tmp_path / "src"
    folder.mkdir()
    make(folder)
    code, report, err = _run(capsys, "--home", str(home), "ingest", str(folder), "--json")
    assert code == 2
    assert report["instances"] == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "nothing ingested" in lines[0] and expected in lines[0]


def test_no_deidentify_keeps_the_real_patient_id(tmp_path, home, capsys):
    folder = write_folder(tmp_path / "src", ct_series(Study(), 2))
    code, report, _ = _run(capsys, "--home", str(home), "ingest", str(folder), "--json",
                           "--no-deidentify")
    assert code == 0 and report["series"][0]["patient"] == "MRN-0012345"


def test_pacs_urls_through_the_command(orthanc, home, capsys, monkeypatch):
    orthanc.clear()
    study = Study()
    images = ct_series(study, 3)
    for ds in images:
        orthanc.upload(encode(ds))
    monkeypatch.setenv("HEPATRACK_PACS_URL", orthanc.dicomweb_url)
    monkeypatch.setenv("HEPATRACK_PACS_USER", orthanc.username)
    monkeypatch.setenv("HEPATRACK_PACS_PASSWORD", orthanc.password)
    code, report, err = _run(capsys, "--home", str(home), "ingest",
                             f"{orthanc.dicomweb_url}/studies/{study.study_uid}", "--json")
    assert code == 0, err
    assert report["instances"] == 3 and report["series"][0]["status"] == "complete"
    code, report, err = _run(capsys, "--home", str(home), "ingest", orthanc.dicomweb_url,
                             "--json")
    assert code == 2 and "name a study or a series" in err
    assert orthanc.password not in err
    orthanc.clear()


def test_labels_option_names_the_values_of_a_label_map(tmp_path, home, capsys):
    import gzip

    import nibabel as nib
    import numpy as np

    from tests.realdata import CT_SM_LABELS, nifti_ct_as_dicom

    folder = tmp_path / "case"
    folder.mkdir()
    for name, data in nifti_ct_as_dicom():
        (folder / name.replace("/", "_")).write_bytes(data)
    img = nib.load(str(CT_SM_LABELS))  # written again without its label table
    plain = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)
    (folder / "seg.nii.gz").write_bytes(gzip.compress(plain.to_bytes()))
    code, out, err = _run(capsys, "--home", str(home), "ingest", str(folder), "--json",
                          "--labels", "5=liver,1=spleen")
    assert code == 0, err
    assert out["rejected"] == [] and out["series"][0]["masks"] == 1


def test_a_bad_labels_option_exits_2_with_one_line(tmp_path, home, capsys):
    folder = write_folder(tmp_path / "src", ct_series(Study(), 2))
    code, out, err = _run(capsys, "--home", str(home), "ingest", str(folder),
                          "--labels", "5=livr")
    assert code == 2 and out is None
    assert err.strip().splitlines() == [
        "hepatrack ingest: label table: 'livr' is not a structure HepaTrack reads (liver, "
        "spleen, liver vessels, lesion, portal and splenic vein, inferior vena cava, aorta, "
        "or a synonym)"]


def _write(folder, files) -> str:
    folder.mkdir()
    for name, data in files:
        (folder / name).write_bytes(data)
    return str(folder)


def test_a_held_study_is_reported_by_field_names_and_resolved_from_the_command_line(
        tmp_path, home, capsys):
    mueller = _write(tmp_path / "a", real_slices(RealStudy(Person())))
    garcia = _write(tmp_path / "b", real_slices(RealStudy(
        Person(name="GARCIA^DAVID^Q", birth_date="19700101"))))
    assert _run(capsys, "--home", str(home), "ingest", mueller, "--json")[0] == 0
    code, out, err = _run(capsys, "--home", str(home), "ingest", garcia, "--json")
    assert code == 0, err  # stored (held), nothing lost
    assert out["series"] == [] and out["instances"] == 3
    (held,) = out["held"]
    assert held["fields"] == ["name", "birth_date"] and held["hold_id"] == 1
    assert "GARCIA" not in json.dumps(out) and "1970" not in json.dumps(out)
    code, listed, _ = _run(capsys, "--home", str(home), "identity", "list", "--json")
    assert [h["differs"] for h in listed] == ["name, birth date"] and "received" not in listed[0]
    code, _, err = _run(capsys, "--home", str(home), "identity", "resolve", "--hold", "1",
                        "--decision", "same", "--user", "nobody")
    assert code == 2 and "--user nobody: no enabled account of that name" in err
    assert main(["--home", str(home), "users", "add", "drg", "--role", "clinician",
                 "--password", "a long enough secret"]) == 0
    capsys.readouterr()
    code, done, err = _run(capsys, "--home", str(home), "identity", "resolve", "--hold", "1",
                           "--decision", "different", "--user", "drg", "--json")
    assert code == 0, err
    assert done["new_patient"] and done["patient"] != held["patient"]


def test_a_broken_series_is_completed_then_removed_from_the_command_line(tmp_path, home,
                                                                         capsys):
    study = RealStudy(Person())
    bad = _write(tmp_path / "bad", real_slices(study, broken=frozenset({1})))
    good = _write(tmp_path / "good", real_slices(study)[1:2])
    code, out, _ = _run(capsys, "--home", str(home), "ingest", bad, "--json")
    uid = out["series"][0]["series_uid"]
    assert out["series"][0]["status"] == "invalid"
    code, done, err = _run(capsys, "--home", str(home), "series", "complete", "--series", uid,
                           good, "--json")
    assert code == 0, err
    assert (done["status"], done["ingest"]["replaced"]) == ("complete", 1)
    code, gone, err = _run(capsys, "--home", str(home), "series", "remove", "--series", uid,
                           "--json")
    assert code == 0, err
    assert gone["removed"]["instances"] == 3 and gone["status"] is None
    code, _, err = _run(capsys, "--home", str(home), "series", "remove", "--series", uid)
    assert code == 2 and f"series {uid}: not in the store" in err
