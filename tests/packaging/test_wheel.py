"""The wheel and sdist as users get them: built, installed bare into a fresh venv, then used."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _tracked_package_files() -> set[str]:
    """Every file git tracks under ductwork/ (symlinks resolved to the files they name)."""
    out = subprocess.run(["git", "ls-files", "ductwork"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return {name for name in out if not name.endswith((".pyc",))}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def bare(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed and no extras; returns its bin folder."""
    home = tmp_path_factory.mktemp("venv") / "v"
    venv.create(home, with_pip=True)
    [wheel] = dist.glob("*.whl")
    done = subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home / "bin"


def _in(bin_dir: Path, cwd: Path, *args: str) -> str:
    # No PYTHONPATH and a folder outside the checkout: only the installed wheel is importable.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("DUCTWORK_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run([str(bin_dir / "ductwork"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ductwork {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_holds_every_package_file(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_tracked_package_files() - names)
    assert not missing, f"files of the package left out of the wheel: {missing}"
    assert "ductwork/dsl/expr/grammar.lark" in names
    assert "ductwork/scaffold/example/specs/my-product/product.yaml" in names
    assert not [n for n in names if "/.ductwork/" in n or n.endswith(".pyc")]


def test_the_sdist_holds_the_package_and_its_tests(dist: Path) -> None:
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md"} <= names
    assert not sorted(_tracked_package_files() - names)


def test_bare_install_has_no_optional_package(bare: Path) -> None:
    code = ("import importlib.util as u; print([m for m in ('psycopg', 'aiosmtplib', 'boto3', "
            "'redis', 'nats', 'aiokafka', 'falkordb') if u.find_spec(m)])")
    done = subprocess.run([str(bare / "python"), "-c", code], capture_output=True, text=True,
                          cwd=bare, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_bare_install_scaffolds_validates_tests_and_runs(bare: Path, tmp_path: Path) -> None:
    assert _in(bare, tmp_path, "--version").startswith("ductwork ")
    _in(bare, tmp_path, "init", "shop")
    project = tmp_path / "shop"
    _in(bare, project, "validate")
    assert "3 passed, 0 failed" in _in(bare, project, "test", "specs")
    run = json.loads(_in(bare, project, "run", "shop", "signup", "--input",
                         '{"email": "ann@example.com", "name": "Ann"}'))
    assert run["status"] == "completed"
    assert run["completed_steps"] == ["create-account", "save-profile", "send-welcome"]
    box = mailbox.Maildir(project / "specs" / "shop" / ".ductwork" / "outbox", create=False)
    assert [m["To"] for m in box] == ["ann@example.com"]


def test_bare_install_runs_the_shipped_example_and_writes_its_email(bare: Path,
                                                                    tmp_path: Path) -> None:
    _in(bare, tmp_path, "init", "--template", "example")
    _in(bare, tmp_path, "validate")
    assert ", 0 failed" in _in(bare, tmp_path, "test", "specs")
    run = json.loads(_in(bare, tmp_path, "run", "my-product", "user-onboarding", "--input",
                         '{"email": "john@example.com", "name": "John Doe"}'))
    # The welcome email is allow_fail: it must really be written, not skipped.
    assert run["completed_steps"] == ["create-user", "send-welcome", "audit-log"], run
    box = mailbox.Maildir(tmp_path / "specs" / "my-product" / ".ductwork" / "outbox",
                          create=False)
    [mail] = list(box)
    assert mail["To"] == "john@example.com" and mail["Subject"] == "Welcome, John Doe!"
