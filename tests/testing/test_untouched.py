"""`ductwork test` on every shipped spec leaves every file outside its sandbox as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ductwork_command() -> list[str]:
    """The installed `ductwork` script next to this interpreter, as a user runs it."""
    script = Path(sys.executable).parent / "ductwork"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ductwork.cli"]


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder`, with the hash of each file's bytes."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_ductwork_test_on_the_shipped_specs_changes_no_file(tmp_path: Path) -> None:
    work = tmp_path / "project"
    for folder in ("specs", "examples"):  # the order workflow's python: steps are in examples/
        shutil.copytree(ROOT / folder, work / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".ductwork"))
    scratch = tmp_path / "tmp"  # where the cases' sandboxes go (TMPDIR)
    scratch.mkdir()
    before = tree(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUCTWORK_", "PYTHON"))}
    env.update(TMPDIR=str(scratch), HOME=str(tmp_path), PYTHONPATH=str(work))
    done = subprocess.run([*ductwork_command(), "test", "specs"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout and "FAIL" not in done.stdout
    cases = done.stdout.count("  PASS  ")
    assert cases >= 40 and done.stdout.rstrip().endswith(f"{cases} passed, 0 failed")

    after = tree(work)
    assert sorted(set(after) - set(before)) == []       # nothing new (no .ductwork, no pycache)
    assert sorted(set(before) - set(after)) == []       # nothing removed
    assert [p for p in before if before[p] != after[p]] == []   # every byte as it was
    assert list(scratch.iterdir()) == []                 # and every sandbox removed
    assert not (tmp_path / ".ductwork").exists()
