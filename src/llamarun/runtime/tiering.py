"""The KV tiers of one runtime, and moving a conversation's KV state in and out of it (sessions).

:func:`runtime_tiers` makes a runtime's :class:`~llamarun.runtime.kvtiers.KVTiers` from its
config; :func:`export_state` and :func:`import_state` run on the engine thread (through
:meth:`~llamarun.runtime.Runtime.call_engine`) for :meth:`llamarun.Session.save` and
:meth:`llamarun.Session.load`; :func:`state_settings` is what a saved state must match.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RuntimeConfig
from .kvtiers import KVTiers
from .metrics import RuntimeMetrics
from .slots import common_prefix

if TYPE_CHECKING:
    from .loop import EngineLoop

__all__ = ["export_state", "import_state", "runtime_tiers", "state_settings"]


def runtime_tiers(config: RuntimeConfig, metrics: RuntimeMetrics) -> KVTiers:
    """The tiers ``config`` asks for; the disk tier in a directory of its own, removed on close."""
    directory: Path | None = None
    if config.session_disk:
        if config.session_dir:
            root = Path(config.session_dir).expanduser()
        else:
            from ..config import home_dir

            root = home_dir() / "sessions"
        directory = root / f"tier-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return KVTiers(config.session_ram, config.session_disk, directory, metrics)


def state_settings(loop: EngineLoop) -> dict[str, Any]:
    """What a sequence's saved KV state depends on besides the model: the KV layout of the context."""
    options = loop.ctx.options
    layout = {k: v for k, v in asdict(options).items() if k in ("flash_attn", "type_k", "type_v", "swa_full")}
    return {**layout, "n_ctx": loop.config.n_ctx, "n_layer": loop.model.info.n_layer,
            "n_embd": loop.model.info.n_embd, "n_head_kv": loop.model.info.n_head_kv}


def export_state(loop: EngineLoop, tokens: Sequence[int]) -> tuple[list[int], bytes]:
    """The KV state covering the longest prefix of ``tokens`` that a slot or a tier holds: the state's
    own tokens (which may go on past ``tokens``) and its bytes; ``([], b"")`` when nothing does."""
    tokens = list(tokens)
    slots = loop.scheduler.slots
    slot, in_slot = slots.best_caches([tokens])[0]
    in_slot = common_prefix(slot.cached, tokens)
    entry, in_tier = loop.tiers.best(tokens)
    if in_slot and in_slot >= in_tier:
        return list(slot.cached), loop.ctx.seq_state_get(slot.seq_id)
    if entry is not None:
        state = loop.tiers.read(entry)
        if state is not None:
            return list(entry.tokens), state
    return [], b""


def import_state(loop: EngineLoop, tokens: Sequence[int], state: bytes) -> bool:
    """Keep a loaded session's KV state in the tiers, to be restored by its next turn; False when
    the tiers are off or too small for it (the next turn then computes the conversation again)."""
    if not tokens or not state or not loop.tiers.enabled:
        return False
    return loop.tiers.put(list(tokens), state) is not None
