"""The server on a real uvicorn: definitions served, callers without a token refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.server.conftest import client
from tests.support.ports import free_port, wait_port
from tests.support.process import stop_process

REPO = Path(__file__).resolve().parents[2]


def test_definitions_need_a_token(serve, tokens) -> None:
    srv = serve(specs=str(REPO / "specs"), worker=False)
    with client(srv) as c:
        assert c.get("/api/health").json() == {"status": "ok"}
        r = c.get("/api/definitions")
        assert r.status_code == 401
        assert "Bearer" in r.headers["www-authenticate"]
    with client(srv, "dwt_nope_nope") as c:
        assert c.get("/api/definitions").status_code == 401
    with client(srv, tokens["read"]) as c:
        defs = c.get("/api/definitions").json()
    assert {"product": "my-app", "tag": "user-onboarding"}.items() <= next(
        d for d in defs if d["tag"] == "user-onboarding").items()


def test_insecure_local_serves_loopback_without_tokens(serve) -> None:
    srv = serve(specs=str(REPO / "specs"), insecure_local=True, worker=False)
    with client(srv) as c:
        assert c.get("/api/definitions").status_code == 200


def test_the_documented_command_starts_on_the_example_specs(tmp_path: Path) -> None:
    """`ductwork server --specs specs --insecure-local` on a copy of the repository's specs."""
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    port = free_port()
    exe = Path(sys.executable).with_name("ductwork")
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen([str(exe), "server", "--specs", "specs", "--insecure-local",
                                 "--port", str(port)], cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        r = httpx.get(f"http://127.0.0.1:{port}/api/definitions", timeout=30)
        assert r.status_code == 200, (tmp_path / "server.log").read_text()
        assert any(d["tag"] == "user-onboarding" for d in r.json())
    finally:
        stop_process(proc)
    log_text = (tmp_path / "server.log").read_text()
    assert proc.returncode == 0 and "Application shutdown complete" in log_text, log_text
    assert (tmp_path / ".ductwork" / "runs.db").exists()


def test_insecure_local_refuses_other_interfaces(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("ductwork")
    out = subprocess.run([str(exe), "server", "--insecure-local", "--host", "0.0.0.0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "--insecure-local serves this machine only" in out.stderr
