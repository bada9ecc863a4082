"""Notification templates: Jinja2 in an immutable sandbox with StrictUndefined, compiled once."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

from ductwork.connectors.base import ResourceSpec
from ductwork.connectors.checks import Detail
from ductwork.connectors.notification.sandbox import MAX_SOURCE, BoundedSandbox, render_bounded
from ductwork.errors import ConnectorError
from ductwork.util.suggest import did_you_mean

# The template fields an event may declare, per channel.
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "sms": ("message",),
    "push": ("title", "body"),
}
TEMPLATE_FIELDS: tuple[str, ...] = tuple(f for fs in CHANNEL_FIELDS.values() for f in fs)
EVENT_KEYS: frozenset[str] = frozenset((*TEMPLATE_FIELDS, "description"))

# Immutable: a template can read what it is given but not call list.append/dict.update on it;
# bounded: sizes, numbers, loops and calls have budgets (sandbox.py).
_TEXT = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
# HTML bodies escape their variables; `{{ x|safe }}` opts out explicitly.
_HTML = BoundedSandbox(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)

_TOP_LEVEL = re.compile(r"^'([^']+)' is undefined$")
_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'$")


def _env(field: str) -> BoundedSandbox:
    return _HTML if field == "html" else _TEXT


def syntax_problem(field: str, source: Any) -> str | None:
    """A one-line description of what is wrong with a template source, or None."""
    if not isinstance(source, str):
        return f"template '{field}' must be a string, not {type(source).__name__}"
    if len(source) > MAX_SOURCE:
        return _too_long(field, source)
    try:
        _env(field).parse(source)
    except TemplateSyntaxError as e:
        return f"template '{field}' does not parse (line {e.lineno}): {e.message}"
    return None


# Filters and tests that make a variable optional: `{{ x|default('') }}`, `{% if x is defined %}`.
_OPTIONAL_FILTERS = frozenset({"default", "d"})
_OPTIONAL_TESTS = frozenset({"defined", "undefined"})
_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_UNKNOWN = re.compile(r"^No (filter|test) named '([^']+)'")
_UNEXPECTED = re.compile(r"unexpected '(.+?)'")


def template_problems(field: str, source: Any) -> list[Detail]:
    """What `ductwork validate` finds in one template: a syntax error, unknown filters and
    tests (also those in a branch that may not run), each at its place in the source."""
    if not isinstance(source, str):
        return [Detail(f"template '{field}' must be a string, not {type(source).__name__}")]
    if len(source) > MAX_SOURCE:
        return [Detail(_too_long(field, source), "keep a template to its words and layout: "
                       "pass long content (a table, a document) in a variable")]
    env = _env(field)
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as e:
        return [_syntax_detail(field, source, e)]
    out: list[Detail] = []
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        is_filter = isinstance(node, nodes.Filter)
        known = env.filters if is_filter else env.tests
        if node.name not in known:
            out.append(_unknown(field, source, "filter" if is_filter else "test", node.name,
                                known))
    return out


def _too_long(field: str, source: str) -> str:
    return (f"template '{field}' is too long ({len(source):,} characters, at most "
            f"{MAX_SOURCE:,})")


def _syntax_detail(field: str, source: str, e: TemplateSyntaxError) -> Detail:
    unknown = _UNKNOWN.match(e.message or "")
    if unknown:
        kind = unknown.group(1)
        env = _env(field)
        return _unknown(field, source, kind, unknown.group(2),
                        env.filters if kind == "filter" else env.tests)
    lines = source.split("\n")
    lineno = min(max(e.lineno or 1, 1), len(lines))
    start = sum(len(line) + 1 for line in lines[:lineno - 1])
    text = lines[lineno - 1]
    col = len(text) - len(text.lstrip())
    message = e.message or ""
    token = _UNEXPECTED.search(message)
    opener = max(text.rfind("{{"), text.rfind("{%"))
    if token and token.group(1) in text:
        col = text.rindex(token.group(1))
    elif opener >= 0:
        col = opener
    hint = None
    if "was looking for the following tags" in message:
        hint = "close the block ({% endif %}, {% endfor %}, ...)"
    elif "print statement" in message or (token and token.group(1) == "}"):
        hint = "close '{{' with '}}'"
    elif "end of statement block" in message:
        hint = "close '{%' with '%}'"
    return Detail(f"template '{field}' does not parse (line {e.lineno}): {e.message}", hint,
                  offset=start + col, length=2)


def _unknown(field: str, source: str, kind: str, name: str, known: Any) -> Detail:
    pattern = r"\|\s*" if kind == "filter" else r"\bis\s+(?:not\s+)?"
    found = re.search(pattern + "(" + re.escape(name) + r")\b", source)
    hint = did_you_mean(name, known) or (
        f"Jinja has no '{name}' {kind}: shape the value in the step and pass it ready to print"
        if kind == "filter" else f"Jinja's tests: {', '.join(sorted(known))}")
    return Detail(f"template '{field}' uses an unknown {kind} '{name}'", hint,
                  offset=found.start(1) if found else None, length=len(name))


def variables(field: str, source: Any) -> dict[str, int]:
    """The variables a template needs from the caller, each with the offset of its first use;
    one read only through `default` or an `is defined` test is optional and left out."""
    if not isinstance(source, str) or len(source) > MAX_SOURCE:
        return {}
    # Every step sending the event asks again: the template is parsed once.
    return dict(_variables(field == "html", source))


@functools.lru_cache(maxsize=256)
def _variables(html: bool, source: str) -> tuple[tuple[str, int], ...]:
    field = "html" if html else "text"
    try:
        ast = _env(field).parse(source)
        names = meta.find_undeclared_variables(ast)
    except TemplateSyntaxError:  # an unknown filter fails here: reported by template_problems
        return ()
    optional: set[str] = set()
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        guarded = _OPTIONAL_FILTERS if isinstance(node, nodes.Filter) else _OPTIONAL_TESTS
        if node.name in guarded and isinstance(node.node, nodes.Name):
            optional.add(node.node.name)
    return tuple((name, _first_use(source, name)) for name in sorted(names - optional))


def _first_use(source: str, name: str) -> int:
    word = re.compile(r"(?<![\w.])" + re.escape(name) + r"\b")
    for block in _BLOCK.finditer(source):
        found = word.search(block.group(0))
        if found:
            return block.start() + found.start()
    return 0


def channels_of(event: Mapping[str, Any]) -> list[str]:
    """The channels an event definition has templates for."""
    return [ch for ch, fields in CHANNEL_FIELDS.items() if any(f in event for f in fields)]


class Templates:
    """The compiled templates of one resource; errors name the resource, event and env."""

    def __init__(self, spec: ResourceSpec) -> None:
        self.spec = spec
        self._cache: dict[tuple[str, str], Template] = {}

    def event(self, event: str) -> dict[str, Any]:
        return self.spec.event(event)

    def has(self, event: str, field: str) -> bool:
        return self.event(event).get(field) is not None

    def _compiled(self, event: str, field: str) -> Template:
        key = (event, field)
        tmpl = self._cache.get(key)
        if tmpl is None:
            source = self.event(event).get(field)
            if source is None:
                declared = ", ".join(sorted(k for k in self.event(event) if k in TEMPLATE_FIELDS))
                raise self.spec.error(
                    f"event declares no '{field}' template (declared: {declared or 'none'}); "
                    f"add `{field}:` to events.{event} in the product file", event=event)
            problem = syntax_problem(field, source)
            if problem:
                raise self.spec.error(problem, event=event)
            tmpl = _env(field).from_string(source)
            self._cache[key] = tmpl
        return tmpl

    def render(
        self, event: str, field: str, variables: Mapping[str, Any] | None, *, arg: str
    ) -> str:
        """Render one template of an event; `arg` names where the variables came from."""
        tmpl = self._compiled(event, field)
        if variables is None:
            variables = {}
        if not isinstance(variables, Mapping):
            raise self.spec.error(
                f"{arg} must be a mapping of template variables, not {type(variables).__name__}",
                event=event)
        try:
            return render_bounded(tmpl, dict(variables))
        except SecurityError as e:
            raise self.spec.error(f"template '{field}' is not allowed: {e}", event=event) from None
        except UndefinedError as e:
            raise self._missing(event, field, str(e), arg) from None
        except TemplateError as e:
            raise self.spec.error(f"template '{field}' failed: {e}", event=event) from None
        except Exception as e:  # a filter on a wrong type, a division by zero, ...
            raise self.spec.error(
                f"template '{field}' failed: {type(e).__name__}: {e}", event=event) from None

    def _missing(self, event: str, field: str, message: str, arg: str) -> ConnectorError:
        top = _TOP_LEVEL.match(message)
        if top:
            return self.spec.error(
                f"template '{field}' needs variable '{top.group(1)}', which was not passed "
                f"(pass it in {arg}={{...}})", event=event)
        attr = _ATTRIBUTE.search(message)
        name = attr.group(1) if attr else "?"
        return self.spec.error(
            f"template '{field}' uses '{name}', which is missing ({message})", event=event)
