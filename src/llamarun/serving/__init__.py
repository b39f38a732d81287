"""The serving layer: what every frontend (HTTP, gRPC, the socket bridge, Ray Serve) shares.

- :class:`Service`: leases on loaded models, chat plans, the engine thread, a thread pool.
- :func:`start_chat`, :func:`start_prompt` (:class:`TurnRequest`): a chat or prompt turn in Ollama's
  vocabulary, with the model's Modelfile defaults; :func:`load_or_unload`.
- :func:`start_turn` / :class:`Turn`: submit a turn's choices, stream or collect them, cancel when
  the caller goes away (:data:`Gone`), release the lease on every path.
- :func:`options_request`, :func:`spec_request`: requests from sampling options (Ollama's
  vocabulary, :class:`Options`; OpenAI-style explicit fields, :class:`SpecSampling`).
- :func:`embed_texts`: embeddings; :func:`rerank_documents`: a reranker's scores.
- :func:`codes_of`: an exception's HTTP status, gRPC code and bridge code (one table:
  :data:`llamarun.errors.ERROR_CODES`).

Frontends import from here and from :mod:`llamarun.runtime`'s types, never from one another.
"""

from .cancel import CallerGone, Gone, until_gone
from .conversation import TurnRequest, load_or_unload, start_chat, start_prompt
from .embed import Embedded, Reranked, embed_texts, rerank_documents
from .options import MAX_CTX, MAX_TOKENS, Options, SpeculativeOptions
from .outcome import check_finished, codes_of
from .resolve import store_resolver
from .sampling import SpecSampling, load_options, options_request, spec_request, stops, with_modelfile_options
from .service import Pieces, Service, ServingConfig
from .turn import Collected, Event, Turn, TurnPlan, start_turn

__all__ = [
    "MAX_CTX",
    "MAX_TOKENS",
    "CallerGone",
    "Collected",
    "Embedded",
    "Event",
    "Gone",
    "Options",
    "SpeculativeOptions",
    "Pieces",
    "Reranked",
    "Service",
    "ServingConfig",
    "SpecSampling",
    "Turn",
    "TurnPlan",
    "TurnRequest",
    "check_finished",
    "codes_of",
    "embed_texts",
    "load_options",
    "load_or_unload",
    "options_request",
    "rerank_documents",
    "spec_request",
    "start_chat",
    "start_prompt",
    "start_turn",
    "stops",
    "store_resolver",
    "until_gone",
    "with_modelfile_options",
]
