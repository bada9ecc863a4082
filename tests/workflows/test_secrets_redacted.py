"""Secrets in every encoding stay out of the store, the logs and the CLI: a real HTTP server
echoes the credentials it receives, in every form, back into step results and error bodies."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork import Ductwork
from ductwork.cli import main
from tests.support.http import httpserver as httpserver  # fixture
from tests.support.http import module_http_server as module_http_server  # fixture
from tests.workflows.helpers import ROOT, eventually

USER = "svc-account"
PASSWORD = "pa55:w/rd+Zq&x"  # characters that URL-encoding and base64 both change
API_KEY = "key_7Hq/9+Lmz=0p"
SECRETS = {"API_USER": USER, "API_PASS": PASSWORD, "API_KEY": API_KEY}

PRODUCT = """
product: shop
envs: [dev]
apps:
  partner:
    envs:
      dev:
        base_url: "{url}"
        auth: {{type: basic, username: "${{{src}.API_USER}}", password: "${{{src}.API_PASS}}"}}
    events:
      echo: {{method: POST, path: /echo}}
  lookup:
    envs:
      dev:
        base_url: "{url}"
        auth: {{type: api_key, in: query, name: api_key, value: "${{{src}.API_KEY}}"}}
    events:
      find: {{method: GET, path: /find}}
"""

WORKFLOW = """
workflow: leaky
steps:
  - tag: find
    action.run: {app: lookup, event: find, input: {q: "${ctx.input.q}"}}
  - log: {message: "found ${json(steps.find)}"}
  - tag: echo
    action.run: {app: partner, event: echo, input: {body: {note: "hi"}}}
"""


def encodings(value: str) -> set[str]:
    """Every form of one secret a leak could take."""
    raw = value.encode()
    return {
        value, urllib.parse.quote(value, safe=""), urllib.parse.quote(value),
        urllib.parse.quote_plus(value), base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(), json.dumps(value)[1:-1],
    }


FORBIDDEN = encodings(PASSWORD) | encodings(API_KEY) | encodings(f"{USER}:{PASSWORD}")


def leaks(text: str) -> list[str]:
    return sorted(f for f in FORBIDDEN if f in text)


def echo_everything(request: Request) -> Response:
    """What a careless server does: reflect the credentials it got, decoded and re-encoded."""
    header = request.headers.get("Authorization", "")
    password = ""
    if header.startswith("Basic "):
        password = base64.b64decode(header[6:]).decode().partition(":")[2]
    key = request.args.get("api_key", "")
    body = {
        "authorization": header, "query": request.query_string.decode(), "url": request.url,
        "password_b64": base64.b64encode(password.encode()).decode(),
        "password_quoted": urllib.parse.quote(password, safe=""),
        "password_plus": urllib.parse.quote_plus(password), "password": password,
        "key_b64": base64.urlsafe_b64encode(key.encode()).decode(),
        "key_quoted": urllib.parse.quote(key, safe=""), "key": key,
    }
    status = 200 if request.path == "/find" else 400
    return Response(json.dumps(body), status=status, content_type="application/json")


def make_specs(tmp_path: Path, httpserver: HTTPServer, src: str) -> Path:
    """The product reads its credentials from `src`: secrets (Ductwork(secrets=)) or env."""
    httpserver.expect_request("/find").respond_with_handler(echo_everything)
    httpserver.expect_request("/echo").respond_with_handler(echo_everything)
    root = tmp_path / "specs" / "shop"
    (root / "workflows").mkdir(parents=True)
    url = httpserver.url_for("/").rstrip("/")
    (root / "product.yaml").write_text(PRODUCT.format(url=url, src=src))
    (root / "workflows" / "leaky.yaml").write_text(WORKFLOW)
    return tmp_path / "specs"


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def store_bytes(tmp_path: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in tmp_path.glob("runs.db*"))


def cli(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(list(args))
    return out.getvalue() + err.getvalue()


def test_the_server_really_saw_and_echoed_the_secrets() -> None:
    # The premise: without redaction these forms would be in the echo.
    header = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert leaks(header) and leaks(urllib.parse.quote_plus(API_KEY))


async def test_no_encoding_of_a_secret_reaches_the_store_logs_or_cli(
        store: str, tmp_path: Path, httpserver: HTTPServer,
        caplog: pytest.LogCaptureFixture) -> None:
    specs = make_specs(tmp_path, httpserver, "secrets")
    caplog.set_level(logging.DEBUG)
    async with Ductwork(specs=specs, store=store, secrets=SECRETS) as dw:
        run = await dw.workflows.execute(product="shop", env="dev", tag="leaky",
                                         input={"q": "x"})
        assert run.status == "failed"
        assert "HTTP 400" in str(run.error)
        history = await dw.workflows.history(run.workflow_id)
        logs = await dw.workflows.logs(run.workflow_id)
        detail = await dw.workflows.step_detail(run.workflow_id, "find")
    # The server got the real credentials (so the echo held them) ...
    seen = [req for req, _ in httpserver.log]
    assert seen[0].args["api_key"] == API_KEY
    assert seen[-1].authorization is not None and seen[-1].authorization.password == PASSWORD
    # ... and none of their forms came back out anywhere.
    api_text = json.dumps([run.to_dict(), str(run.error), history, logs, detail], default=str)
    assert "***" in api_text
    assert leaks(api_text) == []
    assert leaks(store_bytes(tmp_path)) == []
    ours = [r for r in caplog.records if r.name != "werkzeug"]  # not the server's own log
    assert [(r.name, r.getMessage()) for r in ours if leaks(r.getMessage())] == []
    assert any(r.name == "httpx" for r in ours)  # httpx did log the request
    for args in (("runs", "show", run.workflow_id), ("runs", "history", run.workflow_id),
                 ("runs", "history", run.workflow_id, "--logs"),
                 ("runs", "history", run.workflow_id, "--json", "--logs"),
                 ("runs", "show", run.workflow_id, "--json"),
                 ("runs", "list")):
        output = await asyncio.to_thread(cli, *args, "--store", store)
        assert output.strip(), args
        assert leaks(output) == [], args


async def test_a_worker_process_logs_no_secret_at_its_default_level(
        store: str, tmp_path: Path, httpserver: HTTPServer) -> None:
    specs = make_specs(tmp_path, httpserver, "env")  # the worker reads them from its env
    env = {**os.environ, **SECRETS, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "ductwork.cli", "worker", "--specs", str(specs), "--store", store,
         "--poll", "50ms"], cwd=str(tmp_path), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with Ductwork(specs=specs, store=store) as dw:
            await dw.workflows.dispatch("shop", "dev", "leaky", {"q": "y"},
                                        workflow_id="leak-1")

            async def done() -> bool:
                status = await dw.workflows.status("leak-1")
                return status["status"] in ("failed", "completed")

            await eventually(None, done, timeout=60)
            final = await dw.workflows.status("leak-1")
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(worker.communicate, timeout=30)
    text = out.decode() + err.decode()
    assert final["status"] == "failed" and "HTTP 400" in str(final.get("error")), (final, text)
    assert "HTTP Request: GET" in text  # the INFO line of httpx is there, masked
    assert leaks(text) == []
    assert leaks(store_bytes(tmp_path)) == []
