"""The README's runnable examples stay runnable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_example(tmp_path: Path, name: str) -> str:
    # A copy of the repo's examples and specs, so runs don't write into the checkout.
    for part in ("examples", "specs"):
        shutil.copytree(ROOT / part, tmp_path / part,
                        ignore=shutil.ignore_patterns(".ductwork", "__pycache__"))
    proc = subprocess.run([sys.executable, str(tmp_path / "examples" / name)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_onboarding_example(tmp_path: Path) -> None:
    out = run_example(tmp_path, "onboarding.py")
    assert out.count('"status": "completed"') == 2
    assert "Subject: Welcome, John Doe!" in out


def test_lifecycle_example(tmp_path: Path) -> None:
    out = run_example(tmp_path, "lifecycle.py")
    assert "result: {'decision': 'approve', 'by': 'ann'}" in out
    assert "fulfil: completed {'held': 3, 'total': 30, 'carrier': 'dhl', 'parcel': 'P-book'}" in out
    assert "'status': 'cancelled'" in out and "'rolled_back_steps': ['open-ticket']" in out
    assert "nightly runs: ['completed', 'completed', 'completed']" in out
