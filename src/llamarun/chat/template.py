"""A model's chat template: Jinja from the GGUF in a bounded sandbox, or llama.cpp's built-ins.

Only templates read from a model file are rendered (``trusted=True``, done by
:meth:`ChatTemplate.for_model`); a template sent with a request is never
rendered (vLLM PR #50300) — a request may only name one of llama.cpp's
built-in templates (:meth:`ChatTemplate.builtin`), which are C++ code, not Jinja.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import TemplateError
from ..types import PromptSegments
from .clienttext import ClientText
from .fallback import TemplateChoice, choose_builtin
from .messages import fold_tool_messages, merge_system_into_user, normalize_messages, prepend_system
from .sandbox import RenderLimits, SandboxEnvironment
from .thinking import thinking_markers
from .tools import Tool, ToolCallFormat, parse_tools, tools_system_prompt

if TYPE_CHECKING:
    from ..engine import Model, ModelInfo

__all__ = ["ChatTemplate", "builtin_names"]

logger = logging.getLogger(__name__)

_VARIANT_PREFIX = "tokenizer.chat_template."
_RESERVED = frozenset({"messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token"})
_PROBE_TOOL = Tool("llamarun_probe_tool", "probe", {"type": "object", "properties": {"llamarun_arg": {}}})
_PROBE_MARK = "llamarun-probe-7f3a"


def builtin_names() -> list[str]:
    from ..engine import builtin_template_names

    return builtin_template_names()


def _apply_builtin(name: str, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
    from ..engine import apply_builtin_template

    return apply_builtin_template(name, messages, add_generation_prompt=add_generation_prompt)


def _documents_text(documents: Sequence[Any]) -> str:
    lines = ["Use the following documents to answer:"]
    for i, doc in enumerate(documents, 1):
        if isinstance(doc, Mapping):
            title = doc.get("title")
            body = doc.get("text", doc.get("content", ""))
            lines.append(f"[{i}] {title}\n{body}" if title else f"[{i}] {body}")
        else:
            lines.append(f"[{i}] {doc}")
    return "\n\n".join(lines)


def _arguments_as_text(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For templates that print call arguments as given: JSON text instead of objects."""
    for message in messages:
        for call in message.get("tool_calls", ()):
            args = call["function"]["arguments"]
            if not isinstance(args, str):
                call["function"]["arguments"] = json.dumps(args, ensure_ascii=False)
    return messages


def _fallback_choice(vocab: Any, info: ModelInfo, fallback: str | None) -> TemplateChoice:
    if fallback is not None:
        return TemplateChoice(fallback, f"the GGUF has no chat template; {fallback!r} was named for it")
    if vocab is None:
        return choose_builtin(())
    pre = info.metadata.get("tokenizer.ggml.pre")
    return choose_builtin(vocab.special_texts(), pre_tokenizer=pre)


class ChatTemplate:
    """Renders chat messages into a model's prompt text.

    ``source`` is Jinja from a model file (requires ``trusted=True``) or None
    for llama.cpp's built-in template ``fallback``.  A Jinja source that does
    not compile falls back to the built-in llama.cpp recognises in it, else to
    ``fallback``.  Rendering is bounded by ``limits``; every failure is a
    :class:`~llamarun.errors.TemplateError` (HTTP 400).

    ``control_texts`` are the texts of the vocabulary's control tokens
    (:meth:`for_model` reads them from a loaded model): with them,
    :meth:`render_segments` keeps every client string from becoming a control
    token (see :mod:`llamarun.chat.clienttext`).
    """

    def __init__(self, source: str | None, *, trusted: bool = False, bos_token: str = "", eos_token: str = "",
                 fallback: str = "chatml", limits: RenderLimits | None = None,
                 control_texts: Collection[str] | None = None) -> None:
        self.limits = limits or RenderLimits()
        self.client_text = ClientText(control_texts) if control_texts is not None else None
        self.bos_token, self.eos_token = bos_token, eos_token
        self.source = source
        self._env: SandboxEnvironment | None = None
        self._template: Any = None
        self.builtin_name: str | None = None
        self.choice = TemplateChoice("own", "the GGUF's tokenizer.chat_template")
        if source is None:
            self.choice = TemplateChoice(fallback, "named")
            self.builtin_name = self._check_builtin(fallback)
            return
        if not trusted:
            raise TemplateError("chat templates are rendered only from model files; a request may name a "
                                "built-in template instead", field="template")
        if len(source) > self.limits.max_source_chars:
            raise TemplateError(f"chat template of {len(source)} characters is larger than the limit of "
                                f"{self.limits.max_source_chars}")
        self._compile(source, fallback)

    def _compile(self, source: str, fallback: str) -> None:
        env = SandboxEnvironment()
        try:
            self._template = env.from_string(source)
            self._env = env
        except RecursionError:
            logger.warning("chat template nests too deeply to compile; using a built-in template")
            self.builtin_name = self._check_builtin(fallback)
        except Exception as exc:  # noqa: BLE001 - any compile failure of an untrusted-quality file
            logger.warning("chat template does not compile (%s); using a built-in template", exc)
            try:
                _apply_builtin(source, [{"role": "user", "content": "x"}], True)
                self.builtin_name = source  # llama.cpp recognises its markers
            except TemplateError:
                self.builtin_name = self._check_builtin(fallback)

    @staticmethod
    def _check_builtin(name: str) -> str:
        if name not in builtin_names():
            raise TemplateError(f"unknown built-in chat template {name!r}; known: {', '.join(builtin_names())}",
                                field="template")
        return name

    # -- construction ------------------------------------------------------------

    @classmethod
    def builtin(cls, name: str, *, limits: RenderLimits | None = None,
                control_texts: Collection[str] | None = None) -> ChatTemplate:
        """One of llama.cpp's built-in templates by name (``chatml``, ``llama3``, ...): safe for requests."""
        return cls(None, fallback=name, limits=limits, control_texts=control_texts)

    @classmethod
    def for_model(cls, model: Model | ModelInfo, *, variant: str | None = None, fallback: str | None = None,
                  bos_token: str | None = None, eos_token: str | None = None,
                  limits: RenderLimits | None = None) -> ChatTemplate:
        """The template stored in a model file (or its named ``variant``), trusted as the model's own.

        Given a :class:`~llamarun.engine.Model`, the BOS/EOS texts come from its
        vocabulary; given only :class:`~llamarun.engine.ModelInfo`, pass them.
        Without a template of its own the model gets the built-in ``fallback``, or
        (None) the one its vocabulary's special tokens call for (:mod:`.fallback`;
        ``choice`` says which and why).
        """
        vocab = getattr(model, "vocab", None)  # a loaded Model, not just its ModelInfo
        info: ModelInfo = model.info if vocab is not None else model  # type: ignore[union-attr,assignment]
        if variant is None:
            source = info.chat_template
        else:
            source = model.chat_template(variant) if vocab is not None else None  # type: ignore[union-attr]
            source = source or info.metadata.get(_VARIANT_PREFIX + variant)
            if source is None:
                known = ", ".join(cls.variants(info)) or "none"
                raise TemplateError(f"the model has no chat template named {variant!r} (variants: {known})",
                                    field="template")
        control_texts = None
        if vocab is not None:
            control_texts = vocab.control_texts()
            if bos_token is None and 0 <= vocab.bos < vocab.n_tokens:
                bos_token = vocab.piece(vocab.bos, special=True).decode("utf-8", "replace")
            if eos_token is None and 0 <= vocab.eos < vocab.n_tokens:
                eos_token = vocab.piece(vocab.eos, special=True).decode("utf-8", "replace")
        choice = _fallback_choice(vocab, info, fallback)
        built = cls(source, trusted=True, bos_token=bos_token or "", eos_token=eos_token or "", fallback=choice.name,
                    limits=limits, control_texts=control_texts)
        if built.is_builtin and source is None:
            built.choice = choice
        elif built.is_builtin:
            detected = built.builtin_name == source  # llama.cpp recognised the markers of the uncompilable Jinja
            built.choice = TemplateChoice(
                "llama.cpp's reading of the GGUF's template" if detected else choice.name,
                "the GGUF's chat template does not compile" + ("" if detected else f"; {choice.reason}"))
        return built

    @staticmethod
    def variants(info: ModelInfo) -> tuple[str, ...]:
        """Names of a model's extra templates (``tokenizer.chat_template.<name>``)."""
        return tuple(sorted(k[len(_VARIANT_PREFIX):] for k in info.metadata if k.startswith(_VARIANT_PREFIX)))

    # -- what the template can do --------------------------------------------------

    @property
    def is_builtin(self) -> bool:
        return self._template is None

    @functools.cached_property
    def supports_tools(self) -> bool:
        """Whether tool definitions passed to the template appear in its output."""
        return self._probe([{"role": "user", "content": "hi"}], _PROBE_TOOL.name, with_tools=True)

    @functools.cached_property
    def _tool_call_arguments(self) -> str | None:
        """How the template wants call arguments: "object" (Hugging Face convention), "string", or None."""
        for style in ("object", "string"):
            args: Any = {"llamarun_arg": _PROBE_MARK}
            if style == "string":
                args = json.dumps(args)
            call = {"id": "call00001", "type": "function", "function": {"name": _PROBE_TOOL.name, "arguments": args}}
            messages = [{"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "", "tool_calls": [call]},
                        {"role": "tool", "content": "ok", "tool_call_id": "call00001", "name": _PROBE_TOOL.name}]
            if self._probe(messages, _PROBE_MARK, with_tools=True):
                return style
        return None

    @property
    def supports_tool_calls(self) -> bool:
        """Whether assistant ``tool_calls`` appear in the output."""
        return self._tool_call_arguments is not None

    @functools.cached_property
    def supports_tool_results(self) -> bool:
        """Whether ``role: tool`` messages appear in the output."""
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                    {"role": "tool", "content": _PROBE_MARK, "tool_call_id": "call00001", "name": _PROBE_TOOL.name}]
        return self._probe(messages, _PROBE_MARK, with_tools=True) or self._probe(messages, _PROBE_MARK)

    @functools.cached_property
    def supports_system_role(self) -> bool:
        messages = [{"role": "system", "content": _PROBE_MARK}, {"role": "user", "content": "hi"}]
        return self._probe(messages, _PROBE_MARK) or self._probe(messages, _PROBE_MARK, with_tools=True)

    @functools.cached_property
    def tool_call_format(self) -> ToolCallFormat:
        return ToolCallFormat.detect(self.source)

    @functools.cached_property
    def thinking_markers(self) -> tuple[str, str] | None:
        """The (start, end) reasoning markers this template uses, if any."""
        return thinking_markers(self.source)

    def _probe(self, messages: list[dict[str, Any]], mark: str, *, with_tools: bool = False) -> bool:
        if self.is_builtin:
            return False
        limits = RenderLimits(max_seconds=min(0.5, self.limits.max_seconds),
                              max_steps=min(50_000, self.limits.max_steps))
        try:
            return mark in self._render_jinja(messages, [_PROBE_TOOL] if with_tools else None, None, True, {},
                                              limits=limits)
        except TemplateError:
            return False

    # -- rendering -------------------------------------------------------------------

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
               tools: Sequence[Tool | Mapping[str, Any]] | None = None, documents: Sequence[Any] | None = None,
               **extra: Any) -> str:
        """The prompt for ``messages`` (OpenAI or Ollama shape), ending with the
        assistant's turn header when ``add_generation_prompt``.  Extra keyword
        arguments reach the template (``enable_thinking=False`` ...)."""
        return self.render_segments(messages, add_generation_prompt=add_generation_prompt, tools=tools,
                                    documents=documents, **extra).text

    def render_segments(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
                        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
                        documents: Sequence[Any] | None = None, **extra: Any) -> PromptSegments:
        """As :meth:`render`, split into the template's own text (tokenized with control-token
        parsing) and client text that would otherwise become control tokens (tokenized plain).
        Without ``control_texts`` the whole prompt is one part parsed with specials."""
        clash = _RESERVED & extra.keys()
        if clash:
            raise TemplateError(f"template variables {sorted(clash)} cannot be overridden", field="messages")
        tool_list = parse_tools(tools)
        msgs = normalize_messages(messages, short_ids=self.tool_call_format is ToolCallFormat.MISTRAL)
        msgs, native_tools = self._adapt_tools(msgs, tool_list)
        if documents and (self.is_builtin or "documents" not in (self.source or "")):
            msgs = prepend_system(msgs, _documents_text(documents))
            documents = None
        if not self.is_builtin and any(m["role"] == "system" for m in msgs) and not self.supports_system_role:
            msgs = merge_system_into_user(msgs)
        shown = tool_list if native_tools else None

        def run(mark: Callable[[Any], Any]) -> str:
            if self.is_builtin:
                return _apply_builtin(self.builtin_name or "chatml", mark(msgs), add_generation_prompt)
            return self._render_jinja(msgs, shown, documents, add_generation_prompt, extra, mark=mark)

        return (self.client_text or ClientText(())).render(run)

    def _adapt_tools(self, msgs: list[dict[str, Any]], tools: tuple[Tool, ...]) -> tuple[list[dict[str, Any]], bool]:
        """Fold what the template cannot show into plain text; returns (messages, tools shown natively).

        A template that does not know tools at all gets every tool turn as plain text.
        """
        native_tools = bool(tools) and self.supports_tools
        has_calls = any(m.get("tool_calls") for m in msgs)
        fold_calls = has_calls and not (self.supports_tools and self.supports_tool_calls)
        fold_results = any(m["role"] == "tool" for m in msgs) and not (
            self.supports_tools and self.supports_tool_results)
        if (tools and not native_tools) or fold_calls or fold_results:
            system_text = tools_system_prompt(tools) if tools and not native_tools else ""
            msgs = fold_tool_messages(msgs, calls=fold_calls, results=fold_results, system_text=system_text)
        if has_calls and not fold_calls and self._tool_call_arguments == "string":
            msgs = _arguments_as_text(msgs)
        return msgs, native_tools

    def _render_jinja(self, messages: list[dict[str, Any]], tools: Sequence[Tool] | None,
                      documents: Sequence[Any] | None, add_generation_prompt: bool, extra: Mapping[str, Any], *,
                      limits: RenderLimits | None = None, mark: Callable[[Any], Any] = lambda v: v) -> str:
        assert self._env is not None and self._template is not None
        context = {**mark(dict(extra)), "messages": mark(messages),
                   "tools": mark([t.to_dict() for t in tools]) if tools else None,
                   "documents": mark(list(documents)) if documents else None,
                   "add_generation_prompt": add_generation_prompt,
                   "bos_token": self.bos_token, "eos_token": self.eos_token}
        try:
            return self._env.run(limits or self.limits, lambda: self._template.generate(**context))
        except TemplateError:
            raise
        except RecursionError:
            raise TemplateError("chat template recursed too deeply") from None
        except MemoryError:
            raise TemplateError("chat template ran out of memory") from None
        except Exception as exc:  # noqa: BLE001 - anything a template does wrong is the template's error
            raise TemplateError(f"chat template failed to render: {type(exc).__name__}: {exc}"[:800]) from None
