"""Exceptions -> gRPC statuses, from the one table (:func:`llamarun.serving.codes_of`).

Every status carries google.rpc details: ``ErrorInfo`` (llamarun's error code as the
reason, domain ``llamarun``), ``BadRequest`` naming the field of an invalid argument,
``RetryInfo`` with the delay when the queue is full. Unknown exceptions are INTERNAL
without their details, never UNKNOWN.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import InvalidParameterError, LlamarunError, OverloadedError
from ..serving import CallerGone, codes_of

__all__ = ["status_of"]

logger = logging.getLogger(__name__)


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _message(exc: BaseException) -> str:
    if isinstance(exc, LlamarunError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, CallerGone):
        return "the call was cancelled (by its caller or by Abort)"
    return "internal error"


def status_of(exc: BaseException) -> grpc.Status:
    """The status (code, message, details in the trailing metadata) for ``exc``."""
    codes = codes_of(exc)
    if codes.grpc == "INTERNAL" and not isinstance(exc, LlamarunError):
        logger.exception("internal error in a gRPC call", exc_info=exc)
    message = _message(exc)
    details = [_packed(error_details_pb2.ErrorInfo(reason=codes.bridge, domain="llamarun"))]
    if isinstance(exc, InvalidParameterError) and exc.field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=message)
        details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    if isinstance(exc, OverloadedError):
        delay = duration_pb2.Duration(seconds=max(1, math.ceil(exc.retry_after)))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=getattr(code_pb2, codes.grpc), message=message[:4000], details=details)
    return rpc_status.to_status(status)
