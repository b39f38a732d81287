"""The gRPC frontend: the versioned ``llamarun.v1.Llamarun`` service (proto in ``proto/llamarun/v1``),
grpc.health.v1 and server reflection, over the serving layer.

- :class:`GrpcConfig`: address, token, TLS, message size limit, drain time.
- :class:`GrpcServer`: the grpc.aio server on the running event loop; :class:`GrpcThread`: on a
  thread of its own (how ``llamarun serve --grpc-port N`` runs it beside HTTP, on the same Service).
- :mod:`llamarun.grpc.v1`: the generated messages and stubs (``make proto``).

Errors are statuses from :data:`llamarun.errors.ERROR_CODES` with google.rpc details.
"""

from .config import GrpcConfig, is_loopback
from .server import GrpcServer, GrpcThread

__all__ = ["GrpcConfig", "GrpcServer", "GrpcThread", "is_loopback"]
