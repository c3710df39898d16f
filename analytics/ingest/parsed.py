"""A file accepted by the safe parser: its bytes, identifiers and compact header.

:class:`ParsedInstance` is what :class:`analytics.ingest.reader.SafeParser` yields for each
accepted file (and :func:`parse_trusted` for a file HepaTrack stored itself).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import pydicom
from pydicom.uid import DeflatedExplicitVRLittleEndian

from analytics.config import IngestLimits
from analytics.ingest.clean_copy import CleanCopy
from analytics.ingest.compact import describe, geometry_from, pixel_extent_problem
from analytics.ingest.geometry import FrameGeometry, frame_geometry
from analytics.ingest.header import PixelElement, classify, parse_dicom

Kind = Literal["image", "ultrasound", "seg", "rtstruct", "nifti", "other"]


@dataclass
class ParsedInstance:
    """One accepted file: its bytes, identifiers and compact header; no pixel values read.

    ``data`` is the file as it will be stored: the preamble is already zeroed if it held
    anything. ``info`` is the compact header (:mod:`analytics.ingest.compact`); ``header``
    is the full dataset up to the pixel data, parsed on first use. ``pixel`` says where
    the pixel data lies in ``data`` (or in the inflated body for the deflated transfer
    syntax). ``pixel_problem`` is set when the pixel data is truncated or malformed: such
    an instance is invalid and its series is not scored.
    """

    name: str
    data: bytes
    sop_class_uid: str | None
    sop_instance_uid: str | None
    series_uid: str | None
    study_uid: str | None
    patient_id: str | None
    modality: str | None
    kind: Kind
    transfer_syntax_uid: str | None
    notes: list[str] = field(default_factory=list)
    pixel: PixelElement | None = None
    pixel_problem: str | None = None
    frame_of_reference_uid: str | None = None
    instance_number: int | None = None
    n_frames: int = 1
    info: dict = field(default_factory=dict, repr=False)
    clean: CleanCopy | None = field(default=None, repr=False)
    _header: pydicom.Dataset | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, repr=False)
    _limits: IngestLimits | None = field(default=None, repr=False)
    _geometry: list[FrameGeometry] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        """SHA-256 of ``data`` (hex), computed once on first use."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.data).hexdigest()
        return self._sha256

    @property
    def header(self) -> pydicom.Dataset:
        """The dataset up to the pixel data (parsed in-process on first use: the worker
        already vetted these bytes)."""
        if self._header is None:
            self._header = (parse_dicom(self.data, self._limits or IngestLimits()).dataset
                            if self.kind != "nifti" else pydicom.Dataset())
        return self._header

    @property
    def geometry(self) -> list[FrameGeometry]:
        """Per-frame geometry and rescale of an image (from the compact header).

        Raises
        ------
        InvalidDicomError
            Missing or invalid geometry attributes, named with their tag.
        """
        if self._geometry is None:
            self._geometry = (geometry_from(self.info) if self.info.get("geometry")
                              else frame_geometry(self.header))
        return self._geometry


def instance_from_info(name: str, data: bytes, info: dict, notes: list[str],
                       limits: IngestLimits, header: pydicom.Dataset | None = None
                       ) -> ParsedInstance:
    """A ParsedInstance from a compact header; checks the pixel data's extent in ``data``."""
    pixel_problem = None
    if info["kind"] in ("image", "ultrasound", "seg"):
        body: bytes | memoryview = data
        if info["transfer_syntax_uid"] == DeflatedExplicitVRLittleEndian:
            body = parse_dicom(data, limits).body
        pixel_problem = pixel_extent_problem(info, body)
    pix = info.get("pixel")
    return ParsedInstance(
        name=name, data=data, sop_class_uid=info["sop_class_uid"],
        sop_instance_uid=info["sop_instance_uid"], series_uid=info["series_uid"],
        study_uid=info["study_uid"], patient_id=info["patient_id"], modality=info["modality"],
        kind=info["kind"], transfer_syntax_uid=info["transfer_syntax_uid"], notes=notes,
        pixel=PixelElement(*pix) if pix else None, pixel_problem=pixel_problem,
        frame_of_reference_uid=info["frame_of_reference_uid"],
        instance_number=info["instance_number"],
        n_frames=info["frames"] if info["has_frames_tag"] else 1, info=info, _header=header,
        _limits=limits)


def parse_trusted(name: str, data: bytes, limits: IngestLimits | None = None,
                  kind: Kind | None = None) -> ParsedInstance:
    """Parse a file HepaTrack stored itself (already vetted) in-process, header only.

    Raises
    ------
    InvalidDicomError
        If the file is not DICOM.
    """
    limits = limits or IngestLimits()
    header = parse_dicom(data, limits)
    info = describe(header, kind or classify(header.dataset))
    return instance_from_info(name, data, info, [], limits, header.dataset)


__all__ = ["Kind", "ParsedInstance", "instance_from_info", "parse_trusted"]
