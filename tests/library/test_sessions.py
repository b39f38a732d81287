"""llamarun.Session over a real llama.cpp context (the tiny random-weight GGUF): KV state kept in
the runtime's tiers when another conversation takes the slot, restored instead of computed, saved
to a file and loaded in another process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tinymodel import write_tiny_gguf

import llamarun
from llamarun.errors import SessionFileError, SessionIncompatibleError, SessionModelMismatchError
from llamarun.types import FinishReason

GREEDY = {"temperature": 0.0, "max_tokens": 8, "ignore_eos": True}


def _load(path: Path, **options: object) -> llamarun.LoadedModel:
    return llamarun.load(path, **{"n_ctx": 1024, "n_slots": 4, "n_threads": 1, **options})


def _expected_cached(before: int, previous: llamarun.ChatResult | None) -> int:
    """What the runtime has cached of a session's history: all of it, but the last token when the
    previous turn ended on max_tokens (a sampled token is computed only by the next turn)."""
    if previous is None:
        return 0
    return before - (previous.finish_reason == FinishReason.LENGTH)


def test_a_restored_session_continues_exactly_as_one_that_kept_its_slot(tiny_model_path: Path):
    system, first, second = "You are a careful assistant. " * 4, "Tell me about the sea.", "And the mountains?"
    with _load(tiny_model_path, n_slots=1) as model:
        kept = model.session(system=system, **GREEDY)
        kept.send(first)
        reference = kept.send(second)  # never left its slot
    with _load(tiny_model_path, n_slots=1) as model:
        moved = model.session(system=system, **GREEDY)
        moved.send(first)
        history = moved.history_tokens
        model.session(**GREEDY).send("Something else entirely, to take the only slot. " * 3)
        assert model.runtime.snapshot().session_saved >= 1
        restored = moved.send(second)
        snap = model.runtime.snapshot()
    assert snap.session_restored == 1 and snap.session_restore_failed == 0
    assert restored.token_ids == reference.token_ids
    assert restored.cached_tokens == reference.cached_tokens == history - 1  # the first answer ended on max_tokens


def test_twelve_conversations_on_four_slots_compute_only_their_new_tokens(tiny_model_path: Path):
    with _load(tiny_model_path) as model:
        sessions = [model.session(system=f"Assistant number {i}. " * 3, **GREEDY) for i in range(12)]
        last: list[llamarun.ChatResult | None] = [None] * 12
        for turn in range(4):
            for i, session in enumerate(sessions):
                before = session.history_tokens
                result = session.send(f"Turn {turn} of conversation {i}.")
                if turn:
                    assert result.cached_tokens == _expected_cached(before, last[i]), (turn, i)
                last[i] = result
        snap = model.runtime.snapshot()
    assert snap.session_restored >= 12 * 3 - 4  # most turns came back from the tiers, not their slot
    assert snap.session_restore_failed == 0


def test_cancel_mid_turn_leaves_the_history_unchanged(tiny_model_path: Path):
    with _load(tiny_model_path) as model:
        session = model.session(system="Be brief.", temperature=0.0, ignore_eos=True)
        session.send("First question?", max_tokens=4)
        messages, history = session.messages, session.history_tokens
        chunks = session.stream("Write forever.", max_tokens=500)
        next(chunks)
        threading.Timer(0.0, session.cancel).start()
        rest = list(chunks)
        assert len(rest) < 499
        assert session.messages == messages and session.history_tokens == history
        after = session.send("Second question?", max_tokens=6)
        fresh = model.session(system="Be brief.", temperature=0.0, ignore_eos=True)
        fresh.send("First question?", max_tokens=4)
        assert fresh.send("Second question?", max_tokens=6).token_ids == after.token_ids
        # closing a stream early cancels the turn too
        for _ in session.stream("Again, forever.", max_tokens=500):
            break
        assert len(session.messages) == len(messages) + 2


def test_fork_and_reset(tiny_model_path: Path):
    with _load(tiny_model_path) as model:
        session = model.session(system="S.", **GREEDY)
        session.send("One.")
        branch = session.fork()
        branch.send("Two on the branch.")
        assert len(session.messages) == 3 and len(branch.messages) == 5
        session.reset()
        assert session.messages == [{"role": "system", "content": "S."}] and session.history_tokens == 0


_CONTINUE = """
import sys, llamarun
model = llamarun.load(sys.argv[1], n_ctx=1024, n_slots=2, n_threads=1)
session = llamarun.Session.load(model, sys.argv[2])
result = session.send("And then?")
print(result.cached_tokens, list(result.token_ids))
print(model.runtime.snapshot().session_restored)
model.close()
"""


def test_save_restart_load_continue(tiny_model_path: Path, tmp_path: Path):
    saved = tmp_path / "chat.llrs"
    with _load(tiny_model_path, n_slots=2) as model:
        session = model.session(system="You remember things. " * 3, **GREEDY)
        session.send("My name is Ada.")
        session.save(saved)
        expected = session.send("And then?")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", _CONTINUE, str(tiny_model_path), str(saved)],
                         capture_output=True, text=True, env=env, timeout=120, check=True).stdout.splitlines()
    cached, tokens = out[0].split(" ", 1)
    assert tokens == str(list(expected.token_ids))
    assert int(cached) == expected.cached_tokens > 0 and out[1] == "1"


def test_a_file_from_another_model_or_settings_or_a_damaged_file_is_a_typed_error(tiny_model_path: Path,
                                                                                   tmp_path: Path):
    saved = tmp_path / "chat.llrs"
    with _load(tiny_model_path, n_slots=2) as model:
        session = model.session(system="Hello. " * 4, **GREEDY)
        session.send("Hi.")
        size = session.save(saved)
        data = saved.read_bytes()
        (tmp_path / "short.llrs").write_bytes(data[: size - 100])
        (tmp_path / "header.llrs").write_bytes(data[:30])
        flipped = bytearray(data)
        flipped[-50] ^= 0xFF
        (tmp_path / "flipped.llrs").write_bytes(bytes(flipped))
        (tmp_path / "text.llrs").write_text("not a session")
        for name in ("short", "header", "flipped", "text"):
            with pytest.raises(SessionFileError):
                llamarun.Session.load(model, tmp_path / f"{name}.llrs")
        assert llamarun.Session.load(model, saved).messages == session.messages
    other_path = write_tiny_gguf(tmp_path / "other.gguf", seed=7)
    with _load(other_path, n_slots=2) as other, pytest.raises(SessionModelMismatchError):
        llamarun.Session.load(other, saved)
    with _load(tiny_model_path, n_slots=2, flash_attn=True) as flash, pytest.raises(SessionIncompatibleError):
        llamarun.Session.load(flash, saved)
    with _load(tiny_model_path, n_ctx=32, n_slots=1) as small, pytest.raises(SessionIncompatibleError):
        llamarun.Session.load(small, saved)


def test_tiers_stay_within_their_limits_under_churn_and_restore_from_disk(tiny_model_path: Path, tmp_path: Path):
    ram, disk = 60_000, 200_000
    with _load(tiny_model_path, n_slots=2, session_ram=ram, session_disk=disk, session_dir=str(tmp_path)) as model:
        sessions = [model.session(system=f"Conversation {i} " * 4, **GREEDY) for i in range(10)]
        peak = 0
        for turn in range(3):
            for session in sessions:
                session.send(f"turn {turn}")
                snap = model.runtime.snapshot()
                assert snap.session_ram_bytes <= ram and snap.session_disk_bytes <= disk
                files = sum(f.stat().st_size for f in tmp_path.rglob("*.kv"))
                peak = max(peak, files)
                assert files <= disk + 4096 * len(list(tmp_path.rglob("*.kv")))  # state bytes plus each header
        snap = model.runtime.snapshot()
        assert snap.session_evicted > 0 and snap.session_restored > 0 and peak > 0
    assert not list(tmp_path.rglob("*.kv"))  # the disk tier is removed with its runtime
