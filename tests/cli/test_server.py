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


def test_a_token_with_an_expiry_stops_working_then(tmp_path: Path, capsys) -> None:
    path = tmp_path / "tokens.json"
    assert main(["server", "token", "create", "--scope", "operator", "--name", "ci",
                 "--expires", "2h", "--tokens", str(path), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert 7190 < made["expires_at"] - made["created_at"] <= 7200.5
    tokens = TokenFile(path)
    principal = tokens.check(made["token"])
    assert principal is not None and principal.name == "ci"
    # Two hours later (the file's record moved into the past, as the clock would).
    data = json.loads(path.read_text())
    data["tokens"][0]["expires_at"] = made["created_at"] - 1
    path.write_text(json.dumps(data))
    principal, why = TokenFile(path).verify(made["token"])
    assert principal is None
    assert why.startswith("API token 'ci' expired at ") and "token create" in why
    # A wrong secret for that id still says nothing about the token.
    assert TokenFile(path).verify(made["token"][:-4] + "AAAA")[1] == \
        "invalid or revoked API token"
    assert main(["server", "token", "list", "--tokens", str(path)]) == 0
    assert " expired " in capsys.readouterr().out
    for bad in ("0s", "soon"):
        assert main(["server", "token", "create", "--scope", "read", "--expires", bad,
                     "--tokens", str(path)]) != 0
        assert "--expires" in capsys.readouterr().err
