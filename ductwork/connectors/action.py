"""The `action` connector: events of third-party HTTP APIs (apps) called with httpx.

Input routing for `run(event, input)` (REFERENCE.md "Components on ctx"):

- flat input: a key that names a `{placeholder}` of the path is a path parameter; a key listed
  in the event's `body` / `query` / `headers` goes there (headers match case-insensitively);
  any other key goes to the body for POST/PUT/PATCH and to the query for GET/DELETE/HEAD/OPTIONS;
- a `body:x`, `params:x`, `query:x` or `headers:X` key forces the place of `x`;
- the structured form `{body, query, params, headers}` is used when every (unprefixed) key is one
  of those four words, none of them is a declared field, and query/params/headers are mappings;
  `body` may then be any JSON value (an object, a list, a string).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit
from uuid import UUID

import httpx

from ductwork.connectors import idempotency
from ductwork.connectors.action_auth import Auth, build_auth
from ductwork.connectors.action_config import (
    KEYED_METHODS,
    PLACES,
    SECRET_AUTH_KEYS,
    EnvConfig,
    EventDef,
    parse_env,
    parse_event,
    seconds,
)
from ductwork.connectors.action_config import check_call as check_call
from ductwork.connectors.action_config import validate as validate
from ductwork.connectors.base import ActionConnector, ResourceSpec, SecretSet
from ductwork.connectors.util import redact_value, retryable_status, secret_set
from ductwork.errors import ConnectorError
from ductwork.util import propagation

log = logging.getLogger("ductwork.connectors.action")

_EXCERPT = 200


@dataclass
class Routed:
    """One call's input, split by where each value goes."""

    body: Any = None
    body_set: bool = False
    query: list[tuple[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def add_body(self, key: str, value: Any) -> None:
        if self.body_set and not isinstance(self.body, dict):
            raise ValueError(f"cannot add body field '{key}' to a body that is not an object")
        if not self.body_set:
            self.body, self.body_set = {}, True
        self.body[key] = value

    def add(self, place: str, key: str, value: Any) -> None:
        if place == "body":
            self.add_body(key, value)
        elif place == "query":
            self.query.extend(_query_items(key, value))
        elif place == "params":
            self.params[key] = value
        elif value is not None:
            self.headers[key] = _scalar(value, f"header '{key}'")


def route(ev: EventDef, input: Any) -> Routed:
    """Split `input` into body / query / path params / headers; ValueError on a wrong shape."""
    out = Routed()
    if input is None:
        return out
    if not isinstance(input, Mapping):
        raise ValueError(f"input must be an object of fields, got {type(input).__name__}")
    declared = {*ev.params, *ev.body, *ev.query, *ev.header_names}
    plain = [k for k in input if _prefix(k) is None]
    structured = bool(plain) and all(
        k in PLACES and k not in declared and (k == "body" or isinstance(input[k], Mapping))
        for k in plain
    )
    for key, value in input.items():
        if not isinstance(key, str):
            raise ValueError(f"input keys must be strings, got {key!r}")
        prefixed = _prefix(key)
        if prefixed is not None:
            place, name = prefixed
            out.add(place, _header_name(ev, name) if place == "headers" else name, value)
        elif structured:
            if key == "body" and not isinstance(value, Mapping):
                if out.body_set:
                    raise ValueError("'body' is not an object, so no other body field can join it")
                out.body, out.body_set = value, True
            else:
                for sub, v in value.items():
                    name = _header_name(ev, str(sub)) if key == "headers" else str(sub)
                    out.add(key, name, v)
        else:
            out.add(_place(ev, key), _header_name(ev, key), value)
    unknown = [p for p in out.params if p not in ev.params]
    if unknown:
        known = ", ".join(ev.params) or "none"
        raise ValueError(f"path parameter '{unknown[0]}' is not in {ev.path} (known: {known})")
    return out


def _prefix(key: Any) -> tuple[str, str] | None:
    if isinstance(key, str) and ":" in key:
        place, _, name = key.partition(":")
        if place in PLACES:
            if not name:
                raise ValueError(f"'{key}' names no field after the prefix")
            return place, name
    return None


def _place(ev: EventDef, key: str) -> str:
    if key in ev.params:
        return "params"
    if key in ev.body:
        return "body"
    if key in ev.query:
        return "query"
    if key.lower() in ev.header_names:
        return "headers"
    return ev.default_place


def _header_name(ev: EventDef, key: str) -> str:
    return ev.header_names.get(key.lower(), key)


def _scalar(value: Any, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    raise ValueError(f"{what} must be a string, number or boolean, got {type(value).__name__}")


def _query_items(key: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [(key, _scalar(v, f"query '{key}'")) for v in value if v is not None]
    return [(key, _scalar(value, f"query '{key}'"))]


def render_path(ev: EventDef, params: Mapping[str, Any]) -> str:
    path = ev.path
    for name in ev.params:
        if params.get(name) is None:
            raise ValueError(
                f"missing path parameter '{name}' for {ev.path}; pass input "
                f"{{'{name}': ...}} or 'params:{name}'"
            )
        # safe="" so a value can never add path segments (no '../' or '/' smuggling)
        path = path.replace("{" + name + "}", quote(_scalar(params[name], name), safe=""))
    return path


def _call_timeout(value: float | str | timedelta) -> float:
    # The engine converts ctx.action.run(timeout=) to seconds before calling us, so a bare
    # number here is seconds (unlike the product file, where bare numbers are milliseconds).
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"{value!r} must be more than 0 seconds")
        return float(value)
    return seconds(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _form_items(body: Any) -> list[tuple[str, str]]:
    if not isinstance(body, Mapping):
        raise ValueError(f"a form body must be an object of fields, got {type(body).__name__}")
    items: list[tuple[str, str]] = []
    for key, value in body.items():
        items += _query_items(str(key), value)
    return items


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or HTTP date), if any."""
    raw = resp.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def decode(resp: httpx.Response) -> Any:
    """The response body as JSON when it is JSON, else text, else bytes; None when empty."""
    if not resp.content:
        return None
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json") or not ctype:
        try:
            return resp.json()
        except ValueError:
            pass
    if not ctype or ctype.startswith("text/") or ctype.endswith(("+xml", "/xml", "json")) or \
            ctype in ("application/x-www-form-urlencoded", "application/javascript"):
        return resp.text
    return resp.content


def _excerpt(body: Any) -> str:
    if body is None:
        return "(empty body)"
    text = body if isinstance(body, str) else (
        repr(body) if isinstance(body, bytes) else json.dumps(body, default=str))
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _display_url(url: str) -> str:
    """The base URL without user:password@, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class HttpActionConnector(ActionConnector):
    """One app in one environment: one pooled httpx.AsyncClient, reused across calls."""

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        self._spec = spec
        self.secrets: SecretSet = secret_set(spec)
        auth = spec.config.get("auth")
        if isinstance(auth, dict):  # inline secrets are secrets too, not only ${...} ones
            for key in SECRET_AUTH_KEYS:
                if auth.get(key) not in (None, ""):
                    self.secrets.add(str(auth[key]))
        try:
            self.config: EnvConfig = parse_env(spec.config)
        except ValueError as e:
            raise spec.error(
                f"bad config in apps.{spec.name}.envs.{spec.env}: {e}") from None
        self._events: dict[str, EventDef] = {}
        self._client: httpx.AsyncClient | None = None
        self._auth: Auth = build_auth(
            self.config.auth, error=spec.error, timeout=self.config.timeout,
            on_token=self.secrets.add,
        )
        self._where = _display_url(self.config.base_url)
        # Tests swap this to observe the backoff delays without waiting for them.
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def event(self, name: str) -> EventDef:
        ev = self._events.get(name)
        if ev is None:
            raw = self._spec.event(name)  # raises, listing the known events
            try:
                ev = parse_event(name, raw)
            except ValueError as e:
                raise self._spec.error(
                    f"event definition apps.{self._spec.name}.events.{name} is invalid: {e}",
                    event=name, retryable=False) from None
            self._events[name] = ev
        return ev

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                base_url=self.config.base_url, timeout=self.config.timeout,
                verify=self.config.verify, follow_redirects=False,
                headers={"User-Agent": "ductwork"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> str:
        """HEAD of the base URL (any answer but 401/403 and 5xx is up), or GET of the env's
        `health:` path (a 2xx is up), with the app's auth applied."""
        health = self._spec.config.get("health")
        method, path = ("GET", str(health)) if health else ("HEAD", "")
        headers = {"Accept": "*/*", **self.config.headers}
        query: list[Any] = []
        try:
            await self._auth.apply(self.client, headers, query, "health")
            resp = await self.client.request(method, path, params=query, headers=headers)
        except ConnectorError:
            raise
        except httpx.HTTPError as e:
            raise self._spec.error(f"cannot reach {self._where} ({type(e).__name__}: "
                                   f"{str(e) or 'no answer'})", retryable=True) from None
        status = resp.status_code
        what = f"{method} {path or '/'} -> {status}"
        if status in (401, 403):
            raise self._spec.error(f"{what}: the credentials were refused", status=status)
        if status >= 500 or (health and not 200 <= status < 300):
            raise self._spec.error(f"{what} at {self._where}", status=status,
                                   retryable=retryable_status(status))
        return what

    async def run(
        self, event: str, input: Any = None, *, retries: int | None = None,
        timeout: float | str | timedelta | None = None,
    ) -> Any:
        ev = self.event(event)
        try:
            routed = route(ev, input)
            path = render_path(ev, routed.params)
        except ValueError as e:
            raise self._spec.error(f"wrong input: {e}", event=event, retryable=False) from None
        attempts = retries if retries is not None else (
            ev.retries if ev.retries is not None else self.config.retries)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise self._spec.error(f"retries must be a whole number >= 0, got {retries!r}",
                                   event=event, retryable=False)
        try:
            secs = _call_timeout(timeout) if timeout is not None else (
                ev.timeout if ev.timeout is not None else self.config.timeout)
        except ValueError as e:
            raise self._spec.error(f"bad timeout: {e}", event=event, retryable=False) from None
        content, ctype = self._content(ev, routed)
        header = self.config.idempotency_header
        if header is not None and ev.idempotent and ev.method in KEYED_METHODS and not any(
                h.lower() == header.lower() for h in routed.headers):
            # The step's key (None outside a step): the same on every retry of this call, of
            # the step and of a takeover, so the provider can tell a repeat from a new request.
            key = idempotency.next_key()
            if key is not None:
                routed.headers[header] = key
        return await self._send(ev, path, routed, content, ctype, attempts, secs)

    def _content(self, ev: EventDef, routed: Routed) -> tuple[bytes | None, str | None]:
        if not routed.body_set:
            return None, None
        try:
            if ev.body_type == "form":
                form = urlencode(_form_items(routed.body))
                return form.encode(), "application/x-www-form-urlencoded"
            text = json.dumps(routed.body, default=_json_default, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise self._spec.error(f"wrong input: cannot encode the body: {e}",
                                   event=ev.name, retryable=False) from None
        return text.encode(), "application/json"

    async def _send(
        self, ev: EventDef, path: str, routed: Routed, content: bytes | None,
        ctype: str | None, retries: int, timeout: float,
    ) -> Any:
        what = f"{ev.method} {path}"
        attempt = 0  # retries used so far
        refreshed = False
        while True:
            headers = {"Accept": "application/json, */*;q=0.5", **self.config.headers,
                       **routed.headers}
            if ctype:
                headers["Content-Type"] = ctype
            query = list(routed.query)
            propagation.inject(headers)  # traceparent of the step attempt, when tracing is on
            await self._auth.apply(self.client, headers, query, ev.name)
            try:
                resp = await self.client.request(
                    ev.method, path, params=query, headers=headers, content=content,
                    timeout=timeout,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                if attempt < retries:
                    attempt += 1
                    await self._backoff(ev, attempt, None, f"{type(e).__name__}")
                    continue
                cause = str(e) or type(e).__name__
                raise self._spec.error(
                    f"cannot reach {self._where} for {what} ({cause})"
                    + (f" after {attempt + 1} attempts" if attempt else ""),
                    event=ev.name, retryable=True,
                ) from None
            except httpx.TimeoutException as e:
                raise self._spec.error(
                    f"{what} timed out after {timeout:g}s ({type(e).__name__}) at {self._where}",
                    event=ev.name, retryable=True,
                ) from None
            except httpx.HTTPError as e:
                # A reset connection says nothing of its own (ReadError('')).
                cause = str(e) or "the server reset or closed the connection before answering"
                raise self._spec.error(
                    f"{what} failed at {self._where}: {type(e).__name__}: {cause}",
                    event=ev.name,
                ) from None
            status = resp.status_code
            if 200 <= status < 300:
                return redact_value(decode(resp), self.secrets.redact)
            if status == 401 and not refreshed and self._auth.refresh():
                refreshed = True  # a cached OAuth2 token may have been revoked: fetch once more
                continue
            if retryable_status(status) and attempt < retries:
                attempt += 1
                await self._backoff(ev, attempt, resp, f"HTTP {status}")
                continue
            raise self._http_error(ev, what, resp, attempt)

    async def _backoff(
        self, ev: EventDef, attempt: int, resp: httpx.Response | None, why: str
    ) -> None:
        delay = self.config.backoff * 2 ** (attempt - 1)
        asked = retry_after(resp) if resp is not None else None
        if asked is not None:
            delay = asked
        delay = min(delay, self.config.max_delay)
        log.info("app %s event %s: %s, retry %d in %.3fs", self._spec.name, ev.name, why,
                 attempt, delay)
        await self.sleep(delay)

    def _http_error(
        self, ev: EventDef, what: str, resp: httpx.Response, attempt: int
    ) -> ConnectorError:
        status = resp.status_code
        body = redact_value(decode(resp), self.secrets.redact)
        hint = ""
        if status in (401, 403):
            hint = (f" (credentials rejected: check apps.{self._spec.name}.envs."
                    f"{self._spec.env}.auth)")
        tries = f" after {attempt + 1} attempts" if attempt else ""
        return self._spec.error(
            f"HTTP {status} from {what}{hint}{tries}: {_excerpt(body)}", event=ev.name,
            status=status, body=body, retryable=retryable_status(status),
        )


def create(spec: ResourceSpec) -> HttpActionConnector:
    """Provider factory for ("action", "http")."""
    return HttpActionConnector(spec)
