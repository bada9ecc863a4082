"""A hand-written parser for grammar.lark that gives up (None) wherever Lark might differ."""

from __future__ import annotations

import re

from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.expr.limits import MAX_INT_DIGITS

# Why: Lark's LALR parser costs ~80 us per expression, most of a spec's compile time. This
# parser accepts the same language and builds the same tree; where the grammar's contextual
# lexer could read the text otherwise (a keyword used as a name, `1 + not`, `{true: 1}`), or on
# any error, it returns None and parse_ast asks Lark, which also words every error message.

_TOKEN = re.compile(
    r"(?P<ws>[ \t\r\n]+)"
    r"|(?P<dotname>\.[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)"
    r"|(?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<string>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>//|==|!=|<=|>=|[-+*/%<>()\[\]{},:])",
    re.S,
)
_KEYWORDS = frozenset({"if", "else", "or", "and", "not", "in", "true", "false", "null"})
_CONSTS = {"true": True, "false": False, "null": None}
_COMPARE = frozenset({"==", "!=", "<", "<=", ">", ">="})
# Deeper nesting goes to Lark, whose parser is not recursive.
_MAX_NESTING = 40


class _GiveUp(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) of each token, ending with ("end", "", len)."""
    out: list[tuple[str, str, int]] = []
    pos, n = 0, len(text)
    match = _TOKEN.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            raise _GiveUp
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            value = m.group()
            out.append((value if kind == "op" else kind, value, pos))
        pos = m.end()
    out.append(("end", "", n))
    return out


class _Parser:
    __slots__ = ("depth", "i", "toks")

    def __init__(self, toks: list[tuple[str, str, int]]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def take(self, kind: str) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        if tok[0] != kind:
            raise _GiveUp
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.toks[self.i]
        return tok[0] == "word" and tok[1] == word

    def enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise _GiveUp

    def expr(self) -> ast.Node:
        self.enter()
        then = self.or_test()
        if self.keyword("if"):
            pos = self.peek()[2]
            self.i += 1
            test = self.or_test()
            if not self.keyword("else"):
                raise _GiveUp
            self.i += 1
            then = ast.Cond(pos, test, then, self.expr())
        self.depth -= 1
        return then

    def or_test(self) -> ast.Node:
        left = self.and_test()
        while self.keyword("or"):
            pos = self.peek()[2]
            self.i += 1
            left = ast.BoolOp(pos, "or", left, self.and_test())
        return left

    def and_test(self) -> ast.Node:
        left = self.not_test()
        while self.keyword("and"):
            pos = self.peek()[2]
            self.i += 1
            left = ast.BoolOp(pos, "and", left, self.not_test())
        return left

    def not_test(self) -> ast.Node:
        if self.keyword("not"):
            pos = self.peek()[2]
            self.i += 1
            self.enter()
            node = ast.Unary(pos, "not", self.not_test())
            self.depth -= 1
            return node
        left = self.sum()
        kind, value, pos = self.peek()
        if kind in _COMPARE:
            op = kind
            self.i += 1
        elif kind == "word" and value == "in":
            op = "in"
            self.i += 1
        elif kind == "word" and value == "not":
            nxt = self.toks[self.i + 1]
            if nxt[0] != "word" or nxt[1] != "in":
                raise _GiveUp
            op = "not in"
            self.i += 2
        else:
            return left
        return ast.Compare(pos, op, left, self.sum())

    def sum(self) -> ast.Node:
        left = self.term()
        while self.peek()[0] in ("+", "-"):
            kind, _, pos = self.peek()
            self.i += 1
            left = ast.Binary(pos, kind, left, self.term())
        return left

    def term(self) -> ast.Node:
        left = self.factor()
        while self.peek()[0] in ("*", "/", "//", "%"):
            kind, _, pos = self.peek()
            self.i += 1
            left = ast.Binary(pos, kind, left, self.factor())
        return left

    def factor(self) -> ast.Node:
        kind, _, pos = self.peek()
        if kind in ("-", "+"):
            self.i += 1
            self.enter()
            node = ast.Unary(pos, kind, self.factor())
            self.depth -= 1
            return node
        return self.postfix()

    def postfix(self) -> ast.Node:
        node = self.atom()
        while True:
            kind, value, pos = self.peek()
            if kind == "dotname":
                self.i += 1
                if value.startswith(".__"):
                    raise _GiveUp
                node = ast.Field(pos + 1, node, value[1:])
            elif kind == "[":
                self.i += 1
                key = self.expr()
                self.take("]")
                node = ast.Index(pos, node, key)
            elif kind == "(":
                self.i += 1
                args = self.items(")")
                node = _call(node, args)
            else:
                return node

    def items(self, closer: str) -> tuple[ast.Node, ...]:
        """`expr ("," expr)* ","?` up to `closer` (taken), or nothing."""
        out: list[ast.Node] = []
        while self.peek()[0] != closer:
            out.append(self.expr())
            if self.peek()[0] != ",":
                break
            self.i += 1
        self.take(closer)
        return tuple(out)

    def atom(self) -> ast.Node:
        kind, value, pos = self.peek()
        self.i += 1
        if kind == "word":
            if value in _CONSTS:
                return ast.Const(pos, _CONSTS[value])
            if value in _KEYWORDS or value.startswith("__"):
                raise _GiveUp  # a name to Lark's lexer here, or an error
            return ast.Name(pos, value)
        if kind == "number":
            if any(ch in value for ch in ".eE"):
                return ast.Const(pos, float(value))
            if len(value) > MAX_INT_DIGITS:
                raise _GiveUp
            return ast.Const(pos, int(value))
        if kind == "string":
            if "\\" in value:
                raise _GiveUp  # escapes: parser.unescape words their errors
            return ast.Const(pos, value[1:-1])
        if kind == "[":
            return ast.ListNode(pos, self.items("]"))
        if kind == "{":
            return self.map_(pos)
        if kind == "(":
            inner = self.expr()
            self.take(")")
            return inner
        raise _GiveUp

    def map_(self, pos: int) -> ast.Node:
        keys: list[str] = []
        values: list[ast.Node] = []
        while self.peek()[0] != "}":
            kind, raw, _ = self.peek()
            if kind == "word" and raw not in _KEYWORDS:
                key = raw
            elif kind == "string" and "\\" not in raw:
                key = raw[1:-1]
            else:
                raise _GiveUp
            self.i += 1
            self.take(":")
            if key in keys:
                raise _GiveUp  # Lark's route reports it
            keys.append(key)
            values.append(self.expr())
            if self.peek()[0] != ",":
                break
            self.i += 1
        self.take("}")
        return ast.MapNode(pos, tuple(keys), tuple(values))


def _call(callee: ast.Node, args: tuple[ast.Node, ...]) -> ast.Node:
    if isinstance(callee, ast.Name):
        return ast.Call(callee.pos, callee.name, args, callee.name)
    if isinstance(callee, ast.Field) and isinstance(callee.obj, ast.Name) \
            and callee.obj.name == "transform":
        return ast.Call(callee.obj.pos, callee.name, args, "transform." + callee.name)
    raise _GiveUp


def parse(text: str) -> ast.Node | None:
    """The tree Lark would build for `text`, or None when this parser cannot be sure."""
    try:
        toks = _tokens(text)
        p = _Parser(toks)
        node = p.expr()
        if p.peek()[0] != "end":
            return None
        return node
    except _GiveUp:
        return None
