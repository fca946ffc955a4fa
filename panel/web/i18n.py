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
from babel.units import format_unit

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
    compiled = gettext.GNUTranslations(buf)
    compiled.add_fallback(_PluginMessages(lang))
    return compiled


class _PluginMessages(gettext.NullTranslations):
    """What installed plugins translate themselves (``Provisioner.messages``): the titles
    and field texts of their object kinds, which the panel's catalog cannot know."""

    def __init__(self, lang: str) -> None:
        super().__init__()
        from provisioners.registry import installed

        self._messages: dict[str, str] = {}
        for plugin in installed().plugins:
            self._messages.update(plugin.messages.get(lang, {}))

    def gettext(self, message: str) -> str:
        return self._messages.get(message, message)


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

    def size(self, value: int | None) -> str:
        """Bytes in the largest binary unit under 1,024, in the locale's words (1,9 Mo)."""
        if value is None:
            return "—"
        amount, unit = float(value) / 1024, "kilobyte"
        for bigger in ("megabyte", "gigabyte", "terabyte"):
            if amount < 1024:
                break
            amount, unit = amount / 1024, bigger
        return format_unit(
            amount, f"digital-{unit}", length="short", format="#,##0.#", locale=self.locale
        )

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
            _(
                "Your role in this account is %(role)s; this needs %(needed)s. Ask an owner of "
                "the account."
            ),
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


# The checks of panel.core.validation (names, domains, addresses, passwords, databases,
# hosts), the services' other refusals shown in forms, and pydantic's common messages.
_CHECKS: list[tuple[str, str]] = [
    # -- panel.core.validation ---------------------------------------------------------------
    (
        r"^contains a control or invisible character \(U\+(?P<code>[0-9A-F]+)\); remove it$",
        _("contains a control or invisible character (U+%(code)s); remove it"),
    ),
    (
        r"^must be 2-31 characters: a lowercase letter, then lowercase letters, digits or '-'$",
        _("must be 2-31 characters: a lowercase letter, then lowercase letters, digits or '-'"),
    ),
    (r"^must not end with '-' or contain '--'$", _("must not end with '-' or contain '--'")),
    (
        r"^'(?P<value>.+)' is reserved for the system; choose another$",
        _("'%(value)s' is reserved for the system; choose another"),
    ),
    (
        r"^'(?P<value>.+)' is reserved for the system; choose another name$",
        _("'%(value)s' is reserved for the system; choose another name"),
    ),
    (
        r"^must be 1-32 characters: lowercase letters, digits, '_' or '-'$",
        _("must be 1-32 characters: lowercase letters, digits, '_' or '-'"),
    ),
    (
        r"^label '(?P<label>.*)' mixes scripts \((?P<scripts>.+)\); such names imitate other "
        r"names and are refused$",
        _(
            "label '%(label)s' mixes scripts (%(scripts)s); such names imitate other names and "
            "are refused"
        ),
    ),
    (
        r"^label '(?P<label>.*)' imitates a Latin name and is refused$",
        _("label '%(label)s' imitates a Latin name and is refused"),
    ),
    (r"^is empty$", _("is empty")),
    (r"^must not contain spaces$", _("must not contain spaces")),
    (
        r"^is not a valid internationalised domain name \((?P<reason>.*)\)$",
        _("is not a valid internationalised domain name (%(reason)s)"),
    ),
    (r"^is longer than (?P<n>\d+) characters$", _("is longer than %(n)s characters")),
    (
        r"^must have at least two labels, like example\.org$",
        _("must have at least two labels, like example.org"),
    ),
    (
        r"^label '(?P<label>.*)' must be 1-63 letters, digits or '-', not starting or ending "
        r"with '-'$",
        _("label '%(label)s' must be 1-63 letters, digits or '-', not starting or ending with '-'"),
    ),
    (
        r"^label '(?P<label>.*)' is not valid punycode$",
        _("label '%(label)s' is not valid punycode"),
    ),
    (
        r"^must end with a real top-level domain, not a number$",
        _("must end with a real top-level domain, not a number"),
    ),
    (
        r"^must be a domain name, not an IP address$",
        _("must be a domain name, not an IP address"),
    ),
    (
        r"^must be one address of the form name@domain$",
        _("must be one address of the form name@domain"),
    ),
    (
        r"^local part '(?P<local>.*)' must be 1-64 characters of letters, digits, '\.', '_', "
        r"'-', starting and ending with a letter or digit$",
        _(
            "local part '%(local)s' must be 1-64 characters of letters, digits, '.', '_', '-', "
            "starting and ending with a letter or digit"
        ),
    ),
    (
        r"^local part '(?P<local>.*)' must be 1-64 characters of letters, digits, '\.', '_', "
        r"'-', '\+', '=', starting and ending with a letter or digit$",
        _(
            "local part '%(local)s' must be 1-64 characters of letters, digits, '.', '_', '-', "
            "'+', '=', starting and ending with a letter or digit"
        ),
    ),
    (
        r"^'(?P<local>.+)' ends with a suffix reserved for mailing lists$",
        _("'%(local)s' ends with a suffix reserved for mailing lists"),
    ),
    (
        r"^database names of this account must start with '(?P<prefix>.+)'$",
        _("database names of this account must start with '%(prefix)s'"),
    ),
    (
        r"^user names of this account must start with '(?P<prefix>.+)'$",
        _("user names of this account must start with '%(prefix)s'"),
    ),
    (
        r"^after '(?P<prefix>.+)' comes 1-32 lowercase letters or digits \(no '_', '%' or "
        r"'-'\)$",
        _("after '%(prefix)s' comes 1-32 lowercase letters or digits (no '_', '%%' or '-')"),
    ),
    (
        r"^'(?P<value>.+)' is reserved; choose another$",
        _("'%(value)s' is reserved; choose another"),
    ),
    (
        r"^must be 1-63 characters: a lowercase letter, then lowercase letters, digits or '_'$",
        _("must be 1-63 characters: a lowercase letter, then lowercase letters, digits or '_'"),
    ),
    (
        r"^must be a relative path of letters, digits, '\.', '_', '-' separated by '/', each "
        r"part starting with a letter, digit or '_'$",
        _(
            "must be a relative path of letters, digits, '.', '_', '-' separated by '/', each "
            "part starting with a letter, digit or '_'"
        ),
    ),
    (
        r"^must be a PHP version like '8\.2', or null for a static site$",
        _("must be a PHP version like '8.2', or empty for a static site"),
    ),
    (r"^must be at least (?P<n>\d+) characters$", _("must be at least %(n)s characters")),
    (r"^must be at most (?P<n>\d+) characters$", _("must be at most %(n)s characters")),
    (
        r"^must be 1-63 lowercase letters, digits or '-'$",
        _("must be 1-63 lowercase letters, digits or '-'"),
    ),
    (r"^must be an IP address or a DNS name$", _("must be an IP address or a DNS name")),
    (
        r"^must be the host's public key as in /etc/ssh/ssh_host_ed25519_key\.pub "
        r"\(types: (?P<types>.+)\)$",
        _(
            "must be the host's public key as in /etc/ssh/ssh_host_ed25519_key.pub "
            "(types: %(types)s)"
        ),
    ),
    (r"^key data is not valid base64$", _("key data is not valid base64")),
    (
        r"^key data does not match its declared type$",
        _("key data does not match its declared type"),
    ),
    (
        r'^must not contain <, >, " or \\ \(the text goes into mail headers\)$',
        _('must not contain <, >, " or \\ (the text goes into mail headers)'),
    ),
    # -- the services' refusals shown next to fields -------------------------------------------
    (
        r"^'(?P<name>.+)' is under a domain that belongs to someone else$",
        _("'%(name)s' is under a domain that belongs to someone else"),
    ),
    (
        r"^a name under '(?P<name>.+)' belongs to someone else$",
        _("a name under '%(name)s' belongs to someone else"),
    ),
    (
        r"^The domain '(?P<name>.+)' is already registered in the panel\.$",
        _("The domain '%(name)s' is already registered in the panel."),
    ),
    (
        r"^the domain '(?P<name>.+)' is being deleted$",
        _("the domain '%(name)s' is being deleted"),
    ),
    (
        r"^The domain is still used by (?P<used>.+); delete those first\.$",
        _("The domain is still used by %(used)s; delete those first."),
    ),
    (
        r"^(?P<email>\S+) is already on this list as (?P<role>[a-z]+)\.$",
        _("%(email)s is already on this list as %(role)s."),
    ),
    (
        r"^(?P<emails>.+) already own this list \(see its owners\)\.$",
        _("%(emails)s already own this list (see its owners)."),
    ),
    (
        r"^A list holds at most (?P<max>\d+) roster entries; this one has (?P<total>\d+)\.$",
        _("A list holds at most %(max)s roster entries; this one has %(total)s."),
    ),
    (
        r"^only staff users may hold the 'admin' scope$",
        _("only staff users may hold the 'admin' scope"),
    ),
    (
        r"^your token does not hold '(?P<scope>.+)', so it cannot grant it$",
        _("your token does not hold '%(scope)s', so it cannot grant it"),
    ),
    (
        r"^the user is not a member of: (?P<slugs>.+)$",
        _("the user is not a member of: %(slugs)s"),
    ),
    (
        r"^A user with email '(?P<email>.+)' already exists\.$",
        _("A user with email '%(email)s' already exists."),
    ),
    (
        r"^not databases of this account: (?P<names>.+)$",
        _("not databases of this account: %(names)s"),
    ),
    (
        r"^a user's databases must share one engine and one host$",
        _("a user's databases must share one engine and one host"),
    ),
    (
        r"^host (?P<host>\S+) offers PHP (?P<versions>.+); pick one of them$",
        _("host %(host)s offers PHP %(versions)s; pick one of them"),
    ),
    (r"^must not be null$", _("must not be empty")),
    # -- applications (panel.apps): installs, platforms, updates --------------------------------
    (
        r"^(?P<name>\S+) is a static site: give it a PHP version first$",
        _("%(name)s is a static site: give it a PHP version first"),
    ),
    (
        r"^(?P<name>\S+) already has its application\.$",
        _("%(name)s already has its application."),
    ),
    (
        r"^there is no platform (?P<id>\S+) to install from$",
        _("there is no platform %(id)s to install from"),
    ),
    (
        r"^(?P<app>\S+) sites are installed by hand \(upload it\); Konbit installs (?P<apps>.+)$",
        _("%(app)s sites are installed by hand (upload it); Konbit installs %(apps)s"),
    ),
    (
        r"^Task (?P<id>\d+) is working on (?P<name>\S+)'s application; wait for it\.$",
        _("Task %(id)s is working on %(name)s's application; wait for it."),
    ),
    (
        r"^Only the provider's staff manage platforms\.$",
        _("Only the provider's staff manage platforms."),
    ),
    (
        r"^A platform named (?P<name>\S+) exists; builds never change, name it anew\.$",
        _("A platform named %(name)s exists; builds never change, name it anew."),
    ),
    (
        r"^choose another (?P<app>\S+) platform to move the sites to$",
        _("choose another %(app)s platform to move the sites to"),
    ),
    (r"^no site of (?P<name>\S+) to update$", _("no site of %(name)s to update")),
    (
        r"^site (?P<id>\d+) is (?P<status>[a-z]+); wait for it and try again$",
        _("site %(id)s is %(status)s; wait for it and try again"),
    ),
    (
        r"^must be an absolute path on the panel machine, without '\.\.'$",
        _("must be an absolute path on the panel machine, without '..'"),
    ),
    (r"^may not hold < > \\ \{ \}$", _("may not hold < > \\ { }")),
    (
        r"^String should match pattern '\^\[A-Za-z\]\[A-Za-z0-9_\.-\]\{2,59\}\$'$",
        _("must be 3-60 characters: a letter, then letters, digits, '_', '.' or '-'"),
    ),
    (
        r"^String should match pattern '\^\[a-z\]\[a-z0-9\.-\]\{1,62\}\$'$",
        _("must be 2-63 characters: a lowercase letter, then lowercase letters, digits, . or -"),
    ),
    (
        r"^String should match pattern '\^\[0-9a-f\]\{64\}\$'$",
        _("must be 64 hexadecimal digits, as published"),
    ),
    (
        r"^(?P<path>.+) does not exist or is not a file: give the archive's path$",
        _("%(path)s does not exist or is not a file: give the archive's path"),
    ),
    (
        r"^(?P<name>.+)'s sha256 is (?P<actual>[0-9a-f]+), not the expected (?P<expected>\S+): "
        r"the file is not the one you meant \(or is corrupt\); download it again and check its "
        r"checksum$",
        _(
            "%(name)s's sha256 is %(actual)s, not the expected %(expected)s: the file is not the "
            "one you meant (or is corrupt); download it again and check its checksum"
        ),
    ),
    # -- pydantic ------------------------------------------------------------------------------
    (r"^String should have at least 1 character$", _("must not be empty")),
    (
        r"^String should have at least (?P<n>\d+) characters$",
        _("must be at least %(n)s characters"),
    ),
    (
        r"^String should have at most (?P<n>\d+) characters?$",
        _("must be at most %(n)s characters"),
    ),
    (
        r"^(?:List|Tuple|Set|Value|Data|Dictionary) should have at least 1 item after "
        r"validation, not 0$",
        _("must have at least one entry"),
    ),
    (
        r"^(?:List|Tuple|Set|Value|Data|Dictionary) should have at least (?P<n>\d+) items? "
        r"after validation, not (?P<actual>\d+)$",
        _("must have at least %(n)s entries (there are %(actual)s)"),
    ),
    (
        r"^(?:List|Tuple|Set|Value|Data|Dictionary) should have at most (?P<n>\d+) items? "
        r"after validation, not (?P<actual>\d+)$",
        _("must have at most %(n)s entries (there are %(actual)s)"),
    ),
    (r"^Input should be a valid integer\b.*$", _("must be a whole number")),
    (r"^Input should be a valid number\b.*$", _("must be a number")),
    (
        r"^Input should be greater than or equal to (?P<n>-?[0-9.]+)$",
        _("must be %(n)s or more"),
    ),
    (r"^Input should be less than or equal to (?P<n>-?[0-9.]+)$", _("must be %(n)s or less")),
    (r"^Input should be greater than (?P<n>-?[0-9.]+)$", _("must be more than %(n)s")),
    (r"^Input should be less than (?P<n>-?[0-9.]+)$", _("must be less than %(n)s")),
    (r"^Input should be a valid boolean\b.*$", _("must be yes or no")),
    (r"^Input should be a valid string$", _("must be text")),
    (r"^Input should be a valid list$", _("must be a list")),
    (r"^Input should be (?P<choices>'.*')$", _("must be one of: %(choices)s")),
    (r"^Extra inputs are not permitted$", _("is not a field that can be set here")),
]
_PROBLEMS.extend((re.compile(p), m) for p, m in _CHECKS)


def add_problems(patterns: list[tuple[str, str]]) -> None:
    """A domain's own API messages (pattern, msgid), translated like the ones above; a
    pattern given twice (a module imported again) is kept once."""
    known = {p.pattern for p, _m in _PROBLEMS}
    _PROBLEMS.extend((re.compile(p), m) for p, m in patterns if p not in known)

# Parts of a message that are themselves words to translate (a role, what uses a domain).
_WORD_GROUPS = ("used", "role")
WORDS_IN_PROBLEMS = (
    _("sites"),
    _("site aliases"),
    _("mailboxes"),
    _("mail aliases"),
    _("lists"),
    _("subdomains"),
    _("member"),
    _("moderator"),
    _("owner"),
)


def translate_problem(tr: Translator, message: str) -> str:
    """The API's message in the page's language when its shape is known, else as it is."""
    for pattern, msgid in _PROBLEMS:
        m = pattern.match(message)
        if m:
            groups = m.groupdict()
            for name in _WORD_GROUPS:
                if groups.get(name):
                    groups[name] = ", ".join(tr.gettext(w) for w in groups[name].split(", "))
            if groups.get("choices"):
                groups["choices"] = groups["choices"].replace("' or '", "', '")
            return tr.gettext(msgid) % groups
    return message


# Words that reach templates as data (statuses, health, apply results, roles, kinds).
WORDS = (
    _("ok"),
    _("unknown"),
    _("unreachable"),
    _("applied"),
    _("noop"),
    _("running"),
    _("site"),
    _("mailbox"),
    _("alias"),
    _("list"),
    _("database"),
    _("dbuser"),
)
