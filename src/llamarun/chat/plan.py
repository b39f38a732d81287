"""One chat request from messages to parsed output: the API the frontends call.

    plan = prepare_chat(template, messages, tools=..., tool_choice=..., response_format=...)
    text = <generate from plan.prompt with grammar=plan.grammar>
    out = plan.parse(text)            # ChatOutput(content, thinking, tool_calls)

or, streaming: ``parser = plan.stream_parser()``; ``parser.feed(delta)`` gives
thinking/content deltas that are safe to send; ``parser.finish()`` gives the
rest and the whole :class:`ChatOutput` (tool calls are only known at the end).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidParameterError
from ..grammar import GrammarLimits, check_gbnf, response_format_grammar
from ..types import PromptSegments
from .template import ChatTemplate
from .thinking import ThinkingSplitter, split_thinking, thinking_token_count
from .toolcalls import ToolCall, parse_tool_calls
from .tools import Tool, ToolCallFormat, ToolChoice, parse_tools, tool_call_grammar

__all__ = ["ChatDelta", "ChatOutput", "ChatPlan", "ChatStreamParser", "prepare_chat"]

_CALL_MARKERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>")
_CALL_STARTS = ("{", "[", "```")


@dataclass(frozen=True)
class ChatOutput:
    """A parsed assistant turn."""

    content: str
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    def to_message(self) -> dict[str, Any]:
        """As an assistant message to append to the conversation for the next turn."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.thinking:
            message["thinking"] = self.thinking
        if self.tool_calls:
            message["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return message


@dataclass(frozen=True)
class ChatDelta:
    """Text safe to stream now."""

    thinking: str = ""
    content: str = ""


@dataclass(frozen=True)
class ChatPlan:
    """What to generate (``prompt``, ``grammar``) and how to read the result.

    ``segments`` is ``prompt`` split for tokenizing (the template's text with
    control-token parsing, client text that contains control-token text
    without): generate from it, not from ``prompt``.  It is None only when the
    template was built without the vocabulary's control tokens.
    """

    prompt: str
    grammar: str | None = None
    segments: PromptSegments | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=lambda: ToolChoice("none"))
    tool_format: ToolCallFormat = ToolCallFormat.JSON
    thinking_markers: tuple[str, str] | None = None
    starts_in_thinking: bool = False

    @property
    def prompt_input(self) -> PromptSegments | str:
        """What to tokenize: ``segments`` (``prompt`` when the template knows no control tokens)."""
        return self.segments if self.segments is not None else self.prompt

    @property
    def parses_tool_calls(self) -> bool:
        return bool(self.tools) and self.tool_choice.mode != "none"

    def parse(self, text: str) -> ChatOutput:
        """Split generated text into thinking, content and tool calls."""
        thinking, content = "", text
        if self.thinking_markers or self.starts_in_thinking:
            start, end = self.thinking_markers or ("<think>", "</think>")
            thinking, content = split_thinking(text, start, end, in_thinking=self.starts_in_thinking)
        calls: tuple[ToolCall, ...] = ()
        if self.parses_tool_calls:
            content, calls = parse_tool_calls(content, self.tools)
        return ChatOutput(content=content.strip(), thinking=thinking.strip(), tool_calls=calls)

    def reasoning_tokens(self, pieces: Iterable[bytes]) -> int:
        """How many of the generated tokens (their bytes, in order) :meth:`parse` reads as thinking."""
        if not (self.thinking_markers or self.starts_in_thinking):
            return 0
        start, end = self.thinking_markers or ("<think>", "</think>")
        return thinking_token_count(pieces, start, end, in_thinking=self.starts_in_thinking)

    def stream_parser(self) -> ChatStreamParser:
        return ChatStreamParser(self)


class ChatStreamParser:
    """Streams thinking and content; holds content back once it may be a tool call."""

    def __init__(self, plan: ChatPlan) -> None:
        self._plan = plan
        markers = plan.thinking_markers or ("<think>", "</think>")
        self._splitter = (ThinkingSplitter(*markers, in_thinking=plan.starts_in_thinking)
                          if plan.thinking_markers or plan.starts_in_thinking else None)
        self._text: list[str] = []
        self._held = ""  # content not yet sent
        self._sent: list[str] = []  # content sent so far, in pieces (joined once, at the end)
        self._holding_all = False

    def feed(self, text: str) -> ChatDelta:
        self._text.append(text)
        thinking, content = self._splitter.feed(text) if self._splitter else ("", text)
        return ChatDelta(thinking, self._release(content))

    def _release(self, content: str) -> str:
        self._held += content
        if not self._sent:
            self._held = self._held.lstrip()  # as ChatOutput.content, which is stripped
        if self._holding_all:
            return ""
        if self._plan.parses_tool_calls:
            out = self._safe_prefix()
        else:
            out, self._held = self._held, ""
        if out:
            self._sent.append(out)
        return out

    def _safe_prefix(self) -> str:
        """Content that cannot be part of a tool call; the rest stays held."""
        held = self._held
        if not self._sent and not held:
            return ""  # nothing yet: the call may still start
        if not self._sent and held.startswith(_CALL_STARTS):
            self._holding_all = True  # the reply opens like a JSON call: wait for the end
            return ""
        cut = len(held)
        for marker in _CALL_MARKERS:
            index = held.find(marker)
            if index >= 0:
                self._holding_all = True
                cut = min(cut, index)
            else:
                for n in range(min(len(held), len(marker) - 1), 0, -1):
                    if marker.startswith(held[-n:]):
                        cut = min(cut, len(held) - n)
                        break
        out, self._held = held[:cut], held[cut:]
        return out

    def finish(self) -> tuple[ChatDelta, ChatOutput]:
        """The last delta to send and the whole parsed output."""
        thinking, content = self._splitter.flush() if self._splitter else ("", "")
        self._held += content
        output = self._plan.parse("".join(self._text))
        if output.tool_calls:
            sent = "".join(self._sent).strip()
            rest = output.content[len(sent):] if output.content.startswith(sent) else ""
        else:
            rest = self._held
        self._held = ""
        return ChatDelta(thinking, rest), output


def prepare_chat(template: ChatTemplate, messages: Sequence[Mapping[str, Any]], *,
                 tools: Sequence[Mapping[str, Any] | Tool] | None = None, tool_choice: Any = None,
                 parallel_tool_calls: bool = False, response_format: Any = None, grammar: str | None = None,
                 think: bool | None = None, documents: Sequence[Any] | None = None,
                 add_generation_prompt: bool = True, limits: GrammarLimits | None = None,
                 **template_kwargs: Any) -> ChatPlan:
    """Render the prompt and choose the grammar for one chat request.

    - ``tools`` / ``tool_choice`` (OpenAI or Ollama shapes): ``auto`` leaves the
      model free and parses calls from its text; ``required`` or a named function
      adds a grammar so the output is exactly a call whose arguments match the
      tool's schema (one call, or one or more with ``parallel_tool_calls``).
    - ``response_format``: Ollama ``format`` or OpenAI ``response_format``; or a raw
      GBNF ``grammar`` (checked with :func:`check_gbnf`); not both.  A forced
      tool call takes precedence over either.
    - ``think``: passed to the template as ``enable_thinking`` (Qwen3 convention).
    """
    if grammar is not None and response_format not in (None, "", "text", {"type": "text"}):
        raise InvalidParameterError("pass either a grammar or a response format, not both", field="grammar")
    tool_list = parse_tools(tools)
    choice = ToolChoice.parse(tool_choice, tool_list)
    if think is not None:
        template_kwargs.setdefault("enable_thinking", think)
    shown = tool_list if choice.mode != "none" else ()  # tool_choice "none": the model does not see them
    segments = template.render_segments(messages, add_generation_prompt=add_generation_prompt, tools=shown or None,
                                        documents=documents, **template_kwargs)
    prompt = segments.text
    fmt = template.tool_call_format if template.supports_tools else ToolCallFormat.JSON
    if choice.forces_call:
        chosen = tool_call_grammar(tool_list, choice, fmt, parallel=parallel_tool_calls, limits=limits)
    elif grammar is not None:
        check_gbnf(grammar, limits=limits)
        chosen = grammar
    else:
        chosen = response_format_grammar(response_format, limits=limits)
    markers = template.thinking_markers
    starts = bool(markers) and prompt.rstrip().endswith(markers[0]) if markers else False
    return ChatPlan(prompt=prompt, grammar=chosen, segments=segments if template.client_text is not None else None,
                    tools=tool_list, tool_choice=choice, tool_format=fmt,
                    thinking_markers=markers, starts_in_thinking=starts)
