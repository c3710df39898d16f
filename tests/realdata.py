"""Real scans shipped in ``tests/data`` (see ``tests/data/README.md`` for where each comes from).

The CT volumes and TotalSegmentator label maps are real, anonymised by their publishers.
``example_ct_sm`` exists only as NIfTI; :func:`nifti_ct_as_dicom` writes it as a plain CT
Image Storage series (one slice per file, geometry from the NIfTI affine) so it can travel
the same path as any DICOM upload. Nothing here reads ``../shared``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

DATA = Path(__file__).parent / "data"
TOTALSEG = DATA / "totalsegmentator-example"
#: the real Siemens JPEG 2000 series with emptied Study/Series/SOP UIDs and Patient ID
CT_DICOM = TOTALSEG / "example_ct_dicom"
CT_DICOM_LABELS = TOTALSEG / "example_seg_dicom.nii.gz"
CT_SM = TOTALSEG / "example_ct_sm.nii.gz"
CT_SM_LABELS = TOTALSEG / "example_seg.nii.gz"
MR_SM = TOTALSEG / "example_mr_sm.nii.gz"
MR_SM_LABELS = TOTALSEG / "example_seg_mr.nii.gz"
#: a real head CT (gantry tilt resolved onto a regular oblique grid) and a real chest-only
#: CT (a CT angiogram above the liver dome, 18 cm field of view): no abdomen in either
HEAD_CT = DATA / "dcm_qa_ct-head" / "head_ct.nii.gz"
CHEST_CT = DATA / "totalsegmentator-chest" / "chest_ct.nii.gz"
#: a real thigh CT cropped 5 cm around a tumour
THIGH_CT = DATA / "ibsi-validation-sts019" / "CT_image.nii.gz"

#: TotalSegmentator v2 ``total`` class ids of the structures HepaTrack uses
TOTAL_V2 = {1: "spleen", 5: "liver", 52: "aorta", 63: "inferior_vena_cava",
            64: "portal_vein_and_splenic_vein"}
#: TotalSegmentator ``total_mr`` class ids of the same structures
TOTAL_MR = {1: "spleen", 5: "liver", 23: "aorta", 24: "inferior_vena_cava",
            25: "portal_vein_and_splenic_vein"}

#: reference volumes (mL) from the label maps, as published beside the data
REFERENCE_ML = {
    "example_ct_sm": {"liver": 1043.1, "spleen": 255.2},
    "example_ct_dicom": {"liver": 699.4, "spleen": 249.2},
    # 18,480 and 1,941 voxels of 3 x 3 x 3 mm
    "example_mr_sm": {"liver": 498.96, "spleen": 52.407},
}

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ct_dicom_files() -> list[Path]:
    """The 20 slices of the real Siemens CT series, sorted by file name."""
    files = sorted(CT_DICOM.iterdir())
    assert len(files) == 20, files
    return files


def label_volume_ml(path: Path, label: int) -> float:
    """Volume (mL) of one label of a NIfTI label map: voxel count x voxel volume."""
    img = nib.load(str(path))
    n = int(np.count_nonzero(np.asanyarray(img.dataobj) == label))
    return n * float(abs(np.linalg.det(img.affine[:3, :3]))) / 1000.0


def _uid(*parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:15], "big"))


def nifti_ct_as_dicom(path: Path = CT_SM, *, patient_id: str = "REAL-CT-SM",
                      study_date: str = "20200101") -> list[tuple[str, bytes]]:
    """A NIfTI CT written as CT Image Storage files, ``[(name, bytes)]``, one per slice.

    Position and orientation come from the NIfTI affine (RAS, flipped to DICOM's LPS), so a
    mask placed through its own affine lands on the same anatomy. Values are stored as
    int16 HU with RescaleSlope 1, RescaleIntercept 0.
    """
    return nifti_as_dicom(path, patient_id=patient_id, study_date=study_date)


def nifti_as_dicom(path: Path = CT_SM, *, modality: str = "CT", patient_id: str = "REAL-CT-SM",
                   study_date: str = "20200101") -> list[tuple[str, bytes]]:
    """A NIfTI volume written as CT or MR Image Storage files, one per slice (see
    :func:`nifti_ct_as_dicom`); MR values are stored as they are, without a rescale."""
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj).astype(np.float64)
    lps = _RAS_TO_LPS @ img.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    row_cos, col_cos = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    study, series, frame = (_uid(path.name, what) for what in ("study", "series", "for"))
    out = []
    for k in range(data.shape[2]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = _uid(path.name, "sop", k)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.PatientSex = patient_id, "REAL^CT", "O"
        ds.PatientBirthDate = "19600101"
        ds.StudyDate = ds.SeriesDate = study_date
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 1, k + 1
        ds.SeriesDescription = "abdomen"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [float(v) for v in (lps @ [0, 0, k, 1])[:3]]
        ds.ImageOrientationPatient = [float(v) for v in (*row_cos, *col_cos)]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        plane = np.rint(data[:, :, k].T).astype(np.int16)  # rows along j, columns along i
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        if modality == "CT":
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "HU"
        ds.BurnedInAnnotation = "NO"
        ds.PixelData = plane.tobytes()
        buf = DicomBytesIO()
        buf.write(b"\0" * 128 + b"DICM")
        buf.is_little_endian, buf.is_implicit_VR = True, False
        write_file_meta_info(buf, ds.file_meta, enforce_standard=True)
        write_dataset(buf, ds)
        out.append((f"{path.name.split('.')[0]}/slice{k:03d}.dcm", buf.getvalue()))
    return out
