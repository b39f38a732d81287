"""llama.cpp's built-in chat templates (no Jinja): the fallback renderer."""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence

from ..errors import TemplateError
from ._lib import lib

__all__ = ["apply_builtin_template", "builtin_template_names"]

_MAX_OUTPUT = 64 << 20


def apply_builtin_template(template: str, messages: Sequence[Mapping[str, str]], *,
                           add_generation_prompt: bool = True) -> str:
    """Render ``messages`` with the built-in template that llama.cpp detects in
    ``template`` (a template name such as ``"chatml"`` or a Jinja source whose
    markers it recognises)."""
    llama = lib()
    encoded = [(str(m.get("role", "")).encode(), str(m.get("content") or "").encode()) for m in messages]
    arr = (llama.llama_chat_message * max(1, len(encoded)))()
    for i, (role, content) in enumerate(encoded):
        arr[i].role = role
        arr[i].content = content
    size = sum(len(r) + len(c) for r, c in encoded) * 2 + 256
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama.llama_chat_apply_template(template.encode(), arr, len(encoded), add_generation_prompt, buf, size)
        if n < 0:
            raise TemplateError("llama.cpp does not recognise this chat template; pass a known template name")
        if n <= size:
            return buf.raw[:n].decode("utf-8", "replace")
        if n > _MAX_OUTPUT:
            raise TemplateError(f"rendered chat is larger than {_MAX_OUTPUT} bytes")
        size = n


def builtin_template_names() -> list[str]:
    llama = lib()
    n = llama.llama_chat_builtin_templates(None, 0)
    arr = (ctypes.c_char_p * n)()
    llama.llama_chat_builtin_templates(arr, n)
    return [name.decode() for name in arr if name]
