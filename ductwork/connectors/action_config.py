"""App (action) config and event definitions: parsing, durations and `ductwork validate` checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ductwork.connectors.base import Problem
from ductwork.connectors.checks import CallProblem, Detail, Path, Runtime
from ductwork.connectors.util import env_path, first_env, is_ref, seconds_suspect
from ductwork.util.durations import parse_ms
from ductwork.util.suggest import did_you_mean, suggest

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Methods whose unknown flat input keys go to the body; the others send them as query.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PLACES = ("body", "query", "params", "headers")
BODY_TYPES = ("json", "form")

ENV_KEYS = ("provider", "base_url", "auth", "headers", "timeout", "retries", "backoff",
            "max_delay", "verify", "health", "idempotency_header", "variables")
EVENT_KEYS = ("method", "path", "description", "body", "query", "params", "headers",
              "body_type", "timeout", "retries", "response", "idempotency_key")
# The header a step's idempotency key goes in, unless the app names another (or false: none).
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Methods that change something: only these carry the key (GET and HEAD are safe to repeat).
KEYED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
AUTH_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # type: (required keys, optional keys)
    "none": ((), ()),
    "bearer": (("token",), ()),
    "basic": (("username", "password"), ()),
    "api_key": (("name", "value"), ("in",)),
    "oauth2_client_credentials": (
        ("token_url", "client_id", "client_secret"), ("scope", "params", "client_auth")),
}
# Auth fields whose values are secrets even when written inline (not through ${...}).
SECRET_AUTH_KEYS = ("token", "password", "value", "client_secret")

DEFAULT_TIMEOUT = 30.0
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_DELAY = 30.0

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def seconds(value: Any) -> float:
    """A duration in seconds: "250ms" "5s" "5m" "1h" "1d", a timedelta, or a number of milliseconds.

    Bare numbers are milliseconds, like every duration in ductwork (the original product's unit).
    Raises ValueError with a message fit for the user.
    """
    ms = parse_ms(value)
    if ms is not None:
        return ms / 1000.0
    if isinstance(value, int | float | timedelta) and not isinstance(value, bool):
        raise ValueError(f"{value!r} is negative")
    raise ValueError(f"{value!r} is not a duration (write e.g. \"250ms\", \"5s\", \"2m\")")


def placeholders(path: str) -> list[str]:
    return _PLACEHOLDER.findall(path)


@dataclass(frozen=True)
class EventDef:
    """One declared event: where it goes and where each input field is sent."""

    name: str
    method: str
    path: str
    params: tuple[str, ...]
    body: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    body_type: str = "json"
    timeout: float | None = None
    retries: int | None = None
    idempotent: bool = True  # send the step's idempotency key (if the method changes things)
    # lower-cased declared header -> declared spelling, for case-insensitive matching
    header_names: dict[str, str] = field(default_factory=dict)

    @property
    def default_place(self) -> str:
        return "body" if self.method in BODY_METHODS else "query"


class EventError(ValueError):
    """A wrong event definition; `key` is the offending key inside the event, if one is."""

    def __init__(self, message: str, key: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.key, self.hint = key, hint


def _names(raw: Any, what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise EventError(f"'{what}' must be a list of field names", what)
    return tuple(raw)


def parse_event(name: str, raw: Any) -> EventDef:
    """Build an EventDef; ValueError says what is wrong (the caller adds where)."""
    if not isinstance(raw, dict):
        raise EventError("an event must be a mapping like {method: POST, path: /v1/things}")
    unknown = sorted(set(raw) - set(EVENT_KEYS))
    if unknown:
        raise EventError(f"unknown key '{unknown[0]}' (known: {', '.join(EVENT_KEYS)})"
                         + did_you_mean(unknown[0], EVENT_KEYS, prefix="; "), unknown[0])
    method = str(raw.get("method", "GET")).upper()
    if method not in METHODS:
        raise EventError(f"method '{raw.get('method')}' is not one of {', '.join(METHODS)}",
                         "method")
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise EventError("'path' is required and must start with '/' (it is joined to base_url)",
                         "path" if "path" in raw else None)
    params = placeholders(path)
    if _PLACEHOLDER.sub("", path).count("{") or _PLACEHOLDER.sub("", path).count("}"):
        raise EventError(f"path {path!r} has a '{{' or '}}' that is not part of a {{name}} "
                         "placeholder", "path", "close the placeholder, as in /contacts/{id}, "
                         "or percent-encode a literal brace (%7B, %7D)")
    bad = [p for p in params if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", p)]
    if bad:
        raise EventError(f"path placeholder {{{bad[0]}}} is not a valid name", "path")
    declared = _names(raw.get("params"), "params")
    extra = [p for p in declared if p not in params]
    if extra:
        raise EventError(f"params lists '{extra[0]}' but the path has no {{{extra[0]}}}",
                         "params")
    body_type = str(raw.get("body_type", "json"))
    if body_type not in BODY_TYPES:
        raise EventError(f"body_type '{body_type}' is not one of {', '.join(BODY_TYPES)}",
                         "body_type")
    try:
        timeout = seconds(raw["timeout"]) if raw.get("timeout") is not None else None
    except ValueError as e:
        raise EventError(str(e), "timeout") from None
    try:
        retries = _retries(raw.get("retries"))
    except ValueError as e:
        raise EventError(str(e), "retries") from None
    headers = _names(raw.get("headers"), "headers")
    keyed = raw.get("idempotency_key", True)
    if not isinstance(keyed, bool):
        raise EventError("'idempotency_key' must be true or false (false: this event does not "
                         "send the step's idempotency key)", "idempotency_key")
    if "response" in raw and not isinstance(raw["response"], dict):
        # Only `ductwork validate` reads it: the JSON Schema of the response body.
        raise EventError("'response' must be a JSON Schema (a mapping) of the response body",
                         "response")
    return EventDef(
        name=name, method=method, path=path, params=tuple(params),
        body=_names(raw.get("body"), "body"), query=_names(raw.get("query"), "query"),
        headers=headers, body_type=body_type, timeout=timeout, retries=retries,
        idempotent=keyed, header_names={h.lower(): h for h in headers},
    )


def _retries(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError(f"retries must be a whole number >= 0, got {raw!r}")
    return raw


@dataclass(frozen=True)
class EnvConfig:
    """One environment's resolved app config."""

    base_url: str
    auth: dict[str, Any]
    headers: dict[str, str]
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 0
    backoff: float = DEFAULT_BACKOFF
    max_delay: float = DEFAULT_MAX_DELAY
    verify: bool | str = True
    idempotency_header: str | None = IDEMPOTENCY_HEADER  # None: the app takes no key


def parse_env(config: dict[str, Any]) -> EnvConfig:
    """Build an EnvConfig from a resolved env config; ValueError says what is wrong."""
    base_url = config.get("base_url")
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/]", base_url):
        raise ValueError("base_url must be an http:// or https:// URL")
    auth = config.get("auth") or {"type": "none"}
    problems = _auth_problems(auth)
    if problems:
        raise ValueError(problems[0][1])
    headers = config.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValueError("headers must be a mapping of header name to value")
    verify = config.get("verify", True)
    if not isinstance(verify, bool | str):
        raise ValueError("verify must be true, false or a CA bundle path")
    problem = _idempotency_header_problem(config.get("idempotency_header", IDEMPOTENCY_HEADER))
    if problem:
        raise ValueError(problem)
    keyed = config.get("idempotency_header", IDEMPOTENCY_HEADER)

    def dur(key: str, default: float) -> float:
        raw = config.get(key)
        return default if raw is None else seconds(raw)

    return EnvConfig(
        base_url=base_url, auth=dict(auth),
        headers={str(k): _header_value(v) for k, v in headers.items()},
        timeout=dur("timeout", DEFAULT_TIMEOUT), retries=_retries(config.get("retries")) or 0,
        backoff=dur("backoff", DEFAULT_BACKOFF), max_delay=dur("max_delay", DEFAULT_MAX_DELAY),
        verify=verify, idempotency_header=keyed or None,
    )


def _idempotency_header_problem(value: Any) -> str | None:
    if value is False or (isinstance(value, str) and _HEADER_NAME.match(value)):
        return None
    return (f"idempotency_header must be a header name (default {IDEMPOTENCY_HEADER}) or false "
            f"for an app that takes no idempotency key, got {value!r}")


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _auth_problems(auth: Any) -> list[Problem]:
    if not isinstance(auth, dict):
        return [((), "auth must be a mapping like {type: bearer, token: \"${env.TOKEN}\"}")]
    kind = auth.get("type")
    if kind not in AUTH_KEYS:
        return [(("type",), f"auth type {kind!r} is not one of {', '.join(AUTH_KEYS)}"
                 + did_you_mean(str(kind), AUTH_KEYS, prefix="; "))]
    required, optional = AUTH_KEYS[kind]
    problems: list[Problem] = []
    for key in required:
        if auth.get(key) in (None, ""):
            problems.append(((key,), f"auth type {kind} needs '{key}'"))
    unknown = sorted(set(auth) - {"type", *required, *optional})
    for key in unknown:
        known = ("type", *required, *optional)
        problems.append(((key,), f"unknown auth key '{key}' for type {kind} (known: "
                         f"{', '.join(known)})" + did_you_mean(key, known, prefix="; ")))
    token = auth.get("token")
    if kind == "bearer" and isinstance(token, str) and token.strip().lower().startswith(
            "bearer "):
        rest = token.strip()[len("bearer "):].strip()
        problems.append((("token",), Detail(
            "the token starts with 'Bearer ', which ductwork adds itself: the API would get "
            "'Authorization: Bearer Bearer ...'", f'write token: "{rest}" (the token alone)')))
    if kind == "api_key" and auth.get("in", "header") not in ("header", "query"):
        problems.append((("in",), "api_key 'in' must be header or query"))
    if kind == "oauth2_client_credentials":
        if auth.get("client_auth", "basic") not in ("basic", "body"):
            problems.append((("client_auth",), "client_auth must be basic or body"))
        if auth.get("params") is not None and not isinstance(auth.get("params"), dict):
            problems.append((("params",), "params must be a mapping of extra token form fields"))
    return problems


def validate(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    """`ductwork validate` checks for an app: one env's config and (once) the declared events.

    The config is unresolved, so `${...}` values are only checked for presence. Paths are
    relative to the app block (`envs.<env>.auth.type`, `events.<name>.path`).
    """
    where = env_path(definition, config)
    problems: list[Problem] = []
    if not isinstance(config, dict):
        return [(where, "an environment's config must be a mapping")]
    for key in sorted(set(config) - set(ENV_KEYS)):
        problems.append(((*where, key), f"unknown key '{key}' (known: {', '.join(ENV_KEYS)})"
                         + did_you_mean(key, ENV_KEYS, prefix="; ")))
    base_url = config.get("base_url")
    if not isinstance(base_url, str) or not base_url:
        problems.append(((*where, "base_url"), "base_url is required (e.g. https://api.x.com)"))
    elif not is_ref(base_url) and not re.match(r"^https?://[^/]", base_url):
        problems.append(((*where, "base_url"), Detail(
            "base_url must start with http:// or https://",
            f'write base_url: "https://{base_url.split("://")[-1]}"')))
    if config.get("auth") is not None:
        problems += [((*where, "auth", *p), m) for p, m in _auth_problems(config["auth"])]
    if config.get("headers") is not None and not isinstance(config["headers"], dict):
        problems.append(((*where, "headers"), "headers must be a mapping of name to value"))
    for key in ("timeout", "backoff", "max_delay"):
        if config.get(key) is None:
            continue
        try:
            secs = seconds(config[key])
        except ValueError as e:
            problems.append(((*where, key), str(e)))
            continue
        if key == "timeout" and isinstance(config[key], int | float) and secs < 0.1:
            problems.append(((*where, key), f"timeout {config[key]} means {config[key]} "
                             "milliseconds (bare numbers are ms); write e.g. \"30s\""))
    try:
        _retries(config.get("retries"))
    except ValueError as e:
        problems.append(((*where, "retries"), str(e)))
    if "idempotency_header" in config and not is_ref(config["idempotency_header"]):
        problem = _idempotency_header_problem(config["idempotency_header"])
        if problem:
            problems.append(((*where, "idempotency_header"), problem))
    if first_env(definition, config):
        problems += event_problems(definition)
    return problems


def event_problems(definition: dict[str, Any]) -> list[Problem]:
    events = definition.get("events")
    if events is None:
        return []
    if not isinstance(events, dict):
        return [(("events",), "events must be a mapping of event name to definition")]
    problems: list[Problem] = []
    for name, raw in events.items():
        try:
            parse_event(str(name), raw)
        except EventError as e:
            where = ("events", name, e.key) if e.key else ("events", name)
            problems.append((where, Detail(str(e), e.hint) if e.hint else str(e)))
            continue
        # An event's own timeout follows the env's rule: a bare number under 100 is ms.
        value = raw.get("timeout")
        if seconds_suspect("timeout", value):
            problems.append((("events", name, "timeout"), Detail(
                f"'timeout: {value:g}' means {value:g} milliseconds",
                f"bare numbers are milliseconds: write timeout: {value:g}s if you meant seconds, "
                f"or timeout: {value:g}ms to keep milliseconds")))
    return problems


# -- for `ductwork validate` (here, not in action.py: checking a spec needs no httpx) ------


def check_call(method: str, definition: Mapping[str, Any],
               args: Mapping[str, Any]) -> list[CallProblem]:
    """For `ductwork validate`: every {placeholder} of the event's path gets a value from the
    step's input (flat, `params:x`, or {params: {...}}), and no other path parameter is given."""
    events = definition.get("events")
    name = args.get("event")
    raw = events.get(name) if isinstance(events, Mapping) else None
    try:
        ev = parse_event(str(name), raw)
    except EventError:
        return []  # the product check reports it
    value = args.get("input")
    given = _static_params(ev, value)
    if given is None:
        return []
    out: list[CallProblem] = []
    meant: set[str] = set()  # parameters a wrong name is a misspelling of
    for key, at in given.items():
        if key not in ev.params:
            close = suggest(key, ev.params)
            meant.add(close or "")
            hint = f"did you mean '{close}'?" if close else (
                f"the path's parameters: {', '.join(ev.params)}" if ev.params
                else "this path has no {parameters}")
            out.append((at, Detail(f"path parameter '{key}' is not in {ev.path}", hint,
                                   key=True)))
    for param in ev.params:
        if param not in given and param not in meant:
            where: Path = ("input",) if value is not None else ("event",)
            out.append((where, Detail(
                f"{ev.method} {ev.path} needs '{param}', which the step's input does not give",
                f"add {param}: ... to input (or params: {{{param}: ...}})",
                key=value is not None)))
    return out


def _static_params(ev: EventDef, value: Any) -> dict[str, Path] | None:
    """The path parameters a written input gives (name -> where), None when only the run
    can tell (the input, or the part that may hold them, is an expression)."""
    if value is None:
        return {}
    if isinstance(value, Runtime):
        if value.possibly is None or "params" in value.possibly:
            return None
        names = {k.removeprefix("params:") for k in value.possibly
                 if k in ev.params or k.startswith("params:")}
        return {k: ("input",) for k in names}
    if not isinstance(value, Mapping):
        return None
    declared = {*ev.params, *ev.body, *ev.query, *ev.header_names}
    plain = [k for k in value if isinstance(k, str) and ":" not in k]
    if any(k in PLACES and k not in declared and isinstance(value[k], Runtime) for k in plain):
        return None
    structured = bool(plain) and all(
        k in PLACES and k not in declared and (k == "body" or isinstance(value[k], Mapping))
        for k in plain)
    out: dict[str, Path] = {}
    for key, item in value.items():
        key = str(key)
        place, _, rest = key.partition(":")
        if rest and place in PLACES:
            if place == "params" and item is not None:
                out[rest] = ("input", key)
        elif structured:
            if key == "params" and isinstance(item, Mapping):
                out.update({str(k): ("input", key, k) for k, v in item.items() if v is not None})
        elif key in ev.params and item is not None:
            out[key] = ("input", key)
    return out
