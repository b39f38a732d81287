"""Fixed decode costs for the speculative tests whose subject is not the cost policy."""

from __future__ import annotations

from llamarun.runtime.draft_cost import DecodeCost


class CheapDrafts(DecodeCost):
    """A machine where a drafted token costs a tenth of a decode, whatever the decodes measure."""

    def observe(self, tokens: int, seconds: float) -> None:
        pass

    def seconds(self, tokens: int) -> float:
        return 1.0 + 0.1 * (tokens - 1)


def with_cheap_drafts(runtime) -> None:  # noqa: ANN001 - a Runtime
    runtime.call_engine(lambda loop: setattr(loop.speculator, "cost", CheapDrafts()))
