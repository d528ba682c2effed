"""The curated drug and service catalogues: formats, uniqueness, links to ICD-10 and FHIR."""

from __future__ import annotations

import re

import pytest

import benhan.catalog
from benhan.catalog import drug_to_medication, drugs, service_coding, services
from benhan.catalog.drugs import ROUTES, drugs_for
from benhan.catalog.fhir import route_coding, service_loinc
from benhan.catalog.icd10 import icd10
from benhan.catalog.services import MA_DICH_VU_RE, services_of_kind
from benhan.fhir.validation import check

ATC5 = re.compile(r"[A-Z]\d{2}[A-Z]{2}\d{2}")
ATC4_ONLY = {"A07CA"}  # oral rehydration salts: WHO gives no level-5 code


def test_public_api_is_pinned() -> None:
    assert benhan.catalog.__all__ == [
        "CatalogImport",
        "Drug",
        "Icd10Code",
        "Service",
        "drug_to_medication",
        "drugs",
        "icd10",
        "load_catalog",
        "service_coding",
        "services",
    ]


def test_drug_catalogue_size_and_keys() -> None:
    items = drugs()
    assert 200 <= len(items) <= 320
    keys = [(d.code, d.strength, d.form, d.route) for d in items]
    assert len(set(keys)) == len(keys)
    # one MA_THUOC per active ingredient, as in the common catalogue
    by_code = {d.code: d.ingredient for d in items}
    assert len(by_code) == len({d.ingredient for d in items})


def test_every_drug_has_atc_route_and_dose() -> None:
    for d in drugs():
        assert ATC5.fullmatch(d.atc) or d.atc in ATC4_ONLY, d
        assert d.route in ROUTES, d
        assert d.dose and d.per_day and d.days and d.price is not None, d
        assert d.code_source in {"local", "qd4750"}, d


def test_well_known_atc_codes() -> None:
    atc = {d.name: d.atc for d in drugs()}
    assert atc["Paracetamol"] == "N02BE01"
    assert atc["Amoxicilin"] == "J01CA04"
    assert atc["Doxycyclin"] == "J01AA02"


def test_indications_are_icd10_codes() -> None:
    known = icd10()
    for d in drugs():
        assert d.indications, d
        for term in d.indications:
            for end in term.split("-"):
                assert end in known, (d.name, term)


def test_indications_drive_prescribing() -> None:
    assert "Doxycyclin" in {d.name for d in drugs_for("A27.0")}  # leptospirosis
    assert "Oresol" in {d.name for d in drugs_for("A09")}
    assert "Amoxicilin" in {d.name for d in drugs_for("J03.9")}
    assert "Paracetamol" in {d.name for d in drugs_for("A97.1")}
    assert "Cloramphenicol" in {d.name for d in drugs_for("H10.0")}


def test_dosage_text_follows_xml130() -> None:
    amox = next(d for d in drugs() if d.name == "Amoxicilin" and d.strength == "500mg")
    assert amox.dosage_text() == "1 Viên/lần * 3 lần/ngày * 7 ngày"


def test_oxygen_keeps_its_real_code() -> None:
    assert [d.code for d in drugs() if d.atc == "V03AN01"] == ["40.17"]


def test_service_codes_and_kinds() -> None:
    items = services()
    assert 100 <= len(items) <= 200
    for code, s in items.items():
        assert MA_DICH_VU_RE.fullmatch(code), code
        assert s.price > 0
        short = s.kind in ("exam", "bed-day")
        assert (code.count(".") == 1) == short, code
    assert {s.kind for s in items.values()} >= {"exam", "lab", "imaging", "procedure", "bed-day"}


def test_labs_carry_result_generation_data() -> None:
    by_loinc = {s.loinc: s for s in services_of_kind("lab") if s.loinc}
    assert {"58410-2", "1742-6", "75377-7"} <= set(by_loinc)
    alt = by_loinc["1742-6"]
    assert alt.result_unit == "U/L" and alt.ref_high is not None
    for s in services_of_kind("lab"):
        assert s.loinc or s.ref_text, s  # quantitative or qualitative, never neither


def test_imaging_links_tt23_techniques() -> None:
    imaging = services_of_kind("imaging")
    assert len(imaging) >= 20
    for s in imaging:
        chapter, stt = s.technique.split(".")
        assert s.code.startswith(f"{int(chapter):02d}.{int(stt):04d}."), s


@pytest.mark.parametrize("index", range(0, 305, 7))
def test_medication_is_valid_fhir(index: int) -> None:
    drug = drugs()[index % len(drugs())]
    medication = drug_to_medication(drug)
    assert check(medication) == []
    atc = {"system": "http://www.whocc.no/atc", "code": drug.atc}
    assert medication["code"]["coding"][1] == atc


def test_codings() -> None:
    cbc = next(s for s in services().values() if s.loinc == "58410-2")
    assert service_coding(cbc)["code"] == cbc.code
    assert service_loinc(cbc) == {
        "system": "http://loinc.org",
        "code": "58410-2",
        "display": cbc.name,
    }
    oral = route_coding(drugs()[0])
    assert oral is not None and oral["code"] == "26643006"
