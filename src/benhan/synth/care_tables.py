"""What synthetic care is made of, as data: visit rates, acute and chronic conditions, case care."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["station", "centre", "hospital"]
Direction = Literal["high", "low", "normal"]
Bands = tuple[float, float, float, float, float]  # ages 0–4, 5–14, 15–39, 40–59, 60+

AGE_LIMITS = (5, 15, 40, 60)  # lower bounds of bands 2–5


def band(age: int) -> int:
    """Index of the age band an age falls in."""
    return sum(age >= limit for limit in AGE_LIMITS)


# Acute episodes per person-year by band. Shaped on the U-curve of outpatient use in VHLSS 2018
# (children and the old use care most); scaled so that with chronic follow-ups the mean is
# ~2 insured visits per person-year (DESIGN.md), which the tests pin between 1 and 4.
ACUTE_RATE: Bands = (2.4, 1.0, 0.5, 0.7, 1.2)
CHRONIC_ATTENDANCE = 0.75  # share of monthly follow-ups attended (missed months are common)
CHRONIC_AT_STATION = 0.7  # NCD management was moved to commune stations (QĐ 2559/QĐ-BYT 2017)

# Exam services (MA_DICH_VU) that type an encounter by department.
EXAM_STATION, EXAM_INTERNAL, EXAM_PAEDIATRIC, EXAM_SURGERY = (
    "02.9016",
    "02.9001",
    "03.9002",
    "10.9003",
)
EXAM_EMERGENCY, EXAM_INFECTIOUS, EXAM_ENT, EXAM_EYE, EXAM_DENTAL, EXAM_DERMA = (
    "01.9015",
    "02.9010",
    "15.9006",
    "14.9005",
    "16.9007",
    "05.9008",
)
ADULT_AGE = 16  # paediatric exams, no blood pressure below this age

LabOrder = tuple[tuple[str, Direction], ...]  # (LOINC of a catalogue lab, expected direction)


@dataclass(frozen=True, slots=True)
class Acute:
    """One kind of acute episode: who gets it, where it is seen, and what the visit holds."""

    icd: str
    weights: Bands  # relative frequency per age band
    exam: str = EXAM_INTERNAL
    fever: float = 0.0  # chance of a temperature ≥ 38 °C
    entry: tuple[float, float, float] = (0.65, 0.25, 0.10)  # first contact: station/centre/hosp.
    refer: float = 0.04  # referred one level up from a station or centre visit
    emergency: float = 0.0  # arrives at the hospital emergency department instead
    admit: float = 0.08  # admitted (class IMP) when seen at a centre or hospital
    los: tuple[int, int] = (3, 6)  # length of stay in days
    died: float = 0.0  # in-hospital case fatality
    labs: LabOrder = ()
    lab_p: float = 0.0  # share of visits at a centre or hospital with these labs
    procedures: tuple[str, ...] = ()  # MA_DICH_VU of procedure services
    proc_p: float = 0.0
    rx: tuple[str, ...] = ()  # ICD-10 codes to look drugs up under (the icd itself when empty)
    respiratory: bool = False  # counts breaths at the visit


_INFECTION: LabOrder = (("6690-2", "high"), ("1988-5", "high"))  # WBC, CRP
_ORAL_KIDS: Bands = (30, 15, 8, 6, 5)

# fmt: off
ACUTE: tuple[Acute, ...] = (
    Acute("J00", _ORAL_KIDS, fever=0.4, entry=(0.8, 0.15, 0.05), refer=0.01, rx=("J00", "R50"),
          respiratory=True),
    Acute("J06.9", (25, 12, 6, 5, 4), fever=0.5, rx=("J06.9",), respiratory=True),
    Acute("J02.9", (8, 8, 5, 3, 1), exam=EXAM_ENT, fever=0.5, respiratory=True),
    Acute("J03.9", (4, 6, 3, 1, 0.5), exam=EXAM_ENT, fever=0.7, respiratory=True),
    Acute("H66.9", (6, 3, 0.5, 0.3, 0.2), exam=EXAM_ENT, fever=0.4),
    Acute("J20.9", (10, 5, 3, 4, 6), fever=0.4, labs=_INFECTION, lab_p=0.2, refer=0.06,
          respiratory=True),
    Acute("J18.9", (4, 1, 0.3, 0.6, 2.5), fever=0.85, entry=(0.3, 0.4, 0.3), refer=0.35,
          emergency=0.15, admit=0.45, los=(4, 9), died=0.02, labs=_INFECTION, lab_p=0.85,
          procedures=("01.9097.9097", "01.9098.9098"), proc_p=0.3, respiratory=True),
    Acute("A09.0", (8, 3, 2, 1.5, 2), fever=0.4, admit=0.1, los=(2, 4),
          procedures=("02.9099.9099",), proc_p=0.1, rx=("A09.0",)),
    Acute("K29.7", (0, 0.5, 4, 5, 4), entry=(0.5, 0.35, 0.15), procedures=("20.9088.9088",),
          proc_p=0.08),
    Acute("K21.9", (0, 0, 1.5, 2, 1.5), entry=(0.4, 0.4, 0.2), rx=("K21",)),
    Acute("M54.5", (0, 0.2, 3, 5, 5), rx=("M54",)),
    Acute("M17.9", (0, 0, 0.3, 2, 5), entry=(0.5, 0.35, 0.15), rx=("M15-M19",)),
    Acute("L30.9", (4, 3, 2.5, 2, 2), exam=EXAM_DERMA),
    Acute("L01.0", (3, 2, 0.3, 0.2, 0.1), exam=EXAM_DERMA),
    Acute("B86", (1, 1, 0.5, 0.3, 0.3), exam=EXAM_DERMA),
    Acute("N39.0", (1, 0.5, 2, 2, 3), fever=0.3, labs=(("6690-2", "high"),), lab_p=0.3),
    Acute("H10.9", (2, 2, 1, 1, 1), exam=EXAM_EYE, rx=("H10",)),
    Acute("K02.9", (1, 3, 1.5, 1, 0.5), exam=EXAM_DENTAL, procedures=("16.9101.9101",), proc_p=0.2,
          rx=("K08",)),
    Acute("R51", (0, 1, 2, 2, 1.5)),
    Acute("R50.9", (5, 2, 0.5, 0.3, 0.3), fever=1.0, labs=(("6690-2", "normal"),), lab_p=0.3),
    # Injuries: Bắc Ninh's industrial parks and roads; open wounds get sutured.
    Acute("S61.0", (0.5, 1.5, 3, 2, 1), exam=EXAM_SURGERY, emergency=0.2,
          procedures=("10.9090.9090", "10.9091.9091"), proc_p=0.8, rx=("S61.0", "T14")),
    Acute("S93.4", (0.2, 1, 2, 1, 0.5), exam=EXAM_SURGERY, rx=("M25", "R52")),
    Acute("T14.0", (2, 2, 2, 1, 1), exam=EXAM_SURGERY, procedures=("10.9091.9091",), proc_p=0.5,
          rx=("T14",)),
    Acute("S00.8", (1, 1, 1, 0.5, 0.6), exam=EXAM_SURGERY, emergency=0.5, admit=0.1, los=(1, 3),
          rx=("T14",)),
    Acute("S52.5", (0.2, 0.6, 0.4, 0.5, 1.2), exam=EXAM_SURGERY, entry=(0.2, 0.4, 0.4),
          refer=0.4, emergency=0.5, admit=0.2, los=(2, 5), procedures=("10.9094.9094",), proc_p=0.9,
          rx=("T14",)),
    Acute("S82.2", (0.05, 0.2, 0.5, 0.4, 0.3), exam=EXAM_SURGERY, entry=(0.1, 0.3, 0.6),
          refer=0.6, emergency=0.8, admit=0.7, los=(5, 12), procedures=("10.9094.9094",),
          proc_p=0.9, rx=("T14",)),
    Acute("K35.8", (0.1, 0.8, 0.8, 0.4, 0.2), exam=EXAM_SURGERY, fever=0.5, entry=(0.2, 0.3, 0.5),
          refer=0.9, emergency=0.8, admit=1.0, los=(3, 6), died=0.002, labs=_INFECTION,
          lab_p=0.95, procedures=("10.9104.9104",), proc_p=0.95),
    Acute("I63.9", (0, 0, 0.02, 0.3, 1.5), entry=(0.1, 0.3, 0.6), refer=0.9, emergency=0.9,
          admit=0.95, los=(7, 15), died=0.08, labs=(("14749-6", "high"), ("14647-2", "high")),
          lab_p=0.9),
    Acute("I21.9", (0, 0, 0.02, 0.15, 0.6), entry=(0.05, 0.25, 0.7), refer=0.95, emergency=0.95,
          admit=1.0, los=(5, 10), died=0.1, labs=(("67151-1", "high"), ("13969-1", "high")),
          lab_p=1.0),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class Chronic:
    """A chronic condition managed by monthly follow-ups with a repeat prescription."""

    icd: str
    prevalence: Bands  # share of people managed for it, by age band
    male_x: float = 1.0  # men ×, women ÷
    drugs: int = 1  # drugs in the person's regimen
    labs: LabOrder = ()
    lab_every: int = 6  # months between lab checks (done at a centre; stations test glucose only)


# Managed (not total) prevalence: STEPS 2021 Vietnam found ~1 in 4 adults hypertensive but under
# half of them under treatment; diabetes ~7 % of adults over 40. Our shaping, not official rates.
# fmt: off
CHRONIC: tuple[Chronic, ...] = (
    Chronic("I10", (0, 0, 0.015, 0.10, 0.26), male_x=1.1, drugs=2,
            labs=(("14682-9", "normal"), ("14647-2", "high")), lab_every=12),
    Chronic("E11.9", (0, 0, 0.003, 0.04, 0.08), drugs=2,
            labs=(("14749-6", "high"), ("4548-4", "high")), lab_every=3),
    Chronic("E78.5", (0, 0, 0.005, 0.03, 0.04), labs=(("14647-2", "high"), ("22748-8", "high"))),
    Chronic("J44.9", (0, 0, 0, 0.01, 0.04), male_x=2.0),
    Chronic("J45.9", (0.002, 0.01, 0.005, 0.005, 0.01)),
    Chronic("I25.9", (0, 0, 0, 0.005, 0.02), male_x=1.3, drugs=2),
)
# fmt: on
CAPILLARY_GLUCOSE = "15074-8"  # the one test a commune station runs at a diabetes follow-up


# Care of notifiable-disease cases from the epidemic simulation; the ICD-10 code comes from the
# event. Labs: the catalogue's confirmatory test (positive when the event is lab-confirmed).
# fmt: off
CASES: dict[str, Acute] = {
    "dengue": Acute("A97.0", _ORAL_KIDS, exam=EXAM_INFECTIOUS, fever=0.95, admit=0.35, los=(3, 7),
                    died=0.001, labs=(("777-3", "low"), ("6690-2", "low")), lab_p=0.9,
                    procedures=("02.9099.9099",), proc_p=0.2, rx=("A97",)),
    "hfmd": Acute("B08.4", _ORAL_KIDS, exam=EXAM_PAEDIATRIC, fever=0.7, admit=0.15, los=(3, 5)),
    "diarrhoea": Acute("A09.0", _ORAL_KIDS, fever=0.4, admit=0.1, los=(2, 4),
                       procedures=("02.9099.9099",), proc_p=0.15, rx=("A09.0", "A08")),
    "ili": Acute("J11.1", _ORAL_KIDS, fever=0.95, admit=0.05, los=(3, 5), respiratory=True),
    "conjunctivitis": Acute("H10.9", _ORAL_KIDS, exam=EXAM_EYE, rx=("H10",)),
    "leptospirosis": Acute("A27.9", _ORAL_KIDS, exam=EXAM_INFECTIOUS, fever=0.95, admit=0.7,
                           los=(5, 10), died=0.02, labs=_INFECTION, lab_p=0.8),
    "typhoid": Acute("A01.0", _ORAL_KIDS, exam=EXAM_INFECTIOUS, fever=1.0, admit=0.6, los=(5, 10),
                     labs=_INFECTION, lab_p=0.8),
    "hepatitis_a": Acute("B15.9", _ORAL_KIDS, exam=EXAM_INFECTIOUS, fever=0.4, admit=0.3,
                         los=(4, 8), labs=(("1742-6", "high"), ("1920-8", "high")), lab_p=0.9,
                         rx=("K76.0",)),
    "measles": Acute("B05.9", _ORAL_KIDS, exam=EXAM_PAEDIATRIC, fever=0.95, admit=0.3, los=(4, 7),
                     respiratory=True),
}
# Confirmatory tests in the service catalogue; None: no such test is listed, the result is
# recorded by name only.
CONFIRM_TEST: dict[str, str | None] = {
    "dengue": "24.9068.9068", "hfmd": "24.9077.9077", "ili": "24.9075.9075",
    "leptospirosis": "24.9076.9076", "typhoid": "24.9080.9080", "diarrhoea": None,
    "conjunctivitis": None, "hepatitis_a": None, "measles": None,
}
CONFIRM_NAME = {"diarrhoea": "Cấy phân / stool culture", "conjunctivitis": "Adenovirus PCR",
                "hepatitis_a": "HAV IgM", "measles": "Measles IgM"}
# fmt: on
DISPOSITION_REFERRED = 0.08  # admitted at a centre and transferred up to the provincial hospital
