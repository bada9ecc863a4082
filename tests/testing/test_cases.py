"""`ductwork test`: YAML test cases run against the example product and broken test files."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from ductwork.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def product(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of specs/my-product without its tests; run from the repo (python: steps)."""
    dest = tmp_path / "specs" / "my-product"
    shutil.copytree(ROOT / "specs" / "my-product", dest,
                    ignore=shutil.ignore_patterns("tests"))
    (dest / "tests").mkdir()
    monkeypatch.chdir(ROOT)
    return dest


def write(product: Path, name: str, text: str) -> Path:
    path = product / "tests" / name
    path.write_text(textwrap.dedent(text))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["test", *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_the_example_products_cases_pass(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in ("specs", "examples"):  # a copy: python: steps import examples.fulfilment
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".ductwork"))
    monkeypatch.chdir(tmp_path)
    code, out = run(capsys, "specs")
    assert code == 0, out
    assert "FAIL" not in out
    lines = out.splitlines()
    headers = [line for line in lines if line.startswith("specs/")]  # one per test file
    assert len(headers) >= 3
    assert out.count("PASS") == len(lines) - len(headers) - 1  # and the summary
    assert "specs/my-product/tests/order-fulfilment.yaml" in out
    assert out.rstrip().endswith("passed, 0 failed")


def test_failed_expectations_are_reported_per_case(
        product: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(product, "onboarding.yaml", """\
        workflow: user-onboarding
        cases:
          - name: right
            input: {email: a@example.com, name: A}
            mocks:
              create-user: {result: {id: 1}}
              send-welcome: {result: {}}
              audit-log: {result: {id: 1}}
            expect: {status: completed, output: {success: true, userId: 1}}
          - name: wrong
            input: {email: b@example.com, name: B}
            mocks:
              create-user: {result: {id: 2}}
              send-welcome: {result: {}}
              audit-log: {error: disk full}
            expect:
              status: completed
              output: {success: true, userId: 2}
              completed_steps: [create-user, send-welcome, audit-log]
              steps:
                audit-log: {attempts: 2}
        """)
    code, out = run(capsys, str(product.parent))
    assert code == 1
    assert "PASS  user-onboarding: right" in out
    assert "FAIL  user-onboarding: wrong" in out
    assert ("status: expected 'completed', got 'failed' (Step 'audit-log' failed: "
            "RuntimeError: disk full)") in out
    assert 'output: expected {"success": true, "userId": 2}, got null' in out
    assert ("completed_steps: expected ['create-user', 'send-welcome', 'audit-log'], got "
            "['create-user', 'send-welcome']") in out
    assert "step 'audit-log': 1 attempt(s), expected 2" in out
    assert out.rstrip().endswith("1 passed, 1 failed")

    code, out = run(capsys, str(product.parent), "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["ok"] and (doc["passed"], doc["failed"]) == (1, 1)
    wrong = doc["cases"][1]
    assert wrong["name"] == "wrong" and wrong["status"] == "failed" and len(wrong["problems"]) == 4

    code, out = run(capsys, str(product.parent), "-k", "right")
    assert code == 0 and "wrong" not in out


def test_retries_signals_rollbacks_and_subset_output(
        product: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(product, "more.yaml", """\
        cases:
          - name: retried charge
            workflow: charge-payment
            input: {amount: 5, email: a@example.com}
            mocks:
              charge-payment:
                sequence: [{error: "503"}, {error: "503"}, {result: {id: ch, status: ok}}]
              record-payment: {result: {id: 1}}
            expect:
              output: {chargeId: ch, status: ok}
              steps: {charge-payment: {attempts: 3, status: completed}}
          - name: pickup
            workflow: order-fulfilment
            input: {order_id: o, email: e@example.com, shipping: pickup,
                    items: [{sku: pen, quantity: 1}]}
            mocks:
              store-invoice: {result: {}}
              audit-order: {result: {}}
              notify-customer: {result: {}}
            signals: {picked-up: {}}
            expect:
              output_contains: {order_id: o, reservations: 1}
          - name: released on failure
            workflow: order-fulfilment
            input: {order_id: o2, email: e@example.com, shipping: express,
                    items: [{sku: pen, quantity: 1}, {sku: mug, quantity: 1}]}
            mocks:
              store-invoice: {result: {}}
              audit-order: {result: {}}
              ship-express: {error: truck broke down}
            expect:
              status: rolled_back
              failed_step: ship-express
              error: truck broke down
              rolled_back: [reserve, reserve]
        """)
    code, out = run(capsys, str(product / "tests" / "more.yaml"))
    assert code == 0, out
    assert out.count("PASS") == 3


def test_mistakes_in_test_files_are_located(product: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write(product, "broken.yaml", """\
        workflow: user-onboarding
        cases:
          - name: typos
            input: {email: a@example.com, name: A}
            mocks:
              create-usr: {result: {id: 1}}
              audit-log: {value: 1}
            expect:
              statuz: completed
              completed_steps: [create-user, send-welcom]
          - name: unknown workflow
            workflow: user-onboardin
            expect: {status: done}
        """)
    code, out = run(capsys, str(product.parent))
    assert code == 1
    shown = str(path)
    assert f"{shown}:6:7: the workflow has no step 'create-usr'" in out
    assert "hint: did you mean 'create-user'?" in out
    assert f"{shown}:7:18: a mock is one of {{result: VALUE}}" in out
    assert f"{shown}:9:7: unknown key 'statuz' in expect" in out
    assert "did you mean 'status'?" in out
    assert f"{shown}:10:38: the workflow has no step 'send-welcom'" in out
    assert f"{shown}:12:15: unknown workflow 'user-onboardin'" in out
    assert "   6 |       create-usr: {result: {id: 1}}\n     |       ^\n" in out  # with a caret
    assert "PASS" not in out and "FAIL" not in out  # cases with mistakes do not run
    assert out.rstrip().endswith("0 passed, 0 failed, 5 errors in test files")


def test_a_signal_the_workflow_never_waits_for_is_located(
        product: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (product / "workflows" / "approve.yaml").write_text(textwrap.dedent("""\
        workflow: approve
        signals: {approve: {type: object}}
        steps:
          - tag: decision
            wait_for_signal: {name: approve, timeout: 1d}
          - tag: ship
            workflow: {tag: ship, input: {}}
        """))
    (product / "workflows" / "ship.yaml").write_text(textwrap.dedent("""\
        workflow: ship
        steps:
          - tag: picked-up
            wait_for_signal: {name: picked-up, timeout: 1d}
        """))
    path = write(product, "approve.yaml", """\
        workflow: approve
        cases:
          - name: typo in the signal
            signals: {aprove: {by: ann}, picked-up: {}}
          - name: a list of signals
            signals: [{name: approve, payload: {}}, {name: picked_up, payload: {}}]
          - name: right
            signals: {approve: {}, picked-up: {}}
            expect: {status: completed}
        """)
    write(product, "onboarding.yaml", """\
        workflow: user-onboarding
        cases:
          - name: it waits for nothing
            input: {email: a@example.com, name: A}
            signals: {approve: {}}
        """)
    code, out = run(capsys, str(product.parent))
    shown = str(path)
    assert f"{shown}:4:15: the workflow never waits for signal 'aprove'" in out
    assert "hint: did you mean 'approve'?" in out
    assert f"{shown}:6:52: the workflow never waits for signal 'picked_up'" in out
    assert "hint: did you mean 'picked-up'?" in out
    assert "the workflow never waits for signal 'approve'" in out
    assert "hint: it waits for no signal: remove it" in out
    assert code == 1 and "1 passed, 0 failed, 3 errors in test files" in out


def test_near_misses_of_test_file_keys_are_named(product: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = write(product, "onboarding.yaml", """\
        workflow: user-onboarding
        case:
          - name: singular
        """)
    mock = write(product, "mocks.yaml", """\
        workflow: user-onboarding
        cases:
          - input: {email: a@example.com, name: A}
            mocks: {create-user: {returns: {id: 7}}, audit-log: {reslt: 1}}
        """)
    code, out = run(capsys, str(product.parent))
    assert code == 1
    assert f"{path}:2:1: unknown key 'case' in the test file" in out
    assert "hint: did you mean 'cases'? (a list of cases)" in out
    assert f"{mock}:4:26: a mock is one of" in out
    assert "hint: 'returns' is not one of them: write result: for what the step returns" in out
    assert "hint: 'reslt' is not one of them: did you mean 'result'?" in out


def test_a_case_input_the_schema_refuses_is_located(product: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write(product, "onboarding.yaml", """\
        workflow: user-onboarding
        cases:
          - name: no name
            input: {email: a@example.com}
          - name: no input at all
          - name: wrong type
            input: {email: 7, name: A}
        """)
    code, out = run(capsys, str(product.parent))
    assert code == 1
    assert f"{path}:4:12: the input does not match the workflow's input schema: 'name' is a " \
           "required property" in out
    assert "hint: add name: ... to the case's input" in out
    assert f"{path}:5:5: the input does not match the workflow's input schema: 'email' is a " \
           "required property" in out
    assert f"{path}:7:20: the input does not match the workflow's input schema: 7 is not of " \
           "type 'string'" in out
    assert "PASS" not in out and "FAIL" not in out and "could not run" not in out


def test_an_env_or_a_step_status_that_cannot_be_is_located(
        product: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(product, "onboarding.yaml", """\
        workflow: user-onboarding
        cases:
          - name: production
            env: production
            input: {email: a@example.com, name: A}
          - name: done is not a status
            input: {email: a@example.com, name: A}
            mocks: {create-user: {error: boom}}
            expect:
              status: failed
              steps:
                create-user: {status: done}
        """)
    code, out = run(capsys, str(product.parent))
    assert code == 1
    assert f"{path}:4:10: workflow 'user-onboarding' does not run in env 'production'" in out
    assert "hint: its envs: dev, prd, staging" in out
    assert f"{path}:12:31: unknown step status 'done'" in out
    assert "hint: one of completed, failed, skipped, running (skipped: an allow_fail step " \
           "that failed)" in out
    assert "PASS" not in out and "FAIL" not in out


def test_k_that_matches_nothing_and_a_workflows_folder_say_so(
        product: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(product, "onboarding.yaml", """\
        workflow: user-onboarding
        cases:
          - name: welcomed
            input: {email: a@example.com, name: A}
        """)
    code, out = run(capsys, str(product.parent), "-k", "refund")
    assert code == 1
    assert out.strip() == "no case matches -k 'refund' (its workflow and name are searched, " \
                          "1 case found)"
    code, out = run(capsys, str(product / "workflows"))
    assert code == 1
    assert f"{product / 'workflows'}: no product folder (one with product.yaml) here; test " \
           f"cases live in {product / 'tests'}: run ductwork test {product}" in out


def test_no_cases_and_missing_paths(product: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, str(product.parent))
    assert code == 1 and "no test cases found: put them in <product>/tests/*.yaml" in out
    code, out = run(capsys, str(tmp_path / "nowhere"))
    assert code == 1 and "nowhere: no such file or folder" in out
    stray = tmp_path / "stray.yaml"
    stray.write_text("cases: []\n")
    code, out = run(capsys, str(stray))
    assert code == 1 and "a test file lives in <product>/tests/" in out
    write(product, "empty.yaml", "workflow: user-onboarding\n")
    code, out = run(capsys, str(product.parent))
    assert code == 1 and "a test file is a mapping with a `cases:` list" in out


def test_validate_ignores_the_tests_folder(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    assert main(["validate", "specs"]) == 0
    assert "tests/" not in capsys.readouterr().out


def test_a_mocked_steps_rollback_is_mocked_too(product: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write(product, "refunds.yaml", """\
        workflow: charge-payment
        cases:
          - name: the refund is answered, not sent
            input: {amount: 5, email: a@example.com}
            mocks:
              charge-payment: {result: {id: ch_1, status: ok}}
              record-payment: {error: disk full}
            expect:
              status: rolled_back
              rolled_back: [charge-payment]
              steps:
                charge-payment: {rollback: rolled_back}
                record-payment: {rollback: not_run}
          - name: a failing refund
            input: {amount: 5, email: a@example.com}
            mocks:
              charge-payment: {result: {id: ch_2}, rollback: {error: already refunded}}
              record-payment: {error: disk full}
            expect:
              status: failed
              error: "rollback failed for 'charge-payment'"
              rolled_back: []
              steps: {charge-payment: {rollback: failed}}
          - name: a wrong expectation about the rollback
            input: {amount: 5, email: a@example.com}
            mocks:
              charge-payment: {result: {id: ch_3}}
              record-payment: {error: disk full}
            expect:
              status: rolled_back
              steps: {charge-payment: {rollback: not_run}}
          - name: only the rollback is mocked, so the charge really runs
            input: {amount: 5, email: a@example.com}
            mocks:
              charge-payment: {rollback: {result: refunded}}
            expect:
              status: failed
              error: "action/stripe (env dev): a network service (http), which a test run"
              steps: {charge-payment: {attempts: 1, rollback: not_run}}
        """)
    code, out = run(capsys, str(product / "tests" / "refunds.yaml"))
    assert code == 1, out
    assert out.count("PASS") == 3, out
    assert "FAIL  charge-payment: a wrong expectation about the rollback" in out
    assert "step 'charge-payment': rollback 'rolled_back', expected 'not_run'" in out


def test_mistakes_in_rollback_mocks_are_located(product: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write(product, "bad.yaml", """\
        workflow: charge-payment
        cases:
          - input: {amount: 5, email: a@example.com}
            mocks:
              charge-payment: {result: {id: 1}, rollback: refunded}
              record-payment: {result: 1, error: both}
            expect:
              steps: {charge-payment: {rollback: done}}
        """)
    code, out = run(capsys, str(product.parent))
    assert code == 1
    assert f"{path}:5:51: a rollback mock is {{result: VALUE}} (it succeeds) or" in out
    assert f"{path}:6:23: a mock is one of {{result: VALUE}}" in out
    assert f"{path}:8:42: unknown rollback 'done'" in out
    assert "did you mean 'not_run'?" in out or "one of rolled_back, failed, not_run" in out


def test_unmocked_steps_write_into_a_sandbox_of_their_own(
        product: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # users-db on an absolute path outside the product folder: moved into the sandbox too
    outside = tmp_path / "outside" / "users.db"
    text = (product / "product.yaml").read_text()
    (product / "product.yaml").write_text(text.replace(
        '"sqlite:///.ductwork/users.db"', f'"sqlite:///{outside}"'))
    write(product, "real.yaml", """\
        workflow: user-onboarding
        cases:
          - name: first
            input: {email: a@example.com, name: A}
            expect: {status: completed, output: {success: true, userId: 1}}
          - name: second, on fresh databases (the same email again, and id 1 again)
            input: {email: a@example.com, name: A}
            expect:
              status: completed
              output: {success: true, userId: 1}
              completed_steps: [create-user, send-welcome, audit-log]
        """)
    code, out = run(capsys, str(product.parent))
    assert code == 0, out
    assert not outside.parent.exists()
    assert not (product / ".ductwork").exists()
    assert not (ROOT / ".ductwork").exists() or "users.db" not in os.listdir(ROOT / ".ductwork")
