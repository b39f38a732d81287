"""The Unix-socket bridge: a line protocol any program can drive (shell scripts, C, Limbo on Inferno).

One command per line, one JSON object per reply line; every request goes through
the serving layer, so many clients share one loaded model and its batches. The
protocol is described in ``docs/bridge.md`` and in :mod:`.protocol`.

- :class:`Bridge`, :class:`BridgeConfig`: the server (``llamarun bridge``).
- :func:`build_service`: its own :class:`~llamarun.serving.Service` over the store.
- :class:`BridgeClient`, :func:`interactive`: a client (``llamarun bridge --connect``).
"""

from .client import BridgeClient, interactive
from .paths import default_socket_path, private_dir
from .server import Bridge, BridgeConfig, bridge_resolver
from .service import build_service

__all__ = ["Bridge", "BridgeClient", "BridgeConfig", "bridge_resolver", "build_service", "default_socket_path",
           "interactive", "private_dir"]
