"""`ductwork server token create|list|revoke`: tokens shown once, stored hashed."""

from __future__ import annotations

import json
from pathlib import Path

from ductwork.cli.main import main
from ductwork.server.auth import TokenFile


def test_token_create_list_revoke(tmp_path: Path, capsys) -> None:
    path = tmp_path / "tokens.json"
    assert main(["server", "token", "create", "--scope", "read", "--name", "grafana",
                 "--tokens", str(path), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    token = made["token"]
    assert token.startswith("dwt_") and made["scope"] == "read"
    text = path.read_text()
    assert token.split("_", 2)[2] not in text  # only the hash is kept
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    principal = TokenFile(path).check(token)
    assert principal is not None and principal.scope == "read" and principal.name == "grafana"

    assert main(["server", "token", "list", "--tokens", str(path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in listed] == [made["id"]] and "hash" not in listed[0]

    assert main(["server", "token", "revoke", made["id"], "--tokens", str(path)]) == 0
    assert TokenFile(path).check(token) is None
    assert main(["server", "token", "revoke", made["id"], "--tokens", str(path)]) == 1
    assert "no token with id" in capsys.readouterr().err
