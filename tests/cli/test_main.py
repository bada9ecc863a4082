"""The `ductwork` command itself: --version, a closed pipe, an example in every --help, and
mistakes in its arguments named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ductwork
from ductwork.cli.main import _subparsers, build_parser, main


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


@pytest.mark.parametrize("argv,said", [
    (["run", "shop", "order", '{"id": 1}'],
     """error: '{"id": 1}' looks like the input: give it with --input '{"id": 1}'"""),
    (["runs", "signal", "wf_1", "approve", '{"ok": true}'],
     """error: '{"ok": true}' looks like the payload: give it with --payload '{"ok": true}'"""),
])
def test_a_json_value_without_its_option_names_the_option(
        argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == said


def test_other_unknown_arguments_keep_argparse_s_message(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "shop", "order", "--bogus"])
    assert "error: unrecognized arguments: --bogus" in capsys.readouterr().err


def test_graph_of_a_swapped_product_and_tag_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "specs" / "shop" / "workflows"
    flow.mkdir(parents=True)
    (flow.parent / "product.yaml").write_text("product: shop\nenvs: [dev]\n")
    (flow / "order.yaml").write_text("workflow: order\nsteps: [{log: {message: hi}}]\n")
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "order", "shop"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: Workflow not found: order/shop (the product comes first: 'shop' is a product "
        "and 'order' its workflow, shop order)")
