"""Through the real `ductwork` command: read-only commands never create a store, and `run` /
`worker` take secrets from --secrets-file and DUCTWORK_SECRET_<NAME> without echoing them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork import Ductwork
from ductwork.cli import main
from tests.support.http import local_http_server

TOKEN_FILE = "tok-from-file-7f3a9c"
TOKEN_ENV = "tok-from-env-52d1be"
READ_ONLY = (["runs", "list"], ["runs", "show", "w-1"], ["runs", "history", "w-1"],
             ["db", "status"])


def ductwork(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "ductwork"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ductwork.cli"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("DUCTWORK_")}
    return subprocess.run([*cmd, *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


# -- read-only commands -------------------------------------------------------------------------
@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c))
def test_a_read_only_command_on_a_missing_store_names_it_and_creates_nothing(
        command: list[str], tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    for store, shown in (("sqlite:///data/runs.db", "data/runs.db"),   # a SQLite URL
                         ("data/runs.db", "data/runs.db"),             # a bare path
                         (str(tmp_path / "abs.db"), str(tmp_path / "abs.db"))):
        done = ductwork(*command, "--store", store, cwd=tmp_path)
        assert done.returncode == 1, done.stdout
        assert f"error: no run store at {shown} (--store): the file does not exist" in done.stderr
        assert "Traceback" not in done.stderr
    done = ductwork(*command, cwd=tmp_path)  # the default store
    assert done.returncode == 1
    assert "no run store at .ductwork/runs.db (the default store; give --store URL or set " \
           "DUCTWORK_STORE)" in done.stderr
    done = ductwork(*command, cwd=tmp_path, env={"DUCTWORK_STORE": "elsewhere.db"})
    assert "no run store at elsewhere.db ($DUCTWORK_STORE)" in done.stderr
    assert sorted(tmp_path.rglob("*")) == before  # no file, no folder


def test_run_of_an_unknown_workflow_env_or_bad_input_creates_no_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "specs" / "shop" / "workflows"
    flow.mkdir(parents=True)
    (flow.parent / "product.yaml").write_text("product: shop\nenvs: [dev, prd]\n")
    (flow / "order.yaml").write_text("workflow: order\ninput: {type: object, properties: "
                                     "{qty: {type: integer}}}\nsteps: [{log: {message: hi}}]\n")
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    for args, said in (
            (["order", "shop"], "error: Workflow not found: order/shop (the product comes "
             "first: 'shop' is a product and 'order' its workflow, shop/order)"),
            (["shop", "ordr"], "error: Workflow not found: shop/ordr (did you mean 'shop/order'?)"),
            (["shop", "order", "--env", "prod"], "is not active in env 'prod' (envs: dev, prd); "
             "did you mean 'prd'?"),
            (["shop", "order", "--input", '{"qty": "two"}'], "the input does not match the "
             "workflow's input schema:\n  - qty: 'two' is not of type 'integer'")):
        assert main(["run", *args, "--store", "sqlite:///runs.db"]) == 1
        assert said in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before  # no runs.db, no .ductwork/
    assert main(["run", "shop", "order", "--store", "sqlite:///runs.db"]) == 0
    assert (tmp_path / "runs.db").exists()


def test_a_file_that_is_not_a_run_store_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "notes.db"
    other.write_bytes(b"not a database")
    done = ductwork("runs", "list", "--store", str(other), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{other} (--store) is not a ductwork run store" in done.stderr
    assert other.read_bytes() == b"not a database"


def test_read_only_commands_on_both_backends(store_url_any: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """An empty PostgreSQL database is not a store either; once created, the commands read it
    (and a bare path reads the same SQLite file as its URL)."""
    assert main(["runs", "list", "--store", store_url_any]) == 1
    assert "no ductwork run store in" in capsys.readouterr().err or \
        store_url_any.startswith("sqlite:")
    assert main(["db", "upgrade", "--store", store_url_any]) == 0
    capsys.readouterr()
    for store in (store_url_any, store_url_any.removeprefix("sqlite:///")):
        assert main(["runs", "list", "--store", store, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["runs"] == []
    assert main(["runs", "show", "nope", "--store", store_url_any]) == 1
    assert "nope" in capsys.readouterr().err


# -- secrets ------------------------------------------------------------------------------------
PRODUCT = """\
product: shop
envs: [dev]
apps:
  api:
    envs:
      dev: {base_url: "URL", auth: {type: bearer, token: "${secrets.API_TOKEN}"}}
    events:
      ping: {method: POST, path: /ping}
"""
WORKFLOW = """\
workflow: ping
steps:
  - tag: ping
    action.run: {app: api, event: ping, input: {body: {n: 1}}}
output: "${steps.ping}"
"""


@pytest.fixture
def api() -> Iterator[tuple[HTTPServer, list[str]]]:
    """An API that accepts one token; a wrong one gets a 401 whose body repeats it."""
    seen: list[str] = []

    def handle(request: Request) -> Response:
        auth = request.headers.get("Authorization", "")
        seen.append(auth)
        if auth in (f"Bearer {TOKEN_FILE}", f"Bearer {TOKEN_ENV}"):
            return Response(json.dumps({"ok": True}), 200, content_type="application/json")
        return Response(f"bad token: {auth}", 401)

    with local_http_server() as server:
        server.expect_request("/ping", method="POST").respond_with_handler(handle)
        yield server, seen


@pytest.fixture
def project(tmp_path: Path, api: tuple[HTTPServer, list[str]]) -> Path:
    product = tmp_path / "specs" / "shop"
    (product / "workflows").mkdir(parents=True)
    (product / "product.yaml").write_text(PRODUCT.replace("URL", api[0].url_for("/")[:-1]))
    (product / "workflows" / "ping.yaml").write_text(WORKFLOW)
    (tmp_path / "secrets.env").write_text(textwrap.dedent(f"""\
        # dotenv: NAME=VALUE, quotes optional
        export OTHER='x y'
        API_TOKEN="{TOKEN_FILE}"
        """))
    (tmp_path / "secrets.yaml").write_text(f"API_TOKEN: {TOKEN_FILE}\nRETRIES: 3\n")
    return tmp_path


def run_ping(project: Path, *extra: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return ductwork("run", "shop", "ping", "--store", "runs.db", *extra, cwd=project, env=env)


def test_run_reads_a_dotenv_or_yaml_secrets_file(
        project: Path, api: tuple[HTTPServer, list[str]]) -> None:
    for name in ("secrets.env", "secrets.yaml"):
        done = run_ping(project, "--secrets-file", name)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["output"] == {"ok": True}
    assert api[1] == [f"Bearer {TOKEN_FILE}"] * 2
    assert TOKEN_FILE.encode() not in (project / "runs.db").read_bytes()


def test_a_ductwork_secret_variable_wins_over_the_file(
        project: Path, api: tuple[HTTPServer, list[str]]) -> None:
    done = run_ping(project, "--secrets-file", "secrets.env",
                    env={"DUCTWORK_SECRET_API_TOKEN": TOKEN_ENV})
    assert done.returncode == 0, done.stderr
    done = run_ping(project, env={"DUCTWORK_SECRET_API_TOKEN": TOKEN_ENV})  # no file at all
    assert done.returncode == 0, done.stderr
    assert api[1] == [f"Bearer {TOKEN_ENV}"] * 2


def test_a_secret_is_never_echoed(project: Path, api: tuple[HTTPServer, list[str]]) -> None:
    wrong = "tok-wrong-0e81f4d2"
    (project / "wrong.env").write_text(f"API_TOKEN={wrong}\n")
    done = run_ping(project, "--secrets-file", "wrong.env")
    assert done.returncode == 1
    assert "401" in done.stdout and "***" in done.stdout  # the API's answer, redacted
    assert wrong not in done.stdout + done.stderr
    assert wrong.encode() not in (project / "runs.db").read_bytes()
    assert api[1] == [f"Bearer {wrong}"]


def test_mistakes_in_secrets_are_named_without_their_values(project: Path) -> None:
    done = run_ping(project)
    assert done.returncode == 1 and "secrets.API_TOKEN is not set" in done.stdout + done.stderr
    (project / "bad.env").write_text("API_TOKEN=sk-secret-value-1\nthis line sk-secret-2\n")
    done = run_ping(project, "--secrets-file", "bad.env")
    assert done.returncode == 1
    assert "error: bad.env:2: expected NAME=VALUE" in done.stderr
    assert "sk-secret" not in done.stdout + done.stderr
    (project / "bad.yaml").write_text("API_TOKEN: {nested: sk-secret-3}\n")
    done = run_ping(project, "--secrets-file", "bad.yaml")
    assert "error: bad.yaml: the value of API_TOKEN must be a single text" in done.stderr
    assert "sk-secret" not in done.stderr
    done = run_ping(project, "--secrets-file", "missing.env")
    assert "error: --secrets-file missing.env: cannot read it (No such file or directory)" \
        in done.stderr


def test_a_worker_reads_its_secrets_file(project: Path,
                                         api: tuple[HTTPServer, list[str]]) -> None:
    store = f"sqlite:///{project / 'runs.db'}"

    async def dispatch() -> str:
        async with Ductwork(specs=project / "specs", store=store, environ={}) as dw:
            job = await dw.workflows.dispatch("shop", "dev", "ping", {}, workflow_id="w-ping")
            return str(job["job_id"])

    wid = asyncio.run(dispatch())
    script = Path(sys.executable).parent / "ductwork"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ductwork.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCTWORK_")}
    proc = subprocess.Popen([*cmd, "worker", "--specs", "specs", "--store", store, "--poll",
                             "100ms", "--secrets-file", "secrets.yaml"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        status = None
        deadline = time.monotonic() + 60  # a bound on waiting, not a speed assertion
        while time.monotonic() < deadline and proc.poll() is None:
            shown = ductwork("runs", "show", wid, "--store", store, "--json", cwd=project)
            status = json.loads(shown.stdout)["run"]["status"] if shown.returncode == 0 \
                else None
            if status in ("completed", "failed"):
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert status == "completed", err
    assert api[1] == [f"Bearer {TOKEN_FILE}"]
    assert TOKEN_FILE not in out + err
