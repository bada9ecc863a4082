"""The UI over plain HTTP: login and its cookie, CSRF and cross-site refusals, scopes, static
files, and the wheel carrying the templates and vendored scripts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.server.ui.site import REPO, SECRET, Site
from tests.server.ui.site import site as site  # module fixture


@pytest.fixture(scope="module")
def waiting(site: Site) -> str:
    site.dispatch("approval", {"who": "dan"}, "approval-dan")
    site.wait("approval-dan", {"waiting", "running"})
    return "approval-dan"


@contextmanager
def _browser(site: Site, token: str | None = None) -> Iterator[httpx.Client]:
    """A client that keeps cookies like a browser, logged in with `token` through the form."""
    with httpx.Client(base_url=site.url, timeout=30, follow_redirects=False) as c:
        if token is not None:
            csrf = _csrf(c, "/ui/login")
            r = c.post("/ui/login", data={"csrf": csrf, "token": token, "next": "/ui/runs"})
            assert r.status_code == 303 and r.headers["location"] == "/ui/runs"
        yield c


def _csrf(c: httpx.Client, path: str) -> str:
    page = c.get(path)
    assert page.status_code == 200, page.text
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert m is not None
    return m.group(1)


def test_a_browser_without_a_token_is_sent_to_the_login_page(site: Site) -> None:
    with _browser(site) as c:
        r = c.get("/ui/runs/approval-dan")
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login?next=%2Fui%2Fruns%2Fapproval-dan"
        assert c.get("/").headers["location"] == "/ui/runs"


def test_login_keeps_the_token_in_a_strict_httponly_cookie(site: Site) -> None:
    with _browser(site) as c:
        csrf = _csrf(c, "/ui/login")
        r = c.post("/ui/login", data={"csrf": csrf, "token": site.operator,
                                      "next": "https://evil.example/"})
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/runs"  # never an absolute URL: no open redirect
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("ductwork_token=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        bad = c.post("/ui/login", data={"csrf": csrf, "token": "dwt_x_y"})
        assert bad.status_code == 401 and "not valid" in bad.text


def test_a_form_without_its_csrf_value_changes_nothing(site: Site, waiting: str) -> None:
    with _browser(site, site.operator) as c:
        r = c.post(f"/ui/runs/{waiting}/cancel", data={"reason": "forged"})
        assert r.status_code == 403
        r = c.post(f"/ui/runs/{waiting}/cancel", data={"csrf": "0" * 64, "reason": "forged"})
        assert r.status_code == 403
        csrf = _csrf(c, f"/ui/runs/{waiting}")
        r = c.post(f"/ui/runs/{waiting}/signal", data={"csrf": csrf, "name": "approve"},
                   headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "cross-site" in r.text
    assert site.wait(waiting, {"waiting", "running"}) in ("waiting", "running")


def test_a_read_token_cannot_act(site: Site, waiting: str) -> None:
    with _browser(site, site.read) as c:
        csrf = _csrf(c, f"/ui/runs/{waiting}")
        page = c.get(f"/ui/runs/{waiting}").text
        assert "Send signal" not in page and "Cancel run" not in page
        r = c.post(f"/ui/runs/{waiting}/cancel", data={"csrf": csrf, "reason": "no"})
        assert r.status_code == 403 and "needs 'operator'" in r.text


def test_a_bad_signal_payload_is_reported_on_the_page(site: Site, waiting: str) -> None:
    with _browser(site, site.operator) as c:
        csrf = _csrf(c, f"/ui/runs/{waiting}")
        r = c.post(f"/ui/runs/{waiting}/signal", data={"csrf": csrf, "name": "approve",
                                                       "payload": "{not json"})
        assert r.status_code == 303
        assert "not+JSON" in r.headers["location"] or "not%20JSON" in r.headers["location"]
        page = c.get(r.headers["location"]).text
        assert "The payload is not JSON" in page


def test_pages_redact_secrets_and_unknown_runs_are_404(site: Site, waiting: str) -> None:
    site.dispatch("order", {"amount": 3, "note": SECRET, "api_key": "k-123"}, "order-redact")
    site.wait("order-redact", {"completed"})
    with _browser(site, site.operator) as c:
        page = c.get("/ui/runs/order-redact").text
        assert SECRET not in page and "k-123" not in page and "hunter2" not in page
        assert "&#34;api_key&#34;: &#34;***&#34;" in page or '"api_key": "***"' in page
        assert c.get("/ui/runs/no-such-run").status_code == 404
        assert c.get("/ui/workflows/shop/nope").status_code == 404


def test_static_files_are_served_and_nothing_else(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=30) as c:
        js = c.get("/ui/static/htmx.min.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "htmx" in js.text[:2000]
        assert c.get("/ui/static/mermaid.min.js").status_code == 200
        assert c.get("/ui/static/..%2Fpages.py").status_code == 404
        assert c.get("/ui/static/.hidden").status_code == 404


def test_the_wheel_carries_the_templates_and_vendored_scripts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "ductwork", src / "ductwork",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "-q", "-w", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("ductwork-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    ui = REPO / "ductwork" / "server" / "ui"
    wanted = {f"ductwork/server/ui/{d}/{f.name}" for d in ("templates", "static")
              for f in (ui / d).iterdir() if f.is_file()}
    assert {"ductwork/server/ui/static/htmx.min.js", "ductwork/server/ui/static/htmx.LICENSE.txt",
            "ductwork/server/ui/static/mermaid.min.js",
            "ductwork/server/ui/templates/run.html"} <= wanted
    assert wanted <= names, sorted(wanted - names)


def test_a_parent_run_links_its_child_and_shows_its_sleep(site: Site) -> None:
    site.dispatch("bundle", {}, "bundle-1")
    site.wait("bundle-1", {"completed"})
    with _browser(site, site.operator) as c:
        page = c.get("/ui/runs/bundle-1").text
        child = "bundle-1:first-order"
        assert f'<a href="/ui/runs/{child}">child first-order</a>' in page
        assert 'data-kind="sleep"' in page
        child_page = c.get(f"/ui/runs/{child}").text
        assert 'child of <a href="/ui/runs/bundle-1">bundle-1</a>' in child_page
