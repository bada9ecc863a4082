"""`ductwork init`: every template validates, passes its tests and runs, in a fresh folder."""

from __future__ import annotations

import json
import mailbox
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ductwork.cli.init import scaffold
from ductwork.errors import ConfigurationError


def _ductwork(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCTWORK_")}
    return subprocess.run([sys.executable, "-m", "ductwork.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _outbox(product_dir: Path) -> list[mailbox.MaildirMessage]:
    box = product_dir / ".ductwork" / "outbox"
    return list(mailbox.Maildir(box, create=False)) if box.exists() else []


def test_starter_validates_tests_and_runs(tmp_path: Path) -> None:
    out = _ok(_ductwork(tmp_path, "init", "shop"))
    project = tmp_path / "shop"
    # The output names the files and the next commands, in the order a user types them.
    assert "specs/shop/workflows/signup.yaml" in out
    nxt = out.split("next:")[1].split()
    assert " ".join(nxt).startswith("cd shop ductwork validate ductwork test specs ductwork run")

    assert "ok: 1 product(s), 1 workflow(s)" in _ok(_ductwork(project, "validate", "--strict"))
    tested = _ok(_ductwork(project, "test", "specs"))
    assert "3 passed, 0 failed" in tested
    assert "deletes the account again" in tested  # the rollback case

    result = json.loads(_ok(_ductwork(project, "run", "shop", "signup", "--input",
                                      '{"email": "ann@example.com", "name": "Ann"}')))
    assert result["status"] == "completed"
    assert result["completed_steps"] == ["create-account", "save-profile", "send-welcome"]
    product = project / "specs" / "shop"
    rows = sqlite3.connect(product / ".ductwork" / "app.db").execute(
        "SELECT id, email, name FROM accounts").fetchall()
    assert rows == [(result["output"]["account_id"], "ann@example.com", "Ann")]
    [mail] = [m for m in _outbox(product) if m["To"] == "ann@example.com"]
    assert mail["Subject"] == "Welcome, Ann!"
    assert list((product / ".ductwork" / "files").rglob("*.json"))


def test_starter_python_twin_runs_against_the_same_resources(tmp_path: Path) -> None:
    _ok(_ductwork(tmp_path, "init", "--product", "acme"))
    done = subprocess.run([sys.executable, "handlers/signup.py", "bo@example.com", "Bo"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    assert [m["To"] for m in _outbox(tmp_path / "specs" / "acme")] == ["bo@example.com"]


def test_blank_validates_tests_and_runs(tmp_path: Path) -> None:
    _ok(_ductwork(tmp_path, "init", "--template", "blank", "--product", "empty"))
    _ok(_ductwork(tmp_path, "validate", "--strict"))
    assert "2 passed, 0 failed" in _ok(_ductwork(tmp_path, "test", "specs"))
    run = json.loads(_ok(_ductwork(tmp_path, "run", "empty", "hello")))
    assert run["output"] == {"greeting": "Hello, world!"}


def test_example_is_the_getting_started_product(tmp_path: Path) -> None:
    _ok(_ductwork(tmp_path, "init", "--template", "example"))
    _ok(_ductwork(tmp_path, "validate"))
    assert "0 failed" in _ok(_ductwork(tmp_path, "test", "specs"))
    run = json.loads(_ok(_ductwork(tmp_path, "run", "my-product", "user-onboarding", "--input",
                                   '{"email": "cy@example.com", "name": "Cy"}')))
    assert run["completed_steps"] == ["create-user", "send-welcome", "audit-log"]
    [mail] = _outbox(tmp_path / "specs" / "my-product")
    assert mail["To"] == "cy@example.com" and mail["Subject"] == "Welcome, Cy!"


def test_init_writes_nothing_over_existing_files(tmp_path: Path) -> None:
    (tmp_path / "specs" / "shop" / "workflows").mkdir(parents=True)
    mine = tmp_path / "specs" / "shop" / "product.yaml"
    mine.write_text("product: shop  # mine\n")
    done = _ductwork(tmp_path, "init", "--product", "shop")
    assert done.returncode == 1
    assert "exist already" in done.stderr and "nothing was written" in done.stderr
    assert "Traceback" not in done.stderr
    assert mine.read_text() == "product: shop  # mine\n"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["product.yaml"]


@pytest.mark.parametrize("folder, expected", [
    ("Shop", "shop"), ("my shop_2", "my-shop-2"), ("42-things", "things"), ("---", "app"),
])
def test_product_name_comes_from_the_folder(tmp_path: Path, folder: str, expected: str) -> None:
    name, written = scaffold(tmp_path / folder, template="blank")
    assert name == expected
    assert tmp_path / folder / "specs" / expected / "product.yaml" in written


@pytest.mark.parametrize("product", ["Shop", "1shop", "shop_x", ""])
def test_a_bad_product_name_is_refused_with_a_hint(tmp_path: Path, product: str) -> None:
    with pytest.raises(ConfigurationError, match="lowercase letters, digits"):
        scaffold(tmp_path, template="starter", product=product)
    assert not any(tmp_path.iterdir())


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    done = _ductwork(tmp_path, "init", "x")
    assert done.returncode == 1 and "is not a folder" in done.stderr
