"""Every fenced code block of README.md, CONTRIBUTING.md and docs/*.md is executed, so the docs
cannot drift from the code. One test per block, named `page:line` (the line of its opening fence).

How a block runs depends on its language:

- python: executed with `await` allowed at top level. Without a marker each block runs alone,
  in a fresh directory, the way a reader pastes it into an empty file.
- yaml: written into a product and checked with `ductwork validate`; what it is comes from its
  top-level keys (see `yaml_kind`). Test-case files (`cases:`) are run with `ductwork test`.
- bash, sh, console: each `ductwork ...` (or `python ...`) command runs, `cd` moves later
  commands of the chain into a folder of its directory; the commands of
  NOT_RUN are shown to readers but not executed here (listed with the reason); any other
  command fails the test. In `console` blocks only `$ ` lines are commands, the rest is output.
- toml, json: parsed (and written when the block names a file).
- dotenv: a secrets file (NAME=VALUE lines) read as `--secrets-file` reads it, and written
  when the block names a file.
- the languages of NOT_EXECUTED are prose for the eye and not executed (reported as skipped).
  Any other language, or a fence without one, fails.

A block may be preceded by a marker, an HTML comment that Markdown does not render:

    <!-- doctest: continues file=specs/shop/product.yaml -->

- `continues`: the block runs after the page's previous executed block, in the same directory;
  consecutive python blocks of one such chain share one namespace (a reader pasting in order).
- `fresh`: (first block of a chain) start from an empty directory. Otherwise a chain starts in
  a directory holding a copy of the repository's specs/ and examples/.
- `file=PATH`: write the block to PATH (relative to the chain's directory) instead of running
  it; add `run` to also run a python file as a script, `pytest` to run pytest on it.
- `exit=N`: the expected exit status of the block's commands (default 0).
- `output`: (console) the block's output lines must be exactly what the commands print.
- `invalid`: (yaml) `ductwork validate` must reject the file (it shows an error message).
- `stop-after=SECONDS`: (shell) a long-running command (a worker): started, sent SIGTERM that
  long after its first line of output, and expected to exit 0.

Nothing runs outside a pytest temporary directory: commands get it as their working directory,
HOME, and DUCTWORK_STORE (a SQLite file in it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ductwork.errors import ConfigurationError
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

PYTHON = {"python", "py"}
YAML = {"yaml", "yml"}
SHELL = {"bash", "sh", "shell", "console"}
PARSED = {"toml", "json", "dotenv"}
NOT_EXECUTED = {
    "text": "plain text (sample output, layouts)",
    "mermaid": "a diagram",
    "sql": "SQL for a PostgreSQL administrator",
    "ini": "a systemd unit",
    "dockerfile": "a container recipe",
}

# Commands of shell blocks that readers run but this test does not (first word -> why).
NOT_RUN = {
    "pip": "installs packages (the test runs in the already installed environment)",
    "make": "the repository's own targets (make test would run this test again)",
    "git": "clones or commits",
    "export": "points commands at servers the test does not start (the test sets DUCTWORK_STORE)",
    "apt-get": "installs system packages",
    "systemctl": "manages system services",
    "docker": "builds or runs containers",
}
# Commands that are executed (first word -> how).
RUN = {"ductwork", "python", "pytest"}

MARKER = re.compile(r"^\s*<!--\s*doctest:(.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER_FLAGS = {"continues", "fresh", "output", "invalid", "run", "pytest"}
MARKER_VALUES = {"file", "exit", "stop-after", "skip"}

PRODUCT_SECTIONS = {"apps", "databases", "notifications", "storage", "graphs", "brokers"}
STEP_KEYS = {"tag", "if", "sleep", "wait_for_signal", "checkpoint", "set", "log", "fail",
             "foreach", "parallel", "switch", "workflow", "python", "return", "trigger_rollback"}
TIMEOUT = 180


@dataclass
class Block:
    page: str  # path relative to the repository
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str = ""  # raw marker text, parsed in the test (so a bad marker fails one test)
    chain: list[Block] = field(default_factory=list, repr=False)  # blocks run before this one

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for word in shlex.split(self.marker):
            key, eq, value = word.partition("=")
            if eq and key in MARKER_VALUES:
                out[key] = value
            elif not eq and key in MARKER_FLAGS:
                out[key] = True
            else:
                raise ValueError(f"{self.id}: unknown doctest marker {word!r} (flags: "
                                 f"{sorted(MARKER_FLAGS)}, values: {sorted(MARKER_VALUES)})")
        return out


def parse_page(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with their markers and chains."""
    page = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        start, body = i, []
        i += 1
        while i < len(lines) and not re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$",
                                              lines[i]):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start + 1}: code block is never closed")
        i += 1
        marker = ""
        j = start - 1
        if j >= 0 and (mm := MARKER.match(lines[j])):
            marker = mm.group(1).strip()
        lang = info.split()[0].lower() if info else ""
        blocks.append(Block(page, start + 1, lang, textwrap.dedent("\n".join(body)) + "\n",
                            marker))
    previous: Block | None = None
    for b in blocks:
        if b.lang in NOT_EXECUTED:
            continue
        if "continues" in b.marker.split() and previous is not None:
            b.chain = [*previous.chain, previous]
        previous = b
    return blocks


def all_blocks() -> list[Block]:
    out: list[Block] = []
    for p in PAGES:
        try:
            out.extend(parse_page(p))
        except (OSError, ValueError):
            continue  # reported by test_pages_exist_and_parse
    return out


def test_pages_exist_and_parse() -> None:
    assert (ROOT / "docs").is_dir(), "docs/ is missing"
    for p in PAGES:
        blocks = parse_page(p)
        assert p.name == "CONTRIBUTING.md" or blocks, f"{p} has no code block"


def test_readme_is_the_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300, "README.md must stay under 300 lines"
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#")]
    assert ci[-1] in readme, f"the README must show CI's test command {ci[-1]!r}"
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"the README's map of docs/ misses {page.name}"


def test_every_public_name_is_documented() -> None:
    import ductwork
    import ductwork.testing

    for module, page in ((ductwork, "python.md"), (ductwork.testing, "testing.md")):
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        missing = sorted(n for n in module.__all__ if n not in text)
        assert not missing, f"{module.__name__} exports names docs/{page} never mentions: {missing}"


def test_every_expression_function_is_documented() -> None:
    from ductwork.dsl.expr.functions import FUNCTIONS

    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    # a function as `name(...)`, an alias at least as `name`
    missing = sorted(n for n in FUNCTIONS if f"`{n}(" not in text and f"`{n}`" not in text)
    assert not missing, f"expression functions missing from docs/: {missing}"


# -- running ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    ok: bool
    message: str = ""
    skipped: str = ""


class BlockFailed(Exception):
    pass


RUNNER = r'''
import asyncio, json, sys, traceback
blocks = json.load(open(sys.argv[1]))
done = []
ns = {"__name__": "__main__"}
loop = asyncio.new_event_loop()
flags = __import__("ast").PyCF_ALLOW_TOP_LEVEL_AWAIT
try:
    for b in blocks:
        try:
            code = compile(b["code"], b["label"], "exec", flags=flags)
            result = eval(code, ns)
            if asyncio.iscoroutine(result):
                loop.run_until_complete(result)
        except BaseException:
            json.dump({"done": done, "failed": b["label"],
                       "traceback": traceback.format_exc()}, open(sys.argv[2], "w"))
            sys.exit(1)
        done.append(b["label"])
finally:
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
json.dump({"done": done}, open(sys.argv[2], "w"))
'''


class Chain:
    """A directory and the blocks run in it, in page order."""

    def __init__(self, directory: Path, fresh: bool) -> None:
        self.dir = directory
        self.cwd = directory  # where commands run: the chain's directory, or where `cd` went
        self.home = directory.parent / (directory.name + "-home")
        self.home.mkdir(exist_ok=True)
        if not fresh:
            shutil.copytree(ROOT / "specs", directory / "specs")
            shutil.copytree(ROOT / "examples", directory / "examples",
                            ignore=shutil.ignore_patterns("__pycache__"))
        self.pending: list[Block] = []  # consecutive python blocks sharing one namespace
        self.outcomes: dict[str, Outcome] = {}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DUCTWORK_", "PYTHON", "PYTEST"))}
        bin_dir = str(Path(sys.executable).parent)
        env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", HOME=str(self.home),
                   DUCTWORK_STORE=f"sqlite:///{self.dir / '.ductwork' / 'runs.db'}",
                   DUCTWORK_PORT=str(free_port()),  # `ductwork server` listens there
                   PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1", COLUMNS="200")
        return env

    def run(self, argv: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(argv, cwd=self.cwd, env=self.env(), capture_output=True,
                                  text=True, timeout=TIMEOUT, check=False, **kw)
        except subprocess.TimeoutExpired:
            raise BlockFailed(f"{what}: still running after {TIMEOUT}s") from None

    # python ------------------------------------------------------------------------------------
    def flush_python(self) -> None:
        if not self.pending:
            return
        blocks, self.pending = self.pending, []
        payload = self.dir.parent / f"{self.dir.name}-blocks.json"
        report = self.dir.parent / f"{self.dir.name}-report.json"
        payload.write_text(json.dumps([{"label": b.id, "code": b.code} for b in blocks]))
        report.unlink(missing_ok=True)
        out = self.run([sys.executable, "-c", RUNNER, str(payload), str(report)], "python")
        result = json.loads(report.read_text()) if report.exists() else {"done": []}
        for b in blocks:
            if b.id in result["done"]:
                self.outcomes[b.id] = Outcome(True)
            elif b.id == result.get("failed"):
                self.outcomes[b.id] = Outcome(False, f"{result['traceback']}\n{out.stdout}"
                                                     f"\n{out.stderr}")
            else:
                self.outcomes[b.id] = Outcome(False, f"the python process ended before this "
                                                     f"block (exit {out.returncode}):\n"
                                                     f"{out.stdout}\n{out.stderr}")
        if "coroutine" in out.stderr and "never awaited" in out.stderr:
            self.outcomes[blocks[-1].id] = Outcome(False, f"a coroutine was never awaited "
                                                          f"(missing `await`?):\n{out.stderr}")

    def python_file(self, block: Block, opts: dict[str, Any]) -> None:
        path = self.write(block, opts)
        if opts.get("pytest"):
            out = self.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(path)], "pytest")
            if out.returncode != 0:
                raise BlockFailed(f"pytest {path.name} failed:\n{out.stdout}\n{out.stderr}")
        elif opts.get("run"):
            out = self.run([sys.executable, str(path)], f"python {path.name}")
            if out.returncode != 0:
                raise BlockFailed(f"python {path.name} failed ({out.returncode}):\n"
                                  f"{out.stdout}\n{out.stderr}")

    def write(self, block: Block, opts: dict[str, Any], default: str | None = None) -> Path:
        rel = opts.get("file") or default
        if rel is None:
            raise BlockFailed("nothing to do: name a file= for this block")
        path = (self.dir / rel).resolve()
        if self.dir.resolve() not in path.parents:
            raise BlockFailed(f"file={rel} is outside the block's directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code, encoding="utf-8")
        return path

    # yaml --------------------------------------------------------------------------------------
    def yaml_block(self, block: Block, opts: dict[str, Any]) -> None:
        try:
            data = yaml.safe_load(block.code)
        except yaml.YAMLError as e:
            raise BlockFailed(f"not valid YAML: {e}") from None
        kind = yaml_kind(data)
        if kind in ("compose", "openapi"):
            # Not ductwork's: parsed above; an OpenAPI document may be written for a command.
            if "file" in opts:
                self.write(block, opts)
            return
        if kind == "product":
            path = self.write(block, opts, f"specs/{data['product']}/product.yaml")
            self.validate(path.parent, opts)
        elif kind == "workflow":
            path = self.write(block, opts, f"specs/my-product/workflows/{data['workflow']}.yaml")
            self.validate(path.parent.parent, opts)
        elif kind == "test-cases":
            path = self.write(block, opts, f"specs/my-product/tests/docs-{block.line}.yaml")
            out = self.run(["ductwork", "test", str(path)], "ductwork test")
            if out.returncode != 0:
                raise BlockFailed(f"ductwork test {path.name} failed:\n{out.stdout}\n{out.stderr}")
        elif kind == "resources":
            # A fragment of a product file: the sections of one product with the usual envs.
            product = {"product": "docs", "envs": ["dev", "staging", "prd"], **data}
            folder = self.dir / f"fragment-{block.line}" / "docs"
            folder.mkdir(parents=True)
            (folder / "product.yaml").write_text(
                "product: docs\nenvs: [dev, staging, prd]\n" + block.code, encoding="utf-8")
            assert yaml.safe_load((folder / "product.yaml").read_text()) == product
            self.validate(folder, opts)
        elif kind == "steps":
            folder = self.dir / "specs" / "my-product"
            if not folder.is_dir():
                raise BlockFailed("a list of steps is checked inside specs/my-product: "
                                  "do not mark its chain `fresh`")
            wf = folder / "workflows" / f"docs-steps-{block.line}.yaml"
            wf.write_text(f"workflow: docs-steps-{block.line}\nsteps:\n"
                          + textwrap.indent(block.code, "  "), encoding="utf-8")
            self.validate(folder, opts)
        else:
            raise BlockFailed(f"cannot tell what this YAML is (top-level keys "
                              f"{sorted(data) if isinstance(data, dict) else type(data)}); "
                              "see yaml_kind() in tests/docs/test_code_blocks.py")

    def validate(self, folder: Path, opts: dict[str, Any]) -> None:
        out = self.run(["ductwork", "validate", str(folder)], "ductwork validate")
        if opts.get("invalid"):
            if out.returncode != 1 or "error" not in out.stdout + out.stderr:
                raise BlockFailed(f"`invalid`, but ductwork validate accepted it:\n{out.stdout}")
        elif out.returncode != 0:
            raise BlockFailed(f"ductwork validate {folder.name} failed:\n{out.stdout}\n"
                              f"{out.stderr}")

    # shell -------------------------------------------------------------------------------------
    def shell_block(self, block: Block, opts: dict[str, Any]) -> None:
        expected_exit = int(opts.get("exit", 0))
        printed: list[str] = []
        shown: list[str] = []
        for command, output in shell_commands(block):
            shown.extend(output)
            try:
                words = shlex.split(command, comments=True)
            except ValueError as e:
                raise BlockFailed(f"cannot parse {command!r}: {e}") from None
            if not words:
                continue
            head = words[0]
            if head == "cd":  # later commands of the chain run there (inside its directory)
                target = (self.cwd / (words[1] if len(words) > 1 else ".")).resolve()
                if not target.is_dir() or not target.is_relative_to(self.dir.resolve()):
                    raise BlockFailed(f"{command!r}: no folder {target} in the block's directory")
                self.cwd = target
                continue
            if head in NOT_RUN:
                continue
            if head not in RUN:
                raise BlockFailed(f"{command!r}: {head!r} is neither run (RUN) nor listed as "
                                  "shown-but-not-run (NOT_RUN) in tests/docs/test_code_blocks.py")
            if head == "python":
                command = shlex.join([sys.executable, *words[1:]])
            elif head == "pytest":
                command = shlex.join([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                                      *words[1:]])
            if "stop-after" in opts:
                self.run_until_stopped(command, float(opts["stop-after"]))
                continue
            out = self.run(["bash", "-o", "pipefail", "-c", command], command)
            if out.returncode != expected_exit:
                raise BlockFailed(f"`{command}` exited {out.returncode}, expected "
                                  f"{expected_exit}:\n{out.stdout}\n{out.stderr}")
            printed.extend((out.stdout + out.stderr).splitlines())
        if opts.get("output"):
            want, got = _normal(shown), _normal(printed)
            if want != got:
                raise BlockFailed("the output shown differs from the output printed:\n"
                                  + "\n".join(["--- shown", *want, "--- printed", *got]))

    def run_until_stopped(self, command: str, seconds: float) -> None:
        """Start a long-running command; once it has printed its first line (it is up), let it
        run `seconds` more, then send SIGTERM: it must exit 0."""
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
        reader.start()
        try:
            start, up = time.monotonic(), None
            while proc.poll() is None and time.monotonic() - start < TIMEOUT:
                if up is None and lines:
                    up = time.monotonic()
                if up is not None and time.monotonic() - up >= seconds:
                    break
                time.sleep(0.1)
            if proc.poll() is not None:
                reader.join(10)
                raise BlockFailed(f"`{command}` stopped by itself (exit {proc.returncode}):\n"
                                  + "".join(lines))
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            reader.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(10)
            proc.stdout.close()
        if proc.returncode != 0:
            raise BlockFailed(f"`{command}` exited {proc.returncode} on SIGTERM:\n"
                              + "".join(lines))

    # other -------------------------------------------------------------------------------------
    def parsed_block(self, block: Block, opts: dict[str, Any]) -> None:
        try:
            if block.lang == "toml":
                tomllib.loads(block.code)
            elif block.lang == "dotenv":
                from ductwork.cli.common import load_secrets

                path = self.dir / ".dotenv-check"
                path.write_text(block.code, encoding="utf-8")
                try:
                    load_secrets([str(path)], environ={})
                finally:
                    path.unlink()
            else:
                json.loads(block.code)
        except (ValueError, ConfigurationError) as e:
            raise BlockFailed(f"not valid {block.lang}: {e}") from None
        if "file" in opts:
            self.write(block, opts)

    def run_block(self, block: Block) -> None:
        """Run one block; its outcome goes to self.outcomes (python ones when flushed)."""
        try:
            opts = block.options()
            if "skip" in opts:
                self.outcomes[block.id] = Outcome(True, skipped=opts["skip"])
                return
            if block.lang in PYTHON and "file" not in opts:
                self.pending.append(block)
                return
            self.flush_python()
            if block.lang in PYTHON:
                self.python_file(block, opts)
            elif block.lang in YAML:
                self.yaml_block(block, opts)
            elif block.lang in SHELL:
                self.shell_block(block, opts)
            elif block.lang in PARSED:
                self.parsed_block(block, opts)
            else:
                raise BlockFailed(f"unknown language {block.lang!r}: add it to the languages "
                                  "of tests/docs/test_code_blocks.py, or fix the fence")
            self.outcomes[block.id] = Outcome(True)
        except (BlockFailed, ValueError) as e:
            self.flush_python()
            self.outcomes[block.id] = Outcome(False, str(e))
        except Exception as e:  # a bug of this harness, or a command that hung
            self.outcomes[block.id] = Outcome(False, f"{type(e).__name__}: {e}")


def _normal(lines: list[str]) -> list[str]:
    out = [ln.rstrip() for ln in lines]
    while out and not out[-1]:
        out.pop()
    return out


def shell_commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command, output lines shown after it) of a shell block; continuation lines joined."""
    out: list[tuple[str, list[str]]] = []
    lines = block.code.splitlines()
    console = block.lang == "console"
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if console:
            if not line.startswith("$ "):
                if out:
                    out[-1][1].append(line)
                continue
            line = line[2:]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        out.append((line, []))
    return out


def yaml_kind(data: Any) -> str:
    """What a YAML block is, from its top-level keys."""
    if isinstance(data, list) and data and all(
            isinstance(s, dict) and (set(s) & STEP_KEYS or any("." in k for k in s))
            for s in data):
        return "steps"
    if not isinstance(data, dict):
        return "unknown"
    keys = set(data)
    if "product" in keys:
        return "product"
    if "cases" in keys:
        return "test-cases"
    if "workflow" in keys and "steps" in keys:
        return "workflow"
    if keys and keys <= PRODUCT_SECTIONS:
        return "resources"
    if "services" in keys:
        return "compose"
    if "openapi" in keys:
        return "openapi"
    return "unknown"


def first_of(block: Block) -> Block:
    return (block.chain or [block])[0]


def chain_members(first: Block) -> list[Block]:
    """The blocks of the chain that starts with `first`, in page order."""
    return [b for b in BLOCKS if first_of(b) is first]


def run_chain(first: Block, directory: Path) -> Chain | Outcome:
    """Run a whole chain once, its blocks in order (the outcome of each is kept)."""
    try:
        fresh = bool(first.options().get("fresh"))
    except ValueError as e:
        return Outcome(False, str(e))
    chain = Chain(directory, fresh)
    for b in chain_members(first):
        chain.run_block(b)
    chain.flush_python()
    return chain


@pytest.fixture(scope="session")
def chains(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Chain | Outcome]:
    """Every chain with a selected block, run once, several at a time (they are independent:
    each has its own directory, and their time goes to subprocesses)."""
    selected: dict[str, Block] = {}
    for item in request.session.items:
        block = getattr(item, "callspec", None) and item.callspec.params.get("block")
        if isinstance(block, Block) and block.lang not in NOT_EXECUTED:
            selected.setdefault(first_of(block).id, first_of(block))
    dirs = {key: tmp_path_factory.mktemp(re.sub(r"\W+", "-", key)) for key in selected}
    workers = max(2, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(run_chain, first, dirs[key])
                   for key, first in selected.items()}
        return {key: f.result() for key, f in futures.items()}


def chain_outcome(block: Block, chains: dict[str, Chain | Outcome]) -> Outcome:
    chain = chains.get(first_of(block).id)
    if chain is None:
        return Outcome(False, "the block's chain did not run")
    if isinstance(chain, Outcome):
        return chain
    own = chain.outcomes.get(block.id, Outcome(False, "the block did not run"))
    earlier = [b.id for b in block.chain if not chain.outcomes.get(b.id, own).ok]
    if earlier:
        return Outcome(False, f"an earlier block of this chain failed: {', '.join(earlier)}"
                              + ("" if own.ok else f"\nand this one too: {own.message}"))
    return own


BLOCKS = all_blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_code_block(block: Block, chains: dict[str, Chain | Outcome]) -> None:
    if block.lang in NOT_EXECUTED:
        pytest.skip(f"{block.lang}: {NOT_EXECUTED[block.lang]} (not executed)")
    outcome = chain_outcome(block, chains)
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    if not outcome.ok:
        pytest.fail(f"{block.id} ({block.lang}) failed:\n{outcome.message}", pytrace=False)
