"""HepaTrack's canonical structures and the ONE synonym table that maps segment names and
codes to them (SEG segments, RTSTRUCT ROIs and NIfTI labels alike).
"""

from __future__ import annotations

import re

LIVER, SPLEEN, LIVER_VESSELS, LESION = "liver", "spleen", "liver_vessels", "lesion"
#: vessel trunks that lie mostly outside the liver, and the aorta (phase and blood level)
PORTAL_SPLENIC_VEIN, INFERIOR_VENA_CAVA, AORTA = ("portal_splenic_vein", "inferior_vena_cava",
                                                  "aorta")
#: every structure a delivered mask is read for
STRUCTURES = (LIVER, SPLEEN, LIVER_VESSELS, LESION, PORTAL_SPLENIC_VEIN, INFERIOR_VENA_CAVA,
              AORTA)

#: The synonym table. Keys are normalised names (lower case, ``_``/``-`` as spaces) or coded
#: concepts ``SCHEME:VALUE``: SNOMED CT (``SCT``) and its legacy SNOMED RT ids (``SRT``).
#: Codes from DICOM PS3.16 (CID 7151/7166/7192 use them for SEG segment types).
SYNONYMS: dict[str, str] = {
    # liver
    "liver": LIVER, "liver total": LIVER, "whole liver": LIVER, "total liver": LIVER,
    "liver parenchyma": LIVER, "hepar": LIVER, "leber": LIVER, "foie": LIVER, "hígado": LIVER,
    "fegato": LIVER, "lever": LIVER, "liver mask": LIVER, "liver seg": LIVER,
    "SCT:10200004": LIVER, "SRT:T-62000": LIVER, "SCT:181268008": LIVER,
    # spleen
    "spleen": SPLEEN, "milz": SPLEEN, "rate": SPLEEN, "bazo": SPLEEN, "milt": SPLEEN,
    "splenic parenchyma": SPLEEN, "spleen total": SPLEEN,
    "SCT:78961009": SPLEEN, "SRT:T-C3000": SPLEEN, "SCT:181279003": SPLEEN,
    # liver vessels
    "liver vessels": LIVER_VESSELS, "liver vessel": LIVER_VESSELS,
    "hepatic vessels": LIVER_VESSELS, "hepatic vessel": LIVER_VESSELS,
    "hepatic vasculature": LIVER_VESSELS, "liver vasculature": LIVER_VESSELS,
    "portal vein": LIVER_VESSELS, "portal veins": LIVER_VESSELS,
    "hepatic vein": LIVER_VESSELS, "hepatic veins": LIVER_VESSELS,
    "portal vein and hepatic veins": LIVER_VESSELS, "portal and hepatic veins": LIVER_VESSELS,
    "hepatic and portal veins": LIVER_VESSELS, "lebergefässe": LIVER_VESSELS,
    "lebergefaesse": LIVER_VESSELS, "pfortader": LIVER_VESSELS, "lebervenen": LIVER_VESSELS,
    "SCT:32764006": LIVER_VESSELS, "SRT:T-48810": LIVER_VESSELS,  # portal vein
    "SCT:8993003": LIVER_VESSELS, "SRT:T-48720": LIVER_VESSELS,  # hepatic vein
    "SCT:76015000": LIVER_VESSELS, "SRT:T-46420": LIVER_VESSELS,  # hepatic artery
    # vessel trunks outside the liver (TotalSegmentator names them so); never liver vessels
    "portal splenic vein": PORTAL_SPLENIC_VEIN,
    "portal vein and splenic vein": PORTAL_SPLENIC_VEIN,
    "portal and splenic vein": PORTAL_SPLENIC_VEIN, "portal and splenic veins": PORTAL_SPLENIC_VEIN,
    "splenic vein": PORTAL_SPLENIC_VEIN, "splenoportal axis": PORTAL_SPLENIC_VEIN,
    "SCT:35819009": PORTAL_SPLENIC_VEIN, "SRT:T-48890": PORTAL_SPLENIC_VEIN,  # splenic vein
    "inferior vena cava": INFERIOR_VENA_CAVA, "ivc": INFERIOR_VENA_CAVA,
    "vena cava inferior": INFERIOR_VENA_CAVA, "v cava inferior": INFERIOR_VENA_CAVA,
    "SCT:64131007": INFERIOR_VENA_CAVA, "SRT:T-48610": INFERIOR_VENA_CAVA,
    "aorta": AORTA, "abdominal aorta": AORTA, "aorta abdominalis": AORTA,
    "SCT:15825003": AORTA, "SRT:T-42000": AORTA, "SCT:7832008": AORTA,  # aorta, abdominal
    # lesions
    "lesion": LESION, "lesions": LESION, "liver lesion": LESION, "liver lesions": LESION,
    "tumor": LESION, "tumour": LESION, "tumors": LESION, "tumours": LESION,
    "liver tumor": LESION, "liver tumour": LESION, "hepatic tumor": LESION,
    "hepatic lesion": LESION, "hcc": LESION, "hepatocellular carcinoma": LESION,
    "metastasis": LESION, "metastases": LESION, "liver metastasis": LESION,
    "neoplasm": LESION, "mass": LESION, "nodule": LESION, "cyst": LESION,
    "läsion": LESION, "laesion": LESION, "herd": LESION, "leberherd": LESION,
    "SCT:52988006": LESION, "SRT:M-01100": LESION,  # lesion
    "SCT:108369006": LESION, "SRT:M-8FFFF": LESION,  # neoplasm / tumor
    "SCT:4147007": LESION, "SRT:M-03000": LESION,  # mass
    "SCT:25370001": LESION,  # hepatocellular carcinoma
    "SCT:128462008": LESION,  # metastasis
    "SCT:367643001": LESION,  # cyst
}
#: Generic vessel concepts count as liver vessels only with the liver as anatomic region.
_VESSEL_CODES = {"SCT:59820001", "SCT:29092000", "SCT:51114001", "SRT:T-D000A", "SRT:T-48000",
                 "SRT:T-41000"}
_LIVER_REGION = {"SCT:10200004", "SRT:T-62000"}


def _norm_name(name: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_\-.]+", " ", name.strip().lower())).strip()


def _norm_code(code: str) -> str:
    code = code.strip()
    if ":" not in code:
        return f"SCT:{code}"
    scheme, value = code.split(":", 1)
    scheme = scheme.upper()
    return f"{'SCT' if scheme in ('SNM', 'SCT', 'SNOMED', 'SNOMEDCT') else scheme}:{value}"


def canonical_structure(name: str | None, code: str | None = None,
                        region_code: str | None = None) -> str | None:
    """The canonical structure for a segment name and/or code, or None if not one of ours.

    Parameters
    ----------
    name
        Segment label, ROI name or file stem (case and ``_``/``-`` do not matter).
    code
        Coded concept, ``"SCT:10200004"`` or a bare SNOMED CT id (``"10200004"``).
    region_code
        Anatomic region code: a generic vessel code inside the liver means liver vessels.
    """
    if code:
        hit = SYNONYMS.get(_norm_code(code))
        if hit:
            return hit
        if (_norm_code(code) in _VESSEL_CODES and region_code
                and _norm_code(region_code) in _LIVER_REGION):
            return LIVER_VESSELS
    if name:
        return SYNONYMS.get(_norm_name(name))
    return None
