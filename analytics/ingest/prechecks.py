"""Checks the parent makes on a file's bytes before any worker parses them.

Cheap and bounded (they look at the first bytes only): executable code in the 128-byte
preamble (CVE-2019-11687) and NIfTI magic.
"""

from __future__ import annotations

import zlib

from analytics.config import IngestLimits


def preamble_threat(data: bytes) -> str | None:
    """Name of the executable format in the 128-byte preamble (CVE-2019-11687), if any."""
    pre = data[:128]
    if pre[:2] == b"MZ":
        return "PE"
    if pre[:4] == b"\x7fELF":
        return "ELF"
    if pre[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                   b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return "Mach-O"
    if pre[:2] == b"#!":
        return "script"
    return None


def zero_preamble(data: bytes) -> tuple[bytes, str | None]:
    """``data`` with 128 zero bytes as preamble, and a note if anything was there."""
    if len(data) < 132 or not any(data[:128]):
        return data, None
    threat = preamble_threat(data)
    note = (f"preamble zeroed ({threat} header: CVE-2019-11687 polyglot)" if threat
            else "preamble zeroed (non-zero bytes)")
    return b"\0" * 128 + data[128:], note


def nifti_magic(data: bytes, limits: IngestLimits) -> bool:
    """True for a NIfTI-1/2 file, plain or gzip-compressed (only the header is inflated)."""
    head = data[:600]
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], 600)
        except Exception:  # not gzip after all: not NIfTI either
            return False
    return head[344:348] in (b"n+1\0", b"ni1\0") or head[4:8] in (b"n+2\0", b"ni2\0")


__all__ = ["nifti_magic", "preamble_threat", "zero_preamble"]
