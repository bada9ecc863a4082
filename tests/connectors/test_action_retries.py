"""Action failures against a real HTTP server: retries with backoff, timeouts, error messages."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork.errors import ConnectorError
from tests.support.action import EVENTS, Make, reply
from tests.support.action import clean_server as clean_server  # autouse fixture
from tests.support.action import make as make  # fixture
from tests.support.action import server as server  # module fixture
from tests.support.ports import free_port


def answer(server: HTTPServer, path: str, responses: list[Response]) -> list[float]:
    """Answer `path` with `responses` in turn (the last one repeats); returns arrival times."""
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(time.monotonic())
        return responses[min(len(times), len(responses)) - 1]

    server.expect_request(path).respond_with_handler(handler)
    return times


async def test_retries_5xx_with_exponential_backoff(server: HTTPServer, make: Make) -> None:
    seen = answer(server, "/v1/charges", [reply(503, {}), reply(502, {}), reply(200, [7])])
    conn = make(backoff="100ms")
    assert await conn.run("list-charges", retries=3) == [7]
    assert len(seen) == 3
    assert make.delays == [0.1, 0.2]


async def test_429_honours_retry_after_and_caps_it(server: HTTPServer, make: Make) -> None:
    answer(server, "/v1/charges", [reply(429, {}, {"Retry-After": "7"}),
                                   reply(429, {}, {"Retry-After": "3600"}), reply(200, {})])
    conn = make(max_delay="10s")
    assert await conn.run("list-charges", retries=2) == {}
    assert make.delays == [7.0, 10.0]


async def test_retry_after_http_date(server: HTTPServer, make: Make) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    answer(server, "/v1/charges", [reply(503, {}, {"Retry-After": when}), reply(200, {})])
    conn = make()
    await conn.run("list-charges", retries=1)
    (delay,) = make.delays
    assert 0 < delay <= 5


async def test_real_sleep_with_short_retry_after(server: HTTPServer, make: Make) -> None:
    seen = answer(server, "/v1/charges", [reply(429, {}, {"Retry-After": "0.05"}),
                                          reply(200, {"ok": 1})])
    assert await make(fast_sleep=False).run("list-charges", retries=1) == {"ok": 1}
    assert len(seen) == 2


async def test_no_retry_on_400(server: HTTPServer, make: Make) -> None:
    seen = answer(server, "/v1/charges", [reply(400, {"error": {"message": "amount < 50"}})])
    with pytest.raises(ConnectorError) as err:
        await make().run("create-charge", {"amount": 1}, retries=5)
    assert len(seen) == 1
    assert err.value.status == 400 and err.value.body == {"error": {"message": "amount < 50"}}
    assert "HTTP 400 from POST /v1/charges" in str(err.value) and "amount < 50" in str(err.value)
    assert not err.value.retryable


async def test_retries_exhausted_on_500(server: HTTPServer, make: Make) -> None:
    seen = answer(server, "/v1/charges", [reply(500, {"error": "boom" * 100})])
    with pytest.raises(ConnectorError) as err:
        await make().run("list-charges", retries=2)
    assert len(seen) == 3
    msg = str(err.value)
    assert "HTTP 500 from GET /v1/charges after 3 attempts" in msg and msg.endswith("...")
    assert len(msg) < 400 and err.value.retryable


async def test_retries_default_from_config_then_event(server: HTTPServer, make: Make) -> None:
    seen = answer(server, "/v1/charges", [reply(503, {})])
    events = {**EVENTS, "once": {"path": "/v1/charges", "retries": 0}}
    conn = make(retries=2, events=events)
    with pytest.raises(ConnectorError):
        await conn.run("list-charges")
    assert len(seen) == 3
    with pytest.raises(ConnectorError):
        await conn.run("once")
    assert len(seen) == 4


async def test_default_is_no_retry(server: HTTPServer, make: Make) -> None:
    seen = answer(server, "/v1/charges", [reply(503, {})])
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
        return reply(200, {})

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
    assert make.delays == []  # no backoff: not retried
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
    assert make.delays == [0.01, 0.02]


async def test_bad_credentials_message_has_status_body_and_no_token(
    server: HTTPServer, make: Make
) -> None:
    def echo(request: Request) -> Response:
        return reply(401, {"error": "bad key", "got": request.headers.get("Authorization")})

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
