"""Which application (and version) a codebase is, from a few files read relative to its root.

The reader is a callable so the same probes work on a staging directory on the panel and on
a host (where a script prints just the files in ``PROBES``). Every regex is anchored and the
version is limited to ``[0-9A-Za-z.+-]{1,40}``: these files may come from a site's owner, so
nothing read here may end up in a path, a command or a page unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_V = r"([0-9A-Za-z.+-]{1,40})"
VERSION_RE = re.compile(r"[0-9A-Za-z.+-]{1,40}")

WORDPRESS = "wp-includes/version.php"
DRUPAL = "core/lib/Drupal.php"
DRUPAL7 = "includes/bootstrap.inc"
MEDIAWIKI = "includes/Defines.php"
MEDIAWIKI_OLD = "includes/DefaultSettings.php"
DOKUWIKI = "VERSION"
JOOMLA = "libraries/src/Version.php"
JOOMLA3 = "libraries/cms/version/version.php"

PROBES: tuple[str, ...] = (
    WORDPRESS,
    DRUPAL,
    DRUPAL7,
    MEDIAWIKI,
    MEDIAWIKI_OLD,
    DOKUWIKI,
    JOOMLA,
    JOOMLA3,
)

_M = re.MULTILINE
_WORDPRESS_RE = re.compile(rf"^\$wp_version\s*=\s*'{_V}'\s*;", _M)
_DRUPAL_RE = re.compile(rf"^\s*(?:public\s+)?const\s+VERSION\s*=\s*'{_V}'\s*;", _M)
_DRUPAL7_RE = re.compile(rf"^define\(\s*'VERSION'\s*,\s*'{_V}'\s*\)\s*;", _M)
_MEDIAWIKI_RE = re.compile(rf"^define\(\s*'MW_VERSION'\s*,\s*'{_V}'\s*\)\s*;", _M)
_MEDIAWIKI_OLD_RE = re.compile(rf"^\$wgVersion\s*=\s*'{_V}'\s*;", _M)
_DOKUWIKI_RE = re.compile(r'((?:rc)?\d{4}-\d{2}-\d{2}[a-z]?)(?:[ \t]+"[^"\r\n]{0,80}")?')
_DOKUWIKI_DATE_RE = re.compile(r"(rc)?(\d{4})-(\d{2})-(\d{2})([a-z]?)")


def _joomla_const(name: str, value: str) -> re.Pattern[str]:
    return re.compile(
        rf"^\s*(?:(?:public|final)\s+)*const\s+{name}\s*=\s*{value}\s*;", re.MULTILINE
    )


_JOOMLA_MAJOR = _joomla_const("MAJOR_VERSION", r"(\d{1,4})")
_JOOMLA_MINOR = _joomla_const("MINOR_VERSION", r"(\d{1,4})")
_JOOMLA_PATCH = _joomla_const("PATCH_VERSION", r"(\d{1,4})")
_JOOMLA_EXTRA = _joomla_const("EXTRA_VERSION", r"'([0-9A-Za-z.+-]{0,30})'")
_JOOMLA_ANY_EXTRA = re.compile(r"\bconst\s+EXTRA_VERSION\b")


def _joomla3(name: str, value: str) -> re.Pattern[str]:
    # 2.5 and 3.x before 3.8 declare `public $RELEASE = '3.6';`; 3.5+ also `const RELEASE`.
    return re.compile(rf"^\s*(?:public\s+\${name}|const\s+{name})\s*=\s*'{value}'\s*;", _M)


_JOOMLA3_RELEASE = _joomla3("RELEASE", r"(\d{1,3}\.\d{1,3})")
_JOOMLA3_DEV_LEVEL = _joomla3("DEV_LEVEL", r"(\d{1,4})")


@dataclass(frozen=True)
class Detected:
    """An application and its version, as its own files declare them."""

    app: str
    version: str


Reader = Callable[[str], str | None]


def _one(pattern: re.Pattern[str], text: str | None) -> str | None:
    """The single value the pattern declares: two different declarations is not a real file."""
    if text is None:
        return None
    found = {m.group(1) for m in pattern.finditer(text)}
    if len(found) != 1:
        return None
    return found.pop()


def _checked(app: str, version: str | None) -> Detected | None:
    if version is None or not VERSION_RE.fullmatch(version) or not re.search(r"\d", version):
        return None
    return Detected(app, version)


def _joomla(read: Reader) -> Detected | None:
    text = read(JOOMLA)
    major, minor, patch = (_one(p, text) for p in (_JOOMLA_MAJOR, _JOOMLA_MINOR, _JOOMLA_PATCH))
    if text is not None and major and minor and patch:
        version = f"{int(major)}.{int(minor)}.{int(patch)}"
        extra = _one(_JOOMLA_EXTRA, text)
        if extra is None and _JOOMLA_ANY_EXTRA.search(text):
            return None  # declared, but not as a plain version word
        return _checked("joomla", f"{version}-{extra}" if extra else version)
    text = read(JOOMLA3)
    release, level = _one(_JOOMLA3_RELEASE, text), _one(_JOOMLA3_DEV_LEVEL, text)
    if release and level:
        return _checked("joomla", f"{release}.{int(level)}")
    return None


def _dokuwiki(read: Reader) -> Detected | None:
    text = read(DOKUWIKI)
    if text is None or len(text) > 200:
        return None
    match = _DOKUWIKI_RE.fullmatch(text.strip())
    return _checked("dokuwiki", match.group(1)) if match else None


def detect(read: Reader) -> Detected | None:
    """The application whose version file ``read`` finds, or None (nothing is guessed)."""
    simple: tuple[tuple[str, str, re.Pattern[str]], ...] = (
        ("wordpress", WORDPRESS, _WORDPRESS_RE),
        ("drupal", DRUPAL, _DRUPAL_RE),
        ("drupal", DRUPAL7, _DRUPAL7_RE),
        ("mediawiki", MEDIAWIKI, _MEDIAWIKI_RE),
        ("mediawiki", MEDIAWIKI_OLD, _MEDIAWIKI_OLD_RE),
    )
    for app, relpath, pattern in simple:
        found = _checked(app, _one(pattern, read(relpath)))
        if found:
            return found
    return _joomla(read) or _dokuwiki(read)


VersionKey = tuple[tuple[int, int, str], ...]
_END = (1, 0, "")  # after any pre-release word, before any further number


def version_key(version: str) -> VersionKey:
    """A sort key: numbers compare as numbers, so 1.39.10 > 1.39.9; 6.1 < 6.1.1; a word
    (rc, beta) sorts before the release; DokuWiki's 2022-07-31a (a hotfix) > 2022-07-31."""
    date = _DOKUWIKI_DATE_RE.fullmatch(version)
    if date:
        rc, year, month, day, letter = date.groups()
        hotfix = ord(letter) - ord("a") + 1 if letter else 0
        parts = [(2, int(n), "") for n in (year, month, day)] + [(2, hotfix, "")]
        return (*parts, (0, 0, "rc")) if rc else (*parts, _END)
    key: list[tuple[int, int, str]] = []
    for token in re.findall(r"\d+|[A-Za-z]+", version):
        key.append((2, int(token), "") if token.isdigit() else (0, 0, token.lower()))
    key.append(_END)
    return tuple(key)
