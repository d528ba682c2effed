"""The facility registry: the DoH report's 56 on EMR, a station per commune, valid FHIR."""

from __future__ import annotations

import dataclasses
from collections import Counter
from functools import cache

import orjson
import pytest

from benhan.fhir import systems
from benhan.fhir.validation import check
from benhan.synth.facilities import (
    Facility,
    build_facilities,
    referral_targets,
    station_for,
    to_fhir,
)
from benhan.synth.places import communes


@cache
def _built(seed: int, clinics: int = 20) -> tuple[Facility, ...]:
    return tuple(build_facilities(seed, communes(), private_clinics=clinics))


def _json(facilities: tuple[Facility, ...]) -> bytes:
    return orjson.dumps([dataclasses.asdict(f) for f in facilities])


def test_counts_by_kind_match_the_report() -> None:
    kinds = Counter(f.kind for f in _built(1, 37))
    public_hospitals = kinds["general-hospital"] + kinds["specialty-hospital"]
    assert public_hospitals == 15
    assert kinds["general-hospital"] >= 2  # the two former provinces' provincial hospitals
    assert (kinds["medical-centre"], kinds["private-hospital"], kinds["cdc"]) == (16, 23, 2)
    assert (kinds["commune-station"], kinds["private-clinic"]) == (99, 37)


def test_on_emr_is_the_56_and_54_of_them_have_beds() -> None:
    on_emr = [f for f in _built(1) if f.on_emr]
    assert len(on_emr) == 56  # issue 9: 56 on EMR …
    assert sum(f.beds > 0 for f in on_emr) == 54  # … against the 54 bedded facilities' target
    assert {f.kind for f in _built(1) if not f.on_emr} == {"commune-station", "private-clinic"}


def test_ownership_and_level_follow_the_kind() -> None:
    for f in _built(1):
        private = f.kind in ("private-hospital", "private-clinic")
        assert f.ownership == ("private" if private else "public"), f
    levels = {f.kind: f.level for f in _built(1)}
    assert levels["general-hospital"] == levels["specialty-hospital"] == "province"
    assert levels["medical-centre"] == "regional"
    assert levels["commune-station"] == levels["private-clinic"] == "commune"


def test_beds_zero_exactly_for_facilities_without_beds() -> None:
    ranges = {
        "general-hospital": (100, 1200),
        "specialty-hospital": (100, 1200),
        "medical-centre": (50, 300),
        "private-hospital": (20, 200),
    }
    for seed in range(5):
        for f in _built(seed):
            lo, hi = ranges.get(f.kind, (0, 0))  # cdc, station, clinic: no beds
            assert lo <= f.beds <= hi, f


def test_codes_valid_unique_and_prefixed_by_the_old_province() -> None:
    facilities = _built(3, 300)
    codes = [f.code for f in facilities]
    assert len(set(codes)) == len(codes)
    for f in facilities:
        assert systems.check_ma_cskcb(f.code) == [], f.code
        assert f.code[:2] == f.commune.legacy_province  # specs §3.3: old 24/27 kept
        assert (f.org_id, f.location_id) == (f"org-{f.code}", f"loc-{f.code}")


def test_hospitals_get_the_first_sequence_numbers() -> None:
    by_name = {f.name: f.code for f in _built(1)}
    assert by_name["Bệnh viện Đa khoa tỉnh Bắc Ninh"] == "27001"
    assert by_name["Bệnh viện Đa khoa tỉnh Bắc Giang"] == "24001"
    for prefix in ("24", "27"):  # sequences are dense from 001 per old province
        seqs = sorted(int(f.code[2:]) for f in _built(1) if f.code[:2] == prefix)
        assert seqs == list(range(1, len(seqs) + 1))


def test_same_seed_same_list_other_seed_other_private_facilities() -> None:
    again = tuple(build_facilities(1, communes(), private_clinics=20))
    assert _json(again) == _json(_built(1))
    assert _json(_built(2)) != _json(_built(1))
    public = [f.name for f in _built(1) if f.kind != "private-hospital"][:40]
    assert public == [f.name for f in _built(2) if f.kind != "private-hospital"][:40]


def test_clinic_count_changes_nothing_before_the_clinics() -> None:
    few = [f for f in _built(4, 5) if f.kind != "private-clinic"]
    many = [f for f in _built(4, 200) if f.kind != "private-clinic"]
    assert few == many


def test_names_are_unique_and_vietnamese() -> None:
    facilities = _built(5, 500)
    names = [f.name for f in facilities]
    assert len(set(names)) == len(names)
    prefixes = {
        "medical-centre": "Trung tâm Y tế ",
        "private-clinic": "Phòng khám Đa khoa ",
        "cdc": "Trung tâm Kiểm soát bệnh tật tỉnh ",
        "private-hospital": "Bệnh viện ",
        "general-hospital": "Bệnh viện Đa khoa ",
    }
    for f in facilities:
        assert f.name.startswith(prefixes.get(f.kind, "")), f


def test_medical_centres_stand_in_their_former_district_town() -> None:
    for f in _built(1):
        if f.kind == "medical-centre":
            town = f.name.removeprefix("Trung tâm Y tế ")
            assert f.commune.name.split(" ", 1)[1] == town, f


def test_private_hospitals_are_mostly_in_wards() -> None:
    private = [f for s in range(10) for f in _built(s) if f.kind == "private-hospital"]
    in_wards = sum(f.commune.kind == "ward" for f in private) / len(private)
    assert in_wards > 0.6  # against 33 of 99 units being wards


def test_every_resource_validates_and_the_location_points_at_its_organization() -> None:
    for f in _built(6, 50):
        org, loc = to_fhir(f)
        assert check(org) == [], (f.code, check(org))
        assert check(loc) == [], (f.code, check(loc))
        assert (org["resourceType"], org["id"]) == ("Organization", f.org_id)
        assert (loc["resourceType"], loc["id"]) == ("Location", f.location_id)
        assert loc["managingOrganization"] == {"reference": f"Organization/{f.org_id}"}
        assert org["identifier"][0] == {
            "use": "official",
            "system": systems.MA_CSKCB,
            "value": f.code,
        }
        assert abs(loc["position"]["latitude"] - f.commune.lat) < 0.02
        assert abs(loc["position"]["longitude"] - f.commune.lon) < 0.02


def test_fhir_carries_the_registry_fields() -> None:
    f = next(f for f in _built(1) if f.kind == "commune-station")
    org, loc = to_fhir(f)
    ext = {e.pop("url").rsplit("/", 1)[1]: e.popitem()[1] for e in org["extension"]}
    assert ext == {
        "facility-beds": 0,
        "facility-ownership": "public",
        "facility-level": "commune",
        "facility-on-emr": False,
    }
    assert org["address"][0]["extension"] == [
        {"url": systems.COMMUNE_CODE_EXT, "valueCode": f.commune.code}
    ]
    kinds = [c["code"] for t in loc["type"] for c in t["coding"]]
    assert "commune-station" in kinds


def test_positions_differ_within_a_commune() -> None:
    points = [tuple(to_fhir(f)[1]["position"].values()) for f in _built(7, 300)]
    assert len(set(points)) > 0.95 * len(points)


def test_station_for_every_commune() -> None:
    facilities = _built(1)
    for c in communes():
        station = station_for(facilities, c.code)
        assert station.kind == "commune-station" and station.commune == c
        word = "phường" if c.kind == "ward" else "xã"
        assert station.name == f"Trạm Y tế {word} {c.name.split(' ', 1)[1]}"
    with pytest.raises(KeyError):
        station_for(facilities, "00000")


def test_referral_targets_are_a_centre_and_the_provincial_hospital() -> None:
    facilities = _built(1)
    provincial = {
        "24": "Bệnh viện Đa khoa tỉnh Bắc Giang",
        "27": "Bệnh viện Đa khoa tỉnh Bắc Ninh",
    }
    used = set()
    for c in communes():
        centre, hospital = referral_targets(facilities, c)
        assert centre.kind == "medical-centre" and hospital.kind == "general-hospital"
        assert centre.commune.legacy_province == c.legacy_province
        assert hospital.name == provincial[c.legacy_province]
        used.add(centre.code)
    assert len(used) == 16  # every centre serves at least its own town
    town = next(c for c in communes() if c.name == "Phường Từ Sơn")
    assert referral_targets(facilities, town)[0].name == "Trung tâm Y tế Từ Sơn"


def test_a_subset_of_communes_falls_back_deterministically() -> None:
    old_bac_giang = [c for c in communes() if c.legacy_province == "24"]
    facilities = build_facilities(1, old_bac_giang, private_clinics=5)
    assert sum(f.on_emr for f in facilities) == 56
    assert all(f.code[:2] == "24" for f in facilities)
    assert len({f.code for f in facilities}) == len(facilities)
    assert _json(tuple(facilities)) == _json(tuple(build_facilities(1, old_bac_giang, 5)))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one commune"):
        build_facilities(1, [])
    one = [communes()[0]]
    with pytest.raises(ValueError, match="exhausted"):
        build_facilities(1, one, private_clinics=1000)  # 999 codes per old province
    with pytest.raises(ValueError, match="medical centres"):
        referral_targets([], communes()[0])
