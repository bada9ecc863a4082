"""YAML loading with a source position for every node; duplicate keys and exotic YAML rejected."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ductwork.dsl.diagnostics import WARNING, Diagnostic, errors
from ductwork.dsl.yaml_errors import ParseError, explain
from ductwork.errors import CompileError

# A path into the loaded data: mapping keys and list indexes, as jsonschema reports them.
DataPath = tuple[str | int, ...]

# Aliases can multiply a small file into a huge tree ("billion laughs"); refuse past this.
MAX_NODES = 200_000
# Longer integers are refused: converting one takes quadratic time (the limit of expressions).
_MAX_INT_DIGITS = 4000

_TAG = "tag:yaml.org,2002:"


class _Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core scalars: no yes/no/on/off booleans, no timestamps,
    no sexagesimal numbers, no `<<` merge keys. `on: push` stays the string key "on"."""


# LibYAML composes several times faster; its marks count characters like the Python one.
_CBase: Any = getattr(yaml, "CSafeLoader", None)
_Fast: Any = type("_FastLoader", (_CBase,), {}) if _CBase is not None else _Loader

_Loader.yaml_implicit_resolvers = {}
if _Fast is not _Loader:
    _Fast.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
):
    for _cls in {_Loader, _Fast}:
        _cls.add_implicit_resolver(_TAG + _tag, re.compile(_regexp), _first)


@dataclass(frozen=True)
class Span:
    """Where a node sits in the source: 0-based character offsets plus the scalar style."""

    start: int
    end: int
    style: str | None = None


class Document:
    """A loaded YAML file: plain data (dict/list/str/int/float/bool/None) plus positions."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.data: Any = None
        self.values: dict[DataPath, Span] = {}
        self.keys: dict[DataPath, Span] = {}
        # Mistakes that leave the data readable, for the schema check to report (non-strict).
        self.problems: list[Diagnostic] = []
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # -- positions ---------------------------------------------------------------------

    def line_col(self, index: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= index:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, index - self._line_starts[lo] + 1

    def index_of(self, line: int, col: int) -> int:
        """The character offset of a 1-based line and column (clamped to the text)."""
        line = max(1, min(line, len(self._line_starts)))
        return min(self._line_starts[line - 1] + col - 1, len(self.text))

    def source_line(self, line: int) -> str:
        if not 1 <= line <= len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)].rstrip("\r")

    def span(self, path: DataPath, *, key: bool = False) -> Span:
        """The span of the value (or of its key) at `path`, else of the nearest ancestor."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if key and p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), Span(0, 0))

    def width(self, path: DataPath) -> int:
        """How many characters the scalar at `path` spans on its line (1 if unknown)."""
        span = self.values.get(tuple(path))
        if span is None or span.style in ("|", ">"):
            return 1
        raw = self.text[span.start : span.end]
        return max(1, len(raw.split("\n", 1)[0])) if raw and raw[0] not in "[{" else 1

    def locate(self, path: DataPath, *, key: bool = False,
               offset: int | None = None) -> tuple[int, int]:
        """Line and column of a node; with `offset`, of that character inside a string scalar."""
        span = self.span(path, key=key)
        index = span.start
        if offset is not None and tuple(path) in self.values:
            value = _get(self.data, path)
            if isinstance(value, str):
                index = self._offset_index(span, value, offset)
        return self.line_col(index)

    def _offset_index(self, span: Span, value: str, offset: int) -> int:
        """Map an offset in a scalar's value to the source, through quotes and block styles."""
        raw = self.text[span.start : span.end]
        offset = max(0, min(offset, len(value)))
        if span.style is None and raw == value:
            return span.start + offset
        # Find the same text in the source: the needle runs from `offset` to the end of its
        # line (escapes and folding only ever change what lies between needle candidates).
        line_end = value.find("\n", offset)
        needle = value[offset : line_end if line_end >= 0 else len(value)][:40]
        shift = 0
        if not needle:  # offset at the end of the value or of a line: look at what precedes
            back = value[max(0, offset - 20) : offset].split("\n")[-1]
            needle, shift = back, len(back)
        if not needle:
            return span.start
        nth = value[:offset + (0 if shift == 0 else -shift)].count(needle)
        pos = -1
        for _ in range(nth + 1):
            pos = raw.find(needle, pos + 1)
            if pos < 0:
                return span.start
        return span.start + pos + shift


def _get(data: Any, path: DataPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _diag(path: str, doc: Document | None, index: int | None, message: str,
          hint: str | None = None, length: int = 1) -> Diagnostic:
    if doc is None or index is None:
        return Diagnostic(path, 1, 1, message, hint=hint)
    line, col = doc.line_col(index)
    return Diagnostic(path, line, col, message, hint=hint, source=doc.source_line(line),
                      length=length)


def load_text(text: str, path: str = "<string>", *, strict: bool = True) -> Document:
    """Parse one YAML document into a Document; a syntax error raises CompileError.

    The other problems (duplicate keys, non-finite numbers, ...) raise too when `strict`;
    otherwise they wait in `doc.problems` for the schema check, which reports them with its
    own findings, so a file's mistakes all come out in one pass. Warnings (a YAML 1.1
    boolean read as text) never raise."""
    doc = Document(path, text)
    try:
        node = yaml.compose(text, Loader=_Fast)
    except yaml.MarkedYAMLError as e:
        raise CompileError([_syntax_error(doc, e)]) from None
    except yaml.YAMLError as e:  # reader errors: control characters, bad encoding
        index = getattr(e, "position", None)
        reason = getattr(e, "reason", None) or str(e).splitlines()[0]
        raise CompileError([_diag(path, doc, index, f"YAML syntax error: {reason}",
                                  "remove the character or write it as an escape in a "
                                  'double-quoted string ("\\u0007")')]) from None
    except RecursionError:
        raise CompileError([_diag(path, doc, 0, "YAML nested too deeply")]) from None
    if node is None:
        doc.values[()] = Span(0, 0)
        return doc
    builder = _Builder(doc)
    try:
        doc.data = builder.build(node, ())
    except RecursionError:
        raise CompileError([_diag(path, doc, 0, "YAML nested too deeply")]) from None
    doc.problems = builder.diagnostics
    if builder.fatal or (strict and errors(builder.diagnostics)):
        raise CompileError(errors(builder.diagnostics))
    return doc


def _syntax_error(doc: Document, e: yaml.MarkedYAMLError) -> Diagnostic:
    """The parser's complaint, moved to where the author made the mistake when it is known."""
    marks = [(m.line, m.column) if m is not None else None for m in (e.problem_mark,
                                                                     e.context_mark)]
    err = ParseError(e.problem or "", e.context or "", marks[0], marks[1])
    found = explain(doc.text, err)
    if found is not None:
        return _diag(doc.path, doc, doc.index_of(found.line + 1, found.col + 1), found.message,
                     found.hint)
    mark = e.problem_mark or e.context_mark
    problem = e.problem or e.context or "invalid YAML"
    if e.context and e.problem and e.problem.startswith("but "):
        problem = f"{e.context}, {e.problem}"
    index = min(mark.index, len(doc.text)) if mark is not None else None
    hint = None
    if any(s in problem for s in ("block end", "mapping values are not allowed",
                                  "did not find expected", "expected <")):
        hint = "check the indentation of this line and the one before"
    elif "end of stream" in problem:
        hint = "the file ends in the middle of a value: check the last lines"
    return _diag(doc.path, doc, index, f"YAML syntax error: {problem}", hint)


def load_file(path: str | Path, *, strict: bool = True) -> Document:
    """Read and parse a YAML file (UTF-8); `strict` as for load_text."""
    p = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CompileError([Diagnostic(p, 0, 0, f"cannot read file: {e.strerror or e}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CompileError(
            [Diagnostic(p, 0, 0, f"file is not UTF-8 text (bad byte at offset {e.start})")]
        ) from None
    return load_text(text, p, strict=strict)


class _Builder:
    """Turns yaml nodes into plain data, recording spans and collecting problems."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.diagnostics: list[Diagnostic] = []
        self.count = 0
        self.expanded: dict[int, Any] = {}
        self.sizes: dict[int, int] = {}
        self.reported_size = False
        self.fatal = False  # the data is incomplete: nothing else can be checked

    def fail(self, node: Node, message: str, hint: str | None = None,
             severity: str | None = None) -> None:
        start, end = node.start_mark, node.end_mark
        # Underline a scalar that sits on one line; a collection gets the caret alone.
        length = end.index - start.index if isinstance(node, ScalarNode) \
            and end.line == start.line else 1
        d = _diag(self.doc.path, self.doc, start.index, message, hint, max(1, length))
        self.diagnostics.append(replace(d, severity=severity) if severity else d)

    def build(self, node: Node, path: DataPath) -> Any:
        if id(node) in self.expanded:
            # An alias: reuse the value; the positions stay those of the anchored node. Its
            # size still counts, as every later phase walks the expanded tree.
            self.count += self.sizes[id(node)]
            if self.count > MAX_NODES:
                self.too_large(node)
                return None
            return self.expanded[id(node)]
        self.count += 1
        if self.count > MAX_NODES:
            self.too_large(node)
            return None
        before = self.count
        style = (node.style or None) if isinstance(node, ScalarNode) else None
        span = Span(node.start_mark.index, node.end_mark.index, style)
        self.doc.values[path] = span
        value: Any
        if isinstance(node, ScalarNode):
            value = self.scalar(node)
        elif isinstance(node, SequenceNode):
            if node.tag not in (_TAG + "seq",):
                self.fail(node, f"unsupported YAML tag '{node.tag}' on a list")
            value = [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        elif isinstance(node, MappingNode) and self.doc.text.startswith("{{", span.start):
            # An unquoted {{ template }}: kept as the text the author meant, reported once.
            value = self.doc.text[span.start:span.end]
            key = f"{path[-1]}: " if path and isinstance(path[-1], str) else ""
            self.fail(node, "a value starting with '{' is read as a mapping",
                      f"quote the template: {key}{_quoted(value)}")
        elif isinstance(node, MappingNode):
            value = self.mapping(node, path)
        else:  # pragma: no cover - yaml only produces the three node kinds
            value = None
        self.expanded[id(node)] = value
        self.sizes[id(node)] = self.count - before + 1
        return value

    def too_large(self, node: Node) -> None:
        self.fatal = True
        if not self.reported_size:
            self.reported_size = True
            self.fail(node, f"document too large (more than {MAX_NODES} nodes after aliases)")

    def mapping(self, node: MappingNode, path: DataPath) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            self.fail(node, f"unsupported YAML tag '{node.tag}' on a mapping", _TAG_HINT)
        out: dict[str, Any] = {}
        first: dict[str, Node] = {}
        new_item = False
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, "mapping keys must be plain strings, not lists or mappings",
                          "write the key as text; quote it if it holds [ ] { } or :")
                continue
            key = str(key_node.value)
            if key == "<<" and not key_node.style:
                self.fail(key_node, "YAML merge keys ('<<') are not supported",
                          hint="write the keys out, or use an anchor for a whole value")
                continue
            if key in first:
                if not new_item:  # the keys after a forgotten "- " are that one mistake
                    new_item = self.duplicate(node, key_node, first[key], path)
                continue
            if not key_node.style and key_node.tag == _TAG + "str" \
                    and key.lower() in _YAML11_BOOLS:
                self.fail(key_node, f"ambiguous key '{key}': YAML 1.1 tools read it as the "
                          f"boolean {_YAML11_BOOLS[key.lower()]}", f'quote it: "{key}":',
                          WARNING)
            first[key] = key_node
            self.doc.keys[(*path, key)] = Span(key_node.start_mark.index, key_node.end_mark.index)
            out[key] = self.build(value_node, (*path, key))
        return out

    def duplicate(self, node: MappingNode, key_node: Node, first: Node, path: DataPath) -> bool:
        """Report a duplicate key; True when it looks like the start of a forgotten item."""
        key = str(key_node.value)
        new_item = False
        line, _ = self.doc.line_col(first.start_mark.index)
        # The same first key twice in a list item: the second one began the next item,
        # but its "- " was forgotten.
        if path and isinstance(path[-1], int) and node.value[0][0] is first \
                and node.flow_style is False:
            col = key_node.start_mark.column
            text = self.doc.source_line(key_node.start_mark.line + 1)
            fixed = (" " * max(0, col - 2) + "- " + text[col:]).strip()
            hint = f"if '{key}' starts the next item of the list, put '- ' before it: {fixed}"
            new_item = True
        else:
            hint = f"a key appears once in a mapping: keep one '{key}' (merge the two values " \
                   "if both hold a part)"
        self.fail(key_node, f"duplicate key '{key}' (first defined on line {line})", hint)
        return new_item

    def scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag == _TAG + "str":
            if not node.style and text.lower() in _YAML11_BOOLS:
                word = _YAML11_BOOLS[text.lower()]
                self.fail(node, f"ambiguous value '{text}': YAML 1.1 tools read it as the "
                          f"boolean {word}",
                          f'write {word} for a boolean, or "{text}" in quotes for the text',
                          WARNING)
            return text
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
        elif tag == _TAG + "int":
            if len(text) > _MAX_INT_DIGITS:  # converting a 100,000-digit number takes seconds
                self.fail(node, f"number too long ({len(text):,} digits, at most "
                          f"{_MAX_INT_DIGITS:,})", "write it in quotes to keep it as text")
                return text[:20] + "..."
            try:
                t = text.replace("_", "")
                if t.startswith(("0o", "0x")):
                    return int(t, 0)
                return int(t)
            except ValueError:
                pass
        elif tag == _TAG + "float":
            try:
                number = float(text) if text.lower().lstrip("+-") not in (".inf", ".nan") \
                    else math.inf
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
                # Kept as its text (.inf, 1e999): later phases see a wrong value, not a
                # poisonous one.
                self.fail(node, f"'{text}' is not a finite number",
                          "JSON has no infinity or NaN: write a finite value (for a timeout a "
                          "duration such as 1h), or leave the key out for no limit")
                return text
        else:
            self.fail(node, f"unsupported YAML tag '{tag}'", _TAG_HINT)
            return text
        self.fail(node, f"'{text}' is not a valid {tag.removeprefix(_TAG)}",
                  f"remove the '!!{tag.removeprefix(_TAG)}' tag and write the value plainly")
        return text


# YAML 1.1 booleans: read here as text (YAML 1.2), but as booleans by PyYAML and most other
# tools, so `on: push` means {True: "push"} to them. The 1.1 spec also lists y and n, which
# PyYAML leaves alone and which are common names (a column `n`, coordinates x and y).
_YAML11_BOOLS = {w: b for b, words in (("true", ("yes", "on")), ("false", ("no", "off")))
                 for w in words}

_TAG_HINT = "only strings, numbers, booleans, null, lists and mappings are allowed; if the " \
            "'!' is part of the text, quote it"


def _quoted(value: str) -> str:
    if '"' not in value:
        return '"' + value.replace("\\", "\\\\") + '"'
    return "'" + value.replace("'", "''") + "'"
