"""Usernames and patient IDs as people type them: normalised, checked and compared.

A name is taken in Unicode NFC with surrounding spaces removed. Control and invisible
characters (Unicode categories Cc, Cf, Zl, Zp, Co, Cs, Cn, and every space other than the
plain ASCII space) are refused: they make two names that look the same on screen
(``'victim\\n'`` and ``'victim'``, a zero-width space inside an ID). Two names are the same
when they differ only in letter case or spaces (:func:`name_key`).
"""

from __future__ import annotations

import unicodedata

#: categories that are invisible or control characters (Cn: unassigned code points)
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})


def bad_character(value: str) -> str | None:
    """Describe the first control or invisible character in ``value``, or None.

    Returns
    -------
    str or None
        E.g. ``"U+000A (LINE FEED) at position 7"``; positions count from 1.
    """
    for i, ch in enumerate(value, 1):
        cat = unicodedata.category(ch)
        if cat in _REFUSED_CATEGORIES or (cat == "Zs" and ch != " "):
            name = unicodedata.name(ch, "")
            if not name and cat == "Cc":
                name = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB"}.get(
                    ch, "control character")
            label = f"U+{ord(ch):04X}" + (f" ({name})" if name else "")
            return f"{label} at position {i}"
    return None


def clean_name(value: object, what: str) -> str:
    """``value`` in NFC without surrounding spaces; refuse control and invisible characters.

    Parameters
    ----------
    value
        The name as typed or read from a file.
    what
        How to name the field in the error, e.g. ``"username"`` or ``"row 4: patient_id"``.

    Raises
    ------
    ValueError
        Not a string, empty, or with a control or invisible character; the message names
        ``what``, the character and its position.
    """
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected text, got {type(value).__name__}")
    text = unicodedata.normalize("NFC", value)
    bad = bad_character(text)
    if bad:
        raise ValueError(f"{what} {value!r}: control or invisible character {bad}; "
                         "expected visible characters only")
    text = text.strip(" ")
    if not text:
        raise ValueError(f"{what}: empty; expected a name")
    return text


def name_key(value: str) -> str:
    """The comparison key of a cleaned name: case-folded, spaces removed."""
    return unicodedata.normalize("NFC", value).casefold().replace(" ", "")


def clinical_name(person_name: str | None) -> str | None:
    """A DICOM person name (PN, ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``) in clinical form:
    ``"LOPEZ^CHARLES"`` -> ``"Charles LOPEZ"``, ``"Doe^Jane^A"`` -> ``"Jane A DOE"``.

    The family name is in capitals, given and middle names in title case when they were
    typed all in one case (``"McKenzie"`` is kept as typed); prefix and suffix keep their
    places as typed. Only the first (alphabetic) component group of a multi-script name is used.
    A name without ``^`` is returned as it is; an empty one gives None.
    """
    if person_name is None:
        return None
    text = str(person_name).split("=", 1)[0].strip()
    if "^" not in text:
        return text or None
    family, given, middle, prefix, suffix = (text.split("^") + [""] * 5)[:5]

    def shown(part: str) -> str:
        part = " ".join(part.split())
        return part.title() if part.isupper() or part.islower() else part

    words = [" ".join(prefix.split()), shown(given), shown(middle),
             " ".join(family.split()).upper(), " ".join(suffix.split())]
    return " ".join(w for w in words if w) or None


__all__ = ["bad_character", "clean_name", "clinical_name", "name_key"]
