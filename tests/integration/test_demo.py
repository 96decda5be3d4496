"""The demo as a new user meets it: `craton-manage demo load` on a fresh data directory, then
craton-api running the demo playbook over the whole demo fleet with real Ansible — every state
a host can end in shows up, and what the playbook audited is written back to the hosts."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from craton.demo import (
    DEMO_FORKS,
    DEMO_PLAYBOOK,
    DISK_FAILURE_HOST,
    GROUPS,
    UNREACHABLE_HOST,
    demo_hosts,
)
from tests.integration.test_manage import Manage
from tests.integration.test_server import Server, running_api

FINISHED = ("succeeded", "failed", "cancelled")
JOB_TIMEOUT = 300.0
SHIPPED = resources.files("craton") / "demo_source"


@pytest.fixture
def manage(tmp_path: Path) -> Manage:
    manage = Manage(tmp_path)
    assert manage("db", "upgrade").returncode == 0
    return manage


@pytest.fixture
def server(manage: Manage) -> Iterator[Server]:
    """craton-api on the data directory ``manage`` prepared."""
    with running_api(manage.env, manage.home) as running:
        yield running


def load_demo(manage: Manage) -> tuple[int, Path]:
    """Run `demo load`; the region id and source directory it says to start a job with."""
    region_id, _, source = load_demo_of_tenant(manage)
    return region_id, source


def load_demo_of_tenant(manage: Manage) -> tuple[int, int, Path]:
    """Run `demo load`; the region id, the id of its tenant and the source directory it says
    to start a job with."""
    loaded = manage("demo", "load")
    assert loaded.returncode == 0, loaded.stderr
    lines = loaded.stdout.splitlines()
    said = re.fullmatch(r"demo region 'demo-local' is region (\d+) \(tenant (\d+)\)", lines[0])
    assert said is not None, lines[0]
    body = json.loads(lines[-1].strip().removeprefix("POST /v1/jobs "))
    assert body["playbook"] == DEMO_PLAYBOOK
    assert body["region_id"] == int(said[1])
    assert body["forks"] == DEMO_FORKS
    return body["region_id"], int(said[2]), Path(body["source"]["path"])


def test_demo_load_puts_the_playbooks_where_jobs_may_read_them(manage: Manage) -> None:
    """In the demo tenant's own directory below the default sources root
    (<data_dir>/sources/<tenant id>), a directory of its own, not shared with other tenants;
    a second load (as after an upgrade) puts back the shipped files and drops what is no
    longer shipped."""
    _, tenant, source = load_demo_of_tenant(manage)
    assert source == manage.data_dir / "sources" / str(tenant) / "demo"
    assert oct(manage.data_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((manage.data_dir / "craton.db").stat().st_mode & 0o777) == "0o600"
    shipped = (SHIPPED / DEMO_PLAYBOOK).read_text()
    assert (source / DEMO_PLAYBOOK).read_text() == shipped
    assert "- name: Converge the demo cloud" in shipped

    (source / DEMO_PLAYBOOK).write_text("# edited\n")
    (source / "stale.yml").write_text("# from an older version\n")
    _, again = load_demo(manage)

    assert again == source
    assert sorted(p.name for p in source.iterdir()) == sorted(
        p.name for p in SHIPPED.iterdir() if not p.name.startswith((".", "__")))
    assert (source / DEMO_PLAYBOOK).read_text() == shipped
    assert sorted(p.name for p in source.parent.iterdir()) == ["demo"], "no leftovers"


def run_to_the_end(server: Server, body: dict[str, Any]
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start a job and poll it as a progress bar does until it ends: the job as it ended, and
    the job as each poll saw it."""
    reply = server.call("POST", "/v1/jobs", body)
    assert reply.status == 202, reply.body
    job = reply.json()
    seen = [job]
    deadline = time.monotonic() + JOB_TIMEOUT
    while job["status"] not in FINISHED:
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.25)
        job = server.call("GET", f"/v1/jobs/{job['id']}").json()
        seen.append(job)
    return job, seen


def when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_the_demo_playbook_shows_every_host_state(manage: Manage, server: Server) -> None:
    """The fleet takes long enough to watch, and well under half a minute: the control plane
    runs first, then the rest in one wave — the bar fills wave by wave while the hosts of the
    running wave show as running. One host fails its disk check and one cannot be reached —
    each with Ansible's own message — while the rest converge (some changed, some already up to
    date); each converged host has its audit variables written back."""
    region_id, source = load_demo(manage)

    job, polls = run_to_the_end(server, {"region_id": region_id, "playbook": DEMO_PLAYBOOK,
                                         "source": {"path": str(source)}, "forks": DEMO_FORKS})

    progress = [poll["progress"] for poll in polls]
    control = sum(1 for host in demo_hosts() if host["groups"] == ["control"])
    assert progress == sorted(progress) and progress[-1] == 100
    assert control * 100 // len(demo_hosts()) in progress, f"the control wave: {progress}"
    running = {poll["hosts"]["running"] for poll in polls}
    assert {control, len(demo_hosts()) - control} <= running, f"waves running: {running}"

    fleet = {host["name"]: host["groups"][0] for host in demo_hosts()}
    assert job["status"] == "failed"
    assert job["message"] == "1 failed, 1 unreachable"
    assert job["hosts"]["total"] == len(fleet)
    hosts = {h["name"]: h for h in server.call(
        "GET", f"/v1/jobs/{job['id']}/hosts?limit=100").json()["items"]}
    assert set(hosts) == set(fleet)

    failed = hosts[DISK_FAILURE_HOST]
    assert (failed["status"], failed["current_task"]) == ("failed", "Check disks")
    assert failed["message"] == ("non-zero return code (1): sdb: 3 reallocated sectors, "
                                 "1 pending; SMART health FAILED: replace the disk")
    gone = hosts[UNREACHABLE_HOST]
    assert (gone["status"], gone["current_task"]) == ("unreachable",
                                                      "Wait for the host to answer")
    assert "127.0.0.1 port 9: Connection refused" in gone["message"], gone

    converged = {name: h for name, h in hosts.items()
                 if name not in (DISK_FAILURE_HOST, UNREACHABLE_HOST)}
    assert {h["status"] for h in converged.values()} == {"ok", "changed"}
    assert all(h["current_task"] == "Record the converge in Craton" and h["message"] is None
               for h in converged.values()), converged

    control_done = max(when(hosts[n]["finished_at"]) for n, g in fleet.items()
                       if g == "control")
    assert "control" in GROUPS["compute"][1] and "control" in GROUPS["storage"][1]
    assert all(when(hosts[n]["started_at"]) >= control_done
               for n, g in fleet.items() if g != "control"), "depends_on: control first"

    started, finished = when(job["started_at"]), when(job["finished_at"])
    for name, host in hosts.items():
        variables = server.call("GET", f"/v1/hosts/{host['host_id']}/variables").json()
        audit = {k: variables["variables"].get(k) for k in ("converged_at", "demo_playbook")}
        if name in converged:
            assert audit["demo_playbook"] == DEMO_PLAYBOOK, (name, variables)
            converged_at = when(audit["converged_at"])
            assert started - dt.timedelta(seconds=1) <= converged_at <= finished, name
        else:
            assert audit == {"converged_at": None, "demo_playbook": None}, (name, variables)


def test_a_stopped_server_keeps_every_event_and_resumes_the_job(manage: Manage) -> None:
    """The operator restarts craton-api (SIGTERM) while the demo job's second wave runs: the
    server stops the run, stores every event emitted so far — the last says the job was
    interrupted — and exits; started again, it resumes the job, running again only the wave
    that was cut short. The job's record has every event once, numbered without a gap."""
    region_id, source = load_demo(manage)
    control = {str(h["name"]) for h in demo_hosts() if h["groups"] == ["control"]}
    with running_api(manage.env, manage.home) as server:
        reply = server.call("POST", "/v1/jobs", {"region_id": region_id,
                                                 "playbook": DEMO_PLAYBOOK,
                                                 "source": {"path": str(source)},
                                                 "forks": DEMO_FORKS})
        assert reply.status == 202, reply.body
        job_id = reply.json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            job = server.call("GET", f"/v1/jobs/{job_id}").json()
            if job["hosts"]["running"] > len(control):  # the second wave
                break
            assert job["status"] not in FINISHED and time.monotonic() < deadline, job
            time.sleep(0.1)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0
    with running_api(manage.env, manage.home) as server:
        job = run_to_the_end_of(server, job_id)
        record = all_events(server, job_id)
    assert job["status"] == "failed" and job["message"] == "1 failed, 1 unreachable", job
    assert [e["seq"] for e in record] == list(range(1, len(record) + 1))
    stops = [i for i, e in enumerate(record) if "interrupted" in e["data"]]
    assert len(stops) == 1, "one interrupted event, stored before the server exited"
    before, after = record[:stops[0]], record[stops[0] + 1:]
    for host in demo_hosts():
        name = str(host["name"])
        starts = (sum(e["kind"] == "runner_on_start" and e["host"] == name for e in before),
                  sum(e["kind"] == "runner_on_start" and e["host"] == name for e in after))
        if name in control:
            assert starts[1] == 0, (name, "the first wave is not run again")
        elif name != UNREACHABLE_HOST:
            assert starts[0] > 0 and starts[1] > 0, (name, starts)
        assert sum(e["kind"] == "host_result" and e["host"] == name for e in record) == 1, name


def run_to_the_end_of(server: Server, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        job = server.call("GET", f"/v1/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.25)


def all_events(server: Server, job_id: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    path: str | None = f"/v1/jobs/{job_id}/events?limit=1000"
    while path:
        page = server.call("GET", path).json()
        events += page["items"]
        path = page.get("next")
    return events
