"""The action (HTTP app) connector against a real local HTTP server (pytest-httpserver)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork.connectors.action import HttpActionConnector
from ductwork.connectors.base import (
    ResourceSpec,
    SecretSet,
    build_connector,
    resolve_refs,
    validate_resource,
)
from ductwork.errors import ConnectorError
from tests.support.http import local_http_server
from tests.support.ports import free_port

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


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with local_http_server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server: HTTPServer) -> Iterator[None]:
    yield
    server.clear()


Make = Callable[..., HttpActionConnector]


@pytest.fixture
async def make(server: HTTPServer) -> AsyncIterator[Make]:
    """Build a connector through the provider registry, like the engine does."""
    built: list[HttpActionConnector] = []

    def factory(
        auth: dict[str, Any] | None = None, *, events: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None, fast_sleep: bool = True,
        **config: Any,
    ) -> HttpActionConnector:
        raw: dict[str, Any] = {"base_url": server.url_for(""), **config}
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
            conn.sleep = _recorder(conn)
        built.append(conn)
        return conn

    yield factory
    for conn in built:
        await conn.aclose()


def _recorder(conn: HttpActionConnector) -> Any:
    """Replace the backoff sleep: record the delays instead of waiting for them."""
    conn.delays = []  # type: ignore[attr-defined]

    async def sleep(delay: float) -> None:
        conn.delays.append(delay)  # type: ignore[attr-defined]

    return sleep


def last(server: HTTPServer) -> Request:
    assert server.log, "the server received no request"
    return server.log[-1][0]


# -- input routing ---------------------------------------------------------------------------

async def test_flat_input_routes_by_definition_and_method(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges", method="POST").respond_with_json({"id": "ch_1"}, 201)
    conn = make()
    out = await conn.run("create-charge", {"amount": 500, "currency": "eur",
                                           "idempotency-key": "k1", "description": "tea"})
    assert out == {"id": "ch_1"}
    req = last(server)
    assert req.get_json() == {"amount": 500, "currency": "eur", "description": "tea"}
    assert req.headers["Idempotency-Key"] == "k1"
    assert req.headers["Content-Type"] == "application/json"
    assert not req.args


async def test_flat_input_path_param_query_and_unknown_to_query_on_get(
    server: HTTPServer, make: Make
) -> None:
    server.expect_request("/v1/charges/ch_9", method="GET").respond_with_json({"id": "ch_9"})
    out = await make().run("get-charge", {"id": "ch_9", "expand": ["customer", "invoice"],
                                          "limit": 3, "live": True, "skip": None})
    assert out == {"id": "ch_9"}
    req = last(server)
    assert req.args.getlist("expand") == ["customer", "invoice"]
    assert req.args["limit"] == "3" and req.args["live"] == "true" and "skip" not in req.args
    assert req.get_data() == b""


async def test_unknown_flat_keys_go_to_query_on_delete(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges/ch_1", method="DELETE").respond_with_data("", 204)
    assert await make().run("delete-charge", {"id": "ch_1", "reason": "dup"}) is None
    assert last(server).args["reason"] == "dup"


async def test_prefixes_force_the_place(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges/ch_2", method="POST").respond_with_json({"ok": True})
    out = await make().run("update-charge", {
        "params:id": "ch_2", "query:expand": "customer", "headers:X-Trace": "t-1",
        "body:dry_run": False, "metadata": {"a": 1}, "dry_run": True,
    })
    assert out == {"ok": True}
    req = last(server)
    assert req.args.to_dict() == {"expand": "customer", "dry_run": "true"}
    assert req.headers["X-Trace"] == "t-1"
    assert req.get_json() == {"dry_run": False, "metadata": {"a": 1}}


async def test_structured_form(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges/ch_3", method="POST").respond_with_json({"ok": 1})
    await make().run("update-charge", {
        "params": {"id": "ch_3"}, "query": {"expand": ["a", "b"]},
        "headers": {"X-Request-Id": "r1"}, "body": {"metadata": {"k": "v"}, "amount": 2},
    })
    req = last(server)
    assert req.args.getlist("expand") == ["a", "b"]
    assert req.headers["X-Request-Id"] == "r1"
    assert req.get_json() == {"metadata": {"k": "v"}, "amount": 2}


async def test_seed_shape_body_only(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/refunds", method="POST").respond_with_json({"id": "re_1"})
    assert await make().run("refund-charge", {"body": {"chargeId": "ch_1"}}) == {"id": "re_1"}
    assert last(server).get_json() == {"chargeId": "ch_1"}


async def test_structured_body_may_be_a_list(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/refunds", method="POST").respond_with_json([])
    await make().run("refund-charge", {"body": [{"chargeId": "a"}, {"chargeId": "b"}]})
    assert last(server).get_json() == [{"chargeId": "a"}, {"chargeId": "b"}]


async def test_declared_field_named_query_is_flat_not_structured(
    server: HTTPServer, make: Make
) -> None:
    server.expect_request("/search", method="GET").respond_with_json({"hits": []})
    await make().run("search", {"query": "shoes"})
    assert last(server).args["query"] == "shoes"


async def test_form_body(server: HTTPServer, make: Make) -> None:
    server.expect_request("/login", method="POST").respond_with_json({"session": "s"})
    await make().run("login-form", {"user": "ann lee", "remember": True, "tags": ["a", "b"]})
    req = last(server)
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert req.form["user"] == "ann lee" and req.form["remember"] == "true"
    assert req.form.getlist("tags") == ["a", "b"]


async def test_form_body_rejects_nested_objects(server: HTTPServer, make: Make) -> None:
    with pytest.raises(ConnectorError, match=r"login-form.*'address' must be a string"):
        await make().run("login-form", {"address": {"city": "Oslo"}})
    assert not server.log


async def test_json_body_encodes_dates_decimals(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges", method="POST").respond_with_json({})
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await make().run("create-charge", {"amount": Decimal("12"), "price": Decimal("1.5"),
                                       "at": when, "day": date(2026, 1, 2)})
    assert last(server).get_json() == {"amount": 12, "price": 1.5,
                                       "at": "2026-01-02T03:04:05+00:00", "day": "2026-01-02"}


async def test_path_params_are_escaped_into_one_segment(server: HTTPServer, make: Make) -> None:
    # werkzeug decodes %2F when matching, so check the raw request line instead
    server.expect_request("/orgs/a b/repos/../etc", method="GET").respond_with_json({"ok": 1})
    out = await make().run("nested", {"org": "a b", "repo": "../etc"})
    assert out == {"ok": 1}
    raw = last(server).environ.get("REQUEST_URI") or last(server).environ.get("RAW_URI")
    assert raw == "/orgs/a%20b/repos/..%2Fetc"


async def test_missing_path_param_names_it(server: HTTPServer, make: Make) -> None:
    with pytest.raises(ConnectorError) as err:
        await make().run("nested", {"org": "acme"})
    msg = str(err.value)
    assert "missing path parameter 'repo'" in msg
    assert "action/stripe/nested (env dev)" in msg
    assert err.value.resource == "stripe" and err.value.event == "nested"
    assert err.value.env == "dev"
    assert not server.log


async def test_unknown_path_param_rejected(make: Make) -> None:
    with pytest.raises(ConnectorError, match="path parameter 'nope' is not in /v1/charges"):
        await make().run("create-charge", {"params:nope": 1})


@pytest.mark.parametrize("bad", [[1, 2], "amount=5", 42])
async def test_input_must_be_an_object(make: Make, bad: Any) -> None:
    with pytest.raises(ConnectorError, match=r"create-charge.*input must be an object"):
        await make().run("create-charge", bad)


async def test_unknown_event_lists_known_ones(make: Make) -> None:
    with pytest.raises(ConnectorError) as err:
        await make().run("create-chrage", {})
    assert "unknown event 'create-chrage'" in str(err.value)
    assert "create-charge" in str(err.value) and "(env dev)" in str(err.value)


async def test_invalid_event_definition_is_a_clear_error(make: Make) -> None:
    conn = make(events={"bad": {"method": "FETCH", "path": "/x"}})
    with pytest.raises(ConnectorError, match=r"apps.stripe.events.bad is invalid: method 'FETCH'"):
        await conn.run("bad")


# -- responses ---------------------------------------------------------------------------------

async def test_text_empty_and_binary_responses(server: HTTPServer, make: Make) -> None:
    conn = make()
    server.expect_oneshot_request("/v1/charges").respond_with_data(
        "hello", content_type="text/plain")
    assert await conn.run("list-charges") == "hello"
    server.expect_oneshot_request("/v1/charges").respond_with_data(b"", 204)
    assert await conn.run("list-charges") is None
    server.expect_oneshot_request("/v1/charges").respond_with_data(
        b"\x89PNG", content_type="image/png")
    assert await conn.run("list-charges") == b"\x89PNG"
    server.expect_oneshot_request("/v1/charges").respond_with_data(
        '{"a": 1}', content_type="application/problem+json")
    assert await conn.run("list-charges") == {"a": 1}


async def test_base_url_path_prefix_and_env_headers(server: HTTPServer, make: Make) -> None:
    server.expect_request("/api/v2/v1/charges").respond_with_json([1])
    conn = make(base_url=server.url_for("/api/v2"), headers={"Stripe-Version": "2024-06-20"})
    assert await conn.run("list-charges") == [1]
    assert last(server).headers["Stripe-Version"] == "2024-06-20"


async def test_one_client_reused_and_closed(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges").respond_with_json([])
    conn = make()
    await conn.run("list-charges")
    client = conn.client
    await conn.run("list-charges")
    assert conn.client is client
    await conn.aclose()
    assert client.is_closed
    await conn.run("list-charges")  # a call after aclose opens a fresh client
    assert conn.client is not client


# -- auth --------------------------------------------------------------------------------------

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


def _token_server(server: HTTPServer, tokens: list[str], expires_in: int = 3600) -> list[Any]:
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


OAUTH = {"type": "oauth2_client_credentials", "token_url": "/oauth/token",
         "client_id": "cid", "client_secret": "${secrets.CS}", "scope": ["charges", "refunds"]}


async def test_oauth2_token_fetched_once_and_cached(server: HTTPServer, make: Make) -> None:
    seen = _token_server(server, ["tok-A"])
    server.expect_request("/v1/charges", headers={"Authorization": "Bearer tok-A"}) \
        .respond_with_json([])
    conn = make(OAUTH, secrets={"CS": "csecret-1"})
    assert await conn.run("list-charges") == []
    assert await conn.run("list-charges") == []
    assert len(seen) == 1
    assert seen[0]["form"] == {"grant_type": "client_credentials", "scope": "charges refunds"}
    assert (seen[0]["auth"].username, seen[0]["auth"].password) == ("cid", "csecret-1")


async def test_oauth2_client_auth_in_body_and_extra_params(server: HTTPServer, make: Make) -> None:
    seen = _token_server(server, ["tok-B"])
    server.expect_request("/v1/charges").respond_with_json([])
    auth = {**OAUTH, "client_auth": "body", "params": {"audience": "https://api"}}
    auth.pop("scope")
    await make(auth, secrets={"CS": "csecret-2"}).run("list-charges")
    assert seen[0]["form"] == {"grant_type": "client_credentials", "audience": "https://api",
                               "client_id": "cid", "client_secret": "csecret-2"}
    assert seen[0]["auth"] is None


async def test_oauth2_expired_token_is_refetched(server: HTTPServer, make: Make) -> None:
    seen = _token_server(server, ["t1", "t2"], expires_in=0)
    server.expect_request("/v1/charges").respond_with_json([])
    conn = make(OAUTH, secrets={"CS": "csecret-3"})
    await conn.run("list-charges")
    await conn.run("list-charges")
    assert len(seen) == 2
    assert [r.headers["Authorization"] for r, _ in server.log if r.path == "/v1/charges"] == \
        ["Bearer t1", "Bearer t2"]


async def test_oauth2_refreshes_once_on_401(server: HTTPServer, make: Make) -> None:
    seen = _token_server(server, ["revoked", "fresh"])

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
    seen = _token_server(server, ["tokX1", "tokX2"])
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


# -- retries, timeouts, errors -----------------------------------------------------------------

def _sequence(server: HTTPServer, path: str, responses: list[Response]) -> list[float]:
    """Answer `path` with `responses` in turn (the last one repeats); returns arrival times."""
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(time.monotonic())
        return responses[min(len(times), len(responses)) - 1]

    server.expect_request(path).respond_with_handler(handler)
    return times


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, content_type="application/json")


async def test_retries_5xx_with_exponential_backoff(server: HTTPServer, make: Make) -> None:
    seen = _sequence(server, "/v1/charges", [_json(503, {}), _json(502, {}), _json(200, [7])])
    conn = make(backoff="100ms")
    assert await conn.run("list-charges", retries=3) == [7]
    assert len(seen) == 3
    assert conn.delays == [0.1, 0.2]  # type: ignore[attr-defined]


async def test_429_honours_retry_after_and_caps_it(server: HTTPServer, make: Make) -> None:
    _sequence(server, "/v1/charges", [_json(429, {}, {"Retry-After": "7"}),
                                      _json(429, {}, {"Retry-After": "3600"}), _json(200, {})])
    conn = make(max_delay="10s")
    assert await conn.run("list-charges", retries=2) == {}
    assert conn.delays == [7.0, 10.0]  # type: ignore[attr-defined]


async def test_retry_after_http_date(server: HTTPServer, make: Make) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    _sequence(server, "/v1/charges", [_json(503, {}, {"Retry-After": when}), _json(200, {})])
    conn = make()
    await conn.run("list-charges", retries=1)
    (delay,) = conn.delays  # type: ignore[attr-defined]
    assert 0 < delay <= 5


async def test_real_sleep_with_short_retry_after(server: HTTPServer, make: Make) -> None:
    seen = _sequence(server, "/v1/charges", [_json(429, {}, {"Retry-After": "0.05"}),
                                             _json(200, {"ok": 1})])
    assert await make(fast_sleep=False).run("list-charges", retries=1) == {"ok": 1}
    assert len(seen) == 2


async def test_no_retry_on_400(server: HTTPServer, make: Make) -> None:
    seen = _sequence(server, "/v1/charges", [_json(400, {"error": {"message": "amount < 50"}})])
    with pytest.raises(ConnectorError) as err:
        await make().run("create-charge", {"amount": 1}, retries=5)
    assert len(seen) == 1
    assert err.value.status == 400 and err.value.body == {"error": {"message": "amount < 50"}}
    assert "HTTP 400 from POST /v1/charges" in str(err.value) and "amount < 50" in str(err.value)
    assert not err.value.retryable


async def test_retries_exhausted_on_500(server: HTTPServer, make: Make) -> None:
    seen = _sequence(server, "/v1/charges", [_json(500, {"error": "boom" * 100})])
    with pytest.raises(ConnectorError) as err:
        await make().run("list-charges", retries=2)
    assert len(seen) == 3
    msg = str(err.value)
    assert "HTTP 500 from GET /v1/charges after 3 attempts" in msg and msg.endswith("...")
    assert len(msg) < 400 and err.value.retryable


async def test_retries_default_from_config_then_event(server: HTTPServer, make: Make) -> None:
    seen = _sequence(server, "/v1/charges", [_json(503, {})])
    events = {**EVENTS, "once": {"path": "/v1/charges", "retries": 0}}
    conn = make(retries=2, events=events)
    with pytest.raises(ConnectorError):
        await conn.run("list-charges")
    assert len(seen) == 3
    with pytest.raises(ConnectorError):
        await conn.run("once")
    assert len(seen) == 4


async def test_default_is_no_retry(server: HTTPServer, make: Make) -> None:
    seen = _sequence(server, "/v1/charges", [_json(503, {})])
    with pytest.raises(ConnectorError):
        await make().run("list-charges")
    assert len(seen) == 1


@pytest.fixture
def slow_charges(server: HTTPServer) -> Iterator[list[int]]:
    """/v1/charges answers only when the test is over; returns the list of calls received.

    The handler is released at teardown and its answer awaited, so a late log entry never
    lands in the next test's `server.log`.
    """
    release = threading.Event()
    calls: list[int] = []

    def slow(request: Request) -> Response:
        calls.append(1)
        release.wait(10)
        return _json(200, {})

    server.expect_request("/v1/charges").respond_with_handler(slow)
    yield calls
    release.set()
    deadline = time.monotonic() + 10
    while len(server.log) < len(calls) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("timeout", [0.1, "100ms", timedelta(milliseconds=100)])
async def test_timeout_is_an_error_and_not_retried(
    slow_charges: list[int], make: Make, timeout: Any
) -> None:
    # a bare number is seconds here: the engine converts ctx.action.run(timeout=) to seconds
    conn = make()
    with pytest.raises(ConnectorError) as err:
        await conn.run("list-charges", timeout=timeout, retries=2)
    assert "GET /v1/charges timed out after 0.1s (ReadTimeout)" in str(err.value)
    assert "(env dev)" in str(err.value) and err.value.retryable
    assert conn.delays == []  # type: ignore[attr-defined]  # no backoff: not retried
    assert len(slow_charges) <= 1


async def test_bad_call_timeout(make: Make) -> None:
    with pytest.raises(ConnectorError, match="bad timeout: 'soon' is not a duration"):
        await make().run("list-charges", timeout="soon")


async def test_timeout_from_config(slow_charges: list[int], make: Make) -> None:
    with pytest.raises(ConnectorError, match=r"timed out after 0\.05s"):
        await make(timeout="50ms").run("list-charges")


async def test_connection_refused_is_retried_then_named(make: Make) -> None:
    port = free_port()
    conn = make(base_url=f"http://user:pw-secret@127.0.0.1:{port}/api", backoff="10ms")
    with pytest.raises(ConnectorError) as err:
        await conn.run("create-charge", {"amount": 1}, retries=2)
    msg = str(err.value)
    assert msg.startswith("action/stripe/create-charge (env dev): cannot reach ")
    assert f"http://127.0.0.1:{port}/api for POST /v1/charges" in msg
    assert "after 3 attempts" in msg and "pw-secret" not in msg
    assert conn.delays == [0.01, 0.02]  # type: ignore[attr-defined]


async def test_bad_credentials_message_has_status_body_and_no_token(
    server: HTTPServer, make: Make
) -> None:
    def echo(request: Request) -> Response:
        return _json(401, {"error": "bad key", "got": request.headers.get("Authorization")})

    server.expect_request("/v1/charges").respond_with_handler(echo)
    conn = make({"type": "bearer", "token": "sk_live_SECRET"})
    with pytest.raises(ConnectorError) as err:
        await conn.run("create-charge", {"amount": 5})
    msg = str(err.value)
    assert "HTTP 401 from POST /v1/charges" in msg and "bad key" in msg
    assert "credentials rejected: check apps.stripe.envs.dev.auth" in msg
    assert "sk_live_SECRET" not in msg and "sk_live_SECRET" not in json.dumps(err.value.body)
    assert err.value.body == {"error": "bad key", "got": "Bearer ***"}


async def test_successful_body_is_redacted_of_secrets(server: HTTPServer, make: Make) -> None:
    server.expect_request("/v1/charges").respond_with_json({"echo": "x sk_tok_9 y"})
    out = await make({"type": "bearer", "token": "sk_tok_9"}).run("list-charges")
    assert out == {"echo": "x *** y"}


# -- config, registry, validate ----------------------------------------------------------------

def test_bad_config_fails_at_build() -> None:
    spec = ResourceSpec(kind="action", name="stripe", env="prd", product="shop",
                        config={"base_url": "ftp://x", "auth": {"type": "bearer", "token": "t"}})
    with pytest.raises(ConnectorError, match=r"action/stripe \(env prd\): bad config in "
                                             r"apps.stripe.envs.prd: base_url must be"):
        build_connector(spec)


def test_bad_auth_fails_at_build() -> None:
    spec = ResourceSpec(kind="action", name="stripe", env="dev", product="shop",
                        config={"base_url": "http://x", "auth": {"type": "bearer"}})
    with pytest.raises(ConnectorError, match="auth type bearer needs 'token'"):
        build_connector(spec)


def test_validate_accepts_a_good_block() -> None:
    block = {
        "envs": {
            "dev": {"base_url": "http://127.0.0.1:8080",
                    "auth": {"type": "bearer", "token": "${env.STRIPE_KEY}"}, "timeout": "10s",
                    "retries": 2},
            "prd": {"base_url": "${env.STRIPE_URL}", "auth": OAUTH},
        },
        "events": EVENTS,
    }
    for env in ("dev", "prd"):
        assert validate_resource("action", block, block["envs"][env]) == []


def test_validate_reports_located_problems() -> None:
    block: dict[str, Any] = {
        "envs": {
            "dev": {"base_url": "127.0.0.1", "auth": {"type": "bearer", "tokn": "x"},
                    "timeout": 30, "retries": -1, "colour": "red"},
            "prd": {"base_url": "https://api", "auth": {"type": "kerberos"}, "backoff": "soon"},
        },
        "events": {
            "a": {"method": "FETCH", "path": "/x"},
            "b": {"method": "GET"},
            "c": {"path": "/x/{id}", "params": ["idd"]},
            "d": {"path": "/x", "body_type": "xml"},
            "e": {"path": "/x", "bodyy": ["a"]},
            "f": {"path": "/x", "body": "amount"},
        },
    }
    dev = dict(validate_resource("action", block, block["envs"]["dev"]))
    assert dev[("envs", "dev", "colour")].startswith("unknown key 'colour'")
    assert "http:// or https://" in dev[("envs", "dev", "base_url")]
    assert dev[("envs", "dev", "auth", "token")] == "auth type bearer needs 'token'"
    assert "unknown auth key 'tokn'" in dev[("envs", "dev", "auth", "tokn")]
    assert "30 milliseconds" in dev[("envs", "dev", "timeout")]
    assert "retries" in dev[("envs", "dev", "retries")]
    assert "method 'FETCH'" in dev[("events", "a", "method")]
    assert "'path' is required" in dev[("events", "b")]
    assert "params lists 'idd'" in dev[("events", "c", "params")]
    assert "body_type 'xml'" in dev[("events", "d", "body_type")]
    assert dev[("events", "e", "bodyy")].endswith("did you mean 'body'?")
    assert "list of field names" in dev[("events", "f", "body")]
    assert dev[("envs", "dev", "auth", "tokn")].endswith("did you mean 'token'?")
    prd = dict(validate_resource("action", block, block["envs"]["prd"]))
    assert "kerberos" in prd[("envs", "prd", "auth", "type")]
    assert "not a duration" in prd[("envs", "prd", "backoff")]
    assert not any(p[0] == "events" for p in prd)  # event problems reported once, not per env


def test_provider_registered_as_default_for_action() -> None:
    spec = ResourceSpec(kind="action", name="x", env="dev", product="p",
                        config={"base_url": "http://127.0.0.1:1"})
    assert spec.provider == "http"
    assert isinstance(build_connector(spec), HttpActionConnector)


# -- end to end through the engine (the seed's charge + refund example) --------------------------

def _stripe_for(dw: Any, server: HTTPServer) -> HttpActionConnector:
    """The app connector as the engine would build it: refs resolved into dw's SecretSet."""
    raw = {"base_url": server.url_for(""), "auth": {"type": "bearer",
                                                    "token": "${secrets.STRIPE_KEY}"}}
    config = resolve_refs(raw, secrets=dw.secret_values, collect=dw.secrets)
    spec = ResourceSpec(kind="action", name="stripe", env="dev", product="shop", config=config,
                        definition={"envs": {"dev": raw}, "events": EVENTS}, secrets=dw.secrets)
    conn = build_connector(spec)
    assert isinstance(conn, HttpActionConnector)
    return conn


def _payment_workflow(dw: Any, ship_fails: bool) -> None:
    @dw.workflows.workflow(product="shop", tag="payment")
    async def payment(ctx: Any) -> Any:
        charge = await ctx.step(
            "charge-payment",
            lambda: ctx.action.run(app="stripe", event="create-charge",
                                   input={"body": {"amount": ctx.input.amount}}),
            lambda result: ctx.action.run(app="stripe", event="refund-charge",
                                          input={"body": {"chargeId": result["id"]}}),
        )

        def ship() -> dict[str, Any]:
            if ship_fails:
                raise RuntimeError("warehouse is closed")
            return {"shipped": True}

        await ctx.step("ship", ship)
        return {"charge": charge["id"]}


async def test_engine_charge_then_refund_on_rollback(server: HTTPServer, tmp_path: Any) -> None:
    from ductwork import Ductwork

    server.expect_request("/v1/charges", method="POST",
                          headers={"Authorization": "Bearer sk_test_e2e_key"}) \
        .respond_with_json({"id": "ch_e2e", "amount": 500}, 201)
    server.expect_request("/v1/refunds", method="POST").respond_with_json({"id": "re_e2e"})
    store = tmp_path / "runs.db"
    async with Ductwork(store=f"sqlite:///{store}",
                        secrets={"STRIPE_KEY": "sk_test_e2e_key"}) as dw:
        conn = _stripe_for(dw, server)
        dw.connectors.register("action", "stripe", conn)
        _payment_workflow(dw, ship_fails=True)
        result = await dw.workflows.execute(product="shop", env="dev", tag="payment",
                                            input={"amount": 500})
        await conn.aclose()
    assert result.status == "rolled_back", result.error
    assert result.failed_step == "ship" and "warehouse is closed" in (result.error or "")
    bodies = [(r.path, r.get_json()) for r, _ in server.log]
    assert bodies == [("/v1/charges", {"amount": 500}), ("/v1/refunds", {"chargeId": "ch_e2e"})]


async def test_engine_completed_run_returns_the_charge(server: HTTPServer, tmp_path: Any) -> None:
    from ductwork import Ductwork

    server.expect_request("/v1/charges", method="POST").respond_with_json({"id": "ch_ok"}, 201)
    async with Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}",
                        secrets={"STRIPE_KEY": "sk_test_e2e_key"}) as dw:
        conn = _stripe_for(dw, server)
        dw.connectors.register("action", "stripe", conn)
        _payment_workflow(dw, ship_fails=False)
        result = await dw.workflows.execute(product="shop", env="dev", tag="payment",
                                            input={"amount": 700})
        await conn.aclose()
    assert result.status == "completed", result.error
    assert result.output == {"charge": "ch_ok"}
    assert result.completed_steps == ["charge-payment", "ship"]


async def test_engine_bad_credentials_fail_the_run_without_leaking_the_key(
    server: HTTPServer, tmp_path: Any
) -> None:
    from ductwork import Ductwork

    def reject(request: Request) -> Response:
        echo = request.headers.get("Authorization")
        return _json(401, {"error": {"message": f"Invalid API Key provided: {echo}"}})

    server.expect_request("/v1/charges").respond_with_handler(reject)
    store = tmp_path / "runs.db"
    async with Ductwork(store=f"sqlite:///{store}",
                        secrets={"STRIPE_KEY": "sk_live_do_not_leak"}) as dw:
        conn = _stripe_for(dw, server)
        dw.connectors.register("action", "stripe", conn)
        _payment_workflow(dw, ship_fails=False)
        result = await dw.workflows.execute(product="shop", env="dev", tag="payment",
                                            input={"amount": 500})
        await conn.aclose()
    assert result.status == "failed" and result.failed_step == "charge-payment"
    error = result.error or ""
    assert "HTTP 401" in error and "stripe" in error and "create-charge" in error
    assert "Invalid API Key" in error and "sk_live_do_not_leak" not in error
    assert store.stat().st_size > 0
    for path in tmp_path.iterdir():  # the run store and its WAL/SHM files
        assert b"sk_live_do_not_leak" not in path.read_bytes(), path


PRODUCT = """
product: shop
envs: [dev, prd]
apps:
  stripe:
    envs:
      dev:
        base_url: "${env.STRIPE_URL}"
        auth: {type: bearer, token: "${secrets.STRIPE_KEY}"}
        retries: 1
        backoff: 10ms
      prd: {base_url: "https://api.stripe.com", auth: {type: bearer, token: "${env.NOPE}"}}
    events:
      create-charge: {method: POST, path: /v1/charges, body: [amount, currency]}
      refund-charge: {method: POST, path: /v1/refunds, body: [charge]}
      ship: {method: POST, path: "/v1/ship/{order}"}
"""

YAML_WORKFLOW = """
workflow: charge-payment
steps:
  - tag: charge-payment
    action.run:
      app: stripe
      event: create-charge
      input: {amount: "${ctx.input.amount}", currency: usd}
    rollback:
      action.run: {app: stripe, event: refund-charge, input: {body: {charge: "${result.id}"}}}
  - tag: ship
    action.run: {app: stripe, event: ship, input: {order: "${ctx.input.order}", fast: true}}
output: {chargeId: "${steps.charge-payment.id}"}
"""


def _product_folder(tmp_path: Any) -> Any:
    folder = tmp_path / "specs" / "shop"
    (folder / "workflows").mkdir(parents=True)
    (folder / "product.yaml").write_text(PRODUCT)
    (folder / "workflows" / "charge-payment.yaml").write_text(YAML_WORKFLOW)
    return tmp_path / "specs"


@pytest.mark.parametrize("ship_status", [200, 503])
async def test_yaml_workflow_from_product_file(
    server: HTTPServer, tmp_path: Any, ship_status: int
) -> None:
    from ductwork import Ductwork

    server.expect_request("/v1/charges", method="POST",
                          headers={"Authorization": "Bearer sk_yaml_key"}) \
        .respond_with_json({"id": "ch_y"}, 201)
    server.expect_request("/v1/refunds", method="POST").respond_with_json({"id": "re_y"})
    server.expect_request("/v1/ship/o-1", method="POST") \
        .respond_with_json({"shipped": ship_status == 200}, ship_status)
    store = tmp_path / "runs.db"
    async with Ductwork(specs=_product_folder(tmp_path), store=f"sqlite:///{store}",
                        secrets={"STRIPE_KEY": "sk_yaml_key"},
                        environ={"STRIPE_URL": server.url_for("")}) as dw:
        result = await dw.workflows.execute(product="shop", env="dev", tag="charge-payment",
                                            input={"amount": 900, "order": "o-1"})
    calls = [(r.path, r.get_json()) for r, _ in server.log]
    if ship_status == 200:
        assert result.status == "completed", result.error
        assert result.output == {"chargeId": "ch_y"}
        assert calls == [("/v1/charges", {"amount": 900, "currency": "usd"}),
                         ("/v1/ship/o-1", {"fast": True})]
    else:
        assert result.status == "rolled_back", result.error
        assert result.failed_step == "ship" and "HTTP 503" in (result.error or "")
        assert calls == [("/v1/charges", {"amount": 900, "currency": "usd"}),
                         ("/v1/ship/o-1", {"fast": True}), ("/v1/ship/o-1", {"fast": True}),
                         ("/v1/refunds", {"charge": "ch_y"})]
    for path in tmp_path.iterdir():
        if path.is_file():
            assert b"sk_yaml_key" not in path.read_bytes(), path


async def test_python_handler_with_registry_built_app(server: HTTPServer, tmp_path: Any) -> None:
    from ductwork import Ductwork

    server.expect_request("/v1/charges/ch_p", method="GET").respond_with_json({"id": "ch_p"})
    async with Ductwork(specs=_product_folder(tmp_path), store="sqlite://:memory:",
                        secrets={"STRIPE_KEY": "sk_py_key"},
                        environ={"STRIPE_URL": server.url_for("")}) as dw:
        @dw.workflows.workflow(product="shop", tag="lookup")
        async def lookup(ctx: Any) -> Any:
            return await ctx.step("get", lambda: ctx.action.run(
                app="stripe", event="refund-charge", input={"params:id": "x"}))

        result = await dw.workflows.execute(product="shop", env="dev", tag="lookup", input={})
        assert result.status == "failed"
        assert "action/stripe/refund-charge (env dev): wrong input: path parameter 'id'" in (
            result.error or "")
        conn = dw.connectors.get("action", "stripe", "shop", "dev")
        assert isinstance(conn, HttpActionConnector)
        assert conn is dw.connectors.get("action", "stripe", "shop", "dev")  # built once
        client = conn.client
    assert client.is_closed  # dw.aclose() closed the app's client
