"""The search engine on SQLite and PostgreSQL: every criterion, modifier and result parameter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from benhan.access import Actor
from benhan.fhir.outcome import FhirError
from benhan.fhir.primitives import micros
from benhan.store import provenance
from benhan.store.database import Store
from benhan.store.repository import Repo
from benhan.store.schema import resource
from benhan.store.search import SearchResult, parse_search, run_search, supported_params

FACILITY = "27001"
CCCD = "https://benhan.vn/sid/cccd"
BHYT = "https://benhan.vn/sid/bhyt"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
BASE = "https://hub.benhan.vn/fhir"


def pairs(query: str) -> list[tuple[str, str]]:
    """`a=1&b=2` → [(a, 1), (b, 2)], without percent-decoding (values are written literally)."""
    out: list[tuple[str, str]] = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        out.append((name, value))
    return out


def cccd() -> str:
    """A fresh 12-digit CCCD number for each resource (fresh values per test)."""
    return f"{uuid.uuid4().int % 10**12:012d}"


class Db:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, res: dict[str, Any]) -> str:
        with self.store.begin() as conn:
            return Repo(conn, Actor.job(FACILITY, "test")).create(res).id

    def search(self, rtype: str | None, query: str, *, strict: bool = True) -> SearchResult:
        req = parse_search(rtype, pairs(query), strict=strict)
        with self.store.read() as conn:
            return run_search(conn, req)

    def ids(self, rtype: str | None, query: str, *, strict: bool = True) -> set[str]:
        return {rid for _, rid, _ in self.search(rtype, query, strict=strict).matches}

    def order(self, rtype: str | None, query: str) -> list[str]:
        return [rid for _, rid, _ in self.search(rtype, query).matches]

    def set_updated(self, rtype: str, rid: str, moment: str) -> None:
        us = micros(datetime.fromisoformat(moment))
        with self.store.begin() as conn:
            conn.execute(
                resource.update()
                .where(resource.c.rtype == rtype, resource.c.id == rid)
                .values(last_updated=us)
            )

    def delete(self, rtype: str, rid: str) -> None:
        with self.store.begin() as conn:
            Repo(conn, Actor.job(FACILITY, "test")).delete(rtype, rid)


@pytest.fixture
def db(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Db]:
    # Exact result sets: no Provenance per write here (tests/store/test_provenance.py).
    monkeypatch.setattr(provenance, "RECORD", False)
    yield Db(store)


def patient(family: str, *given: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": list(given)}],
    }
    res.update(extra)
    return res


def with_cccd(res: dict[str, Any], number: str) -> dict[str, Any]:
    res.setdefault("identifier", []).append({"system": CCCD, "value": number})
    return res


def observation(subject: str | None, loinc: str, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
    }
    if subject:
        res["subject"] = {"reference": subject}
    res.update(extra)
    return res


def bad(rtype: str | None, query: str, *mentions: str, strict: bool = True) -> None:
    """The query is rejected with 400 and the issue text names the parameter (and the value)."""
    with pytest.raises(FhirError) as caught:
        parse_search(rtype, pairs(query), strict=strict)
    assert caught.value.status == 400
    text = caught.value.issues[0].text
    assert " / " in text  # Vietnamese first, then English
    for m in mentions:
        assert m in text, (m, text)


# ---------------------------------------------------------------------------------- token


def test_token_system_and_code_forms(db: Db) -> None:
    n_an, n_hoa = cccd(), cccd()
    an = db.add(with_cccd(patient("Nguyễn", "Văn", "An", gender="male"), n_an))
    hoa = db.add(with_cccd(patient("Trần", "Thị", "Hoa", gender="female"), n_hoa))
    bare = db.add(patient("Lê", "Minh", identifier=[{"value": n_an}]))
    bhyt = db.add(patient("Phạm", "Thu", identifier=[{"system": BHYT, "value": "DN4012345678901"}]))
    assert db.ids("Patient", f"identifier={CCCD}|{n_an}") == {an}
    assert db.ids("Patient", f"identifier={n_an}") == {an, bare}
    assert db.ids("Patient", f"identifier=|{n_an}") == {bare}
    assert db.ids("Patient", f"identifier={CCCD}|") == {an, hoa}
    assert db.ids("Patient", f"identifier={BHYT}|") == {bhyt}
    assert db.ids("Patient", "gender=male") == {an}
    assert db.ids("Patient", "gender=male,female") == {an, hoa}
    assert db.ids("Patient", f"identifier={CCCD}|&gender=female") == {hoa}
    assert db.ids("Patient", f"identifier={CCCD}|{n_hoa}&gender=male") == set()


def test_token_not_includes_resources_without_a_value(db: Db) -> None:
    an = db.add(patient("Nguyễn", "Văn", "An", gender="male"))
    hoa = db.add(patient("Trần", "Thị", "Hoa", gender="female"))
    unknown = db.add(patient("Lê", "Văn", "Tám"))
    other = db.add(patient("Đỗ", "Bình", gender="other"))
    assert db.ids("Patient", "gender:not=male") == {hoa, unknown, other}
    assert db.ids("Patient", "gender:not=male,female") == {unknown, other}
    assert an not in db.ids("Patient", "gender:not=male")


def test_token_text_matches_folded_display_prefix(db: Db) -> None:
    p = db.add(patient("Nguyễn", "An"))
    pulse = db.add(
        observation(
            f"Patient/{p}",
            "8867-4",
            code={"coding": [{"system": LOINC, "code": "8867-4", "display": "Nhịp tim"}]},
        )
    )
    sugar = db.add(observation(f"Patient/{p}", "2339-0", code={"text": "Đường huyết lúc đói"}))
    assert db.ids("Observation", "code:text=nhip") == {pulse}
    assert db.ids("Observation", "code:text=NHỊP TIM") == {pulse}
    assert db.ids("Observation", "code:text=duong huyet") == {sugar}
    assert db.ids("Observation", "code:text=tim") == set()  # a prefix, not a substring


def test_token_missing(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An", gender="male"))
    tam = db.add(patient("Lê", "Tám"))
    assert db.ids("Patient", "gender:missing=true") == {tam}
    assert db.ids("Patient", "gender:missing=false") == {an}


def test_tag_security_and_profile(db: Db) -> None:
    tag = {"system": "https://benhan.vn/tag", "code": "kham-benh"}
    sec = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
    profile = "https://benhan.vn/fhir/StructureDefinition/vn-patient"
    tagged = db.add(patient("Nguyễn", "An", meta={"tag": [tag], "profile": [profile]}))
    secret = db.add(patient("Trần", "Hoa", meta={"security": [sec]}))
    plain = db.add(patient("Lê", "Tám"))
    assert db.ids("Patient", "_tag=https://benhan.vn/tag|kham-benh") == {tagged}
    assert db.ids("Patient", "_tag=kham-benh") == {tagged}
    assert db.ids("Patient", "_security=R") == {secret}
    assert db.ids("Patient", f"_profile={profile}") == {tagged}
    assert db.ids("Patient", "_tag:not=kham-benh") == {secret, plain}
    assert db.ids("Patient", "_tag:missing=true") == {secret, plain}
    assert db.ids("Patient", "_security:missing=false") == {secret}


def test_token_escaped_comma_is_not_an_or(db: Db) -> None:
    odd = db.add(patient("Nguyễn", "An", identifier=[{"system": BHYT, "value": "a,b"}]))
    plain = db.add(patient("Trần", "Hoa", identifier=[{"system": BHYT, "value": "a"}]))
    assert db.ids("Patient", "identifier=a\\,b") == {odd}
    assert db.ids("Patient", "identifier=a,b") == {plain}  # "a" or "b"
    assert db.ids("Patient", f"identifier={BHYT}|a\\,b") == {odd}


# ---------------------------------------------------------------------------------- string


def test_string_default_is_accent_and_case_insensitive_prefix(db: Db) -> None:
    an = db.add(patient("Nguyễn", "Văn", "An"))
    anh = db.add(patient("Nguyễn", "Thị", "Anh"))
    hoa = db.add(patient("Trần", "Thị", "Hoa"))
    dang = db.add(patient("Đặng", "Thùy"))
    assert db.ids("Patient", "name=nguyen") == {an, anh}
    assert db.ids("Patient", "family=NGUYỄN") == {an, anh}
    assert db.ids("Patient", "given=an") == {an, anh}
    assert db.ids("Patient", "given=anh") == {anh}
    assert db.ids("Patient", "name=thi") == {anh, hoa}
    assert db.ids("Patient", "name=dang") == {dang}
    assert db.ids("Patient", "family=guyen") == set()
    assert db.ids("Patient", "name=tran,dang") == {hoa, dang}
    assert db.ids("Patient", "name=nguyen&given=anh") == {anh}


def test_string_exact_and_contains(db: Db) -> None:
    an = db.add(patient("Nguyễn", "Văn", "An"))
    hoa = db.add(patient("Trần", "Thị", "Hoa"))
    assert db.ids("Patient", "family:exact=Nguyễn") == {an}
    assert db.ids("Patient", "family:exact=nguyen") == set()
    assert db.ids("Patient", "family:exact=Nguy") == set()
    assert db.ids("Patient", "family:contains=uye") == {an}
    assert db.ids("Patient", "given:contains=HO") == {hoa}
    assert db.ids("Patient", "name:contains=an") == {an, hoa}


def test_string_like_wildcards_in_input_are_literal(db: Db) -> None:
    pct = db.add(patient("Nguyễn", "50%"))
    under = db.add(patient("Trần", "a_b"))
    db.add(patient("Lê", "axb"))
    db.add(patient("Phạm", "50 tuổi"))
    slash = db.add(patient("Võ", "a\\b"))
    assert db.ids("Patient", "given=50%") == {pct}
    assert db.ids("Patient", "given:contains=%") == {pct}
    assert db.ids("Patient", "given=a_") == {under}
    assert db.ids("Patient", "given:contains=_") == {under}
    assert db.ids("Patient", "given=a\\\\") == {slash}  # FHIR-escaped "\\", literal in LIKE


def test_string_missing(db: Db) -> None:
    with_city = db.add(patient("Nguyễn", "An", address=[{"city": "Bắc Ninh"}]))
    without = db.add(patient("Trần", "Hoa"))
    assert db.ids("Patient", "address-city:missing=true") == {without}
    assert db.ids("Patient", "address-city:missing=false") == {with_city}
    assert db.ids("Patient", "address-city=bac ninh") == {with_city}


# ------------------------------------------------------------------------------------ date


@pytest.fixture
def births(db: Db) -> dict[str, str]:
    return {
        "1989-12-31": db.add(patient("Nguyễn", "An", birthDate="1989-12-31")),
        "1990-05-12": db.add(patient("Trần", "Hoa", birthDate="1990-05-12")),
        "1990-07": db.add(patient("Lê", "Tám", birthDate="1990-07")),
        "1991": db.add(patient("Phạm", "Thu", birthDate="1991")),
        "none": db.add(patient("Đỗ", "Bình")),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("1990", {"1990-05-12", "1990-07"}),
        ("eq1990", {"1990-05-12", "1990-07"}),
        ("1990-05", {"1990-05-12"}),
        ("1990-05-12", {"1990-05-12"}),
        ("1990-07-15", set()),  # the stored month is wider than the searched day
        ("ne1990", {"1989-12-31", "1991"}),
        ("gt1990", {"1991"}),
        ("gt1990-05-12", {"1990-07", "1991"}),
        ("lt1990", {"1989-12-31"}),
        ("ge1990", {"1990-05-12", "1990-07", "1991"}),
        ("le1990", {"1989-12-31", "1990-05-12", "1990-07"}),
        ("sa1990-05-12", {"1990-07", "1991"}),
        ("eb1990-07-01", {"1989-12-31", "1990-05-12"}),
        ("eb1990-07", {"1989-12-31", "1990-05-12"}),
        ("ge1990-05-12&le1990-12", {"1990-05-12", "1990-07"}),
        ("1989,1991", {"1989-12-31", "1991"}),
        ("1989-12-31T10:00", set()),  # the stored day is wider than the searched minute
        ("ap1990-06-01", {"1989-12-31", "1990-05-12", "1990-07", "1991"}),  # ±3.5 years
        ("ap1990-06-01&ge1990", {"1990-05-12", "1990-07", "1991"}),
    ],
)
def test_date_prefixes_on_partial_dates(
    db: Db, births: dict[str, str], query: str, expected: set[str]
) -> None:
    q = "&".join(f"birthdate={part}" for part in query.split("&"))
    assert db.ids("Patient", q) == {births[k] for k in expected}


def test_date_time_offsets_and_vietnam_local_day(db: Db) -> None:
    p = db.add(patient("Nguyễn", "An"))
    late = db.add(
        observation(f"Patient/{p}", "8867-4", effectiveDateTime="2024-03-01T23:30:00+07:00")
    )
    utc = db.add(observation(f"Patient/{p}", "8867-4", effectiveDateTime="2024-03-01T20:00:00Z"))
    assert db.ids("Observation", "date=2024-03-01") == {late}  # 20:00Z is 03:00 on 2 March here
    assert db.ids("Observation", "date=2024-03-02") == {utc}
    assert db.ids("Observation", "date=2024-03-01T16:30:00Z") == {late}
    assert db.ids("Observation", "date=2024-03-01T23:30") == {late}  # naive means +07:00
    assert db.ids("Observation", "date=2024-03-01T23:30:00+07:00") == {late}
    assert db.ids("Observation", "date=2024-03-01T23:30:00 07:00") == {late}  # "+" became " "
    assert db.ids("Observation", "date=gt2024-03-01T23:30:00+07:00") == {utc}
    assert db.ids("Observation", "date=lt2024-03-02T00:00") == {late}
    assert db.ids("Observation", "date=2024-03") == {late, utc}


def test_date_periods_and_open_ends(db: Db) -> None:
    p = db.add(patient("Nguyễn", "An"))
    enc = {
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    }
    closed = db.add(
        {
            "resourceType": "Encounter",
            **enc,
            "subject": {"reference": f"Patient/{p}"},
            "period": {"start": "2024-03-01", "end": "2024-03-05"},
        }
    )
    ongoing = db.add(
        {
            "resourceType": "Encounter",
            **enc,
            "status": "in-progress",
            "period": {"start": "2024-03-10T08:00:00+07:00"},
        }
    )
    assert db.ids("Encounter", "date=2024-03") == {closed}
    assert db.ids("Encounter", "date=2024-03-02") == set()  # eq: the period must fit inside
    assert db.ids("Encounter", "date=ap2024-03-02") == {closed, ongoing}  # ± ~2 months
    assert db.ids("Encounter", "date=gt2030") == {ongoing}
    assert db.ids("Encounter", "date=ge2024-03-04&date=le2024-03-06") == {closed}
    assert db.ids("Encounter", "date=sa2024-03-05") == {ongoing}
    assert db.ids("Encounter", "date=eb2024-03-10") == {closed}
    assert db.ids("Encounter", "date=lt2024-03-01") == set()


def test_date_approximately_widens_with_distance_from_now(db: Db) -> None:
    near = db.add(patient("Nguyễn", "An", birthDate="2015-06-01"))
    db.add(patient("Trần", "Hoa", birthDate="2018-06-01"))
    far = db.add(patient("Lê", "Tám", birthDate="1925-03-01"))
    # ~10 years from now: 10% is about a year on each side.
    assert db.ids("Patient", "birthdate=ap2015-01-01") == {near}
    # ~100 years away: ten years of slack.
    assert db.ids("Patient", "birthdate=ap1931-01-01") == {far}
    assert db.ids("Patient", "birthdate=ap1960-01-01") == set()


def test_last_updated(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An"))
    hoa = db.add(patient("Trần", "Hoa"))
    tam = db.add(patient("Lê", "Tám"))
    db.set_updated("Patient", an, "2024-01-15T09:00:00+07:00")
    db.set_updated("Patient", hoa, "2024-02-01T00:30:00+07:00")
    db.set_updated("Patient", tam, "2024-02-01T07:30:00+00:00")  # 14:30 in Vietnam
    assert db.ids("Patient", "_lastUpdated=2024-01") == {an}
    assert db.ids("Patient", "_lastUpdated=2024-02-01") == {hoa, tam}
    assert db.ids("Patient", "_lastUpdated=gt2024-02-01T12:00") == {tam}
    assert db.ids("Patient", "_lastUpdated=lt2024-02") == {an}
    assert db.ids("Patient", "_lastUpdated=ge2024-01-15&_lastUpdated=le2024-02-01T01:00") == {
        an,
        hoa,
    }
    assert db.ids("Patient", "_lastUpdated=ne2024-02-01") == {an}
    assert db.order("Patient", "_sort=-_lastUpdated") == [tam, hoa, an]


# ------------------------------------------------------------------------------- reference


def test_reference_forms(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An"))
    hoa = db.add(patient("Trần", "Hoa"))
    loc = db.add({"resourceType": "Location", "name": "Trạm y tế xã Đại Phúc"})
    o_an = db.add(observation(f"Patient/{an}", "8867-4"))
    o_hoa = db.add(observation(f"Patient/{hoa}", "8867-4"))
    o_loc = db.add(observation(f"Location/{loc}", "8867-4"))
    remote = db.add(observation("https://his.bvbacninh.vn/fhir/Patient/ext-77", "8867-4"))
    assert db.ids("Observation", f"subject=Patient/{an}") == {o_an}
    assert db.ids("Observation", f"subject={an}") == {o_an}
    assert db.ids("Observation", f"patient={hoa}") == {o_hoa}
    assert db.ids("Observation", f"subject:Patient={an}") == {o_an}
    assert db.ids("Observation", f"subject=Patient/{an}/_history/1") == {o_an}
    assert db.ids("Observation", f"subject:Location={an}") == set()
    assert db.ids("Observation", f"subject=Location/{loc}") == {o_loc}
    assert db.ids("Observation", f"subject={an},{hoa}") == {o_an, o_hoa}
    assert db.ids("Observation", f"subject={BASE}/Patient/{an}") == {o_an}
    assert db.ids("Observation", "subject=https://his.bvbacninh.vn/fhir/Patient/ext-77") == {remote}
    assert db.ids("Observation", "subject=ext-77") == set()  # absolute: not a local id


def test_reference_missing(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An"))
    with_subject = db.add(observation(f"Patient/{an}", "8867-4"))
    without = db.add(observation(None, "8867-4"))
    assert db.ids("Observation", "subject:missing=true") == {without}
    assert db.ids("Observation", "subject:missing=false") == {with_subject}


def test_chained_reference(db: Db) -> None:
    n_an = cccd()
    an = db.add(with_cccd(patient("Nguyễn", "Văn", "An", birthDate="1990-05-12"), n_an))
    hoa = db.add(with_cccd(patient("Trần", "Thị", "Hoa", birthDate="1985-01-01"), cccd()))
    loc = db.add({"resourceType": "Location", "name": "Nguyễn Trãi - trạm y tế"})
    o_an = db.add(observation(f"Patient/{an}", "8867-4"))
    o_hoa = db.add(observation(f"Patient/{hoa}", "8867-4"))
    o_loc = db.add(observation(f"Location/{loc}", "8867-4"))
    assert db.ids("Observation", f"subject:Patient.identifier={CCCD}|{n_an}") == {o_an}
    assert db.ids("Observation", f"patient.identifier={n_an}") == {o_an}
    assert db.ids("Observation", "subject:Patient.name=nguyen") == {o_an}
    assert db.ids("Observation", "subject.name=nguyen") == {o_an, o_loc}  # Patient or Location
    assert db.ids("Observation", "subject.name=tran,nguyen") == {o_an, o_hoa, o_loc}
    assert db.ids("Observation", "subject:Patient.birthdate=lt1990") == {o_hoa}
    assert db.ids("Observation", "patient.gender:missing=true") == {o_an, o_hoa}
    assert db.ids("Observation", f"subject:Patient._id={hoa}") == {o_hoa}


def test_chain_skips_deleted_targets(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An"))
    obs = db.add(observation(f"Patient/{an}", "8867-4"))
    assert db.ids("Observation", "subject:Patient.name=nguyen") == {obs}
    db.delete("Patient", an)
    assert db.ids("Observation", "subject:Patient.name=nguyen") == set()


# -------------------------------------------------------------------------- quantity/number


@pytest.fixture
def pulses(db: Db) -> dict[float, str]:
    p = db.add(patient("Nguyễn", "An"))
    out: dict[float, str] = {}
    for value in (5.34, 5.35, 5.4, 5.449, 5.45, 7.0):
        unit = {"value": value, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}
        out[value] = db.add(observation(f"Patient/{p}", "2339-0", valueQuantity=unit))
    out[0.0] = db.add(
        observation(f"Patient/{p}", "2339-0", valueQuantity={"value": 5.4, "unit": "mg/dL"})
    )
    return out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5.4", {5.35, 5.4, 5.449, 0.0}),
        ("eq5.4", {5.35, 5.4, 5.449, 0.0}),
        (f"5.4|{UCUM}|mmol/L", {5.35, 5.4, 5.449}),
        ("5.4||mmol/L", {5.35, 5.4, 5.449}),
        ("5.4||mg/dL", {0.0}),  # the human unit, when no system is given
        (f"5.4|{UCUM}|mg/dL", set()),
        ("5.40", {5.4, 0.0}),  # more digits, tighter: [5.395, 5.405)
        ("ne5.4||mmol/L", {5.34, 5.45, 7.0}),
        ("gt5.4||mmol/L", {5.449, 5.45, 7.0}),
        ("lt5.4||mmol/L", {5.34, 5.35}),
        ("ge5.4||mmol/L", {5.4, 5.449, 5.45, 7.0}),
        ("le5.35||mmol/L", {5.34, 5.35}),
        ("sa5.45||mmol/L", {7.0}),
        ("eb5.35||mmol/L", {5.34}),
        ("ap7||mmol/L", {7.0}),
        ("ap6||mmol/L", {5.4, 5.449, 5.45}),  # within 10%: [5.4, 6.6]
    ],
)
def test_quantity(db: Db, pulses: dict[float, str], value: str, expected: set[float]) -> None:
    assert db.ids("Observation", f"value-quantity={value}") == {pulses[k] for k in expected}


def test_number(db: Db) -> None:
    p = db.add(patient("Nguyễn", "An"))

    def risk(probability: float) -> str:
        return db.add(
            {
                "resourceType": "RiskAssessment",
                "status": "final",
                "subject": {"reference": f"Patient/{p}"},
                "prediction": [{"probabilityDecimal": probability}],
            }
        )

    low, edge, mid, high = risk(0.2), risk(0.25), risk(0.5), risk(0.7)
    assert db.ids("RiskAssessment", "probability=0.2") == {low}
    assert db.ids("RiskAssessment", "probability=0.25") == {edge}
    assert db.ids("RiskAssessment", "probability=0") == {low, edge}  # [-0.5, 0.5)
    assert db.ids("RiskAssessment", "probability=gt0.2") == {edge, mid, high}
    assert db.ids("RiskAssessment", "probability=ge0.25") == {edge, mid, high}
    assert db.ids("RiskAssessment", "probability=lt0.5") == {low, edge}
    assert db.ids("RiskAssessment", "probability=le0.5") == {low, edge, mid}
    assert db.ids("RiskAssessment", "probability=ne0.5") == {low, edge, high}
    assert db.ids("RiskAssessment", "probability=ap0.7") == {high}
    assert db.ids("RiskAssessment", "probability=sa0.5") == {high}
    assert db.ids("RiskAssessment", "probability=eb0.25") == {low}
    assert db.ids("RiskAssessment", "probability=2e-1") == {low}  # [0.15, 0.25)
    assert db.ids("RiskAssessment", "probability:missing=false") == {low, edge, mid, high}


# ------------------------------------------------------------------------------------- uri


def test_uri_exact_below_above(db: Db) -> None:
    def value_set(url: str) -> str:
        return db.add({"resourceType": "ValueSet", "status": "active", "url": url})

    root = value_set("https://benhan.vn/fhir/ValueSet")
    icd = value_set("https://benhan.vn/fhir/ValueSet/icd10")
    icd_vn = value_set("https://benhan.vn/fhir/ValueSet/icd10-vn")
    other = value_set("http://hl7.org/fhir/ValueSet/administrative-gender")
    assert db.ids("ValueSet", "url=https://benhan.vn/fhir/ValueSet/icd10") == {icd}
    assert db.ids("ValueSet", "url=https://benhan.vn/fhir/ValueSet/icd1") == set()
    assert db.ids("ValueSet", "url:below=https://benhan.vn/fhir/ValueSet/") == {icd, icd_vn}
    assert db.ids("ValueSet", "url:below=https://benhan.vn") == {root, icd, icd_vn}
    above = "url:above=https://benhan.vn/fhir/ValueSet/icd10/2024"
    assert db.ids("ValueSet", above) == {root, icd}
    assert db.ids("ValueSet", "url:missing=false") == {root, icd, icd_vn, other}


# -------------------------------------------------------------------------------- _id, _has


def test_id(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An"))
    hoa = db.add(patient("Trần", "Hoa"))
    db.add(patient("Lê", "Tám"))
    assert db.ids("Patient", f"_id={an}") == {an}
    assert db.ids("Patient", f"_id={an},{hoa}") == {an, hoa}
    assert db.ids("Patient", f"_id={an}&_id={hoa}") == set()
    assert db.ids("Patient", "_id=khong-co") == set()
    assert db.ids("Patient", f"_id=x|{an}") == set()  # an id has no system part


def test_has(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An"))
    hoa = db.add(patient("Trần", "Hoa"))
    db.add(patient("Lê", "Tám"))
    db.add(observation(f"Patient/{an}", "8867-4", valueQuantity={"value": 120, "unit": "/min"}))
    db.add(observation(f"Patient/{hoa}", "8867-4", valueQuantity={"value": 72, "unit": "/min"}))
    db.add(observation(f"Patient/{hoa}", "2339-0"))
    assert db.ids("Patient", "_has:Observation:patient:code=8867-4") == {an, hoa}
    assert db.ids("Patient", "_has:Observation:subject:code=2339-0") == {hoa}
    assert db.ids("Patient", "_has:Observation:patient:value-quantity=gt100") == {an}
    both = "_has:Observation:patient:code=2339-0&_has:Observation:patient:value-quantity=72"
    assert db.ids("Patient", both) == {hoa}  # each _has may be met by a different Observation
    assert db.ids("Patient", "_has:Observation:patient:code=9999-9") == set()
    assert db.ids("Patient", "_has:Observation:patient:subject.name=tran") == {hoa}


# --------------------------------------------------------------------------------- includes


@pytest.fixture
def clinic(db: Db) -> dict[str, str]:
    dr = db.add({"resourceType": "Practitioner", "name": [{"family": "Hoàng", "given": ["Minh"]}]})
    an = db.add(patient("Nguyễn", "An", generalPractitioner=[{"reference": f"Practitioner/{dr}"}]))
    hoa = db.add(patient("Trần", "Hoa"))
    loc = db.add({"resourceType": "Location", "name": "Phòng khám số 3"})
    o1 = db.add(
        observation(f"Patient/{an}", "8867-4", performer=[{"reference": f"Practitioner/{dr}"}])
    )
    o2 = db.add(observation(f"Patient/{an}", "2339-0"))
    o3 = db.add(observation(f"Location/{loc}", "8867-4"))
    prov = db.add(
        {
            "resourceType": "Provenance",
            "recorded": "2024-03-01T08:00:00+07:00",
            "target": [{"reference": f"Observation/{o1}"}],
            "agent": [{"who": {"reference": f"Practitioner/{dr}"}}],
        }
    )
    return {"dr": dr, "an": an, "hoa": hoa, "loc": loc, "o1": o1, "o2": o2, "o3": o3, "prov": prov}


def _included(result: SearchResult) -> set[tuple[str, str]]:
    keys = [(t, i) for t, i, _ in result.included]
    assert len(keys) == len(set(keys))  # de-duplicated
    assert not set(keys) & {(t, i) for t, i, _ in result.matches}
    return set(keys)


def test_include(db: Db, clinic: dict[str, str]) -> None:
    c = clinic
    r = db.search("Observation", "code=8867-4&_include=Observation:subject")
    assert {i for _, i, _ in r.matches} == {c["o1"], c["o3"]}
    assert _included(r) == {("Patient", c["an"]), ("Location", c["loc"])}
    r = db.search("Observation", "_include=Observation:subject:Patient")
    assert _included(r) == {("Patient", c["an"])}
    r = db.search("Observation", f"_id={c['o1']}&_include=Observation:*")
    assert _included(r) == {("Patient", c["an"]), ("Practitioner", c["dr"])}
    r = db.search("Observation", f"_id={c['o1']}&_include=*")
    assert _included(r) == {("Patient", c["an"]), ("Practitioner", c["dr"])}
    r = db.search("Patient", f"_id={c['an']}&_include=Observation:subject")  # other source type
    assert _included(r) == set()


def test_include_iterate(db: Db, clinic: dict[str, str]) -> None:
    c = clinic
    q = f"_id={c['o2']}&_include=Observation:subject&_include:iterate=Patient:general-practitioner"
    assert _included(db.search("Observation", q)) == {
        ("Patient", c["an"]),
        ("Practitioner", c["dr"]),
    }
    q = f"_id={c['o2']}&_include=Observation:subject&_include=Patient:general-practitioner"
    assert _included(db.search("Observation", q)) == {("Patient", c["an"])}


def test_revinclude(db: Db, clinic: dict[str, str]) -> None:
    c = clinic
    r = db.search("Patient", f"_id={c['an']},{c['hoa']}&_revinclude=Observation:subject")
    assert _included(r) == {("Observation", c["o1"]), ("Observation", c["o2"])}
    q = f"_id={c['an']}&_revinclude=Observation:subject&_revinclude:iterate=Provenance:target"
    assert _included(db.search("Patient", q)) == {
        ("Observation", c["o1"]),
        ("Observation", c["o2"]),
        ("Provenance", c["prov"]),
    }
    q = f"_id={c['dr']}&_revinclude=Observation:performer&_revinclude=Patient:general-practitioner"
    assert _included(db.search("Practitioner", q)) == {
        ("Observation", c["o1"]),
        ("Patient", c["an"]),
    }
    q = f"_id={c['an']}&_revinclude=Observation:subject&_include=Patient:general-practitioner"
    r = db.search("Patient", q)
    assert _included(r) == {
        ("Observation", c["o1"]),
        ("Observation", c["o2"]),
        ("Practitioner", c["dr"]),
    }


def test_include_does_not_repeat_matches(db: Db, clinic: dict[str, str]) -> None:
    c = clinic
    derived = db.add(
        observation(
            f"Patient/{c['an']}", "8867-4", derivedFrom=[{"reference": f"Observation/{c['o1']}"}]
        )
    )
    q = "code=8867-4&_include=Observation:derived-from&_include=Observation:subject"
    r = db.search("Observation", q)
    assert {i for _, i, _ in r.matches} == {c["o1"], c["o3"], derived}
    assert _included(r) == {("Patient", c["an"]), ("Location", c["loc"])}  # o1 not repeated
    q = "_revinclude=Observation:subject&_include=Patient:general-practitioner"
    r = db.search("Patient", q)
    assert {i for _, i, _ in r.matches} == {c["an"], c["hoa"]}
    assert _included(r) == {
        ("Practitioner", c["dr"]),
        *(("Observation", o) for o in (c["o1"], c["o2"], derived)),
    }


# ------------------------------------------------------------------------ sort and paging


def test_sort(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An", birthDate="1990-05-12", gender="male"))
    hoa = db.add(patient("Trần", "Hoa", birthDate="1985", gender="female"))
    binh = db.add(patient("Đỗ", "Bình", birthDate="1990-05-12", gender="male"))
    tam = db.add(patient("Lê", "Tám"))
    assert db.order("Patient", "_sort=birthdate") == [hoa, *sorted([an, binh]), tam]
    assert db.order("Patient", "_sort=-birthdate") == [*sorted([an, binh]), hoa, tam]
    assert db.order("Patient", "_sort=family") == [binh, tam, an, hoa]  # do, le, nguyen, tran
    assert db.order("Patient", "_sort=-family") == [hoa, an, tam, binh]
    assert db.order("Patient", "_sort=-birthdate,family") == [binh, an, hoa, tam]
    assert db.order("Patient", "_sort=gender,-family") == [hoa, an, binh, tam]
    assert db.order("Patient", "_sort=_id") == sorted([an, hoa, binh, tam])
    assert db.order("Patient", "_sort=-_id") == sorted([an, hoa, binh, tam], reverse=True)


def test_sort_quantity_and_paging_is_stable(db: Db) -> None:
    p = db.add(patient("Nguyễn", "An"))
    made = {
        db.add(observation(f"Patient/{p}", "8867-4", valueQuantity={"value": v, "unit": "/min"})): v
        for v in (80, 60, 80, 100, 60, 80, 70)
    }
    empty = db.add(observation(f"Patient/{p}", "8867-4"))  # no value: last
    full = db.order("Observation", "_sort=value-quantity&_count=100")
    assert full == [*sorted(made, key=lambda i: (made[i], i)), empty]
    backwards = db.order("Observation", "_sort=-value-quantity&_count=100")
    assert backwards == [*sorted(made, key=lambda i: (-made[i], i)), empty]
    paged: list[str] = []
    for offset in range(0, 8, 3):
        r = db.search("Observation", f"_sort=value-quantity&_count=3&_offset={offset}")
        paged += [i for _, i, _ in r.matches]
        assert r.has_next == (offset + 3 < 8)
        assert r.total == 8
    assert paged == full


def test_count_offset_total_summary(db: Db) -> None:
    made = sorted(db.add(patient("Nguyễn", f"An {i}")) for i in range(5))
    r = db.search("Patient", "name=nguyen&_count=2")
    assert [i for _, i, _ in r.matches] == made[:2]
    assert (r.total, r.has_next) == (5, True)
    r = db.search("Patient", "name=nguyen&_count=2&_offset=4")
    assert [i for _, i, _ in r.matches] == made[4:]
    assert (r.total, r.has_next) == (5, False)
    r = db.search("Patient", "name=nguyen&_count=2&_offset=2&_total=none")
    assert (r.total, r.has_next, len(r.matches)) == (None, True, 2)
    r = db.search("Patient", "name=nguyen&_total=estimate")
    assert r.total == 5
    r = db.search("Patient", "name=nguyen&_count=0")
    assert (r.matches, r.total, r.has_next) == ([], 5, False)
    r = db.search("Patient", "name=nguyen&_summary=count&_total=none")
    assert (r.matches, r.total) == ([], 5)
    r = db.search("Patient", "name=tran")
    assert (r.matches, r.total, r.has_next) == ([], 0, False)


def test_matches_carry_the_stored_json(db: Db) -> None:
    import orjson

    an = db.add(patient("Nguyễn", "Văn", "An", birthDate="1990-05-12"))
    [(rtype, rid, content)] = db.search("Patient", f"_id={an}").matches
    body = orjson.loads(content)
    assert (rtype, rid, body["id"], body["name"][0]["family"]) == ("Patient", an, an, "Nguyễn")


def test_deleted_resources_are_not_found(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An"))
    hoa = db.add(patient("Trần", "Hoa"))
    obs = db.add(observation(f"Patient/{an}", "8867-4"))
    db.delete("Patient", an)
    assert db.ids("Patient", "") == {hoa}
    assert db.ids("Patient", "name=nguyen") == set()
    assert db.ids("Patient", "gender:missing=true") == {hoa}
    assert db.ids(None, f"_id={an},{obs}") == {obs}
    assert _included(db.search("Observation", "_include=Observation:subject")) == set()


# ----------------------------------------------------------------------------- system level


def test_system_level_search(db: Db) -> None:
    tag = "https://benhan.vn/tag|sot-xuat-huyet"
    meta = {"tag": [{"system": "https://benhan.vn/tag", "code": "sot-xuat-huyet"}]}
    an = db.add(patient("Nguyễn", "An", meta=meta))
    obs = db.add(observation(f"Patient/{an}", "8867-4", meta=meta))
    loc = db.add({"resourceType": "Location", "name": "Trạm y tế", "meta": meta})
    hoa = db.add(patient("Trần", "Hoa"))
    assert db.ids(None, f"_tag={tag}") == {an, obs, loc}
    assert db.ids(None, f"_tag={tag}&_type=Patient,Observation") == {an, obs}
    assert db.ids(None, "_type=Patient") == {an, hoa}
    assert db.ids(None, f"_tag:not={tag}&_type=Patient") == {hoa}
    assert db.ids(None, f"_id={an},{obs}") == {an, obs}
    r = db.search(None, f"_tag={tag}&_sort=_id&_count=2")
    by_id = sorted([("Location", loc), ("Observation", obs), ("Patient", an)], key=lambda k: k[1])
    assert [(t, i) for t, i, _ in r.matches] == by_id[:2]
    assert (r.total, r.has_next) == (3, True)


def test_lenient_ignores_unknown_but_still_filters(db: Db) -> None:
    an = db.add(patient("Nguyễn", "An"))
    hoa = db.add(patient("Trần", "Hoa"))
    req = parse_search("Patient", pairs("name=nguyen&foo=1&_text=x&_list=l1"), strict=False)
    assert req.ignored == ["foo", "_text", "_list"]
    assert len(req.criteria) == 1
    assert db.ids("Patient", "name=nguyen&foo=1&_content=x", strict=False) == {an}
    assert db.ids(None, "name=nguyen", strict=False) == {an, hoa}  # ignored: no filter


# ------------------------------------------------------------------------------ parse only


def test_parse_defaults_and_result_parameters() -> None:
    req = parse_search("Patient", [], strict=True)
    assert (req.count, req.offset, req.total, req.summary, req.sort) == (
        20,
        0,
        "accurate",
        None,
        [],
    )
    req = parse_search(
        "Patient",
        pairs(
            "_count=5000&_offset=40&_summary=data&_elements=name,birthDate,deceased"
            "&_sort=family,-birthdate&_format=json"
        ),
        strict=True,
    )
    assert (req.count, req.offset, req.summary) == (1000, 40, "data")
    assert req.elements == ["name", "birthDate", "deceased"]
    assert req.sort == [("family", False), ("birthdate", True)]
    assert req.ignored == []
    req = parse_search(
        "Observation",
        pairs(
            "_include:iterate=Patient:general-practitioner"
            "&_revinclude=Provenance:target:Observation"
        ),
        strict=True,
    )
    assert [(i.source_type, i.param, i.target_type, i.iterate) for i in req.includes] == [
        ("Patient", "general-practitioner", None, True)
    ]
    assert [(i.source_type, i.param, i.target_type, i.iterate) for i in req.revincludes] == [
        ("Provenance", "target", "Observation", False)
    ]
    req = parse_search("Patient", pairs("_summary=count&_count=10"), strict=True)
    assert (req.count, req.total) == (0, "accurate")
    assert (
        parse_search("Patient", pairs("name=&gender=&family:missing="), strict=True).criteria == []
    )


def test_supported_params() -> None:
    listed = dict(supported_params("Patient"))
    assert listed["name"] == "string"
    assert listed["birthdate"] == "date"
    assert listed["general-practitioner"] == "reference"
    assert listed["_tag"] == "token"
    assert listed["_profile"] == "uri"
    for special in (
        "_id",
        "_lastUpdated",
        "_has",
        "_include",
        "_revinclude",
        "_sort",
        "_count",
        "_offset",
        "_total",
        "_summary",
        "_elements",
        "_security",
    ):
        assert special in listed
    assert "code-value-quantity" not in dict(supported_params("Observation"))  # composite
    assert dict(supported_params("Observation"))["value-quantity"] == "quantity"


@pytest.mark.parametrize(
    ("rtype", "query", "mentions"),
    [
        # values of the wrong form
        ("Patient", "birthdate=abc", ("birthdate", "abc")),
        ("Patient", "birthdate=nguyen", ("birthdate", "nguyen")),
        ("Patient", "birthdate=xx2020", ("birthdate", "xx2020")),
        ("Patient", "birthdate=2020-13-01", ("birthdate", "2020-13-01")),
        ("Patient", "birthdate=ge", ("birthdate",)),
        ("Patient", "birthdate=1990,abc", ("birthdate", "abc")),
        ("Patient", "_lastUpdated=hôm qua", ("_lastUpdated", "hôm qua")),
        ("Patient", "_lastUpdated=zz2024", ("_lastUpdated", "zz2024")),
        ("Observation", "value-quantity=x", ("value-quantity", "x")),
        ("Observation", "value-quantity=5.4|mg", ("value-quantity", "5.4|mg")),
        ("Observation", "value-quantity=zz5.4", ("value-quantity", "zz5.4")),
        ("RiskAssessment", "probability=abc", ("probability", "abc")),
        ("RiskAssessment", "probability=gt", ("probability",)),
        ("RiskAssessment", "probability=1e", ("probability", "1e")),
        ("RiskAssessment", "probability=NaN", ("probability", "NaN")),
        ("Patient", "identifier=|", ("identifier", "|")),
        ("Patient", "gender:missing=yes", ("gender", "yes")),
        ("Observation", "subject=Foo/1", ("subject", "Foo/1")),
        ("Observation", "subject=Medication/1", ("subject", "Medication/1")),
        ("Observation", "subject=a b", ("subject", "a b")),
        ("Observation", "subject:Patient=Location/1", ("subject", "Location/1")),
        # modifiers not valid for the type
        ("Patient", "birthdate:exact=1990", ("birthdate:exact",)),
        ("Patient", "name:text=an", ("name:text",)),
        ("Patient", "name:below=an", ("name:below",)),
        ("Patient", "gender:in=http://hl7.org/fhir/ValueSet/administrative-gender", ("gender:in",)),
        ("Patient", "gender:exact=male", ("gender:exact",)),
        ("Observation", "subject:Foo=1", ("subject:Foo",)),
        ("Observation", "subject:identifier=x", ("subject:identifier",)),
        ("ValueSet", "url:exact=x", ("url:exact",)),
        ("Patient", "_id:not=1", ("_id:not",)),
        ("Patient", "_lastUpdated:missing=true", ("_lastUpdated:missing",)),
        ("Patient", "name.family=x", ("name.family",)),
        ("Observation", "subject:missing.name=x", ("subject:missing.name",)),
        # _has
        ("Patient", "_has:Observation:patient=x", ("_has:Observation:patient",)),
        ("Patient", "_has:Foo:patient:code=x", ("_has:Foo:patient:code",)),
        ("Patient", "_has:Observation:encounter:code=x", ("_has:Observation:encounter:code",)),
        ("Patient", "_has:Observation:patient:value-quantity=x", ("value-quantity", "x")),
        # result parameters
        ("Patient", "_count=-1", ("_count", "-1")),
        ("Patient", "_count=abc", ("_count", "abc")),
        ("Patient", "_offset=-3", ("_offset", "-3")),
        ("Patient", "_total=maybe", ("_total", "maybe")),
        ("Patient", "_summary=yes", ("_summary", "yes")),
        ("Patient", "_elements=nope", ("_elements", "nope")),
        ("Patient", "_elements=name;x", ("_elements",)),
        ("Patient", "_sort=nope", ("_sort", "nope")),
        ("Patient", "_sort=general-practitioner", ("_sort", "general-practitioner")),
        ("Patient", "_sort=", ("_sort",)),
        ("Patient", "_count:exact=1", ("_count:exact",)),
        ("Observation", "_include=Observation", ("_include", "Observation")),
        ("Observation", "_include=Observation:code", ("_include", "Observation:code")),
        ("Observation", "_include=Observation:subject:Medication", ("_include",)),
        ("Observation", "_include=Foo:subject", ("_include", "Foo:subject")),
        ("Observation", "_include:deep=Observation:subject", ("_include:deep",)),
        ("Patient", "_revinclude=Observation:nope", ("_revinclude", "Observation:nope")),
        (None, "_type=Foo", ("_type", "Foo")),
        ("Foo", "name=x", ("Foo",)),
    ],
)
def test_bad_values_are_400_in_both_modes(
    rtype: str | None, query: str, mentions: tuple[str, ...]
) -> None:
    bad(rtype, query, *mentions, strict=True)
    bad(rtype, query, *mentions, strict=False)


@pytest.mark.parametrize(
    ("rtype", "query", "name"),
    [
        ("Patient", "foo=1", "foo"),
        ("Patient", "nguyen=1", "nguyen"),
        ("Observation", "code-value-quantity=8867-4$gt100", "code-value-quantity"),  # composite
        ("Patient", "_text=an", "_text"),
        ("Patient", "_content=an", "_content"),
        ("Patient", "_list=l1", "_list"),
        ("Patient", "_type=Patient", "_type"),  # system-level only
        ("Observation", "subject.nope=x", "subject.nope"),
        ("Observation", "subject:Patient.code=x", "subject:Patient.code"),
        ("Patient", "_has:Observation:patient:nope=x", "_has:Observation:patient:nope"),
        (None, "name=nguyen", "name"),
        (None, "_has:Observation:patient:code=x", "_has:Observation:patient:code"),
        ("Patient", ":exact=x", ":exact"),
    ],
)
def test_unknown_parameters_strict_400_lenient_ignored(
    rtype: str | None, query: str, name: str
) -> None:
    bad(rtype, query, name, strict=True)
    req = parse_search(rtype, pairs(query), strict=False)
    assert req.ignored == [name]
    assert req.criteria == []


def test_public_api_is_pinned() -> None:
    import benhan.store.search as search

    assert sorted(search.__all__) == [
        "SearchRequest",
        "SearchResult",
        "parse_search",
        "run_search",
        "supported_params",
    ]
