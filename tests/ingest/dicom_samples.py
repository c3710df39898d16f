"""Small DICOM studies for the de-identification, commit, pipeline and PACS tests.

Series carry realistic identifying attributes (names, IDs, dates, institution, private
tags, nested sequences) so de-identification has something to remove; pixel data is tiny
(16x16 by default) and known. SEG objects are built with highdicom, RTSTRUCTs by hand.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"


def encode(ds: Dataset, preamble: bytes | None = None) -> bytes:
    """A DICOM Part 10 file; ``preamble`` (128 bytes) replaces the zero preamble."""
    if preamble is not None:
        ds.preamble = preamble
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


@dataclass
class Study:
    """The identifiers of one synthetic patient study."""

    patient_id: str = "MRN-0012345"
    patient_name: str = "Doe^Jane^Q"
    birth_date: str = "19580314"
    sex: str = "F"
    study_date: str = "20200115"
    study_uid: str = field(default_factory=generate_uid)
    accession: str = "ACC998877"


def ct_series(study: Study, n: int = 4, *, rows: int = 16, cols: int = 16,
              series_uid: str | None = None, frame_uid: str | None = None,
              spacing: float = 2.5, description: str = "CT ABDOMEN PORTAL VENOUS 2.5mm",
              seed: int = 0) -> list[Dataset]:
    """An axial CT series with identifying attributes everywhere, including nested ones."""
    series_uid = series_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        ds = Dataset()
        sop = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.SourceApplicationEntityTitle = "SCANNER_AE"
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE, sop
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study.study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientID, ds.PatientName = study.patient_id, study.patient_name
        ds.PatientBirthDate, ds.PatientSex = study.birth_date, study.sex
        ds.PatientAge, ds.PatientWeight, ds.PatientSize = "061Y", "71.5", "1.68"
        ds.OtherPatientIDs = "OLD-445566"
        ds.PatientAddress = "12 Harbour Road, Springfield"
        ds.IssuerOfPatientID = "ST-MARYS"
        ds.StudyDate, ds.SeriesDate = study.study_date, study.study_date
        ds.AcquisitionDate = ds.ContentDate = study.study_date
        ds.StudyTime, ds.SeriesTime, ds.AcquisitionTime = "101500", "102000", "102105"
        ds.AcquisitionDateTime = study.study_date + "102105.250000+0100"
        ds.AccessionNumber, ds.StudyID = study.accession, "ST42"
        ds.ReferringPhysicianName = "House^Gregory"
        ds.InstitutionName, ds.StationName = "St Mary's Hospital", "CT01-ROOM3"
        ds.OperatorsName = "Tech^Tom"
        ds.StudyDescription = "CT ABDOMEN WITH CONTRAST"
        ds.SeriesDescription = description
        ds.ProtocolName = "Liver triphasic Dr Wilson"
        ds.ImageComments = "patient Jane Doe, bed 7"
        ds.Modality, ds.Manufacturer = "CT", "ACME"
        ds.ManufacturerModelName = "Scan 9000"
        ds.DeviceSerialNumber = "SN-77812"
        ds.ContrastBolusAgent = "Omnipaque 350"
        ds.BodyPartExamined = "ABDOMEN"
        ds.ConvolutionKernel = "B30f"
        ds.KVP = "120"
        ds.SliceThickness = f"{spacing:g}"
        ds.SeriesNumber, ds.InstanceNumber = 3, k + 1
        ds.ImagePositionPatient = ["-20.0", "-20.0", f"{100.0 + spacing * k:.3f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["0.8", "0.8"]
        ds.PositionReferenceIndicator = ""
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        ref = Dataset()  # nested: a referenced performed step and a source image
        ref.ReferencedSOPClassUID = CT_IMAGE
        ref.ReferencedSOPInstanceUID = sop
        ds.ReferencedImageSequence = Sequence([ref])
        req = Dataset()
        req.RequestingPhysician = "Wilson^James"
        req.RequestedProcedureID = "RP-5521"
        req.ScheduledProcedureStepStartDate = study.study_date
        req.AccessionNumber = study.accession
        ds.RequestAttributesSequence = Sequence([req])
        code = _code("T-62000", "SRT", "Liver")
        code.add_new(0x00091010, "LO", "private in a code item")
        ds.AnatomicRegionSequence = Sequence([code])
        ds.add_new(0x00090010, "LO", "ACME PRIVATE")
        ds.add_new(0x00091001, "LO", study.patient_name)
        pixels = (rng.integers(0, 200, size=(rows, cols)) + 900 + 10 * k).astype(np.int16)
        ds.PixelData = pixels.tobytes()
        out.append(ds)
    return out


def secondary_capture(study: Study, burned_in: str | None) -> Dataset:
    """A screen-capture image; ``burned_in`` is the Burned In Annotation value or None."""
    ds = ct_series(study, 1)[0]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SC_IMAGE
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    return ds


def seg_for(images: list[Dataset], labels: tuple[str, ...] = ("Liver", "Spleen")) -> Dataset:
    """A binary SEG (highdicom) over ``images`` with one segment per label."""
    import highdicom as hd
    from highdicom.sr import CodedConcept

    srt = CodedConcept("T-D0050", "SRT", "Tissue")
    organs = {"Liver": ("T-62000", "Liver"), "Spleen": ("T-C3000", "Spleen")}
    descriptions = []
    for n, label in enumerate(labels, start=1):
        value, meaning = organs.get(label, ("T-D0050", label))
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=label, segmented_property_category=srt,
            segmented_property_type=CodedConcept(value, "SRT", meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
    ordered = sorted(images, key=lambda d: float(d.ImagePositionPatient[2]))
    rows, cols = int(ordered[0].Rows), int(ordered[0].Columns)
    mask = np.zeros((len(ordered), rows, cols, len(labels)), dtype=bool)
    for n in range(len(labels)):
        mask[:, 2 + 4 * n: 6 + 4 * n, 3:9, n] = True
    seg = hd.seg.Segmentation(
        source_images=ordered, pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=90, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="HepaTrack tests", manufacturer_model_name="builder",
        software_versions="1", device_serial_number="SEG-SN-1", content_creator_name="Reader^Rita")
    return seg


def rtstruct_for(images: list[Dataset], roi_names: tuple[str, ...] = ("Liver",)) -> Dataset:
    """A minimal RT Structure Set with one closed planar contour per ROI on the first slice."""
    first = images[0]
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT, meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    for kw in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
               "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        setattr(ds, kw, getattr(first, kw))
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 91, 1
    ds.StructureSetLabel = "Liver contours"
    ds.StructureSetName = "Contoured by Dr Wilson"
    ds.StructureSetDate, ds.StructureSetTime = first.StudyDate, "120000"
    ds.Manufacturer = "HepaTrack tests"
    contour_images = []
    for im in images:
        ci = Dataset()
        ci.ReferencedSOPClassUID, ci.ReferencedSOPInstanceUID = im.SOPClassUID, im.SOPInstanceUID
        contour_images.append(ci)
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    series_ref.ContourImageSequence = Sequence(contour_images)
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = Sequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame_ref.RTReferencedStudySequence = Sequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame_ref])
    rois, contours, observations = [], [], []
    z = float(first.ImagePositionPatient[2])
    for n, name in enumerate(roi_names, start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = n, first.FrameOfReferenceUID
        roi.ROIName, roi.ROIGenerationAlgorithm = name, "MANUAL"
        rois.append(roi)
        c = Dataset()
        c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", 4
        c.ContourData = [-15.0, -15.0, z, -5.0, -15.0, z, -5.0, -5.0, z, -15.0, -5.0, z]
        img = Dataset()
        img.ReferencedSOPClassUID = first.SOPClassUID
        img.ReferencedSOPInstanceUID = first.SOPInstanceUID
        c.ContourImageSequence = Sequence([img])
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor = n, [255, 0, 0]
        rc.ContourSequence = Sequence([c])
        contours.append(rc)
        ob = Dataset()
        ob.ObservationNumber, ob.ReferencedROINumber = n, n
        ob.RTROIInterpretedType, ob.ROIInterpreter = "ORGAN", "Reader^Rita"
        observations.append(ob)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    return ds


def write_folder(folder: Path, datasets: list[Dataset], prefix: str = "img") -> Path:
    """Write datasets as ``prefix_000.dcm``... and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, ds in enumerate(datasets):
        (folder / f"{prefix}_{n:03d}.dcm").write_bytes(encode(ds))
    return folder
