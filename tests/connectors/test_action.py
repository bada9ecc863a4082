"""The action (HTTP app) connector: input routing, responses, config and `ductwork validate`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from ductwork.connectors.action import HttpActionConnector
from ductwork.connectors.base import ResourceSpec, build_connector, validate_resource
from ductwork.errors import ConnectorError
from tests.support.action import EVENTS, OAUTH, Make, last
from tests.support.action import clean_server as clean_server  # autouse fixture
from tests.support.action import make as make  # fixture
from tests.support.action import server as server  # module fixture

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
