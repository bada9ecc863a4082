"""Action auth against a real HTTP server: bearer, basic, API keys, OAuth2 client credentials."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork.errors import ConnectorError
from tests.support.action import OAUTH, Make, last
from tests.support.action import clean_server as clean_server  # autouse fixture
from tests.support.action import make as make  # fixture
from tests.support.action import server as server  # module fixture


async def test_bearer(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges", headers={"Authorization": "Bearer sk_test_123"}) \
        .respond_with_json([])
    await make({"type": "bearer", "token": "${secrets.KEY}"}, secrets={"KEY": "sk_test_123"}) \
        .run("list-charges")
    assert last(server).headers["Authorization"] == "Bearer sk_test_123"


async def test_basic(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges").respond_with_json([])
    await make({"type": "basic", "username": "ACxx", "password": "p@ss:w"}).run("list-charges")
    auth = last(server).authorization
    assert auth is not None and auth.type == "basic"
    assert (auth.username, auth.password) == ("ACxx", "p@ss:w")


async def test_api_key_header(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges").respond_with_json([])
    await make({"type": "api_key", "name": "X-API-Key", "value": "key-abc"}).run("list-charges")
    assert last(server).headers["X-API-Key"] == "key-abc"


async def test_api_key_query(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges/c1").respond_with_json({})
    await make({"type": "api_key", "in": "query", "name": "api_key", "value": "key-q"}) \
        .run("get-charge", {"id": "c1", "expand": "x", "api_key": "user-supplied"})
    args = last(server).args
    assert args.getlist("api_key") == ["key-q"] and args["expand"] == "x"


async def test_api_key_in_query_never_in_error(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges").respond_with_data("teapot", 418)
    with pytest.raises(ConnectorError) as err:
        await make({"type": "api_key", "in": "query", "name": "k", "value": "qsecret-1"}) \
            .run("list-charges")
    assert "qsecret-1" not in str(err.value) and "HTTP 418" in str(err.value)


def token_server(server: HTTPServer, tokens: list[str], expires_in: int = 3600) -> list[Any]:
    """An OAuth2 token endpoint on the same server; returns the list of token requests seen."""
    seen: list[Any] = []
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        with lock:
            seen.append({"form": request.form.to_dict(), "auth": request.authorization})
            token = tokens[min(len(seen), len(tokens)) - 1]
        body = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
        return Response(json.dumps(body), content_type="application/json")

    server.expect_request("/oauth/token", method="POST").respond_with_handler(handler)
    return seen



async def test_oauth2_token_fetched_once_and_cached(server: HTTPServer, make: Make) -> None:
    seen = token_server(server, ["tok-A"])
    server.expect_request("/v1/charges", headers={"Authorization": "Bearer tok-A"}) \
        .respond_with_json([])
    conn = make(OAUTH, secrets={"CS": "csecret-1"})
    assert await conn.run("list-charges") == []
    assert await conn.run("list-charges") == []
    assert len(seen) == 1
    assert seen[0]["form"] == {"grant_type": "client_credentials", "scope": "charges refunds"}
    assert (seen[0]["auth"].username, seen[0]["auth"].password) == ("cid", "csecret-1")


async def test_oauth2_client_auth_in_body_and_extra_params(server: HTTPServer, make: Make) -> None:
    seen = token_server(server, ["tok-B"])
    server.expect_request("/v1/charges").respond_with_json([])
    auth = {**OAUTH, "client_auth": "body", "params": {"audience": "https://api"}}
    auth.pop("scope")
    await make(auth, secrets={"CS": "csecret-2"}).run("list-charges")
    assert seen[0]["form"] == {"grant_type": "client_credentials", "audience": "https://api",
                               "client_id": "cid", "client_secret": "csecret-2"}
    assert seen[0]["auth"] is None


async def test_oauth2_expired_token_is_refetched(server: HTTPServer, make: Make) -> None:
    seen = token_server(server, ["t1", "t2"], expires_in=0)
    server.expect_request("/v1/charges").respond_with_json([])
    conn = make(OAUTH, secrets={"CS": "csecret-3"})
    await conn.run("list-charges")
    await conn.run("list-charges")
    assert len(seen) == 2
    assert [r.headers["Authorization"] for r, _ in server.log if r.path == "/v1/charges"] == \
        ["Bearer t1", "Bearer t2"]


async def test_oauth2_refreshes_once_on_401(server: HTTPServer, make: Make) -> None:
    seen = token_server(server, ["revoked", "fresh"])

    def api(request: Request) -> Response:
        if request.headers.get("Authorization") == "Bearer fresh":
            return Response('{"ok": true}', content_type="application/json")
        return Response('{"error": "invalid_token"}', 401, content_type="application/json")

    server.expect_request("/v1/charges").respond_with_handler(api)
    conn = make(OAUTH, secrets={"CS": "csecret-4"})
    assert await conn.run("list-charges") == {"ok": True}
    assert len(seen) == 2


async def test_oauth2_401_twice_is_an_error_without_secrets(
    server: HTTPServer, make: Make
) -> None:
    seen = token_server(server, ["tokX1", "tokX2"])
    server.expect_request("/v1/charges").respond_with_data("nope", 401)
    conn = make(OAUTH, secrets={"CS": "csecret-5"})
    with pytest.raises(ConnectorError) as err:
        await conn.run("list-charges", retries=3)
    assert len(seen) == 2  # one refresh, not one per retry
    msg = str(err.value)
    assert "HTTP 401" in msg and "credentials rejected" in msg and "auth" in msg
    for secret in ("tokX1", "tokX2", "csecret-5"):
        assert secret not in msg


async def test_oauth2_token_endpoint_refusal(server: HTTPServer, make: Make) -> None:
    server.expect_request("/oauth/token").respond_with_json(
        {"error": "invalid_client", "echo": "csecret-6"}, 401)
    with pytest.raises(ConnectorError) as err:
        await make(OAUTH, secrets={"CS": "csecret-6"}).run("list-charges")
    msg = str(err.value)
    assert "OAuth2 token request to /oauth/token was refused: HTTP 401" in msg
    assert "invalid_client" in msg and "csecret-6" not in msg and "***" in msg
    assert err.value.event == "list-charges" and err.value.status == 401
