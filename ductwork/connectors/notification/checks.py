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
    out: list[CallProblem] = []
    seen: set[tuple[str, str]] = set()
    for field, candidates, fallback in _SOURCES.get(method, ()):
        arg = next((a for a in candidates if args.get(a) is not None), fallback)
        for var, problem in _missing(str(name), event, field, args.get(arg), arg):
            if (arg, var) not in seen:
                seen.add((arg, var))
                out.append(problem)
    return out


def _send(event_name: str, event: Mapping[str, Any], value: Any) -> list[CallProblem]:
    if not isinstance(value, Mapping):
        return []
    channel = next((ch for key, ch in ADDRESS_KEYS.items() if key in value), None)
    if channel is None:
        return []
    out: list[CallProblem] = []
    seen: set[str] = set()
    for field, _, _ in _SOURCES.get(channel, ()):
        for var, problem in _missing(event_name, event, field, value, "input"):
            if var not in seen:
                seen.add(var)
                out.append(problem)
    return out


def _missing(event_name: str, event: Mapping[str, Any], field: str, passed: Any,
             arg: str) -> list[tuple[str, CallProblem]]:
    needed = variables(field, event.get(field))
    if not needed:
        return []
    if passed is None:
        given: frozenset[str] = frozenset()
    else:
        known = keys_of(passed)
        if known is None or known[1] is None:
            return []  # decided at run time
        given = known[1]
    out: list[tuple[str, CallProblem]] = []
    for var in needed:
        if var in given:
            continue
        close = suggest(var, given - set(needed))
        at: Path = (arg,) if passed is not None else ("event",)
        if close is not None and isinstance(passed, Mapping):
            at, hint = (arg, close), f"the step passes '{close}': did you mean '{var}'?"
        elif isinstance(passed, Runtime):
            hint = f"the value given as {arg} never has '{var}'"
        else:
            hint = f"pass it: {arg}: {{{var}: ...}}"
        message = (f"template '{field}' of event '{event_name}' uses '{var}', which the step "
                   f"does not pass in {arg}")
        out.append((var, (at, Detail(message, hint, key=passed is not None))))
    return out
