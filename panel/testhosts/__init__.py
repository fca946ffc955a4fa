"""Real, isolated Debian test hosts on one machine, for integration tests and demos.

A Debian base built once by mmdebstrap, an overlay per host, fresh namespaces, a veth on a
bridge, tini + a small init running sshd and the roles' services (see lab.py, host.py, procs.py,
build.py).

Used by the integration tests and by ``konbit demo``::

    with Lab() as lab:
        lab.ensure_base()
        web = lab.start("web1", roles=["web"], authorized_keys=[pub])
        web.wait_ready()
        ...  # SSH to web.address:22, pinning web.host_key

Needs root. Hosts die with the process (thread) that started them.
"""

from .build import (
    BASE,
    BASE_PACKAGES,
    MAILMAN3,
    LayerSpec,
    TestHostError,
    default_workdir,
    ensure_layers,
)
from .lab import HostSpec, Lab, Role, TestHost, WebServer, list_hosts

__all__ = [
    "BASE",
    "BASE_PACKAGES",
    "MAILMAN3",
    "HostSpec",
    "Lab",
    "LayerSpec",
    "Role",
    "TestHost",
    "TestHostError",
    "WebServer",
    "default_workdir",
    "ensure_layers",
    "list_hosts",
]
