"""``llamarun.Session``: a conversation that owns its history and follows its KV state.

    with llamarun.load("smollm2") as model:
        chat = model.session(system="Be brief.", temperature=0)
        print(chat.send("Name a prime.").content)
        chat.save("chat.llrs")                # the conversation and its KV state
    chat = llamarun.Session.load(model, "chat.llrs")   # restored, not computed again

Each turn's prompt is the previous turn's tokens (its prompt and what the model generated) followed
by the tokens of what the chat template adds, so the runtime finds the whole history cached: in
the slot the conversation last used, or saved in the runtime's KV tiers when another request took
that slot (see :mod:`llamarun.runtime.kvtiers`).  A cancelled turn leaves the session as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SessionFileError, SessionIncompatibleError, SessionModelMismatchError
from .types import Chunk, FinishReason, GenerationResult, PromptSegments

if TYPE_CHECKING:
    from .api import ChatResult, LoadedModel
    from .runtime import GenerationRequest, RequestStream

__all__ = ["Session", "model_digest"]

_BLOB = re.compile(r"^sha256-([0-9a-f]{64})$")
_LAYOUT_KEYS = ("flash_attn", "type_k", "type_v", "swa_full", "n_layer", "n_embd", "n_head_kv")


def model_digest(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a GGUF: a store blob's name says it; another file is read once."""
    path = Path(path)
    match = _BLOB.match(path.name)
    if match:
        return f"sha256:{match.group(1)}"
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(1 << 22):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


@dataclass
class _History:
    """What the KV of the conversation holds after its last turn: tokens and the text they are."""

    prompt_text: str = ""
    content: str = ""  # the last answer as the chat template will render it
    tokens: tuple[int, ...] = ()  # last prompt + generated tokens


class Session:
    """A conversation with one model (from :meth:`LoadedModel.session`); not for concurrent turns.

    ``send(text)`` answers (a :class:`~llamarun.ChatResult`), ``stream(text)`` yields chunks; the
    history gains the user's message and the answer only when the turn ends (a cancelled or failed
    turn adds nothing).  ``cancel()`` stops the turn in progress from any thread.
    """

    def __init__(self, model: LoadedModel, *, system: str | None = None,
                 messages: Sequence[Mapping[str, Any]] = (), **options: Any) -> None:
        self.model = model
        self.options = dict(options)
        self.options.setdefault("max_tokens", model.default_max_tokens)
        model.chat_request("", None, {k: v for k, v in self.options.items() if k != "max_tokens"})  # refuse bad ones now
        start = [{"role": "system", "content": system}] if system is not None else []
        self._messages: list[dict[str, Any]] = start + [dict(m) for m in messages]
        self._system = start
        self._history = _History()
        self._active: RequestStream | None = None
        self._lock = threading.Lock()

    # -- the conversation ----------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far (a copy)."""
        return [dict(m) for m in self._messages]

    @property
    def history_tokens(self) -> int:
        """Tokens of the conversation the last turn left in the KV (its prompt and its answer)."""
        return len(self._history.tokens)

    def fork(self) -> Session:
        """A new session with this one's history; the two share the cached prefix and then diverge."""
        other = Session.__new__(Session)
        other.model, other.options = self.model, dict(self.options)
        other._messages, other._system = self.messages, list(self._system)
        other._history = replace(self._history)
        other._active, other._lock = None, threading.Lock()
        return other

    def reset(self) -> None:
        """Back to the system message alone."""
        self._messages = [dict(m) for m in self._system]
        self._history = _History()

    def cancel(self) -> None:
        """Stop the turn in progress (any thread); the session stays as it was before that turn."""
        active = self._active
        if active is not None:
            active.cancel()

    # -- turns -------------------------------------------------------------------

    def send(self, text: str, **options: Any) -> ChatResult:
        """Answer ``text``: the result's ``finish_reason`` is ``cancelled`` if :meth:`cancel` stopped it."""
        request, plan, turn = self._prepare(text, options)
        with self._submit(request) as handle:
            result = handle.wait()
        output = plan.parse(result.text)
        self._commit(turn, result, output.content)
        return self.model.chat_result(result, output)

    def stream(self, text: str, **options: Any) -> Iterator[Chunk]:
        """Chunks of the answer to ``text``; the history gains the turn once the last chunk is out
        (closing the iterator early cancels the turn and leaves the history as it was)."""
        request, plan, turn = self._prepare(text, options)
        with self._submit(request) as handle:
            yield from handle
            result = handle.result
        assert result is not None
        self._commit(turn, result, plan.parse(result.text).content)

    def _submit(self, request: GenerationRequest) -> RequestStream:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("a turn of this session is in progress")  # one turn at a time
        try:
            self._active = self.model._client.stream(request)
        except BaseException:
            self._lock.release()
            raise
        return _Released(self._active, self)  # type: ignore[return-value]

    def _prepare(self, text: str, options: Mapping[str, Any]) -> tuple[GenerationRequest, Any, dict[str, Any]]:
        from .chat import prepare_chat

        merged = {**self.options, **options}
        max_tokens = merged.pop("max_tokens")
        messages = self.model.defaults.conversation([*self._messages, {"role": "user", "content": text}])
        plan = prepare_chat(self.model.chat_template, messages, grammar=merged.pop("grammar", None))
        if plan.grammar:
            merged["grammar"] = plan.grammar
        prompt = self._prompt_tokens(plan.prompt_input)
        request = self.model.chat_request(prompt, max_tokens, merged)
        turn = {"user": text, "prompt_text": _text_of(plan.prompt_input), "prompt": prompt}
        return request, plan, turn

    def _prompt_tokens(self, prompt: PromptSegments | str) -> list[int]:
        """The history's tokens and the template's new text after them; the whole prompt tokenized
        when the template renders the history otherwise than the last turn saw it."""
        history = self._history
        parts = prompt.parts if isinstance(prompt, PromptSegments) else ((prompt, True),)
        seen = history.prompt_text + history.content
        whole = _text_of(prompt)
        model = self.model
        if history.tokens and whole.startswith(seen):
            rest = _parts_after(parts, len(seen))
            added = model.runtime.call(lambda m: m.vocab.tokenize_parts(rest, add_special=False)) if rest else []
            return [*history.tokens, *added]
        return model.runtime.call(lambda m: m.vocab.tokenize_parts(parts, add_special=False))

    def _commit(self, turn: Mapping[str, Any], result: GenerationResult, content: str) -> None:
        if result.finish_reason in (FinishReason.CANCELLED, FinishReason.ERROR, FinishReason.DEADLINE):
            return
        self._messages += [{"role": "user", "content": turn["user"]}, {"role": "assistant", "content": content}]
        self._history = _History(turn["prompt_text"], content, (*turn["prompt"], *result.token_ids))

    @classmethod
    def resume(cls, model: LoadedModel, messages: Sequence[Mapping[str, Any]], **options: Any) -> Session:
        """A session over a conversation held elsewhere (e.g. the REPL's): its history is the
        template's rendering of ``messages``, so :meth:`save` finds the KV a slot or tier has of it."""
        from .chat import prepare_chat

        system = [dict(m) for m in messages[:1] if m.get("role") == "system"]
        session = cls(model, messages=messages, **options)
        session._system = system
        if any(m.get("role") != "system" for m in messages):
            plan = prepare_chat(model.chat_template, model.defaults.conversation(list(messages)),
                                add_generation_prompt=False)
            prompt = plan.prompt_input
            parts = prompt.parts if isinstance(prompt, PromptSegments) else ((prompt, True),)
            tokens = model.runtime.call(lambda m: m.vocab.tokenize_parts(parts, add_special=False))
            session._history = _History(_text_of(prompt), "", tuple(tokens))
        return session

    # -- files -----------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> int:
        """Write the conversation and the KV state its history has in the runtime (a slot or a tier)
        to ``path``, with the model's digest and the context's KV layout; returns bytes written."""
        from .runtime.kvfile import write_state_file
        from .runtime.tiering import export_state, state_settings

        history = self._history
        state_tokens, state, settings = self.model.runtime.call_engine(
            lambda loop: (*export_state(loop, history.tokens), state_settings(loop)))
        header = {"kind": "session", "model": _digest_of(self.model), "settings": settings, "tokens": state_tokens,
                  "messages": self._messages, "system": self._system, "options": _plain(self.options),
                  "history": {"prompt_text": history.prompt_text, "content": history.content,
                              "tokens": list(history.tokens)}}
        return write_state_file(Path(path), header, state)

    @classmethod
    def load(cls, model: LoadedModel, path: str | os.PathLike[str]) -> Session:
        """A session saved by :meth:`save`, its KV state kept for its next turn.

        Raises :class:`~llamarun.errors.SessionFileError` (not a session file, corrupt, truncated),
        :class:`~llamarun.errors.SessionModelMismatchError` (saved with another model) or
        :class:`~llamarun.errors.SessionIncompatibleError` (another KV layout, a smaller context).
        """
        from .runtime.kvfile import read_state_file
        from .runtime.tiering import import_state, state_settings

        header, state = read_state_file(Path(path))
        name = os.fspath(path)
        if header.get("kind") != "session" or not isinstance(header.get("history"), dict):
            raise SessionFileError(f"{name} holds no session", path=name)
        digest = _digest_of(model)
        if header.get("model") != digest:
            raise SessionModelMismatchError(
                f"{name} was saved with model {header.get('model')}, not this one ({digest})")
        settings = model.runtime.call_engine(state_settings)
        _check_settings(name, header, settings)
        session = cls(model, **header.get("options", {}))
        session._system = [dict(m) for m in header.get("system", [])]
        session._messages = [dict(m) for m in header.get("messages", [])]
        saved = header["history"]
        session._history = _History(str(saved["prompt_text"]), str(saved["content"]), tuple(saved["tokens"]))
        tokens = header["tokens"]
        model.runtime.call_engine(lambda loop: import_state(loop, tokens, state))
        return session


class _Released:
    """The turn's stream; leaving it ends the turn (cancelling it if unfinished) and frees the session."""

    def __init__(self, handle: RequestStream, session: Session) -> None:
        self._handle, self._session = handle, session

    def __enter__(self) -> RequestStream:
        return self._handle

    def __exit__(self, *exc: object) -> None:
        try:
            self._handle.cancel()
        finally:
            self._session._active = None
            self._session._lock.release()


def _text_of(prompt: PromptSegments | str) -> str:
    return prompt.text if isinstance(prompt, PromptSegments) else prompt


def _parts_after(parts: Sequence[tuple[str, bool]], skip: int) -> list[tuple[str, bool]]:
    """The parts' text after its first ``skip`` characters, each piece keeping its part's flag."""
    rest: list[tuple[str, bool]] = []
    for text, special in parts:
        if skip >= len(text):
            skip -= len(text)
            continue
        rest.append((text[skip:], special))
        skip = 0
    return rest


def _digest_of(model: LoadedModel) -> str:
    digest = getattr(model, "_digest", None)
    if digest is None:
        digest = model._digest = model_digest(model.runtime.model_path)  # type: ignore[attr-defined]
    return digest


def _check_settings(name: str, header: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    saved = header.get("settings")
    if not isinstance(saved, dict):
        raise SessionFileError(f"{name} is corrupt: it records no context settings", path=name)
    differ = [k for k in _LAYOUT_KEYS if saved.get(k) != settings.get(k)]
    if differ:
        shown = ", ".join(f"{k} {saved.get(k)!r} (now {settings.get(k)!r})" for k in differ)
        raise SessionIncompatibleError(f"{name} was saved with another KV layout: {shown}")
    needed = max(len(header["tokens"]), len(header["history"].get("tokens", ())))
    if needed >= settings["n_ctx"]:
        raise SessionIncompatibleError(
            f"{name} holds {needed} tokens but this model's context is {settings['n_ctx']}: load it with a larger n_ctx")


def _plain(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as JSON can keep them (the ``max_tokens`` default marker becomes its number)."""
    return {k: (int(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in options.items()}
