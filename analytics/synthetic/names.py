"""Realistic but fictitious patient names, so de-identification has something to remove."""

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
