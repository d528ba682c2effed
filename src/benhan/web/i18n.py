"""Vietnamese and English for the pages: choosing the language, gettext catalogs, numbers.

Source strings are Vietnamese; `locale/en/LC_MESSAGES/messages.po` translates them. The .po files
are compiled in memory on first use, so no .mo file is committed and nothing needs building.
To refresh the catalogs after changing a template or a marked string (run in src/benhan/web):

    pybabel extract -F babel.cfg --sort-output --no-location -o /tmp/benhan-messages.pot .
    pybabel update -i /tmp/benhan-messages.pot -d locale -D messages --no-fuzzy-matching

then translate the new `msgstr` entries of the en catalog (tests/web/test_i18n.py fails until
every string has an English translation).
"""

from __future__ import annotations

import functools
import io
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias

from babel.dates import format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from benhan.fhir.primitives import VIETNAM

Lang: TypeAlias = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")
DEFAULT: Lang = "vi"
COOKIE = "lang"
LOCALE_DIR = Path(__file__).parent / "locale"


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated later, where the language is known."""
    return message


def as_lang(value: str | None) -> Lang | None:
    """`value` if it is a language the pages speak, else None."""
    return value if value in LANGS else None


def negotiate(cookie: str | None, accept_language: str | None) -> Lang:
    """The cookie set by the language switch wins, then Accept-Language, then Vietnamese."""
    return as_lang(cookie) or _from_accept_language(accept_language or "") or DEFAULT


def _from_accept_language(header: str) -> Lang | None:
    """The supported language with the highest q in an RFC 9110 §12.5.4 Accept-Language header."""
    best: tuple[float, Lang] | None = None
    for item in header.split(","):
        tag, _, params = item.strip().partition(";")
        lang = as_lang(tag.strip().split("-")[0].lower())
        q = _quality(params)
        if lang and q > 0 and (best is None or q > best[0]):
            best = (q, lang)
    return best[1] if best else None


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


@functools.cache
def translations(lang: Lang) -> Translations:
    """The catalog of `lang`, compiled from its .po file once per process (read-only afterwards)."""
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=lang, domain="messages")
    mo = io.BytesIO()
    write_mo(mo, catalog)  # fuzzy entries are left out, as msgfmt does
    mo.seek(0)
    return Translations(fp=mo, domain="messages")


def gettext(lang: Lang, message: str, **values: Any) -> str:
    """Translate, then fill %(name)s placeholders (values are escaped later, by the template)."""
    text = translations(lang).gettext(message)
    return text % values if values else text


def ngettext(lang: Lang, singular: str, plural: str, n: int, **values: Any) -> str:
    text = translations(lang).ngettext(singular, plural, n)
    return text % values if values else text


def number(lang: Lang, value: int | float) -> str:
    """12.345 in Vietnamese, 12,345 in English (CLDR via Babel)."""
    return format_decimal(value, locale=lang)


def clock(lang: Lang, moment: datetime) -> str:
    """The time of day of `moment` in Vietnam (+07:00), as people in `lang` write it."""
    return format_time(moment, format="medium", tzinfo=VIETNAM, locale=lang)
