"""Reading an element under the VR the data dictionary gives its tag, whatever VR the file
claims: the part of de-identification (``analytics.ingest.deid``) that makes it go by tag.

A file may send a standard attribute as ``UN`` (a converter that did not know it) or under
a wrong VR (a name as ``CS``). Each such element is read again from its bytes under its
dictionary VR, so the profile's action and every later reader see what the tag means;
values that do not read as that VR, or whose VR has a fixed form they do not have, are
reported so that de-identification can remove them.
"""

from __future__ import annotations

import functools
import re
import struct

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.errors import BytesLengthException
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.filewriter import correct_ambiguous_vr_element
from pydicom.multival import MultiValue

#: VRs whose values are text, so one can be read again as another
STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                        "TM", "UC", "UI", "UR", "UT"})
#: a decimal or integer string, as DS and IS hold
_NUMBER = re.compile(r" *[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)? *")
#: what a kept value must look like when the file sent it under another VR (PS3.5 6.2);
#: lenient on case and number form, strict on length and characters: no free text fits
VALUE_FORMS = {
    "CS": re.compile(r"[A-Za-z0-9 _]{0,16}"),
    "DS": _NUMBER,
    "IS": _NUMBER,
    "AS": re.compile(r"\d{3}[DWMY]"),
    "TM": re.compile(r"[0-9.: ]{0,28}"),
    "UI": re.compile(r"[0-9.]{1,64}"),
}
#: what pydicom raises when a value cannot be read as the VR it is given
READ_ERRORS = (ValueError, TypeError, LookupError, struct.error, OverflowError,
               NotImplementedError, BytesLengthException, PydicomInvalidDicomError, EOFError)


@functools.lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> str | None:
    """The VR the data dictionary gives ``tag`` (``"US or SS"`` for ambiguous ones), or
    None for a public tag it does not know."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), for a reason."""
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def vr_agrees(file_vr: str | None, vr: str) -> bool:
    """True when the element can be read as the file wrote it: implicit VR (the dictionary
    decides), the dictionary VR itself, or one of the VRs of an ambiguous entry."""
    if file_vr is None or file_vr == vr:
        return True
    return " or " in vr and file_vr in vr.split(" or ")


def read_element(ds: Dataset, tag) -> DataElement | None:
    """``ds[tag]`` decoded, or None when pydicom cannot decode it."""
    try:
        return ds[tag]
    except READ_ERRORS:
        return None


def by_dictionary_vr(ds: Dataset, raw: DataElement | RawDataElement, vr: str
                     ) -> DataElement | RawDataElement | None:
    """Read an element sent under another VR again as ``vr``, its tag's dictionary VR.

    Parameters
    ----------
    ds
        The dataset (or sequence item) holding the element; the decoded element replaces
        the one sent, so it is written back under ``vr``.
    raw
        The element as read from the file (raw, or already decoded by pydicom).
    vr
        The tag's VR in the data dictionary (``dictionary_vr``).

    Returns
    -------
    DataElement, RawDataElement or None
        The element under ``vr``; for an ambiguous ``vr`` sent as ``UN`` that the dataset
        cannot resolve, the element as sent (binary, kept as it is); None when the value
        cannot be read as ``vr`` (the caller removes it).

    Raises
    ------
    RecursionError
        From pydicom, for a sequence sent as ``UN`` nested too deeply (the caller turns it
        into "malformed file").
    """
    if " or " in vr:
        return _ambiguous(ds, raw, vr)
    try:
        if isinstance(raw, RawDataElement):
            # PS3.5 6.2.2: a sequence sent as UN is encoded in implicit VR little endian
            implicit = raw.is_implicit_VR or (raw.VR == "UN" and vr == "SQ")
            raw = raw._replace(VR=vr, is_implicit_VR=implicit,
                               value=raw.value if raw.value is not None else b"")
            elem = convert_raw_data_element(raw, encoding=ds._character_set, ds=ds)
        elif raw.VR == "SQ" or vr == "SQ":
            return None  # a sequence is never a value, nor a value a sequence
        elif isinstance(raw.value, bytes | bytearray):
            little = ds.original_encoding[1] is not False
            elem = convert_raw_data_element(
                RawDataElement(raw.tag, vr, len(raw.value), bytes(raw.value), 0, False, little),
                encoding=ds._character_set, ds=ds)
        elif vr in STRING_VRS:
            elem = DataElement(raw.tag, vr, _text_values(raw.value))
        else:
            return None  # text where the tag holds binary numbers
    except READ_ERRORS:
        return None
    if not vr_agrees(elem.VR, vr) or elem.VR is None:
        return None  # pydicom fell back to UN: the value does not fit the tag's VR
    ds[elem.tag] = elem
    return elem


def _ambiguous(ds: Dataset, raw: DataElement | RawDataElement, vr: str
               ) -> DataElement | RawDataElement | None:
    """An element whose tag has an ambiguous VR (``US or SS``, ``OB or OW`` ...: binary
    pixel-description values) sent under another VR: resolved from the dataset when it can
    be, else kept as sent if that was ``UN``; None (removed) for any other VR."""
    if raw.VR != "UN":
        return None  # text where the tag holds binary numbers
    if not isinstance(raw, RawDataElement):
        return raw
    little = ds.original_encoding[1] is not False
    try:
        elem = convert_raw_data_element(raw._replace(VR=vr), encoding=ds._character_set, ds=ds)
        elem = correct_ambiguous_vr_element(elem, ds, little)
    except READ_ERRORS:
        return raw
    if " or " in elem.VR:
        return raw  # not decidable here (e.g. in an item): binary, kept as sent
    ds[elem.tag] = elem
    return elem


def _text_values(value: object) -> str | list[str]:
    values = [str(v) for v in as_list(value)]
    return values if len(values) > 1 else (values[0] if values else "")


def text_of(value: object) -> str:
    """One string for a text value (multiple values joined as DICOM writes them)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return "\\".join(str(v) for v in as_list(value))


def has_form(elem: DataElement, vr: str) -> bool:
    """True when each value of ``elem`` is well formed for ``vr`` (for the VRs with a fixed
    form: code strings, numbers, ages, times, UIDs); other VRs always pass."""
    form = VALUE_FORMS.get(vr)
    if form is None:
        return True
    for v in text_of(elem.value).split("\\"):
        if not form.fullmatch(v.strip("\x00 ")) and v.strip("\x00 "):
            return False
    return True


def as_list(value: object) -> list[object]:
    """A value as a list of its values (``[]`` for an empty one)."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, MultiValue)):
        return list(value)
    return [value]
