"""Realistic but fictitious patient names, so de-identification has something to remove,
and the Patient IDs that go with them."""

from __future__ import annotations

import numpy as np

_LAST = ("DOE", "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER",
         "DAVIS", "MARTINEZ", "LOPEZ", "WILSON", "ANDERSON", "THOMAS", "TAYLOR", "MOORE",
         "JACKSON", "MARTIN", "LEE", "THOMPSON", "WHITE", "HARRIS", "CLARK", "LEWIS",
         "ROBINSON", "WALKER", "YOUNG", "ALLEN", "KING", "WRIGHT", "SCOTT", "NGUYEN",
         "MUELLER", "ROSSI", "DUBOIS", "O'BRIEN", "VAN DER BERG", "KOWALSKI")
_FIRST = {
    "F": ("JANE", "MARY", "PATRICIA", "LINDA", "BARBARA", "ELIZABETH", "SUSAN", "JESSICA",
          "SARAH", "KAREN", "NANCY", "LISA", "MARGARET", "SANDRA", "ASHLEY", "EMILY",
          "ANNA", "MARIA", "SOPHIE", "CLAIRE"),
    "M": ("JOHN", "JAMES", "ROBERT", "MICHAEL", "WILLIAM", "DAVID", "RICHARD", "JOSEPH",
          "THOMAS", "CHARLES", "DANIEL", "MATTHEW", "ANTHONY", "MARK", "PAUL", "STEVEN",
          "ANDREW", "PETER", "LUCA", "PIERRE"),
}


def patient_name(rng: np.random.Generator, sex: str) -> str:
    """A DICOM PN value ``FAMILY^GIVEN[^MIDDLE]`` drawn from common names."""
    last = _LAST[int(rng.integers(len(_LAST)))]
    first = _FIRST["M" if sex == "M" else "F"][int(rng.integers(20))]
    if rng.uniform() < 0.3:
        return f"{last}^{first}^{chr(ord('A') + int(rng.integers(26)))}"
    return f"{last}^{first}"


def synthetic_patient_id(seed: int, index: int) -> str:
    """The Patient ID of the ``index``-th patient (from 0) of a cohort drawn with ``seed``.

    The seed is the ID's namespace: a patient's name, sex and birth date are drawn from
    ``(seed, index)``, so one ID names one synthetic person, and a cohort of another seed
    (a ``hepatrack synth`` run beside the demo) never reuses an ID for somebody else.
    """
    return f"SYN{int(seed)}-{index + 1:04d}"
