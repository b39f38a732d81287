"""The runtime: one engine thread per loaded model, continuous batching, prefix reuse,
cancellation, deadlines and bounded admission; sync and asyncio clients over it."""

from .client import AsyncClient, AsyncRequest, RequestStream, SyncClient
from .config import RuntimeConfig
from .metrics import MetricsSnapshot, RuntimeMetrics
from .request import GenerationRequest, RequestStatus
from .runtime import Health, HealthStatus, Runtime

__all__ = [
    "AsyncClient",
    "AsyncRequest",
    "GenerationRequest",
    "Health",
    "HealthStatus",
    "MetricsSnapshot",
    "RequestStatus",
    "RequestStream",
    "Runtime",
    "RuntimeConfig",
    "RuntimeMetrics",
    "SyncClient",
]
