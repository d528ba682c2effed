"""Roles and what each may do, as data: the SMART scopes a role grants and how far it reaches.

A token or a page session never gets more than its role grants (Scopes.within). The reach says
whose rows the role sees (store/policy.py): its facility's, the province's (identified, or
de-identified), the claims', or one patient's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import Enum

from benhan.access.scopes import Scopes

# Resources that describe the health system, not a patient: readable by every signed-in role.
DIRECTORY = frozenset(
    {
        "Organization", "Location", "Practitioner", "PractitionerRole", "HealthcareService",
        "Endpoint", "Medication", "Substance", "Device", "Schedule", "Slot", "ValueSet",
        "CodeSystem", "ConceptMap", "NamingSystem", "Questionnaire", "ActivityDefinition",
        "PlanDefinition", "SearchParameter", "StructureDefinition", "OperationDefinition",
        "CapabilityStatement", "Library", "Measure", "ChargeItemDefinition", "InsurancePlan",
    }
)  # fmt: skip
# The record of care, read by clinicians.
CLINICAL = frozenset(
    {
        "Patient", "Person", "RelatedPerson", "Encounter", "EpisodeOfCare", "Condition",
        "Observation", "DiagnosticReport", "ServiceRequest", "Specimen", "Procedure",
        "MedicationRequest", "MedicationDispense", "MedicationAdministration",
        "MedicationStatement", "AllergyIntolerance", "Immunization", "ImmunizationRecommendation",
        "CarePlan", "CareTeam", "ClinicalImpression", "Composition", "DocumentReference",
        "ImagingStudy", "Media", "FamilyMemberHistory", "Flag", "Goal", "Appointment",
        "AppointmentResponse", "Coverage", "Consent", "Provenance", "QuestionnaireResponse",
        "DetectedIssue", "RiskAssessment", "NutritionOrder", "DeviceRequest", "DeviceUseStatement",
        "Communication", "CommunicationRequest", "List", "Task", "Bundle", "Basic",
    }
)  # fmt: skip
CLAIMS = frozenset({"Claim", "ClaimResponse", "ExplanationOfBenefit", "Coverage"})
# What supports a claim: the encounter and what was done in it.
CLAIM_SUPPORT = frozenset(
    {
        "Patient", "Encounter", "Condition", "Procedure", "Observation", "DiagnosticReport",
        "ServiceRequest", "MedicationRequest", "MedicationDispense", "MedicationAdministration",
        "Composition", "DocumentReference", "ImagingStudy", "Specimen",
    }
)  # fmt: skip


class Reach(Enum):
    FACILITY = (
        "facility"  # own facility's rows (+ treatment relationship, break-glass if clinician)
    )
    PROVINCE_DEIDENTIFIED = "province-deidentified"  # every row, without names or identifiers
    PROVINCE = "province"  # every row, identified: the scopes keep it to the types it needs
    CLAIMS = "claims"  # claims and the encounters and results that support them
    OWN_RECORD = "own-record"  # the patient's own compartment
    EVERYTHING = "everything"  # trusted local jobs (import, synth, CLI)


@dataclass(frozen=True)
class Role:
    code: str
    vi: str
    en: str
    scopes: Scopes
    reach: Reach
    clinician: bool = False  # may see a treated patient's records from other facilities
    break_glass: bool = False  # may open a patient's record in an emergency, with a reason
    machine: bool = False  # a client application, not a person


def _scopes(context: str, spec: Mapping[str, AbstractSet[str]]) -> Scopes:
    """{"rs": {...types}, "cruds": {...}} → Scopes."""
    words = [f"{context}/{t}.{acts}" for acts, types in spec.items() for t in sorted(types)]
    return Scopes.parse(words)


def _role(
    code: str, vi: str, en: str, reach: Reach, spec: Mapping[str, AbstractSet[str]], **kw: bool
) -> Role:
    context = "patient" if reach is Reach.OWN_RECORD else "system" if kw.get("machine") else "user"
    return Role(code, vi, en, _scopes(context, spec), reach, **kw)


_READ_DIR = {"rs": set(DIRECTORY)}

ROLES: dict[str, Role] = {
    r.code: r
    for r in (
        _role(
            "registrar",
            "Tiếp đón",
            "Registrar",
            Reach.FACILITY,
            {
                **_READ_DIR,
                "cruds": {
                    "Patient",
                    "Encounter",
                    "Coverage",
                    "Appointment",
                    "Consent",
                    "RelatedPerson",
                    "EpisodeOfCare",
                },
            },
        ),
        # The self-service kiosk's device account: finds a person by the card they hold, saves
        # what the card says and issues a number; it has no desk, so it lists nobody.
        _role(
            "kiosk",
            "Ki-ốt tự đăng ký",
            "Self-service kiosk",
            Reach.FACILITY,
            {**_READ_DIR, "crus": {"Patient", "Encounter"}},
        ),
        _role(
            "nurse",
            "Điều dưỡng",
            "Nurse",
            Reach.FACILITY,
            {
                **_READ_DIR,
                "rs": set(CLINICAL) | set(DIRECTORY),
                "cruds": {
                    "Observation",
                    "MedicationAdministration",
                    "Procedure",
                    "CarePlan",
                    "Flag",
                    "AllergyIntolerance",
                    "Immunization",
                    "Specimen",
                    "Task",
                    "Communication",
                    "Composition",
                    "DocumentReference",
                    "Encounter",
                },
            },
            clinician=True,
            break_glass=True,
        ),
        _role(
            "doctor",
            "Bác sĩ",
            "Doctor",
            Reach.FACILITY,
            {
                # Coverage read: the BHYT number printed on the prescription and the chart.
                "rs": set(DIRECTORY) | {"Coverage"},
                "cruds": set(CLINICAL) - {"Consent", "Coverage"},
            },
            clinician=True,
            break_glass=True,
        ),
        _role(
            "lab-technician",
            "Kỹ thuật viên xét nghiệm",
            "Lab technician",
            Reach.FACILITY,
            {
                **_READ_DIR,
                "rs": {"Patient", "Encounter", "ServiceRequest", "Condition"} | set(DIRECTORY),
                "u": {"ServiceRequest"},  # to mark an order completed once its result is in
                "cruds": {
                    "Specimen",
                    "Observation",
                    "DiagnosticReport",
                    "ImagingStudy",
                    "Media",
                    "DocumentReference",
                },
                # Signing a lab or imaging report (which kinds: signing/who_signs.py): the
                # document is a Composition and its Bundle, recorded with a Provenance.
                "crus": {"Composition", "Bundle"},
                "c": {"Provenance"},
            },
            clinician=True,
        ),
        _role(
            "pharmacist",
            "Dược sĩ",
            "Pharmacist",
            Reach.FACILITY,
            {
                "rs": {
                    "Patient",
                    "Encounter",
                    "MedicationRequest",
                    "MedicationAdministration",
                    "MedicationStatement",
                    "AllergyIntolerance",
                    "Condition",
                    "Observation",
                }
                | set(DIRECTORY),
                "cruds": {"MedicationDispense", "Medication"},
            },
            clinician=True,
        ),
        _role(
            "facility-admin",
            "Quản trị cơ sở",
            "Facility administrator",
            Reach.FACILITY,
            {
                "rs": set(DIRECTORY),
                "cruds": {
                    "Organization",
                    "Location",
                    "Practitioner",
                    "PractitionerRole",
                    "HealthcareService",
                    "Schedule",
                    "Slot",
                    "Endpoint",
                    "Device",
                    "Medication",
                },
            },
        ),
        _role(
            "privacy-officer",
            "Cán bộ bảo vệ dữ liệu",
            "Privacy officer",
            Reach.FACILITY,
            {
                "rs": {"AuditEvent", "Consent", "Patient", "Provenance"} | set(DIRECTORY),
            },
        ),
        _role(
            "doh-analyst",
            "Chuyên viên Sở Y tế",
            "DoH analyst",
            Reach.PROVINCE_DEIDENTIFIED,
            {
                "rs": (set(CLINICAL) - {"Consent", "Provenance", "RelatedPerson", "Person"})
                | set(DIRECTORY)
                | set(CLAIMS),
            },
        ),
        # Resolves the provincial index's possible matches: must see both records of a pair,
        # whatever facility wrote them, and nothing of the care itself.
        _role(
            "mpi-steward",
            "Cán bộ quản lý định danh người bệnh",
            "Patient identity steward",
            Reach.PROVINCE,
            {"rs": {"Patient", "Person"} | set(DIRECTORY)},
        ),
        _role(
            "insurance-assessor",
            "Giám định viên BHYT",
            "Insurance assessor",
            Reach.CLAIMS,
            {
                "rs": set(CLAIMS) | set(CLAIM_SUPPORT) | set(DIRECTORY),
                "cruds": {"ClaimResponse", "ExplanationOfBenefit"},
            },
        ),
        _role(
            "system-integrator",
            "Hệ thống kết nối",
            "System integrator",
            Reach.FACILITY,
            {
                "cruds": {"*"},
            },
            machine=True,
        ),
        _role(
            "patient",
            "Người bệnh",
            "Patient",
            Reach.OWN_RECORD,
            {
                "rs": (set(CLINICAL) - {"Provenance", "Person"}) | set(DIRECTORY) | set(CLAIMS),
            },
        ),
    )
}
# Someone not (yet) signed in, e.g. a failed login in the audit trail: sees nothing.
ANONYMOUS = Role("anonymous", "Chưa đăng nhập", "Not signed in", Scopes(()), Reach.OWN_RECORD)
# Trusted local jobs (import, synthetic data, the CLI): not a role anyone can be given.
JOB = Role(
    "job",
    "Tác vụ hệ thống",
    "System job",
    Scopes.parse(["system/*.cruds", "system/AuditEvent.rs"]),
    Reach.EVERYTHING,
    machine=True,
)


def role(code: str) -> Role:
    try:
        return ROLES[code]
    except KeyError:
        known = ", ".join(ROLES)
        raise ValueError(
            f"vai trò không tồn tại / unknown role {code!r} (known: {known})"
        ) from None
