"""The one error hierarchy of llamarun.

Every error raised on purpose by llamarun derives from :class:`LlamarunError`.
Frontends map these to their protocol through one table, :data:`ERROR_CODES`:
each class's HTTP status, gRPC status code name and Unix-socket bridge code
(a class not in the table has its nearest listed base's codes; ``exc.codes``,
``exc.http_status``).  Messages say what to do next.

    LlamarunError
    ├── InvalidParameterError          bad input from a caller (400)
    │   ├── ContextOverflowError       prompt longer than the context (400)
    │   ├── InvalidNameError           a model name or digest fails validation (400)
    │   ├── TemplateError              a chat template failed or was unsafe (400)
    │   ├── GrammarError               a grammar/schema is invalid or too large (400)
    │   ├── UnsupportedFeatureError    the model cannot do what was asked (embeddings, images...) (400)
    │   ├── ConfigError                a setting (file, environment, flag) is invalid (400)
    │   └── ModelfileError             a Modelfile (or /api/create field) we cannot honour (400)
    ├── ModelNotFoundError             no such model in the store (404)
    ├── ConversationNotFoundError      no web-page conversation of that id (404)
    ├── ModelLoadError                 llama.cpp could not load a file (500)
    │   ├── GGUFFormatError            the file is not a well-formed GGUF (400)
    │   └── QuantizeError              llama.cpp could not quantize a model file (500)
    ├── ContextCreationError           llama.cpp could not create a context (500)
    ├── DecodeError                    llama_decode failed (500)
    │   ├── KVCacheFullError           no KV slot for the batch (503)
    │   └── DecodeAbortedError         aborted through the abort callback (499)
    ├── ClosedHandleError              use of a closed engine object (500)
    ├── RequestCancelledError          the request was cancelled (499)
    ├── DeadlineExceededError          the request's deadline passed (504)
    ├── OverloadedError                the queue is full; retry later (503)
    ├── EngineDeadError                the engine thread died (503)
    ├── InsufficientMemoryError        a model does not fit this machine (507)
    ├── RemoteServerError              a llamarun server (--host) is unreachable or failed (502)
    ├── AccessDeniedError              the caller may not do this (bad token, another user) (403)
    ├── StoreError                     the model store failed (500)
    │   ├── DigestMismatchError        downloaded bytes do not match (502)
    │   ├── DownloadError              a transfer failed (502)
    │   │   └── RedirectRefusedError   a redirect to a private/loopback address, refused (502)
    │   ├── DiskFullError              not enough free disk space (507)
    │   └── NameInUseError             a pull would replace a model under a name not given (409)
    └── SessionError                   a saved session cannot be used (400)
        ├── SessionFileError           a session file is corrupt or truncated (400)
        ├── SessionModelMismatchError  it was saved with another model (400)
        └── SessionIncompatibleError   its KV state does not fit these context settings (400)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ERROR_CODES",
    "ErrorCodes",
    "AccessDeniedError",
    "ClosedHandleError",
    "ConfigError",
    "ContextCreationError",
    "ContextOverflowError",
    "ConversationNotFoundError",
    "DeadlineExceededError",
    "DecodeAbortedError",
    "DecodeError",
    "DigestMismatchError",
    "DiskFullError",
    "DownloadError",
    "EngineDeadError",
    "GGUFFormatError",
    "GrammarError",
    "InsufficientMemoryError",
    "InvalidNameError",
    "InvalidParameterError",
    "KVCacheFullError",
    "LlamarunError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelfileError",
    "NameInUseError",
    "OverloadedError",
    "QuantizeError",
    "RedirectRefusedError",
    "RemoteServerError",
    "RequestCancelledError",
    "SessionError",
    "SessionFileError",
    "SessionIncompatibleError",
    "SessionModelMismatchError",
    "StoreError",
    "TemplateError",
    "UnsupportedFeatureError",
    "codes_of_class",
]


@dataclass(frozen=True)
class ErrorCodes:
    """How one error class is spelled by each frontend: an HTTP status, a gRPC status code name
    (``grpc.StatusCode[name]``) and the bridge's error code."""

    http: int
    grpc: str
    bridge: str


class LlamarunError(Exception):
    """Root of every error llamarun raises on purpose."""

    @property
    def codes(self) -> ErrorCodes:
        """This error's codes in every protocol (from :data:`ERROR_CODES`)."""
        return codes_of_class(type(self))

    @property
    def http_status(self) -> int:
        return self.codes.http



class InvalidParameterError(LlamarunError, ValueError):
    """A caller passed a value that is out of range or of the wrong kind."""


    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ContextOverflowError(InvalidParameterError):
    """The prompt (plus room to generate) does not fit the context window."""

    def __init__(self, message: str, *, n_prompt: int, n_ctx: int) -> None:
        super().__init__(message, field="prompt")
        self.n_prompt = n_prompt
        self.n_ctx = n_ctx


class InvalidNameError(InvalidParameterError):
    """A model name, tag or digest does not match the strict pattern."""


class TemplateError(InvalidParameterError):
    """A chat template failed to render, was unsafe, or exceeded its bounds."""


class GrammarError(InvalidParameterError):
    """A grammar or JSON schema is invalid, unsupported, or too large."""


class UnsupportedFeatureError(InvalidParameterError):
    """The model (or this server) cannot do what the request asks: embeddings, images, thinking..."""


class ConfigError(InvalidParameterError):
    """A setting is invalid; ``key`` names it and ``source`` says where it came from."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message, field=key)
        self.key = key
        self.source = source


class ModelfileError(InvalidParameterError):
    """A Modelfile (or ``/api/create`` field) we cannot honour; ``line`` is its 1-based line, 0 if none."""

    def __init__(self, message: str, *, line: int = 0, field: str | None = None) -> None:
        super().__init__(f"Modelfile line {line}: {message}" if line else message, field=field)
        self.line = line


class ModelNotFoundError(LlamarunError, LookupError):
    """No model of that name exists in the store."""



class ConversationNotFoundError(LlamarunError, LookupError):
    """No conversation of the web page has that id."""


class ModelLoadError(LlamarunError):
    """llama.cpp could not load a model file."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class GGUFFormatError(ModelLoadError):
    """The file is not a well-formed GGUF file (checked before llama.cpp sees it)."""



class QuantizeError(ModelLoadError):
    """llama.cpp could not quantize a model file (nothing is stored)."""


class ContextCreationError(LlamarunError):
    """llama.cpp could not create a context (usually: not enough memory)."""


class DecodeError(LlamarunError):
    """llama_decode returned an error code."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class KVCacheFullError(DecodeError):
    """No KV cache slot for the batch; shrink the batch or free sequences."""



class DecodeAbortedError(DecodeError):
    """The decode was aborted through the abort callback."""



class ClosedHandleError(LlamarunError, RuntimeError):
    """An engine object was used after close()."""


class RequestCancelledError(LlamarunError):
    """The request was cancelled before it finished."""



class DeadlineExceededError(LlamarunError, TimeoutError):
    """The request's deadline passed."""



class OverloadedError(LlamarunError):
    """The waiting queue is full; retry after ``retry_after`` seconds."""


    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineDeadError(LlamarunError):
    """The engine thread of a model died; the model must be reloaded."""



class InsufficientMemoryError(LlamarunError, MemoryError):
    """A model at the requested size will not fit this machine."""



class RemoteServerError(LlamarunError):
    """A llamarun (or Ollama) server the CLI talks to (``--host``) cannot be reached or answered badly."""



class AccessDeniedError(LlamarunError):
    """The caller is not allowed to do this (a wrong token, a command only the server's user may send)."""


class StoreError(LlamarunError):
    """The model store failed to complete an operation."""


class DigestMismatchError(StoreError):
    """Downloaded bytes did not match the expected SHA-256."""



class DownloadError(StoreError):
    """A transfer failed after its retries."""



class RedirectRefusedError(DownloadError):
    """A server redirected a download somewhere the redirect policy forbids (SSRF guard)."""


class DiskFullError(StoreError, OSError):
    """Not enough free disk space for the operation."""



class NameInUseError(StoreError):
    """A pull would replace a model under a name the caller did not give (it came from the source)."""


class SessionError(LlamarunError):
    """A saved session (its conversation and KV state) cannot be used."""


class SessionFileError(SessionError):
    """A session file is not one, is corrupt (its checksum fails) or is truncated."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class SessionModelMismatchError(SessionError):
    """A session file was saved with another model (its digest differs)."""


class SessionIncompatibleError(SessionError):
    """A session file's KV state does not fit this model's context settings (KV layout, size)."""


# The one table of protocol codes, in the order of the tree above.
ERROR_CODES: Mapping[type[LlamarunError], ErrorCodes] = {
    LlamarunError: ErrorCodes(500, "INTERNAL", "internal"),
    InvalidParameterError: ErrorCodes(400, "INVALID_ARGUMENT", "invalid_parameter"),
    ContextOverflowError: ErrorCodes(400, "FAILED_PRECONDITION", "context_overflow"),
    InvalidNameError: ErrorCodes(400, "INVALID_ARGUMENT", "invalid_name"),
    TemplateError: ErrorCodes(400, "INVALID_ARGUMENT", "template_error"),
    GrammarError: ErrorCodes(400, "INVALID_ARGUMENT", "grammar_error"),
    UnsupportedFeatureError: ErrorCodes(400, "INVALID_ARGUMENT", "unsupported"),
    ConfigError: ErrorCodes(400, "INVALID_ARGUMENT", "config_error"),
    ModelfileError: ErrorCodes(400, "INVALID_ARGUMENT", "modelfile_error"),
    ModelNotFoundError: ErrorCodes(404, "NOT_FOUND", "model_not_found"),
    ConversationNotFoundError: ErrorCodes(404, "NOT_FOUND", "conversation_not_found"),
    ModelLoadError: ErrorCodes(500, "INTERNAL", "model_load_failed"),
    GGUFFormatError: ErrorCodes(400, "INVALID_ARGUMENT", "bad_gguf"),
    QuantizeError: ErrorCodes(500, "INTERNAL", "quantize_failed"),
    ContextCreationError: ErrorCodes(500, "RESOURCE_EXHAUSTED", "context_creation_failed"),
    DecodeError: ErrorCodes(500, "INTERNAL", "decode_failed"),
    KVCacheFullError: ErrorCodes(503, "UNAVAILABLE", "kv_cache_full"),
    DecodeAbortedError: ErrorCodes(499, "CANCELLED", "cancelled"),
    ClosedHandleError: ErrorCodes(500, "INTERNAL", "closed"),
    RequestCancelledError: ErrorCodes(499, "CANCELLED", "cancelled"),
    DeadlineExceededError: ErrorCodes(504, "DEADLINE_EXCEEDED", "deadline_exceeded"),
    OverloadedError: ErrorCodes(503, "RESOURCE_EXHAUSTED", "overloaded"),
    EngineDeadError: ErrorCodes(503, "UNAVAILABLE", "engine_dead"),
    InsufficientMemoryError: ErrorCodes(507, "RESOURCE_EXHAUSTED", "insufficient_memory"),
    RemoteServerError: ErrorCodes(502, "UNAVAILABLE", "remote_failed"),
    AccessDeniedError: ErrorCodes(403, "PERMISSION_DENIED", "access_denied"),
    StoreError: ErrorCodes(500, "INTERNAL", "store_error"),
    DigestMismatchError: ErrorCodes(502, "DATA_LOSS", "digest_mismatch"),
    DownloadError: ErrorCodes(502, "UNAVAILABLE", "download_failed"),
    RedirectRefusedError: ErrorCodes(502, "PERMISSION_DENIED", "redirect_refused"),
    DiskFullError: ErrorCodes(507, "RESOURCE_EXHAUSTED", "disk_full"),
    NameInUseError: ErrorCodes(409, "ALREADY_EXISTS", "name_in_use"),
    SessionError: ErrorCodes(400, "FAILED_PRECONDITION", "session_error"),
    SessionFileError: ErrorCodes(400, "DATA_LOSS", "session_file_corrupt"),
    SessionModelMismatchError: ErrorCodes(400, "FAILED_PRECONDITION", "session_model_mismatch"),
    SessionIncompatibleError: ErrorCodes(400, "FAILED_PRECONDITION", "session_incompatible"),
}


def codes_of_class(cls: type[BaseException]) -> ErrorCodes:
    """The codes of ``cls``: its own row, else its nearest base's; unknown errors are internal."""
    for base in cls.__mro__:
        codes = ERROR_CODES.get(base)  # type: ignore[call-overload]
        if codes is not None:
            return codes
    return ERROR_CODES[LlamarunError]
