"""The IBSI 1 digital phantom as a stored series that the npz test loader can read."""

from __future__ import annotations

from analytics.config import Settings
from analytics.ingest.volume import MaskSet, Volume
from analytics.store.db import open_store
from analytics.store.schema import Patient, Series, Study
from tests.features import npz_loader
from tests.features.test_ibsi import MASK, PHANTOM, SPACING

PHANTOM_UID = "1.2.826.0.1.3680043.8.498.410"


def store_phantom(settings: Settings, uid: str = PHANTOM_UID) -> None:
    """The IBSI 1 digital phantom as one stored CT series with a delivered liver mask."""
    settings.ensure_home()
    vol = Volume(array=PHANTOM.copy(), spacing_mm=SPACING, modality="CT", series_uid=uid)
    npz_loader.save(settings, vol, MaskSet(masks={"liver": MASK.copy()}, source="seg"))
    store = open_store(settings)
    with store.session() as s:
        p = Patient(pseudonym="IBSI-1")
        s.add(p)
        s.flush()
        st = Study(study_uid=uid + ".0", patient_id=p.id)
        s.add(st)
        s.flush()
        s.add(Series(series_uid=uid, source_key="ibsi", study_id=st.id, modality="CT",
                     storage_dir="dicom/ibsi", status="complete"))
    store.dispose()


