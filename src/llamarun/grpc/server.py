"""The gRPC server: llamarun.v1, grpc.health.v1 and reflection on one port, over a shared
:class:`~llamarun.serving.Service`; a graceful drain; a thread of its own beside the HTTP server.

    server = GrpcServer(service, GrpcConfig(port=0))
    port = await server.start()          # health SERVING (or NOT_SERVING until set_serving)
    await server.drain()                 # health NOT_SERVING, new calls UNAVAILABLE, in-flight finish
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..errors import InvalidParameterError
from ..serving import Service
from .config import GrpcConfig
from .gate import Gate
from .generate import Generations
from .servicer import LlamarunServicer
from .v1 import llamarun_pb2 as pb
from .v1 import llamarun_pb2_grpc as pb_grpc

__all__ = ["GrpcServer", "GrpcThread"]

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Llamarun"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcServer:
    """One grpc.aio server on the event loop that starts it."""

    def __init__(self, service: Service, config: GrpcConfig) -> None:
        self.service = service
        self.config = config
        self.gate = Gate(config.api_key)
        self.generations = Generations(service)
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self, *, serving: bool = True) -> int:
        """Bind and start; returns the port (health says ``serving`` until :meth:`set_serving`)."""
        limit = self.config.max_message_bytes
        server = grpc.aio.server(interceptors=[self.gate], options=[
            ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0), ("grpc.keepalive_permit_without_calls", 1)])
        pb_grpc.add_LlamarunServicer_to_server(LlamarunServicer(self.service, self.generations), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server)
        host = self.config.host
        address = f"[{host}]:{self.config.port}" if ":" in host else f"{host}:{self.config.port}"
        tls = self.config.tls_pair()
        try:
            port = (server.add_secure_port(address, grpc.ssl_server_credentials([tls])) if tls
                    else server.add_insecure_port(address))
        except RuntimeError as exc:
            raise InvalidParameterError(f"cannot listen for gRPC on {address}: {exc}; choose another "
                                        "--grpc-port (0: any free port)", field="grpc_port") from None
        await server.start()
        self._server, self.port = server, port
        await self.set_serving(serving)
        return port

    async def set_serving(self, serving: bool) -> None:
        status = _SERVING if serving and not self.gate.draining else _NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def drain(self, timeout: float | None = None) -> None:
        """Health NOT_SERVING and new calls refused at once; in-flight calls get ``timeout`` seconds
        (default: the config's shutdown timeout), then what is left is cancelled and the server stops."""
        if self._server is None:
            return
        self.gate.draining = True
        await self.set_serving(False)
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        logger.info("gRPC draining: %d call(s) in flight, up to %.0f s", self.gate.in_flight, timeout)
        if not await self.gate.wait_idle(timeout):
            logger.warning("gRPC drain timeout: cancelling %d call(s)", self.gate.in_flight)
            self.generations.abort_all()
            await self.gate.wait_idle(5.0)
        await self.stop(1.0)

    async def stop(self, grace: float | None = None) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)


class GrpcThread:
    """A :class:`GrpcServer` on an event loop of its own thread (beside uvicorn's, or alone)."""

    def __init__(self, service: Service, config: GrpcConfig) -> None:
        self.server = GrpcServer(service, config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stopped: asyncio.Event | None = None
        self._drain_lock = threading.Lock()
        self._draining = False
        self._thread = threading.Thread(target=self._run, name="llamarun-grpc", daemon=True)

    def start(self, *, serving: bool = True) -> int:
        """Start the thread; returns once the server listens (raises what binding raised)."""
        self._serving = serving
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        assert self.server.port is not None
        return self.server.port

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        try:
            await self.server.start(serving=self._serving)
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self._stopped.wait()

    def _submit(self, work: Any) -> Any:
        loop = self._loop
        if loop is None or loop.is_closed():
            return None
        return asyncio.run_coroutine_threadsafe(work, loop)

    def set_serving(self, serving: bool) -> None:
        future = self._submit(self.server.set_serving(serving))
        if future is not None:
            future.result(10)

    def drain(self) -> None:
        """Start the drain (thread-safe); :meth:`join` waits for its end."""
        async def drain_then_stop() -> None:
            try:
                await self.server.drain()
            finally:
                assert self._stopped is not None
                self._stopped.set()

        with self._drain_lock:
            if self._draining:
                return
            self._draining = True
        self._submit(drain_then_stop())

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
