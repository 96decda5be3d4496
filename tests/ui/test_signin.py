"""Signing in to the pages in a real browser, against a real craton-api under ``[api]
auth_strategy = apikey``: a reader sees its name and tenant and no "Cancel job"; a member and a
tenant admin get "Cancel job"; a wrong key (or token) is told so and kept nowhere; the key lives
in the tab's sessionStorage only (no localStorage, no cookie), survives a reload, is not shared
with a new tab, and is forgotten on sign-out or when the server stops accepting it. Under noauth
no sign-in is shown."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.integration.test_server import (
    BIN,
    Server,
    craton_environment,
    running_api,
    upgrade_database,
)
from tests.ui.conftest import PageErrors, UiServer

WAIT = """\
- name: Hold
  hosts: all
  gather_facts: false
  tasks:
    - name: Wait for the test to end
      ansible.builtin.wait_for:
        path: "{{ go_ahead }}"
        timeout: 300
"""


class KeyedServer(Server):
    """craton-api under apikey, and what the tests sign in with and look at."""

    root: str
    tenant: dict[str, Any]
    job_id: int
    keys: dict[str, dict[str, Any]]

    def as_root(self, method: str, path: str, body: Any = None) -> Any:
        reply = self.call(method, path, body, headers={"Authorization": f"Bearer {self.root}"})
        assert reply.status < 300, (reply.status, reply.body)
        return reply.json() if reply.body else None


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedServer]:
    """A tenant with one local host and a job that runs until the module ends (so "Cancel
    job" would be offered), and an API key of each role."""
    home = tmp_path_factory.mktemp("craton-signin")
    gates = home / "gates"
    gates.mkdir()
    env = craton_environment(home, CRATON_API_AUTH_STRATEGY="apikey",
                             CRATON_JOBS_SANDBOX_PATHS=str(gates))
    upgrade_database(env)
    made = subprocess.run([str(BIN / "craton-manage"), "apikey", "create", "--cloud-admin",
                           "--name", "ui operator"], env=env, check=True, capture_output=True,
                          text=True, timeout=120)
    go_ahead = gates / "go"
    with running_api(env, home) as running:
        server = KeyedServer(port=running.port, process=running.process, log=running.log)
        server.root = made.stdout.strip()
        server.tenant = server.as_root("POST", "/v1/tenants", {"name": "acme-ui"})
        tid = server.tenant["id"]
        region = server.as_root("POST", f"/v1/tenants/{tid}/regions", {
            "name": "lab", "variables": {
                "ansible_connection": "local", "go_ahead": str(go_ahead),
                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}})
        server.as_root("POST", f"/v1/regions/{region['id']}/hosts", {"name": "h1"})
        source = home / "data" / "sources" / str(tid) / "hold"
        source.mkdir(parents=True)
        (source / "site.yml").write_text(WAIT)
        job = server.as_root("POST", "/v1/jobs", {
            "region_id": region["id"], "playbook": "site.yml", "source": {"path": str(source)}})
        server.job_id = job["id"]
        server.keys = {role: server.as_root("POST", f"/v1/tenants/{tid}/apikeys",
                                            {"name": f"{role} key", "role": role})
                       for role in ("reader", "member", "admin")}
        try:
            yield server
        finally:
            go_ahead.touch()


def open_page(browser: Browser, page_errors: PageErrors, url: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = page_errors.watch(context.new_page())
    page.goto(url)
    return context, page


def sign_in(page: Page, secret: str, kind: str = "apikey") -> None:
    expect(page.locator("#signin")).to_be_visible()
    page.locator(f"#signin-form input[name=kind][value={kind}]").check()
    page.locator("#signin-form input[name=secret]").fill(secret)
    page.locator("#signin-form button[type=submit]").click()


def storage(page: Page) -> dict[str, Any]:
    return page.evaluate("""() => ({
        local: Object.fromEntries(Object.entries(localStorage)),
        session: Object.fromEntries(Object.entries(sessionStorage)),
        cookie: document.cookie,
    })""")


def expect_job_shown(page: Page) -> None:
    """The job page has loaded the (still running) job: "Cancel job" now depends only on the
    caller's permissions."""
    expect(page.locator("#job-status")).to_have_text(re.compile(r"^(pending|running)$"),
                                                     timeout=20_000)


def test_a_reader_signs_in_for_the_tab(keyed: KeyedServer, browser: Browser,
                                       page_errors: PageErrors, artifacts: Path) -> None:
    base = f"http://127.0.0.1:{keyed.port}"
    reader = keyed.keys["reader"]["key"]
    context, page = open_page(browser, page_errors, f"{base}/ui/jobs/{keyed.job_id}")
    try:
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#signin-secret-label")).to_have_text("API key")
        expect(page.locator("#content")).to_be_hidden()
        expect(page.locator("#who")).to_be_hidden()

        sign_in(page, reader)
        expect(page.locator("#who-user")).to_have_text(re.compile(r"^reader key \(API key \d+\)$"))
        expect(page.locator("#who-tenant")).to_have_text("tenant acme-ui · reader")
        expect(page.locator("#sign-out")).to_be_visible()
        expect(page.locator("#signin")).to_be_hidden()
        expect_job_shown(page)
        expect(page.locator("#cancel")).to_be_hidden()
        page.screenshot(path=artifacts / "signed-in-reader.png", full_page=True)

        kept = storage(page)
        assert kept["local"] == {} and kept["cookie"] == "" and context.cookies() == []
        assert reader in kept["session"]["craton.credential"]

        page.reload()
        expect(page.locator("#who-tenant")).to_have_text("tenant acme-ui · reader")
        expect(page.locator("#signin")).to_be_hidden()
        expect_job_shown(page)
        expect(page.locator("#cancel")).to_be_hidden()

        # The jobs page offers no start form to a reader, but lists the job.
        page.goto(f"{base}/ui/")
        expect(page.locator(f"#jobs tr[data-job='{keyed.job_id}']")).to_be_visible()
        expect(page.locator("#start-denied")).to_be_visible()
        expect(page.locator("#start-form")).to_be_hidden()

        # Another tab of the same browser is not signed in.
        other = page_errors.watch(context.new_page())
        other.goto(f"{base}/ui/")
        expect(other.locator("#signin")).to_be_visible()

        page.locator("#sign-out").click()
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#signin-error")).to_be_hidden()
        assert storage(page)["session"] == {}
    finally:
        context.close()


@pytest.mark.parametrize("role", ["member", "admin"])
def test_members_and_admins_are_offered_cancel(keyed: KeyedServer, browser: Browser,
                                               page_errors: PageErrors, role: str) -> None:
    base = f"http://127.0.0.1:{keyed.port}"
    context, page = open_page(browser, page_errors, f"{base}/ui/jobs/{keyed.job_id}")
    try:
        sign_in(page, keyed.keys[role]["key"])
        expect(page.locator("#who-tenant")).to_have_text(f"tenant acme-ui · {role}")
        expect_job_shown(page)
        expect(page.locator("#cancel")).to_be_visible()
        page.goto(f"{base}/ui/")
        expect(page.locator("#start-form")).to_be_visible()
        expect(page.locator("#start-denied")).to_be_hidden()
    finally:
        context.close()


def test_a_wrong_credential_is_refused_and_kept_nowhere(keyed: KeyedServer, browser: Browser,
                                                       page_errors: PageErrors) -> None:
    base = f"http://127.0.0.1:{keyed.port}"
    context, page = open_page(browser, page_errors, f"{base}/ui/")
    try:
        wrong = keyed.keys["reader"]["key"][:-4] + "xxxx"
        sign_in(page, wrong)
        expect(page.locator("#signin-error")).to_be_visible()
        expect(page.locator("#signin-error")).to_have_text("the API key is not valid")
        expect(page.locator("#content")).to_be_hidden()
        # X-Auth-Token is tried as well when the caller says it holds a token.
        sign_in(page, "not-a-token", kind="keystone")
        expect(page.locator("#signin-secret-label")).to_have_text("Keystone token")
        expect(page.locator("#signin-error")).to_be_visible()
        kept = storage(page)
        assert (kept["local"], kept["session"], kept["cookie"]) == ({}, {}, "")
        assert wrong not in page.content()
    finally:
        context.close()


def test_a_revoked_key_signs_the_tab_out(keyed: KeyedServer, browser: Browser,
                                         page_errors: PageErrors) -> None:
    base = f"http://127.0.0.1:{keyed.port}"
    key = keyed.as_root("POST", f"/v1/tenants/{keyed.tenant['id']}/apikeys",
                        {"name": "short-lived", "role": "reader"})
    context, page = open_page(browser, page_errors, f"{base}/ui/")
    try:
        sign_in(page, key["key"])
        expect(page.locator("#who-user")).to_contain_text("short-lived")
        keyed.as_root("DELETE", f"/v1/apikeys/{key['id']}")
        page.reload()
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#signin-error")).to_contain_text("Signed out")
        assert storage(page)["session"] == {}
    finally:
        context.close()


def test_no_sign_in_under_noauth(ui_server: UiServer, browser: Browser,
                                 page_errors: PageErrors) -> None:
    base = f"http://127.0.0.1:{ui_server.port}"
    context, page = open_page(browser, page_errors, f"{base}/ui/")
    try:
        expect(page.locator("#who-tenant")).to_have_text("cloud admin (every tenant)")
        expect(page.locator("#who-label")).to_have_text("noauth, acting as")
        expect(page.locator("#content")).to_be_visible()
        expect(page.locator("#signin")).to_be_hidden()
        expect(page.locator("#sign-out")).to_be_hidden()
        # The tenant to act in (noauth's X-Craton-Tenant) is kept for the tab too.
        tenant = ui_server.create("/v1/tenants", {"name": f"noauth-{time.monotonic_ns()}"})
        page.locator("#scope summary").click()
        page.locator("#scope-form input[name=tenant]").fill(str(tenant["id"]))
        page.locator("#scope-form button[type=submit]").click()
        expect(page.locator("#who-tenant")).to_have_text(f"tenant {tenant['name']} · member")
        assert storage(page)["local"] == {}
    finally:
        context.close()
