"""Helpers for the job tests: an app of its own (SQLite, optionally Redis), a fleet of hosts
Ansible reaches locally, a git repository of playbooks, and the ways a user follows a job —
polling it, paging its events, reading its Server-Sent Events stream."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask

from craton.api import create_app
from craton.config import (
    DatabaseSettings,
    DefaultSettings,
    JobsSettings,
    RedisSettings,
    Settings,
    SourcesSettings,
)
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import Client

Body = dict[str, Any]

LOCAL = {"ansible_connection": "local",
         "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
"""Region variables that make Ansible run every host's tasks on this machine."""
UNREACHABLE = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}
"""Host variables of a host Ansible cannot reach (nothing listens on port 1)."""

FINISHED = ("succeeded", "failed", "cancelled")
JOB_TIMEOUT = 90.0


# --- apps ----------------------------------------------------------------------------------

def shared_dir(data_dir: Path) -> Path:
    """A directory beside ``data_dir`` that sandboxed jobs may read and write: the one way a
    test and a running playbook exchange files (a release signal, a file a task wrote)."""
    return data_dir.parent / "shared"


def job_settings(data_dir: Path, *, database_url: str = "", redis_url: str = "",
                 file_roots: Sequence[str] = (), **jobs: Any) -> Settings:
    """Settings of an app that runs jobs: data in ``data_dir``, each tenant's playbook sources
    below ``data_dir/sources/<tenant id>`` (unless ``file_roots`` says otherwise),
    ``shared_dir`` writable by the sandboxed jobs."""
    shared = shared_dir(data_dir)
    shared.mkdir(parents=True, exist_ok=True)
    jobs.setdefault("sandbox_paths", (f"{shared}:rw",))
    return Settings(
        DEFAULT=DefaultSettings(data_dir=str(data_dir)),
        database=DatabaseSettings(url=database_url),
        sources=SourcesSettings(file_roots=tuple(file_roots)),
        jobs=JobsSettings(**jobs),
        redis=RedisSettings(url=redis_url),
    )


@dataclasses.dataclass
class JobApp:
    app: Flask
    client: Client
    settings: Settings
    db: Database

    @property
    def shared(self) -> Path:
        """Where a test and its sandboxed playbooks exchange files (see ``shared_dir``)."""
        return shared_dir(self.settings.data_dir)

    def sources_of(self, tenant: Mapping[str, Any] | int) -> Path:
        """The directory ``tenant``'s playbook sources may be read from by default."""
        return tenant_sources(self.settings, tenant)


def tenant_sources(settings: Settings, tenant: Mapping[str, Any] | int) -> Path:
    """<data_dir>/sources/<tenant id>: where a tenant's sources may be read from by default
    (``tenant`` is its id or its body)."""
    tenant_id = tenant if isinstance(tenant, int) else tenant["id"]
    return settings.data_dir / "sources" / str(tenant_id)


@contextlib.contextmanager
def sqlite_app(data_dir: Path, **settings: Any) -> Iterator[JobApp]:
    """An app of its own on a fresh, migrated SQLite database in ``data_dir``; closed (its
    job engine stopped) on the way out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{data_dir / 'craton.db'}")
    migrate.upgrade(db.engine)
    try:
        with app_on(db, job_settings(data_dir, **settings)) as built:
            yield built
    finally:
        db.dispose()


@contextlib.contextmanager
def app_on(db: Database, settings: Settings) -> Iterator[JobApp]:
    """An app on ``db``; on the way out it lets the jobs it started end (a test that failed
    half-way must not leave a job running against a closed app), then closes."""
    app = create_app(settings, database=db)
    try:
        yield JobApp(app=app, client=Client(app.test_client()), settings=settings, db=db)
    finally:
        drain(app)
        app.extensions["craton"].close()


def drain(app: Flask, timeout: float = JOB_TIMEOUT) -> None:
    """Wait for the jobs this app's engine runs to end, cancelling them first."""
    shared = app.extensions["craton"]
    if shared._jobs is None:  # the app never started its job engine
        return
    engine = shared.jobs.engine
    running = list(getattr(engine, "futures", {}))
    client = Client(app.test_client())
    for job_id in running:
        with contextlib.suppress(Exception):
            client.post(f"/v1/jobs/{job_id}/cancel")
    for job_id in running:
        with contextlib.suppress(Exception):
            engine.wait(job_id, timeout)


def finished_job(client: Client, region_id: int) -> dict[str, Any]:
    """A job of the region (the built-in ping, cancelled at once), read to the end of its
    event stream so that it no longer changes."""
    response = client.post("/v1/jobs", {"region_id": region_id, "playbook": "craton:ping"})
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    stream = client.get(f"/v1/jobs/{job['id']}/events",
                        headers={"Accept": "text/event-stream"})
    assert b"event: end" in stream.get_data()
    job = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert job["status"] == "cancelled"
    return job


# --- fleets --------------------------------------------------------------------------------

@dataclasses.dataclass
class Fleet:
    tenant: Body
    region: Body
    hosts: dict[str, Body]
    groups: dict[str, Body]

    @property
    def region_id(self) -> int:
        return self.region["id"]


def make_fleet(client: Client, hosts: Sequence[str] | Mapping[str, Mapping[str, Any]], *,
               groups: Sequence[Mapping[str, Any]] = (), region_vars: Mapping[str, Any] = LOCAL,
               tenant: str | Body = "acme", region: str = "dfw") -> Fleet:
    """A tenant (created by name, or one created before) with one region (``region_vars``,
    local hosts by default), its ``hosts`` (names, or name → extra fields such as variables)
    and ``groups`` (bodies of POST /groups, in order: members by name, depends_on…)."""
    made_tenant = tenant if isinstance(tenant, dict) else \
        client.create("/v1/tenants", {"name": tenant})
    made_region = client.create(f"/v1/tenants/{made_tenant['id']}/regions",
                                {"name": region, "variables": dict(region_vars)})
    bodies = [{"name": name, **dict(fields)} for name, fields in
              (hosts.items() if isinstance(hosts, Mapping) else ((h, {}) for h in hosts))]
    response = client.post(f"/v1/regions/{made_region['id']}/hosts", bodies)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()["items"]
    made_groups = {group["name"]: client.create(f"/v1/regions/{made_region['id']}/groups",
                                                dict(group)) for group in groups}
    return Fleet(tenant=made_tenant, region=made_region,
                 hosts={host["name"]: host for host in created}, groups=made_groups)


# --- playbook repositories -------------------------------------------------------------------

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "tests", "GIT_AUTHOR_EMAIL": "tests@example.com",
           "GIT_COMMITTER_NAME": "tests", "GIT_COMMITTER_EMAIL": "tests@example.com"}


class PlaybookRepo:
    """A bare git repository (what a job's ``source.url`` names) and a working tree beside it
    that commits and pushes to it."""

    def __init__(self, bare: Path, branch: str = "main") -> None:
        self.bare = bare
        self.branch = branch
        self.work = bare.with_name(bare.name.removesuffix(".git") + "-work")
        self.work.mkdir(parents=True)
        self._git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
        self._git("init", "--quiet", f"--initial-branch={branch}", cwd=self.work)
        self._git("remote", "add", "origin", str(bare), cwd=self.work)

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def source(self, ref: str | None = None) -> Body:
        return {"url": self.url, "ref": ref or self.branch}

    def push(self, files: Mapping[str, str], message: str = "playbooks") -> str:
        """Write ``files`` (path → text), commit and push them; the new commit's SHA."""
        for relative, text in files.items():
            path = self.work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self._git("add", "--all", cwd=self.work)
        self._git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        self._git("push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}", cwd=self.work)
        return self._git("rev-parse", "HEAD", cwd=self.work).strip()

    @staticmethod
    def _git(*args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, **GIT_ENV}, check=False)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout


def play(*tasks: str, hosts: str = "all") -> str:
    """A one-play playbook (no fact gathering) whose tasks are the given YAML mappings."""
    body = "\n".join(_indent(task) for task in tasks)
    return f"- hosts: {hosts}\n  gather_facts: false\n  tasks:\n{body}\n"


def _indent(task: str) -> str:
    first, *rest = textwrap.dedent(task).strip("\n").splitlines()
    return "\n".join([f"    - {first}"] + [f"      {line}" for line in rest])


# --- jobs ----------------------------------------------------------------------------------

def job_body(fleet: Fleet, playbook: str, source: Mapping[str, Any], **fields: Any) -> Body:
    return {"region_id": fleet.region_id, "playbook": playbook, "source": dict(source),
            **fields}


def submit(client: Client, body: Mapping[str, Any], **kwargs: Any) -> Body:
    """POST /v1/jobs that must be accepted (202, Location); the job as first shown."""
    response = client.post("/v1/jobs", dict(body), **kwargs)
    assert response.status_code == 202, (response.status_code, response.get_json())
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    return job


def get_job(client: Client, job_id: int, **kwargs: Any) -> Body:
    response = client.get(f"/v1/jobs/{job_id}", **kwargs)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def wait_job(client: Client, job_id: int, timeout: float = JOB_TIMEOUT,
             until: Sequence[str] = FINISHED) -> Body:
    """Poll GET /v1/jobs/{id} until its status is one of ``until``."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(client, job_id)
        if job["status"] in until:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}: {job}"
        time.sleep(0.1)


def run_job(client: Client, body: Mapping[str, Any], timeout: float = JOB_TIMEOUT) -> Body:
    """Submit a job, follow its event stream to the end, and return it as it finished."""
    job = submit(client, body)
    stream = read_stream(client, job["id"], timeout=timeout)
    assert stream.ended, stream
    return get_job(client, job["id"])


def listed(client: Client, url: str, **query: Any) -> list[Body]:
    """Every item of a list, following ``next`` links."""
    items: list[Body] = []
    next_url: str | None = f"{url}?{urlencode(query, doseq=True)}" if query else url
    while next_url:
        response = client.get(next_url)
        assert response.status_code == 200, response.get_json()
        items += response.get_json()["items"]
        next_url = response.get_json()["next"]
    return items


def job_hosts(client: Client, job_id: int) -> dict[str, Body]:
    """Each host of a job by name (GET /v1/jobs/{id}/hosts, every page)."""
    return {row["name"]: row for row in listed(client, f"/v1/jobs/{job_id}/hosts")}


def events(client: Client, job_id: int, **query: Any) -> list[Body]:
    """Every stored event of a job, page after page."""
    return listed(client, f"/v1/jobs/{job_id}/events", **query)


def wait_event(client: Client, job_id: int, kind: str, timeout: float = JOB_TIMEOUT) -> Body:
    """Poll the job's stored events until one of ``kind`` is there, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        found = [event for event in events(client, job_id) if event["kind"] == kind]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"job {job_id} recorded no {kind} event"
        time.sleep(0.1)


# --- Server-Sent Events ---------------------------------------------------------------------

@dataclasses.dataclass
class Stream:
    """What a reader of /events (text/event-stream) saw."""

    events: list[Body]
    ids: list[int]
    """Each event's ``id:`` field, in order."""
    end: Body | None
    """The data of ``event: end``, when the stream got there."""
    retry: int | None

    @property
    def ended(self) -> bool:
        return self.end is not None


def read_stream(client: Client, job_id: int, *, last_event_id: int | None = None,
                stop_after: int | None = None, timeout: float = JOB_TIMEOUT,
                on_event: Any = None) -> Stream:
    """Read the job's SSE stream as a browser would: to ``event: end``, or until
    ``stop_after`` events have come (then hang up). ``on_event(event)`` is called as each
    arrives (it may act while the stream stays open)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    response = client.get(f"/v1/jobs/{job_id}/events", headers=headers)
    assert response.status_code == 200, response.get_data()[:500]
    assert response.mimetype == "text/event-stream"
    stream = Stream(events=[], ids=[], end=None, retry=None)
    deadline = time.monotonic() + timeout
    pending = ""
    try:
        for chunk in response.response:
            pending += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n\n" in pending:
                block, pending = pending.split("\n\n", 1)
                if _take(stream, block, on_event) or (
                        stop_after is not None and len(stream.events) >= stop_after):
                    return stream
            assert time.monotonic() < deadline, f"job {job_id}: stream still open: {stream}"
    finally:
        response.close()
    return stream


def _take(stream: Stream, block: str, on_event: Any) -> bool:
    """Parse one SSE block into ``stream``; True at ``event: end``."""
    fields: dict[str, str] = {}
    for line in block.splitlines():
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = fields.get(name, "") + ("\n" if name in fields else "") + \
            value.removeprefix(" ")
    if "retry" in fields:
        stream.retry = int(fields["retry"])
    if fields.get("event") == "end":
        stream.end = json.loads(fields["data"])
        return True
    if "data" in fields:
        event = json.loads(fields["data"])
        stream.events.append(event)
        stream.ids.append(int(fields["id"]))
        if on_event is not None:
            on_event(event)
    return False


# --- reading results -------------------------------------------------------------------------

def host_events(all_events: Sequence[Body], host: str, kind: str | None = None) -> list[Body]:
    return [e for e in all_events if e["host"] == host and (kind is None or e["kind"] == kind)]


def stored_text(all_events: Sequence[Body]) -> str:
    """Every stored event as one JSON text, to search for what must (not) be in it."""
    return json.dumps(all_events, ensure_ascii=False)
