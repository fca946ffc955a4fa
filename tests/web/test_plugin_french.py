"""Every word a Konbit plugin's kinds show on a page has its French, from the panel's
catalog or the plugin's own ``messages`` (the toy plugin, a test fixture, is left out)."""

from __future__ import annotations

from panel.web.i18n import translations
from provisioners.registry import installed


def _texts() -> list[tuple[str, str]]:
    out = []
    for kind in installed().stored():
        if kind.name.startswith("toy_") or kind.spec is None:
            continue
        out.append((kind.name, kind.title or kind.name))
        for name, field in kind.spec.model_fields.items():
            if name.endswith("_hash"):
                continue
            out.append((kind.name, field.title or name.replace("_", " ").capitalize()))
            if field.description:
                out.append((kind.name, field.description))
    return out


def test_every_plugin_kind_speaks_french() -> None:
    fr = translations("fr")
    texts = _texts()
    assert len(texts) > 30
    missing = [(k, t) for k, t in texts if fr.gettext(t) == t and t not in ("Shell",)]
    assert missing == []
