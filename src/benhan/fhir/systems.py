"""Identifier and code systems: every URI benhan uses, defined once, with the identifier checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

# ---------------------------------------------------------------- identifier systems
# Our own stable namespace (DESIGN.md: defined once, in one module). The VN Core IGs use other
# bases (http://fhir.ehealth.gov.vn/core/sid/…, http://fhir.hl7.org.vn/core/sid/…) and neither is
# mandated (specs/vietnam.md §2.2); the same value can be re-emitted under theirs at the edge.
SID: Final = "https://benhan.vn/sid"
CCCD: Final = f"{SID}/cccd"  # 12-digit personal identification number (specs §3.1)
CMND: Final = f"{SID}/cmnd"  # legacy 9-digit identity card number (specs §3.1)
BHYT: Final = f"{SID}/bhyt"  # health-insurance card: 15-char legacy code or 10-digit BHXH (§3.2)
MA_CSKCB: Final = f"{SID}/ma-cskcb"  # 5-digit facility code, QĐ 384/QĐ-BYT (specs §3.3)
CCHN: Final = f"{SID}/cchn"  # practitioner licence (chứng chỉ hành nghề)
MA_BN_BASE: Final = f"{SID}/ma-bn"  # facility patient code: one namespace per facility (§3.4)
COMMUNE_CODE_EXT: Final = "https://benhan.vn/StructureDefinition/commune-code"  # QĐ 19/2025


def ma_bn(facility_code: str) -> str:
    """The system of one facility's patient codes: MA_BN is unique only inside its facility."""
    return f"{MA_BN_BASE}/{facility_code}"


# meta.source of what a facility stored (store/repository.py stamps it on write): a record keeps
# naming where it came from at the hub and in a linked patient's $everything.
FACILITY_SOURCE: Final = "urn:benhan:facility:"


def facility_source(facility_code: str) -> str:
    """The meta.source of a resource written by one facility (its MA_CSKCB)."""
    return f"{FACILITY_SOURCE}{facility_code}"


def source_facility(resource: Mapping[str, Any]) -> str | None:
    """The MA_CSKCB of the facility a resource came from; None when meta.source is absent or
    another system's (a vendor HIS names itself in its own way)."""
    meta = resource.get("meta")
    source = meta.get("source") if isinstance(meta, dict) else None
    if not isinstance(source, str) or not source.startswith(FACILITY_SOURCE):
        return None
    code = source.removeprefix(FACILITY_SOURCE)
    return code if _CSKCB_RE.fullmatch(code) else None


# ---------------------------------------------------------------- code systems
ICD10_VN: Final = "https://benhan.vn/CodeSystem/icd10-vn"  # MoH edition, QĐ 4469/QĐ-BYT (§2.3)
ICD9CM_VN: Final = "https://benhan.vn/CodeSystem/icd9cm-vn"  # QĐ 4440/2020 → QĐ 387/2026
DRUGS: Final = "https://benhan.vn/CodeSystem/thuoc"  # benhan's curated drug catalogue
SERVICES: Final = "https://benhan.vn/CodeSystem/dich-vu"  # MA_DICH_VU, TT 23/2024/TT-BYT
ROUTES_VN: Final = "https://benhan.vn/CodeSystem/duong-dung"  # XML 130 DUONG_DUNG codes
LAB_VN: Final = "https://benhan.vn/CodeSystem/xet-nghiem"  # 7-digit indicators, QĐ 1227/QĐ-BYT
BHYT_GROUP: Final = "https://benhan.vn/CodeSystem/bhyt-doi-tuong"  # beneficiary group (§3.2)
ADMIN_UNIT: Final = "https://benhan.vn/CodeSystem/don-vi-hanh-chinh"  # QĐ 19/2025/QĐ-TTg codes

# Official HL7 / external systems (http://hl7.org/fhir/R4/terminologies-systems.html).
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
SNOMED: Final = "http://snomed.info/sct"
ICD10_WHO: Final = "http://hl7.org/fhir/sid/icd-10"
ATC: Final = "http://www.whocc.no/atc"
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier type
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER_STATUS: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
URN_IETF_BCP47: Final = "urn:ietf:bcp:47"

# ---------------------------------------------------------------- province codes
# Circular 07/2016/TT-BCA: the 3-digit code of the province where a birth was registered (CCCD
# digits 1–3). It is the 2004 administrative list (QĐ 124/2004/QĐ-TTg) with a leading 0, the
# same numbering as the 2-digit codes of BHYT cards and MA_CSKCB. The 2025 mergers did not
# renumber it: 024/027 keep meaning "old Bắc Giang / old Bắc Ninh" (specs §3.1).
# Citizens whose birth was registered abroad carry a country code from the Ministry of Public
# Security's list instead; the spec does not tabulate it, so such numbers fail cccd.province and
# a caller must accept them by hand (specs §3.6 q.4).
PROVINCES_2004: Final[dict[str, str]] = {
    "01": "Hà Nội", "02": "Hà Giang", "04": "Cao Bằng", "06": "Bắc Kạn", "08": "Tuyên Quang",
    "10": "Lào Cai", "11": "Điện Biên", "12": "Lai Châu", "14": "Sơn La", "15": "Yên Bái",
    "17": "Hòa Bình", "19": "Thái Nguyên", "20": "Lạng Sơn", "22": "Quảng Ninh",
    "24": "Bắc Giang", "25": "Phú Thọ", "26": "Vĩnh Phúc", "27": "Bắc Ninh", "30": "Hải Dương",
    "31": "Hải Phòng", "33": "Hưng Yên", "34": "Thái Bình", "35": "Hà Nam", "36": "Nam Định",
    "37": "Ninh Bình", "38": "Thanh Hóa", "40": "Nghệ An", "42": "Hà Tĩnh", "44": "Quảng Bình",
    "45": "Quảng Trị", "46": "Thừa Thiên Huế", "48": "Đà Nẵng", "49": "Quảng Nam",
    "51": "Quảng Ngãi", "52": "Bình Định", "54": "Phú Yên", "56": "Khánh Hòa",
    "58": "Ninh Thuận", "60": "Bình Thuận", "62": "Kon Tum", "64": "Gia Lai", "66": "Đắk Lắk",
    "67": "Đắk Nông", "68": "Lâm Đồng", "70": "Bình Phước", "72": "Tây Ninh", "74": "Bình Dương",
    "75": "Đồng Nai", "77": "Bà Rịa - Vũng Tàu", "79": "Hồ Chí Minh", "80": "Long An",
    "82": "Tiền Giang", "83": "Bến Tre", "84": "Trà Vinh", "86": "Vĩnh Long", "87": "Đồng Tháp",
    "89": "An Giang", "91": "Kiên Giang", "92": "Cần Thơ", "93": "Hậu Giang", "94": "Sóc Trăng",
    "95": "Bạc Liêu", "96": "Cà Mau",
}  # fmt: skip
CCCD_PROVINCES: Final = frozenset("0" + code for code in PROVINCES_2004)
# QĐ 384/QĐ-BYT: 97 = Ministry of Defence, 98 = Ministry of Public Security facilities.
MA_CSKCB_PROVINCES: Final = frozenset(PROVINCES_2004) | {"97", "98"}

# QĐ 1351/QĐ-BHXH: benefit level (card digit 3) of each beneficiary group, as tabulated in
# specs/vietnam.md §3.2 (1 = 100 %, 2 = 100 % with caps, 3 = 95 %, 4 = 80 %, 5 = 100 % wider).
BHYT_BENEFIT: Final[dict[str, int]] = {
    **dict.fromkeys(("CC", "TE"), 1),
    **dict.fromkeys(("CK", "CB", "KC", "HN", "DT", "DK", "XD", "BT", "TS"), 2),
    **dict.fromkeys(("HT", "TC", "CN"), 3),
    **dict.fromkeys(
        (
            "DN",
            "HX",
            "CH",
            "NN",
            "TK",
            "HC",
            "XK",
            "TB",
            "NO",
            "CT",
            "XB",
            "TN",
            "CS",
            "XN",
            "MS",
            "HD",
            "TQ",
            "TA",
            "TY",
            "HG",
            "LS",
            "PV",
            "HS",
            "SV",
            "GB",
            "GD",
        ),
        4,
    ),
    **dict.fromkeys(("QN", "CA", "CY"), 5),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: `rule` is a stable name (e.g. "cccd.century") tests and callers key on."""

    rule: str
    text: str  # Vietnamese first, English after " / "

    def __str__(self) -> str:
        return f"{self.rule}: {self.text}"


_CCCD_RE = re.compile(r"\d{12}")
_CMND_RE = re.compile(r"\d{9}|\d{12}")
_BHYT_LEGACY_RE = re.compile(r"[A-Z]{2}[1-5]\d{2}\d{10}")
_BHXH_RE = re.compile(r"\d{10}")
_CSKCB_RE = re.compile(r"\d{5}")


def cccd_century_digit(birth_year: int, sex: str) -> str:
    """Digit 4 of a CCCD: century (20th → 0/1, 21st → 2/3, …) plus sex (male even, female odd)."""
    century = birth_year // 100 - 19  # Decree 137/2015 Art 13: 1900–1999 is "the 20th century"
    return str(2 * century + (1 if sex == "female" else 0))


def check_cccd(
    value: str, *, birth_year: int | None = None, sex: str | None = None
) -> list[Problem]:
    """Problems with a 12-digit personal ID; birth_year and sex, when known, are cross-checked.

    Layout: Decree 137/2015 Art 13 (kept by Law 26/2023/QH15). There is no check digit: the
    last six digits are a random sequence, so none is verified here (specs §3.1).
    """
    if not _CCCD_RE.fullmatch(value):
        return [Problem("cccd.format", "CCCD phải gồm đúng 12 chữ số / must be exactly 12 digits")]
    problems = []
    if value[:3] not in CCCD_PROVINCES:  # Circular 07/2016/TT-BCA province list
        problems.append(Problem("cccd.province", f"mã tỉnh {value[:3]} không có / unknown code"))
    digit = int(value[3])
    if digit > 3:  # 22nd-century births (4–9) cannot exist yet
        problems.append(Problem("cccd.century", f"chữ số thế kỷ {digit} / impossible century"))
    if birth_year is not None and sex in ("male", "female"):
        if value[3] != cccd_century_digit(birth_year, sex):
            problems.append(Problem("cccd.century-sex", "chữ số 4 không khớp / digit 4 mismatch"))
    elif birth_year is not None and digit // 2 != birth_year // 100 - 19:
        problems.append(Problem("cccd.century-sex", "thế kỷ không khớp / century mismatch"))
    elif sex in ("male", "female") and digit % 2 != (sex == "female"):
        problems.append(Problem("cccd.century-sex", "giới không khớp / sex mismatch"))
    if birth_year is not None and value[4:6] != f"{birth_year % 100:02d}":
        problems.append(Problem("cccd.birth-year", "năm sinh không khớp / birth year mismatch"))
    return problems


def check_cmnd(value: str) -> list[Problem]:
    """Problems with a legacy identity-card number: 9 digits (a 12-digit CMND existed briefly).

    The issuing-province prefix is not checked: its list differs from TT 07/2016's and the
    spec does not give it (specs §3.1).
    """
    if not _CMND_RE.fullmatch(value):
        return [Problem("cmnd.format", "CMND phải gồm 9 (hoặc 12) chữ số / must be 9 or 12 digits")]
    return []


def check_bhyt(value: str) -> list[Problem]:
    """Problems with a health-insurance number: legacy 15-char code or 10-digit BHXH number.

    Legacy layout QĐ 1351/QĐ-BHXH (group, benefit, province, BHXH number); cards on the QĐ 1666
    template print only the 10-digit number, which has no documented check digit (specs §3.2).
    """
    if _BHXH_RE.fullmatch(value):
        return []
    if not _BHYT_LEGACY_RE.fullmatch(value):
        text = "phải là mã 15 ký tự hoặc số BHXH 10 chữ số / must be 15-char code or 10 digits"
        return [Problem("bhyt.format", text)]
    problems = []
    group, benefit, province = value[:2], int(value[2]), value[3:5]
    if group not in BHYT_BENEFIT:
        problems.append(Problem("bhyt.group", f"mã đối tượng {group} không có / unknown group"))
    elif BHYT_BENEFIT[group] != benefit:
        text = f"{group} hưởng mức {BHYT_BENEFIT[group]}, không phải {benefit} / benefit mismatch"
        problems.append(Problem("bhyt.benefit", text))
    if province not in PROVINCES_2004:  # BHXH uses the administrative numbering
        problems.append(Problem("bhyt.province", f"mã tỉnh {province} không có / unknown code"))
    return problems


def check_ma_cskcb(value: str) -> list[Problem]:
    """Problems with a facility code: QĐ 384/QĐ-BYT, 2-digit province + 3-digit sequence ≥ 001."""
    if not _CSKCB_RE.fullmatch(value):
        return [Problem("ma-cskcb.format", "phải gồm đúng 5 chữ số / must be exactly 5 digits")]
    problems = []
    if value[:2] not in MA_CSKCB_PROVINCES:
        problems.append(Problem("ma-cskcb.province", f"mã tỉnh {value[:2]} / unknown province"))
    if value[2:] == "000":  # the sequence starts at 001
        problems.append(Problem("ma-cskcb.sequence", "số thứ tự bắt đầu từ 001 / starts at 001"))
    return problems


# Facility registry (synth/facilities.py now; the DoH rollout registry later).
FACILITY_KIND: Final = "https://benhan.vn/CodeSystem/facility-kind"
BEDS_EXT: Final = "https://benhan.vn/StructureDefinition/facility-beds"
OWNERSHIP_EXT: Final = "https://benhan.vn/StructureDefinition/facility-ownership"
LEVEL_EXT: Final = "https://benhan.vn/StructureDefinition/facility-level"
ON_EMR_EXT: Final = "https://benhan.vn/StructureDefinition/facility-on-emr"
ORG_TYPE: Final = "http://terminology.hl7.org/CodeSystem/organization-type"
ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"

# HL7 terminology used by clinical resources.
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
DISCHARGE_DISPOSITION: Final = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
ADMIT_SOURCE: Final = "http://terminology.hl7.org/CodeSystem/admit-source"
OBS_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DIAG_SECTION: Final = "http://terminology.hl7.org/CodeSystem/v2-0074"

# Access and audit (access/, store/audit.py).
ACCOUNT: Final = f"{SID}/tai-khoan"  # benhan account ids (AuditEvent.agent.who.identifier)
CLIENT: Final = f"{SID}/ung-dung"  # OAuth client ids
ROLE: Final = "https://benhan.vn/CodeSystem/vai-tro"  # access/roles.py codes
BREAK_GLASS_REASON: Final = "https://benhan.vn/CodeSystem/ly-do-pha-kinh"
AUDIT_EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION: Final = "http://hl7.org/fhir/restful-interaction"
DICOM_DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SECURITY_SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
V3_ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"  # purposeOfUse
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
