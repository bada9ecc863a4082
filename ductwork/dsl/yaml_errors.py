"""Explains a YAML syntax error: the spot where the author made the mistake, and its fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

# The parser notices most mistakes lines after they were made (an unclosed quote swallows the
# lines below it) and names them in its own terms ("did not find expected key"). Each detector
# below recognises one kind of mistake from the parser's marks plus a look at the source lines,
# and points at the character the author has to change.


@dataclass(frozen=True)
class Finding:
    """One explained syntax error: 0-based line and column of the mistake, message, fix."""

    line: int
    col: int
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class ParseError:
    """What the parser said, marks as 0-based (line, col) or None."""

    problem: str
    context: str
    at: tuple[int, int] | None
    context_at: tuple[int, int] | None


@dataclass
class _Line:
    """One source line as the lexer saw it."""

    n: int
    text: str
    indent: int
    inside: bool = False  # starts inside a quote, a flow collection or a block scalar
    dashes: list[int] = field(default_factory=list)  # columns of leading "- " item markers
    key: str | None = None  # the key this line starts, if any
    key_col: int = 0
    opener: bool = False  # ends with "key:" or "-" and no value: the next line may go deeper


# A key at the start of a block line: quoted, or plain text up to ": " (or ":" at the end).
_KEY = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"\[\]{},&*!|>%@`-][^#]*?)"""
                  r""":(?=\s|$)""")
_BLOCK_SCALAR = re.compile(r"[|>][-+0-9]*\s*(#.*)?$")


def _spaces(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _quote(value: str) -> str:
    """`value` as a YAML quoted scalar, double quotes unless it holds one."""
    if '"' not in value:
        return '"' + value.replace("\\", "\\\\") + '"'
    return "'" + value.replace("'", "''") + "'"


def _n(count: int, word: str) -> str:
    return f"one {word}" if count == 1 else f"{count} {word}s"


class _Lexer:
    """Just enough of YAML's lexical structure to tell block lines from everything else."""

    def __init__(self, text: str) -> None:
        self.lines = [ln.rstrip("\r") for ln in text.split("\n")]
        self.quote: tuple[int, int, str] | None = None  # (line, col, char) of an open quote
        self.swallowed = False  # the open quote ran over a line that looks like YAML structure
        self.depth = 0  # flow collection nesting
        self.block: int | None = None  # block scalar: content lines are indented more than this
        self.found: Finding | None = None  # a quote mistake seen while lexing

    def run(self, last: int) -> list[_Line]:
        out = []
        for n in range(min(last, len(self.lines) - 1) + 1):
            out.append(self.line(n))
            if self.found is not None:
                break
        return out

    def line(self, n: int) -> _Line:
        text = self.lines[n]
        info = _Line(n, text, _spaces(text))
        if self.quote is None and self.depth == 0 and self.block is not None:
            if not text.strip() or info.indent > self.block:
                info.inside = True
                return info
            self.block = None
        info.inside = self.quote is not None or self.depth > 0
        if self.quote is not None and _structural(text):
            self.swallowed = True
        self.scan(info)
        return info

    def scan(self, info: _Line) -> None:
        text, n = info.text, info.n
        i, expect, node_col = 0, True, info.indent
        last_value = False  # something followed the last ':' or '-' on this line
        while i < len(text):
            ch = text[i]
            if self.quote is not None:
                i = self.in_quote(text, n, i)
                if self.quote is None:
                    expect, last_value = False, True
                if self.found is not None:
                    return
                continue
            nxt = text[i + 1:i + 2]
            if ch in " \t":
                i += 1
            elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
                break
            elif expect and ch in "\"'":
                self.quote = (n, i, ch)
                node_col = i
                if not info.inside and info.key is None:
                    self.key_at(info, i)
                i += 1
            elif ch == "-" and expect and self.depth == 0 and nxt in (" ", ""):
                if not info.inside and i == info.indent + 2 * len(info.dashes):
                    info.dashes.append(i)
                node_col, last_value = i, False
                i += 1
            elif ch in "[{":
                self.depth += 1
                expect, last_value = True, True
                i += 1
            elif ch in "]}":
                self.depth = max(0, self.depth - 1)
                expect = False
                i += 1
            elif ch == "," and self.depth:
                expect = True
                i += 1
            elif ch == ":" and (nxt in (" ", "\t", "") or (self.depth and nxt in ",]}")):
                expect, last_value = True, False
                i += 1
            elif ch in "|>" and expect and self.depth == 0 and _BLOCK_SCALAR.match(text[i:]):
                self.block = node_col
                last_value = True
                break
            else:  # a plain scalar: runs to ': ', ' #' or (in a flow) to , ] }
                if expect and not info.inside and info.key is None:
                    self.key_at(info, i)
                node_col = i if expect else node_col
                expect, last_value = False, True
                i = _plain_end(text, i, self.depth > 0)
        info.opener = not last_value and self.quote is None and self.depth == 0 \
            and (info.key is not None or bool(info.dashes))

    def key_at(self, info: _Line, i: int) -> None:
        m = _KEY.match(info.text, i)
        if m:
            info.key, info.key_col = m.group(0)[:-1].strip("'\""), i

    def in_quote(self, text: str, n: int, i: int) -> int:
        """Scan a quoted scalar from `i`; returns where scanning goes on."""
        assert self.quote is not None
        qline, qcol, q = self.quote
        while i < len(text):
            ch = text[i]
            if q == '"' and ch == "\\":
                i += 2
                continue
            if ch == q:
                if q == "'" and text[i + 1:i + 2] == "'":
                    i += 2
                    continue
                if self.swallowed:
                    self.found = _unclosed(self.lines[qline], qline, qcol, q)
                    return len(text)
                rest = text[i + 1:].lstrip(" \t")
                if rest and rest[0] not in ",]}:#":
                    self.found = _closed_early(self.lines[qline], qline, qcol, n, i, q)
                    return len(text)
                self.quote = None
                return i + 1
            i += 1
        return i


def _plain_end(text: str, i: int, flow: bool) -> int:
    while i < len(text):
        c, nxt = text[i], text[i + 1:i + 2]
        if c == ":" and (nxt in (" ", "\t", "") or (flow and nxt in ",]}")):
            break
        if c == "#" and text[i - 1] in " \t":
            break
        if flow and c in ",]}":
            break
        i += 1
    return i


def _structural(text: str) -> bool:
    """Does this line look like YAML structure (an item or a key) rather than prose?"""
    s = text.strip()
    return s.startswith("- ") or s == "-" or re.match(r"[A-Za-z_][\w.-]*:(\s|$)", s) is not None


def _unclosed(text: str, line: int, col: int, q: str) -> Finding:
    rest = text[col + 1:].rstrip()
    # Closing brackets at the end belong to a flow collection opened before the quote.
    opened = text[:col].count("{") + text[:col].count("[") \
        - text[:col].count("}") - text[:col].count("]")
    tail = ""
    while opened > 0 and rest.endswith(("}", "]")):
        tail, rest, opened = rest[-1] + tail, rest[:-1].rstrip(), opened - 1
    fixed = (text[:col + 1] + rest + q + tail).strip()
    name = "double" if q == '"' else "single"
    return Finding(line, col, "this quote is never closed",
                   f"the {name}-quoted string runs on into the lines below: end it on this "
                   f"line: {fixed}")


def _closed_early(text: str, qline: int, qcol: int, line: int, col: int, q: str) -> Finding:
    last = text.rfind(q) if qline == line else -1
    if last <= col:  # no other quote on the line: text follows a string that ended
        value = text[qcol + 1:col] + text[col + 1:].rstrip() if qline == line else ""
        fix = f"put the whole value inside the quotes: {(text[:qcol] + _quote(value)).strip()}" \
            if value else "put the whole value inside the quotes"
        return Finding(line, col, "text after the closing quote", fix)
    value = text[qcol + 1:last]
    fixed = (text[:qcol] + _quote(value) + text[last + 1:]).strip()
    if q == "'":
        alt = (text[:qcol] + "'" + value.replace("'", "''") + "'" + text[last + 1:]).strip()
        return Finding(line, col, "this apostrophe ends the single-quoted string",
                       f"write the apostrophe twice ({alt}) or use double quotes: {fixed}")
    return Finding(line, col, 'this " ends the double-quoted string',
                   f'escape it as \\" or use single quotes: {fixed}')


# -- detectors -------------------------------------------------------------------------------

Detector = Callable[["_Source", ParseError], "Finding | None"]


class _Source:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = [ln.rstrip("\r") for ln in text.split("\n")]

    def line(self, n: int) -> str:
        return self.lines[n] if 0 <= n < len(self.lines) else ""


def _tab(src: _Source, err: ParseError) -> Finding | None:
    if err.at is None:
        return None
    n = err.at[0]
    text = src.line(n)
    lead = text[:len(text) - len(text.lstrip(" \t"))]
    if "\t" not in lead:
        return None
    above = next((src.line(k) for k in range(n - 1, -1, -1)
                  if src.line(k).strip() and not src.line(k).lstrip().startswith("#")), "")
    # The column of the key on the line above, past any "- " item markers.
    m = re.match(r"[ ]*(?:-[ ]+)*", above)
    width = m.end() if m else 0
    name = above[width:].split(":", 1)[0].strip()
    if above.rstrip().endswith(":"):
        where = f"{width + 2} here, to nest it under '{name}'"
    else:
        where = f"{width} here, to line it up with '{name}' above"
    return Finding(n, lead.index("\t"), "a tab is used for indentation",
                   f"YAML indents with spaces only: replace the tab with spaces ({where}); "
                   "set your editor to insert spaces in YAML files")


def _quotes(src: _Source, err: ParseError) -> Finding | None:
    last = err.at[0] if err.at else len(src.lines) - 1
    lexer = _Lexer(src.text)
    lexer.run(last)
    if lexer.found is not None:
        return lexer.found
    if lexer.quote is not None:
        qline, qcol, q = lexer.quote
        if qline < last or "quoted scalar" in err.context:
            return _unclosed(src.line(qline), qline, qcol, q)
    return None


def _template(src: _Source, err: ParseError) -> Finding | None:
    if err.at is None:
        return None
    text = src.line(err.at[0])
    m = re.match(r"(\s*(?:-\s+)*(?:[^\s:#{][^:#]*:\s+)?)(\{\{.*)$", text)
    if m is None:
        return None
    value = m.group(2).rstrip()
    return Finding(err.at[0], len(m.group(1)), "a value starting with '{' is read as a mapping",
                   f"quote the template: {(m.group(1) + _quote(value)).strip()}")


def _block_text(src: _Source, err: ParseError) -> Finding | None:
    """The text of a `|` or `>` block written at (or left of) its key's column."""
    mark = err.context_at if "simple key" in err.context else err.at
    if mark is None:
        return None
    n = mark[0]
    text = src.line(n)
    above = next(((k, src.line(k)) for k in range(n - 1, -1, -1) if src.line(k).strip()), None)
    if above is None or not text.strip():
        return None
    k, line = above
    m = re.match(r"(\s*(?:-\s+)*)([^\s#:][^#:]*):\s+[|>][-+0-9]*\s*(#.*)?$", line)
    if m is None or _spaces(text) > len(m.group(1)):
        return None
    key, col = m.group(2).strip(), len(m.group(1))
    return Finding(n, _spaces(text), f"the text of '{key}' (a '{line.split(':', 1)[1].strip()[0]}' "
                   f"block) is not indented under its key",
                   f"indent every line of the text more than '{key}' (line {k + 1}): start it at "
                   f"column {col + 3}")


def _mismatched(src: _Source, err: ParseError) -> Finding | None:
    if err.at is None or err.context_at is None or "flow" not in err.context:
        return None
    n, col = err.at
    text = src.line(n)
    opener = src.line(err.context_at[0])[err.context_at[1]:err.context_at[1] + 1]
    closer = text[col:col + 1]
    pairs = {"[": "]", "{": "}"}
    if opener not in pairs or closer not in ("]", "}") or pairs[opener] == closer:
        return None
    want = pairs[opener]
    fixed = (text[:col] + want + text[col:]).strip()
    return Finding(n, col, f"'{closer}' where the '{opener}' opened on line "
                   f"{err.context_at[0] + 1} needs its '{want}' first",
                   f"close the {'list' if opener == '[' else 'mapping'} before: {fixed}")


def _dash(src: _Source, err: ParseError) -> Finding | None:
    for mark in (err.at, err.context_at):
        if mark is None:
            continue
        text = src.line(mark[0])
        m = re.match(r"(\s*)-([A-Za-z_$\"'{\[])", text)
        if m:
            col = len(m.group(1))
            fixed = text[:col] + "- " + text[col + 1:].lstrip()
            return Finding(mark[0], col, "'-' needs a space after it to start a list item",
                           f"write '{fixed.strip()}'")
    return None


def _missing_colon(src: _Source, err: ParseError) -> Finding | None:
    if "expected ':'" not in err.problem or err.context_at is None:
        return None
    n, col = err.context_at
    text = src.line(n)
    word = re.match(r"[^\s:#]+", text[col:])
    if word is None:
        return None
    rest = text[col + len(word.group(0)):].strip()
    fixed = f"{word.group(0)}: {rest}" if rest else f"{word.group(0)}:"
    return Finding(n, col + len(word.group(0)), f"missing ':' after '{word.group(0)}'",
                   f"a key is followed by ': ' (colon and space): {fixed}")


def _bad_start(src: _Source, err: ParseError) -> Finding | None:
    if err.at is None:
        return None
    alias = "alias" in err.problem or "alias" in err.context
    if not alias and "cannot start any token" not in err.problem:
        return None
    n, col = err.context_at if alias and err.context_at else err.at
    text = src.line(n)
    ch = text[col:col + 1]
    if ch not in ("@", "`", "%", "*"):
        return None
    flow = text[:col].count("{") + text[:col].count("[") > text[:col].count("}") \
        + text[:col].count("]")
    end = _plain_end(text, col + 1, flow)
    value = text[col:end].rstrip()
    fixed = (text[:col] + _quote(value) + text[col + len(value):]).strip()
    if ch == "*":
        return Finding(n, col, "a value starting with '*' is read as an alias (*name refers to "
                               "an &name anchor)",
                       f"quote the text: {fixed}")
    return Finding(n, col, f"a plain value cannot start with '{ch}'",
                   f"quote the text: {fixed}")


def _colon_in_value(src: _Source, err: ParseError) -> Finding | None:
    if err.at is None:
        return None
    n, col = err.at
    text = src.line(n)
    flow = "flow" in err.context
    if text[col:col + 1] != ":" or not ("mapping values" in err.problem or flow):
        return None
    # Where did the value holding this colon start: after the nearest ': ', '{', '[' or ','?
    sep = max(((text.rfind(s, 0, col), s) for s in (": ", "{", "[", ",")), key=lambda t: t[0])
    if sep[0] < 0 or sep[1] != ": ":
        return None  # no key before it on this line: an indentation problem, not a value
    start = sep[0] + 2
    while text[start:start + 1] == " ":
        start += 1
    if text[start:start + 1] in "\"'{[" or start >= col:
        return None
    if flow:
        end = _flow_value_end(text, col)
    else:
        end = _plain_end(text, col + 1, False)
        end = len(text) if end >= len(text) or text[end] != "#" else end
    value = text[start:end].rstrip()
    fixed = (text[:start] + _quote(value) + text[start + len(value):]).strip()
    hint = f"a colon followed by a space starts a key: quote the whole value: {fixed}"
    word = re.search(r"\s([A-Za-z_][\w.-]*)$", text[start:col])
    if flow and word:  # `{app: stripe event: x}` is more often a missing comma
        comma = (text[:start + word.start()] + "," + text[start + word.start():]).strip()
        hint = f"if '{word.group(1)}' starts the next key, put a comma before it: {comma}; " \
               f"if the colon is part of the text, quote it: {fixed}"
    return Finding(n, col, "': ' inside an unquoted value", hint)


def _flow_value_end(text: str, i: int) -> int:
    """Where a value inside a flow collection ends: the next , ] or } outside ${...}."""
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif ch in ",]}" and not depth:
            return i
        i += 1
    return i


def _unclosed_flow(src: _Source, err: ParseError) -> Finding | None:
    if err.context_at is None or "flow" not in err.context or err.at is None:
        return None
    n, col = err.context_at
    if err.at[0] <= n:
        return None
    text = src.line(n)
    opener = text[col:col + 1]
    if opener not in ("{", "["):
        return None
    closer = "}" if opener == "{" else "]"
    depth = 0
    for ch in text[col:]:
        depth += ch in "{["
        depth -= ch in "}]"
    if depth <= 0:
        return None
    # A flow collection may go on over several lines: blame the opener only when the next
    # line starts a new key or item, as a block would.
    nxt = next((src.line(k) for k in range(n + 1, err.at[0] + 1) if src.line(k).strip()), "")
    if nxt and not _structural(nxt):
        return None
    fixed = text.rstrip() + closer * depth
    return Finding(n, col, f"this '{opener}' is never closed",
                   f"close it at the end of its line: {fixed.strip()}")


def _indentation(src: _Source, err: ParseError) -> Finding | None:
    if err.at is None:
        return None
    last = err.at[0]
    lexer = _Lexer(src.text)
    lines = lexer.run(last)
    if lexer.found is not None or len(lines) <= last:
        return None
    stack: list[tuple[int, int, str]] = []  # (column, line, name) of the open block levels
    prev: _Line | None = None
    for info in lines[:last]:
        if info.inside or not info.text.strip() or info.text.lstrip().startswith("#"):
            continue
        if prev is not None and stack and info.indent > stack[-1][0] and not prev.opener:
            continue  # a plain scalar running on over several lines
        _push(stack, info)
        prev = info
    line = lines[last]
    if line.inside or not line.text.strip():
        return None
    col = line.indent
    is_item = bool(line.dashes) or line.text.lstrip().startswith("-")
    name = "-" if is_item else (line.key or line.text.strip().split(":", 1)[0])
    levels = {c: (ln, nm) for c, ln, nm in stack}
    if col in levels:
        if is_item:
            return _item_in_mapping(stack, line, levels)
        return _key_in_dash_column(stack, line, name, levels)
    if prev is not None and prev.opener and stack and col > stack[-1][0]:
        return None  # a child of the line above: the mistake is elsewhere
    same = [(c, ln, nm) for c, ln, nm in stack if (nm == "-") == is_item] or stack
    if not same:
        return None
    ref_col, ref_line, ref_name = min(same, key=lambda e: (abs(e[0] - col), -e[0]))
    diff = col - ref_col
    more = "more" if diff > 0 else "less"
    what = "this list item" if is_item else f"'{name}'"
    ref = f"the item on line {ref_line + 1}" if ref_name == "-" \
        else f"'{ref_name}' on line {ref_line + 1}"
    moved = "the '-'" if is_item else f"'{name}'"
    unit = "items of one list" if is_item else "keys of one mapping"
    hint = f"{unit} start in the same column: move {moved} to column {ref_col + 1}"
    other = [e for e in same if e[0] != ref_col and abs(e[0] - col) == abs(diff)]
    if other:
        o_col, _, o_name = other[0]
        under = "the '-' above" if o_name == "-" else f"'{o_name}'"
        hint += f", or to column {o_col + 1} to line up with {under}"
    return Finding(last, col, f"{what} is indented {_n(abs(diff), 'space')} {more} than {ref}",
                   hint)


def _push(stack: list[tuple[int, int, str]], info: _Line) -> None:
    col = info.indent
    while stack and stack[-1][0] > col:
        stack.pop()
    if stack and stack[-1][0] == col:
        stack.pop()
    for d in info.dashes:
        stack.append((d, info.n, "-"))
    if info.key is not None:
        stack.append((info.key_col, info.n, info.key))
    elif not info.dashes:
        stack.append((col, info.n, info.text.strip().split(":", 1)[0]))


def _item_in_mapping(stack: list[tuple[int, int, str]], line: _Line,
                     levels: dict[int, tuple[int, str]]) -> Finding | None:
    """A '-' in the column of the keys of the item above: meant as the next item."""
    _, ref_name = levels[line.indent]
    if ref_name == "-":
        return None
    dash = [(c, ln) for c, ln, nm in stack if nm == "-" and c < line.indent]
    if not dash:
        return None
    d_col, d_line = dash[-1]
    return Finding(line.n, line.indent,
                   f"this list item is indented like the key '{ref_name}' of the item above",
                   f"to start the next item of the same list, move the '-' to column "
                   f"{d_col + 1} (under the '-' on line {d_line + 1}); a list inside the item "
                   "needs a key first ('key:' then its items on the lines below)")


def _key_in_dash_column(stack: list[tuple[int, int, str]], line: _Line, name: str,
                        levels: dict[int, tuple[int, str]]) -> Finding | None:
    """A key of a list item written in the column of the item's '-'."""
    dash_line, dash_name = levels[line.indent]
    keys = [(c, nm) for c, ln, nm in stack if ln == dash_line and c > line.indent and nm != "-"]
    if dash_name != "-" or not keys:
        return None
    k_col, k_name = keys[0]
    return Finding(line.n, line.indent, f"'{name}' is in the column of the '-' on line "
                   f"{dash_line + 1}, so it is not part of that item",
                   f"the keys of an item line up after its '- ': move '{name}' to column "
                   f"{k_col + 1}, under '{k_name}'")


def _another_document(src: _Source, err: ParseError) -> Finding | None:
    if "another document" not in err.problem or err.at is None:
        return None
    return Finding(err.at[0], err.at[1], "a second YAML document ('---') in the file",
                   "one file holds one workflow or product: remove the '---' line, or move "
                   "what follows into a file of its own")


DETECTORS: tuple[Detector, ...] = (
    _tab, _quotes, _template, _block_text, _mismatched, _dash, _missing_colon, _bad_start,
    _colon_in_value, _unclosed_flow, _indentation, _another_document,
)


def explain(text: str, err: ParseError) -> Finding | None:
    """The author's mistake behind a YAML parse error, or None when no detector knows it."""
    src = _Source(text)
    for detect in DETECTORS:
        try:
            found = detect(src, err)
        except (IndexError, ValueError):  # a detector's guess went wrong: ask the next one
            continue
        if found is not None:
            return found
    return None
