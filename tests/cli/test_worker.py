"""`ductwork worker --max-faults N` (and `ductwork server`, which shares the app options)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ductwork import Ductwork
from ductwork.cli import main
from tests.workflows.helpers import eventually, log_lines, start_worker_process
from tests.workflows.worker_app import build


@pytest.mark.slow
async def test_max_faults_of_a_worker_process_overrides_the_app_s_own(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    log = str(tmp_path / "effects.log")
    dw = build(store, log)  # the app's own max_faults: the default, 3
    async with dw:
        await dw.workflows.dispatch("w", "dev", "poison", workflow_id="p1")
        proc = start_worker_process(store, log, "--max-faults", "1", fault=True)
        try:
            await eventually(None, lambda: _status(dw, "p1", "failed"), timeout=60)
            await dw.workflows.dispatch("w", "dev", "tick", workflow_id="t1")
            await eventually(None, lambda: _status(dw, "t1", "completed"), timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        res = await dw.workflows.result("p1")
    assert res.error is not None
    assert res.error.startswith("ductwork failed to process this run 1 times in a row")
    assert log_lines(log).count("fault p1") == 1  # failed at the first fault, not the third
    assert "ductwork failed to process it (1 of 1)" in err.decode()


async def _status(dw: Ductwork, wid: str, status: str) -> bool:
    run = await dw.store.get_run(wid)
    return run is not None and run.status == status


@pytest.mark.parametrize("command", ["worker", "server"])
@pytest.mark.parametrize(("value", "code", "message"), [
    ("0", 1, "error: --max-faults must be a whole number >= 1 (the failures of ductwork "
             "itself in a row after which a run is failed; 1 fails it at the first), got 0"),
    ("-2", 1, "error: --max-faults must be a whole number >= 1"),
    ("three", 2, "argument --max-faults: invalid int value: 'three'"),
])
def test_a_bad_max_faults_is_refused_before_anything_starts(
        tmp_path: Path, command: str, value: str, code: int, message: str) -> None:
    store = tmp_path / "runs.db"
    proc = subprocess.run(
        [sys.executable, "-m", "ductwork.cli", command, "--store", f"sqlite:///{store}",
         "--max-faults", value], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == code
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not store.exists()  # nothing was opened, let alone created


def test_load_app_sets_max_faults_on_the_instance(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ductwork.cli.worker import load_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))

    dw = load_app(specs=None, store=f"sqlite:///{tmp_path / 'r.db'}", max_faults=7)
    assert dw.runtime.max_faults == 7
    assert load_app(store=f"sqlite:///{tmp_path / 'r.db'}").runtime.max_faults == 3


@pytest.mark.parametrize("option,value", [("--poll", "1"), ("--grace", "30")])
def test_a_bare_small_poll_or_grace_is_refused_as_milliseconds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str) -> None:
    store = tmp_path / "runs.db"
    assert main(["worker", "--store", f"sqlite:///{store}", option, value]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {option} {value} means {value} milliseconds: write {option} {value}s for "
        f"seconds, or {value}ms to keep milliseconds")
    assert not store.exists()
