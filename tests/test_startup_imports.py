"""What `import ductwork` and `ductwork --help` import: nothing a command loads for itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ductwork

# Modules that the package or a command group could import at start-up and must not.
HEAVY = ("ductwork.app", "ductwork.interpreter", "ductwork.workflows", "ductwork.store",
         "ductwork.connectors", "ductwork.dsl.schema.build", "ductwork.server", "asyncio",
         "yaml", "httpx", "jinja2", "pydantic", "jsonschema", "importlib.metadata")

REPORT = """
import json, sys
heavy = {heavy!r}
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def _loaded(code: str, tmp_path: Path) -> list[str]:
    """The HEAVY modules in sys.modules after `code` ran in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code + REPORT.format(heavy=HEAVY)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_import_ductwork_leaves_the_engine_for_first_use(tmp_path: Path) -> None:
    loaded = _loaded("import ductwork\nassert ductwork.DuctworkError\n", tmp_path)
    assert loaded == []


def test_a_public_name_imports_its_module_on_first_use(tmp_path: Path) -> None:
    loaded = _loaded("import ductwork\nassert ductwork.Ductwork.__name__ == 'Ductwork'\n",
                        tmp_path)
    assert "ductwork.app" in loaded and "ductwork.interpreter" in loaded


def test_help_imports_no_command_s_dependencies(tmp_path: Path) -> None:
    code = ("import contextlib, io\nfrom ductwork.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        main(['--help'])\n    except SystemExit as e:\n"
            "        assert e.code == 0\n"
            "assert 'validate' in out.getvalue()\n")
    loaded = _loaded(code, tmp_path)
    assert loaded == []


@pytest.mark.parametrize("module", ["ductwork", "ductwork.cli"])
def test_version_still_reads_the_installed_version(tmp_path: Path, module: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "--version"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ductwork {ductwork.__version__}"


def test_star_import_and_dir_list_every_public_name(tmp_path: Path) -> None:
    code = ("import ductwork\nnames = {}\nexec('from ductwork import *', names)\n"
            "assert sorted(k for k in names if k != '__builtins__') == sorted(ductwork.__all__)\n"
            "assert set(ductwork.__all__) <= set(dir(ductwork))\n")
    loaded = _loaded(code, tmp_path)
    assert "ductwork.app" in loaded  # the star import asked for Ductwork itself


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        getattr(ductwork, "NoSuchThing")  # noqa: B009
