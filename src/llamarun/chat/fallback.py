"""Which of llama.cpp's built-in chat templates a model without one of its own gets.

A GGUF with no ``tokenizer.chat_template`` (a base model, an old conversion) is
rendered with the built-in template of the family whose turn markers its
vocabulary has as special tokens: ChatML's ``<|im_start|>`` would be plain text
in a Gemma vocabulary, and the model would loop printing it. The first row of
:data:`FAMILIES` whose markers are all special tokens wins; none: ChatML.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "TemplateChoice", "choose_builtin", "template_choice_of", "template_choice_of_file"]

# (built-in name, markers that must all be special tokens); more specific rows first
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("llama4", ("<|header_start|>", "<|header_end|>")),
    ("llama3", ("<|start_header_id|>", "<|end_header_id|>")),
    ("gpt-oss", ("<|start|>", "<|channel|>", "<|message|>")),
    ("gemma", ("<start_of_turn>", "<end_of_turn>")),
    ("phi4", ("<|im_start|>", "<|im_sep|>")),
    ("chatml", ("<|im_start|>", "<|im_end|>")),
    ("command-r", ("<|START_OF_TURN_TOKEN|>",)),
    ("granite", ("<|start_of_role|>", "<|end_of_role|>")),
    ("deepseek3", ("<｜User｜>", "<｜Assistant｜>")),
    ("mistral-v7", ("[SYSTEM_PROMPT]", "[INST]", "[/INST]")),
    ("mistral-v3", ("[INST]", "[/INST]")),
    ("phi3", ("<|user|>", "<|assistant|>", "<|end|>")),
)
_TEKKEN = {"mistral-v7": "mistral-v7-tekken", "mistral-v3": "mistral-v3-tekken"}
DEFAULT = "chatml"


@dataclass(frozen=True)
class TemplateChoice:
    """The template a model is chatted with and why (what ``show`` reports)."""

    name: str  # "own" for the GGUF's template, else a built-in name
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


def choose_builtin(special_texts: Collection[str], *, pre_tokenizer: str | None = None) -> TemplateChoice:
    """The built-in template for a vocabulary whose special tokens are ``special_texts``."""
    for name, markers in FAMILIES:
        if all(marker in special_texts for marker in markers):
            if pre_tokenizer == "tekken" and name in _TEKKEN:
                name = _TEKKEN[name]
            shown = ", ".join(markers)
            return TemplateChoice(name, f"the GGUF has no chat template; its vocabulary has {shown} as special "
                                        f"tokens, which {name!r} uses")
    return TemplateChoice(DEFAULT, "the GGUF has no chat template and its vocabulary none of the turn markers "
                                   f"of the known families: {DEFAULT!r} (its markers are plain text there)")


def template_choice_of_file(path: str, chat_template: str | None, *, override: str | None = None,
                            metadata: Mapping[str, Any] | None = None) -> TemplateChoice:
    """What a stored model is chatted with: a Modelfile's ``override``, the GGUF's own template, or a
    built-in chosen from its vocabulary (read without the weights)."""
    if override:
        return TemplateChoice(override, "the Modelfile's TEMPLATE")
    if chat_template:
        return TemplateChoice("own", "the GGUF's tokenizer.chat_template")
    from ..engine import vocab_special_texts

    specials = vocab_special_texts(path)
    pre = (metadata or {}).get("tokenizer.ggml.pre")
    return choose_builtin(specials, pre_tokenizer=pre if isinstance(pre, str) else None)


def template_choice_of(details: Any) -> TemplateChoice:
    """:func:`template_choice_of_file` for a store's ``ModelDetails`` (what ``show`` reports)."""
    model, gguf = details.model, details.gguf
    override = model.defaults.template if model.defaults else None
    return template_choice_of_file(str(model.path), gguf.chat_template, override=override, metadata=gguf.metadata)
