"""A plugin that cannot load stops start-up with a message that names it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from provisioners import registry
from provisioners.api import (
    DesiredState,
    Fact,
    ManagedFile,
    Metric,
    ObjectKind,
    Provisioner,
    lines,
)
from provisioners.registry import PluginError, build_catalog, installed, load_plugins


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


class _Base(Provisioner):
    name = "thing"
    roles = ("thing",)

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return []


class _Strict(BaseModel):
    needed: str  # no default: a host without it could not be reconciled


class _Motd(BaseModel):
    motd: str = "hi"


class _OtherMotd(BaseModel):
    motd: int = 1


def _plugin(**attrs: Any) -> type[Provisioner]:
    return type("Thing", (_Base,), attrs)


def test_a_plugin_without_roles_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _with(monkeypatch, FakeEntryPoint("thing", "t:T", _plugin(roles=())))
    with pytest.raises(PluginError, match=r"'thing' \(Thing\) declares no roles"):
        load_plugins()


def test_settings_need_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    _with(monkeypatch, FakeEntryPoint("thing", "t:T", _plugin(settings=_Strict)))
    with pytest.raises(PluginError, match="settings field 'needed' has no default"):
        load_plugins()


def test_a_kind_on_a_role_the_plugin_does_not_serve_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kinds = (ObjectKind("gizmo", "web", spec=_Motd),)
    _with(monkeypatch, FakeEntryPoint("thing", "t:T", _plugin(kinds=kinds)))
    with pytest.raises(PluginError, match="kind 'gizmo' on role 'web', not one of its roles"):
        load_plugins()


def test_two_plugins_may_not_declare_one_setting_differently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = _plugin(name="a", settings=_Motd)
    b = _plugin(name="b", settings=_OtherMotd)
    _with(monkeypatch, FakeEntryPoint("a", "a:A", a), FakeEntryPoint("b", "b:B", b))
    with pytest.raises(PluginError, match="'a' and 'b' declare host setting 'motd' differently"):
        load_plugins()


def test_the_catalog_joins_what_the_plugins_declare(monkeypatch: pytest.MonkeyPatch) -> None:
    fact = Fact("thing_state", "true", lines)
    metric = Metric("thing_bytes", "things", storage_of="gizmo")
    kind = ObjectKind("gizmo", "thing", spec=_Motd, placement="role")
    a = _plugin(name="a", settings=_Motd, kinds=(kind,), metrics=(metric,), facts=(fact,))
    b = _plugin(name="b", roles=("thing", "other"), settings=_Motd, kinds=(kind,), facts=(fact,))
    catalog = build_catalog([a(), b()])
    assert catalog.roles == ("other", "thing")
    assert list(catalog.kinds) == ["gizmo"] and catalog.stored() == [kind]
    assert catalog.metrics == {"thing_bytes": metric}
    assert catalog.host_settings().model_dump() == {"motd": "hi"}
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        catalog.host_settings.model_validate({"motd": "x", "typo": 1})


def test_the_installed_catalog_serves_the_panels_roles_and_kinds() -> None:
    catalog = installed()
    assert {"web", "mail", "db", "lists", "backup"} <= set(catalog.roles)
    assert {"site", "mailbox", "mail_alias", "list", "database", "database_user"} <= set(
        catalog.kinds
    )
    assert catalog.metrics["http_requests"].counter
    assert catalog.metrics["disk_bytes"].storage_of == "account"
