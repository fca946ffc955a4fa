"""A plugin that cannot load stops start-up with a message that names it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from provisioners import registry
from provisioners.registry import PluginError, load_plugins


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    target: Any

    def load(self) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def _with(monkeypatch: pytest.MonkeyPatch, *eps: FakeEntryPoint) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda group: list(eps))


def test_the_installed_plugins_load() -> None:
    assert {p.name for p in load_plugins()} >= {"nginx", "apache2", "php", "web"}


def test_an_import_error_names_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    _with(monkeypatch, FakeEntryPoint("broken", "x.y:Z", ImportError("no module x")))
    with pytest.raises(PluginError, match=r"'broken' \(x.y:Z\) failed to import"):
        load_plugins()


def test_a_non_plugin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _with(monkeypatch, FakeEntryPoint("odd", "x:Y", object))
    with pytest.raises(PluginError, match=r"not a provisioners\.api\.Provisioner"):
        load_plugins()


def test_duplicate_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from provisioners.web import Nginx

    _with(monkeypatch, FakeEntryPoint("a", "p:Nginx", Nginx), FakeEntryPoint("b", "q:N", Nginx))
    with pytest.raises(PluginError, match="both call themselves 'nginx'"):
        load_plugins()
