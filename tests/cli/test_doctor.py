"""`ductwork doctor` against real servers: HTTP apps and SMTP relays, up and down."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork.cli.main import main
from tests.support.http import local_http_server
from tests.support.ports import free_port
from tests.support.smtp import smtp_server

TOKEN = "sk-live-doctor-Secret-123"
PASSWORD = "relay-Pa55-doctor"


@pytest.fixture(scope="module")
def api() -> Iterator[HTTPServer]:
    with local_http_server() as server:
        yield server


def write_specs(tmp_path: Path, api: HTTPServer, relay_port: int, dead_port: int) -> Path:
    specs = tmp_path / "specs"
    (specs / "shop").mkdir(parents=True)
    (specs / "shop" / "product.yaml").write_text(textwrap.dedent(f"""\
        product: shop
        envs: [dev, prd]
        apps:
          payments:
            envs:
              dev: {{base_url: "http://127.0.0.1:{api.port}", health: /healthz,
                    auth: {{type: bearer, token: "${{env.PAY_TOKEN}}"}}}}
              prd:
                providers:
                  - {{name: primary, base_url: "http://127.0.0.1:{api.port}", health: /healthz,
                     auth: {{type: bearer, token: "${{env.PAY_TOKEN}}"}}}}
                  - {{name: backup, base_url: "http://127.0.0.1:{dead_port}"}}
            events:
              charge: {{method: POST, path: /v1/charges}}
          crm:
            envs:
              dev: {{base_url: "${{env.CRM_URL}}"}}
              prd: {{base_url: "http://127.0.0.1:{api.port}"}}
        databases:
          orders-db:
            envs:
              dev: {{provider: sqlite, url: "sqlite:///data/orders.db"}}
              prd: {{provider: sqlite, url: "sqlite:///data/orders.db"}}
        notifications:
          mailer:
            envs:
              dev: {{provider: outbox, maildir: outbox}}
              prd:
                providers:
                  - {{name: relay-a, provider: smtp, host: 127.0.0.1, port: {relay_port},
                     tls: none, from: shop@example.com}}
                  - {{name: relay-b, provider: smtp, host: 127.0.0.1, port: {dead_port},
                     tls: none, timeout: 2s, from: shop@example.com}}
            events:
              receipt: {{subject: Receipt, text: Thanks}}
        storage:
          files:
            envs:
              dev: {{provider: local, root: files}}
              prd: {{provider: local, root: files}}
        """))
    return specs


def health_handler(request: Request) -> Response:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return Response("no", status=401)
    return Response("ok")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["doctor", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def servers(tmp_path: Path, api: HTTPServer) -> Iterator[tuple[Path, Any]]:
    api.expect_request("/healthz").respond_with_handler(health_handler)
    api.expect_request("/", method="HEAD").respond_with_data("", status=404)
    with smtp_server(tmp_path / "relay-a") as relay:
        yield write_specs(tmp_path, api, relay.port, free_port()), relay
    api.clear()


def test_doctor_json_reports_each_provider_up_or_down(
        servers: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    specs, _relay = servers
    monkeypatch.setenv("PAY_TOKEN", TOKEN)
    code, out = run(capsys, "--env", "prd", "--specs", str(specs), "--json", "--timeout", "3s")
    assert code == 1
    doc = json.loads(out)
    assert doc["env"] == "prd" and doc["ok"] is False
    rows = {(r["resource"], r["member"]): r for r in doc["resources"]}
    assert {k: r["status"] for k, r in rows.items()} == {
        ("payments", "primary"): "up", ("payments", "backup"): "down",
        ("crm", "http"): "up", ("orders-db", "sqlite"): "up",
        ("mailer", "relay-a"): "up", ("mailer", "relay-b"): "down",
        ("files", "local"): "up"}
    assert rows[("payments", "primary")]["detail"] == "GET /healthz -> 200"
    assert rows[("crm", "http")]["detail"] == "HEAD / -> 404"
    assert rows[("mailer", "relay-a")]["detail"].startswith("EHLO, NOOP at 127.0.0.1:")
    assert "cannot talk to SMTP server" in rows[("mailer", "relay-b")]["detail"]
    assert "cannot reach" in rows[("payments", "backup")]["detail"]
    assert "not created yet" in rows[("orders-db", "sqlite")]["detail"]
    assert TOKEN not in out
    # A check creates nothing: no database file, no run store next to the specs.
    assert sorted(p.name for p in (specs / "shop").iterdir()) == ["product.yaml"]


def test_doctor_table_and_exit_zero_when_all_is_up(
        servers: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    specs, _relay = servers
    monkeypatch.setenv("PAY_TOKEN", TOKEN)
    monkeypatch.setenv("CRM_URL", f"http://127.0.0.1:{free_port()}")
    code, out = run(capsys, "--env", "dev", "--specs", str(specs))
    # The CRM's URL points at nothing: down, the rest up.
    assert code == 1
    assert "crm" in out and "down" in out and "cannot reach" in out
    monkeypatch.delenv("CRM_URL")
    code, out = run(capsys, "--env", "dev", "--specs", str(specs))
    assert code == 1
    assert "env.CRM_URL is not set" in out
    monkeypatch.setenv("CRM_URL", f"http://127.0.0.1:{_api_port(specs)}")
    code, out = run(capsys, "--env", "dev", "--specs", str(specs))
    assert code == 0, out
    assert "ductwork doctor: env dev" in out
    assert "5 up" in out and "down" not in out
    assert TOKEN not in out


def _api_port(specs: Path) -> int:
    text = (specs / "shop" / "product.yaml").read_text()
    return int(text.split("http://127.0.0.1:")[1].split('"')[0])


def test_doctor_refused_credentials_are_down_and_the_secret_stays_out(
        servers: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    specs, _relay = servers
    wrong = "sk-wrong-Doctor-Token-456"
    monkeypatch.setenv("PAY_TOKEN", wrong)
    code, out = run(capsys, "--env", "prd", "--specs", str(specs), "--json")
    assert code == 1
    rows = {(r["resource"], r["member"]): r for r in json.loads(out)["resources"]}
    primary = rows[("payments", "primary")]
    assert primary["status"] == "down"
    assert "GET /healthz -> 401: the credentials were refused" in primary["detail"]
    assert wrong not in out


def test_doctor_names_an_unknown_env_or_product(
        servers: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    specs, _relay = servers
    code, out = run(capsys, "--env", "stg", "--specs", str(specs))
    assert code == 1 and "product 'shop' has no such environment (its envs: dev, prd)" in out
    code, out = run(capsys, "--env", "dev", "--specs", str(specs), "--product", "shp")
    assert code == 1 and "--product shp: no such product" in out
