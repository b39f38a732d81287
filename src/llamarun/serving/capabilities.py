"""What a stored model can do, in Ollama's capability names (``/api/show``, gRPC ``ModelInfo``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["model_capabilities"]


def model_capabilities(metadata: Mapping[str, Any], architecture: str, template: str) -> list[str]:
    """A model without pooling generates (with tools and thinking when its chat template has them)
    and embeds; a pooled embedding model only embeds; a reranker (rank pooling) does neither,
    whatever template it carries."""
    from ..chat import thinking_markers
    from ..runtime import POOLING_RANK, pooling_type

    pooling = pooling_type(metadata, architecture)
    if pooling > 0:
        return [] if pooling == POOLING_RANK else ["embedding"]
    capabilities = ["completion", "embedding"]
    if "tools" in template:
        capabilities.append("tools")
    if thinking_markers(template or None):
        capabilities.append("thinking")
    return capabilities
