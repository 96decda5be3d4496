"""Jobs through the API: an operator runs a playbook from git over a selection of a region and
follows it host by host and event by event — with real Ansible on hosts it reaches locally, a
host it cannot reach, git repositories in a temporary directory and a real Redis server.

Most tests run on an app of their own (SQLite); those taking the ``client`` fixture run on
every database backend."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from craton.config import Settings
from craton.db.session import Database
from tests import services
from tests.conftest import Client, error_of
from tests.functional.job_helpers import (
    LOCAL,
    UNREACHABLE,
    Fleet,
    JobApp,
    PlaybookRepo,
    app_on,
    drain,
    events,
    get_job,
    host_events,
    job_body,
    job_hosts,
    job_settings,
    listed,
    make_fleet,
    play,
    read_stream,
    run_job,
    sqlite_app,
    stored_text,
    submit,
    tenant_sources,
    wait_job,
)

Body = dict[str, Any]


@pytest.fixture
def client(app: Flask) -> Iterator[Client]:
    """The client of the app on each database backend; the jobs a test started have ended
    before the app closes and the database is emptied."""
    yield Client(app.test_client())
    drain(app)


@pytest.fixture
def japp(tmp_path: Path) -> Iterator[JobApp]:
    """An app of this test's own, on SQLite."""
    with sqlite_app(tmp_path / "data") as built:
        yield built


@pytest.fixture
def api(japp: JobApp) -> Client:
    return japp.client


@pytest.fixture
def acme(api: Client) -> Body:
    """The tenant whose fleets the tests run jobs on."""
    return api.create("/v1/tenants", {"name": "acme"})


@pytest.fixture
def repo(japp: JobApp, acme: Body) -> PlaybookRepo:
    """A git repository of playbooks in the directory acme's sources may be read from."""
    return PlaybookRepo(japp.sources_of(acme) / "playbooks.git")


def when(text: str | None) -> dt.datetime:
    assert text is not None
    return dt.datetime.fromisoformat(text)


def job_statuses(all_events: list[Body]) -> list[str]:
    """The job statuses its events announced, in order."""
    return [e["data"]["status"] for e in all_events
            if e["kind"] == "job" and "status" in e["data"]]


def host_status(client: Client, host: Body) -> Body:
    response = client.get(f"/v1/hosts/{host['id']}/status")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- submitting: what is refused ----------------------------------------------------------------

GREET = play("""
name: greet
ansible.builtin.debug:
  msg: "hello {{ inventory_hostname }}"
""")


def _refused_bodies(fleet: Fleet, other: Fleet, repo: PlaybookRepo, outside: Path,
                    theirs: Path) -> dict[str, tuple[Body, dict[str, Any]]]:
    base = job_body(fleet, "site.yml", repo.source())
    as_tenant = {"tenant": fleet.tenant["id"]}
    return {
        "unknown region": ({**base, "region_id": 987654}, {}),
        "another tenant's region": ({**base, "region_id": other.region_id},
                                    {"tenant": fleet.tenant["id"]}),
        "filters selecting no host": ({**base, "filters": {"name": "nosuch*"}}, {}),
        "unknown group": ({**base, "filters": {"group": "nosuch"}}, {}),
        "playbook path climbing out": ({**base, "playbook": "../x.yml"}, {}),
        "absolute playbook path": ({**base, "playbook": "/etc/passwd"}, {}),
        "playbook missing at the commit": ({**base, "playbook": "missing.yml"}, {}),
        "unknown git ref": ({**base, "source": repo.source("no-such-branch")}, {}),
        "source path outside the allowed roots": ({**base, "source": {"path": str(outside)}},
                                                  {}),
        "git url outside the allowed roots": (
            {**base, "source": {"url": (outside / "repo.git").as_uri(), "ref": "main"}}, {}),
        "source url that is an absolute path": (
            {**base, "source": {"url": str(outside / "repo.git"), "ref": "main"}}, {}),
        "source url that is a relative path": (
            {**base, "source": {"url": "../../outside/repo.git", "ref": "main"}}, {}),
        "source url at a loopback address": (
            {**base, "source": {"url": "http://127.0.0.1:7780/ops.git", "ref": "main"}}, {}),
        "source url at localhost": (
            {**base, "source": {"url": "git://localhost/ops.git", "ref": "main"}}, {}),
        "another tenant's directory": ({**base, "source": {"path": str(theirs)}}, {}),
        "another tenant's directory, as the tenant": (
            {**base, "source": {"path": str(theirs)}}, as_tenant),
        "another tenant's repository": (
            {**base, "source": {"url": (theirs / "repo.git").as_uri(), "ref": "main"}},
            as_tenant),
        "relative source path": ({**base, "source": {"path": "../../outside"}}, {}),
        "source ref that is an option": ({**base, "source": repo.source("--upload-pack=x")},
                                         {}),
        "no source": ({**base, "source": {}}, {}),
        "forks 0": ({**base, "forks": 0}, {}),
        "forks above the maximum": ({**base, "forks": 101}, {}),
        "bad extra_vars key": ({**base, "extra_vars": {"a\x00b": 1}}, {}),
        "extra_vars key that Ansible reserves": ({**base, "extra_vars": {"hostvars": 1}}, {}),
        "unknown field": ({**base, "bogus": 1}, {}),
        "unknown source field": ({**base, "source": {**repo.source(), "branch": "x"}}, {}),
        "unknown filter": ({**base, "filters": {"colour": "red"}}, {}),
        "unknown layout": ({**base, "layout": "flat"}, {}),
    }


REFUSALS: dict[str, tuple[int, str | None, str]] = {
    # case: (status, the field the error names, a part of its message)
    "unknown region": (404, None, "region 987654"),
    "another tenant's region": (404, None, "not found"),
    "filters selecting no host": (422, "filters", "no host"),
    "unknown group": (422, "group", "nosuch"),
    "playbook path climbing out": (422, "playbook", ".."),
    "absolute playbook path": (422, "playbook", "relative"),
    "playbook missing at the commit": (422, "playbook", "missing.yml"),
    "unknown git ref": (502, None, "no-such-branch"),
    "source path outside the allowed roots": (422, "source.path", "file_roots"),
    "git url outside the allowed roots": (422, "source.url", "file_roots"),
    "source url that is an absolute path": (422, "source.url", "scheme"),
    "source url that is a relative path": (422, "source.url", "scheme"),
    "source url at a loopback address": (422, "source.url", "allowed_networks"),
    "source url at localhost": (422, "source.url", "allowed_networks"),
    "another tenant's directory": (422, "source.path", "file_roots"),
    "another tenant's directory, as the tenant": (422, "source.path", "file_roots"),
    "another tenant's repository": (422, "source.url", "file_roots"),
    "relative source path": (422, "source.path", "absolute"),
    "source ref that is an option": (422, "source.ref", "git"),
    "no source": (422, "source", "git url"),
    "forks 0": (422, "forks", "1"),
    "forks above the maximum": (422, "forks", "100"),
    "bad extra_vars key": (422, "extra_vars.a\x00b", "control characters"),
    "extra_vars key that Ansible reserves": (422, "extra_vars.hostvars", "reserved"),
    "unknown field": (422, "bogus", "Unknown field"),
    "unknown source field": (422, "source.branch", "Unknown field"),
    "unknown filter": (422, "filters.colour", "Unknown field"),
    "unknown layout": (422, "layout", "hosts, ansible"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_job_says_why_and_creates_nothing(api: Client, japp: JobApp, acme: Body,
                                                   repo: PlaybookRepo,
                                                   tmp_path: Path, case: str) -> None:
    """An operator's job request that cannot run is refused with the status and the field at
    fault — a region they cannot see is 404 like one that does not exist, a git server that
    does not know the ref is 502 — and no job is left behind. A source must be a URL held to a
    reference's rules (no bare path that git would clone as it is, no loopback host) or a
    directory of the job region's tenant: not another tenant's, whoever asks."""
    repo.push({"site.yml": GREET})
    fleet = make_fleet(api, ["web1", "web2"], groups=[{"name": "web", "hosts": ["web1"]}],
                       tenant=acme)
    other = make_fleet(api, ["x1"], tenant="globex", region="ord")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "site.yml").write_text(GREET)
    PlaybookRepo(outside / "repo.git").push({"site.yml": GREET})
    theirs = japp.sources_of(other.tenant)
    theirs.mkdir(parents=True)
    (theirs / "site.yml").write_text(GREET)
    PlaybookRepo(theirs / "repo.git").push({"site.yml": GREET})
    body, kwargs = _refused_bodies(fleet, other, repo, outside, theirs)[case]
    status, field, words = REFUSALS[case]

    response = api.post("/v1/jobs", body, **kwargs)

    assert response.status_code == status, response.get_json()
    error = error_of(response)
    assert words in error["message"], error
    if field is not None:
        assert field in error.get("fields", {}), error
    assert "Location" not in response.headers
    assert api.get("/v1/jobs").get_json() == {"items": [], "next": None}
    assert api.get("/v1/jobs", tenant=fleet.tenant["id"]).get_json()["items"] == []


# --- a successful run -----------------------------------------------------------------------------

SITE_V1 = play("""
name: greet
ansible.builtin.debug:
  msg: "v1 on {{ inventory_hostname }}"
""", """
name: stamp
ansible.builtin.command: "true"
changed_when: inventory_hostname == 'web1'
""")
SITE_V2 = play("""
name: greet
ansible.builtin.fail:
  msg: "v2 must not run"
""")
HOLD = play("""
name: hold
ansible.builtin.wait_for:
  path: "{{ release }}"
  timeout: 60
""")


@pytest.mark.parametrize("layout", ["hosts", "ansible"])
def test_a_job_runs_each_host_at_the_commit_it_was_submitted_at(tmp_path: Path,
                                                                 layout: str) -> None:
    """A job is accepted (202, Location) as pending and waits its turn; a push to the branch
    meanwhile does not change what it runs — it runs the commit it was pinned to — and it goes
    running → succeeded with each host's result and last task, the counts, progress 100, its
    timings and the ETag of the bundle it ran (that of the same hosts' bundle)."""
    with sqlite_app(tmp_path / "data", concurrent_jobs=1) as japp:
        api = japp.client
        fleet = make_fleet(api, ["web1", "web2"])
        repo = PlaybookRepo(japp.sources_of(fleet.tenant) / "playbooks.git")
        v1 = repo.push({"site.yml": SITE_V1, "hold.yml": HOLD})
        release = tmp_path / "shared" / "release"
        # The engine runs one job at a time: this one holds it until released.
        holder = submit(api, job_body(fleet, "hold.yml", repo.source(),
                                      filters={"name": "web1"},
                                      extra_vars={"release": str(release)}))
        wait_job(api, holder["id"], until=["running"])

        response = api.post("/v1/jobs", job_body(fleet, "site.yml", repo.source(),
                                                 layout=layout))
        assert response.status_code == 202, response.get_json()
        job = response.get_json()
        assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
        assert job["status"] == "pending"
        assert job["source"] == {"url": repo.url, "ref": "main", "pin": f"commit:{v1}"}
        assert job["hosts"]["pending"] == job["hosts"]["total"] == 2
        assert (job["progress"], job["started_at"], job["bundle_etag"]) == (0, None, None)

        v2 = repo.push({"site.yml": SITE_V2}, "break everything")
        assert v2 != v1
        waiting = get_job(api, job["id"])
        assert (waiting["status"], waiting["progress"]) == ("pending", 0)
        release.touch()

        stream = read_stream(api, job["id"])
        assert stream.end == {"status": "succeeded", "last": stream.ids[-1]}
        assert job_statuses(stream.events) == ["running", "succeeded"]
        assert wait_job(api, holder["id"])["status"] == "succeeded"

        done = get_job(api, job["id"])
        assert done["status"] == "succeeded" and done["message"] is None
        assert done["source"]["pin"] == f"commit:{v1}"
        assert done["hosts"] == {"pending": 0, "running": 0, "ok": 1, "changed": 1, "failed": 0,
                                 "unreachable": 0, "skipped": 0, "total": 2}
        assert done["progress"] == 100
        created, started, finished = (when(done[k]) for k in
                                      ("created_at", "started_at", "finished_at"))
        assert created <= started <= finished
        assert done["duration"] == pytest.approx((finished - started).total_seconds())
        assert done["duration"] > 0

        hosts = job_hosts(api, job["id"])
        assert {name: (h["status"], h["current_task"], h["message"])
                for name, h in hosts.items()} == {"web1": ("changed", "stamp", None),
                                                  "web2": ("ok", "stamp", None)}
        for name, row in hosts.items():
            assert row["host_id"] == fleet.hosts[name]["id"]
            assert started <= when(row["started_at"]) <= when(row["finished_at"]) <= finished

        greeted = [e["data"]["msg"] for e in stream.events
                   if e["kind"] == "runner_on_ok" and e["data"].get("task") == "greet"]
        assert sorted(greeted) == ["v1 on web1", "v1 on web2"]
        assert "v2 must not run" not in stored_text(stream.events)

        # Every job runs the aggregate bundle of its hosts, whatever its layout.
        ids = "&".join(f"id={h['id']}" for h in fleet.hosts.values())
        bundle = api.get(f"/v1/inventory/{fleet.region_id}.tgz?layout=ansible&{ids}")
        assert bundle.status_code == 200
        assert done["bundle_etag"] == bundle.headers["ETag"]


def test_a_queued_job_starts_as_soon_as_the_one_before_ends(tmp_path: Path) -> None:
    """With one job at a time, a job waiting its turn starts right after the job before it
    has ended — the engine does not sit idle in between. (The gap is TaskFlow's bookkeeping of
    one flow's end and the next one's start: well under a second on an idle machine, more on a busy
    CI one; a waiting loop that polled would show as seconds.)"""
    with sqlite_app(tmp_path / "data", concurrent_jobs=1) as japp:
        fleet = make_fleet(japp.client, ["p1"])
        ping = {"region_id": fleet.region_id, "playbook": "craton:ping"}
        first, second = submit(japp.client, ping), submit(japp.client, ping)
        first, second = wait_job(japp.client, first["id"]), wait_job(japp.client, second["id"])

    assert (first["status"], second["status"]) == ("succeeded", "succeeded")
    idle = (when(second["started_at"]) - when(first["finished_at"])).total_seconds()
    assert 0 <= idle < 2.0, f"the engine sat idle {idle:.2f}s between two jobs"


# --- failed and unreachable hosts -------------------------------------------------------------

CHECK_DISK = play("""
name: reach
ansible.builtin.ping:
""", """
name: check disk
ansible.builtin.fail:
  msg: "disk full on {{ inventory_hostname }}"
when: fail_here | default(false)
""", """
name: report
ansible.builtin.debug:
  msg: fine
""")


def _failed_and_unreachable(client: Client, settings: Settings, layout: str) -> None:
    fleet = make_fleet(client, {"ok1": {}, "bad1": {"variables": {"fail_here": True}},
                                "gone1": {"variables": UNREACHABLE}})
    repo = PlaybookRepo(tenant_sources(settings, fleet.tenant) / "playbooks.git")
    repo.push({"check.yml": CHECK_DISK})
    before = host_status(client, fleet.hosts["ok1"])
    assert (before["reachable"], before["last_seen_at"], before["job"]) == (None, None, None)

    job = run_job(client, job_body(fleet, "check.yml", repo.source(), layout=layout))

    assert job["status"] == "failed"
    assert job["message"] == "1 failed, 1 unreachable"
    assert {k: job["hosts"][k] for k in ("ok", "failed", "unreachable", "skipped")} == {
        "ok": 1, "failed": 1, "unreachable": 1, "skipped": 0}
    hosts = job_hosts(client, job["id"])
    assert (hosts["ok1"]["status"], hosts["ok1"]["current_task"]) == ("ok", "report")
    assert (hosts["bad1"]["status"], hosts["bad1"]["current_task"],
            hosts["bad1"]["message"]) == ("failed", "check disk", "disk full on bad1")
    gone = hosts["gone1"]
    assert (gone["status"], gone["current_task"]) == ("unreachable", "reach")
    assert "port 1" in gone["message"] and "Connection refused" in gone["message"], gone

    stored = events(client, job["id"])
    assert host_events(stored, "bad1", "runner_on_failed")
    assert host_events(stored, "gone1", "runner_on_unreachable")
    assert not host_events(stored, "gone1", "runner_on_failed")

    statuses = {name: host_status(client, host) for name, host in fleet.hosts.items()}
    finished = when(job["finished_at"])
    for name in ("ok1", "bad1"):
        assert statuses[name]["reachable"] is True, statuses[name]
        assert when(job["started_at"]) <= when(statuses[name]["last_seen_at"]) <= finished
    assert (statuses["gone1"]["reachable"], statuses["gone1"]["last_seen_at"]) == (False, None)
    assert statuses["bad1"] == {
        "host_id": fleet.hosts["bad1"]["id"], "name": "bad1", "reachable": True,
        "last_seen_at": statuses["bad1"]["last_seen_at"],
        "job": {"id": job["id"], "status": "failed", "playbook": "check.yml",
                "result": "failed", "task": "check disk", "message": "disk full on bad1",
                "started_at": hosts["bad1"]["started_at"],
                "finished_at": hosts["bad1"]["finished_at"]}}
    assert statuses["gone1"]["job"]["result"] == "unreachable"
    assert statuses["gone1"]["job"]["message"] == gone["message"]


def test_failed_and_unreachable_hosts_are_told_apart(client: Client, settings: Settings) -> None:
    """On each database: a task failing on one host fails that host with Ansible's message,
    a host Ansible cannot connect to is unreachable (not failed) with Ansible's message, the
    others are ok and the job failed; each host's status shows whether it was reached, when it
    was last seen, and its last job's result."""
    _failed_and_unreachable(client, settings, "hosts")


def test_failed_and_unreachable_hosts_in_one_aggregate_run(api: Client, japp: JobApp) -> None:
    """The same with layout=ansible: one Ansible run over all hosts, each host's result read
    from it."""
    _failed_and_unreachable(api, japp.settings, "ansible")


# --- depends_on ---------------------------------------------------------------------------------

WORK = play("""
name: work
ansible.builtin.debug:
  msg: "working on {{ inventory_hostname }}"
""")
FAIL_ON_SERVER = play("""
name: configure
ansible.builtin.fail:
  msg: "server broke"
when: inventory_hostname == 'srv'
""")


def test_clients_start_after_the_servers_they_depend_on(client: Client,
                                                        settings: Settings) -> None:
    """On each database: with clients depends_on server, every client host starts only once
    every server host has finished; a host in both groups waits for the other servers and is
    waited for by the clients — nothing deadlocks."""
    fleet = make_fleet(client, ["c1", "c2", "dual", "srv"], groups=[
        {"name": "server", "hosts": ["srv", "dual"]},
        {"name": "clients", "hosts": ["c1", "c2", "dual"], "depends_on": ["server"]}])
    repo = PlaybookRepo(tenant_sources(settings, fleet.tenant) / "playbooks.git")
    repo.push({"work.yml": WORK})

    job = run_job(client, job_body(fleet, "work.yml", repo.source(), forks=5))

    assert job["status"] == "succeeded", job
    hosts = job_hosts(client, job["id"])
    assert {h["status"] for h in hosts.values()} == {"ok"}
    end = {name: when(h["finished_at"]) for name, h in hosts.items()}
    start = {name: when(h["started_at"]) for name, h in hosts.items()}
    assert start["dual"] >= end["srv"]
    for name in ("c1", "c2"):
        assert start[name] >= max(end["srv"], end["dual"]), (name, hosts)

    stored = events(client, job["id"])

    def result_seq(host: str) -> int:
        (found,) = host_events(stored, host, "host_result")
        return found["seq"]

    def first_start(host: str) -> int:
        return host_events(stored, host, "runner_on_start")[0]["seq"]

    assert first_start("dual") > result_seq("srv")
    for name in ("c1", "c2"):
        assert first_start(name) > max(result_seq("srv"), result_seq("dual"))


def test_clients_are_skipped_when_their_server_fails(api: Client, acme: Body,
                                                     repo: PlaybookRepo) -> None:
    """When the server host fails, the clients that depend on it never run: each ends skipped
    with a reason naming the server host and group, and the job failed."""
    repo.push({"configure.yml": FAIL_ON_SERVER})
    fleet = make_fleet(api, ["c1", "c2", "srv"], tenant=acme, groups=[
        {"name": "server", "hosts": ["srv"]},
        {"name": "clients", "hosts": ["c1", "c2"], "depends_on": ["server"]}])

    job = run_job(api, job_body(fleet, "configure.yml", repo.source()))

    assert job["status"] == "failed"
    assert job["message"] == "1 failed, 2 skipped"
    hosts = job_hosts(api, job["id"])
    assert (hosts["srv"]["status"], hosts["srv"]["message"]) == ("failed", "server broke")
    stored = events(api, job["id"])
    for name in ("c1", "c2"):
        assert hosts[name]["status"] == "skipped"
        assert "srv" in hosts[name]["message"] and "server" in hosts[name]["message"], hosts
        assert hosts[name]["started_at"] is None
        assert not [e for e in host_events(stored, name) if e["kind"].startswith("runner_")]


# --- cancel ---------------------------------------------------------------------------------------

NAP = play("""
name: nap
ansible.builtin.wait_for:
  path: "{{ release }}"
  timeout: 20
""", """
name: after the nap
ansible.builtin.copy:
  content: "woke up"
  dest: "{{ release }}.{{ inventory_hostname }}"
""")


def test_cancelling_a_running_job_stops_it_within_seconds(api: Client, acme: Body,
                                                          repo: PlaybookRepo,
                                                          tmp_path: Path) -> None:
    """A job whose first task takes 20 s is cancelled while a host runs that task: the job
    ends cancelled within a few seconds, the running host stops (its next task never runs)
    and the host still waiting its turn is skipped as cancelled; cancelling again changes
    nothing."""
    repo.push({"nap.yml": NAP})
    fleet = make_fleet(api, ["r1", "r2"], tenant=acme)
    release = tmp_path / "shared" / "release"
    job = submit(api, job_body(fleet, "nap.yml", repo.source(), forks=1,
                               extra_vars={"release": str(release)}))
    try:
        deadline = time.monotonic() + 30
        while not any(h["status"] == "running" and h["current_task"] == "nap"
                      for h in job_hosts(api, job["id"]).values()):
            assert time.monotonic() < deadline, job_hosts(api, job["id"])
            time.sleep(0.1)
        (napping,) = [n for n, h in job_hosts(api, job["id"]).items() if h["status"] == "running"]
        (waiting,) = {"r1", "r2"} - {napping}

        asked = time.monotonic()
        response = api.post(f"/v1/jobs/{job['id']}/cancel")
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["cancel_requested"] is True
        stream = read_stream(api, job["id"], timeout=30)
        took = time.monotonic() - asked
    finally:
        release.touch()  # lets a nap still going on in Ansible's worker end now

    assert stream.end is not None and stream.end["status"] == "cancelled"
    assert took < 8, f"the job took {took:.1f}s to stop"
    done = get_job(api, job["id"])
    assert (done["status"], done["message"], done["cancel_requested"]) == (
        "cancelled", "cancelled on request", True)
    assert done["hosts"]["skipped"] == 2 and done["progress"] == 100
    hosts = job_hosts(api, job["id"])
    assert hosts[napping]["status"] == "skipped"
    assert "cancelled while this host ran" in hosts[napping]["message"]
    assert hosts[napping]["current_task"] == "nap"
    assert hosts[waiting]["status"] == "skipped"
    assert "cancelled before this host ran" in hosts[waiting]["message"]
    assert hosts[waiting]["started_at"] is None
    stored = events(api, job["id"])
    assert [e for e in stored if e["data"].get("task") == "after the nap"] == []
    assert not Path(f"{release}.{napping}").exists()

    again = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 202
    assert again.get_json()["status"] == "cancelled"
    time.sleep(1)
    assert events(api, job["id"]) == stored


def test_a_job_past_the_tenants_concurrent_jobs_quota_waits_for_retry_after(
        api: Client, repo: PlaybookRepo, acme: Body, tmp_path: Path) -> None:
    """With its concurrent_jobs quota set to 1 by a cloud admin, a tenant whose job is still
    running gets 429 naming the quota, with Retry-After, for a second job (which is not
    created); once the first has ended, the same request is accepted."""
    repo.push({"nap.yml": NAP})
    fleet = make_fleet(api, ["q1"], tenant=acme)
    quota = api.patch(f"/v1/tenants/{fleet.tenant['id']}", {"quotas": {"concurrent_jobs": 1}})
    assert quota.status_code == 200, quota.get_json()
    release = tmp_path / "shared" / "release"
    body = job_body(fleet, "nap.yml", repo.source(), extra_vars={"release": str(release)})
    first = submit(api, body)
    try:
        refused = api.post("/v1/jobs", body)
        assert refused.status_code == 429, refused.get_json()
        assert set(error_of(refused)["fields"]) == {"quotas.concurrent_jobs"}
        assert int(refused.headers["Retry-After"]) > 0
        assert [job["id"] for job in listed(api, "/v1/jobs")] == [first["id"]]
    finally:
        release.touch()
    assert wait_job(api, first["id"])["status"] == "succeeded"
    second = submit(api, body)
    assert wait_job(api, second["id"])["status"] == "succeeded"


def test_a_job_cancelled_while_queued_runs_no_host(tmp_path: Path) -> None:
    """A job cancelled while it still waits for a free slot never runs Ansible: when its turn
    comes it ends cancelled, every host skipped as cancelled before it ran."""
    with sqlite_app(tmp_path / "data", concurrent_jobs=1) as japp:
        api = japp.client
        fleet = make_fleet(api, ["q1", "q2"])
        repo = PlaybookRepo(japp.sources_of(fleet.tenant) / "playbooks.git")
        repo.push({"site.yml": SITE_V1, "hold.yml": HOLD})
        release = tmp_path / "shared" / "release"
        holder = submit(api, job_body(fleet, "hold.yml", repo.source(), filters={"name": "q1"},
                                      extra_vars={"release": str(release)}))
        wait_job(api, holder["id"], until=["running"])
        queued = submit(api, job_body(fleet, "site.yml", repo.source()))

        response = api.post(f"/v1/jobs/{queued['id']}/cancel")
        assert response.status_code == 202
        assert response.get_json()["cancel_requested"] is True
        release.touch()
        done = wait_job(api, queued["id"])
        hosts = job_hosts(api, queued["id"])
        stored = events(api, queued["id"])

    assert (done["status"], done["message"]) == ("cancelled", "cancelled on request")
    assert {name: (h["status"], h["message"], h["started_at"]) for name, h in hosts.items()} == {
        name: ("skipped", "the job was cancelled before this host ran", None)
        for name in ("q1", "q2")}
    assert not [e for e in stored if e["kind"].startswith(("runner_", "playbook_"))]


# --- check mode --------------------------------------------------------------------------------

WRITE_FILE = play("""
name: write the file
ansible.builtin.copy:
  content: "managed by craton\\n"
  dest: "{{ out_dir }}/{{ inventory_hostname }}.txt"
""")


def test_check_mode_reports_changes_without_making_them(api: Client, acme: Body,
                                                        repo: PlaybookRepo,
                                                        tmp_path: Path) -> None:
    """With check (and diff) on, a task that would write a file reports the host changed but
    the file is not written; the same job without check writes it."""
    repo.push({"write.yml": WRITE_FILE})
    fleet = make_fleet(api, ["w1"], tenant=acme)
    body = job_body(fleet, "write.yml", repo.source(),
                    extra_vars={"out_dir": str(tmp_path / "shared")})

    checked = run_job(api, {**body, "check": True, "diff": True})

    assert (checked["status"], checked["check"], checked["diff"]) == ("succeeded", True, True)
    assert job_hosts(api, checked["id"])["w1"]["status"] == "changed"
    (wrote,) = host_events(events(api, checked["id"]), "w1", "runner_on_ok")
    assert wrote["data"]["changed"] is True
    assert not (tmp_path / "shared" / "w1.txt").exists()

    applied = run_job(api, body)
    assert (applied["status"], applied["check"], applied["diff"]) == ("succeeded", False, False)
    assert job_hosts(api, applied["id"])["w1"]["status"] == "changed"
    assert (tmp_path / "shared" / "w1.txt").read_text() == "managed by craton\n"


# --- audit write-back --------------------------------------------------------------------------

AUDIT = play("""
name: read the kernel
ansible.builtin.command: uname -r
register: uname
changed_when: false
""", """
name: record the kernel
ansible.builtin.set_fact:
  craton_audit:
    kernel: "{{ uname.stdout }}"
    audited: true
    huge: "{{ 'x' * 70000 }}"
""")


def test_audit_facts_become_host_variables(api: Client, acme: Body, repo: PlaybookRepo) -> None:
    """A playbook that sets craton_audit facts writes them back as the host's own variables
    (the others kept), shown as set by the host in its resolved variables; the job's audit
    event lists the keys written, and those not written because the API would have refused
    them too (a value past [limits] max_value_bytes)."""
    repo.push({"audit.yml": AUDIT})
    fleet = make_fleet(api, {"a1": {"variables": {"rack": "r7"}}}, tenant=acme)
    host = fleet.hosts["a1"]

    job = run_job(api, job_body(fleet, "audit.yml", repo.source()))

    assert job["status"] == "succeeded"
    kernel = os.uname().release
    own = api.get(f"/v1/hosts/{host['id']}/variables").get_json()
    assert own["variables"] == {"rack": "r7", "kernel": kernel, "audited": True}
    resolved = api.get(f"/v1/hosts/{host['id']}/variables?resolved=true").get_json()
    assert resolved["variables"]["kernel"] == kernel
    assert resolved["provenance"]["kernel"]["source"] == {"type": "host", "id": host["id"],
                                                          "name": "a1"}
    changed = api.get(f"/v1/hosts/{host['id']}").get_json()
    assert changed["version"] > host["version"]
    (audit,) = host_events(events(api, job["id"]), "a1", "audit")
    assert audit["data"] == {"variables": ["audited", "kernel"], "refused": {
        "huge": "is 70,002 bytes as JSON; at most 65,536 are allowed ([limits] max_value_bytes)"}}


# --- events --------------------------------------------------------------------------------------

STEPS = play(*(f"""
name: step {n}
ansible.builtin.command: sleep 0.2
""" for n in range(1, 5)))


def test_events_are_numbered_without_gaps_and_paged(api: Client, acme: Body,
                                                    repo: PlaybookRepo) -> None:
    """Every event of a job has its own sequence number, 1, 2, 3… without gaps; the list
    pages with ?after=N (and limit), the stream carries the same events with id = seq and a
    retry hint, and ends with the job's status and the last number."""
    repo.push({"steps.yml": STEPS})
    fleet = make_fleet(api, ["e1", "e2"], tenant=acme)
    job = run_job(api, job_body(fleet, "steps.yml", repo.source()))
    assert job["status"] == "succeeded"

    everything = events(api, job["id"], limit=1000)
    seqs = [e["seq"] for e in everything]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) > 40
    for event in everything:
        assert set(event) == {"seq", "kind", "host", "created_at", "data"}
    assert events(api, job["id"], limit=7) == everything

    page = api.get(f"/v1/jobs/{job['id']}/events?after=10&limit=5").get_json()
    assert [e["seq"] for e in page["items"]] == [11, 12, 13, 14, 15]
    assert "after=15" in page["next"] and "limit=5" in page["next"]
    tail = api.get(f"/v1/jobs/{job['id']}/events?after={len(seqs) - 2}").get_json()
    assert ([e["seq"] for e in tail["items"]], tail["next"]) == (seqs[-2:], None)
    assert api.get(f"/v1/jobs/{job['id']}/events?after={len(seqs)}").get_json() == {
        "items": [], "next": None}

    stream = read_stream(api, job["id"])
    assert stream.events == everything
    assert stream.ids == seqs
    assert stream.retry == 2000
    assert stream.end == {"status": "succeeded", "last": seqs[-1]}
    from_middle = read_stream(api, job["id"], last_event_id=30)
    assert from_middle.events == everything[30:]

    for bad in ("after=-1", "limit=0"):
        response = api.get(f"/v1/jobs/{job['id']}/events?{bad}")
        assert response.status_code == 422, bad
    response = api.get(f"/v1/jobs/{job['id']}/events",
                       headers={"Accept": "text/event-stream", "Last-Event-ID": "ten"})
    assert response.status_code == 422
    assert "Last-Event-ID" in error_of(response)["fields"]


def test_a_stream_resumes_after_a_reconnect(client: Client, settings: Settings) -> None:
    """On each database: a reader that hangs up during a job and reconnects with the
    Last-Event-ID it saw gets the rest — together exactly the job's events, none twice."""
    fleet = make_fleet(client, ["e1", "e2"])
    repo = PlaybookRepo(tenant_sources(settings, fleet.tenant) / "playbooks.git")
    repo.push({"steps.yml": STEPS})
    job = submit(client, job_body(fleet, "steps.yml", repo.source()))

    first = read_stream(client, job["id"], stop_after=12)
    assert not first.ended and len(first.events) == 12
    assert get_job(client, job["id"])["status"] in ("pending", "running")
    rest = read_stream(client, job["id"], last_event_id=first.ids[-1])

    assert rest.ended and rest.end is not None
    assert rest.end["status"] == "succeeded"
    together = first.events + rest.events
    assert [e["seq"] for e in together] == list(range(1, len(together) + 1))
    assert together == events(client, job["id"])


# --- secrets in events ----------------------------------------------------------------------------

READ_PW = "lookup('file', inventory_dir + '/../secrets/' + inventory_hostname + '/pw')"
LEAKY = play(f"""
name: show the password
ansible.builtin.debug:
  msg: "password is {{{{ {READ_PW} }}}}"
""", """
name: quiet
ansible.builtin.debug:
  msg: "nolog-marker-{{ inventory_hostname }}"
no_log: true
""", f"""
name: refuse the password
ansible.builtin.fail:
  msg: "bad password {{{{ {READ_PW} }}}}"
when: inventory_hostname == 's2'
""")
PASSWORDS = {"s1": "Tr0ub4dor&3-horse-battery", "s2": "correct staple 9f8e7d6c"}


@pytest.mark.parametrize("layout", ["hosts", "ansible"])
def test_secrets_never_reach_events(api: Client, acme: Body, repo: PlaybookRepo,
                                    layout: str) -> None:
    """A playbook that prints a host's password (read from the bundle's secrets) or fails
    with it in the message: the stored events, the stream, the host's message and status
    carry [REDACTED], never the password; a no_log task's output is not kept at all."""
    repo.push({"leaky.yml": LEAKY})
    fleet = make_fleet(api, ["s1", "s2"], tenant=acme)
    for name, password in PASSWORDS.items():
        api.create(f"/v1/hosts/{fleet.hosts[name]['id']}/secrets",
                   {"name": "pw", "kind": "password", "content": password})

    job = run_job(api, job_body(fleet, "leaky.yml", repo.source(), layout=layout))

    assert job["status"] == "failed"
    stored = events(api, job["id"])
    shown = [e["data"]["msg"] for e in stored
             if e["kind"] == "runner_on_ok" and e["data"].get("task") == "show the password"]
    assert shown == ["password is [REDACTED]"] * 2
    hosts = job_hosts(api, job["id"])
    assert hosts["s2"]["message"] == "bad password [REDACTED]"
    assert host_status(api, fleet.hosts["s2"])["job"]["message"] == "bad password [REDACTED]"
    stream = read_stream(api, job["id"])
    texts = [stored_text(stored), stored_text(stream.events), json.dumps(hosts),
             json.dumps(get_job(api, job["id"]))]
    for text in texts:
        for password in PASSWORDS.values():
            assert password not in text
        assert "nolog-marker" not in text
    quiet = host_events(stored, "s1", "runner_on_ok")[1]["data"]
    assert quiet["task"] == "quiet" and "msg" not in quiet  # it ran; what it said is gone


def test_a_short_password_is_redacted_too(api: Client, acme: Body, repo: PlaybookRepo) -> None:
    """A password of six characters printed by a playbook is redacted like a long one."""
    repo.push({"leaky.yml": LEAKY})
    fleet = make_fleet(api, ["s1"], tenant=acme)
    api.create(f"/v1/hosts/{fleet.hosts['s1']['id']}/secrets",
               {"name": "pw", "kind": "password", "content": "Xq7#z1"})

    job = run_job(api, job_body(fleet, "leaky.yml", repo.source()))

    assert job["status"] == "succeeded"
    stored = events(api, job["id"])
    (shown,) = [e["data"]["msg"] for e in host_events(stored, "s1", "runner_on_ok")
                if e["data"]["task"] == "show the password"]
    assert shown == "password is [REDACTED]"
    assert "Xq7#z1" not in stored_text(stored)


# --- Redis ------------------------------------------------------------------------------------

REDIS_DB = 9
"""A Redis database of these tests alone (job ids start at 1 in every fresh SQLite file, so
streams of earlier tests are emptied first)."""


@pytest.fixture
def redis_url(redis_server: services.Redis) -> str:
    url = redis_server.url_of(REDIS_DB)
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    connection.close()
    return url


def stream_entries(url: str, job_id: int) -> list[tuple[str, Body]]:
    connection = redis.Redis.from_url(url)
    try:
        return [(entry_id.decode(), json.loads(fields[b"e"])) for entry_id, fields in
                connection.xrange(f"craton:job:{job_id}:events")]
    finally:
        connection.close()


def test_events_are_published_to_the_jobs_redis_stream(tmp_path: Path, redis_url: str) -> None:
    """With [redis] url set, each event of a job is also in the job's Redis stream, under the
    id 0-<seq>, with the same content the API shows."""
    with sqlite_app(tmp_path / "data", redis_url=redis_url) as japp:
        fleet = make_fleet(japp.client, ["h1"])
        repo = PlaybookRepo(japp.sources_of(fleet.tenant) / "playbooks.git")
        repo.push({"site.yml": GREET})
        job = run_job(japp.client, job_body(fleet, "site.yml", repo.source()))
        stored = events(japp.client, job["id"])

    entries = stream_entries(redis_url, job["id"])
    assert [entry_id for entry_id, _ in entries] == [f"0-{e['seq']}" for e in stored]
    assert [body for _, body in entries] == stored


def test_a_reader_elsewhere_misses_nothing_when_redis_restarts(
        tmp_path: Path, redis_server: services.Redis, redis_url: str) -> None:
    """A reader connected to another API process (which follows jobs through Redis) while
    Redis restarts in the middle of the job still receives every event exactly once, and
    the end."""
    data = tmp_path / "data"
    with sqlite_app(data, redis_url=redis_url) as runner:
        fleet = make_fleet(runner.client, ["e1", "e2"])
        repo = PlaybookRepo(runner.sources_of(fleet.tenant) / "playbooks.git")
        repo.push({"steps.yml": STEPS})
        # The other process: the same database, named by another path (in this one test
        # process, jobs runtimes are told apart by database URL), the same Redis.
        other_db = Database(f"sqlite:///{data}/../data/craton.db")
        with app_on(other_db, job_settings(data, database_url=other_db.url,
                                           redis_url=redis_url)) as reader:
            job = submit(runner.client, job_body(fleet, "steps.yml", repo.source()))
            restarted: list[Body] = []

            def restart_once(event: Body) -> None:
                if not restarted and event["kind"] == "runner_on_start":
                    redis_server.restart()
                    restarted.append(get_job(runner.client, job["id"]))

            stream = read_stream(reader.client, job["id"], on_event=restart_once)
            assert not reader.app.extensions["craton"].jobs.running_here(job["id"])
        other_db.dispose()
        stored = events(runner.client, job["id"])

    assert restarted and restarted[0]["status"] == "running"
    assert stream.end is not None and stream.end["status"] == "succeeded"
    assert [e["seq"] for e in stream.events] == list(range(1, len(stored) + 1))
    assert stream.events == stored
    entries = stream_entries(redis_url, job["id"])
    assert entries and entries[0][0] != "0-1"  # the restart emptied the stream mid-job


# --- listing jobs and their hosts ----------------------------------------------------------------

def test_jobs_list_newest_first_by_region_and_status(api: Client) -> None:
    """GET /v1/jobs lists jobs newest first, filtered by region and status, a page at a time;
    a tenant sees only its own jobs; a job's hosts filter by status and page by name."""
    dfw = make_fleet(api, {"d1": {}, "d2": {}, "d3": {}, "d4": {},
                           "d5": {"variables": UNREACHABLE}})
    ord_region = api.create(f"/v1/tenants/{dfw.tenant['id']}/regions",
                            {"name": "ord", "variables": LOCAL})
    api.create(f"/v1/regions/{ord_region['id']}/hosts", {"name": "o1"})
    lon = make_fleet(api, ["l1"], tenant="globex", region="lon")
    ping = {"playbook": "craton:ping", "layout": "ansible"}

    jobs = [submit(api, {**ping, "region_id": dfw.region_id, "filters": {"name": "d1"}}),
            submit(api, {**ping, "region_id": dfw.region_id}),
            submit(api, {**ping, "region_id": ord_region["id"]}),
            submit(api, {**ping, "region_id": lon.region_id}, tenant=lon.tenant["id"])]
    ids = [job["id"] for job in jobs]
    finished = [wait_job(api, job_id) for job_id in ids]
    assert [job["status"] for job in finished] == ["succeeded", "failed", "succeeded",
                                                   "succeeded"]
    assert [job["source"] for job in finished] == [{"url": None, "ref": None, "pin": None}] * 4

    def listed_ids(**query: Any) -> list[int]:
        return [job["id"] for job in listed(api, "/v1/jobs", **query)]

    assert listed_ids() == ids[::-1]
    assert listed_ids(region_id=dfw.region_id) == [ids[1], ids[0]]
    assert listed_ids(status="failed") == [ids[1]]
    assert listed_ids(status=["succeeded", "failed"], region_id=dfw.region_id) == [ids[1],
                                                                                  ids[0]]
    assert listed_ids(status="cancelled") == []
    pages = []
    url: str | None = "/v1/jobs?limit=1"
    while url:
        page = api.get(url).get_json()
        pages.append([job["id"] for job in page["items"]])
        url = page["next"]
    assert pages == [[job_id] for job_id in ids[::-1]]
    assert api.get("/v1/jobs?status=done").status_code == 422

    acme, globex = dfw.tenant["id"], lon.tenant["id"]
    assert [j["id"] for j in api.get("/v1/jobs", tenant=acme).get_json()["items"]] == \
        ids[2::-1]
    assert [j["id"] for j in api.get("/v1/jobs", tenant=globex).get_json()["items"]] == \
        [ids[3]]
    assert api.get(f"/v1/jobs?region_id={lon.region_id}", tenant=acme).get_json()[
        "items"] == []
    for path in ("", "/hosts", "/events"):
        assert api.get(f"/v1/jobs/{ids[3]}{path}", tenant=acme).status_code == 404
    assert api.post(f"/v1/jobs/{ids[3]}/cancel", tenant=acme).status_code == 404
    assert api.get("/v1/jobs/987654").status_code == 404

    whole = f"/v1/jobs/{ids[1]}/hosts"
    assert [h["name"] for h in listed(api, whole, status="unreachable")] == ["d5"]
    assert [h["name"] for h in listed(api, whole, status=["ok", "unreachable"])] == [
        "d1", "d2", "d3", "d4", "d5"]
    assert listed(api, whole, status="failed") == []
    pages = []
    url = f"{whole}?limit=2"
    while url:
        page = api.get(url).get_json()
        pages.append([h["name"] for h in page["items"]])
        url = page["next"]
        assert url is None or "marker=" in url
    assert pages == [["d1", "d2"], ["d3", "d4"], ["d5"]]
    assert api.get(f"{whole}?status=bogus").status_code == 422
    ping_hosts = job_hosts(api, ids[0])
    assert list(ping_hosts) == ["d1"]
    assert (ping_hosts["d1"]["status"], ping_hosts["d1"]["current_task"]) == ("ok", "ping")


def test_a_host_never_in_a_job_has_no_status_yet(api: Client) -> None:
    """A new host's status says nothing is known: reachability unknown, never seen, no job;
    another tenant's host is 404."""
    fleet = make_fleet(api, ["n1"])
    other = make_fleet(api, ["x1"], tenant="globex", region="ord")
    assert host_status(api, fleet.hosts["n1"]) == {
        "host_id": fleet.hosts["n1"]["id"], "name": "n1", "reachable": None,
        "last_seen_at": None, "job": None}
    response = api.get(f"/v1/hosts/{other.hosts['x1']['id']}/status",
                       tenant=fleet.tenant["id"])
    assert response.status_code == 404



def test_a_hosts_jobs_and_a_snapshot_to_follow_from(api: Client, acme: Body,
                                                    repo: PlaybookRepo) -> None:
    """A job says the sequence number of its latest event (a reader follows on from there);
    its hosts carry their groups; a host lists its jobs newest first with its own result in
    each, a page at a time; another tenant's host is 404."""
    repo.push({"check.yml": CHECK_DISK})
    fleet = make_fleet(api, {"ok1": {}, "bad1": {"variables": {"fail_here": True}}},
                       tenant=acme,
                       groups=[{"name": "web", "hosts": ["ok1", "bad1"]},
                               {"name": "edge", "hosts": ["ok1"]}])
    first = run_job(api, job_body(fleet, "check.yml", repo.source()))
    second = run_job(api, job_body(fleet, "check.yml", repo.source(), filters={"name": "ok1"}))

    for job in (first, second):
        assert job["last_event"] == events(api, job["id"])[-1]["seq"]
        listed_job = next(j for j in listed(api, "/v1/jobs") if j["id"] == job["id"])
        assert listed_job["last_event"] == job["last_event"]
    hosts = job_hosts(api, first["id"])
    assert (hosts["ok1"]["groups"], hosts["bad1"]["groups"]) == (["edge", "web"], ["web"])

    ok1, bad1 = fleet.hosts["ok1"]["id"], fleet.hosts["bad1"]["id"]
    ok1_jobs = listed(api, f"/v1/hosts/{ok1}/jobs", limit=1)
    assert [(j["job_id"], j["status"], j["job_status"]) for j in ok1_jobs] == [
        (second["id"], "ok", "succeeded"), (first["id"], "ok", "failed")]
    (bad1_job,) = listed(api, f"/v1/hosts/{bad1}/jobs")
    assert (bad1_job["job_id"], bad1_job["status"], bad1_job["current_task"],
            bad1_job["message"], bad1_job["playbook"]) == (
        first["id"], "failed", "check disk", "disk full on bad1", "check.yml")
    other = make_fleet(api, ["x1"], tenant="globex", region="ord")
    response = api.get(f"/v1/hosts/{other.hosts['x1']['id']}/jobs", tenant=fleet.tenant["id"])
    assert response.status_code == 404
