"""Check a GBNF grammar before llama.cpp sees it, and write GBNF literals.

llama.cpp parses GBNF with a recursive-descent parser (one C++ stack frame per
nested group) and builds its grammar stacks by recursing through leftmost rule
references, so a hostile grammar can crash the process (llama.cpp#26600).
:func:`check_gbnf` scans the text once, without recursion, mirroring the
syntax of ``llama-grammar.cpp``, and rejects what is too large, too deep,
malformed or insane (undefined rules, no ``root``, left recursion) with a
:class:`~llamarun.errors.GrammarError` that names the problem and its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import GrammarError
from .limits import GrammarLimits

__all__ = ["check_gbnf", "gbnf_char_class", "gbnf_literal"]

_SPACE = re.compile(r"(?:[ \t]+|#[^\r\n]*)*")
_SPACE_NL = re.compile(r"(?:[ \t\r\n]+|#[^\r\n]*)*")
_NAME = re.compile(r"[a-zA-Z0-9-]+")
_INT = re.compile(r"[0-9]+")
_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_CHAR_CLASS = re.compile(r"\[\^?((?:[^\]\\]|\\.)*)\]", re.S)
_TOKEN = re.compile(r"!?<[^>]*>")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[trn\\\"\[\]-])")
_NO_MAX = -1

# An item of a sequence: (kind, value, at_least_once). kind: "t" terminal, "e" empty
# literal, "g" group (value: node index), "r" rule reference (value: name).
_Item = tuple[str, object, int]


@dataclass
class _Grammar:
    nodes: list[list[list[_Item]]] = field(default_factory=list)  # node -> alternatives -> items
    rules: dict[str, int] = field(default_factory=dict)  # rule name -> node
    first_ref: dict[str, int] = field(default_factory=dict)  # rule name -> first position used


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


class _Scanner:
    """One pass over the text, groups tracked on an explicit stack."""

    def __init__(self, text: str, limits: GrammarLimits) -> None:
        self.text = text
        self.limits = limits
        self.pos = 0
        self.g = _Grammar()

    def fail(self, message: str) -> GrammarError:
        return GrammarError(f"invalid GBNF grammar at line {_line(self.text, self.pos)}: {message}", field="grammar")

    def space(self, newline_ok: bool) -> None:
        self.pos = (_SPACE_NL if newline_ok else _SPACE).match(self.text, self.pos).end()

    def run(self) -> _Grammar:
        self.space(True)
        while self.pos < len(self.text):
            self.rule()
        return self.g

    def rule(self) -> None:
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.fail(f"expecting a rule name, found {self.text[self.pos:self.pos + 20]!r}")
        self.pos = m.end()
        self.space(False)
        if not self.text.startswith("::=", self.pos):
            raise self.fail(f"expecting '::=' after rule name {m.group()!r}")
        self.pos += 3
        self.space(True)
        node = self.new_node()
        self.g.rules[m.group()] = node
        if len(self.g.rules) > self.limits.max_rules:
            raise self.fail(f"more than {self.limits.max_rules} rules")
        self.alternates(node)
        if self.text.startswith("\r\n", self.pos):
            self.pos += 2
        elif self.pos < len(self.text) and self.text[self.pos] in "\r\n":
            self.pos += 1
        elif self.pos < len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos]!r} (expecting newline or end)")
        self.space(True)

    def new_node(self) -> int:
        self.g.nodes.append([[]])
        return len(self.g.nodes) - 1

    def alternates(self, node: int) -> None:
        stack = [node]  # groups being parsed; stack[0] is the rule itself
        text = self.text
        while True:
            nested = len(stack) > 1
            seq = self.g.nodes[stack[-1]][-1]
            c = text[self.pos] if self.pos < len(text) else ""
            if c == "(":
                group = self.new_node()
                seq.append(("g", group, 1))
                stack.append(group)
                if len(stack) - 1 > self.limits.max_nesting:
                    raise self.fail(f"groups nested deeper than {self.limits.max_nesting} levels")
                self.pos += 1
                self.space(True)
            elif c == ")" and nested:
                stack.pop()
                self.pos += 1
                self.space(len(stack) > 1)
            elif c == "|":
                self.g.nodes[stack[-1]].append([])
                self.pos += 1
                self.space(True)
            elif c in ("*", "+", "?", "{"):
                self.repetition(seq, c)
                self.space(nested)
            elif c:
                if not self.item(seq, c):
                    break
                self.space(nested)
            else:
                break
        if len(stack) > 1:
            raise self.fail("expecting ')'" if self.pos < len(text) else "unexpected end of grammar (missing ')')")

    def item(self, seq: list[_Item], c: str) -> bool:
        text = self.text
        if c == '"':
            m = _LITERAL.match(text, self.pos)
            if not m:
                raise self.fail("unterminated string literal")
            self.check_escapes(m.group(1))
            seq.append(("t" if m.group(1) else "e", None, 1))
        elif c == "[":
            m = _CHAR_CLASS.match(text, self.pos)
            if not m:
                raise self.fail("unterminated character class")
            self.check_escapes(m.group(1))
            seq.append(("t", None, 1))
        elif c in "<!":
            m = _TOKEN.match(text, self.pos)
            if not m:
                raise self.fail("expecting a token <...>")
            seq.append(("t", None, 1))
        elif c == ".":
            self.pos += 1
            seq.append(("t", None, 1))
            return True
        else:
            m = _NAME.match(text, self.pos)
            if not m:
                return False
            seq.append(("r", m.group(), 1))
            self.g.first_ref.setdefault(m.group(), self.pos)
        self.pos = m.end()
        return True

    def check_escapes(self, body: str) -> None:
        i = body.find("\\")
        while i >= 0:
            m = _ESCAPE.match(body, i)
            if not m:
                raise self.fail(f"unknown escape {body[i:i + 2]!r}")
            i = body.find("\\", m.end())

    def repetition(self, seq: list[_Item], c: str) -> None:
        if not seq:
            raise self.fail(f"{c!r} has no preceding item to repeat")
        self.pos += 1
        if c == "{":
            lo, hi = self.counts()
        else:
            lo, hi = {"*": (0, _NO_MAX), "+": (1, _NO_MAX), "?": (0, 1)}[c]
        kind, value, old = seq[-1]
        seq[-1] = (kind, value, 0 if old == 0 or lo == 0 else 1)  # only "may be empty" matters

    def counts(self) -> tuple[int, int]:
        nested = True
        self.space(nested)
        lo = self.integer()
        self.space(nested)
        hi = lo
        if self.text.startswith(",", self.pos):
            self.pos += 1
            self.space(nested)
            hi = self.integer() if _INT.match(self.text, self.pos) else _NO_MAX
            self.space(nested)
        if not self.text.startswith("}", self.pos):
            raise self.fail("expecting '}' to close a repetition")
        self.pos += 1
        if lo > self.limits.max_repetition:
            raise self.fail(f"repetition of at least {lo} is more than the limit of {self.limits.max_repetition}")
        if hi != _NO_MAX and hi < lo:
            raise self.fail(f"repetition {{{lo},{hi}}} has a maximum below its minimum")
        return lo, hi

    def integer(self) -> int:
        m = _INT.match(self.text, self.pos)
        if not m:
            raise self.fail("expecting an integer in a repetition")
        self.pos = m.end()
        if len(m.group()) > 9:
            raise self.fail(f"repetition count {m.group()[:12]} is too large")
        return int(m.group())


def _resolve(text: str, g: _Grammar) -> list[list[list[tuple[str, int, int]]]]:
    """Rule references -> node indexes; undefined rules and a missing root are errors."""
    if "root" not in g.rules:
        raise GrammarError("invalid GBNF grammar: it needs a 'root' rule (root ::= ...)", field="grammar")
    for name, pos in g.first_ref.items():
        if name not in g.rules:
            raise GrammarError(f"invalid GBNF grammar at line {_line(text, pos)}: undefined rule {name!r}",
                               field="grammar")
    return [[[(k, g.rules[v] if k == "r" else v, n) for k, v, n in alt] for alt in node]  # type: ignore[misc]
            for node in g.nodes]


def _nullable(nodes: list[list[list[tuple[str, int, int]]]]) -> list[bool]:
    """Which nodes can match the empty string (linear worklist, no recursion)."""
    nullable = [False] * len(nodes)
    pending: list[int] = []  # per alternative: items not yet known to be nullable
    owner: list[int] = []
    users: list[list[int]] = [[] for _ in nodes]  # node -> alternatives waiting on it
    queue: list[int] = []
    for index, node in enumerate(nodes):
        for alt in node:
            alt_id = len(pending)
            owner.append(index)
            count = 0
            for kind, value, at_least_once in alt:
                if kind == "e" or not at_least_once:
                    continue
                count += 1
                if kind == "t":
                    count += 1 << 30  # never becomes nullable
                else:
                    users[value].append(alt_id)
            pending.append(count)
            if count == 0 and not nullable[index]:
                nullable[index] = True
                queue.append(index)
    while queue:
        for alt_id in users[queue.pop()]:
            pending[alt_id] -= 1
            if pending[alt_id] == 0 and not nullable[owner[alt_id]]:
                nullable[owner[alt_id]] = True
                queue.append(owner[alt_id])
    return nullable


def _leftmost(nodes: list[list[list[tuple[str, int, int]]]], nullable: list[bool]) -> list[list[int]]:
    """For each node, the nodes llama.cpp expands first when it expands it."""
    edges: list[list[int]] = []
    for node in nodes:
        out: list[int] = []
        for alt in node:
            for kind, value, at_least_once in alt:
                if kind in ("g", "r"):
                    out.append(value)
                if kind == "t" and at_least_once:
                    break
                if kind in ("g", "r") and at_least_once and not nullable[value]:
                    break
        edges.append(out)
    return edges


def _chain_depth(edges: list[list[int]], names: dict[int, str], limit: int) -> None:
    """Reject left recursion and chains of leftmost references longer than ``limit``."""
    depth = [0] * len(edges)
    state = [0] * len(edges)  # 0 new, 1 on the stack, 2 done
    for start in range(len(edges)):
        if state[start]:
            continue
        stack = [(start, 0)]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            if i < len(edges[node]):
                stack[-1] = (node, i + 1)
                nxt = edges[node][i]
                if state[nxt] == 1:
                    where = next((names[n] for n, _ in reversed(stack) if n in names), "root")
                    raise GrammarError(f"invalid GBNF grammar: rule {where!r} is left-recursive", field="grammar")
                if state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                continue
            stack.pop()
            state[node] = 2
            depth[node] = 1 + max((depth[n] for n in edges[node]), default=0)
            if depth[node] > limit:
                raise GrammarError(f"GBNF grammar nests rule references deeper than {limit} levels", field="grammar")


def check_gbnf(text: str, *, limits: GrammarLimits | None = None) -> None:
    """Raise :class:`GrammarError` unless ``text`` is a GBNF grammar llama.cpp can safely take.

    Checks size, group nesting depth, repetition counts, syntax (as llama.cpp
    parses it), that ``root`` and every referenced rule are defined, and that no
    rule is left-recursive or too deep.  Runs in linear time without recursion.
    """
    limits = limits or GrammarLimits()
    if not isinstance(text, str):
        raise GrammarError(f"a grammar must be a string, got {type(text).__name__}", field="grammar")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_grammar_bytes:
        raise GrammarError(f"grammar of {size} bytes is larger than the limit of {limits.max_grammar_bytes}",
                           field="grammar")
    if "\x00" in text:
        raise GrammarError("invalid GBNF grammar: it contains a NUL character", field="grammar")
    grammar = _Scanner(text, limits).run()
    nodes = _resolve(text, grammar)
    names = {node: name for name, node in grammar.rules.items()}
    _chain_depth(_leftmost(nodes, _nullable(nodes)), names, limits.max_chain_depth)


def _escape_char(ch: str, specials: str) -> str:
    code = ord(ch)
    if ch in specials:
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02X}"
    if 0xD800 <= code <= 0xDFFF:
        raise GrammarError("a lone surrogate cannot appear in a grammar literal", field="grammar")
    return ch


def gbnf_literal(text: str) -> str:
    """``text`` as a quoted GBNF string literal (``"..."``) matching exactly ``text``."""
    return '"' + "".join(_escape_char(ch, '"\\') for ch in text) + '"'


def gbnf_char_class(chars: str = "", ranges: tuple[tuple[str, str], ...] = (), *, negate: bool = False) -> str:
    """A GBNF character class such as ``[a-z_]`` or ``[^"\\\\]``."""
    body = "".join(_escape_char(c, "\\]-[^") for c in chars)
    body += "".join(f"{_escape_char(a, chr(92) + ']-[^')}-{_escape_char(b, chr(92) + ']-[^')}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"
