"""Expressions written from other languages' habits ({{ }}, ${{ }}, $(), &&, None), with the fix."""

from __future__ import annotations

import re
from typing import NamedTuple

from ductwork.dsl.expr import expressions
from ductwork.errors import ExpressionError

# Names a value written for another template engine starts with, when it means ours.
_ROOTS = ("ctx", "steps", "state", "item", "index", "input", "inputs", "env", "secrets",
          "error", "result", "variables", "constants")
_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[[^\]\n]*\])*"
# `{{ ctx.input.x }}` (Jinja, Handlebars, GitHub Actions), `$(ctx.input.x)` (shell),
# `$ {ctx.input.x}` (a stray space) and `{ctx.input.x}` (a Python f-string without the f).
_MUSTACHE = re.compile(r"(?<!\$)\{\{\s*(" + _PATH + r")\s*\}\}")
_SHELL = re.compile(r"\$\(\s*(" + _PATH + r")\s*\)")
_SPACED = re.compile(r"\$\s+\{\s*(" + _PATH + r")\s*\}")
_FSTRING = re.compile(r"(?<![${])\{\s*(" + _PATH + r")\s*\}(?!\})")
# Literals of other languages, and how they are written here.
LITERALS = {"None": "null", "nil": "null", "undefined": "null", "NULL": "null",
            "Null": "null", "True": "true", "TRUE": "true", "False": "false",
            "FALSE": "false"}


class Habit(NamedTuple):
    """A mistake at `offset` (0-based in the string), `length` characters long."""

    offset: int
    length: int
    message: str
    hint: str


def _ours(path: str, names: frozenset[str]) -> bool:
    root = re.match(r"[A-Za-z_][A-Za-z0-9_]*", path)
    return root is not None and (root[0] in _ROOTS or root[0] in names)


def _fixed(path: str) -> str:
    """`input.x` / `inputs.x` (other engines' spelling) -> `ctx.input.x`."""
    for old in ("inputs.", "input."):
        if path.startswith(old):
            return "ctx.input." + path[len(old):]
    return path


def in_text(text: str, names: frozenset[str] = frozenset()) -> Habit | None:
    """The first template of another language in a YAML string; `names` are the foreach
    aliases (they count as our roots)."""
    if "${{" in text:
        start = text.index("${{")
        try:
            expressions.compile_value(text)  # `${{a: 1}}` is a map: fine
        except ExpressionError:
            end = text.find("}}", start)
            inner = text[start + 3:end].strip() if end > 0 else ""
            return Habit(start, (end + 2 - start) if end > 0 else 3,
                         "'${{ ... }}' is GitHub Actions syntax",
                         f"write ${{{_fixed(inner)}}}" if inner else "write ${...}")
    found: list[Habit] = []
    for pattern, what in ((_MUSTACHE, "'{{ ... }}' is Jinja/Handlebars syntax"),
                          (_SHELL, "'$( ... )' is shell syntax"),
                          (_SPACED, "'$ {' has a space: this is text, not an expression"),
                          (_FSTRING, "'{...}' without '$' is text, not an expression")):
        for m in pattern.finditer(text):
            # `{item}` alone could be plain text; `{{ item }}` and `$(item)` mean the loop's.
            bare = pattern is not _FSTRING and m[1] in {"item", "index", *names}
            if _ours(m[1], names) and ("." in m[1] or "[" in m[1] or bare):
                fix = f"write ${{{_fixed(m[1])}}}"
                found.append(Habit(m.start(), m.end() - m.start(), what,
                                   fix + (" (no space)" if pattern is _SPACED else "")))
                break
    return min(found, key=lambda h: h.offset) if found else None


def parse_error(text: str, index: int) -> tuple[int, str, str] | None:
    """A better (index, message, hint) for a parse error at `index` (0-based) of a YAML
    string when the cause is an operator of another language."""
    at = text[index:index + 3]
    if at.startswith("&"):
        return index, "bad expression: unexpected '&&'", "write 'and': '&&' is JavaScript"
    if at.startswith("||"):
        return index, "bad expression: unexpected '||'", "write 'or': '||' is JavaScript"
    if at.startswith("|"):
        name = re.match(r"\|\s*([A-Za-z_][A-Za-z0-9_]*)", text[index:])
        opened = text.rfind("${", 0, index)
        operand = text[opened + 2:index].strip() if opened >= 0 else ""
        if name:
            return (index, f"bad expression: '| {name[1]}' is a Jinja filter",
                    f"call the function: {name[1]}({operand or 'x'})")
        return index, "bad expression: unexpected '|'", "write 'or'"
    for op in ("===", "!=="):
        start = text.rfind(op, 0, index + 1)
        if start >= 0 and start + len(op) > index:
            return start, f"bad expression: '{op}' is JavaScript", f"write '{op[:2]}'"
    if at.startswith("!") and not at.startswith("!="):
        return index, "bad expression: unexpected '!'", "write 'not x': '!' is JavaScript"
    if at.startswith("??"):
        return (index, "bad expression: '??' is JavaScript",
                "for a fallback write default(a, b) (or 'a or b')")
    if at.startswith("?"):
        return (index, "bad expression: 'cond ? a : b' is JavaScript",
                "write 'a if cond else b'")
    word = re.match(r"[A-Za-z_]+\b", text[index:])
    if word and word[0] in WORD_OPERATORS:
        return (index, f"bad expression: '{word[0]}' is not an operator",
                WORD_OPERATORS[word[0]])
    return None


# Operators of other languages written as words (after a complete value).
WORD_OPERATORS = {
    "contains": "write 'x in list' or contains(list, x)",
    "includes": "write 'x in list' or contains(list, x)",
    "is": "write '==' (x == null)",
    "AND": "write 'and' (lower case)",
    "OR": "write 'or' (lower case)",
    "NOT": "write 'not' (lower case)",
}


def literal(name: str) -> str | None:
    """The hint for a name that is another language's literal (`None` -> null)."""
    right = LITERALS.get(name)
    return f"write {right}: literals are null, true and false" if right else None


def condition(raw: str) -> str | None:
    """The hint for an `if:` that is not exactly one `${...}` (which would make it text, and
    any non-empty text is true)."""
    stripped = raw.strip()
    habit = in_text(raw)
    if habit is not None:
        return f"{habit.message}; {habit.hint}"
    if stripped.lower() in ("true", "false"):
        return f"write {stripped.lower()} without quotes, or \"${{{stripped.lower()}}}\""
    try:
        sites = expressions.compile_value(raw).expressions()
    except ExpressionError:
        return None
    if not sites:
        if stripped.startswith("{") and stripped.endswith("}"):
            return f'add the \'$\': "${stripped}"'
        return f'write "${{{stripped}}}"'
    if len(sites) == 1:
        expr, offset = sites[0]
        end = offset + len(expr.source) + 1
        before, after = raw[:offset - 2], raw[end:]
        if not (before + after).strip():
            newline = "\n" in before + after
            return ("the " + ("newline" if newline else "space") + " around ${...} makes the "
                    "condition text, and text is always true: remove it"
                    + (" (a block scalar keeps its last newline: write |- or >-)"
                       if newline else ""))
        inner = f"{before.strip()} {expr.source.strip()} {after.strip()}".strip()
        return f'text around ${{...}} makes the condition text (always true): write "${{{inner}}}"'
    return "the condition is several ${...} joined into text (always true): write it as one " \
           "${...} expression, e.g. ${a and b}"
