"""The merged Bắc Ninh as the vietnamadminunits data give it."""

from __future__ import annotations

import dataclasses
from collections import Counter

from benhan.fhir.systems import COMMUNE_CODE_EXT
from benhan.synth.places import Commune, communes, predecessors, vn_address


def test_ninety_nine_units_thirty_three_wards() -> None:
    units = communes()
    assert len(units) == 99  # specs/vietnam.md §4: 66 communes + 33 wards
    assert Counter(c.kind for c in units) == {"commune": 66, "ward": 33}
    assert all(c.name.startswith("Phường " if c.kind == "ward" else "Xã ") for c in units)


def test_codes_are_five_digits_and_unique() -> None:
    codes = [c.code for c in communes()]
    assert all(len(c) == 5 and c.isdigit() for c in codes)
    assert len(set(codes)) == len(codes)
    assert codes == sorted(codes)


def test_known_unit_and_legacy_provinces() -> None:
    by_code = {c.code: c for c in communes()}
    # specs §4: Phường Bắc Giang = 07210, the former Bắc Giang city centre.
    assert by_code["07210"].name == "Phường Bắc Giang"
    assert by_code["07210"].legacy_province == "24"
    split = Counter(c.legacy_province for c in communes())
    assert split == {"24": 58, "27": 41}  # from 192 old Bắc Giang and 121 old Bắc Ninh units


def test_coordinates_are_in_bac_ninh_and_weights_positive() -> None:
    for c in communes():
        assert 20.9 < c.lat < 21.7 and 105.8 < c.lon < 107.1, c
        assert c.population_weight > 0
    wards = [c.population_weight for c in communes() if c.kind == "ward"]
    rural = [c.population_weight for c in communes() if c.kind == "commune"]
    assert sum(wards) / len(wards) > sum(rural) / len(rural)


def test_returns_a_fresh_list() -> None:
    first = communes()
    first.clear()
    assert len(communes()) == 99
    assert isinstance(communes()[0], Commune)


def test_every_unit_has_the_units_it_was_formed_from() -> None:
    olds = [u for c in communes() for u in predecessors(c)]
    assert len(olds) == 313 == len({u.code for u in olds})  # 192 + 121 old units, each once
    assert all(predecessors(c) for c in communes())
    assert {u.province for u in olds} == {"Tỉnh Bắc Giang", "Tỉnh Bắc Ninh"}
    by_code = {c.code: c for c in communes()}
    # Phường Bắc Giang (07210) was formed from the old city's Thọ Xương ward, among others.
    tho_xuong = next(u for u in predecessors(by_code["07210"]) if u.code == "07201")
    assert (tho_xuong.name, tho_xuong.district) == ("Phường Thọ Xương", "Thành phố Bắc Giang")


def test_an_old_unit_is_addressed_with_its_district() -> None:
    tho_xuong = next(u for u in predecessors(communes()[0]) if u.code == "07201")
    address = vn_address(tho_xuong, "home", "Số 5")
    assert address["district"] == "Thành phố Bắc Giang" and address["state"] == "Tỉnh Bắc Giang"
    assert address["extension"] == [{"url": COMMUNE_CODE_EXT, "valueCode": "07201"}]
    assert address["text"] == "Số 5, Phường Thọ Xương, Thành phố Bắc Giang, Tỉnh Bắc Giang"
    named_only = vn_address(dataclasses.replace(tho_xuong, code=""), "home")
    assert "extension" not in named_only and named_only["city"] == "Phường Thọ Xương"


def test_a_2025_unit_is_addressed_without_a_district() -> None:
    address = vn_address(communes()[0], "home")
    assert "district" not in address and address["state"] == "Bắc Ninh"
