"""The `ductwork` command itself: --version, a closed pipe, an example in every --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ductwork
from ductwork.cli.main import _subparsers, build_parser


def _ductwork(*args: str) -> list[str]:
    return [sys.executable, "-m", "ductwork.cli", *args]


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"ductwork {ductwork.__version__}"


def test_version_in_a_subprocess() -> None:
    done = subprocess.run(_ductwork("--version"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"ductwork {ductwork.__version__}"


@pytest.mark.parametrize("which", ["workflow", "product"])
def test_output_into_a_reader_that_closes_early_ends_quietly(which: str) -> None:
    # The code that writes a lot after the reader has gone: print the schema several times.
    code = ("import sys\n"
            "from ductwork.cli.main import main\n"
            f"sys.exit(max(main(['schema', {which!r}]) for _ in range(50)))\n")
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read().decode()
        rc = proc.wait(timeout=60)
    assert first.strip() == b"{"
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert rc in (0, 141)


def test_schema_piped_into_head_in_a_shell() -> None:
    done = subprocess.run(f"'{sys.executable}' -m ductwork.cli schema | head -3", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr


def test_every_help_has_an_example() -> None:
    parser = build_parser()
    assert "example: ductwork" in parser.format_help()
    found = dict(_subparsers(parser))
    assert {"validate", "schema", "run", "graph", "worker", "runs", "runs list", "test",
            "db", "db status", "import-openapi"} <= set(found)
    for path, sub in found.items():
        assert "example: ductwork " + path.split()[0] in sub.format_help(), path
