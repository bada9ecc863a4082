"""API tokens over HTTP: a wrong or revoked token and an expired one are 401, each saying why;
the tokens file is read again when it changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ductwork.server.auth import TokenFile
from tests.server.conftest import client


def test_expired_and_revoked_tokens_are_refused(serve: Any, tokens_path: Path) -> None:
    tf = TokenFile(tokens_path)
    record, token = tf.create("read", "dashboard", expires_in=3600)
    srv = serve()
    with client(srv, token) as c:
        assert c.get("/api/runs").status_code == 200
    data = json.loads(tokens_path.read_text())
    data["tokens"][0]["expires_at"] = record["created_at"] - 1  # the hour has passed
    tokens_path.write_text(json.dumps(data))
    with client(srv, token) as c:
        r = c.get("/api/runs")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"].startswith("API token 'dashboard' expired at ")
    assert tf.revoke(record["id"])
    with client(srv, token) as c:
        r = c.get("/api/runs")
    assert r.status_code == 401 and r.json()["detail"] == "invalid or revoked API token"
    with client(srv, "dwt_nothing_here") as c:
        assert c.get("/api/runs").json()["detail"] == "invalid or revoked API token"
