"""The web UI in a real headless Chromium (Debian's `chromium`, driven by playwright).

The suite starts the server, runs workflows that complete, roll back and wait for a signal,
and checks through the browser what the pages show and that their buttons work. Screenshots of
the main pages go to test-artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.ui.site import SECRET, Site
from tests.server.ui.site import site as site  # module fixture

CHROMIUM = os.environ.get("DUCTWORK_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]  # a container's small /dev/shm must not crash the renderer
WAIT_MS = 30_000  # how long the browser may take to show a change (runs are driven by a worker)

if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from playwright import sync_api as playwright_api  # noqa: E402 (after the browser check)

expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium with a fresh profile, the system's binary (never a downloaded one)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 860})
        ctx.set_default_timeout(WAIT_MS)
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture(scope="module")
def runs(site: Site) -> dict[str, str]:
    """One run of each kind, settled: completed, rolled back, and two waiting for a signal."""
    site.dispatch("order", {"amount": 12}, "order-ok")
    site.dispatch("order", {"amount": 30, "fail": True}, "order-bad")
    site.dispatch("approval", {"who": "ann"}, "approval-ann")
    site.dispatch("approval", {"who": "bob"}, "approval-bob")
    site.wait("order-ok", {"completed"})
    site.wait("order-bad", {"rolled_back"})
    site.wait("approval-ann", {"waiting"})
    site.wait("approval-bob", {"waiting"})
    return {"completed": "order-ok", "rolled_back": "order-bad", "signal": "approval-ann",
            "cancel": "approval-bob"}


@pytest.fixture(scope="module")
def page(browser: Any, site: Site) -> Any:
    """A page logged in as the operator, through the login form."""
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of the forms
    page.goto(site.url + "/ui/runs")
    expect(page).to_have_url(site.url + "/ui/login?next=%2Fui%2Fruns")
    page.fill("input[name=token]", "dwt_not_a_token")
    page.click("form[action='/ui/login'] button")
    expect(page.locator(".error")).to_contain_text("not valid")
    page.fill("input[name=token]", site.operator)
    page.click("form[action='/ui/login'] button")
    expect(page).to_have_url(site.url + "/ui/runs")
    return page


def shot(page: Any, site: Site, name: str) -> None:
    page.screenshot(path=str(site.artifacts / f"{name}.png"), full_page=True)


def row(page: Any, workflow_id: str) -> Any:
    return page.locator(f"tr[data-run='{workflow_id}']")


def test_the_runs_list_shows_each_run_and_filters(page: Any, site: Site,
                                                  runs: dict[str, str]) -> None:
    page.goto(site.url + "/ui/runs")
    expect(row(page, "order-ok").locator(".status")).to_have_text("completed")
    expect(row(page, "order-bad").locator(".status")).to_have_text("rolled_back")
    expect(row(page, "order-bad")).to_contain_text("ship")
    expect(row(page, "approval-ann").locator(".status")).to_have_text("waiting")
    shot(page, site, "runs")
    page.select_option("select[name=status]", "rolled_back")
    page.click("form.filters button")
    expect(page.locator("tr[data-run]")).to_have_count(1)
    expect(row(page, "order-bad")).to_be_visible()
    page.goto(site.url + "/ui/runs?q=APPROVAL-")  # text search in ids, any case
    expect(page.locator("tr[data-run]")).to_have_count(2)
    page.goto(site.url + "/ui/runs?workflow=shop/order&status=completed")
    expect(page.locator("tr[data-run]")).to_have_count(1)
    expect(row(page, "order-ok")).to_be_visible()


def test_the_runs_list_updates_live(page: Any, site: Site, runs: dict[str, str]) -> None:
    page.goto(site.url + "/ui/runs?workflow=shop/order")
    expect(row(page, "order-ok")).to_be_visible()
    site.dispatch("order", {"amount": 1}, "order-live")
    # No reload: htmx polls the table and the new run appears, then completes.
    expect(row(page, "order-live").locator(".status")).to_have_text("completed")


def test_a_rolled_back_run_shows_its_timeline_rollback_lane_and_redacted_payloads(
        page: Any, site: Site, runs: dict[str, str]) -> None:
    page.goto(site.url + "/ui/runs/order-bad")
    expect(page.locator(".summary .status")).to_have_text("rolled_back")
    expect(page.locator(".summary .error")).to_contain_text("the warehouse is closed")
    steps = page.locator(".tl .row[data-kind=step] .label")
    expect(steps).to_have_text(["reserve", "charge", "ship 2 attempts"])
    expect(page.locator(".tl .row[data-kind=step][data-status=failed] .tick")).to_have_count(1)
    # The rollback lane, newest step first.
    expect(page.locator(".tl .row.rollback .label")).to_have_text(["undo charge",
                                                                   "undo reserve"])
    expect(page.locator(".tl .row.rollback[data-status=rolled_back]")).to_have_count(2)
    page.click("tr[data-step=reserve] summary:has-text('output')")
    expect(page.locator("tr[data-step=reserve] pre")).to_contain_text('"password": "***"')
    page.click("tr[data-step=charge] summary:has-text('output')")
    expect(page.locator("tr[data-step=charge] pre")).to_contain_text("key ***")
    body = page.content()
    assert SECRET not in body and "hunter2" not in body
    expect(page.locator(".logs")).to_contain_text("charged")
    expect(page.locator("details summary:has-text('charged')")).to_be_visible()  # checkpoint
    shot(page, site, "run-rolled-back")


def test_the_signal_button_delivers_a_signal(page: Any, site: Site,
                                             runs: dict[str, str]) -> None:
    page.goto(site.url + "/ui/runs/approval-ann")
    expect(page.locator(".summary .status")).to_have_text("waiting")
    expect(page.locator(".tl .row[data-kind=signal]")).to_have_attribute("data-status",
                                                                          "waiting")
    shot(page, site, "run-waiting")
    page.fill("form.signal input[name=name]", "approve")
    page.fill("form.signal textarea[name=payload]", '{"ok": true, "by": "carol"}')
    page.click("form.signal button")
    expect(page.locator(".flash")).to_have_text("Signal 'approve' sent.")
    # The page follows the run until it ends.
    expect(page.locator(".summary .status")).to_have_text("completed")
    expect(page.locator(".tl .row[data-kind=signal]")).to_have_attribute("data-status",
                                                                          "received")
    expect(page.locator("dl.state")).to_contain_text('"by": "carol"')
    assert site.wait("approval-ann", {"completed"}) == "completed"


def test_the_cancel_button_cancels_and_rolls_back(page: Any, site: Site,
                                                  runs: dict[str, str]) -> None:
    page.goto(site.url + "/ui/runs/approval-bob")
    expect(page.locator(".summary .status")).to_have_text("waiting")
    page.fill("form.cancel input[name=reason]", "nobody will approve")
    page.click("form.cancel button")
    expect(page.locator(".flash")).to_contain_text("Cancel requested")
    expect(page.locator(".summary .status")).to_have_text("cancelled")
    expect(page.locator(".summary .error")).to_contain_text("nobody will approve")
    expect(page.locator(".tl .row.rollback .label")).to_have_text(["undo request"])
    assert site.wait("approval-bob", {"cancelled"}) == "cancelled"


def test_replay_starts_a_new_run(page: Any, site: Site, runs: dict[str, str]) -> None:
    page.goto(site.url + "/ui/runs/order-ok")
    page.click("form.replay button")
    expect(page.locator(".flash")).to_contain_text("Started by replay of order-ok")
    new_id = page.locator("h1.run-id").inner_text()
    assert new_id != "order-ok"
    expect(page.locator(".summary .status")).to_have_text("completed")


def test_a_yaml_workflow_page_draws_its_graph(page: Any, site: Site) -> None:
    page.goto(site.url + "/ui/workflows")
    expect(page.locator("table.defs")).to_contain_text("ecommerce/order-fulfillment")
    expect(page.locator("table.defs")).to_contain_text("shop/approval")
    page.click("a[href='/ui/workflows/ecommerce/order-fulfillment']")
    expect(page.locator("pre.mermaid svg")).to_be_visible()  # rendered by the vendored mermaid
    expect(page.locator("pre.source")).to_contain_text("workflow: order-fulfillment")
    shot(page, site, "workflow")
    page.goto(site.url + "/ui/workflows/shop/order")
    expect(page.locator("pre.source")).to_contain_text("async def order(ctx")


def test_a_schedule_is_paused_and_resumed(page: Any, site: Site) -> None:
    site.run(lambda c: c.workflows.dispatch(product="shop", env="dev", workflow="order",
                                            input={"amount": 5}, workflow_id="nightly",
                                            schedule={"cron": "0 3 * * *"}))
    page.goto(site.url + "/ui/workflows/shop/order")
    sched = page.locator("tr[data-job=nightly]")
    expect(sched.locator(".status")).to_have_text("scheduled")
    expect(sched).to_contain_text("03:00:00")  # the next fire time
    sched.locator("button").click()
    expect(page.locator(".flash")).to_have_text("Schedule nightly paused.")
    expect(sched.locator(".status")).to_have_text("paused")
    sched.locator("button").click()
    expect(sched.locator(".status")).to_have_text("scheduled")


def test_a_read_only_token_sees_no_buttons(page: Any, site: Site, runs: dict[str, str]) -> None:
    page.context.clear_cookies()
    try:
        page.goto(site.url + "/ui/login")
        page.fill("input[name=token]", site.read)
        page.click("form[action='/ui/login'] button")
        page.goto(site.url + "/ui/runs/order-ok")
        expect(page.locator(".summary .status")).to_have_text("completed")
        expect(page.locator("section.actions")).to_have_count(0)
        expect(page.locator("header .who")).to_contain_text("bob · read")
        page.click("header .who button")  # log out
        expect(page).to_have_url(site.url + "/ui/login")
    finally:
        page.context.clear_cookies()
