"""Shared inputs of the de-identification tests: the site secret, a sample patient and its
date shift, a hostile name, and files for comparing the worker with the in-process path."""

from __future__ import annotations

from pathlib import Path

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from analytics.ingest.deid import date_shift_days
from tests.ingest.dicom_samples import CT_IMAGE, Study, ct_series, encode

SECRET = b"k" * 32
PATIENT = "MRN-0012345"
SHIFT = date_shift_days(SECRET, PATIENT)
HOSTILE_NAME = "HARRIET HOSTILE MRN 12345"


def sample_dataset() -> Dataset:
    """A minimal data set of the sample patient: identity, SOP class and instance."""
    ds = Dataset()
    ds.PatientID = PATIENT
    ds.PatientName = "Doe^Jane"
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = "1.2.3.999"
    return ds


def sent_as_bytes(ds: Dataset, keyword: str, raw: bytes) -> None:
    """Put the raw bytes ``raw`` in ``keyword`` as an element sent as UN."""
    elem = DataElement(tag_for_keyword(keyword), "OB", raw)
    elem.VR = "UN"
    ds[elem.tag] = elem


def equivalence_files() -> list[tuple[str, bytes]]:
    """Synthetic CT, SEG and RTSTRUCT files, the bundled pydicom files and the real CT series."""
    from tests.ingest.dicom_samples import rtstruct_for, seg_for
    from tests.realdata import ct_dicom_files

    images = ct_series(Study(), 3)
    files = [(f"img{k}.dcm", encode(ds)) for k, ds in enumerate(images)]
    files += [("seg.dcm", encode(seg_for(images))), ("rt.dcm", encode(rtstruct_for(images)))]
    pydicom_data = Path(__file__).resolve().parents[1] / "data" / "pydicom-data"
    files += [(p.name, p.read_bytes()) for p in sorted(pydicom_data.glob("*.dcm"))]
    files += [(p.name, p.read_bytes()) for p in ct_dicom_files()[:4]]  # the real CT series
    return files
