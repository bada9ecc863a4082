"""Webhooks: a signed POST starts the declared workflow once per idempotency key; a bad
signature is 401 and starts nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ductwork.server.hooks import signature
from tests.server.conftest import client
from tests.server.test_metrics import samples, value
from tests.support.apiserver import ThreadedServer

KEY = "hook-key-5d1f0c"
PRODUCT = """\
product: signup
envs: [dev]
webhooks:
  welcome:
    env: dev
    secret: "${secrets.WELCOME_HOOK_KEY}"
    idempotency_field: user.email
  audit:
    env: dev
    secret: "${secrets.AUDIT_HOOK_KEY}"
    signature_header: X-Hub-Signature-256
"""
WELCOME = """\
workflow: welcome
input:
  type: object
  required: [user]
  properties:
    user: {type: object}
    via: {type: string, default: webhook}   # filled in: the sender does not send it
steps:
  - set: {greeted: "${ctx.input.user.email}"}
output: {greeted: "${state.greeted}", via: "${ctx.input.via}"}
"""
AUDIT = """\
workflow: audit
steps:
  - log: {message: audit event}
output: {seen: true}
"""


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    root = tmp_path / "specs"
    (root / "signup" / "workflows").mkdir(parents=True)
    (root / "signup" / "product.yaml").write_text(PRODUCT)
    (root / "signup" / "workflows" / "welcome.yaml").write_text(WELCOME)
    (root / "signup" / "workflows" / "audit.yaml").write_text(AUDIT)
    return root


@pytest.fixture
def hooks(serve: Any, specs: Path, tokens: dict[str, str]) -> ThreadedServer:
    srv: ThreadedServer = serve(specs=str(specs), secrets={"WELCOME_HOOK_KEY": KEY})
    return srv


def post(srv: ThreadedServer, path: str, payload: Any, *, key: str = KEY,
         header: str = "X-Ductwork-Signature", sign: bool = True,
         **headers: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    if sign:
        headers[header] = signature(key, body)
    with client(srv) as c:  # no API token: the signature is the credential
        return c.post(path, content=body, headers={"content-type": "application/json",
                                                   **headers})


def runs(srv: ThreadedServer, token: str) -> list[dict[str, Any]]:
    with client(srv, token) as c:
        return list(c.get("/api/runs", params={"product": "signup"}).json()["runs"])


def test_signed_delivery_starts_the_run_once_per_key(hooks: ThreadedServer,
                                                     tokens: dict[str, str]) -> None:
    payload = {"user": {"email": "ann@example.com"}}
    first = post(hooks, "/hooks/signup/welcome", payload)
    assert first.status_code in (200, 202), first.text
    wid = first.json()["workflow_id"]
    assert wid == "signup:welcome:ann@example.com"
    with client(hooks, tokens["read"]) as c:
        res = c.get(f"/api/runs/{wid}/result", params={"timeout": "30s"}).json()
    assert res["status"] == "completed"
    assert res["output"] == {"greeted": "ann@example.com", "via": "webhook"}
    # The sender retries the same event: the same run answers, nothing starts again.
    again = post(hooks, "/hooks/signup/welcome", payload)
    assert again.status_code == 200
    assert again.json() == {"workflow_id": wid, "status": "completed"}
    assert [r["workflow_id"] for r in runs(hooks, tokens["read"])] == [wid]


@pytest.mark.parametrize("case", ["missing", "wrong key", "tampered"])
def test_a_bad_signature_is_401_and_starts_nothing(hooks: ThreadedServer,
                                                   tokens: dict[str, str], case: str) -> None:
    payload = {"user": {"email": "eve@example.com"}}
    if case == "missing":
        r = post(hooks, "/hooks/signup/welcome", payload, sign=False)
    elif case == "wrong key":
        r = post(hooks, "/hooks/signup/welcome", payload, key="guess")
    else:
        body = json.dumps(payload).encode()
        with client(hooks) as c:
            r = c.post("/hooks/signup/welcome", content=body.replace(b"eve", b"mal"),
                       headers={"X-Ductwork-Signature": signature(KEY, body)})
    assert r.status_code == 401 and "X-Ductwork-Signature" in r.json()["detail"]
    assert runs(hooks, tokens["read"]) == []
    with client(hooks, tokens["read"]) as c:
        assert value(samples(c.get("/metrics").text), "ductwork_webhooks_total",
                     product="signup", workflow="welcome", outcome="bad_signature") == 1


def test_idempotency_by_header_and_a_custom_signature_header(
        serve: Any, specs: Path, tokens: dict[str, str]) -> None:
    srv = serve(specs=str(specs), secrets={"WELCOME_HOOK_KEY": KEY, "AUDIT_HOOK_KEY": "ak"})
    sent = [post(srv, "/hooks/signup/audit", {"n": i}, key="ak",
                 header="X-Hub-Signature-256", **{"Idempotency-Key": "evt-1"})
            for i in range(2)]
    assert sent[0].json()["workflow_id"] == sent[1].json()["workflow_id"] == \
        "signup:audit:evt-1"
    other = post(srv, "/hooks/signup/audit", {"n": 3}, key="ak", header="X-Hub-Signature-256")
    assert other.status_code in (200, 202)  # no key given: a run of its own
    assert len(runs(srv, tokens["read"])) == 2


def test_refusals(hooks: ThreadedServer, tokens: dict[str, str]) -> None:
    r = post(hooks, "/hooks/signup/nope", {})
    assert r.status_code == 404 and "no webhook for signup/nope" in r.json()["detail"]
    r = post(hooks, "/hooks/signup/welcome", {"user": {"name": "no email"}})
    assert r.status_code == 400 and "no 'user.email'" in r.json()["detail"]
    with client(hooks) as c:
        r = c.post("/hooks/signup/welcome", content=b"user=ann",
                   headers={"X-Ductwork-Signature": signature(KEY, b"user=ann")})
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    # The audit hook's secret is not set on this server: refused, and said in the log.
    r = post(hooks, "/hooks/signup/audit", {}, header="X-Hub-Signature-256")
    assert r.status_code == 503 and "not set on this server" in r.json()["detail"]
    assert runs(hooks, tokens["read"]) == []
    with client(hooks, tokens["read"]) as c:
        text = c.get("/metrics").text
    m = samples(text)
    assert value(m, "ductwork_webhooks_total", product="signup", workflow="welcome",
                 outcome="rejected") == 2
    assert value(m, "ductwork_webhooks_total", product="signup", workflow="welcome",
                 outcome="bad_signature") == 0


STAMPED = """\
product: signup
envs: [dev]
webhooks:
  audit:
    env: dev
    secret: "${secrets.AUDIT_HOOK_KEY}"
    timestamp_header: X-Hook-Timestamp
    tolerance: 2m
"""


def post_stamped(srv: ThreadedServer, payload: Any, stamp: str | None, *,
                 signed_stamp: str | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"X-Ductwork-Signature": signature("ak", body, signed_stamp or stamp or "")}
    if stamp is not None:
        headers["X-Hook-Timestamp"] = stamp
    with client(srv) as c:
        return c.post("/hooks/signup/audit", content=body, headers=headers)


def test_a_timestamped_hook_refuses_stale_replayed_and_unstamped_deliveries(
        serve: Any, specs: Path, tokens: dict[str, str]) -> None:
    (specs / "signup" / "product.yaml").write_text(STAMPED)
    srv = serve(specs=str(specs), secrets={"AUDIT_HOOK_KEY": "ak"})
    now = int(time.time())
    fresh = post_stamped(srv, {"n": 1}, str(now))
    assert fresh.status_code in (200, 202), fresh.text
    # The body-only signature of the same delivery is no longer enough.
    body = json.dumps({"n": 1}).encode()
    with client(srv) as c:
        r = c.post("/hooks/signup/audit", content=body,
                   headers={"X-Ductwork-Signature": signature("ak", body),
                            "X-Hook-Timestamp": str(now)})
    assert r.status_code == 401 and "<timestamp>.<raw body>" in r.json()["detail"]
    # A captured delivery sent again 3 minutes later (tolerance 2m), or from the future.
    for stamp in (str(now - 180), str(now + 180)):
        r = post_stamped(srv, {"n": 1}, stamp)
        assert r.status_code == 401 and "more than 120s" in r.json()["detail"], r.text
    # A fresh timestamp on a captured signature: the signature no longer matches.
    r = post_stamped(srv, {"n": 1}, str(now + 1), signed_stamp=str(now - 180))
    assert r.status_code == 401 and "signature" in r.json()["detail"]
    for stamp in (None, "soon", "1.5e9", "-5"):
        r = post_stamped(srv, {"n": 1}, stamp)
        assert r.status_code == 401 and "X-Hook-Timestamp" in r.json()["detail"], stamp
    assert len(runs(srv, tokens["read"])) == 1
    with client(srv, tokens["read"]) as c:
        m = samples(c.get("/metrics").text)
    assert value(m, "ductwork_webhooks_total", product="signup", workflow="audit",
                 outcome="stale") == 2
    assert value(m, "ductwork_webhooks_total", product="signup", workflow="audit",
                 outcome="bad_signature") == 6
