"""API tokens: a file of hashed tokens, a scope each, and the FastAPI dependency checking them."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from ductwork.errors import ConfigurationError

SCOPES = ("read", "operator")  # operator can do everything read can, and act on runs
PREFIX = "dwt_"
# Browsers cannot send an Authorization header from a plain link: the UI may keep the token in
# this (HttpOnly) cookie instead, and the dependency accepts either.
COOKIE = "ductwork_token"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id and name, or "local" under --insecure-local."""

    token_id: str
    name: str
    scope: str

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)


def _digest(secret: str) -> str:
    # Tokens are 256 random bits, so a plain SHA-256 is enough: a slow password hash protects
    # guessable secrets, and nothing about these is guessable.
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenFile:
    """Tokens in a JSON file, stored hashed: `dwt_<id>_<secret>` is shown once at creation and
    only sha256(secret) is kept. The file is read again when it changes, so a revoked token
    stops working without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._tokens: dict[str, dict[str, Any]] = {}

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._tokens = None, {}
            return self._tokens
        if mtime != self._mtime:
            self._tokens = {t["id"]: t for t in self._read()}
            self._mtime = mtime
        return self._tokens

    def _read(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise ConfigurationError(f"tokens file {self.path}: cannot read it ({e}); fix or "
                                     "delete it and create the tokens again") from None
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(
                isinstance(t, dict) and {"id", "hash", "scope"} <= t.keys() for t in tokens):
            raise ConfigurationError(f"tokens file {self.path}: not a ductwork tokens file "
                                     "(expected {\"tokens\": [{id, name, scope, hash}]})")
        return tokens

    def _write(self, tokens: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"tokens": tokens}, f, indent=2)
            f.write("\n")
        os.replace(tmp, self.path)

    def create(self, scope: str, name: str, *, expires_in: float | None = None
               ) -> tuple[dict[str, Any], str]:
        """A new token -> (its record without the hash, the token text to hand out); with
        `expires_in` (seconds) it stops working that long from now."""
        if scope not in SCOPES:
            raise ConfigurationError(f"token scope {scope!r}: use one of {', '.join(SCOPES)}")
        if expires_in is not None and expires_in <= 0:
            raise ConfigurationError("a token's expiry must be in the future: give --expires "
                                     "a positive duration such as 90d")
        tokens = self._read()
        token_id = secrets.token_hex(4)
        while any(t["id"] == token_id for t in tokens):
            token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        record = {"id": token_id, "name": name, "scope": scope, "hash": _digest(secret),
                  "created_at": round(time.time(), 3)}
        if expires_in is not None:
            record["expires_at"] = round(time.time() + expires_in, 3)
        self._write([*tokens, record])
        return _public(record), f"{PREFIX}{token_id}_{secret}"

    def list(self) -> list[dict[str, Any]]:
        return [_public(t) for t in self._read()]

    def revoke(self, token_id: str) -> bool:
        tokens = self._read()
        kept = [t for t in tokens if t["id"] != token_id]
        if len(kept) == len(tokens):
            return False
        self._write(kept)
        return True

    def check(self, token: str) -> Principal | None:
        """The principal of a presented token, or None if it is not a valid one."""
        return self.verify(token)[0]

    def verify(self, token: str) -> tuple[Principal | None, str]:
        """The principal of a presented token, or None and why not (for the 401)."""
        invalid = "invalid or revoked API token"
        if not token.startswith(PREFIX):
            return None, invalid
        token_id, sep, secret = token[len(PREFIX):].partition("_")
        if not sep:
            return None, invalid
        record = self._load().get(token_id)
        if record is None:
            _digest(secret)  # about the same work whether or not the id exists
            return None, invalid
        if not hmac.compare_digest(str(record["hash"]), _digest(secret)):
            return None, invalid
        name = str(record.get("name") or token_id)
        expires = record.get("expires_at")
        if isinstance(expires, int | float) and time.time() >= expires:
            # Said only to a caller that holds the real secret: it learns nothing new.
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
            return None, (f"API token '{name}' expired at {when}: create a new one with "
                          "`ductwork server token create`")
        return Principal(token_id, name, str(record["scope"])), ""


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "hash"}


class Authenticator:
    """Who a request is from: a bearer token (or the UI's cookie), or anyone on the loopback
    interface when the server runs with --insecure-local."""

    def __init__(self, tokens: TokenFile | None, insecure_local: bool) -> None:
        self.tokens = tokens
        self.insecure_local = insecure_local

    def principal(self, request: Request) -> Principal:
        if self.insecure_local:
            host = request.client.host if request.client else ""
            if host not in LOOPBACK:
                # --insecure-local binds 127.0.0.1; refuse anything that reaches us otherwise
                # (a proxy in front, say).
                raise HTTPException(403, "this server runs with --insecure-local and serves "
                                         "the local machine only")
            return Principal("local", "local", "operator")
        token = _presented(request)
        if token is None:
            raise HTTPException(401, "an API token is required: send 'Authorization: Bearer "
                                     "<token>' (create one with `ductwork server token create`)",
                                headers={"WWW-Authenticate": "Bearer"})
        principal, why = (self.tokens.verify(token) if self.tokens is not None
                          else (None, "invalid or revoked API token"))
        if principal is None:
            raise HTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})
        return principal


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return request.cookies.get(COOKIE)


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller's Principal, if its scope allows `scope`; else 401/403."""
    if scope not in SCOPES:
        raise ConfigurationError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")

    async def dependency(request: Request) -> Principal:
        auth: Authenticator = request.app.state.authenticator
        principal = auth.principal(request)
        if not principal.allows(scope):
            raise HTTPException(403, f"token '{principal.name}' has scope "
                                     f"'{principal.scope}'; this needs '{scope}'")
        with contextlib.suppress(AttributeError):
            request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency
