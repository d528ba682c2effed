"""The merged Bắc Ninh as the vietnamadminunits data give it."""

from __future__ import annotations

from collections import Counter

from benhan.synth.places import Commune, communes


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
