"""Extract the panel's messages and update the catalogs: ``python -m panel.web.catalog``.

Sources (``_()``, ``web._()``, ``gettext``): the web plumbing (``panel/web/*.py``), every
domain's page modules (``panel/<domain>/pages.py`` and ``panel/<domain>/*_pages.py``) and
the templates (``templates/panel/``). The test suite checks that every message has a French
and an English translation, and that every module that translates is among the sources.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from panel.web.i18n import LANGUAGES, LOCALES_DIR

ROOT = Path(__file__).resolve().parents[2]
PYTHON_SOURCES = ("web/*.py", "*/pages.py", "*/*_pages.py")  # under panel/
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}


def extract() -> Catalog:
    catalog = Catalog(project="Konbit", charset="utf-8", fuzzy=False)
    for method_map, folder in (
        ([(pattern, "python") for pattern in PYTHON_SOURCES], ROOT / "panel"),
        ([("**.html", "jinja2")], ROOT / "templates" / "panel"),
    ):
        for filename, lineno, message, comments, _context in extract_from_dir(
            str(folder), method_map, keywords=KEYWORDS, strip_comment_tags=True
        ):
            where = str((folder / filename).relative_to(ROOT))
            catalog.add(message, None, [(where, lineno)], auto_comments=comments)
    return catalog


def update() -> None:
    template = extract()
    for lang in LANGUAGES:
        po = LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"
        if po.exists():
            with po.open("rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, project="Konbit", charset="utf-8", fuzzy=False)
        catalog.update(template, no_fuzzy_matching=True)
        po.parent.mkdir(parents=True, exist_ok=True)
        with po.open("wb") as f:
            write_po(
                f,
                catalog,
                omit_header=False,
                sort_output=True,
                ignore_obsolete=True,
                include_lineno=False,
                width=100,
            )


if __name__ == "__main__":
    update()
