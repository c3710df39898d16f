"""Findings of ingest: what was refused, and why, in the JSON contract's ``{file, reason}`` shape.

Validators return findings instead of raising, so one bad file never stops a batch; one
policy (the pipeline) decides whether a finding rejects a file, a series or only warns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Finding categories, so callers can count or filter without parsing the message.
NOT_DICOM = "not_dicom"
MALFORMED = "malformed"
TIMED_OUT = "timed_out"
LIMIT = "limit"
UNSUPPORTED = "unsupported"
MISSING_ATTRIBUTE = "missing_attribute"
UNSAFE_NAME = "unsafe_name"
EXCLUDED = "excluded"
INCOHERENT = "incoherent"


@dataclass
class Rejection:
    """A file, archive entry or instance that was not taken in.

    Attributes
    ----------
    file
        Display name of the input (archive entry name or path relative to the source);
        never used as a filesystem path.
    reason
        One line saying what was wrong and what was expected, naming the tag or limit.
    category
        One of the module-level category constants (``malformed``, ``limit`` ...).
    """

    file: str
    reason: str
    category: str = MALFORMED

    def as_dict(self) -> dict[str, str]:
        """The ``{file, reason}`` object of the ingest JSON contract."""
        d = asdict(self)
        d.pop("category")
        return d

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"
