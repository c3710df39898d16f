"""Real CT slices (pydicom's ``explicit_VR-UN.dcm``, a pancreas CT) with their identity
fields and UIDs edited: the studies of the identity-conflict and series-repair tests."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

REAL_CT = Path(__file__).resolve().parents[1] / "data" / "pydicom-data" / "explicit_VR-UN.dcm"


@dataclass
class Person:
    """The identity fields a study carries."""

    patient_id: str = "MRN-4711"
    name: str = "MUELLER^MICHAEL"
    birth_date: str = "19770412"
    sex: str = "M"
    issuer: str | None = None


@dataclass
class RealStudy:
    """UIDs of one study of one series (fixed, so a file can be sent again)."""

    person: Person
    study_date: str = "20210301"
    study_uid: str = field(default_factory=generate_uid)
    series_uid: str = field(default_factory=generate_uid)
    sop_uids: list[str] = field(default_factory=lambda: [generate_uid() for _ in range(3)])


def real_slices(study: RealStudy, broken: frozenset[int] = frozenset()
                ) -> list[tuple[str, bytes]]:
    """``(file name, bytes)`` of the study's slices, 2.5 mm apart; the slices numbered in
    ``broken`` (from 0) carry half their pixel data, as a transfer cut short upstream."""
    out = []
    for k, sop in enumerate(study.sop_uids):
        ds = dcmread(REAL_CT)
        p = study.person
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = p.patient_id, p.name, p.birth_date
        ds.PatientSex = p.sex
        if p.issuer:
            ds.IssuerOfPatientID = p.issuer
        ds.StudyDate = ds.SeriesDate = study.study_date
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study.study_uid, study.series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = k + 1
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z - 2.5 * k]
        if k in broken:
            ds.PixelData = ds.PixelData[:len(ds.PixelData) // 2]
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append((f"slice{k}.dcm", buf.getvalue()))
    return out
