"""A Modelfile's TEMPLATE: a llama.cpp built-in name or Jinja, checked in the sandbox when the model is
created and used instead of the GGUF's own template (with the model's BOS/EOS texts)."""

from __future__ import annotations

from ..errors import TemplateError
from .sandbox import RenderLimits, SandboxEnvironment
from .template import ChatTemplate, builtin_names

__all__ = ["check_modelfile_template", "modelfile_template"]


def check_modelfile_template(text: str, *, limits: RenderLimits | None = None) -> None:
    """Refuse a TEMPLATE that is neither a built-in name nor Jinja that compiles in the sandbox."""
    from ..store.modelfile import check_template_text

    check_template_text(text)
    if text in builtin_names():
        return
    limits = limits or RenderLimits()
    if len(text) > limits.max_source_chars:
        raise TemplateError(f"TEMPLATE of {len(text)} characters is larger than the limit of "
                            f"{limits.max_source_chars}", field="template")
    try:
        SandboxEnvironment().from_string(text)
    except RecursionError:
        raise TemplateError("TEMPLATE nests too deeply to compile", field="template") from None
    except Exception as exc:  # noqa: BLE001 - any compile failure is the author's to fix
        raise TemplateError(f"TEMPLATE is not a built-in name ({', '.join(builtin_names())}) and does not "
                            f"compile as Jinja: {str(exc)[:200]}", field="template") from None


def modelfile_template(text: str, base: ChatTemplate) -> ChatTemplate:
    """The template a Modelfile names, in place of ``base`` (the model's own, for BOS/EOS, limits and
    the control-token texts that client text must never become)."""
    control_texts = base.client_text.texts if base.client_text is not None else None
    if text in builtin_names():
        return ChatTemplate.builtin(text, limits=base.limits, control_texts=control_texts)
    check_modelfile_template(text, limits=base.limits)
    return ChatTemplate(text, trusted=True, bos_token=base.bos_token, eos_token=base.eos_token, limits=base.limits,
                        control_texts=control_texts)
