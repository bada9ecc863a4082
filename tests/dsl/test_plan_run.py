"""Phase 5: a compiled YAML plan runs through ctx.step exactly like its hand-written Python twin."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.cli import main
from ductwork.errors import DuctworkError
from ductwork.testing.doubles import (
    MemoryAction,
    MemoryBroker,
    MemoryDatabase,
    MemoryNotification,
    MemoryStorage,
)

ROOT = Path(__file__).resolve().parents[2]
NO_STATE = shutil.ignore_patterns(".ductwork")  # databases a local `make run` left behind

PRODUCT = """
product: shop
envs: [dev, prd]
apps:
  courier:
    envs: {dev: {base_url: "http://127.0.0.1:9"}}
    events: {ship: {method: POST, path: /ship}, cancel: {method: POST, path: /cancel}}
databases:
  users-db:
    envs: {dev: {provider: sqlite}}
    tables: {users: {columns: {id: {type: integer, primary_key: true, auto: true},
                               email: text, name: text}}}
    events: {create-user: {op: insert, table: users}}
  audit-db:
    envs: {dev: {provider: sqlite}}
    tables: {logs: {columns: {id: {type: integer, primary_key: true, auto: true},
                              action: text, user_id: integer}}}
    events: {create-log: {op: insert, table: logs}}
  stock-db:
    envs: {dev: {provider: sqlite}}
    tables: {reservations: {columns: {id: {type: integer, primary_key: true, auto: true},
                                      sku: text, qty: integer, n: integer}}}
    events: {reserve: {op: insert, table: reservations},
             release: {op: delete, table: reservations}}
notifications:
  transactional:
    envs: {dev: {provider: outbox}}
    events: {welcome-email: {subject: "Hi {{ name }}", text: "Welcome {{ name }}"}}
storage:
  docs:
    envs: {dev: {provider: local}}
    events: {invoice: {}}
brokers:
  bus:
    envs: {dev: {provider: redis, url: "redis://127.0.0.1:6379/0"}}
    topics: {orders: {}}
"""

ONBOARDING = """
workflow: onboarding
input:
  type: object
  required: [email, name]
  properties: {email: {type: string}, name: {type: string}}
steps:
  - tag: create-user
    database.insert:
      database: users-db
      event: create-user
      data: {email: "${ctx.input.email}", name: "${ctx.input.name}"}
  - tag: send-welcome
    allow_fail: true
    notification.email:
      notification: transactional
      event: welcome-email
      recipients: ["${ctx.input.email}"]
      subject: {name: "${ctx.input.name}"}
      template: {name: "${ctx.input.name}"}
  - tag: audit-log
    database.insert:
      database: audit-db
      event: create-log
      data: {action: user_created, user_id: "${steps.create-user.id}"}
output: {success: true, userId: "${steps.create-user.id}"}
"""

FULFIL = """
workflow: fulfil
input:
  type: object
  required: [order_id, items, method]
  properties:
    order_id: {type: string}
    method: {type: string}
    fail: {type: boolean}
    items: {type: array}
steps:
  - tag: price
    python: tests.dsl.test_plan_run:price
    args: {items: "${ctx.input.items}"}
  - tag: lines
    foreach:
      items: "${ctx.input.items}"
      as: line
      concurrency: 1
      steps:
        - tag: reserve
          database.insert:
            database: stock-db
            event: reserve
            data: {sku: "${line.sku}", qty: "${line.qty}", n: "${index}"}
          rollback:
            database.delete: {database: stock-db, event: release, where: {id: "${result.id}"}}
  - parallel:
      - steps:
          - tag: invoice
            storage.upload:
              storage: docs
              event: invoice
              input: {buffer: "${json(steps.price)}", file_name: "${ctx.input.order_id}.json"}
      - steps:
          - tag: announce
            messaging.produce: {event: "bus:orders", message: {order: "${ctx.input.order_id}"}}
  - checkpoint: {name: reserved, metadata: {lines: "${len(steps.lines)}"}}
  - set: {reserved: "${len(steps.lines)}"}
  - tag: shipping
    switch:
      cases:
        - if: "${ctx.input.method == 'express'}"
          steps:
            - tag: ship-express
              action.run:
                app: courier
                event: ship
                input: {order: "${ctx.input.order_id}", speed: express}
              rollback:
                action.run: {app: courier, event: cancel, input: {tracking: "${result.tracking}"}}
      default:
        - tag: ship-standard
          action.run:
            app: courier
            event: ship
            input: {order: "${ctx.input.order_id}", speed: standard}
          rollback:
            action.run: {app: courier, event: cancel, input: {tracking: "${result.tracking}"}}
  - sleep: 10ms
  - log: {level: info, message: "shipped ${ctx.input.order_id}", data: {state: "${state.reserved}"}}
  - tag: check
    if: "${default(ctx.input.fail, false)}"
    fail: "order ${ctx.input.order_id} was asked to fail"
output:
  total: "${steps.price.total}"
  reserved: "${state.reserved}"
  first: "${steps.lines[0].reserve.id}"
  tracking: "${default(steps.ship-express.tracking, steps.ship-standard.tracking)}"
  checkpoint: "${ctx.checkpoint_name}"
"""


def price(ctx: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"total": sum(i["qty"] * 100 for i in items), "lines": len(items)}


class Asked(DuctworkError):
    """What the Python twin raises where the YAML has `fail:` (the same message)."""


class RecordingDatabase(MemoryDatabase):
    def __init__(self, events: Mapping[str, str]) -> None:
        super().__init__(events)
        self.calls: list[tuple[str, str, Any]] = []

    async def insert(self, event: str, data: Any) -> Any:
        self.calls.append(("insert", event, data))
        return await super().insert(event, data)

    async def delete(self, event: str, where: Mapping[str, Any] | None) -> bool:
        self.calls.append(("delete", event, dict(where or {})))
        return True


class Doubles:
    """A fresh set of in-memory connectors, registered on one Ductwork."""

    def __init__(self, dw: Ductwork, *, mail_fails: bool = False) -> None:
        self.users = RecordingDatabase({"create-user": "users"})
        self.audit = RecordingDatabase({"create-log": "logs"})
        self.stock = RecordingDatabase({"reserve": "reservations", "release": "reservations"})
        self.mail = MemoryNotification(fail=mail_fails)
        self.courier = MemoryAction({
            "ship": lambda i: {"tracking": f"{i['speed']}-{i['order']}"},
            "cancel": {"cancelled": True},
        })
        self.docs = MemoryStorage()
        self.bus = MemoryBroker()
        for kind, name, conn in (
            ("database", "users-db", self.users), ("database", "audit-db", self.audit),
            ("database", "stock-db", self.stock), ("notification", "transactional", self.mail),
            ("action", "courier", self.courier), ("storage", "docs", self.docs),
            ("broker", "bus", self.bus),
        ):
            dw.connectors.register(kind, name, conn)

    def record(self) -> dict[str, Any]:
        return {"users": self.users.calls, "audit": self.audit.calls, "stock": self.stock.calls,
                "mail": self.mail.sent, "courier": self.courier.calls,
                "docs": sorted(self.docs.files), "bus": self.bus.messages}


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    root = tmp_path / "specs" / "shop"
    (root / "workflows").mkdir(parents=True)
    (root / "product.yaml").write_text(PRODUCT)
    (root / "workflows" / "onboarding.yaml").write_text(ONBOARDING)
    (root / "workflows" / "fulfil.yaml").write_text(FULFIL)
    return tmp_path / "specs"


def define_twins(dw: Ductwork) -> None:
    """The hand-written Python versions of the two YAML workflows."""

    @dw.workflows.workflow(product="shop", tag="onboarding-py")
    async def onboarding(ctx: Any) -> Any:
        user = await ctx.step("create-user", lambda: ctx.database.insert(
            database="users-db", event="create-user",
            data={"email": ctx.input.email, "name": ctx.input.name}))
        await ctx.step("send-welcome", lambda: ctx.notification.email(
            notification="transactional", event="welcome-email", recipients=[ctx.input.email],
            subject={"name": ctx.input.name}, template={"name": ctx.input.name}),
            None, {"allow_fail": True})
        await ctx.step("audit-log", lambda: ctx.database.insert(
            database="audit-db", event="create-log",
            data={"action": "user_created", "user_id": user["id"]}))
        return {"success": True, "userId": user["id"]}

    @dw.workflows.workflow(product="shop", tag="fulfil-py")
    async def fulfil(ctx: Any) -> Any:
        order = ctx.input.order_id
        total = await ctx.step("price", lambda: price(ctx, items=ctx.input["items"]))

        async def one(line: dict[str, Any], index: int) -> dict[str, Any]:
            reserve = await ctx.step(
                "reserve",
                lambda: ctx.database.insert(database="stock-db", event="reserve",
                                            data={"sku": line["sku"], "qty": line["qty"],
                                                  "n": index}),
                lambda result: ctx.database.delete(database="stock-db", event="release",
                                                   where={"id": result["id"]}))
            return {"reserve": reserve}

        lines = await ctx.foreach(ctx.input["items"], one, concurrency=1)

        # async def, like the YAML calls: a sync lambda would run in a worker thread, and the
        # two branches' finishing order (compared with the YAML run's) would be a race.
        async def invoice() -> Any:
            return await ctx.storage.upload(
                storage="docs", event="invoice",
                input={"buffer": json.dumps(total, separators=(",", ":")),
                       "file_name": f"{order}.json"})

        async def announce() -> Any:
            return await ctx.messaging.produce(event="bus:orders", message={"order": order})

        await ctx.parallel([lambda: ctx.step("invoice", invoice),
                            lambda: ctx.step("announce", announce)])
        await ctx.checkpoint("reserved", {"lines": len(lines)})
        await ctx.set_state("reserved", len(lines))
        speed = "express" if ctx.input.method == "express" else "standard"
        shipped = await ctx.step(
            f"ship-{speed}",
            lambda: ctx.action.run(app="courier", event="ship",
                                   input={"order": order, "speed": speed}),
            lambda result: ctx.action.run(app="courier", event="cancel",
                                          input={"tracking": result["tracking"]}))
        await ctx.sleep(10)
        ctx.log.info(f"shipped {order}", {"state": ctx.state["reserved"]})
        if ctx.input.get("fail"):
            async def stop() -> None:
                raise Asked(f"order {order} was asked to fail")

            await ctx.step("check", stop)
        return {"total": total["total"], "reserved": ctx.state["reserved"],
                "first": lines[0]["reserve"]["id"], "tracking": shipped["tracking"],
                "checkpoint": ctx.checkpoint_name}


async def run_twins(specs: Path, store: str, tag: str, data: dict[str, Any],
                    **kw: Any) -> list[tuple[dict[str, Any], dict[str, Any], Any]]:
    """Run the YAML workflow and its Python twin on fresh doubles; result, calls, logs each."""
    out = []
    for which in (tag, f"{tag}-py"):
        async with Ductwork(specs=specs, store=store, inline_wait="5s") as dw:
            define_twins(dw)
            doubles = Doubles(dw, **kw)
            result = await dw.workflows.execute(product="shop", env="dev", tag=which, input=data)
            summary = result.to_dict()
            summary.pop("workflow_id")
            summary.pop("execution_time")
            summary["rollback_result"] = result.rollback_result
            logs = [(lg["level"], lg["message"], lg["data"])
                    for lg in await dw.workflows.logs(result.workflow_id)]
            out.append((summary, doubles.record(), logs))
    return out


async def test_seed_onboarding_yaml_equals_python(specs: Path, store_url: str) -> None:
    data = {"email": "john@example.com", "name": "John Doe"}
    (yaml_run, py_run) = await run_twins(specs, store_url, "onboarding", data)
    assert yaml_run == py_run
    summary, calls, _ = yaml_run
    assert summary["status"] == "completed"
    assert summary["output"] == {"success": True, "userId": 1}
    assert summary["completed_steps"] == ["create-user", "send-welcome", "audit-log"]
    assert calls["audit"] == [("insert", "create-log", {"action": "user_created", "user_id": 1})]


async def test_allow_fail_in_yaml_equals_python(specs: Path, store_url: str) -> None:
    data = {"email": "john@example.com", "name": "John Doe"}
    (yaml_run, py_run) = await run_twins(specs, store_url, "onboarding", data, mail_fails=True)
    assert yaml_run == py_run
    summary, calls, logs = yaml_run
    assert summary["status"] == "completed"
    assert summary["completed_steps"] == ["create-user", "audit-log"]
    assert calls["mail"] == []
    assert any("send-welcome" in message for _, message, _ in logs)


@pytest.mark.parametrize("method", ["express", "standard"])
async def test_control_flow_yaml_equals_python(specs: Path, store_url: str, method: str) -> None:
    data = {"order_id": "o-1", "method": method,
            "items": [{"sku": "book", "qty": 2}, {"sku": "pen", "qty": 1}]}
    (yaml_run, py_run) = await run_twins(specs, store_url, "fulfil", data)
    assert yaml_run == py_run
    summary, calls, logs = yaml_run
    assert summary["status"] == "completed", summary["error"]
    assert summary["output"] == {"total": 300, "reserved": 2, "first": 1,
                                 "tracking": f"{method}-o-1", "checkpoint": "reserved"}
    assert summary["completed_steps"] == ["price", "reserve", "invoice", "announce",
                                          f"ship-{method}"]
    assert [c[2]["n"] for c in calls["stock"]] == [0, 1]
    assert calls["bus"] == [("orders", {"order": "o-1"})]
    assert calls["docs"] == ["invoice/o-1.json"]
    assert logs == [("info", "shipped o-1", {"state": 2})]


async def test_failure_rolls_back_newest_first_like_python(specs: Path, store_url: str) -> None:
    data = {"order_id": "o-2", "method": "express", "fail": True,
            "items": [{"sku": "book", "qty": 2}, {"sku": "pen", "qty": 1}]}
    (yaml_run, py_run) = await run_twins(specs, store_url, "fulfil", data)
    assert yaml_run == py_run
    summary, calls, _ = yaml_run
    assert summary["status"] == "rolled_back"
    assert summary["failed_step"] == "check"
    assert summary["error"] == "Step 'check' failed: order o-2 was asked to fail"
    # the shipment is cancelled first, then the reservations, newest first
    assert calls["courier"][-1] == ("cancel", {"tracking": "express-o-2"})
    assert calls["stock"][-2:] == [("delete", "release", {"id": 2}),
                                   ("delete", "release", {"id": 1})]


async def test_retries_and_python_steps(tmp_path: Path, store_url: str) -> None:
    specs = tmp_path / "specs"
    (specs / "shop" / "workflows").mkdir(parents=True)
    (specs / "shop" / "product.yaml").write_text("product: shop\nenvs: [dev]\n")
    (specs / "shop" / "workflows" / "flaky.yaml").write_text(textwrap.dedent("""
        workflow: flaky
        steps:
          - tag: try-hard
            python: tests.dsl.test_plan_run:flaky
            args: {succeed_on: 3, secret: "${env.DW_TEST_TOKEN}"}
            retries: 2
            retry_delay: 1ms
        output: "${steps.try-hard}"
    """))
    FLAKY.clear()
    async with Ductwork(specs=specs, store=store_url, secrets={"DW_TEST_TOKEN": "s3cr3t-xyz"}
                        ) as dw:
        result = await dw.workflows.execute(product="shop", env="dev", tag="flaky")
    assert result.status == "completed", result.error
    assert result.output == {"attempt": 3, "secret_length": 10}


FLAKY: list[int] = []


async def flaky(ctx: Any, succeed_on: int, secret: str) -> dict[str, Any]:
    FLAKY.append(1)
    if len(FLAKY) < succeed_on:
        raise RuntimeError(f"attempt {len(FLAKY)} failed")
    return {"attempt": len(FLAKY), "secret_length": len(secret)}


async def test_expression_error_at_run_time_fails_the_step(specs: Path, store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        Doubles(dw)
        result = await dw.workflows.execute(
            product="shop", env="dev", tag="fulfil",
            input={"order_id": "o-3", "method": "express", "items": [{"sku": "x"}]})
    assert result.status == "failed"
    assert result.failed_step == "price"
    assert "qty" in (result.error or "")


async def test_run_time_expression_errors_name_the_yaml_place(specs: Path,
                                                              store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        Doubles(dw)
        result = await dw.workflows.execute(
            product="shop", env="dev", tag="fulfil",
            input={"order_id": "o-5", "method": "express", "items": [{"qty": 1}]})
    assert result.status == "failed"  # nothing with a rollback had completed
    assert result.failed_step == "reserve"
    path = specs / "shop" / "workflows" / "fulfil.yaml"
    assert result.error == (
        "Step 'reserve' failed: line has no field 'sku' (fields: qty) "
        f"(in {path}:21:11)")


async def test_the_example_specs_run_end_to_end(tmp_path: Path, store_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """specs/ as shipped: real SQLite databases and the outbox, in a scratch copy."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs", ignore=NO_STATE)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    async with Ductwork(specs="specs", store=store_url) as dw:
        onboarded = await dw.workflows.execute(
            product="my-product", env="dev", tag="user-onboarding",
            input={"email": "jane@example.com", "name": "Jane Doe"})
        order = await dw.workflows.execute(
            product="my-product", env="dev", tag="order-fulfilment",
            input={"order_id": "o-9", "email": "jane@example.com", "shipping": "express",
                   "items": [{"sku": "book", "quantity": 1}]})
    assert onboarded.status == "completed", onboarded.error
    assert onboarded.output == {"success": True, "userId": 1}
    assert onboarded.completed_steps == ["create-user", "send-welcome", "audit-log"]
    assert (tmp_path / "specs" / "my-product" / ".ductwork" / "users.db").exists()
    assert order.status == "completed", order.error
    assert order.output == {"order_id": "o-9", "total": 1200, "reservations": 1,
                            "tracking": "EXPRESS-o-9"}


def test_run_command_prints_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(ROOT / "specs", tmp_path / "specs", ignore=NO_STATE)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.json").write_text('{"email": "a@example.com", "name": "Ann"}')
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    assert main(["run", "my-product", "user-onboarding", "--env", "dev",
                 "--input", "@input.json", "--store", store]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "completed"
    assert out["output"] == {"success": True, "userId": 1}
    assert main(["run", "my-product", "user-onboarding", "--input", "{bad", "--store",
                 store]) == 1
    assert "not valid JSON" in capsys.readouterr().err


APPROVAL = """
workflow: approval
signals: {approved: {type: object}}
steps:
  - tag: create-user
    database.insert: {database: users-db, event: create-user, data: {email: a@b.c}}
  - tag: approval
    wait_for_signal: {name: approved, timeout: 1h}
  - tag: audit-log
    database.insert:
      database: audit-db
      event: create-log
      data: {action: "approved by ${steps.approval.by}", user_id: "${steps.create-user.id}"}
output: {by: "${steps.approval.by}", user: "${steps.create-user.id}"}
"""


async def test_a_suspended_yaml_run_resumes_by_replay(specs: Path, store_url: str) -> None:
    (specs / "shop" / "workflows" / "approval.yaml").write_text(APPROVAL)
    async with Ductwork(specs=specs, store=store_url, inline_wait="50ms") as dw:
        doubles = Doubles(dw)
        first = await dw.workflows.execute(product="shop", env="dev", tag="approval",
                                           timeout="200ms")
        assert first.status == "running"
        await dw.workflows.signal(first.workflow_id, "approved", {"by": "ann"})
        done = await dw.workflows.result(first.workflow_id, timeout="10s")
    assert done.status == "completed", done.error
    assert done.output == {"by": "ann", "user": 1}
    assert done.completed_steps == ["create-user", "audit-log"]
    # the replay returned the recorded insert: the user was created once
    assert [c[0] for c in doubles.users.calls] == ["insert"]
    assert doubles.audit.calls == [
        ("insert", "create-log", {"action": "approved by ann", "user_id": 1})]


PARENT = """
workflow: parent
input: {type: object, properties: {email: {type: string}}}
steps:
  - tag: signup
    workflow: {tag: onboarding, input: {email: "${ctx.input.email}", name: Child}}
  - tag: note
    database.insert:
      database: audit-db
      event: create-log
      data: {action: child_done, user_id: "${steps.signup.userId}"}
output: {child: "${steps.signup}"}
"""


async def test_child_workflow_step(specs: Path, store_url: str) -> None:
    (specs / "shop" / "workflows" / "parent.yaml").write_text(PARENT)
    async with Ductwork(specs=specs, store=store_url) as dw:
        doubles = Doubles(dw)
        result = await dw.workflows.execute(product="shop", env="dev", tag="parent",
                                            input={"email": "kid@example.com"})
        child = await dw.workflows.status(f"{result.workflow_id}:signup")
    assert result.status == "completed", result.error
    assert result.output == {"child": {"success": True, "userId": 1}}
    assert child["status"] == "completed"
    assert doubles.audit.calls[-1] == ("insert", "create-log",
                                       {"action": "child_done", "user_id": 1})
