"""Every command of the protocol over a real socket, with the tiny model and SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bridge_helpers import Bridge

MODELS = ["tiny", pytest.param("smollm2", marks=pytest.mark.smollm2)]


def test_ping_help_models_status(bridge: Bridge) -> None:
    with bridge.client() as c:
        assert c.reply("PING") == {"status": "ok", "message": "pong", "data": None}
        assert c.reply("ping")["message"] == "pong"  # any case
        assert {"PING", "STATUS", "INFER", "STREAM", "CANCEL", "SHUTDOWN"} <= set(c.ok("HELP"))
        names = {m["name"] for m in c.ok("MODELS")}
        assert {"tiny:latest", "smollm2:latest"} <= names
        status = c.ok("STATUS")
        assert status["model"] is None and status["clients"] >= 1 and status["version"]
        assert {"slots_busy", "slots_free", "queue_depth", "loaded"} <= set(status)


def test_generation_needs_a_model(bridge: Bridge) -> None:
    with bridge.client() as c:
        for line in ("INFER hi", "STREAM hi", "CHAT hi", "CHATSTREAM hi", "EMBED hi"):
            answer = c.reply(line)
            assert answer["status"] == "error" and answer["code"] == "invalid_parameter", answer
            assert answer["data"] == {"field": "model"}
        assert c.reply("LOAD nosuchmodel")["code"] == "model_not_found"


@pytest.mark.parametrize("model", MODELS)
def test_every_generating_command(bridge: Bridge, model: str) -> None:
    with bridge.client() as c:
        loaded = c.ok(f"LOAD {model}")
        assert loaded["model"] == f"{model}:latest" and loaded["slots"] == 8 and loaded["n_ctx"] == 512
        assert c.ok("SET max_tokens 6") == {"max_tokens": 6}
        assert c.ok("SET temperature 0") == {"temperature": 0.0}
        whole = c.ok("INFER Why is the sky blue?")
        assert whole["completion_tokens"] <= 6 and whole["prompt_tokens"] > 0 and isinstance(whole["text"], str)
        lines = c.stream('STREAM "Say\\nsomething"')
        assert all(r["message"] == "chunk" and isinstance(r["data"], str) for r in lines[:-1])
        assert lines[-1]["message"] == "done" and lines[-1]["data"]["completion_tokens"] <= 6
        chat = c.ok('CHAT [{"role": "user", "content": "Hi"}]')
        assert chat["message"]["role"] == "assistant" and chat["completion_tokens"] <= 6
        streamed = c.stream("CHATSTREAM Hi")
        assert streamed[-1]["data"]["message"]["role"] == "assistant"
        text = "".join(r["data"] for r in streamed if r["message"] == "chunk")
        assert text.strip() == streamed[-1]["data"]["message"]["content"]
        vector = c.ok("EMBED hello world")
        assert vector["dimensions"] == len(vector["embedding"]) > 0 and vector["prompt_tokens"] > 0
        assert abs(sum(x * x for x in vector["embedding"]) - 1.0) < 1e-3
        assert c.ok("STATUS")["model"] == f"{model}:latest"
        assert c.ok("FREE") == {"model": f"{model}:latest"}
        assert c.reply("INFER hi")["data"] == {"field": "model"}
        assert c.reply("QUIT")["message"] == "bye"
        assert c.read() is None  # closed by the bridge


@pytest.mark.smollm2
def test_smollm2_greedy_and_settings_reach_the_model(bridge: Bridge) -> None:
    with bridge.client() as c:
        c.ok("LOAD smollm2")
        c.ok("SET temperature 0")
        c.ok("SET max_tokens 40")
        first = c.ok("INFER What is the capital of France? Answer in one word.")
        assert "Paris" in first["text"]
        c.ok('SET system "You are a pirate.\\nAlways say Arr."')
        assert c.ok("GET system") == {"system": "You are a pirate.\nAlways say Arr."}
        c.ok("RESET system")
        c.ok('SET json_schema {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}')
        parsed = json.loads(c.ok("INFER Name a city in France as JSON.")["text"])
        assert isinstance(parsed["city"], str)
        c.ok("RESET json_schema")
        c.ok('SET grammar root ::= "yes" | "no"')
        assert c.ok("INFER Is water wet?")["text"] in ("yes", "no")
        c.ok("RESET")
        c.ok("SET stop .")
        c.ok("SET max_tokens 60")
        stopped = c.ok("INFER Tell me about the sea.")
        assert "." not in stopped["text"] and stopped["finish_reason"] == "stop"


def test_settings_validated(bridge: Bridge) -> None:
    with bridge.client() as c:
        for line, field in [("SET top_p 5", "top_p"), ("SET temperature -1", "temperature"),
                            ("SET top_k hot", "top_k"), ("SET colour blue", "setting"), ("SET raw 3", "raw"),
                            ("SET max_tokens 1e99", "max_tokens"), ("SET json_schema 3", "json_schema"),
                            ("GET colour", "setting"), ("SET temperature", "setting")]:
            answer = c.reply(line)
            assert answer["status"] == "error" and answer["data"] == {"field": field}, (line, answer)
        assert c.reply("SET grammar root ::= (")["code"] == "grammar_error"
        assert c.reply('SET json_schema {"type": "array", "minItems": 999999}')["code"] == "grammar_error"
        c.ok('SET grammar root ::= "a"')
        assert c.reply('SET json_schema "json"')["data"] == {"field": "json_schema"}  # not both
        c.ok("SET seed 7")
        c.ok('SET stop ["END", "\\n"]')
        assert c.ok("GET") == {"grammar": 'root ::= "a"', "seed": 7, "stop": ["END", "\n"]}
        c.ok("SET seed null")
        assert c.ok("GET seed") == {"seed": None}
        assert c.ok("RESET") == {}


def test_prompt_parsing(bridge: Bridge) -> None:
    with bridge.client() as c:
        c.ok("LOAD tiny")
        c.ok("SET raw true")
        c.ok("SET max_tokens 1")
        spaced = c.ok("INFER   two  spaces  ")  # leading blanks dropped, the rest verbatim
        quoted = c.ok('INFER "two  spaces  "')
        assert spaced["prompt_tokens"] == quoted["prompt_tokens"]
        assert c.reply('INFER "unterminated')["data"] == {"field": "prompt"}
        assert c.reply('INFER "a" trailing')["data"] == {"field": "prompt"}
        assert c.reply("INFER")["data"] == {"field": "prompt"}
        assert c.reply("CHAT [1, 2]")["data"] == {"field": "messages"}
        assert c.reply("CHAT [oops")["data"] == {"field": "messages"}
        c.send(b"PING\r")  # CRLF line endings work
        assert c.read()["message"] == "pong"


def test_load_a_path_over_the_unix_socket(bridge: Bridge, tiny_model_path: Path) -> None:
    with bridge.client() as c:
        loaded = c.ok(f"LOAD {tiny_model_path}")
        assert loaded["model"] == str(tiny_model_path.resolve())
        c.ok("SET max_tokens 2")
        assert c.ok("INFER hi")["completion_tokens"] <= 2
        assert c.reply(f"LOAD {tiny_model_path.parent}/missing.gguf")["code"] == "model_not_found"


def test_cancel_without_a_stream(bridge: Bridge) -> None:
    with bridge.client() as c:
        assert c.reply("CANCEL") == {"status": "ok", "message": "nothing to cancel", "data": {"cancelled": False}}
