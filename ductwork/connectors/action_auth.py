"""Auth for apps: bearer, basic, API key (header or query) and OAuth2 client credentials."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import httpx

from ductwork.connectors.util import retryable_status
from ductwork.errors import ConnectorError

ErrorFactory = Callable[..., ConnectorError]

# Refresh an OAuth2 token a little before it expires, so a request never races the expiry.
_EXPIRY_MARGIN = 30.0


class Auth:
    """Adds credentials to one request; `refresh()` is the one retry allowed after a 401."""

    async def apply(
        self, client: httpx.AsyncClient, headers: dict[str, str], query: list[tuple[str, Any]],
        event: str | None = None,
    ) -> None:
        """Add the credentials to `headers` / `query` in place."""

    def refresh(self) -> bool:
        """Forget cached credentials after a 401; True when a retry could succeed."""
        return False


class _AuthorizationHeader(Auth):
    """A fixed Authorization header value."""

    def __init__(self, value: str) -> None:
        self.value = value

    async def apply(
        self, client: httpx.AsyncClient, headers: dict[str, str], query: list[tuple[str, Any]],
        event: str | None = None,
    ) -> None:
        headers["Authorization"] = self.value


class BearerAuth(_AuthorizationHeader):
    def __init__(self, token: str) -> None:
        super().__init__(f"Bearer {token}")


class BasicAuth(_AuthorizationHeader):
    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        super().__init__("Basic " + base64.b64encode(raw).decode("ascii"))


class ApiKeyAuth(Auth):
    def __init__(self, name: str, value: str, where: str) -> None:
        self.name, self.value, self.where = name, value, where

    async def apply(
        self, client: httpx.AsyncClient, headers: dict[str, str], query: list[tuple[str, Any]],
        event: str | None = None,
    ) -> None:
        if self.where == "query":
            query[:] = [(k, v) for k, v in query if k != self.name]
            query.append((self.name, self.value))
        else:
            headers[self.name] = self.value


class OAuth2ClientCredentials(Auth):
    """RFC 6749 section 4.4: a token from `token_url`, cached until shortly before it expires."""

    def __init__(
        self, cfg: dict[str, Any], *, error: ErrorFactory, timeout: float,
        on_token: Callable[[str], None],
    ) -> None:
        self.token_url = str(cfg["token_url"])
        self.client_id = str(cfg["client_id"])
        self.client_secret = str(cfg["client_secret"])
        self.scope = cfg.get("scope")
        self.params = {str(k): str(v) for k, v in (cfg.get("params") or {}).items()}
        self.client_auth = str(cfg.get("client_auth", "basic"))
        self._error, self._timeout, self._on_token = error, timeout, on_token
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def apply(
        self, client: httpx.AsyncClient, headers: dict[str, str], query: list[tuple[str, Any]],
        event: str | None = None,
    ) -> None:
        headers["Authorization"] = f"Bearer {await self.token(client, event)}"

    def refresh(self) -> bool:
        self._token = None
        return True

    def _valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._expires_at

    async def token(self, client: httpx.AsyncClient, event: str | None = None) -> str:
        if self._valid():
            assert self._token is not None
            return self._token
        async with self._lock:  # one fetch even when many steps need a token at once
            if not self._valid():
                await self._fetch(client, event)
            assert self._token is not None
            return self._token

    async def _fetch(self, client: httpx.AsyncClient, event: str | None) -> None:
        form = {"grant_type": "client_credentials", **self.params}
        if self.scope:
            form["scope"] = " ".join(self.scope) if isinstance(self.scope, list) else str(
                self.scope)
        headers = {"Accept": "application/json"}
        if self.client_auth == "body":
            form.update(client_id=self.client_id, client_secret=self.client_secret)
        else:
            headers["Authorization"] = BasicAuth(self.client_id, self.client_secret).value
        try:
            resp = await client.post(self.token_url, data=form, headers=headers,
                                     timeout=self._timeout)
        except httpx.HTTPError as e:
            raise self._error(
                f"OAuth2 token request to {self.token_url} failed: {type(e).__name__}: {e}",
                event=event,
            ) from None
        if resp.status_code // 100 != 2:
            excerpt = " ".join(resp.text.split())[:200]
            raise self._error(
                f"OAuth2 token request to {self.token_url} was refused: HTTP {resp.status_code}"
                f" (check client_id/client_secret): {excerpt}",
                event=event, status=resp.status_code,
                retryable=retryable_status(resp.status_code),
            )
        try:
            data = resp.json()
            token = str(data["access_token"])
        except (ValueError, KeyError, TypeError):
            raise self._error(
                f"OAuth2 token response from {self.token_url} has no access_token", event=event
            ) from None
        self._on_token(token)
        try:
            lifetime = float(data.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = token
        self._expires_at = time.monotonic() + max(0.0, lifetime - min(_EXPIRY_MARGIN,
                                                                        lifetime / 10))


def build_auth(
    cfg: dict[str, Any], *, error: ErrorFactory, timeout: float,
    on_token: Callable[[str], None],
) -> Auth:
    """The Auth for a validated auth block (see action_config.AUTH_KEYS)."""
    kind = cfg.get("type", "none")
    if kind == "bearer":
        return BearerAuth(str(cfg["token"]))
    if kind == "basic":
        return BasicAuth(str(cfg["username"]), str(cfg["password"]))
    if kind == "api_key":
        return ApiKeyAuth(str(cfg["name"]), str(cfg["value"]), str(cfg.get("in", "header")))
    if kind == "oauth2_client_credentials":
        return OAuth2ClientCredentials(cfg, error=error, timeout=timeout, on_token=on_token)
    return Auth()
