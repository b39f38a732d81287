"""A bounded Jinja sandbox for chat templates from model files.

GGUF files come from the internet and their ``tokenizer.chat_template`` is
code (llama-cpp-python CVE-2024-34359).  Templates are rendered in jinja2's
``ImmutableSandboxedEnvironment`` (no Python internals, no mutation of what we
pass in) with these additions:

- reaching for internals (``__globals__``, ``__subclasses__``, ``_private``,
  any attribute of a function, method, class or module) raises at once instead
  of quietly rendering as empty;
- ``lipsum`` and the loader are gone (no ``include``/``import``/``extends``);
- every attribute, item, call, operator and filter ticks a budget with a step
  count and a deadline, and values they produce are size-checked, so runaway
  loops, recursion and string/number bombs stop with a :class:`TemplateError`;
- the output is streamed and capped in size.

The helpers real templates expect (Hugging Face ``apply_chat_template``
conventions) are provided: ``raise_exception``, ``strftime_now``, a ``tojson``
filter that does not HTML-escape, ``loopcontrols`` and the ``{% generation %}``
block tag.
"""

from __future__ import annotations

import json
import re
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from ..errors import InvalidParameterError, TemplateError

__all__ = ["RenderLimits", "SandboxEnvironment"]

_OPAQUE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.BuiltinMethodType,
           types.ModuleType, type, types.CodeType, types.FrameType, types.GeneratorType)
_WIDTH = re.compile(r"\d+")
_ITER_FILTER = "llamarun_loop_guard"
_SIZED_FILTERS = frozenset({"center", "indent", "batch", "slice", "wordwrap"})  # an int argument sizes the output


@dataclass(frozen=True)
class RenderLimits:
    """Bounds on one render: wall time, steps (hooked operations) and output size."""

    max_seconds: float = 2.0
    max_steps: int = 2_000_000
    max_output_chars: int = 4 << 20
    max_source_chars: int = 1 << 20

    def __post_init__(self) -> None:
        if not 0 < self.max_seconds <= 3600:
            raise InvalidParameterError(f"RenderLimits.max_seconds must be in (0, 3600], got {self.max_seconds!r}")
        for name in ("max_steps", "max_output_chars", "max_source_chars"):
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"RenderLimits.{name} must be positive")


class _Budget:
    """Steps and deadline of the render in progress on this thread."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.steps = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise TemplateError(f"chat template exceeded {self.limits.max_steps} steps (runaway loop?)")
        if time.monotonic() > self.deadline:
            raise TemplateError(f"chat template took longer than {self.limits.max_seconds} s to render")

    def check(self, value: Any) -> Any:
        """Reject values too large to be part of a prompt (strings, lists, huge ints)."""
        cap = self.limits.max_output_chars
        if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) and len(value) > cap:
            raise TemplateError(f"chat template built a value of more than {cap} items")
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
            raise TemplateError("chat template built an integer too large to print")
        return value


class _GenerationTag(Extension):
    """``{% generation %}...{% endgeneration %}`` (Hugging Face's assistant-mask marker): renders its body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _raise_exception(message: Any = "") -> None:
    raise TemplateError(f"chat template raised an error: {str(message)[:500]}")


def _strftime_now(fmt: Any = "%Y-%m-%d") -> str:
    if not isinstance(fmt, str) or len(fmt) > 200:
        raise TemplateError("strftime_now takes a short format string")
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    """Hugging Face's tojson: plain json.dumps (no HTML escaping), keyword options allowed."""
    if indent is not None and (not isinstance(indent, int) or not 0 <= indent <= 16):
        raise TemplateError("tojson indent must be an integer between 0 and 16")
    try:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys, default=str)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"tojson failed: {exc}") from None


def _check_widths(text: Any, cap: int) -> None:
    """Refuse printf/format specs whose widths would build a huge string."""
    if isinstance(text, str) and any(len(d) > 7 or int(d) > cap for d in _WIDTH.findall(text)):
        raise TemplateError("chat template asked for a formatted field wider than the output limit")


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The bounded sandbox; one per :class:`~llamarun.chat.ChatTemplate`, safe across threads."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(self) -> None:
        super().__init__(trim_blocks=True, lstrip_blocks=True, autoescape=False, loader=None,
                         extensions=["jinja2.ext.loopcontrols", _GenerationTag])
        self._local = threading.local()
        self.globals.pop("lipsum", None)
        self.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        self.filters["tojson"] = _tojson
        self.filters = {name: self._guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[_ITER_FILTER] = self._ticking

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, then make every ``{% for %}`` tick the budget once per item."""
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Filter(loop.iter, _ITER_FILTER, [], [], None, None, lineno=loop.lineno)
        return tree

    def _ticking(self, iterable: Any) -> Iterator[Any]:
        budget = self.budget()
        for item in iterable:
            budget.tick()
            yield item

    # -- the budget ------------------------------------------------------------

    def budget(self) -> _Budget:
        budget = getattr(self._local, "budget", None)
        if budget is None:
            raise TemplateError("chat templates render only through ChatTemplate.render")
        return budget

    def run(self, limits: RenderLimits, chunks: Callable[[], Iterator[str]]) -> str:
        """Consume a template's output under ``limits`` on this thread."""
        self._local.budget = budget = _Budget(limits)
        out: list[str] = []
        size = 0
        try:
            for chunk in chunks():
                budget.tick()
                size += len(chunk)
                if size > limits.max_output_chars:
                    raise TemplateError(f"chat template output exceeded {limits.max_output_chars} characters")
                out.append(chunk)
        finally:
            self._local.budget = None
        return "".join(out)

    # -- hooks -----------------------------------------------------------------

    def _guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        env = self
        passes_context = hasattr(func, "jinja_pass_arg")

        def guarded(*args: Any, **kwargs: Any) -> Any:
            budget = env.budget()
            budget.tick()
            cap = budget.limits.max_output_chars
            for value in (*args, *kwargs.values()):
                budget.check(value)
                if name in _SIZED_FILTERS and isinstance(value, int) and not isinstance(value, bool) and (
                        abs(value) > cap):
                    raise TemplateError(f"filter {name!r} got a size larger than the output limit")
            values = args[1:] if passes_context else args  # the context/environment comes first
            if name == "format" and values:
                _check_widths(values[0], cap)
            if name == "replace" and len(values) >= 3 and isinstance(values[0], str):
                s, old, new = values[0], str(values[1]), str(values[2])
                grow = (s.count(old) if old else len(s) + 1) * len(new)
                if len(s) + grow > cap:
                    raise TemplateError("filter 'replace' would exceed the output limit")
            return budget.check(func(*args, **kwargs))

        for attr in ("jinja_pass_arg",):  # keep pass_context / pass_eval_context markers
            if hasattr(func, attr):
                setattr(guarded, attr, getattr(func, attr))
        return guarded

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, _OPAQUE):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise TemplateError(f"chat template tried to reach {attribute!r} of a {type(obj).__name__} object; "
                            "unsafe templates are not rendered")

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget = self.budget()
        budget.tick()
        if isinstance(obj, _OPAQUE):
            raise TemplateError(f"chat template tried to reach {attribute!r} of a {type(obj).__name__}; "
                                "unsafe templates are not rendered")
        return budget.check(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget = self.budget()
        budget.tick()
        if isinstance(obj, _OPAQUE):
            raise TemplateError(f"chat template tried to index a {type(obj).__name__}; "
                                "unsafe templates are not rendered")
        return budget.check(super().getitem(obj, argument))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = __self.budget()
        budget.tick()
        cap = budget.limits.max_output_chars
        if getattr(__obj, "__name__", "") in ("format", "format_map"):  # jinja wraps str.format
            _check_widths(getattr(getattr(__obj, "__wrapped__", __obj), "__self__", ""), cap)
            for value in (*args, *kwargs.values()):
                if isinstance(value, int) and not isinstance(value, bool) and abs(value) > cap:
                    raise TemplateError("chat template asked for a formatted field wider than the output limit")
        for value in (*args, *kwargs.values()):
            budget.check(value)
        if getattr(__obj, "__name__", "") in ("ljust", "rjust", "center", "zfill", "expandtabs"):
            if any(isinstance(a, int) and a > cap for a in args):
                raise TemplateError("chat template asked for a string wider than the output limit")
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        except SecurityError as exc:
            raise TemplateError(f"chat template made an unsafe call: {exc}") from None
        return budget.check(result)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = self.budget()
        budget.tick()
        cap = budget.limits.max_output_chars
        if operator == "**" and isinstance(right, int) and (abs(right) > 64 or (
                isinstance(left, int) and abs(left) > (1 << 64))):
            raise TemplateError("chat template computed a power too large to print")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > cap:
                    raise TemplateError("chat template built a value larger than the output limit")
        if operator == "%" and isinstance(left, str):
            _check_widths(left, cap)
        return budget.check(super().call_binop(context, operator, left, right))

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        self.budget().tick()
        return super().call_unop(context, operator, arg)
