"""The public surface for provisioner plugins: plain data in, files and commands out.

Third-party plugins import only from here (never from ``panel`` nor from another plugin's
module); the panel imports plugins only through here and ``provisioners.registry``.
"""

from provisioners.api.operations import *  # noqa: F403 - the operations plugins offer
from provisioners.api.state import *  # noqa: F403 - re-exported as the package's surface
