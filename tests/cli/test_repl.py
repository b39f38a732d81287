"""The chat REPL of `llamarun run`, driven under a real pseudo-terminal as a person would."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pexpect
import pytest

from clitools import spawn

PROMPT = ">>> "


def command(child: pexpect.spawn, line: str) -> str:
    """Send a line, return everything printed until the next prompt (without the echo)."""
    child.sendline(line)
    child.expect_exact(line)
    child.expect_exact(PROMPT)
    return child.before.replace("\r", "").strip("\n")


def leave(child: pexpect.spawn, how: str = "/bye") -> int:
    if how == "ctrl-d":
        child.sendcontrol("d")
    else:
        child.sendline(how)
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def saved(home: Path, name: str) -> dict:
    return json.loads((home / "conversations" / f"{name}.json").read_text())


def test_conversation_memory_set_reset_ctrl_c_and_bye(smollm2_home: Path):
    """SmolLM2, greedy: it remembers a name across turns, forgets it after /reset, and Ctrl-C stops
    a long answer without leaving the chat."""
    child = spawn("run", "smollm2", home=smollm2_home)
    try:
        child.expect_exact(PROMPT)
        assert "Set parameter 'temperature' to '0.0'" in command(child, "/set parameter temperature 0")
        assert "Set parameter 'num_predict' to '24'" in command(child, "/set parameter num_predict 24")
        assert "unknown parameter 'nonsense'" in command(child, "/set parameter nonsense 1")
        assert "temperature must be float" in command(child, "/set parameter temperature hot")
        assert "between 0.0 and 1.0" in command(child, "/set parameter top_p 7")

        # phrased so that the 135M model, under its own template's default system prompt, answers reliably
        command(child, "Remember this: my name is Zorblax.")
        assert "Zorblax" in command(child, "What is my name?")
        # the history really holds both turns (structural check next to the behavioural one)
        assert "Saved 4 messages" in command(child, "/save memory")
        conversation = saved(smollm2_home, "memory")
        assert [m["role"] for m in conversation["messages"]] == ["user", "assistant", "user", "assistant"]
        assert conversation["messages"][0]["content"] == "Remember this: my name is Zorblax."
        assert conversation["options"] == {"num_predict": 24, "temperature": 0.0}
        assert conversation["model"] == "smollm2"

        assert "Cleared" in command(child, "/reset")
        assert "Zorblax" not in command(child, "What is my name?")

        # Ctrl-C after the first words of a long answer: the answer stops, the prompt comes back
        command(child, "/set parameter num_predict 2000")
        child.sendline("Write a very long story about a dragon and a knight.")
        child.expect_exact("knight.")
        child.expect(r"[A-Za-z]{2,}")
        child.sendintr()
        child.expect_exact("(answer stopped)")
        child.expect_exact(PROMPT)
        command(child, "/set parameter num_predict 12")
        answer = command(child, "What is the capital of France? Answer in one word.")
        assert re.search(r"\w", answer)
        # the stopped turn is not in the history; the turn after it is
        assert "Saved 4 messages" in command(child, "/save after")
        contents = [m["content"] for m in saved(smollm2_home, "after")["messages"]]
        assert not any("dragon" in c for c in contents)
        assert contents[2] == "What is the capital of France? Answer in one word."

        info = command(child, "/show info")
        assert re.search(r"architecture\s+llama", info)
        assert "Q4_1" in info
        assert leave(child) == 0
    finally:
        child.close(force=True)


def test_repl_mechanics(tiny_home: Path):
    """Multi-line input, /set system, parameters, Ctrl-C at the prompt, /save and /load safety, Ctrl-D."""
    child = spawn("run", "tiny", home=tiny_home)
    try:
        child.expect_exact(PROMPT)
        assert "Set system message." in command(child, "/set system You are terse.")
        assert "You are terse." in command(child, "/show system")
        command(child, "/set parameter num_predict 4")
        assert "Set parameter 'stop'" in command(child, '/set parameter stop "<|im_end|>" END')
        params = command(child, "/show parameters")
        assert re.search(r"stop\s+\[\"<\|im_end\|>\", \"END\"\]", params)
        assert re.search(r"num_predict\s+4", params)

        child.sendline('"""first line')
        child.expect_exact("... ")
        child.sendline('second line"""')
        child.expect_exact(PROMPT)

        # Ctrl-C at the prompt clears the line: the next command runs on its own
        child.send("half-typed text")
        child.expect_exact("text")
        child.sendintr()
        child.expect_exact(PROMPT)
        assert "Saved 2 messages and its KV state" in command(child, "/save multi")
        assert (tiny_home / "conversations" / "multi.kv").stat().st_size > 0
        conversation = saved(tiny_home, "multi")
        assert conversation["system"] == "You are terse."
        assert conversation["messages"][0] == {"role": "user", "content": "first line\nsecond line"}
        assert conversation["options"]["stop"] == ["<|im_end|>", "END"]

        assert "invalid conversation name" in command(child, "/save ../escape")
        assert "invalid conversation name" in command(child, "/load /etc/passwd")
        assert "no saved conversation 'nothing'" in command(child, "/load nothing")
        (tiny_home / "conversations" / "broken.json").write_text('{"format": "llamarun.conversation", '
                                                                 '"messages": [{"role": "wizard"}]}')
        assert "message 0 must be" in command(child, "/load broken")
        assert "unknown command '/frobnicate'" in command(child, "/frobnicate")
        assert "Cleared" in command(child, "/reset")
        loaded = command(child, "/load multi")
        assert "Loaded conversation 'multi': 2 messages" in loaded and "KV state of" in loaded  # restored next turn
        assert "/set parameter NAME VALUE" in command(child, "/help")
        assert leave(child, "ctrl-d") == 0
    finally:
        child.close(force=True)
    files = sorted(p.name for p in (tiny_home / "conversations").iterdir())
    assert files == ["broken.json", "multi.json", "multi.kv"]  # the conversation and its KV state
    assert not list(tiny_home.parent.glob("escape*"))
    assert "/set system You are terse." in (tiny_home / "history").read_text()


def verbose_turn(child: pexpect.spawn, text: str) -> tuple[str, int, int]:
    """One turn under /set verbose: the answer, its prompt tokens and how many of them were cached
    (read off the stats line ``prompt: N tokens (M cached), ...``)."""
    out = command(child, text)
    match = re.search(r"^prompt: (\d+) tokens(?: \((\d+) cached\))?,", out, re.M)
    assert match, out
    return out[:match.start()].strip(), int(match.group(1)), int(match.group(2) or 0)


@pytest.mark.smollm2
def test_load_restores_the_kv_state_in_a_new_process(smollm2_home: Path):
    """/save, leave, start again, /load: the next turn starts from the restored KV state (its prompt
    reported as cached, which a fresh process can only have from the .kv file) and answers as the
    same turn did when the conversation never left its slot.  Without the .kv file it is computed."""
    settings = ("/set verbose", "/set parameter temperature 0", "/set parameter num_predict 24")
    question = "What is my name again?"
    child = spawn("run", "smollm2", home=smollm2_home)
    try:
        child.expect_exact(PROMPT)
        for line in settings:
            command(child, line)
        _, first_prompt, first_cached = verbose_turn(child, "Remember this: my name is Zorblax.")
        assert first_cached == 0
        _, second_prompt, _ = verbose_turn(child, "What is my name?")
        assert "Saved 4 messages and its KV state" in command(child, "/save named")
        in_slot, prompt_tokens, in_slot_cached = verbose_turn(child, question)  # never left its slot
        assert in_slot_cached >= second_prompt > first_prompt
        assert leave(child) == 0
    finally:
        child.close(force=True)

    def after_load() -> tuple[str, str, int, int]:
        child = spawn("run", "smollm2", home=smollm2_home)
        try:
            child.expect_exact(PROMPT)
            command(child, "/set verbose")
            loaded = command(child, "/load named")  # it brings its options: greedy, 24 tokens
            answer, prompt, cached = verbose_turn(child, question)
            assert leave(child) == 0
            return loaded, answer, prompt, cached
        finally:
            child.close(force=True)

    loaded, answer, prompt, cached = after_load()
    assert "Loaded conversation 'named': 4 messages" in loaded and "KV state of" in loaded
    assert (prompt, cached) == (prompt_tokens, in_slot_cached)  # restored, not computed again
    assert answer == in_slot and "Zorblax" in answer
    kv = smollm2_home / "conversations" / "named.kv"
    kv.rename(kv.with_suffix(".off"))
    loaded, _, prompt, cached = after_load()
    assert "KV state" not in loaded
    assert (prompt, cached) == (prompt_tokens, 0)  # the same conversation, computed from its first token


@pytest.mark.parametrize("how", ["/exit", "/bye"])
def test_leaving_exits_zero(tiny_home: Path, how: str):
    child = spawn("run", "tiny", home=tiny_home)
    try:
        child.expect_exact(PROMPT)
        assert leave(child, how) == 0
    finally:
        child.close(force=True)
