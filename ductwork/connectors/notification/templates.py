"""Notification templates: Jinja2 in an immutable sandbox with StrictUndefined, compiled once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ductwork.connectors.base import ResourceSpec
from ductwork.errors import ConnectorError

# The template fields an event may declare, per channel.
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "sms": ("message",),
    "push": ("title", "body"),
}
TEMPLATE_FIELDS: tuple[str, ...] = tuple(f for fs in CHANNEL_FIELDS.values() for f in fs)
EVENT_KEYS: frozenset[str] = frozenset((*TEMPLATE_FIELDS, "description"))

# Immutable: a template can read what it is given but not call list.append/dict.update on it.
_TEXT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                      keep_trailing_newline=True)
# HTML bodies escape their variables; `{{ x|safe }}` opts out explicitly.
_HTML = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True,
                                      keep_trailing_newline=True)

_TOP_LEVEL = re.compile(r"^'([^']+)' is undefined$")
_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'$")


def _env(field: str) -> ImmutableSandboxedEnvironment:
    return _HTML if field == "html" else _TEXT


def syntax_problem(field: str, source: Any) -> str | None:
    """A one-line description of what is wrong with a template source, or None."""
    if not isinstance(source, str):
        return f"template '{field}' must be a string, not {type(source).__name__}"
    try:
        _env(field).parse(source)
    except TemplateSyntaxError as e:
        return f"template '{field}' does not parse (line {e.lineno}): {e.message}"
    return None


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
            return tmpl.render(dict(variables))
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
