"""Prefix-aware routing on Ray Serve's request-router API: a conversation's next turn goes to the
replica that holds its cache, unless that replica is much busier than the least busy one.

Each routed request's text is cut into blocks (``block_chars``); a chain hash
per block prefix remembers which replica served it last (an LRU of
``max_entries``). A new request prefers the replica with its longest matching
block chain when that replica's queue is within ``imbalance`` of the shortest;
otherwise, and for requests that match nothing, the least loaded replicas come
first. Ray's ``PrefixCacheAffinityRouter`` (ray.llm) is the model this follows,
without its prefix-tree actor: one ingress routes, so its memory is the state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from ray.serve.request_router import FIFOMixin, PendingRequest, ReplicaID, RequestRouter, RunningReplica

__all__ = ["PrefixAffinityRouter", "block_hashes"]


def block_hashes(text: str, block_chars: int) -> Iterator[int]:
    """A chain hash for each whole block of ``text`` (the i-th covers ``text[:(i+1)*block_chars]``)."""
    chain = 0
    for end in range(block_chars, len(text) + 1, block_chars):
        chain = hash((chain, text[end - block_chars:end]))
        yield chain


def _text(request: PendingRequest | None) -> str:
    if request is None:
        return ""
    for arg in request.args:
        prompt = getattr(arg, "prompt", None)
        if isinstance(prompt, str):
            return prompt
    return ""


class PrefixAffinityRouter(FIFOMixin, RequestRouter):
    """Ranks the replica holding the request's longest prefix first when load allows."""

    def initialize_state(self, block_chars: int = 128, max_entries: int = 200_000, imbalance: int = 2,
                         **_: Any) -> None:
        self._block_chars = block_chars
        self._max_entries = max_entries
        self._imbalance = imbalance
        self._owners: OrderedDict[int, ReplicaID] = OrderedDict()
        self.prefix_hits = 0
        self.routed = 0

    def _load(self, replica: RunningReplica) -> int:
        return self.replica_queue_len_cache.get(replica.replica_id) or 0

    def _holder(self, text: str, candidates: dict[ReplicaID, RunningReplica]) -> RunningReplica | None:
        found = None
        for chain in block_hashes(text, self._block_chars):
            owner = self._owners.get(chain)
            if owner is None:
                break
            if owner in candidates:
                found = candidates[owner]
        return found

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        if pending_request is not None:
            # Back off between attempts while every replica is full: Ray's loop retries at once
            # unless the router says so (its locality mixin does; without it the ingress probed a
            # full replica about 300 times a second, costing both of them CPU the decode needed).
            pending_request.routing_context.should_backoff = True
        if not candidate_replicas:
            return []
        by_load = sorted(candidate_replicas, key=self._load)
        holder = self._holder(_text(pending_request), {r.replica_id: r for r in candidate_replicas})
        if holder is not None and self._load(holder) - self._load(by_load[0]) <= self._imbalance:
            self.prefix_hits += 1
            return [[holder], [r for r in by_load if r is not holder]]
        return [by_load[:2], by_load[2:]] if len(by_load) > 2 else [by_load]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any) -> None:
        self.routed += 1
        for chain in block_hashes(_text(pending_request), self._block_chars):
            self._owners[chain] = replica_id
            self._owners.move_to_end(chain)
        while len(self._owners) > self._max_entries:
            self._owners.popitem(last=False)
