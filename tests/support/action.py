"""The action connector's test app: its events, a real HTTP server and a connector factory.

Test modules import the fixtures by name (`server`, `clean_server`, `make`, `delays`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork.connectors.action import HttpActionConnector
from ductwork.connectors.base import ResourceSpec, SecretSet, build_connector, resolve_refs
from tests.support.http import local_http_server

EVENTS: dict[str, Any] = {
    "create-charge": {"method": "POST", "path": "/v1/charges",
                      "body": ["amount", "currency"], "headers": ["Idempotency-Key"]},
    "get-charge": {"method": "GET", "path": "/v1/charges/{id}", "query": ["expand"]},
    "update-charge": {"method": "POST", "path": "/v1/charges/{id}", "body": ["metadata"],
                      "query": ["dry_run"]},
    "refund-charge": {"method": "POST", "path": "/v1/refunds", "body": ["chargeId"]},
    "list-charges": {"path": "/v1/charges"},
    "delete-charge": {"method": "DELETE", "path": "/v1/charges/{id}"},
    "search": {"method": "GET", "path": "/search", "query": ["query"]},
    "login-form": {"method": "POST", "path": "/login", "body_type": "form"},
    "nested": {"method": "GET", "path": "/orgs/{org}/repos/{repo}"},
}
OAUTH = {"type": "oauth2_client_credentials", "token_url": "/oauth/token",
         "client_id": "cid", "client_secret": "${secrets.CS}", "scope": ["charges", "refunds"]}

@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with local_http_server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean_server(server: HTTPServer) -> Iterator[None]:
    yield
    server.clear()


class Make:
    """Builds connectors for the test app through the provider registry, like the engine does.

    Their backoff sleeps do not wait: the delays asked for are recorded in `delays`.
    """

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.delays: list[float] = []
        self.built: list[HttpActionConnector] = []

    def __call__(
        self, auth: dict[str, Any] | None = None, *, events: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None, fast_sleep: bool = True, **config: Any,
    ) -> HttpActionConnector:
        raw: dict[str, Any] = {"base_url": self.server.url_for(""), **config}
        if auth is not None:
            raw["auth"] = auth
        collected = SecretSet()
        resolved = resolve_refs(raw, environ={}, secrets=secrets or {}, collect=collected)
        spec = ResourceSpec(
            kind="action", name="stripe", env="dev", product="shop", config=resolved,
            definition={"envs": {"dev": raw}, "events": EVENTS if events is None else events},
            secrets=collected,
        )
        conn = build_connector(spec)
        assert isinstance(conn, HttpActionConnector)
        if fast_sleep:
            conn.sleep = self._record
        self.built.append(conn)
        return conn

    async def _record(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def make(server: HTTPServer) -> AsyncIterator[Make]:
    factory = Make(server)
    yield factory
    for conn in factory.built:
        await conn.aclose()


def last(server: HTTPServer) -> Request:
    assert server.log, "the server received no request"
    return server.log[-1][0]


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, content_type="application/json")
