"""Test helper: a non-recursive GBNF grammar -> one Python regex, to check what it accepts."""

from __future__ import annotations

import re

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|[A-Za-z0-9-]+|[()|*+?]|\{[0-9, ]*\}')
_ESC = {"n": "\n", "r": "\r", "t": "\t"}


def _literal(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\":
            c = body[i + 1]
            if c in "xuU":
                n = {"x": 2, "u": 4, "U": 8}[c]
                out.append(chr(int(body[i + 2:i + 2 + n], 16)))
                i += 2 + n
                continue
            out.append(_ESC.get(c, c))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return re.escape("".join(out))


def _rules(grammar: str) -> dict[str, str]:
    rules, name = {}, None
    for line in grammar.splitlines():
        if "::=" in line:
            name, body = line.split("::=", 1)
            name = name.strip()
            rules[name] = body
        elif name and line.strip():
            rules[name] += " " + line
    return rules


def gbnf_to_regex(grammar: str, start: str = "root") -> re.Pattern[str]:
    rules = _rules(grammar)

    def expand(name: str, depth: int) -> str:
        if depth > 50:
            raise ValueError(f"rule {name} is recursive")
        out = []
        for tok in _TOKEN.findall(rules[name]):
            if not tok.strip() or tok.startswith("#"):
                continue
            if tok.startswith('"'):
                out.append(f"(?:{_literal(tok[1:-1])})")
            elif tok.startswith("["):
                out.append(tok)
            elif tok == "(":
                out.append("(?:")
            elif tok in ")|*+?" or tok.startswith("{"):
                out.append(tok.replace(" ", ""))
            else:
                out.append(f"(?:{expand(tok, depth + 1)})")
        return "".join(out)

    return re.compile(expand(start, 0), re.S)
