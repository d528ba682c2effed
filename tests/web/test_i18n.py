"""Choosing the language, the catalogs kept in step with the templates, and numbers per locale."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from benhan.web import i18n

WEB = Path(i18n.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize(
    ("cookie", "accept", "lang"),
    [
        (None, None, "vi"),
        ("en", None, "en"),
        ("vi", "en", "vi"),
        ("xx", "en-GB", "en"),
        (None, "EN-us", "en"),
        (None, "de, en;q=0.1", "en"),
        (None, "en;q=0.2, vi;q=0.8", "vi"),
        (None, "vi;q=0, en;q=0.1", "en"),  # q=0 means "not this one"
        (None, "en;q=0", "vi"),
        (None, "en;q=abc", "vi"),  # a broken q is not acceptable
        (None, "*", "vi"),
        (None, ";;,,", "vi"),
    ],
)
def test_negotiate(cookie: str | None, accept: str | None, lang: str) -> None:
    assert i18n.negotiate(cookie, accept) == lang


@pytest.mark.parametrize(("lang", "text"), [("vi", "12.345"), ("en", "12,345")])
def test_number(lang: i18n.Lang, text: str) -> None:
    assert i18n.number(lang, 12345) == text


def test_clock_is_vietnam_time() -> None:
    # 23:30 UTC on 28 Feb is 06:30 on 1 Mar in Vietnam.
    moment = datetime(2025, 2, 28, 23, 30, 5, tzinfo=UTC)
    assert i18n.clock("vi", moment) == "06:30:05"
    assert i18n.clock("en", moment.astimezone(timezone(timedelta(hours=-5)))).startswith("6:30:05")


def test_gettext_translates_and_fills_placeholders() -> None:
    assert i18n.gettext("en", "Bệnh án điện tử") == "Electronic medical record"
    assert i18n.gettext("vi", "Bệnh án điện tử") == "Bệnh án điện tử"
    assert i18n.gettext("en", "Cập nhật lúc %(time)s", time="6:30") == "Updated at 6:30"
    assert i18n.gettext("en", "a string no catalog has") == "a string no catalog has"


@pytest.mark.parametrize(
    ("lang", "n", "text"),
    [("en", 1, "1 type"), ("en", 2, "2 types"), ("vi", 1, "1 loại"), ("vi", 2, "2 loại")],
)
def test_ngettext(lang: i18n.Lang, n: int, text: str) -> None:
    assert i18n.ngettext(lang, "%(num)s loại", "%(num)s loại", n, num=n) == text


def extracted() -> set[str]:
    """The msgids in the code and templates, found as `pybabel extract -F babel.cfg` finds them."""
    with (WEB / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    found = extract_from_dir(WEB, method_map, options_map)
    return {msgid if isinstance(msgid, str) else msgid[0] for _, _, msgid, _, _ in found}


def catalog(lang: str) -> Catalog:
    with (WEB / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=lang)


def msgids(cat: Catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in cat if m.id}


def test_extraction_finds_the_page_strings() -> None:
    found = extracted()
    assert {"Bệnh án điện tử", "Làm mới", "Người bệnh", "%(num)s loại"} <= found


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_catalog_matches_the_sources(lang: str) -> None:
    """A string added to a template and not to the catalogs fails here (see i18n's docstring)."""
    assert msgids(catalog(lang)) == extracted()


def test_every_english_string_is_translated_with_its_placeholders() -> None:
    for m in catalog("en"):
        if not m.id:
            continue
        ids = [m.id] if isinstance(m.id, str) else list(m.id)
        strings = [m.string] if isinstance(m.string, str) else list(m.string or ())
        assert not m.fuzzy, m.id
        assert all(strings), f"untranslated: {m.id!r}"
        allowed = {name for i in ids for name in PLACEHOLDER.findall(i)}
        used = [set(PLACEHOLDER.findall(s)) for s in strings]
        # An unknown name would raise KeyError on the page; a singular may leave the number out.
        assert all(u <= allowed for u in used), m.id
        assert used[-1] == allowed, m.id
