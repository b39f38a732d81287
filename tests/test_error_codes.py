"""The one table of protocol codes covers every error class, and nothing bypasses it."""

from __future__ import annotations

import llamarun.errors as errors
from llamarun.serving import CallerGone, codes_of


def _error_classes() -> list[type]:
    return [obj for name in errors.__all__ for obj in [getattr(errors, name)]
            if isinstance(obj, type) and issubclass(obj, errors.LlamarunError)]


def test_every_error_class_has_its_row_and_no_class_sets_its_own_status() -> None:
    for cls in _error_classes():
        assert cls in errors.ERROR_CODES, f"{cls.__name__} has no row in ERROR_CODES"
        assert "http_status" not in vars(cls) or cls is errors.LlamarunError, \
            f"{cls.__name__} sets http_status: give it a row in ERROR_CODES instead"


def test_codes_of_any_exception() -> None:
    assert codes_of(errors.ModelNotFoundError("x")).grpc == "NOT_FOUND"
    assert codes_of(CallerGone()).http == 499
    assert codes_of(RuntimeError("bug")).grpc == "INTERNAL"
    for cls in _error_classes():
        assert errors.codes_of_class(cls) == errors.ERROR_CODES[cls]
