"""The base install (no extras) runs the embedded defaults: SQLite, the email outbox, HTTP.

Each test runs `ductwork` in a subprocess where the optional client libraries cannot be
imported (`sys.modules[name] = None`), as on a machine with `pip install ductwork` only.
"""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
import textwrap
from pathlib import Path

# The client libraries of the `postgres` and `connectors` extras (and what they bring).
OPTIONAL = ("aiosmtplib", "psycopg", "psycopg_pool", "boto3", "botocore", "google", "pywebpush",
            "py_vapid", "ladybug", "kuzu", "falkordb", "redis", "nats", "aiokafka", "requests")

PRODUCT = """\
product: hello
envs: [dev, prd]
databases:
  users-db:
    envs:
      dev: {provider: sqlite, url: "sqlite:///.ductwork/users.db"}
      prd: {provider: sqlite, url: "sqlite:///.ductwork/users-prd.db"}
    tables:
      users:
        columns:
          id: {type: integer, primary_key: true, auto: true}
          email: {type: text, nullable: false}
    events:
      create-user: {op: insert, table: users}
notifications:
  transactional:
    envs:
      dev: {provider: outbox, maildir: .ductwork/outbox}
      prd: {provider: smtp, host: smtp.example.com, from: "Hello <hello@example.com>"}
    events:
      welcome-email:
        subject: "Welcome, {{ email }}!"
        text: "Hi {{ email }}, your account is ready."
"""

WORKFLOW = """\
workflow: onboarding
input: {type: object, required: [email]}
steps:
  - tag: create-user
    database.insert:
      database: users-db
      event: create-user
      data: {email: "${ctx.input.email}"}
  - tag: send-welcome
    notification.email:
      notification: transactional
      event: welcome-email
      recipients: ["${ctx.input.email}"]
      template: {email: "${ctx.input.email}"}
output: {userId: "${steps.create-user.id}", mail: "${steps.send-welcome}"}
"""


def _without_extras(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(f"""\
        import sys
        for name in {OPTIONAL!r}:
            sys.modules[name] = None  # `import name` raises ImportError
        from ductwork.cli.main import main
        rc = main({list(args)!r})
        leaked = sorted(n for n in {OPTIONAL!r} if sys.modules.get(n) is not None)
        assert not leaked, leaked
        sys.exit(rc)
        """)
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def _specs(tmp_path: Path) -> Path:
    product = tmp_path / "specs" / "hello"
    (product / "workflows").mkdir(parents=True)
    (product / "product.yaml").write_text(PRODUCT)
    (product / "workflows" / "onboarding.yaml").write_text(WORKFLOW)
    return product


def test_the_outbox_sends_email_without_any_extra(tmp_path: Path) -> None:
    product = _specs(tmp_path)
    done = _without_extras(tmp_path, "run", "hello", "onboarding", "--env", "dev",
                           "--specs", str(tmp_path / "specs"),
                           "--store", f"sqlite:///{tmp_path / 'runs.db'}",
                           "--input", '{"email": "kim@example.com"}')
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["output"]["userId"] == 1
    assert result["output"]["mail"]["provider"] == "outbox"
    [msg] = mailbox.Maildir(product / ".ductwork" / "outbox", create=False)
    assert msg["To"] == "kim@example.com"
    assert msg["Subject"] == "Welcome, kim@example.com!"


def test_a_provider_without_its_package_names_the_pip_extra(tmp_path: Path) -> None:
    _specs(tmp_path)
    done = _without_extras(tmp_path, "run", "hello", "onboarding", "--env", "prd",
                           "--specs", str(tmp_path / "specs"),
                           "--store", f"sqlite:///{tmp_path / 'runs.db'}",
                           "--input", '{"email": "kim@example.com"}')
    assert done.returncode != 0
    assert "aiosmtplib" in done.stdout + done.stderr
    assert "pip install 'ductwork[connectors]'" in done.stdout + done.stderr


def test_the_extra_named_is_one_pyproject_defines() -> None:
    import tomllib

    from ductwork.connectors import BUILTIN
    from ductwork.connectors.base import pip_install

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for _kind, provider in BUILTIN:
        command = pip_install(provider)
        assert command.split("[")[1].rstrip("]'") in extras, command
    assert pip_install("postgres") == "pip install 'ductwork[postgres]'"
    assert pip_install("smtp") == "pip install 'ductwork[connectors]'"


def test_the_default_providers_import_no_optional_package() -> None:
    from ductwork.connectors import BUILTIN

    embedded = [("action", "http"), ("database", "sqlite"), ("notification", "outbox"),
                ("storage", "local")]
    modules = sorted({BUILTIN[key][i].partition(":")[0]  # type: ignore[union-attr]
                      for key in embedded for i in (0, 1)})
    code = (f"import importlib, sys\n"
            f"for name in {OPTIONAL!r}:\n    sys.modules[name] = None\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


POSTGRES_PRODUCT = """\
product: ledger
envs: [dev, prd]
databases:
  books:
    envs:
      dev: {provider: sqlite, url: "sqlite:///.ductwork/books.db"}
      prd: {provider: postgres, url: "postgresql://db.example.com/books"}
    tables:
      entries:
        columns:
          id: {type: integer, primary_key: true, auto: true}
    events:
      add: {op: insert, table: entries}
"""


def test_validate_warns_of_a_provider_whose_package_is_not_installed(tmp_path: Path) -> None:
    _specs(tmp_path)
    (tmp_path / "specs" / "ledger").mkdir()
    (tmp_path / "specs" / "ledger" / "product.yaml").write_text(POSTGRES_PRODUCT)
    done = _without_extras(tmp_path, "validate", "specs", "--json")
    assert done.returncode == 0, done.stderr + done.stdout  # a CI runner without extras passes
    report = json.loads(done.stdout)
    found = {(Path(d["path"]).parent.name, d["line"]): d for d in report["diagnostics"]}
    smtp = found[("hello", PRODUCT.splitlines().index(next(
        line for line in PRODUCT.splitlines() if "provider: smtp" in line)) + 1)]
    assert smtp["severity"] == "warning"
    assert "'smtp'" in smtp["message"] and "aiosmtplib" in smtp["message"]
    assert "pip install 'ductwork[connectors]'" in smtp["hint"]
    pg = found[("ledger", 7)]
    assert pg["severity"] == "warning" and "psycopg" in pg["message"]
    assert "pip install 'ductwork[postgres]'" in pg["hint"]
    assert len(report["diagnostics"]) == 2  # nothing about sqlite, outbox

    strict = _without_extras(tmp_path, "validate", "specs", "--strict")
    assert strict.returncode == 1
    assert "product.yaml:7:13" in strict.stdout and "ductwork[postgres]" in strict.stdout


def test_validate_is_quiet_when_the_packages_are_installed(tmp_path: Path) -> None:
    from ductwork.cli.specs import validate_paths

    _specs(tmp_path)
    report = validate_paths([str(tmp_path / "specs")])
    assert report.ok and not report.diagnostics


def test_validate_for_one_env_checks_that_env_only(tmp_path: Path) -> None:
    _specs(tmp_path)
    (tmp_path / "specs" / "ledger").mkdir()
    (tmp_path / "specs" / "ledger" / "product.yaml").write_text(POSTGRES_PRODUCT)
    # dev runs here on the embedded providers: prd's missing packages are not this machine's.
    dev = _without_extras(tmp_path, "validate", "specs", "--env", "dev")
    assert dev.returncode == 0 and "warning" not in dev.stdout, dev.stdout + dev.stderr
    # prd would run here: its providers' packages missing is an error, with the pip command.
    prd = _without_extras(tmp_path, "validate", "specs", "--env", "prd", "--json")
    assert prd.returncode == 1
    diagnostics = json.loads(prd.stdout)["diagnostics"]
    assert {d["severity"] for d in diagnostics} == {"error"}
    assert sorted(Path(d["path"]).parent.name for d in diagnostics) == ["hello", "ledger"]
    assert all("in env 'prd'" in d["message"] for d in diagnostics)
    # An env a product does not declare is named, with the closest one.
    typo = _without_extras(tmp_path, "validate", "specs", "--env", "prod")
    assert typo.returncode == 1
    assert "has no environment 'prod'" in typo.stdout and "did you mean 'prd'?" in typo.stdout
