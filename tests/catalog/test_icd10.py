"""ICD-10 (QĐ 4469) shipped in the package: size, spot checks, lookup and search."""

from __future__ import annotations

from benhan.catalog.icd10 import icd10, icd10_ranges, is_valid_code, lookup, search


def test_row_count_and_levels() -> None:
    codes = icd10()
    assert len(codes) == 12137
    assert sum(1 for c in codes.values() if c.level == 3) == 2050
    assert {r.kind for r in icd10_ranges()} == {"chapter", "block"}


def test_spot_checks_from_catalogue_readme() -> None:
    a00 = lookup("A00")
    assert a00 is not None and (a00.name_vi, a00.name_en) == ("Bệnh tả", "Cholera")
    assert (a00.chapter, a00.block) == ("I", "A00-A09")
    assert lookup("A01.0") is not None and lookup("A01.0").name_vi == "Thương hàn"  # type: ignore[union-attr]
    assert lookup("B08.4") is not None
    assert lookup("J10") is not None and lookup("J10").name_en.startswith("Influenza")  # type: ignore[union-attr]
    assert lookup("A90") is not None and lookup("A90").block == "A92-A99"  # type: ignore[union-attr]
    assert lookup("A91") is None  # QĐ 4469 follows WHO 2019: dengue haemorrhagic fever is A97


def test_lookup_accepts_his_spellings() -> None:
    assert lookup("a000") == lookup("A00.0")
    assert lookup("D63*") == lookup("D63")


def test_is_valid_code() -> None:
    assert is_valid_code("J18.9") and is_valid_code("M14.00")
    assert not is_valid_code("J189")  # XML 130 wants the dotted form
    assert not is_valid_code("A91")  # well formed, not in the list
    assert not is_valid_code("j18.9")


def test_search_is_accent_insensitive() -> None:
    dengue = [c.code for c in search("sot xuat huyet", limit=50)]
    assert "A97" in dengue and "A97.2" in dengue
    assert "A90" in [c.code for c in search("sốt dengue")]
    assert [c.code for c in search("cholera", limit=1)] == ["A00"]
    assert [c.code for c in search("a010")] == ["A01.0"]
    assert search("   ") == []
