"""Plugins by entry point (group ``konbit.provisioners``), loaded loudly at start-up."""

from __future__ import annotations

from importlib.metadata import entry_points

from provisioners.api import Provisioner

GROUP = "konbit.provisioners"


class PluginError(Exception):
    """A plugin that cannot load stops start-up: a host half-managed is worse than none."""


def load_plugins() -> list[Provisioner]:
    plugins: list[Provisioner] = []
    seen: dict[str, str] = {}
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
        for attr in ("name", "role"):
            if not isinstance(getattr(cls, attr, None), str):
                raise PluginError(f"provisioner plugin '{ep.name}' declares no {attr}")
        if cls.name in seen:
            raise PluginError(
                f"provisioner plugins '{seen[cls.name]}' and '{ep.name}' both "
                f"call themselves '{cls.name}'"
            )
        seen[cls.name] = ep.name
        plugins.append(cls())
    if not plugins:
        raise PluginError(
            f"no provisioner plugins found in entry-point group {GROUP}; "
            "reinstall konbit (pip install -e .)"
        )
    return plugins
