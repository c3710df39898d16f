"""Synthetic liver ultrasound frames with known truth.

A B-mode frame: a 2-D image region (declared in the Sequence of Ultrasound Regions, with
its physical pixel size in cm) holding liver parenchyma on the left and the cortex of the
right kidney on the right, each a known mean grey level under multiplicative speckle (gamma,
mean 1), the liver's level falling linearly with depth. Outside the region the frame
carries what scanners burn in: the patient's name, an ID and a date in a text band.

The truth says what a measurement on the frame must find: the liver level at any depth,
the kidney level, the hepatorenal index at the kidney's depth, the pixel size and the
region. :func:`ultrasound_dataset` writes the frame(s) as a DICOM US (or US multi-frame)
object, uncompressed, RLE or JPEG 2000 lossless.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
BURNED_NAME = "DOE^JANE"


@dataclass(frozen=True)
class UltrasoundTruth:
    """What the synthetic frame holds (grey levels 0-255, lengths in mm).

    Depth is measured down from the region's top row (the transducer face).
    ``kidney_box_px``/``liver_box_px`` are ``(x0, y0, x1, y1)`` pixel bounds (inclusive) of
    the kidney cortex and liver areas; ``region_px`` the image region.
    """

    rows: int
    cols: int
    region_px: tuple[int, int, int, int]
    pixel_mm: float
    liver_level: float  # at depth 0
    liver_slope_per_cm: float  # grey levels per cm of depth (negative: attenuation)
    kidney_level: float
    speckle_shape: float
    liver_box_px: tuple[int, int, int, int]
    kidney_box_px: tuple[int, int, int, int]
    burned_text: tuple[str, ...] = field(default=(BURNED_NAME,))

    def depth_mm(self, row: float) -> float:
        return (row - self.region_px[1]) * self.pixel_mm

    def x_mm(self, col: float) -> float:
        return (col - self.region_px[0]) * self.pixel_mm

    def liver_level_at(self, depth_mm: float) -> float:
        """Mean liver grey level at ``depth_mm``."""
        return self.liver_level + self.liver_slope_per_cm * depth_mm / 10.0

    @property
    def kidney_centre_mm(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.kidney_box_px
        return self.x_mm((x0 + x1) / 2), self.depth_mm((y0 + y1) / 2)

    @property
    def hepatorenal_index(self) -> float:
        """Liver over kidney cortex mean grey level, both at the kidney's depth."""
        return self.liver_level_at(self.kidney_centre_mm[1]) / self.kidney_level

    def as_dict(self) -> dict:
        return {**asdict(self), "hepatorenal_index": self.hepatorenal_index}


def default_truth(*, liver_level: float = 120.0, kidney_level: float = 60.0,
                  liver_slope_per_cm: float = -5.0, pixel_mm: float = 0.2,
                  rows: int = 300, cols: int = 400, speckle_shape: float = 16.0
                  ) -> UltrasoundTruth:
    """A frame layout: region below a 40-row text band and right of a 60-column margin."""
    region = (60, 40, cols - 21, rows - 11)
    x0, y0, x1, y1 = region
    mid = (x0 + x1) // 2
    return UltrasoundTruth(
        rows=rows, cols=cols, region_px=region, pixel_mm=pixel_mm, liver_level=liver_level,
        liver_slope_per_cm=liver_slope_per_cm, kidney_level=kidney_level,
        speckle_shape=speckle_shape, liver_box_px=(x0, y0, mid - 1, y1),
        kidney_box_px=(mid + 10, y0 + (y1 - y0) // 3, x1 - 10, y0 + 2 * (y1 - y0) // 3))


def render_frame(truth: UltrasoundTruth, rng: np.random.Generator,
                 burned: tuple[str, ...] | None = None) -> np.ndarray:
    """One 8-bit grey frame ``(rows, cols)`` of ``truth``, text burned in outside the region."""
    img = np.zeros((truth.rows, truth.cols), dtype=np.float64)
    x0, y0, x1, y1 = truth.region_px
    lx0, ly0, lx1, ly1 = truth.liver_box_px
    rows = np.arange(truth.rows, dtype=np.float64)[:, None]
    liver = truth.liver_level_at(truth.depth_mm(rows)) * np.ones((1, lx1 - lx0 + 1))
    img[ly0:ly1 + 1, lx0:lx1 + 1] = liver[ly0:ly1 + 1]
    img[y0:y1 + 1, lx1 + 1:x1 + 1] = 30.0  # perirenal fat and background
    kx0, ky0, kx1, ky1 = truth.kidney_box_px
    img[ky0:ky1 + 1, kx0:kx1 + 1] = truth.kidney_level
    speckle = rng.gamma(truth.speckle_shape, 1.0 / truth.speckle_shape, img.shape)
    inside = np.zeros(img.shape, dtype=bool)
    inside[y0:y1 + 1, x0:x1 + 1] = True
    img = np.where(inside, img * speckle, 0.0)
    frame = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    text = Image.new("L", (truth.cols, truth.rows), 0)
    draw = ImageDraw.Draw(text)
    lines = burned if burned is not None else truth.burned_text
    for k, line in enumerate(lines):
        draw.text((4 + 120 * (k % 3), 4 + 14 * (k // 3)), line, fill=255)
    draw.text((2, y0 + 10), "ID 4711", fill=255)  # the left margin, also outside
    burned_px = np.asarray(text) > 0
    burned_px[y0:y1 + 1, x0:x1 + 1] = False  # text only outside the region
    frame[burned_px] = 255
    return frame


def _region_item(truth: UltrasoundTruth) -> Dataset:
    x0, y0, x1, y1 = truth.region_px
    item = Dataset()
    item.RegionSpatialFormat = 1  # 2-D tissue
    item.RegionDataType = 1  # tissue
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    item.ReferencePixelX0, item.ReferencePixelY0 = 0, 0
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3  # cm
    item.ReferencePixelPhysicalValueX = item.ReferencePixelPhysicalValueY = 0.0
    item.PhysicalDeltaX = item.PhysicalDeltaY = truth.pixel_mm / 10.0
    return item


def ultrasound_dataset(frames: list[np.ndarray], truth: UltrasoundTruth, *,
                       patient_id: str = "US-SYN-1", patient_name: str = BURNED_NAME,
                       patient_sex: str = "F",
                       study_date: dt.date = dt.date(2024, 3, 5),
                       study_uid: str | None = None, series_uid: str | None = None,
                       instance_number: int = 1, multiframe: bool | None = None,
                       transfer_syntax: str = ExplicitVRLittleEndian,
                       regions: bool = True) -> Dataset:
    """A DICOM US object holding ``frames`` (8-bit grey), Burned In Annotation YES.

    ``multiframe`` (default: more than one frame) writes US Multi-frame Image Storage;
    ``transfer_syntax`` may be a compressed one pydicom can encode (RLE Lossless, JPEG 2000
    Lossless). ``regions=False`` leaves out the Sequence of Ultrasound Regions.
    """
    multi = len(frames) > 1 if multiframe is None else multiframe
    sop_class = US_MULTIFRAME if multi else US_IMAGE
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Modality = "US"
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = patient_sex
    ds.StudyDate = ds.ContentDate = study_date.strftime("%Y%m%d")
    ds.StudyTime = "093000"
    ds.AccessionNumber = "USACC1"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.Manufacturer = "HepaTrack synthetic"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.BurnedInAnnotation = "YES"
    ds.Rows, ds.Columns = truth.rows, truth.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if multi:
        ds.NumberOfFrames = len(frames)
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        ds.FrameTime = "40"
    if regions:
        ds.SequenceOfUltrasoundRegions = Sequence([_region_item(truth)])
    arr = np.stack(frames) if multi else frames[0]
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    if transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax, arr, generate_instance_uid=False)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


__all__ = ["BURNED_NAME", "UltrasoundTruth", "default_truth", "render_frame",
           "ultrasound_dataset"]
