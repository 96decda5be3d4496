"""A hostile tenant's job, confined: each way a playbook or an inventory variable could run a
command on the machine that runs Craton — a ``delegate_to: localhost`` task, a ``pipe`` lookup
in ``ansible_python_interpreter`` on the built-in ``craton:ping``, an SSH ``ProxyCommand`` —
runs inside the job sandbox, where Craton's data directory (database, secrets key), other jobs,
the server's environment, and Craton's own Redis and database are out of reach. Each attack
fails, and the job reports it as a host failure.

The attacks are real playbooks run by real Ansible; the secrets they go after are the app's
own files, and a canary set in the server's environment.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.functional.job_helpers import (
    LOCAL,
    JobApp,
    PlaybookRepo,
    events,
    job_body,
    job_hosts,
    make_fleet,
    play,
    run_job,
    sqlite_app,
    submit,
    wait_event,
    wait_job,
)

CANARY_VARIABLE = "CRATON_SANDBOX_CANARY"


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    """A value only the server's environment holds."""
    value = f"canary-{secrets.token_hex(12)}"
    monkeypatch.setenv(CANARY_VARIABLE, value)
    return value


@pytest.fixture
def japp(tmp_path: Path, canary: str) -> Iterator[JobApp]:
    with sqlite_app(tmp_path / "data") as built:
        yield built


def secret_key(japp: JobApp) -> str:
    """The key that decrypts every tenant's secrets (the app created it at start)."""
    return japp.settings.secrets_key_file.read_text().strip()


def stealing_interpreter(key_file: Path, leak: Path) -> str:
    """An ``ansible_python_interpreter`` that, when Ansible templates it on the controller,
    copies the secrets key to ``leak`` (and names a real interpreter, so the run goes on)."""
    return f"{{{{ lookup('pipe', 'cat {key_file} > {leak} && echo {sys.executable}') }}}}"


def everything_recorded(japp: JobApp, job_id: int) -> str:
    """All a job left in Craton: its events and its hosts' messages, as one text."""
    hosts = job_hosts(japp.client, job_id)
    return repr(events(japp.client, job_id)) + repr(hosts)


ATTACKS = play("""
name: read the secrets key
ansible.builtin.command: cat {{ data_dir }}/secrets.key
delegate_to: localhost
when: attack == 'key'
""", """
name: copy the database
ansible.builtin.command: cp {{ data_dir }}/craton.db {{ playbook_dir }}/stolen.db
delegate_to: localhost
when: attack == 'database'
""", """
name: read the server's environment
ansible.builtin.shell: >-
  cat /proc/1/environ /proc/self/environ | tr '\\0' '\\n' | grep {{ canary_variable }}
delegate_to: localhost
when: attack == 'environ'
""", """
name: look into another job
ansible.builtin.command: ls {{ jobs_dir }}/{{ other_job }}
delegate_to: localhost
when: attack == 'other-job'
""", """
name: plant a file outside the work directory
ansible.builtin.copy:
  content: planted
  dest: "{{ item }}"
loop: "{{ planted }}"
delegate_to: localhost
when: attack == 'write'
""")


def test_a_hostile_playbook_reaches_nothing_of_the_server(japp: JobApp, tmp_path: Path,
                                                          canary: str) -> None:
    """Tasks run on the controller (delegate_to: localhost) try to read the secrets key, copy
    the database, find the server's environment in /proc, list another job's directory and
    write outside the job: each fails, the host ends failed with Ansible's message, and
    nothing they were after shows up in the job's record or on the disk."""
    api = japp.client
    release = japp.shared / "release"
    victim = make_fleet(api, ["v1"], tenant="victim")
    victims = PlaybookRepo(japp.sources_of(victim.tenant) / "hold.git")
    victims.push({"hold.yml": play("""
name: hold
ansible.builtin.wait_for:
  path: "{{ release }}"
  timeout: 60
""")})
    held = submit(api, job_body(victim, "hold.yml", victims.source(),
                                extra_vars={"release": str(release)}))
    wait_event(api, held["id"], "runner_on_start")
    other_dir = japp.settings.jobs_dir / str(held["id"])
    assert other_dir.is_dir()
    marker = f"craton-planted-{secrets.token_hex(6)}"
    planted = [str(japp.settings.data_dir / marker), f"/usr/local/{marker}",
               f"/etc/{marker}", str(tmp_path / marker)]
    attackers = {name: {"variables": {"attack": name}} for name in
                 ("key", "database", "environ", "other-job", "write")}
    fleet = make_fleet(api, attackers, tenant="mallory")
    repo = PlaybookRepo(japp.sources_of(fleet.tenant) / "attacks.git")
    repo.push({"attack.yml": ATTACKS})
    try:
        job = run_job(api, job_body(fleet, "attack.yml", repo.source(), layout="ansible",
                                    extra_vars={
                                        "data_dir": str(japp.settings.data_dir),
                                        "jobs_dir": str(japp.settings.jobs_dir),
                                        "other_job": held["id"],
                                        "canary_variable": CANARY_VARIABLE,
                                        "planted": planted}))
    finally:
        release.touch()
    hosts = job_hosts(api, job["id"])
    recorded = everything_recorded(japp, job["id"])

    assert job["status"] == "failed", job
    assert {name: host["status"] for name, host in hosts.items()} == dict.fromkeys(
        attackers, "failed"), hosts
    assert "No such file or directory" in hosts["key"]["message"], hosts["key"]
    assert "No such file or directory" in hosts["database"]["message"], hosts["database"]
    assert "No such file or directory" in hosts["other-job"]["message"], hosts["other-job"]
    assert hosts["environ"]["message"], hosts["environ"]
    assert secret_key(japp) not in recorded
    assert canary not in recorded
    assert not [path for path in planted if Path(path).exists()]
    assert wait_job(api, held["id"])["status"] == "succeeded"


def test_inventory_variables_run_nothing_on_the_server_for_craton_ping(
        japp: JobApp, tmp_path: Path, canary: str) -> None:
    """The built-in ping, no playbook of the tenant's at all: host variables that Ansible
    templates on the controller — a pipe lookup in ansible_python_interpreter, a
    ProxyCommand in ansible_ssh_common_args — run in the sandbox, where the secrets key and
    the server's environment are not there to read and the test's directory is not there to
    write to; each host ends failed or unreachable and the key is nowhere in the record."""
    api = japp.client
    key_file = japp.settings.secrets_key_file
    leak = tmp_path / "leak"
    fleet = make_fleet(api, {
        "lookup": {"variables": {
            "ansible_python_interpreter": stealing_interpreter(key_file, leak)}},
        "environ": {"variables": {
            "ansible_python_interpreter":
                f"{{{{ lookup('pipe', 'grep -a {CANARY_VARIABLE} /proc/1/environ') }}}}"}},
        "proxy": {"variables": {
            "ansible_connection": "ssh", "ansible_host": "127.0.0.1",
            "ansible_ssh_common_args":
                f"-o ProxyCommand=\"sh -c 'cat {key_file} > {leak}; exit 1'\""}},
    })
    job = run_job(api, {"region_id": fleet.region_id, "playbook": "craton:ping"})
    hosts = job_hosts(api, job["id"])
    recorded = everything_recorded(japp, job["id"])

    assert job["status"] == "failed", job
    assert hosts["lookup"]["status"] == "failed", hosts["lookup"]
    assert "'pipe' failed" in hosts["lookup"]["message"], hosts["lookup"]
    assert hosts["environ"]["status"] == "failed", hosts["environ"]
    assert hosts["proxy"]["status"] == "unreachable", hosts["proxy"]
    assert not leak.exists()
    assert secret_key(japp) not in recorded
    assert canary not in recorded


def test_without_the_sandbox_the_same_lookup_reads_the_key(tmp_path: Path) -> None:
    """The control for the tests above: with ``[jobs] sandbox = off`` the very same host
    variable copies the secrets key where the tenant wanted it, and the ping even succeeds —
    so it is the sandbox that stops the attack, not the attack being broken."""
    leak = tmp_path / "leak"
    with sqlite_app(tmp_path / "data", sandbox=False) as japp:
        fleet = make_fleet(japp.client, {"lookup": {"variables": {
            "ansible_python_interpreter":
                stealing_interpreter(japp.settings.secrets_key_file, leak)}}})
        job = run_job(japp.client, {"region_id": fleet.region_id, "playbook": "craton:ping"})
        assert leak.read_text().strip() == secret_key(japp)
    assert job["status"] == "succeeded"


SERVICE_PROBES = play("""
name: talk to Craton's Redis without its password
ansible.builtin.command: >-
  {{ python }} -c "import redis; c = redis.Redis(port={{ redis_port }});
  print(c.keys('*'), c.xadd('{{ stream }}', {'e': 'forged'}))"
delegate_to: localhost
when: probe == 'redis'
""", """
name: talk to the database as root without its password
ansible.builtin.command: >-
  {{ python }} -c "import pymysql; pymysql.connect(host='127.0.0.1', port={{ mariadb_port }},
  user='root').cursor().execute('SELECT 1')"
delegate_to: localhost
when: probe == 'mariadb'
""", """
name: open the job database
ansible.builtin.command: >-
  {{ python }} -c "import sqlite3; print(sqlite3.connect('file:{{ database }}?mode=ro',
  uri=True).execute('SELECT count(*) FROM job_events').fetchall())"
delegate_to: localhost
when: probe == 'sqlite'
""")


@pytest.fixture(scope="module")
def protected_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Redis]:
    with services.redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def test_a_playbook_cannot_use_cratons_own_services(
        tmp_path: Path, protected_redis: services.Redis,
        mariadb_server: services.MariaDB) -> None:
    """The sandbox shares the host's network, so Craton's services on loopback must not
    answer it: Redis (the jobboard and every job's event stream) and MariaDB need passwords
    it does not hold, and the SQLite database is not in its file system. Every probe fails;
    the job's own event stream in Redis holds no forged entry."""
    with sqlite_app(tmp_path / "data", redis_url=protected_redis.url) as japp:
        api = japp.client
        fleet = make_fleet(api, {name: {"variables": {"probe": name}}
                                 for name in ("redis", "mariadb", "sqlite")})
        repo = PlaybookRepo(japp.sources_of(fleet.tenant) / "probes.git")
        repo.push({"probe.yml": SERVICE_PROBES})
        stream = "craton:job:1:events"  # this job's own: the first of a fresh database
        job = run_job(api, job_body(fleet, "probe.yml", repo.source(), layout="ansible",
                                    extra_vars={
                                        "python": sys.executable,
                                        "redis_port": protected_redis.port,
                                        "mariadb_port": mariadb_server.port,
                                        "database": str(japp.settings.data_dir / "craton.db"),
                                        "stream": stream}))
        assert job["id"] == 1
        hosts = job_hosts(api, job["id"])
        import redis

        entries = redis.Redis.from_url(protected_redis.url).xrange(stream)

    assert {name: host["status"] for name, host in hosts.items()} == dict.fromkeys(
        ("redis", "mariadb", "sqlite"), "failed"), hosts
    assert "authenticat" in hosts["redis"]["message"].lower(), hosts["redis"]
    assert "Access denied" in hosts["mariadb"]["message"], hosts["mariadb"]
    assert "unable to open database" in hosts["sqlite"]["message"], hosts["sqlite"]
    assert all(b"forged" not in b"".join(fields.values()) for _, fields in entries)


def test_a_normal_job_runs_unaffected_in_the_sandbox(japp: JobApp) -> None:
    """What a playbook legitimately does on the controller still works: templating, facts
    of the local host, files in its own project directory and private /tmp."""
    api = japp.client
    fleet = make_fleet(api, ["n1", "n2"], region_vars=LOCAL)
    repo = PlaybookRepo(japp.sources_of(fleet.tenant) / "normal.git")
    repo.push({"site.yml": play("""
name: write a file beside the playbook
ansible.builtin.copy:
  content: "{{ inventory_hostname }}"
  dest: "{{ playbook_dir }}/out-{{ inventory_hostname }}.txt"
delegate_to: localhost
""", """
name: use the private tmp
ansible.builtin.shell: echo hi > /tmp/scratch && cat /tmp/scratch
register: scratch
""", """
name: check it
ansible.builtin.assert:
  that: scratch.stdout == 'hi'
""")})
    job = run_job(api, job_body(fleet, "site.yml", repo.source()))
    assert job["status"] == "succeeded", (job, job_hosts(api, job["id"]))

