"""What every notification provider shares: call-shape handling, rendering, address checks."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ductwork.connectors.base import NotificationConnector, ResourceSpec
from ductwork.connectors.notification.templates import Templates
from ductwork.connectors.util import duration_s
from ductwork.errors import ConnectorError
from ductwork.util.durations import parse_ms

if TYPE_CHECKING:
    import httpx  # only a type here: checking a spec imports this module

# dot-atom local part and LDH domain labels: enough for real addresses, and nothing that can
# smuggle a header (CR/LF), a second address (",") or a route into the envelope.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})*$")
_NAMED = re.compile(r"^([^<>]*)<([^<>]+)>\s*$")
PHONE_RE = re.compile(r"^(?:whatsapp:)?\+[1-9][0-9]{6,14}$")
# What py_vapid accepts as a VAPID contact: mailto:user@host or a bare https://host.
VAPID_SUB = re.compile(r"^(mailto:[^\s@]+@[\w.%-]+|https://[\w.-]+(:\d+)?)$")
# The input keys of send() that pick the channel.
ADDRESS_KEYS: dict[str, str] = {"recipients": "email", "phones": "sms", "tokens": "push"}


@dataclass(frozen=True)
class Email:
    subject: str
    text: str | None
    html: str | None


@dataclass(frozen=True)
class Push:
    title: str | None
    body: str | None
    data: dict[str, Any] | None


def parse_mailbox(value: str) -> tuple[str, str] | None:
    """(display name, addr-spec) of `a@b.c` or `Name <a@b.c>`, or None when not one address."""
    if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
        return None
    m = _NAMED.match(value)
    name, addr = (m.group(1).strip(), m.group(2).strip()) if m else ("", value.strip())
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if not EMAIL_RE.match(addr) or '"' in name:
        return None
    return name, addr


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def base_path(spec: ResourceSpec, path: str) -> str:
    """A config path made absolute against the product file's directory."""
    return os.path.normpath(os.path.join(spec.base_dir, os.path.expanduser(path)))


def push_data(data: Mapping[str, Any] | None) -> dict[str, str]:
    """FCM and most service workers want string values: encode anything else as JSON."""
    return {str(k): v if isinstance(v, str) else json.dumps(v, default=str)
            for k, v in (data or {}).items()}


def response_body(resp: httpx.Response) -> Any:
    """A provider's error response: its JSON, or the start of its text."""
    try:
        return resp.json()
    except ValueError:
        return resp.text[:500]


class BaseNotifier(NotificationConnector):
    """One provider for one resource in one env; subclasses implement the _deliver_* hooks."""

    provider: ClassVar[str] = ""
    channels: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        self.rspec = spec
        self.templates = Templates(spec)

    # -- config helpers ------------------------------------------------------------------
    def conf_str(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.rspec.config.get(key, default)
        if value is None or (required and value == ""):
            if required:
                raise self.rspec.error(
                    f"provider '{self.provider}' needs `{key}` in envs.{self.rspec.env}")
            return ""
        if not isinstance(value, (str, int, float)):
            raise self.rspec.error(f"`{key}` in envs.{self.rspec.env} must be a string")
        return str(value)

    def conf_seconds(self, key: str, default: float) -> float:
        """A config duration ("10s", "250ms", bare number = milliseconds) in seconds."""
        value = self.rspec.config.get(key)
        if value is None:
            return default
        try:
            return duration_s(value, f"`{key}` in envs.{self.rspec.env}")
        except ValueError as e:
            raise self.rspec.error(str(e)) from None

    def fail(self, message: str, event: str | None, **kw: Any) -> ConnectorError:
        return self.rspec.error(message, event=event, **kw)

    # -- the ctx call shapes -------------------------------------------------------------
    def _require(self, channel: str, event: str) -> None:
        if channel not in self.channels:
            can = " and ".join(self.channels)
            raise self.fail(
                f"provider '{self.provider}' sends {can}, not {channel}; use "
                f"notification.{self.channels[0]} or pick another provider for env "
                f"'{self.rspec.env}'", event)
        self.templates.event(event)  # unknown event -> error listing the known ones

    async def email(
        self, event: str, recipients: list[str], subject: Mapping[str, Any] | None = None,
        template: Mapping[str, Any] | None = None,
    ) -> Any:
        self._require("email", event)
        addrs = self.check_recipients(event, recipients)
        content = self.render_email(
            event, template if subject is None else subject, template,
            ("template" if subject is None else "subject", "template"))
        return await self._deliver_email(event, addrs, content)

    async def sms(
        self, event: str, phones: list[str], message: Mapping[str, Any] | None = None
    ) -> Any:
        self._require("sms", event)
        numbers = self.check_phones(event, phones)
        text = self.templates.render(event, "message", message, arg="message")
        return await self._deliver_sms(event, numbers, text)

    async def push(
        self, event: str, tokens: list[Any], title: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
    ) -> Any:
        self._require("push", event)
        checked = self.check_tokens(event, tokens)
        content = self.render_push(
            event, body if title is None else title, title if body is None else body, data,
            ("body" if title is None else "title", "title" if body is None else "body"))
        return await self._deliver_push(event, checked, content)

    async def send(self, event: str, input: Mapping[str, Any]) -> Any:
        """Generic form: `recipients`/`phones`/`tokens` pick the channel; all of input is the
        template context (and `data` is also the push payload)."""
        if not isinstance(input, Mapping):
            raise self.fail(f"input must be a mapping, not {type(input).__name__}", event)
        given = [k for k in ADDRESS_KEYS if k in input]
        if len(given) != 1:
            raise self.fail(
                "input needs exactly one of recipients (email), phones (sms) or tokens (push)"
                + (f"; got {', '.join(given)}" if given else ""), event)
        channel = ADDRESS_KEYS[given[0]]
        self._require(channel, event)
        variables = dict(input)
        if channel == "email":
            addrs = self.check_recipients(event, input["recipients"])
            mail = self.render_email(event, variables, variables, ("input", "input"))
            return await self._deliver_email(event, addrs, mail)
        if channel == "sms":
            numbers = self.check_phones(event, input["phones"])
            text = self.templates.render(event, "message", variables, arg="input")
            return await self._deliver_sms(event, numbers, text)
        checked = self.check_tokens(event, input["tokens"])
        note = self.render_push(event, variables, variables, input.get("data"),
                                ("input", "input"))
        return await self._deliver_push(event, checked, note)

    # -- rendering -----------------------------------------------------------------------
    def render_email(
        self, event: str, subject_vars: Mapping[str, Any] | None,
        body_vars: Mapping[str, Any] | None, args: tuple[str, str],
    ) -> Email:
        t = self.templates
        subject = t.render(event, "subject", subject_vars, arg=args[0])
        text = t.render(event, "text", body_vars, arg=args[1]) if t.has(event, "text") else None
        html = t.render(event, "html", body_vars, arg=args[1]) if t.has(event, "html") else None
        if text is None and html is None:
            raise self.fail("event declares neither a 'text' nor an 'html' template", event)
        # A header cannot hold a line break; a multi-line subject template reads as one line.
        return Email(" ".join(subject.split()), text, html)

    def render_push(
        self, event: str, title_vars: Mapping[str, Any] | None,
        body_vars: Mapping[str, Any] | None, data: Any, args: tuple[str, str],
    ) -> Push:
        t = self.templates
        if not (t.has(event, "title") or t.has(event, "body")):
            raise self.fail("event declares neither a 'title' nor a 'body' template", event)
        if data is not None and not isinstance(data, Mapping):
            raise self.fail(f"push data must be a mapping, not {type(data).__name__}", event)
        title = t.render(event, "title", title_vars, arg=args[0]) if t.has(event, "title") \
            else None
        body = t.render(event, "body", body_vars, arg=args[1]) if t.has(event, "body") else None
        return Push(title, body, dict(data) if data is not None else None)

    # -- address checks ------------------------------------------------------------------
    def check_recipients(self, event: str, recipients: Any) -> list[tuple[str, str]]:
        """(display name, address) of each recipient; a bad one fails the whole call."""
        values = as_list(recipients)
        if not values:
            raise self.fail("recipients is empty; pass at least one email address", event)
        out = []
        for value in values:
            parsed = parse_mailbox(value)
            if parsed is None:
                raise self.fail(
                    f"recipient {value!r} is not an email address "
                    "(expected 'name@example.com' or 'Name <name@example.com>')", event)
            out.append(parsed)
        return out

    def check_phones(self, event: str, phones: Any) -> list[str]:
        values = as_list(phones)
        if not values:
            raise self.fail("phones is empty; pass at least one phone number", event)
        for value in values:
            if not isinstance(value, str) or not PHONE_RE.match(value):
                raise self.fail(
                    f"phone {value!r} is not an E.164 number (expected '+14155550100', "
                    "optionally prefixed 'whatsapp:')", event)
        return values

    def check_tokens(self, event: str, tokens: Any) -> list[Any]:
        values = as_list(tokens)
        if not values:
            raise self.fail("tokens is empty; pass at least one device token", event)
        for i, value in enumerate(values):
            problem = self.token_problem(value)
            if problem:
                raise self.fail(f"tokens[{i}]: {problem}", event)
        return values

    def token_problem(self, token: Any) -> str | None:
        if isinstance(token, str):
            return None if token and not any(c.isspace() for c in token) \
                else "a device token is a non-empty string without spaces"
        return subscription_problem(token)

    # -- provider hooks ------------------------------------------------------------------
    async def _deliver_email(
        self, event: str, recipients: list[tuple[str, str]], mail: Email
    ) -> Any:
        raise NotImplementedError

    async def _deliver_sms(self, event: str, phones: list[str], text: str) -> Any:
        raise NotImplementedError

    async def _deliver_push(self, event: str, tokens: list[Any], note: Push) -> Any:
        raise NotImplementedError


def subscription_problem(token: Any) -> str | None:
    """What is wrong with a Web Push subscription object {endpoint, keys: {p256dh, auth}}."""
    if not isinstance(token, Mapping):
        return ("a Web Push token is a subscription object {endpoint, keys: {p256dh, auth}}, "
                f"not {type(token).__name__}")
    endpoint = token.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return "subscription needs an http(s) `endpoint`"
    keys = token.get("keys")
    if not isinstance(keys, Mapping) or not all(
            isinstance(keys.get(k), str) and keys.get(k) for k in ("p256dh", "auth")):
        return "subscription needs `keys` with `p256dh` and `auth`"
    return None


TTL_HELP = ("`ttl` is the Web Push TTL header, in SECONDS when a bare number (unlike other "
            "durations): write a whole number of seconds (86400) or a duration with a unit "
            "(\"1d\", \"10m\")")


def webpush_ttl(value: Any) -> int:
    """Web Push `ttl` in whole seconds; ValueError (TTL_HELP) when it is not one.

    A deliberate exception to "bare numbers are milliseconds": RFC 8030's TTL header is in
    seconds and configs copy it from push-service docs, so a bare number (or a digits-only
    string from ${env.X}) stays seconds; a string with a unit goes through ductwork.util.durations.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, str | dt.timedelta):
        ms = parse_ms(value)
        if ms is not None:
            return int(ms // 1000)
    raise ValueError(TTL_HELP)
