"""The HTTP server: Ollama's and OpenAI's APIs over the runtime, safe by default.

    app = create_app(HttpConfig(), manager_config=ManagerConfig(), store=ModelStore())

``llamarun serve`` runs it with uvicorn (:class:`DrainingServer`: graceful drain
on SIGTERM/SIGINT).  See :class:`HttpConfig` for the security defaults.
"""

from .app import create_app, store_resolver
from .config import HttpConfig, is_loopback_host
from .guard import ServerState
from .server import DrainingServer, uvicorn_config

__all__ = ["DrainingServer", "HttpConfig", "ServerState", "create_app", "is_loopback_host", "store_resolver",
           "uvicorn_config"]
