"""Languages: Babel catalogs (``panel/web/locales/<lang>/LC_MESSAGES/messages.po``), read and
compiled in memory at start-up (no build step, no committed .mo), locale negotiation, and the
date and number formats of each locale.

The API's problem details are English sentences built with f-strings; ``translate_problem``
maps the known shapes to catalog entries so a French page shows the same message in French.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel import Locale
from babel.core import negotiate_locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English is the source language)."""
    po = LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def negotiate(chosen: str | None, accept_language: str | None) -> str:
    """The user's choice first, then the browser's Accept-Language, then English."""
    if chosen in LANGUAGES:
        return chosen
    if accept_language:
        prefs = []
        for part in accept_language.split(","):
            tag, _, q = part.strip().partition(";q=")
            try:
                weight = float(q) if q else 1.0
            except ValueError:
                weight = 0.0
            if tag and weight > 0:
                prefs.append((weight, tag.strip().replace("-", "_")))
        ordered = [tag for _, tag in sorted(prefs, key=lambda p: -p[0])]
        found = negotiate_locale(ordered, list(LANGUAGES), sep="_")
        if found:
            return found.split("_")[0]
        for tag in ordered:  # "fr_CA" -> "fr"
            if tag.split("_")[0].lower() in LANGUAGES:
                return tag.split("_")[0].lower()
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    """One request's language: gettext and the locale's formats."""

    lang: str

    def gettext(self, message: str) -> str:
        return translations(self.lang).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return translations(self.lang).ngettext(singular, plural, n)

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.lang)

    def datetime(self, value: dt.datetime | None) -> str:
        if value is None:
            return "—"
        return format_datetime(value, format="medium", tzinfo=dt.UTC, locale=self.locale)

    def number(self, value: int | float | None) -> str:
        if value is None:
            return "∞"
        return format_decimal(value, locale=self.locale)

    def problem(self, message: str) -> str:
        return translate_problem(self, message)


def _(message: str) -> str:
    """Marks a message for extraction where it is translated later (at render time)."""
    return message


# The API's messages, in the shape the services build them; each group is kept as it came.
_PROBLEMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), m)
    for p, m in [
        (
            r"^'(?P<name>.+)' is not under one of this account's domains; add its domain first$",
            _("'%(name)s' is not under one of this account's domains; add its domain first"),
        ),
        (
            r"^Another site already answers to (?P<names>.+)\.$",
            _("Another site already answers to %(names)s."),
        ),
        (
            r"^The address (?P<address>.+) is already in use\.$",
            _("The address %(address)s is already in use."),
        ),
        (
            r"^The account's '(?P<quota>[a-z_]+)' quota is reached \((?P<used>\d+) of "
            r"(?P<limit>\d+)\); delete something or ask the provider's staff to raise the quota\.$",
            _(
                "The account's '%(quota)s' quota is reached (%(used)s of %(limit)s); delete "
                "something or ask the provider's staff to raise the quota."
            ),
        ),
        (
            r"^quota reached: (?P<used>\d+) of (?P<limit>\d+)$",
            _("quota reached: %(used)s of %(limit)s"),
        ),
        (
            r"^No (?P<role>[a-z]+) host is available; .*$",
            _("No %(role)s host is available; the provider's staff must add one."),
        ),
        (r"^must be at least 8 characters$", _("must be at least 8 characters")),
        (r"^does not match your current password$", _("does not match your current password")),
        (r"^must not repeat the site's own domain$", _("must not repeat the site's own domain")),
        (r"^contains the same name twice$", _("contains the same name twice")),
        (r"^Field required$", _("Field required")),
        (
            r"^The account is (?P<status>[a-z]+); nothing can be added until staff reactivate "
            r"it\.$",
            _("The account is %(status)s; nothing can be added until staff reactivate it."),
        ),
        (
            r"^Your role in this account is (?P<role>[a-z]+); this needs (?P<needed>[a-z]+)\. "
            r"Ask an owner of the account\.$",
            _("Your role in this account is %(role)s; this needs %(needed)s. Ask an owner of "
              "the account."),
        ),
        (
            r"^This token is read-only; use a token with an account scope\.$",
            _("You are viewing this account read-only."),
        ),
        (
            r"^This object is being deleted; it can no longer change\.$",
            _("This object is being deleted; it can no longer change."),
        ),
        (
            r"^An account with slug '(?P<slug>.+)' already exists; choose another slug\.$",
            _("An account with slug '%(slug)s' already exists; choose another slug."),
        ),
        (
            r"^A host named (?P<name>.+) already exists\.$",
            _("A host named %(name)s already exists."),
        ),
        (
            r"^A (?P<engine>[a-z]+) (?P<kind>database|user) named (?P<name>.+) already exists\.$",
            _("A %(engine)s %(kind)s named %(name)s already exists."),
        ),
        (
            r"^This user is already a member; change the role instead\.$",
            _("This user is already a member; change the role instead."),
        ),
        (
            r"^no user has this email; staff create users first$",
            _("no user has this email; staff create users first"),
        ),
        (
            r"^This is the account's last owner; make someone else owner first\.$",
            _("This is the account's last owner; make someone else owner first."),
        ),
        (
            r"^must be in the future$",
            _("must be in the future"),
        ),
        (
            r"^No such (?P<what>.+), or it is not yours to see\.$",
            _("No such object, or it is not yours to see."),
        ),
    ]
]


def translate_problem(tr: Translator, message: str) -> str:
    """The API's message in the page's language when its shape is known, else as it is."""
    for pattern, msgid in _PROBLEMS:
        m = pattern.match(message)
        if m:
            return tr.gettext(msgid) % m.groupdict()
    return message


# Words that reach templates as data (statuses, health, apply results, roles, kinds).
WORDS = (
    _("ok"), _("unknown"), _("unreachable"), _("applied"), _("noop"), _("running"),
    _("site"), _("mailbox"), _("alias"), _("list"), _("database"), _("dbuser"),
)
