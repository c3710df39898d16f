"""Typed errors raised by the engine.

Pages catch only these (``HepaTrackError`` and subclasses) and show them with ``st.error``;
anything else is a bug and must surface. Every message names the file, row or field and
what was expected.
"""

from __future__ import annotations


class HepaTrackError(Exception):
    """Base class of every expected, user-facing error."""

    #: one line telling the user what to do next (shown under the error in the UI)
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(HepaTrackError):
    """A setting is missing or has an invalid value."""


class StoreError(HepaTrackError):
    """The store cannot be opened, migrated or written."""


class ConflictError(StoreError):
    """The same identifier arrived again with different content; nothing was overwritten."""


class IngestError(HepaTrackError):
    """A file, archive or PACS reply could not be ingested."""


class InvalidDicomError(IngestError):
    """A file is not DICOM, is malformed, or lacks required attributes."""


class UnsupportedError(IngestError):
    """Valid input that HepaTrack does not handle (SOP class, compression, modality)."""


class LimitExceededError(IngestError):
    """An upload, archive, series or element is over a configured size or time limit."""


class InvalidSeriesError(IngestError):
    """Instances do not form one coherent volume (orientation, spacing, gaps, tilt)."""


class PacsError(IngestError):
    """The PACS could not be reached, timed out, or replied incompletely."""


class MaskError(HepaTrackError):
    """A segmentation could not be read or matched to its image series."""


class FeatureError(HepaTrackError):
    """A biomarker could not be computed for a series."""


class MissingExtraError(FeatureError):
    """An optional extra (``pip install 'hepatrack[NAME]'``) needed by a request is missing."""


class CohortError(HepaTrackError):
    """A cohort CSV or the assembled cohort table is invalid."""


class ModelError(HepaTrackError):
    """A model cannot be trained, loaded or used."""


class ModelIntegrityError(ModelError):
    """A stored model's hash, card, horizons or training ranges are missing or wrong."""


class SettingsError(ModelError, ValueError):
    """A model setting is unknown or out of range; ``field`` names it."""

    def __init__(self, field_name: str, detail: str, label: str | None = None) -> None:
        super().__init__(f"{label or field_name}: {detail}")
        self.field = field_name
        self.detail = detail


class ModelNotAssessableError(ModelError):
    """A visit lies outside the model's training domain; no number is given."""


class AuthError(HepaTrackError):
    """Login failed, the session expired, or the role does not allow the action."""


class PermissionDeniedError(AuthError):
    """The user's role does not allow this action."""


class AuditError(HepaTrackError):
    """The audit trail could not be written or failed verification; the action is blocked."""
