"""Plugins by entry point (group ``konbit.provisioners``), loaded loudly at start-up.

What the panel knows of hosts' services comes from here: the roles a host may have, the
settings model a host's settings are checked with, the object kinds and usage metrics.
A misdeclared plugin stops start-up with a message that names it: a host half-managed is
worse than none.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from provisioners.api import NAME, Fact, Metric, ObjectKind, Provisioner

GROUP = "konbit.provisioners"


class PluginError(Exception):
    """A plugin that cannot load stops start-up: a host half-managed is worse than none."""


class HostSettingsBase(BaseModel):
    """Per-role settings; unknown keys are refused so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Catalog:
    """Everything the installed plugins declare, checked for consistency."""

    plugins: tuple[Provisioner, ...]
    roles: tuple[str, ...]
    kinds: Mapping[str, ObjectKind]
    metrics: Mapping[str, Metric]
    host_settings: type[BaseModel]

    def role_kinds(self, role: str) -> list[ObjectKind]:
        return [k for k in self.kinds.values() if k.role == role]

    def stored(self) -> list[ObjectKind]:
        """Kinds the panel stores for their plugins (generic objects with a spec)."""
        return [k for k in self.kinds.values() if k.spec is not None]


def _classes() -> list[tuple[str, type[Provisioner]]]:
    out: list[tuple[str, type[Provisioner]]] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:
            raise PluginError(
                f"provisioner plugin '{ep.name}' ({ep.value}) failed to import: {exc!r}; "
                "fix or uninstall it"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Provisioner)):
            raise PluginError(
                f"provisioner plugin '{ep.name}' ({ep.value}) is not a "
                "provisioners.api.Provisioner subclass"
            )
        _check_declarations(ep.name, cls)
        out.append((ep.name, cls))
    return out


def _check_declarations(entry: str, cls: type[Provisioner]) -> None:
    def fail(what: str) -> PluginError:
        return PluginError(f"provisioner plugin '{entry}' ({cls.__qualname__}) {what}")

    if not isinstance(getattr(cls, "name", None), str):
        raise fail("declares no name")
    roles = getattr(cls, "roles", None)
    if not (isinstance(roles, tuple) and roles and all(isinstance(r, str) for r in roles)):
        raise fail("declares no roles (a tuple of role names, e.g. roles = ('web',))")
    for role in roles:
        if not NAME.fullmatch(role):
            raise fail(f"declares role {role!r}; a role is lower-case letters, digits and _")
    if cls.settings is not None:
        if not (isinstance(cls.settings, type) and issubclass(cls.settings, BaseModel)):
            raise fail("declares settings that are not a pydantic model")
        for field, info in cls.settings.model_fields.items():
            if info.is_required():
                raise fail(f"settings field {field!r} has no default; hosts must not need it")
    for kind in cls.kinds:
        if not isinstance(kind, ObjectKind) or not NAME.fullmatch(kind.name):
            raise fail(f"declares object kind {kind!r}: an ObjectKind with an identifier name")
        if kind.role not in roles:
            raise fail(f"declares kind {kind.name!r} on role {kind.role!r}, not one of its roles")
        if kind.placement == "site" and (kind.spec is None or kind.role != "web"):
            raise fail(
                f"declares kind {kind.name!r} attached to sites: it needs a spec and role 'web'"
            )
        unknown = set(kind.staff_fields) - set(kind.spec.model_fields if kind.spec else ())
        if unknown:
            raise fail(f"declares staff fields {sorted(unknown)} its kind {kind.name!r} lacks")
        if kind.one_per_site and kind.placement != "site":
            raise fail(f"declares kind {kind.name!r} one per site but not placed 'site'")
    for fact in cls.facts:
        if not isinstance(fact, Fact) or not NAME.fullmatch(fact.name):
            raise fail(f"declares fact {fact!r}: a Fact with an identifier name")


def _merge(what: str, items: Sequence[tuple[str, Any, str]]) -> dict[str, Any]:
    """name -> item; two plugins may declare one name only if they declare the same item."""
    out: dict[str, Any] = {}
    by: dict[str, str] = {}
    for name, item, plugin in items:
        if name in out and out[name] != item and out[name] is not item:
            raise PluginError(
                f"provisioner plugins '{by[name]}' and '{plugin}' declare {what} {name!r} "
                "differently; one of them must rename it"
            )
        out.setdefault(name, item)
        by.setdefault(name, plugin)
    return out


def build_catalog(plugins: Sequence[Provisioner]) -> Catalog:
    seen: dict[str, str] = {}
    for p in plugins:
        if p.name in seen:
            raise PluginError(
                f"provisioner plugins '{seen[p.name]}' and '{type(p).__qualname__}' both "
                f"call themselves '{p.name}'"
            )
        seen[p.name] = type(p).__qualname__
    kinds = _merge("object kind", [(k.name, k, p.name) for p in plugins for k in p.kinds])
    metrics = _merge("metric", [(m.name, m, p.name) for p in plugins for m in p.metrics])
    _merge("fact", [(f.name, f, p.name) for p in plugins for f in p.facts])
    fields = _merge(
        "host setting",
        [
            (name, (p.settings, name), p.name)
            for p in plugins
            if p.settings is not None
            for name in p.settings.model_fields
        ],
    )
    definitions: dict[str, Any] = {}
    for name, (model, _) in fields.items():
        info = model.model_fields[name]
        definitions[name] = (info.annotation, info)
    host_settings = create_model("HostSettings", __base__=HostSettingsBase, **definitions)
    host_settings.__doc__ = HostSettingsBase.__doc__
    return Catalog(
        plugins=tuple(plugins),
        roles=tuple(sorted({r for p in plugins for r in p.roles})),
        kinds=kinds,
        metrics=metrics,
        host_settings=host_settings,
    )


def load_plugins() -> list[Provisioner]:
    """A fresh instance of every installed plugin, checked."""
    plugins = [cls() for _, cls in _classes()]
    if not plugins:
        raise PluginError(
            f"no provisioner plugins found in entry-point group {GROUP}; "
            "reinstall konbit (pip install -e .)"
        )
    build_catalog(plugins)  # the declarations agree with each other
    return plugins


@functools.cache
def installed() -> Catalog:
    """The installed plugins' catalog, read once per process: entry points do not change
    while it runs (installing a plugin means restarting the panel and its workers)."""
    return build_catalog(load_plugins())
