"""The runtime: one engine thread per loaded model, continuous batching, prefix reuse,
cancellation, deadlines and bounded admission; sync and asyncio clients over it; the
model manager (which models are loaded, leases on them) and the sampling defaults.

Other layers import from here, never from the submodules."""

from .client import AsyncClient, AsyncRequest, RequestStream, SyncClient
from .config import ManagerConfig, RuntimeConfig
from .embed import POOLING_RANK, Embedder, Embedding, Ranked, is_embedding_model, is_reranker, pooling_type
from .leases import Lease, ModelSource, ModelStatus
from .load_policy import (
    MODELFILE_LOAD_NAMES,
    PLANNED_FIELDS,
    HardwareCache,
    LoadOptions,
    Planner,
    hardware_planner,
    modelfile_load_settings,
    plan_load,
)
from .manager import ModelManager
from .metrics import MetricsSnapshot, RuntimeMetrics
from .request import MAX_STREAM_INTERVAL, GenerationRequest, RequestStatus
from .runtime import Health, HealthStatus, Runtime
from .status import FinishedRequest, RuntimeStatus, SlotState
from .sampling import OLLAMA_DEFAULTS, declared_sampling, default_sampling
from .speculative import Speculation

__all__ = [
    "MAX_STREAM_INTERVAL",
    "OLLAMA_DEFAULTS",
    "POOLING_RANK",
    "AsyncClient",
    "AsyncRequest",
    "Embedder",
    "Embedding",
    "FinishedRequest",
    "GenerationRequest",
    "HardwareCache",
    "Health",
    "HealthStatus",
    "Lease",
    "LoadOptions",
    "MODELFILE_LOAD_NAMES",
    "ManagerConfig",
    "MetricsSnapshot",
    "ModelManager",
    "ModelSource",
    "ModelStatus",
    "PLANNED_FIELDS",
    "Planner",
    "Ranked",
    "RequestStatus",
    "RequestStream",
    "Runtime",
    "RuntimeConfig",
    "RuntimeMetrics",
    "RuntimeStatus",
    "SlotState",
    "Speculation",
    "SyncClient",
    "declared_sampling",
    "default_sampling",
    "hardware_planner",
    "is_embedding_model",
    "is_reranker",
    "modelfile_load_settings",
    "plan_load",
    "pooling_type",
]
