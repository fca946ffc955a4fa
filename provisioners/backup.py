"""Backup stores: a directory on a host reached over SSH, where lifecycle tasks keep
backups.  The store carries no configuration of its own; the plugin declares the role."""

from __future__ import annotations

from collections.abc import Sequence

from provisioners.api import DesiredState, ManagedFile, Provisioner


class BackupStore(Provisioner):
    name = "backup"
    roles = ("backup",)

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return []
