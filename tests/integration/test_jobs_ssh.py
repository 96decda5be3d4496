"""Jobs over real SSH: Craton runs a playbook on hosts it knows only by their ``ip_address``,
``ssh_user`` and an SSH key stored as each host's secret, and reports each host's outcome.

Three sshd hosts and a dead one live in network namespaces (``tests/netns.py``). The key is
never a file the test hands Ansible: Craton's bundle must wire the stored secret in itself
(``ansible_ssh_private_key_file`` with ``layout=ansible``; ``env/ssh_key`` for ansible-runner's
ssh-agent plus the same variable with ``layout=hosts``). The namespaces share the file system,
so each host proves it ran the task by writing, under a directory of this test, a file named
after itself holding ``$SSH_CONNECTION`` — whose server address must be that host's own.

These need root; CI runs them as root, so they fail rather than skip elsewhere.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from craton.api import create_app
from craton.config import Settings
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import Client, make_settings
from tests.netns import SshFleet, SshHost, ssh_hosts

JOB_TIMEOUT = 60.0
KEY_SECRET = "deploy_key"
REGION_VARIABLES = {
    "ansible_python_interpreter": "/usr/bin/python3",
    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
}
MARK_PLAYBOOK = """\
- name: Mark each host
  hosts: all
  gather_facts: false
  tasks:
    - name: write down the SSH connection this task came over
      ansible.builtin.shell: echo "$SSH_CONNECTION" > {{ mark_dir }}/{{ inventory_hostname }}
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    """Three hosts with an sshd accepting ``fleet.private_key``, and one refusing connections."""
    with ssh_hosts(tmp_path_factory.mktemp("fleet"), count=3, unreachable=1) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def jobs_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("craton"))
    return dataclasses.replace(
        settings, jobs=dataclasses.replace(settings.jobs, host_key_checking=False))


@pytest.fixture(scope="module")
def jobs_app(jobs_settings: Settings) -> Iterator[Flask]:
    """An embedded-engine app on a SQLite database of its own, inside the data directory (so
    scanning the data directory for the key covers the database too)."""
    jobs_settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(f"sqlite:///{jobs_settings.data_dir / 'craton.db'}")
    migrate.upgrade(database.engine)
    app = create_app(jobs_settings, database=database)
    yield app
    app.extensions["craton"].close()
    database.dispose()


@pytest.fixture
def api(jobs_app: Flask) -> Client:
    return Client(jobs_app.test_client())


def mark_source(settings: Settings, registered: Registered) -> str:
    """A playbook directory in the registered fleet's tenant's <data_dir>/sources/<tenant id>,
    where its directory sources may live."""
    directory = settings.data_dir / "sources" / str(registered.tenant_id) / "marks"
    directory.mkdir(parents=True)
    (directory / "site.yml").write_text(MARK_PLAYBOOK)
    return str(directory)


@dataclasses.dataclass
class Registered:
    """The fleet as registered in Craton: one region, a host per SSH host."""

    tenant_id: int
    region_id: int
    host_ids: dict[str, int]
    secret_ids: dict[str, int]
    live: list[SshHost]
    dead: SshHost


def register(api: Client, fleet: SshFleet) -> Registered:
    """A tenant and region holding the fleet, each host's SSH key stored as its secret."""
    tenant = api.create("/v1/tenants", {"name": f"ops-{uuid.uuid4().hex[:8]}"})
    region = api.create(f"/v1/tenants/{tenant['id']}/regions",
                        {"name": "lab", "variables": REGION_VARIABLES})
    response = api.post(f"/v1/regions/{region['id']}/hosts", [
        {"name": host.name, "ip_address": host.ip, "ssh_user": "root"}
        for host in fleet.all_hosts])
    assert response.status_code == 201, response.get_json()
    host_ids = {host["name"]: host["id"] for host in response.get_json()["items"]}
    secret_ids = {}
    for host in fleet.all_hosts:
        secret = api.create(f"/v1/hosts/{host_ids[host.name]}/secrets",
                            {"name": KEY_SECRET, "kind": "ssh_private_key",
                             "content": fleet.private_key})
        assert "content" not in secret
        secret_ids[host.name] = secret["id"]
    (dead,) = fleet.unreachable
    return Registered(tenant["id"], region["id"], host_ids, secret_ids, list(fleet.hosts), dead)


def run_job(api: Client, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Submit a job and follow its event stream to the end, as a user would; returns the
    finished job and the stream's text."""
    response = api.post("/v1/jobs", body)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]

    def follow() -> str:
        stream = api.get(f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})
        assert stream.status_code == 200
        return stream.get_data(as_text=True)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        text = pool.submit(follow).result(timeout=JOB_TIMEOUT)
    assert "event: end" in text, text[-2000:]
    job = api.get(f"/v1/jobs/{job_id}").get_json()
    assert job["finished_at"] is not None, job
    return job, text


def job_hosts(api: Client, job_id: int) -> dict[str, dict[str, Any]]:
    response = api.get(f"/v1/jobs/{job_id}/hosts")
    assert response.status_code == 200
    return {host["name"]: host for host in response.get_json()["items"]}


def all_events(api: Client, job_id: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    url: str | None = f"/v1/jobs/{job_id}/events"
    while url:
        page = api.get(url).get_json()
        events += page["items"]
        url = page["next"]
    return events


def host_status(api: Client, host_id: int) -> dict[str, Any]:
    response = api.get(f"/v1/hosts/{host_id}/status")
    assert response.status_code == 200
    return response.get_json()


def needles(key: str) -> list[str]:
    """What would give a key away: the key, and each line of its body."""
    lines = [line for line in key.splitlines() if line and not line.startswith("-----")]
    assert lines
    return [key.strip(), *lines]


def new_key() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()


def assert_key_kept_secret(api: Client, settings: Settings, fleet: Registered,
                           job: dict[str, Any], stream: str, keys: list[str]) -> None:
    """No key text in anything the API says about the job, nor in any file Craton keeps —
    database included; and the job's work directory (its unpacked bundle) is gone."""
    responses = [
        stream,
        json.dumps(all_events(api, job["id"])),
        api.get(f"/v1/jobs/{job['id']}").get_data(as_text=True),
        api.get(f"/v1/jobs/{job['id']}/hosts").get_data(as_text=True),
        api.get(f"/v1/jobs?region_id={fleet.region_id}").get_data(as_text=True),
        *(api.get(f"/v1/hosts/{host_id}/status").get_data(as_text=True)
          for host_id in fleet.host_ids.values()),
    ]
    texts = [needle for key in keys for needle in needles(key)]
    for shown in responses:
        assert not [needle for needle in texts if needle in shown], shown[:2000]
    assert not (settings.jobs_dir / str(job["id"])).exists()
    found = []
    for directory, _, names in os.walk(settings.data_dir):
        for name in names:
            path = Path(directory) / name
            content = path.read_bytes().decode(errors="replace")
            found += [str(path) for needle in texts if needle in content]
    assert not found


def assert_marks(mark_dir: Path, fleet: Registered, marked: list[SshHost]) -> None:
    """Exactly ``marked`` wrote their file, each over an SSH connection to its own address."""
    assert sorted(path.name for path in mark_dir.iterdir()) == sorted(h.name for h in marked)
    for host in marked:
        connection = (mark_dir / host.name).read_text().split()
        assert connection[2:] == [host.ip, "22"], connection
        (mark_dir / host.name).unlink()


def run_marks(api: Client, settings: Settings, registered: Registered, layout: str,
              tmp_path: Path) -> tuple[dict[str, Any], str, Path]:
    """Run the marking playbook over the registered fleet (``run_job``); returns the job, its
    stream and the directory where each host that ran left its mark."""
    mark_dir = tmp_path / "marks"
    mark_dir.mkdir()
    job, stream = run_job(api, {
        "region_id": registered.region_id, "playbook": "site.yml",
        "source": {"path": mark_source(settings, registered)},
        "layout": layout, "extra_vars": {"mark_dir": str(mark_dir)}})
    return job, stream, mark_dir


@pytest.mark.parametrize("layout", ["hosts", "ansible"])
def test_playbook_runs_over_ssh_with_the_stored_key(
        api: Client, fleet: SshFleet, jobs_settings: Settings, tmp_path: Path,
        layout: str) -> None:
    """As an operator I run a playbook on a region's hosts through the API, Craton connecting
    with each host's stored SSH key: live hosts run it, the dead one ends unreachable with
    Ansible's reason, hosts' reachability is recorded, and the key shows up nowhere."""
    registered = register(api, fleet)
    before = {name: host_status(api, host_id) for name, host_id in registered.host_ids.items()}
    assert all(s["reachable"] is None and s["last_seen_at"] is None for s in before.values())
    resolved = api.get(f"/v1/hosts/{registered.host_ids[fleet.hosts[0].name]}/variables"
                       "?resolved=true").get_json()
    assert resolved["variables"]["ansible_user"] == "root"
    assert resolved["variables"]["ansible_host"] == fleet.hosts[0].ip
    key_source = resolved["provenance"]["ansible_ssh_private_key_file"]["source"]
    assert (key_source["type"], key_source["id"]) == (
        "secret", registered.secret_ids[fleet.hosts[0].name])

    job, stream, mark_dir = run_marks(api, jobs_settings, registered, layout, tmp_path)

    assert job["status"] == "failed", job
    assert job["message"] == "1 unreachable"
    assert job["hosts"]["changed"] == 3 and job["hosts"]["unreachable"] == 1, job["hosts"]
    assert job["hosts"]["total"] == 4 and job["progress"] == 100
    assert job["source"]["pin"].startswith("sha256:")
    assert_marks(mark_dir, registered, registered.live)

    hosts = job_hosts(api, job["id"])
    dead = hosts[registered.dead.name]
    assert dead["status"] == "unreachable", dead
    assert f"connect to host {registered.dead.ip} port 22: Connection refused" in \
        dead["message"], dead
    for host in registered.live:
        assert hosts[host.name]["status"] == "changed", hosts[host.name]
    events = all_events(api, job["id"])
    unreachable = [e for e in events if e["kind"] == "runner_on_unreachable"]
    assert [e["host"] for e in unreachable] == [registered.dead.name]
    assert "Connection refused" in unreachable[0]["data"]["msg"]

    for host in registered.live:
        status = host_status(api, registered.host_ids[host.name])
        assert status["reachable"] is True and status["last_seen_at"] is not None, status
        assert status["job"]["id"] == job["id"] and status["job"]["result"] == "changed"
    status = host_status(api, registered.host_ids[registered.dead.name])
    assert status["reachable"] is False and status["last_seen_at"] is None, status
    assert status["job"]["result"] == "unreachable"

    assert_key_kept_secret(api, jobs_settings, registered, job, stream, [fleet.private_key])


def test_ping_records_reachability(api: Client, fleet: SshFleet, jobs_settings: Settings) -> None:
    """As an operator I check which hosts answer with the built-in craton:ping: live hosts end
    ok and reachable, the dead one unreachable — recorded on each host."""
    registered = register(api, fleet)

    job, stream = run_job(api, {"region_id": registered.region_id, "playbook": "craton:ping"})

    assert job["status"] == "failed" and job["message"] == "1 unreachable", job
    assert job["hosts"]["ok"] == 3 and job["hosts"]["unreachable"] == 1, job["hosts"]
    hosts = job_hosts(api, job["id"])
    assert {name: host["status"] for name, host in hosts.items()} == {
        **{host.name: "ok" for host in registered.live}, registered.dead.name: "unreachable"}
    assert "Connection refused" in hosts[registered.dead.name]["message"]
    for host in registered.live:
        status = host_status(api, registered.host_ids[host.name])
        assert status["reachable"] is True and status["last_seen_at"] is not None, status
    status = host_status(api, registered.host_ids[registered.dead.name])
    assert status["reachable"] is False and status["last_seen_at"] is None, status
    assert_key_kept_secret(api, jobs_settings, registered, job, stream, [fleet.private_key])


@pytest.mark.parametrize("layout", ["hosts", "ansible"])
def test_a_wrong_key_makes_only_its_host_unreachable(
        api: Client, fleet: SshFleet, jobs_settings: Settings, tmp_path: Path,
        layout: str) -> None:
    """As an operator whose stored key for one host is wrong, I see that host unreachable with
    SSH's "Permission denied" while the others run the playbook — even when an earlier job
    reached the host with the right key moments ago: Craton connects with the key it holds
    now, never through an SSH connection some earlier job (or another tenant's) left open."""
    registered = register(api, fleet)
    earlier, _ = run_job(api, {"region_id": registered.region_id, "playbook": "craton:ping",
                               "layout": layout})
    assert earlier["hosts"]["ok"] == 3, earlier
    wrong = new_key()
    victim = fleet.hosts[1]
    response = api.patch(f"/v1/secrets/{registered.secret_ids[victim.name]}",
                         {"content": wrong})
    assert response.status_code == 200, response.get_json()

    job, stream, mark_dir = run_marks(api, jobs_settings, registered, layout, tmp_path)

    hosts = job_hosts(api, job["id"])
    assert hosts[victim.name]["status"] == "unreachable", hosts[victim.name]
    assert "Permission denied (publickey)" in hosts[victim.name]["message"]
    assert hosts[registered.dead.name]["status"] == "unreachable"
    others = [host for host in registered.live if host.name != victim.name]
    for host in others:
        assert hosts[host.name]["status"] == "changed", hosts[host.name]
    assert job["status"] == "failed" and job["message"] == "2 unreachable", job
    assert_marks(mark_dir, registered, others)
    status = host_status(api, registered.host_ids[victim.name])
    assert status["reachable"] is False and status["job"]["result"] == "unreachable", status
    assert_key_kept_secret(api, jobs_settings, registered, job, stream,
                           [fleet.private_key, wrong])
