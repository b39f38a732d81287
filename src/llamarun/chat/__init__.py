"""Chat: templates, tool calls and reasoning text.

- :class:`ChatTemplate` renders messages with a model's own Jinja template in a
  bounded sandbox (or llama.cpp's built-ins), with tools and documents.
- :func:`prepare_chat` turns a chat request (messages, tools, tool_choice,
  response_format, grammar, think) into a :class:`ChatPlan`: the prompt, the
  grammar for generation, and the parser for the output
  (:class:`ChatOutput` with ``content``, ``thinking`` and ``tool_calls``).
- :func:`parse_tool_calls`, :class:`ThinkingSplitter` and
  :func:`tool_call_grammar` are the pieces, usable on their own.
- :func:`choose_builtin` / :func:`template_choice_of_file`: the built-in template a model without
  one of its own is chatted with (from its vocabulary's special tokens), and why.
"""

from .fallback import TemplateChoice, choose_builtin, template_choice_of, template_choice_of_file
from .messages import normalize_messages
from .plan import ChatDelta, ChatOutput, ChatPlan, ChatStreamParser, prepare_chat
from .sandbox import RenderLimits
from .template import ChatTemplate, builtin_names
from .thinking import THINKING_MARKERS, ThinkingSplitter, split_thinking, thinking_markers, thinking_token_count
from .toolcalls import ToolCall, parse_tool_calls
from .tools import Tool, ToolCallFormat, ToolChoice, parse_tools, tool_call_grammar, tools_system_prompt

__all__ = [
    "THINKING_MARKERS",
    "ChatDelta",
    "ChatOutput",
    "ChatPlan",
    "ChatStreamParser",
    "ChatTemplate",
    "RenderLimits",
    "TemplateChoice",
    "ThinkingSplitter",
    "Tool",
    "ToolCall",
    "ToolCallFormat",
    "ToolChoice",
    "builtin_names",
    "choose_builtin",
    "normalize_messages",
    "parse_tool_calls",
    "parse_tools",
    "prepare_chat",
    "split_thinking",
    "template_choice_of",
    "template_choice_of_file",
    "thinking_markers",
    "thinking_token_count",
    "tool_call_grammar",
    "tools_system_prompt",
]
