"""The JSON Schema of YAML test-case files (`specs/<product>/tests/*.yaml`), for editors."""

from __future__ import annotations

from typing import Any

# The runner's own lists (ductwork.testing.cases, a layer above; a test keeps them equal).
STATUSES = ("completed", "failed", "rolled_back", "cancelled", "running")
ROLLBACKS = ("rolled_back", "failed", "not_run")


def _p(description: str, example: str, **schema: Any) -> dict[str, Any]:
    return {**schema, "description": f"{description} Example: `{example}`"}


_ANY = {"type": ["object", "array", "string", "number", "integer", "boolean", "null"]}
_ANSWER = {
    "result": _p("What the step returns instead of calling its connector.", "{id: 7}", **_ANY),
    "error": _p("The step fails with this message (every attempt).", "card declined",
                type="string"),
}


def build_testcases_schema() -> dict[str, Any]:
    mock = {
        "type": "object", "additionalProperties": False, "title": "mock",
        "description": "How a step is answered: `result`, `error` or a `sequence` of them "
                       "(one per attempt); `rollback` answers its rollback. Example: "
                       "`{error: card declined}`",
        "properties": {
            **_ANSWER,
            "sequence": _p("One answer per attempt, in order.",
                           "[{error: timeout}, {result: {id: 7}}]", type="array",
                           items={"type": "object", "additionalProperties": False,
                                  "properties": _ANSWER}),
            "rollback": _p("What the step's rollback returns or raises (a mocked step's "
                           "rollback is mocked: by default it succeeds).",
                           "{error: refund refused}", type="object",
                           additionalProperties=False, properties=_ANSWER),
        },
    }
    step_expect = {
        "type": "object", "additionalProperties": False, "title": "step expectations",
        "description": "What one step did. Example: `{status: skipped, error: refused}`",
        "properties": {
            "status": _p("The step's status.", "completed", type="string",
                         enum=["completed", "failed", "skipped", "running"]),
            "output": _p("The step's result, exactly.", "{id: 7}", **_ANY),
            "attempts": _p("How many times it ran (retries included).", "3",
                           type="integer", minimum=1),
            "error": _p("A text its error contains.", "card declined", type="string"),
            "rollback": _p("What happened to its rollback.", "rolled_back", type="string",
                           enum=list(ROLLBACKS)),
        },
    }
    expect = {
        "type": "object", "additionalProperties": False, "title": "expect",
        "description": "What the run must end with. Example: `{status: completed}`",
        "properties": {
            "status": _p("The run's final status.", "completed", type="string",
                         enum=list(STATUSES)),
            "output": _p("The run's output, exactly.", "{success: true}", **_ANY),
            "output_contains": _p("A subset the output must contain.", "{success: true}",
                                  type="object"),
            "completed_steps": _p("The steps that completed, in order.", "[create-user]",
                                  type="array", items={"type": "string"}),
            "failed_step": _p("The step the run failed at.", "charge", type="string"),
            "error": _p("A text the run's error contains.", "card declined", type="string"),
            "rolled_back": _p("The steps compensated, newest first.", "[reserve]",
                              type="array", items={"type": "string"}),
            "steps": _p("Expectations per step tag.", "{charge: {attempts: 3}}",
                        type="object", additionalProperties=step_expect),
        },
    }
    case = {
        "type": "object", "additionalProperties": False, "required": ["name"],
        "title": "case", "description": "One test case. Example: `{name: a new user is "
                                        "welcomed, input: {email: ann@example.com}}`",
        "properties": {
            "name": _p("What the case shows.", "a declined card releases the stock",
                       type="string"),
            "workflow": _p("The workflow's tag (default: the file's).", "user-onboarding",
                           type="string"),
            "env": _p("The environment (default: the file's, else dev).", "dev",
                      type="string"),
            "workflow_id": _p("The run's id.", "order-42", type="string"),
            "input": _p("The workflow's input.", "{email: ann@example.com}", **_ANY),
            "mocks": _p("Answers per step tag: the step does not call its connector.",
                        "{charge: {result: {id: ch_1}}}", type="object",
                        additionalProperties=mock),
            "signals": _p("Signals by name, delivered when the run waits for them.",
                          "{approve: {by: ann}}", type="object"),
            "expect": expect,
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ductwork test cases",
        "description": "Test cases of one product's YAML workflows, run by `ductwork test`. "
                       "Example: `workflow: user-onboarding`",
        "type": "object", "additionalProperties": False, "required": ["cases"],
        "properties": {
            "workflow": _p("The workflow the cases run (a case may name another).",
                           "user-onboarding", type="string"),
            "env": _p("The environment the cases run in.", "dev", type="string"),
            "description": _p("What the file tests.", "onboarding, happy and unhappy paths",
                              type="string"),
            "cases": _p("The cases, run in order, each on a fresh in-memory store.",
                        "[{name: ..., input: ..., expect: ...}]", type="array", items=case,
                        minItems=1),
        },
    }
