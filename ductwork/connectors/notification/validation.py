"""`ductwork validate` checks for notification resources: env config per provider, and events."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ductwork.connectors.base import Problem
from ductwork.connectors.notification.common import VAPID_SUB, parse_mailbox, webpush_ttl
from ductwork.connectors.notification.templates import (
    CHANNEL_FIELDS,
    EVENT_KEYS,
    channels_of,
    template_problems,
)
from ductwork.connectors.util import (
    duration_problem,
    env_name,
    env_path,
    first_env,
)
from ductwork.util.suggest import did_you_mean

# provider -> (required keys, optional keys)
PROVIDER_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "outbox": (frozenset(), frozenset({"maildir", "from"})),
    "smtp": (frozenset({"host", "from"}),
             frozenset({"port", "tls", "username", "password", "timeout", "ca_file", "verify",
                        "helo"})),
    "twilio": (frozenset({"account_sid", "auth_token"}),
               frozenset({"from", "messaging_service_sid", "base_url", "timeout"})),
    "fcm": (frozenset({"service_account"}), frozenset({"project_id", "base_url", "timeout"})),
    "webpush": (frozenset({"vapid_private_key", "vapid_claims"}), frozenset({"ttl", "timeout"})),
}
PROVIDER_CHANNEL: dict[str, str] = {"smtp": "email", "twilio": "sms", "fcm": "push",
                                    "webpush": "push"}
_REF = re.compile(r"\$\{\s*(env|secrets)\.[A-Za-z_][A-Za-z0-9_]*\s*\}")
_ONLY_REF = re.compile(r"^\s*\$\{\s*(env|secrets)\.[A-Za-z_][A-Za-z0-9_]*\s*\}\s*$")


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and bool(_REF.search(value))


def validate(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    """Problems of one environment's config (refs unresolved) and of the resource's events."""
    env = env_name(definition, config)
    provider = str(config.get("provider", "outbox"))
    problems: list[Problem] = []
    if provider in PROVIDER_KEYS:
        problems += _config_problems(provider, config, env_path(definition, config))
    if first_env(definition, config):
        problems += _event_problems(definition.get("events"))
    channel = PROVIDER_CHANNEL.get(provider)
    if channel and isinstance(definition.get("events"), Mapping):
        for name, event in definition["events"].items():
            if isinstance(event, Mapping) and channel not in channels_of(event):
                fields = "/".join(CHANNEL_FIELDS[channel])
                problems.append((("events", name), (
                    f"event '{name}' has no {channel} template ({fields}), but provider "
                    f"'{provider}'{f' (env {env})' if env else ''} sends {channel}")))
    return problems


class _Config:
    """One provider block being checked: small checks that append located problems."""

    def __init__(self, config: Mapping[str, Any], where: tuple[str | int, ...]) -> None:
        self.config, self.where = config, where
        self.out: list[Problem] = []

    def add(self, key: str, msg: str) -> None:
        self.out.append(((*self.where, key), msg))

    def whole(self, msg: str) -> None:
        self.out.append((self.where, msg))

    def given(self, key: str) -> Any:
        """The value of `key` unless it is absent or a reference (checked when resolved)."""
        value = self.config.get(key)
        return None if value is None or _is_ref(value) else value

    def number(self, key: str, *, whole: bool = False) -> None:
        value = self.given(key)
        if value is None:
            return
        ok = isinstance(value, int) if whole else isinstance(value, (int, float))
        if not ok or isinstance(value, bool) or value < 0:
            self.add(key, f"`{key}` must be a {'whole ' if whole else ''}positive number")

    def secret(self, key: str) -> None:
        if self.given(key) is not None:
            self.add(key, f"`{key}` is a secret: write a reference such as "
                          f"\"${{env.{key.upper()}}}\", never the value itself")

    def address(self, key: str) -> None:
        value = self.given(key)
        if value is not None and parse_mailbox(str(value)) is None:
            self.add(key, f"`{key}` is not an email address: {value!r}")

    def url(self, key: str) -> None:
        value = self.given(key)
        if value is not None and not (
                isinstance(value, str) and value.startswith(("http://", "https://"))):
            self.add(key, f"`{key}` must be an http(s) URL")


def _smtp(c: _Config) -> None:
    c.address("from")
    c.number("port", whole=True)
    tls = c.config.get("tls", "starttls")
    if not _is_ref(tls) and tls not in ("starttls", "tls", "none"):
        c.add("tls", f"`tls` must be one of starttls, tls, none; got {tls!r}")
    if ("username" in c.config) != ("password" in c.config):
        c.whole("SMTP AUTH needs both `username` and `password` (or neither)")
    c.secret("password")
    if "verify" in c.config and not isinstance(c.config["verify"], bool):
        c.add("verify", "`verify` must be true or false")


def _twilio(c: _Config) -> None:
    c.secret("auth_token")
    c.url("base_url")
    if ("from" in c.config) == ("messaging_service_sid" in c.config):
        c.whole("provider 'twilio' needs exactly one of `from` (a Twilio number) "
                "or `messaging_service_sid`")


def _fcm(c: _Config) -> None:
    c.url("base_url")
    sa = c.config.get("service_account")
    if isinstance(sa, Mapping) or (isinstance(sa, str) and sa.lstrip().startswith("{")):
        c.add("service_account", "`service_account` holds a private key: give a path to the "
                                 "JSON key file or a reference such as "
                                 "\"${env.FCM_SERVICE_ACCOUNT}\", never the JSON itself")


def _webpush(c: _Config) -> None:
    ttl = c.given("ttl")
    if ttl is not None:
        try:
            webpush_ttl(ttl)
        except ValueError as e:
            c.add("ttl", str(e))
    vkey = c.config.get("vapid_private_key")
    if isinstance(vkey, str) and not _ONLY_REF.match(vkey) and (
            vkey.lstrip().startswith("-----BEGIN")
            or re.fullmatch(r"[A-Za-z0-9_\-]{40,}=*", vkey.strip())):
        c.add("vapid_private_key", "`vapid_private_key` is a secret: give a path to the PEM "
                                   "file or a reference such as \"${env.VAPID_PRIVATE_KEY}\"")
    claims = c.config.get("vapid_claims")
    if claims is not None:
        claims_sub = claims.get("sub") if isinstance(claims, Mapping) else None
        if not isinstance(claims, Mapping) or set(claims) != {"sub"}:
            c.add("vapid_claims", "`vapid_claims` must be {sub: \"mailto:you@example.com\"} "
                                  "(aud and exp are set per push service)")
        elif not _is_ref(claims_sub) and not VAPID_SUB.match(str(claims_sub)):
            c.out.append(((*c.where, "vapid_claims", "sub"),
                          "`sub` must be mailto:you@example.com or a bare https://host"))


_PROVIDER_CHECKS: dict[str, Callable[[_Config], None]] = {
    "outbox": lambda c: c.address("from"),
    "smtp": _smtp,
    "twilio": _twilio,
    "fcm": _fcm,
    "webpush": _webpush,
}


def _config_problems(
    provider: str, config: Mapping[str, Any], where: tuple[str | int, ...]
) -> list[Problem]:
    required, optional = PROVIDER_KEYS[provider]
    known = required | optional | {"provider"}
    c = _Config(config, where)
    for key in config:
        if key not in known:
            c.add(str(key), f"unknown key '{key}' for provider '{provider}' "
                            f"(known: {', '.join(sorted(known))})"
                            + did_you_mean(str(key), known, prefix="; "))
    for key in sorted(required):
        if key not in config:
            c.whole(f"provider '{provider}' needs `{key}`")
    problem = duration_problem("`timeout`", config.get("timeout"))
    if problem:
        c.add("timeout", problem)
    check = _PROVIDER_CHECKS.get(provider)
    if check is not None:
        check(c)
    return c.out


def _event_problems(events: Any) -> list[Problem]:
    if events is None:
        return []
    if not isinstance(events, Mapping):
        return [(("events",), "`events` must be a mapping of event name to templates")]
    out: list[Problem] = []
    for name, event in events.items():
        path: tuple[str | int, ...] = ("events", name)
        if not isinstance(event, Mapping):
            out.append((path, f"event '{name}' must be a mapping of templates "
                              "(subject/text/html, message, or title/body)"))
            continue
        for key, source in event.items():
            if key not in EVENT_KEYS:
                out.append(((*path, key), f"unknown key '{key}' in event '{name}' (known: "
                            f"{', '.join(sorted(EVENT_KEYS))})"
                            + did_you_mean(str(key), EVENT_KEYS, prefix="; ")))
            elif key != "description":
                out += [((*path, key), problem) for problem in template_problems(str(key), source)]
        channels = channels_of(event)
        if not channels:
            out.append((path, f"event '{name}' declares no template: give subject + text/html "
                              "(email), message (sms) or title/body (push)"))
        if "email" in channels:
            if "subject" not in event:
                out.append((path, f"email event '{name}' needs a `subject` template"))
            if "text" not in event and "html" not in event:
                out.append((path, f"email event '{name}' needs a `text` or `html` template"))
    return out
