"""The cloud progress bar in a real browser: a job over 20 local hosts in two waves (the web
hosts depend on the db hosts; one web host fails, another cannot be reached) started from the
jobs page and watched live by three pages: the one that started it, one opened mid-run and one
whose connection is cut mid-run; and a page that rides out a restart of the server. The second
wave waits for the test's go-ahead, so "mid-run" is a state the test holds, not a moment it
hopes to catch. Every page must end exactly where the API says the job ended. Screenshots of
the running and the finished page are saved as test artifacts."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from craton.db.models import Job
from craton.db.session import Database
from tests import services
from tests.integration.test_server import craton_environment, running_api, upgrade_database
from tests.ui.conftest import CuttableProxy, PageErrors, UiServer

Body = dict[str, Any]
LOCAL = {"ansible_connection": "local",
         "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
SITE = """\
- name: Converge
  hosts: all
  gather_facts: false
  tasks:
    - name: Wait for the host
      ansible.builtin.ping:
    - name: Wait for the go-ahead
      ansible.builtin.wait_for:
        path: "{{ go_ahead }}"
        timeout: 300
      when: "'web' in group_names"
    - name: Check disks
      ansible.builtin.fail:
        msg: "sdb failing on {{ inventory_hostname }}: replace the disk"
      when: broken_disk | default(false)
    - name: Install packages
      ansible.builtin.command: sleep 0.5
      changed_when: inventory_hostname is match('db')
    - name: Verify
      ansible.builtin.command: "true"
      changed_when: false
"""
STATES = ("ok", "changed", "failed", "unreachable", "skipped", "running", "pending")
FINISHED = ("succeeded", "failed", "cancelled")


def make_fleet(server: UiServer) -> Body:
    """Ten db hosts, then ten web hosts (web depends on db; one has a broken disk, one cannot
    be reached) that wait until the file at ``fleet["go_ahead"]`` exists."""
    tenant = server.create("/v1/tenants", {"name": f"ui-{time.monotonic_ns()}"})
    go_ahead = server.gates / f"go-{tenant['id']}"
    region = server.create(f"/v1/tenants/{tenant['id']}/regions",
                           {"name": "lab", "variables": {**LOCAL, "go_ahead": str(go_ahead)}})
    hosts = [{"name": f"web-{i:02d}", "groups": ["web"]} for i in range(1, 9)]
    hosts += [{"name": f"db-{i:02d}", "groups": ["db"]} for i in range(1, 11)]
    hosts += [{"name": "web-broken", "groups": ["web"], "variables": {"broken_disk": True}},
              {"name": "web-gone", "groups": ["web"], "variables": {
                  "ansible_connection": "ssh", "ansible_host": "127.0.0.1",
                  "ansible_port": 1}}]
    server.create(f"/v1/regions/{region['id']}/groups", {"name": "db"})
    server.create(f"/v1/regions/{region['id']}/groups", {"name": "web", "depends_on": ["db"]})
    reply = server.call("POST", f"/v1/regions/{region['id']}/hosts", hosts)
    assert reply.status == 201, reply.body
    source = server.data_dir / "sources" / str(tenant["id"]) / f"ui-{region['id']}"
    source.mkdir(parents=True)
    (source / "site.yml").write_text(SITE)
    return {"region": region, "source": source, "go_ahead": go_ahead}


def first_wave_done(server: UiServer, job_id: int) -> bool:
    """The db hosts have their results and the web hosts are waiting for the go-ahead."""
    hosts = api_hosts(server, job_id)
    db = [host["status"] for name, host in hosts.items() if name.startswith("db-")]
    web = [host["status"] for name, host in hosts.items() if name.startswith("web-")]
    return len(db) == len(web) == 10 and "running" not in db and "pending" not in db and \
        set(web) == {"running"}


def api_job(server: UiServer, job_id: int) -> Body:
    reply = server.call("GET", f"/v1/jobs/{job_id}")
    assert reply.status == 200, reply.body
    return reply.json()


def api_hosts(server: UiServer, job_id: int) -> dict[str, Body]:
    reply = server.call("GET", f"/v1/jobs/{job_id}/hosts?limit=1000")
    return {host["name"]: host for host in reply.json()["items"]}


def wait_for(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def shown_state(page: Page) -> Body:
    """What a page shows: the percentage, the count per state, each host's state, and the
    messages of the hosts that need attention."""
    return page.evaluate("""() => ({
        percent: document.getElementById('percent').textContent,
        status: document.getElementById('job-status').textContent,
        counts: Object.fromEntries([...document.querySelectorAll('#legend li')].map(
            li => [li.dataset.status, Number(li.querySelector('.count').textContent)])),
        hosts: Object.fromEntries([...document.querySelectorAll('#hosts [data-host]')].map(
            cell => [cell.dataset.host, cell.dataset.status])),
        problems: Object.fromEntries([...document.querySelectorAll('#problem-list li')].map(
            li => [li.dataset.host, [li.dataset.status, li.querySelector('pre').textContent]])),
    })""")


def settle(page: Page) -> None:
    expect(page.locator("#conn")).to_have_attribute("data-state", "finished", timeout=60_000)
    expect(page.locator("#percent")).to_have_text("100%")


def test_watching_a_job_converge(ui_server: UiServer, browser: Browser, proxy: CuttableProxy,
                                 page_errors: PageErrors, artifacts: Path) -> None:
    fleet = make_fleet(ui_server)
    base = f"http://127.0.0.1:{ui_server.port}"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    starter = page_errors.watch(context.new_page())

    # Start the job from the jobs page's form.
    starter.goto(f"{base}/ui/")
    form = starter.locator("#start-form")
    form.locator("select[name=region_id]").select_option(str(fleet["region"]["id"]))
    form.locator("input[name=path]").fill(str(fleet["source"]))
    form.locator("input[name=playbook]").fill("site.yml")
    form.locator("input[name=forks]").fill("5")
    form.locator("button[type=submit]").click()
    starter.wait_for_url(re.compile(r"/ui/jobs/\d+$"))
    job_id = int(starter.url.rsplit("/", 1)[1])
    expect(starter.locator("#job-playbook")).to_have_text("site.yml")

    # A page that will lose its connection, following from the start through the proxy.
    cut_page = page_errors.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))
    cut_page.goto(f"http://127.0.0.1:{proxy.port}/ui/jobs/{job_id}")
    expect(cut_page.locator("#conn")).to_have_attribute("data-state", "live", timeout=20_000)

    wait_for("the first wave to finish", lambda: first_wave_done(ui_server, job_id))
    expect(starter.locator("#conn")).to_have_attribute("data-state", "live")
    starter.screenshot(path=artifacts / "job-running.png", full_page=True)
    running = shown_state(starter)
    assert running["status"] == "running"
    assert 0 < int(running["percent"].rstrip("%")) < 100

    # The connection drops mid-run: the page notices, reconnects and catches up.
    proxy.cut(refuse_for=2.0)
    expect(cut_page.locator("#conn")).to_have_attribute("data-state", "reconnecting",
                                                        timeout=10_000)

    # A page opened mid-run.
    late = page_errors.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))
    late.goto(f"{base}/ui/jobs/{job_id}")
    expect(late.locator("#conn")).to_have_attribute("data-state", "live", timeout=20_000)
    assert api_job(ui_server, job_id)["status"] == "running"
    fleet["go_ahead"].touch()

    job = wait_for("the job to end", lambda: (j := api_job(ui_server, job_id))["status"]
                   in FINISHED and j)
    for page in (starter, late, cut_page):
        settle(page)
    starter.screenshot(path=artifacts / "job-finished.png", full_page=True)

    hosts = api_hosts(ui_server, job_id)
    assert job["status"] == "failed"
    assert (job["hosts"]["failed"], job["hosts"]["unreachable"], job["hosts"]["total"]) == (
        1, 1, 20)
    expected = {
        "percent": "100%", "status": "failed",
        "counts": {state: job["hosts"][state] for state in STATES},
        "hosts": {name: host["status"] for name, host in hosts.items()},
        "problems": {name: [host["status"], host["message"]] for name, host in hosts.items()
                     if host["status"] in ("failed", "unreachable")},
    }
    assert expected["problems"]["web-broken"] == [
        "failed", "sdb failing on web-broken: replace the disk"]
    assert "Connection refused" in expected["problems"]["web-gone"][1]
    for page in (starter, late, cut_page):
        assert shown_state(page) == expected, page.url
    assert proxy.cuts == 1

    # The hosts that need attention come first; the filter and the grouping work.
    first_two = starter.locator("#hosts .tile").evaluate_all(
        "cells => cells.slice(0, 2).map(c => c.dataset.host)")
    assert first_two == ["web-broken", "web-gone"]
    starter.locator("#filter").fill("broken")
    expect(starter.locator("#hosts .tile")).to_have_count(1)
    expect(starter.locator("#shown-count")).to_have_text("1 of 20 hosts match “broken”")
    starter.locator("#filter").fill("")
    starter.locator("#group-by").select_option("group")
    expect(starter.locator("#hosts .group-title")).to_have_count(2)
    expect(starter.locator("#hosts .group-title").first).to_contain_text("db")
    starter.locator(".view-switch button[data-view=table]").click()
    expect(starter.locator("#hosts tbody tr")).to_have_count(20)
    expect(starter.locator("#hosts tr[data-host=web-broken] td.message")).to_have_text(
        "sdb failing on web-broken: replace the disk")
    starter.screenshot(path=artifacts / "job-finished-table.png", full_page=True)

    # From a failed host to its own page: where it is at, and its jobs.
    starter.locator("#problem-list li[data-host=web-broken] a").click()
    starter.wait_for_url(re.compile(r"/ui/hosts/\d+$"))
    expect(starter.locator("#host-title")).to_have_text("web-broken")
    expect(starter.locator("#host-where")).to_contain_text("failed")
    expect(starter.locator("#host-where")).to_contain_text(f"job #{job_id}")
    expect(starter.locator("#host-where pre")).to_have_text(
        "sdb failing on web-broken: replace the disk")
    expect(starter.locator("#host-jobs tbody tr")).to_have_count(1)
    starter.screenshot(path=artifacts / "host.png", full_page=True)

    # The jobs page lists the job with its outcome.
    starter.goto(f"{base}/ui/")
    row = starter.locator(f"#jobs tr[data-job='{job_id}']")
    expect(row).to_contain_text("site.yml")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("20/20")
    starter.screenshot(path=artifacts / "jobs.png", full_page=True)
    context.close()


def test_a_refused_job_names_the_field_on_the_form(ui_server: UiServer, browser: Browser,
                                                   page_errors: PageErrors) -> None:
    fleet = make_fleet(ui_server)
    page = page_errors.watch(browser.new_page())
    page.goto(f"http://127.0.0.1:{ui_server.port}/ui/")
    form = page.locator("#start-form")
    form.locator("select[name=region_id]").select_option(str(fleet["region"]["id"]))
    form.locator("input[name=path]").fill(str(fleet["source"]))
    form.locator("input[name=playbook]").fill("missing.yml")
    before = ui_server.call("GET", "/v1/jobs").json()["items"]
    form.locator("button[type=submit]").click()
    expect(page.locator("#start-error")).to_contain_text("playbook: no file 'missing.yml'")
    expect(form.locator("input[name=playbook]")).to_have_attribute("aria-invalid", "true")
    assert page.url.endswith("/ui/")
    assert ui_server.call("GET", "/v1/jobs").json()["items"] == before


def test_an_unknown_job_says_so(ui_server: UiServer, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{ui_server.port}/ui/jobs/999999")
    expect(page.locator("#job-error")).to_be_visible()
    expect(page.locator("#job-error")).to_contain_text("999999")
    expect(page.locator("#conn")).to_have_attribute("data-state", "error")
    page.close()


def test_a_page_rides_out_a_server_restart(browser: Browser, tmp_path: Path,
                                           page_errors: PageErrors) -> None:
    """craton-api stops mid-job and starts again (it resumes the job it was running): the page
    says it is reconnecting, then catches up and ends exactly where the API says the job
    ended."""
    gates = tmp_path / "gates"
    gates.mkdir()
    env = craton_environment(tmp_path, CRATON_JOBS_SANDBOX_PATHS=str(gates))
    upgrade_database(env)
    port = services.free_port()
    page = page_errors.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))
    with running_api(env, tmp_path, port) as first:
        server = UiServer(port=port, process=first.process, log=first.log,
                          data_dir=tmp_path / "data", gates=gates)
        fleet = make_fleet(server)
        reply = server.call("POST", "/v1/jobs", {
            "region_id": fleet["region"]["id"], "playbook": "site.yml",
            "source": {"path": str(fleet["source"])}, "forks": 3})
        assert reply.status == 202, reply.body
        job_id = reply.json()["id"]
        page.goto(f"http://127.0.0.1:{port}/ui/jobs/{job_id}")
        expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=20_000)
        wait_for("the first wave to finish", lambda: first_wave_done(server, job_id))
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting",
                                                    timeout=10_000)
    assert api_job_offline(tmp_path, job_id) == "running"
    fleet["go_ahead"].touch()
    with running_api(env, tmp_path, port) as second:
        server = UiServer(port=port, process=second.process, log=second.log,
                          data_dir=tmp_path / "data", gates=gates)
        job = wait_for("the resumed job to end", lambda: (j := api_job(server, job_id))[
            "status"] in FINISHED and j)
        settle(page)
        hosts = api_hosts(server, job_id)
        shown = shown_state(page)
    assert job["status"] == "failed" and job["hosts"]["total"] == 20
    assert shown == {
        "percent": "100%", "status": "failed",
        "counts": {state: job["hosts"][state] for state in STATES},
        "hosts": {name: host["status"] for name, host in hosts.items()},
        "problems": {name: [host["status"], host["message"]] for name, host in hosts.items()
                     if host["status"] in ("failed", "unreachable")},
    }
    page.close()


def api_job_offline(home: Path, job_id: int) -> str:
    """The job's status read from the database while no server runs."""
    db = Database(f"sqlite:///{home / 'data' / 'craton.db'}")
    try:
        with db.transaction(write=False) as session:
            return session.get(Job, job_id).status.value
    finally:
        db.dispose()
