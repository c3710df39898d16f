"""Contrast phase of a CT/MR series, only when the header says it.

Sources, in order: the series/protocol description keywords (English and German), an
explicit "no contrast" in ContrastBolusAgent (0018,0010), then the delay between
ContrastBolusStartTime (0018,1042) and AcquisitionTime (0008,0032). Typical liver delays
(e.g. LI-RADS CT/MRI technique): late arterial ~35-45 s, portal venous ~60-80 s,
delayed/equilibrium >= 3 min. Anything else gives ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset

UNENHANCED, ARTERIAL, PORTAL_VENOUS, DELAYED = "unenhanced", "arterial", "portal_venous", "delayed"

# Checked in this order: "non-contrast" must win over "contrast", "late arterial" over "late".
_KEYWORDS: tuple[tuple[str, str], ...] = (
    (UNENHANCED, r"non[\s_-]?contrast|non[\s_-]?enhanced|unenhanced|without contrast|w/o contrast"
                 r"|pre[\s_-]?contrast|precontrast|\bnative?\b|\bnativ\b|\bplain\b|\bnc\b"
                 r"|ohne\s*km|\bnon[\s_-]?con\b"),
    (ARTERIAL, r"arterial|arteriell|\bart\b|\bhap\b|\blap\b|\beap\b"),
    (PORTAL_VENOUS, r"portal|\bpv\b|\bpvp\b|venous|venös|venoes|\bven\b"),
    (DELAYED, r"delayed|equilibrium|\bequil\b|\blate\b|transitional|sp[äa]t|hepatobiliary"
              r"|\bhbp\b"),
)
_NO_AGENT = {"NONE", "NO", "N", "NIL", "NO CONTRAST", "WITHOUT", "KEIN", "KEINE"}
_ARTERIAL_S, _PORTAL_S, _DELAYED_S = (15.0, 50.0), (50.0, 110.0), 150.0


def phase_from_text(text: str) -> str | None:
    """The phase a description names (``"Abd PV 1.0 B30f"`` -> ``portal_venous``), or None."""
    t = text.lower()
    for phase, pattern in _KEYWORDS:
        if re.search(pattern, t):
            return phase
    return None


def _seconds(value) -> float | None:
    """DICOM TM (HHMMSS.frac) as seconds since midnight."""
    text = str(value or "").strip().replace(":", "")
    if len(text) < 4 or not text[:4].isdigit():
        return None
    try:
        h, m = int(text[:2]), int(text[2:4])
        s = float(text[4:]) if len(text) > 4 else 0.0
    except ValueError:
        return None
    return h * 3600 + m * 60 + s


def contrast_phase(ds: Dataset) -> str | None:
    """``unenhanced`` | ``arterial`` | ``portal_venous`` | ``delayed`` | None (not stated)."""
    for kw in ("SeriesDescription", "ProtocolName", "ContrastBolusAgent"):
        phase = phase_from_text(str(ds.get(kw, "") or ""))
        if phase:
            return phase
    agent = str(ds.get("ContrastBolusAgent", "") or "").strip().upper()
    if agent in _NO_AGENT:
        return UNENHANCED
    start = _seconds(ds.get("ContrastBolusStartTime"))
    acquired = _seconds(ds.get("AcquisitionTime") or ds.get("ContentTime"))
    if agent and start is not None and acquired is not None:
        delay = (acquired - start) % 86400
        if _ARTERIAL_S[0] <= delay < _ARTERIAL_S[1]:
            return ARTERIAL
        if _PORTAL_S[0] <= delay < _PORTAL_S[1]:
            return PORTAL_VENOUS
        if delay >= _DELAYED_S and delay < 3600:
            return DELAYED
    return None
