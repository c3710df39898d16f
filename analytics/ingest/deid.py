"""De-identification on ingest: DICOM PS3.15 Basic Profile with modified dates, retained
patient characteristics and cleaned descriptors, plus keyed-HMAC pseudonyms.

What happens to each attribute (``analytics.ingest.deid_profile`` holds the table) is
decided by its tag, whatever VR the file claims (PS3.15 E.1-1 lists attributes, not
encodings). An element sent as ``UN`` or with a wrong VR is read again under the VR the data
dictionary gives its tag before anything is decided, and stored with that VR:

- Attributes listed in the table get their applied action, at every nesting depth.
- Private tags, overlays (60xx), curves (50xx) and public tags the data dictionary does not
  know are removed (nothing says they are safe).
- Any other attribute follows a safe default by its dictionary VR: ``UI`` values are
  replaced by keyed pseudonyms unless they name a class or transfer syntax; ``DA``/``DT``
  are shifted by the patient's date shift; ``TM`` is kept (the shift is whole days); ``PN``,
  ``AS`` and free text (``LO SH ST LT UT UC UR AE``) are removed unless the keyword is in
  the short list of technical strings; code strings, numbers, binary data and ``AT`` are
  kept; sequences are walked item by item.
- A kept element whose file VR was wrong must also read as its dictionary VR (a code
  string, number, age, time or UID): free text smuggled into it is removed.
- An element that cannot be read as its dictionary VR is removed; if it is one the series
  needs to be built and scored (geometry, rescale, pixel description, identifiers of the
  object), the instance is refused instead of being stored without it.

The walk is bounded: sequences nested deeper than ``MAX_DEID_DEPTH`` or more than
``MAX_DEID_ELEMENTS`` elements (those after the pixel data included) end it with a typed
error naming the file, never a ``RecursionError``.

Pseudonyms are HMAC-SHA256 under the site secret (``Settings.site_secret()``), so they are
stable across runs and sites cannot confirm a guessed identifier without the key. The same
original UID always maps to the same pseudonym, which keeps every reference (Referenced SOP
Instance UID, Referenced Series Sequence, Frame of Reference UID, SEG/RTSTRUCT references)
consistent across instances, batches and runs. Stored dates are ``real + date_shift_days``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import io
import re
from dataclasses import dataclass

from pydicom import Dataset, dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from analytics.errors import InvalidDicomError, LimitExceededError
from analytics.ingest.deid_profile import (
    CLEAN_DUMMIES,
    EXTRA_CLEAN_KEYWORDS,
    METHOD_CODES,
    METHOD_TEXT,
    RULES_BY_TAG,
    SAFE_TEXT_KEYWORDS,
)
from analytics.ingest.deid_vr import (
    READ_ERRORS,
    as_list,
    by_dictionary_vr,
    dictionary_vr,
    first_line,
    has_form,
    read_element,
    text_of,
    vr_agrees,
)
from analytics.ingest.dicom_write import encode_file

#: maximum backwards date shift in days; shifts are drawn from [-MAX_SHIFT_DAYS, -1]
MAX_SHIFT_DAYS = 730
ZERO_PREAMBLE = b"\x00" * 128
#: deepest sequence nesting the walk accepts (the header parse allows as much)
MAX_DEID_DEPTH = 32
#: most elements one file may hold, at every depth and after the pixel data too
MAX_DEID_ELEMENTS = 2_000_000

_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "UR", "AE"})
_REMOVE_VRS = frozenset({"PN", "AS", "UN"})
_STRING_VRS = _TEXT_VRS | {"PN", "CS", "DA", "DT", "TM", "AS", "DS", "IS", "UI"}
#: top-level attributes a stored image, SEG or RTSTRUCT is read and scored by: if one was
#: in the file, de-identification must not lose it (a "complete" series must stay scorable)
_NEEDED_KEYWORDS: tuple[str, ...] = (
    "ImageType", "SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID",
    "SeriesInstanceUID", "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient",
    "FrameOfReferenceUID", "SliceThickness", "SpacingBetweenSlices", "SamplesPerPixel",
    "PhotometricInterpretation", "NumberOfFrames", "Rows", "Columns", "PixelSpacing",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "RescaleIntercept",
    "RescaleSlope", "RescaleType", "SegmentSequence", "StructureSetROISequence",
    "ROIContourSequence", "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
)
_DICOM_ROOT = "1.2.840.10008."
_SECONDARY_CAPTURE_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
})

#: words allowed in a cleaned descriptor: anatomy, phases, techniques, structures
VOCABULARY: frozenset[str] = frozenset("""
abd abdo abdomen abdominal abdpel abdomenpelvis pelvis pelvic chest thorax thoracic body
whole trunk upper lower liver hepatic hepato hepatobiliary spleen splenic kidney kidneys
renal pancreas pancreatic gallbladder biliary bile duct ducts stomach bowel colon
intestine duodenum esophagus adrenal aorta aortic artery arterial arteries vein veins
venous vena cava ivc svc portal mesenteric smv sma celiac vessel vessels vascular
vasculature tree branch branches lobe lobes segment segments couinaud caudate left right
lt rt l r bilateral lesion lesions tumor tumour tumors tumours mass masses nodule
nodules hcc metastasis metastases cyst cysts ascites fat fluid bone bones spine vertebra
vertebrae rib ribs muscle muscles psoas skin external outline patient bodymask lung
lungs heart cardiac diaphragm prostate bladder uterus rectum femur head neck ct mr mri
cect ncct pet spect scan scans image images series study exam examination phase phases
early late portalvenous pv hv art del delayed delay equilibrium equil transitional
nephrographic unenhanced enhanced non nonenhanced noncontrast native plain pre post
precontrast postcontrast contrast iv oral w wo with without and or of the at in on to
for no c dyn dynamic multiphase triphasic biphasic quadriphasic routine protocol
standard std helical spiral axial ax axi cor coronal sag sagittal obl oblique mpr mip
minip vr recon reconstruction reformat reformats thin thick slice slices mm cm ml kv kvp
mas soft tissue window sharp smooth kernel filter iterative asir asir-v ida idose safire
admire fbp dlir dose low high ultra bolus tracking test localizer scout topogram surview
t1 t2 pd flair dwi adc diffusion perfusion vibe lava thrive mdixon dixon starvibe gre
fse tse haste ssfse space cube fs fatsat fat-sat inphase in-phase opp opposed outphase
out-phase water ip op sub subtraction eob eovist primovist gadoxetate gad gd gadolinium
mra mrcp elastography mre stiffness wave pdff r2 r2star t2star iron seg segmentation
map maps fraction fatfrac ideal quant liverlab elastogram confidence kpa magnitude proton
density
segmentations mask masks label labels roi rois contour contours structure structures
auto automatic manual edited reviewed total totalsegmentator ground truth reference gt
prediction predicted model ai nnunet unet omnipaque iohexol iopamidol isovue iomeron
iomeprol visipaque iodixanol ultravist iopromide optiray ioversol xenetix iobitridol
magnevist dotarem gadovist multihance prohance clariscan omniscan media agent inferior
superior anterior posterior medial lateral central peripheral small large gland urinary
iliac femoral trachea brain skull sacrum hip gluteus hilum hilar i ii iii iva ivb v vi
vii viii remnant graft transplant leber milz niere becken kontrast mit ohne km nativ
arteriell arterielle venös venoes portalvenös portalvenoes spät spaet spätphase hap lap
eap pvp hbp nc
""".split())  # noqa: SIM905 - a word list reads best as text

_TOKEN_SPLIT = re.compile(r"[\s_\-/\\.,:;()+\[\]#=&*'\"<>|]+")
_SAFE_NUMBER = re.compile(r"^\d{1,4}(\.\d+)?(mm|cm|ml|kv|kvp|mas|s|ms|sec|min|x|%)?$")
_SAFE_CODE = re.compile(r"^[a-z]{1,2}\d{1,3}[a-z]{0,2}$")  # kernels and weightings: b30f, t1w
_SAFE_SHORT = re.compile(r"^[a-z]{1,2}$")  # initials of sequences and phases: pv, ax, fs


def _mac(secret: bytes, domain: str, value: str) -> bytes:
    """Keyed HMAC-SHA256 with a domain label, so one value gives unrelated pseudonyms."""
    return hmac.new(secret, f"{domain}\x00{value}".encode(), hashlib.sha256).digest()


def hmac_uid(secret: bytes, uid: str) -> str:
    """A valid DICOM UID (``2.25.<int>``, at most 44 characters) for ``uid`` under ``secret``.

    The 128-bit integer is laid out as an RFC 9562 version-8 UUID, as PS3.5 B.2 asks of
    ``2.25`` UIDs; the same ``uid`` and secret always give the same pseudonym.
    """
    raw = bytearray(_mac(secret, "uid", uid.strip())[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8 (custom)
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return f"2.25.{int.from_bytes(raw, 'big')}"


def source_key(secret: bytes, uid: str) -> str:
    """HMAC (hex) of an original UID: the dedup key in ``instances/series.source_key``."""
    return _mac(secret, "source", uid.strip()).hex()


def patient_key(secret: bytes, patient_id: str) -> str:
    """HMAC (hex) of a real patient ID: ``identity_map.real_patient_id_key``."""
    return _mac(secret, "patient-key", patient_id.strip()).hex()


def patient_pseudonym(secret: bytes, patient_id: str) -> str:
    """The research identifier of a patient, e.g. ``HT-3F9A0B1C2D4E5F60`` (64 HMAC bits)."""
    return "HT-" + _mac(secret, "patient", patient_id.strip()).hex()[:16].upper()


def date_shift_days(secret: bytes, patient_id: str) -> int:
    """The patient's date shift in days, in ``[-MAX_SHIFT_DAYS, -1]``.

    Always backwards, so a shifted date never lies in the future. Stored dates are
    ``real + shift``; cohort imports must shift lab and outcome dates with the same value.
    """
    n = int.from_bytes(_mac(secret, "date-shift", patient_id.strip())[:8], "big")
    return -(1 + n % MAX_SHIFT_DAYS)


def accession_key(secret: bytes, accession: str) -> str:
    """HMAC (hex) of an accession number, kept to link a study with its order."""
    return _mac(secret, "accession", accession.strip()).hex()


def parse_da(value: str) -> dt.date | None:
    """A DICOM DA (``YYYYMMDD``, or the ACR-NEMA ``YYYY.MM.DD``) as a date, else None."""
    v = value.strip().replace(".", "")
    if len(v) != 8 or not v.isdigit():
        return None
    try:
        return dt.date(int(v[:4]), int(v[4:6]), int(v[6:8]))
    except ValueError:
        return None


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value by ``days``; ``""`` stays ``""``; None when it cannot be read."""
    if not value.strip():
        return ""
    d = parse_da(value)
    if d is None:
        return None
    try:
        return (d + dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT value, keeping time, fraction and UTC offset.

    A year-only or year-month value is shifted from the first day of its period and
    truncated back to the same precision (the interval is then kept to that precision).
    """
    v = value.strip()
    if not v:
        return ""
    m = re.match(r"^(\d{4})(\d{2})?(\d{2})?(.*)$", v)
    if not m:
        return None
    year, month, day, rest = m.group(1), m.group(2), m.group(3), m.group(4)
    if rest and not re.match(r"^\d{0,6}(\.\d{1,6})?([+-]\d{4})?$", rest):
        return None
    try:
        d = dt.date(int(year), int(month or 1), int(day or 1)) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    if day is not None:
        return d.strftime("%Y%m%d") + rest
    if month is not None:
        return d.strftime("%Y%m") + rest
    return d.strftime("%Y") + rest


def clean_descriptor(value: str, forbidden: frozenset[str] = frozenset()) -> str | None:
    """``value`` if every word is clinical vocabulary and none is in ``forbidden``, else None.

    Words are split on spaces and punctuation; numbers of at most four digits (with a
    unit), short kernel/weighting codes (``b30f``, ``t1w``) and one- or two-letter
    abbreviations are allowed. Longer digit runs (IDs, dates) and unknown words fail.
    """
    text = value.strip()
    if not text:
        return ""
    for token in _TOKEN_SPLIT.split(text.lower()):
        if not token:
            continue
        if token in forbidden:
            return None
        if token in VOCABULARY or _SAFE_NUMBER.match(token) or _SAFE_CODE.match(token):
            continue
        if _SAFE_SHORT.match(token):
            continue
        return None
    return text


def quarantine_reason(ds: Dataset) -> str | None:
    """Why an image must not be stored because its pixels may show identifiers, or None.

    Quarantined: Burned In Annotation (0028,0301) is YES on any image; or it is missing (or
    not NO) on a secondary capture or screen save, where text in the pixels is the rule.
    """
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return "Burned In Annotation (0028,0301) is YES: the pixels may show identifiers"
    sop_class = str(ds.get("SOPClassUID", "") or "")
    image_type = [str(v).upper() for v in as_list(ds.get("ImageType"))]
    secondary = sop_class in _SECONDARY_CAPTURE_CLASSES or "SCREEN SAVE" in image_type
    if secondary and burned != "NO":
        what = "screen save" if "SCREEN SAVE" in image_type else "secondary capture"
        return (f"{what} without Burned In Annotation (0028,0301) = NO: the pixels may "
                "show identifiers")
    return None


@dataclass(frozen=True)
class PatientIdentity:
    """The real identifiers taken out of an instance, and what replaced them."""

    real_patient_id: str
    patient_name: str | None
    birth_date: dt.date | None
    issuer: str | None
    sex: str | None
    pseudonym: str
    key: str
    date_shift_days: int

    @property
    def shifted_birth_year(self) -> int | None:
        """Year of the shifted birth date: ages from stored dates stay within a year."""
        if self.birth_date is None:
            return None
        return (self.birth_date + dt.timedelta(days=self.date_shift_days)).year


def read_identity(ds: Dataset, secret: bytes, *, name: str = "instance",
                  deidentify: bool = True) -> PatientIdentity:
    """The patient identity of ``ds`` (before de-identification).

    Raises
    ------
    InvalidDicomError
        If Patient ID (0010,0020) is missing or empty: no pseudonym can be given.
    """
    pid = str(ds.get("PatientID", "") or "").strip()
    if not pid:
        raise InvalidDicomError(
            f"{name}: Patient ID (0010,0020) is missing or empty; expected the patient's "
            "identifier so that visits can be linked")
    sex = str(ds.get("PatientSex", "") or "").strip().upper()[:1] or None
    issuer = str(ds.get("IssuerOfPatientID", "") or "").strip() or None
    pname = str(ds.get("PatientName", "") or "").strip() or None
    birth = parse_da(str(ds.get("PatientBirthDate", "") or ""))
    if not deidentify:
        return PatientIdentity(pid, pname, birth, issuer, sex if sex in ("M", "F", "O") else None,
                               pid, patient_key(secret, pid), 0)
    return PatientIdentity(
        real_patient_id=pid, patient_name=pname, birth_date=birth, issuer=issuer,
        sex=sex if sex in ("M", "F", "O") else None,
        pseudonym=patient_pseudonym(secret, pid), key=patient_key(secret, pid),
        date_shift_days=date_shift_days(secret, pid),
    )


@dataclass
class _Walk:
    """What one de-identification walk carries: the file's name for errors, the identity
    it removes, and the number of elements visited so far (bounded)."""

    name: str
    ident: PatientIdentity
    forbidden: frozenset[str]
    elements: int = 0

    def count(self) -> None:
        self.elements += 1
        if self.elements > MAX_DEID_ELEMENTS:
            raise LimitExceededError(
                f"{self.name}: more than {MAX_DEID_ELEMENTS} elements (MAX_DEID_ELEMENTS, "
                "those after the pixel data included): refused")


class Deidentifier:
    """Applies the profile to datasets with one site secret.

    Parameters
    ----------
    secret
        The site key (``Settings.site_secret()``), at least 32 bytes.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the site secret must be at least 32 bytes")
        self.secret = secret
        self._uid_cache: dict[str, str] = {}

    def uid(self, original: str) -> str:
        """The pseudonym of one UID (cached: a series repeats its study and frame UIDs)."""
        key = original.strip()
        got = self._uid_cache.get(key)
        if got is None:
            got = self._uid_cache[key] = hmac_uid(self.secret, key)
        return got

    def deidentify(self, ds: Dataset, *, name: str = "instance") -> PatientIdentity:
        """De-identify ``ds`` in place and return the identity it carried.

        Parameters
        ----------
        ds
            The dataset, changed in place.
        name
            The file's display name, used in error messages.

        Returns
        -------
        PatientIdentity
            The real identifiers taken out and the pseudonym and date shift put in.

        Raises
        ------
        InvalidDicomError
            If the patient cannot be identified (no Patient ID); if sequences are nested
            deeper than ``MAX_DEID_DEPTH`` ("malformed file"); or if an attribute the series
            is built and scored by cannot be read as the VR its tag has.
        LimitExceededError
            If the dataset holds more than ``MAX_DEID_ELEMENTS`` elements.
        """
        ident = read_identity(ds, self.secret, name=name)
        walk = _Walk(name, ident, _forbidden_tokens(ident))
        needed = [t for t in _needed_tags() if t in ds]
        try:
            self._scrub(ds, walk, depth=0)
        except RecursionError as e:  # pydicom parsing a lazily read sequence
            raise InvalidDicomError(f"{name}: malformed file: sequences nested too deeply") from e
        lost = [t for t in needed if t not in ds]
        if lost:  # stored without it, a series checked "complete" could never be scored
            vr = dictionary_vr(lost[0])
            raise InvalidDicomError(
                f"{name}: {_tag_label(lost[0])} does not read as {vr}, the VR of its tag; "
                f"expected a valid {vr} value (the series cannot be built or scored without "
                "it)")
        ds.add_new(0x00100020, "LO", ident.pseudonym)  # Patient ID
        ds.add_new(0x00100010, "PN", ident.pseudonym)  # Patient's Name
        if 0x00100030 not in ds:
            ds.add_new(0x00100030, "DA", "")  # Patient's Birth Date (type 2)
        ds.add_new(0x00120062, "CS", "YES")  # Patient Identity Removed
        ds.add_new(0x00120063, "LO", list(METHOD_TEXT))  # De-identification Method
        ds.add_new(0x00120064, "SQ", Sequence([_code(v, m) for v, m in METHOD_CODES]))
        ds.add_new(0x00280303, "CS", "MODIFIED")  # Longitudinal Temporal Information Modified
        _rebuild_file_meta(ds)
        return ident

    def deidentify_bytes(self, data: bytes, *, name: str = "instance"
                         ) -> tuple[bytes, PatientIdentity, Dataset]:
        """Read a whole DICOM file, de-identify it and write it back with a zeroed preamble.

        The input must already have passed the safe parser (limits on size, depth and
        inflation of the header); this reads it in full, pixels and the elements after
        them included, in the calling process, with no memory or time limit. Ingest
        therefore calls it only inside a parse worker
        (``analytics.ingest.reader.SafeParser.deidentify``); call it directly on trusted
        bytes only.

        Raises
        ------
        InvalidDicomError
            If the file cannot be read in full or its de-identified copy cannot be written
            ("malformed file", e.g. sequences nested too deeply after the pixel data), or
            for the reasons :meth:`deidentify` gives.
        LimitExceededError
            If the file holds more than ``MAX_DEID_ELEMENTS`` elements.
        """
        try:
            ds = dcmread(io.BytesIO(data))
        except RecursionError as e:
            raise InvalidDicomError(f"{name}: malformed file: sequences nested too deeply") from e
        except READ_ERRORS as e:
            raise InvalidDicomError(f"{name}: malformed file: {first_line(e)}") from e
        ident = self.deidentify(ds, name=name)
        try:
            out = write_dataset(ds)
        except (*READ_ERRORS, OSError) as e:  # pydicom wraps encoding errors in OSError
            raise InvalidDicomError(f"{name}: malformed file: its de-identified copy cannot be "
                                    f"written ({first_line(e)})") from e
        return out, ident, ds

    # ---------------------------------------------------------------- the walk
    def _scrub(self, ds: Dataset, walk: _Walk, depth: int) -> None:
        if depth > MAX_DEID_DEPTH:
            raise InvalidDicomError(f"{walk.name}: malformed file: sequences nested deeper "
                                    f"than {MAX_DEID_DEPTH} levels")
        for tag in list(ds.keys()):
            walk.count()
            t = int(tag)
            group = t >> 16
            if group & 1 or (group & 0xFF00) in (0x5000, 0x6000) or (t & 0xFFFF) == 0:
                del ds[tag]  # private, curve, overlay, group length
                continue
            if group == 0x0002:
                del ds[tag]  # file meta inside the data set: misplaced; the meta is rebuilt
                continue
            if group == 0x7FE0:
                continue  # pixel data
            vr = dictionary_vr(t)
            if vr is None:
                del ds[tag]  # a public tag the dictionary does not know: not known safe
                continue
            raw = ds.get_item(tag)
            rule = RULES_BY_TAG.get(t)
            if vr_agrees(raw.VR, vr):
                if rule is not None or vr != "UI":  # only a UI default needs the value
                    action = rule.applied if rule is not None else _default_action(t, vr, None)
                    if action == "K" and vr != "SQ":
                        continue  # not decoded: kept elements are written back as read
                elem = read_element(ds, tag)
                form_checked = True
            else:
                elem = by_dictionary_vr(ds, raw, vr)  # by the tag's VR, never the file's
                form_checked = elem is not None and has_form(elem, vr)
            if elem is None:
                del ds[tag]  # unreadable as its tag's VR: removed, never kept unread
                continue
            action = rule.applied if rule is not None else _default_action(t, vr, elem)
            if action == "K" and not form_checked:
                del ds[tag]  # free text sent under another VR in a coded or numeric tag
                continue
            if action == "K" and vr != "SQ":
                continue
            self._apply(ds, elem, action, walk, depth)

    def _apply(self, ds: Dataset, elem: DataElement, action: str, walk: _Walk,
               depth: int) -> None:
        vr = elem.VR
        if action == "X":
            del ds[elem.tag]
        elif action in ("K", "S"):
            if vr == "SQ":
                self._walk_items(elem, walk, depth)
            else:
                del ds[elem.tag]  # a reference sequence sent as a value: nothing to keep
        elif action == "Z":
            elem.value = [] if vr == "SQ" else ("" if vr in _STRING_VRS else None)
        elif action == "P":
            elem.value = walk.ident.pseudonym
        elif action == "U":
            if elem.value:
                vals = [self.uid(str(v)) for v in as_list(elem.value)]
                elem.value = vals if len(vals) > 1 else vals[0]
        elif action == "D":
            if vr == "SQ":
                del ds[elem.tag]
            else:
                elem.value = _dummy(vr)
        elif action == "C":
            self._clean(ds, elem, walk, depth)
        else:  # pragma: no cover - the table is validated by tests
            raise ValueError(f"unknown de-identification action {action!r}")

    def _walk_items(self, elem: DataElement, walk: _Walk, depth: int) -> None:
        for item in elem.value or []:
            self._scrub(item, walk, depth + 1)

    def _clean(self, ds: Dataset, elem: DataElement, walk: _Walk, depth: int) -> None:
        vr = elem.VR
        ident = walk.ident
        if vr in ("DA", "DT"):
            shift = shift_da if vr == "DA" else shift_dt
            out = []
            for v in as_list(elem.value):
                shifted = shift(str(v), ident.date_shift_days)
                if shifted is None:  # unreadable date: emptied rather than kept
                    out = []
                    break
                out.append(shifted)
            elem.value = (out if len(out) > 1 else out[0]) if out else ""
            return
        if vr == "TM":
            if not has_form(elem, vr):
                elem.value = ""  # not a time: emptied rather than kept
            return  # whole-day shifts keep every time of day
        if vr == "SQ":
            self._walk_items(elem, walk, depth)
            return
        keyword = keyword_for_tag(elem.tag) if not elem.tag.is_private else ""
        cleaned = clean_descriptor(text_of(elem.value), walk.forbidden)
        if cleaned is not None:
            elem.value = cleaned
            return
        dummy = CLEAN_DUMMIES.get(keyword)
        if dummy is None:
            del ds[elem.tag]
            return
        number = ds.get("ROINumber", ds.get("SegmentNumber", ""))
        elem.value = dummy.format(n=number).strip()


@functools.cache
def _needed_tags() -> tuple[int, ...]:
    from pydicom.datadict import tag_for_keyword

    return tuple(int(tag_for_keyword(k)) for k in _NEEDED_KEYWORDS)


def _tag_label(tag: int) -> str:
    return f"{keyword_for_tag(tag) or 'element'} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _default_action(tag: int, vr: str, elem: DataElement | None) -> str:
    """The rule for attributes not in the table (see the module docstring); ``vr`` is the
    tag's dictionary VR and ``elem`` the decoded element (needed for ``UI`` only)."""
    if vr == "SQ":
        return "K"
    if vr == "UI":
        keyword = keyword_for_tag(tag)
        if keyword.endswith(("ClassUID", "SyntaxUID")) or keyword in (
                "CodingSchemeUID", "MappingResourceUID", "ContextUID", "SOPClassesInStudy"):
            return "K"
        values = [str(v) for v in as_list(elem.value if elem is not None else None)]
        if values and all(v.startswith(_DICOM_ROOT) for v in values):
            return "K"  # well-known UIDs defined by the standard
        return "U"
    if vr in ("DA", "DT"):
        return "C"
    if vr == "TM":
        return "K"
    if vr in _REMOVE_VRS:
        return "X"
    if vr in _TEXT_VRS:
        keyword = keyword_for_tag(tag)
        if keyword in SAFE_TEXT_KEYWORDS:
            return "K"
        if keyword in EXTRA_CLEAN_KEYWORDS:
            return "C"
        return "X"
    return "K"  # CS, numbers, binary, AT


def _dummy(vr: str) -> object:
    return {"PN": "ANONYMIZED", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "ST": "ANONYMIZED",
            "LT": "ANONYMIZED", "UT": "ANONYMIZED", "CS": "ANONYMIZED", "DA": "19000101",
            "TM": "000000", "DT": "19000101000000", "AS": "000Y"}.get(vr)


def _forbidden_tokens(ident: PatientIdentity) -> frozenset[str]:
    """Words of the patient's own name and ID, which a cleaned descriptor must not contain."""
    words: set[str] = set()
    for text in (ident.patient_name or "", ident.real_patient_id):
        words.update(t for t in _TOKEN_SPLIT.split(text.lower().replace("^", " ")) if len(t) >= 2)
    return frozenset(words)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()  # by tag: keyword lookups dominate the cost of tiny items
    item.add_new(0x00080100, "SH", value)  # Code Value
    item.add_new(0x00080102, "SH", "DCM")  # Coding Scheme Designator
    item.add_new(0x00080104, "LO", meaning)  # Code Meaning
    return item


def _rebuild_file_meta(ds: Dataset) -> None:
    """File meta with only what identifies the object, pointing at the new SOP Instance UID."""
    old = getattr(ds, "file_meta", None)
    sop_class = ds.get("SOPClassUID") or (old.get("MediaStorageSOPClassUID") if old else None)
    transfer = (old.get("TransferSyntaxUID") if old else None) or "1.2.840.10008.1.2.1"
    meta = FileMetaDataset()
    meta.add_new(0x00020001, "OB", b"\x00\x01")  # File Meta Information Version
    meta.add_new(0x00020002, "UI", sop_class)
    meta.add_new(0x00020003, "UI", ds.get("SOPInstanceUID"))
    meta.add_new(0x00020010, "UI", transfer)
    meta.add_new(0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID)
    meta.add_new(0x00020013, "SH", "HEPATRACK")
    ds.file_meta = meta


def write_dataset(ds: Dataset) -> bytes:
    """Encode ``ds`` as a DICOM file whose 128-byte preamble is all zeros (the bytes of
    ``save_as(enforce_file_format=True)``, unchanged elements copied as read)."""
    return encode_file(ds)


def zero_preamble(data: bytes) -> bytes:
    """``data`` with its 128-byte preamble zeroed (a PE/ELF header there is never kept)."""
    if len(data) >= 132 and data[128:132] == b"DICM" and data[:128] != ZERO_PREAMBLE:
        return ZERO_PREAMBLE + data[128:]
    return data
