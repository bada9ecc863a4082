"""specs/hr-system expense-approval (the docs' Approval Workflow): the getStatus query while the
request waits for each approver, which YAML test cases cannot ask, and what each step sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ductwork.testing import WorkflowTestEnv
from ductwork.testing.doubles import MemoryBroker, MemoryDatabase, MemoryNotification

PRODUCT = Path(__file__).resolve().parents[2] / "specs" / "hr-system"
INPUT = {"requestId": "exp-9", "employeeId": "emp-9", "employeeName": "Ann",
         "employeeEmail": "ann@example.com", "amount": 2500, "description": "Conference",
         "managerEmail": "boss@example.com", "directorEmail": "director@example.com"}


class Hr:
    def __init__(self, env: WorkflowTestEnv) -> None:
        self.db = MemoryDatabase({"create-request": "requests", "update-request": "requests"})
        self.mail = MemoryNotification()
        self.payroll = MemoryBroker()
        env.dw.connectors.register("database", "expenses-db", self.db)
        env.dw.connectors.register("notification", "approvals", self.mail)
        env.dw.connectors.register("broker", "payroll-events", self.payroll)


def levels(approvals: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(a["level"], a["approved"]) for a in approvals]


async def test_get_status_follows_the_request_through_its_approvers() -> None:
    async with WorkflowTestEnv(specs=PRODUCT, product="hr-system", environ={},
                               auto_advance=False) as env:
        hr = Hr(env)
        run = await env.execute("hr-system", "expense-approval", INPUT)
        wid = run.workflow_id
        assert run.status == "running"
        assert await env.query(wid, "getStatus") == {
            "requestId": "exp-9", "amount": 2500, "status": "pending",
            "currentApprover": "manager", "approvals": []}
        assert [m["recipients"] for m in hr.mail.sent] == [["boss@example.com"]]

        run = await env.signal(wid, "manager-decision", {"approved": True, "comments": "ok"})
        assert run.status == "running"  # 2500 > 1000: a director decides too
        status = await env.query(wid, "getStatus")
        assert status["status"] == "pending" and status["currentApprover"] == "director"
        assert levels(status["approvals"]) == [("manager", True)]
        assert isinstance(status["approvals"][0]["timestamp"], int)
        director_mail = hr.mail.sent[-1]
        assert director_mail["recipients"] == ["director@example.com"]
        assert director_mail["template"]["managerApproved"] is True
        assert director_mail["template"]["approveUrl"] == "https://app.com/approve/exp-9"

        done = await env.signal(wid, "director-decision", {"approved": True, "comments": "go"})
        assert done.status == "completed", done.error
        assert levels(done.output["approvals"]) == [("manager", True), ("director", True)]
        status = await env.query(wid, "getStatus")
        assert status["status"] == "approved"
        assert status["approvals"] == done.output["approvals"]

        [row] = hr.db.tables["requests"]
        assert row["status"] == "approved" and row["approvals"] == done.output["approvals"]
        [(topic, message)] = hr.payroll.messages
        assert topic == "process-reimbursement"
        assert message == {"requestId": "exp-9", "employeeId": "emp-9", "amount": 2500,
                           "approvals": done.output["approvals"]}
        assert hr.mail.sent[-1]["event"] == "request-approved"


async def test_a_rejection_stays_pending_in_get_status_as_in_the_docs() -> None:
    async with WorkflowTestEnv(specs=PRODUCT, product="hr-system", environ={},
                               auto_advance=False) as env:
        hr = Hr(env)
        run = await env.execute("hr-system", "expense-approval", {**INPUT, "amount": 300})
        done = await env.signal(run.workflow_id, "manager-decision",
                                {"approved": False, "comments": "no receipt"})
        assert done.output == {"success": False, "status": "rejected", "rejectedBy": "manager",
                               "reason": "no receipt"}
        # The docs' handler never sets status 'rejected' in state: the query says 'pending'.
        status = await env.query(run.workflow_id, "getStatus")
        assert status["status"] == "pending"
        assert levels(status["approvals"]) == [("manager", False)]
        [row] = hr.db.tables["requests"]
        assert row["status"] == "rejected" and row["rejected_by"] == "manager"
        assert row["rejection_reason"] == "no receipt"
        assert hr.mail.sent[-1]["event"] == "request-rejected"
        assert hr.mail.sent[-1]["recipients"] == ["ann@example.com"]


async def test_the_finance_email_lists_the_previous_approvals() -> None:
    async with WorkflowTestEnv(specs=PRODUCT, product="hr-system", environ={}) as env:
        hr = Hr(env)
        env.queue_signal("manager-decision", {"approved": True})
        env.queue_signal("director-decision", {"approved": True})
        env.queue_signal("finance-decision", {"approved": True})
        done = await env.execute("hr-system", "expense-approval", {**INPUT, "amount": 9000,
                                                      "financeEmail": "fin@example.com"})
        assert done.status == "completed", done.error
        finance_mail = [m for m in hr.mail.sent if m["recipients"] == ["fin@example.com"]]
        assert levels(finance_mail[0]["template"]["previousApprovals"]) == [
            ("manager", True), ("director", True)]
        # comments were not sent: null, as the docs' `decision.comments` is undefined
        assert [a["comments"] for a in done.output["approvals"]] == [None, None, None]
