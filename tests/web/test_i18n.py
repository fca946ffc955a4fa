"""Every string of the pages is in the French and English catalogs, with its placeholders;
the API's problem messages come back translated."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from panel.web.catalog import extract
from panel.web.i18n import LANGUAGES, LOCALES_DIR, Translator, negotiate

PLACEHOLDER = re.compile(r"%\([a-z_]+\)s")
ROOT = Path(__file__).resolve().parents[2]
# A call that marks a literal message: _("..."), web._("..."), gettext("...").
TRANSLATES = re.compile(r"""(?:(?<![\w.])_|\bweb\._|\bgettext)\(\s*["']""")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_is_complete_and_keeps_placeholders(lang: str) -> None:
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    for message in extract():
        if not message.id:
            continue
        found = catalog.get(message.id)
        assert found is not None, f"{lang}: missing {message.id!r} (python -m panel.web.catalog)"
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = found.string if isinstance(found.string, tuple) else (found.string,)
        assert all(strings), f"{lang}: untranslated {message.id!r}"
        wanted = set(PLACEHOLDER.findall(ids[0]))
        for s in strings:
            assert set(PLACEHOLDER.findall(s)) == wanted, (lang, message.id, s)


def test_every_module_that_translates_is_extracted() -> None:
    """Pages live in their domain folders: the catalog must scan every one of them."""
    sources = {where for message in extract() for where, _line in message.locations}
    translating = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "panel").rglob("*.py")
        if TRANSLATES.search(path.read_text())
    }
    assert "panel/sites/pages.py" in translating  # the pattern does find messages
    assert translating - sources == set(), "python -m panel.web.catalog does not scan these"


def test_language_negotiation() -> None:
    assert negotiate("fr", "en") == "fr"
    assert negotiate(None, "fr-CA,fr;q=0.9,en;q=0.5") == "fr"
    assert negotiate(None, "de, en;q=0.5") == "en"
    assert negotiate(None, "de") == "en"
    assert negotiate("xx", None) == "en"


def test_dates_numbers_and_problems_follow_the_locale() -> None:
    fr, en = Translator("fr"), Translator("en")
    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    assert fr.datetime(when).startswith("4 mars 2026")
    assert en.datetime(when).startswith("Mar 4, 2026")
    assert fr.number(12345) == "12\u202f345" and en.number(12345) == "12,345"
    msg = ("The account's 'sites' quota is reached (3 of 3); delete something or ask the "
           "provider's staff to raise the quota.")
    assert fr.problem(msg).startswith("Le quota « sites » du compte est atteint (3 sur 3)")
    assert en.problem(msg) == msg
    assert fr.problem("an unknown message") == "an unknown message"
