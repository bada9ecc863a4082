"""Parse phase: grammar.lark (built once, LALR) -> our AST; Lark types never leave this module."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from ductwork.dsl.expr import descent
from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.expr.limits import MAX_EXPRESSION_LENGTH, MAX_EXPRESSION_TERMS, MAX_INT_DIGITS

if TYPE_CHECKING:
    from lark import Lark, Token
    from lark.exceptions import UnexpectedInput

# Lark is imported, and its tables built, only when descent.py gives up on an expression: a
# process whose specs hold common expressions only never pays for them (~50 ms).

_ESCAPES = {
    "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0",
    "\\": "\\", "'": "'", '"': '"', "/": "/", "$": "$",
}
_HEX = frozenset("0123456789abcdefABCDEF")


class ParseFailure(Exception):
    """Raised inside the parse phase; `pos` is a 0-based offset into the expression text."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message, self.pos = message, pos


def _check_name(tok: Token) -> str:
    name = str(tok).lstrip(".")
    if name.startswith("__"):
        raise ParseFailure(
            f"names starting with '__' are not allowed ('{name}')", _pos(tok) + (str(tok) != name)
        )
    return name


def _pos(tok: Token) -> int:
    return tok.start_pos or 0


def unescape(raw: str, pos: int) -> str:
    """Decode a STRING token (with its quotes); `pos` is where the token starts."""
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < n else ""
        if nxt == "u":
            digits = body[i + 2 : i + 6]
            if len(digits) != 4 or any(c not in _HEX for c in digits):
                raise ParseFailure("bad \\u escape: write \\u and four hex digits", pos + 1 + i)
            code = int(digits, 16)
            i += 6
            low = body[i + 2 : i + 6] if body.startswith("\\u", i) else ""
            if 0xD800 <= code < 0xDC00 and len(low) == 4 and all(c in _HEX for c in low):
                code2 = int(low, 16)
                if 0xDC00 <= code2 < 0xE000:  # a JSON-style surrogate pair: one character
                    code = 0x10000 + ((code - 0xD800) << 10) + (code2 - 0xDC00)
                    i += 6
            out.append(chr(code))
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise ParseFailure(
                f"unknown escape '\\{nxt}' in string; write '\\\\' for a backslash", pos + 1 + i
            )
    return "".join(out)


def _items(children: list[Any]) -> tuple[ast.Node, ...]:
    return tuple(c for c in children if isinstance(c, ast.Node))


class _ToAst:
    """Runs inside the LALR parser (no tree is built, no recursion); stateless, so shared.
    Lark calls its methods by rule name: it needs no Transformer base class."""

    def name(self, c: list[Token]) -> ast.Node:
        return ast.Name(_pos(c[0]), _check_name(c[0]))

    def number(self, c: list[Token]) -> ast.Node:
        text = str(c[0])
        if any(ch in text for ch in ".eE"):
            return ast.Const(_pos(c[0]), float(text))
        if len(text) > MAX_INT_DIGITS:
            raise ParseFailure(f"number too long (more than {MAX_INT_DIGITS} digits)", _pos(c[0]))
        return ast.Const(_pos(c[0]), int(text))

    def string(self, c: list[Token]) -> ast.Node:
        return ast.Const(_pos(c[0]), unescape(str(c[0]), _pos(c[0])))

    def true(self, c: list[Token]) -> ast.Node:
        return ast.Const(_pos(c[0]), True)

    def false(self, c: list[Token]) -> ast.Node:
        return ast.Const(_pos(c[0]), False)

    def null(self, c: list[Token]) -> ast.Node:
        return ast.Const(_pos(c[0]), None)

    def list_(self, c: list[Any]) -> ast.Node:
        return ast.ListNode(_pos(c[0]), _items(c[1:]))

    def pair(self, c: list[Any]) -> tuple[str, int, ast.Node]:
        key_tok, value = c
        raw = str(key_tok)
        key = unescape(raw, _pos(key_tok)) if key_tok.type == "STRING" else raw
        return key, _pos(key_tok), value

    def map_(self, c: list[Any]) -> ast.Node:
        keys: list[str] = []
        values: list[ast.Node] = []
        for pair in c[1:]:
            if pair is None:
                continue
            key, pos, value = pair
            if key in keys:
                raise ParseFailure(f"duplicate key '{key}' in map", pos)
            keys.append(key)
            values.append(value)
        return ast.MapNode(_pos(c[0]), tuple(keys), tuple(values))

    def field(self, c: list[Any]) -> ast.Node:
        obj, tok = c
        return ast.Field(_pos(tok) + 1, obj, _check_name(tok))

    def index(self, c: list[Any]) -> ast.Node:
        obj, tok, key = c
        return ast.Index(_pos(tok), obj, key)

    def args(self, c: list[Any]) -> list[ast.Node]:
        return list(c)

    def call(self, c: list[Any]) -> ast.Node:
        callee, lpar, args = c
        if isinstance(callee, ast.Name):
            name, pos = callee.name, callee.pos
            written = name
        elif (
            isinstance(callee, ast.Field)
            and isinstance(callee.obj, ast.Name)
            and callee.obj.name == "transform"
        ):
            name, pos = callee.name, callee.obj.pos
            written = "transform." + name
        else:
            hint = f"; write {callee.name}(...)" if isinstance(callee, ast.Field) else ""
            raise ParseFailure(
                "only functions can be called, e.g. upper(x) or transform.upper(x)" + hint,
                _pos(lpar),
            )
        return ast.Call(pos, name, tuple(args or ()), written)

    def unary(self, c: list[Any]) -> ast.Node:
        op, operand = c
        return ast.Unary(_pos(op), str(op), operand)

    def not_(self, c: list[Any]) -> ast.Node:
        op, operand = c
        return ast.Unary(_pos(op), "not", operand)

    def binary(self, c: list[Any]) -> ast.Node:
        left, op, right = c
        return ast.Binary(_pos(op), str(op), left, right)

    def comp_op(self, c: list[Token]) -> tuple[str, int]:
        return " ".join(str(t) for t in c), _pos(c[0])

    def compare(self, c: list[Any]) -> ast.Node:
        left, (op, pos), right = c
        return ast.Compare(pos, op, left, right)

    def and_(self, c: list[Any]) -> ast.Node:
        left, op, right = c
        return ast.BoolOp(_pos(op), "and", left, right)

    def or_(self, c: list[Any]) -> ast.Node:
        left, op, right = c
        return ast.BoolOp(_pos(op), "or", left, right)

    def cond(self, c: list[Any]) -> ast.Node:
        then, tok, test, other = c
        return ast.Cond(_pos(tok), test, then, other)


@functools.cache
def parser() -> Lark:
    """The one Lark instance (LALR tables are built on first use, then reused)."""
    from lark import Lark

    return Lark.open_from_package(
        "ductwork.dsl.expr",
        "grammar.lark",
        parser="lalr",
        # Positions come from the tokens (_pos); propagating them to tree nodes costs ~15 %.
        propagate_positions=False,
        maybe_placeholders=True,
        transformer=_ToAst(),
    )


# Most expressions are plain paths (`ctx.input.email`, `steps.create-user.id`); they skip the
# LALR parser. Anything else, including keywords and `__` names, takes the full route.
_PLAIN_PATH = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)*)\s*\Z"
)
_KEYWORDS = frozenset({"true", "false", "null", "not", "and", "or", "if", "else", "in"})


def _plain_path(text: str) -> ast.Node | None:
    m = _PLAIN_PATH.match(text)
    if m is None or "__" in text or m.group(1) in _KEYWORDS:
        return None
    pos = m.start(1)
    node: ast.Node = ast.Name(pos, m.group(1))
    pos = m.end(1)
    for seg in m.group(2).split(".")[1:]:
        node = ast.Field(pos + 1, node, seg)
        pos += len(seg) + 1
    return node


def parse_ast(text: str) -> ast.Node:
    """Parse expression text into our AST; raises ParseFailure (never a Lark error)."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        # Refused before parsing: a huge expression costs seconds to parse, even to reject.
        raise ParseFailure(
            f"expression is too long ({len(text):,} characters, at most "
            f"{MAX_EXPRESSION_LENGTH:,})", 0)
    plain = _plain_path(text)
    if plain is not None:
        return plain
    if not text.strip():
        raise ParseFailure("empty expression: write something between '${' and '}'", 0)
    node: Any = descent.parse(text)
    if node is None:  # not surely the same tree, or an error: Lark decides and words it
        from lark.exceptions import LarkError, UnexpectedInput

        try:
            node = parser().parse(text)
        except UnexpectedInput as exc:
            raise _failure(exc, text) from None
        except LarkError as exc:  # pragma: no cover - other Lark errors mean a grammar bug
            raise ParseFailure(f"cannot parse expression ({type(exc).__name__})", 0) from None
    assert isinstance(node, ast.Node)
    nesting, terms = ast.depth_and_size(node)
    if nesting > ast.MAX_DEPTH:
        raise ParseFailure(f"expression is nested too deeply (more than {ast.MAX_DEPTH} levels)", 0)
    if terms > MAX_EXPRESSION_TERMS:
        raise ParseFailure(
            f"expression has too many terms ({terms:,}, at most {MAX_EXPRESSION_TERMS:,})", 0)
    return node


# -- readable parse errors ------------------------------------------------------------------

# Terminals that can only start a value (so they are never expected right after one).
_VALUE_START = {"NAME", "NUMBER", "STRING", "TRUE", "FALSE", "NULL"}
_WORDS = {
    "$END": "end of expression",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "DOTNAME": "'.field'",
}
_COMPARE = {"==", "!=", "<", "<=", ">", ">=", "in"}
_HINTS = {
    "!": "write 'not x' or 'a != b'",
    "&": "write 'and'",
    "|": "write 'or'",
    "=": "write '==' to compare",
    "?": "write 'a if condition else b'",
    "$": "'${' cannot be nested: inside an expression write the path directly",
    "}": "an expression cannot contain an unmatched '}'",
    "'": "this string is never closed",
    '"': "this string is never closed",
}


@functools.cache
def _literal(term: str) -> str | None:
    for t in parser().terminals:
        if t.name == term and t.pattern.type == "str":
            return str(t.pattern.value)
    return None


_CLOSERS = {"(": "')'", "[": "']'", "{": "'}'"}
_NOT_OPERATORS = {"$END", "COMMA", "COLON", "RPAR", "RSQB", "RBRACE", "ELSE"}


def string_end(text: str, start: int) -> int:
    """Index of the quote closing the string literal that opens at `start`, or >= len(text)
    when it is never closed; a backslash escapes the next character."""
    quote, i, n = text[start], start + 1, len(text)
    while i < n and text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i


def _innermost_open(text: str) -> str | None:
    """The innermost bracket still open in `text` (strings skipped), or None."""
    stack: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            i = string_end(text, i) + 1
            continue
        if ch in "([{":
            stack.append(ch)
        elif ch in ")]}" and stack:
            stack.pop()
        i += 1
    return stack[-1] if stack else None


def _describe_expected(expected: set[str], before: str) -> str:
    """LALR expected-sets are approximate after a complete value, so reason from brackets."""
    if expected & _VALUE_START:
        return "a value"
    operators = expected - _NOT_OPERATORS
    if "ELSE" in expected and not expected & {"$END", "COMMA", "RPAR", "RSQB", "RBRACE"}:
        return "'else' or an operator" if operators else "'else'"
    if operators or expected & {"RPAR", "RSQB", "RBRACE"}:
        # Which closer is right depends on the innermost open bracket, not on the set.
        opened = _innermost_open(before)
        if opened is None:
            end = "end of expression"
        elif "COMMA" in expected:
            end = f"',' or {_CLOSERS[opened]}"
        else:
            end = _CLOSERS[opened]
        return f"an operator{', ' if ' or ' in end else ' or '}{end}" if operators else end
    words = sorted(_WORDS.get(t) or f"'{_literal(t) or t}'" for t in expected)
    if not words:
        return "something else"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of expression"
    if tok.type == "NAME":
        return f"name '{tok}'"
    if tok.type == "NUMBER":
        return f"number {tok}"
    if tok.type == "STRING":
        return "string"
    if tok.type == "DOTNAME":
        return f"'{tok}'"
    return f"'{tok}'"


def _failure(exc: UnexpectedInput, text: str) -> ParseFailure:
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        msg = f"unexpected character {ch!r} at column {{col}}"
        if ch == "." and text[pos + 1 : pos + 2].isdigit():
            msg += "; index lists with [0], not .0"
        elif ch == ".":
            msg += "; a field name (starting with a letter or '_') must follow '.'"
        elif ch in _HINTS:
            msg += "; " + _HINTS[ch]
        return ParseFailure(msg, pos)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        pos = len(text.rstrip()) if tok.type == "$END" else _pos(tok)
        msg = f"unexpected {_describe_token(tok)} at column {{col}}"
        chained = str(tok) in _COMPARE and tok.type not in ("STRING", "NAME")
        if chained and not set(exc.expected) & _VALUE_START:
            msg += "; comparisons do not chain: write 'a < b and b < c'"
        else:
            msg += f"; expected {_describe_expected(set(exc.expected), text[:pos])}"
        return ParseFailure(msg, pos)
    return ParseFailure("cannot parse expression at column {col}", 0)  # pragma: no cover
