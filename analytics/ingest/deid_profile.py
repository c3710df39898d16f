"""The de-identification action table: DICOM PS3.15 Table E.1-1 (2024b edition), as data.

Each rule names an attribute, the action the Basic Application Level Confidentiality
Profile gives it (``basic``, as printed in the table) and the action HepaTrack applies
(``applied``) with the options it claims:

- Retain Longitudinal Temporal Information with Modified Dates (113107): every date is
  moved by the patient's date shift (whole days), times are kept.
- Retain Patient Characteristics (113108): sex, age, size, weight, ethnic group, smoking
  and pregnancy status are kept. The free-text attributes the option would "clean"
  (allergies, medical alerts, occupation, ...) are removed instead: stricter, still conformant.
- Clean Descriptors (113105): the few descriptors the pipeline needs to interpret a series
  or a mask (series/study description, protocol name, ROI and segment labels, contrast
  agent) are kept only when every word is in a controlled clinical vocabulary
  (see ``analytics.ingest.deid``); otherwise they are removed or given a dummy value.

Applied action codes: ``X`` remove, ``Z`` empty, ``D`` dummy value, ``U`` keyed-HMAC UID,
``K`` keep, ``C`` clean (dates shifted; text vocabulary-checked), ``P`` the patient
pseudonym (a ``D`` dummy that stays the same for one patient), ``S`` keep the sequence and
de-identify its items (the table's ``U*``: references survive with remapped UIDs).

The table is a representative subset of E.1-1: every attribute a CT, MR, SEG or RTSTRUCT
instance (and their general modules) may carry, plus the patient, visit, request and
procedure-step attributes that commonly leak into them. Attributes not listed are handled
by the safe default rule in ``analytics.ingest.deid`` (private tags, overlays, curves and
public tags the data dictionary does not know removed; person names, unknown free text and
ages removed; UIDs replaced; dates shifted; only coded, numeric, binary and an explicit list
of technical strings kept).

Rules are looked up by tag and applied under the VR the data dictionary gives that tag,
whatever VR a file claims (``UN``, or a wrong one such as a name sent as ``CS``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.datadict import tag_for_keyword

#: option codes from PS3.16 CID 7050 that HepaTrack claims in DeidentificationMethodCodeSequence
METHOD_CODES: tuple[tuple[str, str], ...] = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
)

#: (0012,0063) De-identification Method, VM 1-n, each value at most 64 characters (LO)
METHOD_TEXT: tuple[str, ...] = (
    "HepaTrack PS3.15 E.1-1 Basic Profile",
    "Retain Longitudinal Temporal Info Modified Dates",
    "Retain Patient Characteristics",
    "Clean Descriptors (controlled vocabulary)",
)


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1 as HepaTrack applies it."""

    keyword: str
    basic: str  # the Basic Profile column, as printed (X, Z, D, U, X/Z, X/Z/D, Z/D, X/Z/U*)
    applied: str  # one of X Z D U K C P S
    option: str = ""  # the option column that changes the action: RLMD, RPC or CD

    @property
    def tag(self) -> int:
        tag = tag_for_keyword(self.keyword)
        if tag is None:  # pragma: no cover - guarded by the module import below
            raise KeyError(self.keyword)
        return int(tag)


_X, _Z, _D, _U, _K, _C, _P, _S = "X", "Z", "D", "U", "K", "C", "P", "S"

RULES: tuple[Rule, ...] = (
    # ---- patient identification and demographics
    Rule("PatientName", "Z", _P),
    Rule("PatientID", "Z/D", _P),
    Rule("IssuerOfPatientID", "X", _X),
    Rule("PatientBirthDate", "Z", _Z),
    Rule("PatientBirthTime", "X", _X),
    Rule("PatientSex", "Z", _K, "RPC"),
    Rule("PatientAge", "X", _K, "RPC"),
    Rule("PatientSize", "X", _K, "RPC"),
    Rule("PatientWeight", "X", _K, "RPC"),
    Rule("EthnicGroup", "X", _K, "RPC"),
    Rule("SmokingStatus", "X", _K, "RPC"),
    Rule("PregnancyStatus", "X", _K, "RPC"),
    Rule("PatientSexNeutered", "X/Z", _K, "RPC"),
    Rule("Allergies", "X", _X, "RPC"),
    Rule("MedicalAlerts", "X", _X, "RPC"),
    Rule("Occupation", "X", _X, "RPC"),
    Rule("AdditionalPatientHistory", "X", _X, "RPC"),
    Rule("PatientState", "X", _X, "RPC"),
    Rule("SpecialNeeds", "X", _X, "RPC"),
    Rule("PreMedication", "X", _X, "RPC"),
    Rule("OtherPatientIDs", "X", _X),
    Rule("OtherPatientIDsSequence", "X", _X),
    Rule("OtherPatientNames", "X", _X),
    Rule("PatientBirthName", "X", _X),
    Rule("PatientMotherBirthName", "X", _X),
    Rule("PatientAddress", "X", _X),
    Rule("PatientTelephoneNumbers", "X", _X),
    Rule("PatientTelecomInformation", "X", _X),
    Rule("PatientComments", "X", _X),
    Rule("PatientReligiousPreference", "X", _X),
    Rule("PatientInsurancePlanCodeSequence", "X", _X),
    Rule("PatientPrimaryLanguageCodeSequence", "X", _X),
    Rule("InsurancePlanIdentification", "X", _X),
    Rule("MedicalRecordLocator", "X", _X),
    Rule("MilitaryRank", "X", _X),
    Rule("BranchOfService", "X", _X),
    Rule("CountryOfResidence", "X", _X),
    Rule("RegionOfResidence", "X", _X),
    Rule("ResponsiblePerson", "X", _X),
    Rule("ResponsibleOrganization", "X", _X),
    Rule("LastMenstrualDate", "X", _X),
    Rule("ReferencedPatientSequence", "X", _X),
    Rule("ReferencedPatientPhotoSequence", "X", _X),
    Rule("ReferencedPatientAliasSequence", "X", _X),
    # ---- visit and admission
    Rule("AdmissionID", "X", _X),
    Rule("IssuerOfAdmissionID", "X", _X),
    Rule("AdmittingDate", "X", _C, "RLMD"),
    Rule("AdmittingTime", "X", _C, "RLMD"),
    Rule("AdmittingDiagnosesDescription", "X", _X),
    Rule("AdmittingDiagnosesCodeSequence", "X", _X),
    Rule("DischargeDiagnosisDescription", "X", _X),
    Rule("CurrentPatientLocation", "X", _X),
    Rule("PatientInstitutionResidence", "X", _X),
    Rule("ServiceEpisodeID", "X", _X),
    Rule("ServiceEpisodeDescription", "X", _X),
    Rule("IssuerOfServiceEpisodeID", "X", _X),
    Rule("VisitComments", "X", _X),
    # ---- study
    Rule("StudyInstanceUID", "U", _U),
    Rule("StudyDate", "Z", _C, "RLMD"),
    Rule("StudyTime", "Z", _C, "RLMD"),
    Rule("AccessionNumber", "Z", _Z),
    Rule("StudyID", "Z", _Z),
    Rule("StudyDescription", "X", _C, "CD"),
    Rule("StudyComments", "X", _X),
    Rule("StudyIDIssuer", "X", _X),
    Rule("ReferringPhysicianName", "Z", _Z),
    Rule("ReferringPhysicianAddress", "X", _X),
    Rule("ReferringPhysicianTelephoneNumbers", "X", _X),
    Rule("ReferringPhysicianIdentificationSequence", "X", _X),
    Rule("ConsultingPhysicianName", "Z", _Z),
    Rule("PhysiciansOfRecord", "X", _X),
    Rule("PhysiciansOfRecordIdentificationSequence", "X", _X),
    Rule("NameOfPhysiciansReadingStudy", "X", _X),
    Rule("PhysiciansReadingStudyIdentificationSequence", "X", _X),
    Rule("ReasonForStudy", "X", _X),
    Rule("RequestingPhysician", "X", _X),
    Rule("RequestingService", "X", _X),
    Rule("RequestedProcedureDescription", "X/Z", _X),
    Rule("RequestedProcedureID", "X", _X),
    Rule("RequestedProcedureComments", "X", _X),
    Rule("RequestedProcedureLocation", "X", _X),
    Rule("RequestedContrastAgent", "X", _X),
    Rule("RequestAttributesSequence", "X", _X),
    Rule("ReferencedStudySequence", "X/Z", _X),
    Rule("PlacerOrderNumberImagingServiceRequest", "Z", _Z),
    Rule("FillerOrderNumberImagingServiceRequest", "Z", _Z),
    Rule("ImagingServiceRequestComments", "X", _X),
    Rule("ReasonForTheImagingServiceRequest", "X", _X),
    Rule("OrderEnteredBy", "X", _X),
    Rule("OrderEntererLocation", "X", _X),
    Rule("OrderCallbackPhoneNumber", "X", _X),
    Rule("NamesOfIntendedRecipientsOfResults", "X", _X),
    Rule("IntendedRecipientsOfResultsIdentificationSequence", "X", _X),
    # ---- series, equipment, acquisition
    Rule("SeriesInstanceUID", "U", _U),
    Rule("SeriesDate", "X/D", _C, "RLMD"),
    Rule("SeriesTime", "X/D", _C, "RLMD"),
    Rule("SeriesDescription", "X", _C, "CD"),
    Rule("ProtocolName", "X/D", _C, "CD"),
    Rule("AcquisitionDate", "X/Z", _C, "RLMD"),
    Rule("AcquisitionTime", "X/Z", _C, "RLMD"),
    Rule("AcquisitionDateTime", "X/Z/D", _C, "RLMD"),
    Rule("ContentDate", "Z/D", _C, "RLMD"),
    Rule("ContentTime", "Z/D", _C, "RLMD"),
    Rule("InstanceCreationDate", "X/D", _C, "RLMD"),
    Rule("InstanceCreationTime", "X/Z/D", _C, "RLMD"),
    Rule("InstanceCoercionDateTime", "X", _X),
    Rule("FrameAcquisitionDateTime", "D", _C, "RLMD"),
    Rule("FrameReferenceDateTime", "D", _C, "RLMD"),
    Rule("StartAcquisitionDateTime", "X/D", _C, "RLMD"),
    Rule("EndAcquisitionDateTime", "X/D", _C, "RLMD"),
    Rule("ContrastBolusAgent", "Z/D", _C, "CD"),
    Rule("ContrastBolusStartTime", "X", _C, "RLMD"),
    Rule("ContrastBolusStopTime", "X", _C, "RLMD"),
    Rule("AcquisitionComments", "X", _X),
    Rule("AcquisitionProtocolDescription", "X", _X),
    Rule("AcquisitionDeviceProcessingDescription", "X/D", _X),
    Rule("AcquisitionContextSequence", "X/Z", _X),
    Rule("ImageComments", "X", _X),
    Rule("FrameComments", "X", _X),
    Rule("DerivationDescription", "X", _X),
    Rule("IdentifyingComments", "X", _X),
    Rule("ImagePresentationComments", "X", _X),
    Rule("InstitutionName", "X/Z/D", _X),
    Rule("InstitutionAddress", "X", _X),
    Rule("InstitutionCodeSequence", "X/Z/D", _X),
    Rule("InstitutionalDepartmentName", "X", _X),
    Rule("StationName", "X/Z/D", _X),
    Rule("DeviceSerialNumber", "X/Z/D", _X),
    Rule("DeviceUID", "U", _U),
    Rule("DetectorID", "X/D", _X),
    Rule("GantryID", "X", _X),
    Rule("GeneratorID", "X", _X),
    Rule("CassetteID", "X", _X),
    Rule("PlateID", "X", _X),
    Rule("DateOfLastCalibration", "X", _C, "RLMD"),
    Rule("TimeOfLastCalibration", "X", _C, "RLMD"),
    Rule("DateOfSecondaryCapture", "X", _C, "RLMD"),
    Rule("TimeOfSecondaryCapture", "X", _C, "RLMD"),
    Rule("OperatorsName", "X/Z/D", _X),
    Rule("OperatorIdentificationSequence", "X/D", _X),
    Rule("PerformingPhysicianName", "X", _X),
    Rule("PerformingPhysicianIdentificationSequence", "X", _X),
    Rule("ModifyingDeviceID", "X", _X),
    Rule("ModifiedImageDescription", "X", _X),
    Rule("TimezoneOffsetFromUTC", "X", _X),
    Rule("StationAETitle", "X", _X),
    Rule("RetrieveAETitle", "X", _X),
    Rule("IconImageSequence", "X", _X),
    # ---- performed / scheduled procedure steps
    Rule("PerformedProcedureStepID", "X", _X),
    Rule("PerformedProcedureStepDescription", "X", _X),
    Rule("PerformedProcedureStepStartDate", "X", _C, "RLMD"),
    Rule("PerformedProcedureStepStartTime", "X", _C, "RLMD"),
    Rule("PerformedProcedureStepEndDate", "X", _C, "RLMD"),
    Rule("PerformedProcedureStepEndTime", "X", _C, "RLMD"),
    Rule("PerformedLocation", "X", _X),
    Rule("PerformedStationAETitle", "X", _X),
    Rule("PerformedStationName", "X", _X),
    Rule("CommentsOnThePerformedProcedureStep", "X", _X),
    Rule("ReferencedPerformedProcedureStepSequence", "X/Z/D", _X),
    Rule("ScheduledProcedureStepDescription", "X", _X),
    Rule("ScheduledProcedureStepLocation", "X", _X),
    Rule("ScheduledPerformingPhysicianName", "X", _X),
    Rule("ScheduledStationAETitle", "X", _X),
    Rule("ScheduledStationName", "X", _X),
    Rule("ScheduledProcedureStepStartDate", "X", _C, "RLMD"),
    Rule("ScheduledProcedureStepStartTime", "X", _C, "RLMD"),
    Rule("ScheduledProcedureStepEndDate", "X", _C, "RLMD"),
    Rule("ScheduledProcedureStepEndTime", "X", _C, "RLMD"),
    Rule("ActualHumanPerformersSequence", "X", _X),
    Rule("ScheduledHumanPerformersSequence", "X", _X),
    Rule("HumanPerformerName", "X", _X),
    Rule("HumanPerformerOrganization", "X", _X),
    # ---- people and content in general modules
    Rule("PersonName", "D", _X),  # only in SR content items; X per the table's note 13
    Rule("PersonAddress", "X", _X),
    Rule("PersonTelephoneNumbers", "X", _X),
    Rule("PersonIdentificationCodeSequence", "D", _X),
    Rule("ContentCreatorName", "Z/D", _Z),
    Rule("ContentCreatorIdentificationCodeSequence", "X", _X),
    Rule("ContentSequence", "D", _X),  # SR content in an image is type 3: removed (note 13)
    Rule("VerifyingObserverName", "D", _X),
    Rule("VerifyingObserverSequence", "D", _X),
    Rule("VerifyingOrganization", "D", _X),
    Rule("AuthorObserverSequence", "X", _X),
    Rule("ParticipantSequence", "X", _X),
    Rule("CustodialOrganizationSequence", "X", _X),
    Rule("TextComments", "X", _X),
    Rule("TextString", "X", _X),
    Rule("Arbitrary", "X", _X),
    Rule("OverlayDate", "X", _X),
    Rule("OverlayTime", "X", _X),
    Rule("CurveDate", "X", _X),
    Rule("CurveTime", "X", _X),
    Rule("DigitalSignaturesSequence", "X", _X),
    Rule("DataSetTrailingPadding", "X", _X),
    Rule("OriginalAttributesSequence", "X", _X),
    Rule("ModifiedAttributesSequence", "X", _X),
    Rule("ReferencedDigitalSignatureSequence", "X", _X),
    Rule("ReferencedSOPInstanceMACSequence", "X", _X),
    Rule("MAC", "X", _X),
    # ---- RT Structure Set
    Rule("StructureSetLabel", "D", _C, "CD"),
    Rule("StructureSetName", "X", _X),
    Rule("StructureSetDescription", "X", _X),
    Rule("StructureSetDate", "Z", _C, "RLMD"),
    Rule("StructureSetTime", "Z", _C, "RLMD"),
    Rule("ROIName", "Z", _C, "CD"),
    Rule("ROIDescription", "X", _X),
    Rule("ROIGenerationDescription", "X", _X),
    Rule("ROIInterpreter", "Z", _Z),
    Rule("ROIObservationLabel", "X", _X),
    Rule("ROIObservationDescription", "X", _X),
    Rule("ReviewerName", "X/Z", _X),
    # ---- references kept with remapped UIDs
    Rule("ReferencedImageSequence", "X/Z/U*", _S),
    Rule("SourceImageSequence", "X/Z/U*", _S),
    # ---- instance and reference UIDs
    Rule("SOPInstanceUID", "U", _U),
    Rule("MediaStorageSOPInstanceUID", "U", _U),
    Rule("ReferencedSOPInstanceUID", "U", _U),
    Rule("ReferencedSOPInstanceUIDInFile", "U", _U),
    Rule("FrameOfReferenceUID", "U", _U),
    Rule("ReferencedFrameOfReferenceUID", "U", _U),
    Rule("RelatedFrameOfReferenceUID", "U", _U),
    Rule("SynchronizationFrameOfReferenceUID", "U", _U),
    Rule("SourceFrameOfReferenceUID", "U", _U),
    Rule("ConcatenationUID", "U", _U),
    Rule("DimensionOrganizationUID", "U", _U),
    Rule("IrradiationEventUID", "U", _U),
    Rule("InstanceCreatorUID", "U", _U),
    Rule("AcquisitionUID", "U", _U),
    Rule("TrackingUID", "U", _U),
    Rule("FiducialUID", "U", _U),
    Rule("StorageMediaFileSetUID", "U", _U),
    Rule("TransactionUID", "U", _U),
    Rule("UID", "U", _U),
    Rule("FailedSOPInstanceUIDList", "U", _U),
    Rule("PaletteColorLookupTableUID", "U", _U),
    Rule("LargePaletteColorLookupTableUID", "U", _U),
    Rule("TemplateExtensionOrganizationUID", "U", _U),
    Rule("TemplateExtensionCreatorUID", "U", _U),
    Rule("DigitalSignatureUID", "U", _X),  # its sequence is removed; never left dangling
)

RULES_BY_TAG: dict[int, Rule] = {r.tag: r for r in RULES}

#: technical strings of unlisted LO/SH/ST/LT/UC/UT attributes that carry no identity and
#: that readers of CT/MR/SEG/RTSTRUCT need; every other unlisted free text is removed
SAFE_TEXT_KEYWORDS: frozenset[str] = frozenset({
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ConvolutionKernel",
    "FilterType", "RescaleType", "WindowCenterWidthExplanation", "LUTExplanation",
    "LUTLabel", "PositionReferenceIndicator", "SequenceName", "PulseSequenceName",
    "ReceiveCoilName", "TransmitCoilName", "ImagedNucleus", "ContrastBolusRoute",
    "SecondaryCaptureDeviceManufacturer", "SecondaryCaptureDeviceManufacturerModelName",
    "SecondaryCaptureDeviceSoftwareVersions", "CodeValue", "CodingSchemeDesignator",
    "CodingSchemeVersion", "CodeMeaning", "LongCodeValue", "URNCodeValue",
    "CodingSchemeName", "CodingSchemeResponsibleOrganization", "MappingResourceName",
    "SegmentAlgorithmName", "AlgorithmName", "AlgorithmVersion", "DimensionDescriptionLabel",
    "StackID", "ReconstructionMethod",
    "ImplementationVersionName", "DeidentificationMethod", "InterventionDrugName",
})

#: unlisted descriptors cleaned like the E.1-1 rows marked CD (vocabulary-checked)
EXTRA_CLEAN_KEYWORDS: frozenset[str] = frozenset({
    "SegmentLabel", "SegmentDescription", "ContentDescription",
})

#: dummy value when a cleaned descriptor fails the vocabulary and the attribute is type 1
#: in the IODs HepaTrack reads; ``{n}`` is the ROI/segment number when known
CLEAN_DUMMIES: dict[str, str] = {
    "ROIName": "ROI {n}",
    "SegmentLabel": "Segment {n}",
    "StructureSetLabel": "RTSTRUCT",
    "ContrastBolusAgent": "CONTRAST",
}

for _rule in RULES:  # a misspelt keyword must fail at import, not silently keep a tag
    if tag_for_keyword(_rule.keyword) is None:  # pragma: no cover
        raise ImportError(f"deid_profile: unknown DICOM keyword {_rule.keyword!r}")
