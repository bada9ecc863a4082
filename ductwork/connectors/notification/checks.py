"""Notification calls checked before they run: the variables each template needs are passed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ductwork.connectors.checks import CallProblem, Detail, Path, Runtime, keys_of
from ductwork.connectors.notification.common import ADDRESS_KEYS
from ductwork.connectors.notification.templates import variables
from ductwork.util.suggest import suggest

# (template field, the arguments that may hold its variables, the one to name when neither is
# given) per method, as common.py renders them: the subject's variables default to template's.
_SOURCES: dict[str, tuple[tuple[str, tuple[str, ...], str], ...]] = {
    "email": (("subject", ("subject", "template"), "template"),
              ("text", ("template",), "template"), ("html", ("template",), "template")),
    "sms": (("message", ("message",), "message"),),
    "push": (("title", ("title", "body"), "title"), ("body", ("body", "title"), "body")),
}


def check_call(method: str, definition: Mapping[str, Any],
               args: Mapping[str, Any]) -> list[CallProblem]:
    """A variable a template uses but the call does not pass fails the send: report it."""
    events = definition.get("events")
    name = args.get("event")
    event = events.get(name) if isinstance(events, Mapping) else None
    if not isinstance(event, Mapping):
        return []
    if method == "send":
        return _send(str(name), event, args.get("input"))
    wanted: dict[tuple[str, str], list[str]] = {}  # (argument, variable) -> template fields
    for field, candidates, fallback in _SOURCES.get(method, ()):
        arg = next((a for a in candidates if args.get(a) is not None), fallback)
        for var in _missing(event, field, args.get(arg)):
            wanted.setdefault((arg, var), []).append(field)
    return [_problem(str(name), fields, var, args.get(arg), arg,
                     "template" in args and arg == "subject")
            for (arg, var), fields in wanted.items()]


def _send(event_name: str, event: Mapping[str, Any], value: Any) -> list[CallProblem]:
    if not isinstance(value, Mapping):
        return []
    channel = next((ch for key, ch in ADDRESS_KEYS.items() if key in value), None)
    if channel is None:
        return []
    wanted: dict[str, list[str]] = {}
    for field, _, _ in _SOURCES.get(channel, ()):
        for var in _missing(event, field, value):
            wanted.setdefault(var, []).append(field)
    return [_problem(event_name, fields, var, value, "input", False)
            for var, fields in wanted.items()]


def _missing(event: Mapping[str, Any], field: str, passed: Any) -> list[str]:
    """The variables the template `field` needs that `passed` surely lacks."""
    needed = variables(field, event.get(field))
    if not needed:
        return []
    if passed is None:
        return list(needed)
    known = keys_of(passed)
    if known is None or known[1] is None:
        return []  # decided at run time
    return [var for var in needed if var not in known[1]]


def _problem(event_name: str, fields: list[str], var: str, passed: Any, arg: str,
             replaces: bool) -> CallProblem:
    which = (f"template '{fields[0]}'" if len(fields) == 1
             else "templates " + " and ".join(f"'{f}'" for f in fields))
    verb = "uses" if len(fields) == 1 else "use"
    message = (f"{which} of event '{event_name}' {verb} '{var}', which the step does not "
               f"pass in {arg}")
    known = keys_of(passed)
    close = suggest(var, known[1] or ()) if known is not None else None
    at: Path = (arg,) if passed is not None else ("event",)
    if close is not None and isinstance(passed, Mapping):
        at, hint = (arg, close), f"the step passes '{close}': did you mean '{var}'?"
    elif replaces:
        hint = (f"subject: replaces template:'s variables in the subject: add {var}: ... to "
                "subject:, or leave subject: out")
    elif isinstance(passed, Runtime):
        hint = f"the value given as {arg} never has '{var}'"
    elif passed is None:
        hint = f"pass {arg}: {{{var}: ...}}"
    else:
        hint = f"add {var}: ... to {arg}:"
    return at, Detail(message, hint, key=passed is not None)
