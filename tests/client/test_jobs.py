"""Jobs through the client: submit, wait (on the event stream, to its end or its timeout, and
by polling when no stream can be opened), events, the live stream resumed after a dropped
connection, and ``craton job run --watch`` as CI logs see it (no terminal)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import requests

from cratonclient import Client, CratonError, Job, JobTimeout
from tests.client.conftest import EVENT_TIMEOUT, Api, GoAhead, run_cli

LOCAL = {"ansible_connection": "local",
         "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
UNREACHABLE = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}


@pytest.fixture(scope="module")
def jobs(api: Api) -> tuple[int, int, int]:
    """A region of two local hosts and one nobody can reach; a finished ping job over all
    three, and one over h1 alone (the region, and the two jobs' ids)."""
    client = api.client()
    tenant = client.tenants.create(f"jobs-{uuid.uuid4().hex[:8]}")
    region = tenant.create_region("lab", variables=LOCAL)
    region.create_hosts([{"name": "h1"}, {"name": "h2"},
                         {"name": "h3", "variables": UNREACHABLE}])
    every = client.jobs.submit(region.id, "craton:ping")
    one = client.jobs.submit(region.id, "craton:ping", filters={"name": "h1"})
    return region.id, every.wait(timeout=120).id, one.wait(timeout=120).id


@pytest.fixture
def job_region(jobs: tuple[int, int, int]) -> tuple[int, int]:
    return jobs[0], jobs[1]


def test_submit_wait_and_read_a_job(client: Client, job_region: tuple[int, int]) -> None:
    _, job_id = job_region
    job = client.jobs.get(job_id)
    assert job.finished and job.status == "failed"
    assert job.hosts["ok"] == 2 and job.hosts["unreachable"] == 1
    states = {row.name: row.status for row in job.host_states()}
    assert states == {"h1": "ok", "h2": "ok", "h3": "unreachable"}
    stored = list(job.events())
    assert [event.seq for event in stored] == list(range(1, len(stored) + 1))
    streamed = list(job.stream())
    assert [event.seq for event in streamed] == [event.seq for event in stored]


class Proxy:
    """A loopback TCP proxy to the API that records the head of each request it passes
    (``requests``, in order). With ``cut``, it hangs up on the first connection right after
    the first piece of the answer holding events has gone through — a dropped connection, for
    real, before the stream's end — and passes later connections whole."""

    def __init__(self, port: int, cut: bool = False) -> None:
        self.target = port
        self.cut = cut
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.seen = threading.Condition()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        """Each request's method and path, in order."""
        with self.seen:
            return [" ".join(head.decode().split(" ")[:2]) for head in self.requests]

    def wait_for(self, count: int) -> None:
        """Wait until ``count`` requests have come through."""
        with self.seen:
            assert self.seen.wait_for(lambda: len(self.requests) >= count, EVENT_TIMEOUT), \
                self.requests

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                downstream, _ = self.listener.accept()
                self.connections += 1
                threading.Thread(target=self._serve, args=(downstream, self.connections - 1),
                                 daemon=True).start()

    def _serve(self, downstream: socket.socket, number: int) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._forward, args=(downstream, upstream),
                         daemon=True).start()
        with downstream, upstream, contextlib.suppress(OSError):
            while chunk := upstream.recv(65536):
                downstream.sendall(chunk)
                if self.cut and number == 0 and b"id: " in chunk:
                    break
            # Not only close: the thread still reading the client's side keeps the socket
            # open until shutdown wakes it.
            downstream.shutdown(socket.SHUT_RDWR)
            upstream.shutdown(socket.SHUT_RDWR)

    def _forward(self, downstream: socket.socket, upstream: socket.socket) -> None:
        """The client's requests to the server, each head recorded (bodies skipped)."""
        pending = b""
        body_left = 0
        with contextlib.suppress(OSError):
            while chunk := downstream.recv(65536):
                upstream.sendall(chunk)
                pending += chunk
                while True:
                    if body_left:
                        taken = min(body_left, len(pending))
                        pending, body_left = pending[taken:], body_left - taken
                        if body_left:
                            break
                    head, found, rest = pending.partition(b"\r\n\r\n")
                    if not found:
                        break
                    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                    body_left, pending = int(length[1]) if length else 0, rest
                    with self.seen:
                        self.requests.append(head + b"\r\n")
                        self.seen.notify_all()

    def close(self) -> None:
        self.listener.close()


def test_stream_resumes_after_a_dropped_connection(api: Api,
                                                   job_region: tuple[int, int]) -> None:
    _, job_id = job_region
    proxy = Proxy(api.server.port, cut=True)
    try:
        client = Client(proxy.url, retries=0)
        seqs = [event.seq for event in client.jobs.stream(job_id, reconnect_delay=0.05)]
    finally:
        proxy.close()
    total = api.client().jobs.get(job_id).last_event
    assert seqs == list(range(1, (total or 0) + 1)), "no event missed, none repeated"
    assert len(proxy.requests) == 2 and b"Last-Event-ID" not in proxy.requests[0]
    resumed = re.search(rb"Last-Event-ID: (\d+)\r\n", proxy.requests[1])
    assert resumed and 1 <= int(resumed[1]) <= len(seqs), proxy.requests[1]


def test_job_run_watch_without_a_terminal(api: Api, job_region: tuple[int, int]) -> None:
    region_id, _ = job_region
    failed = run_cli(api, "job", "run", str(region_id), "craton:ping", "--watch", check=False)
    out = failed.stdout
    assert failed.returncode == 1, (out, failed.stderr)
    assert "\x1b" not in out, "no escape codes when stdout is not a terminal"
    assert "✓ h1 ok" in out and "✓ h2 ok" in out
    (unreachable,) = [line for line in out.splitlines() if line.startswith("⊘ h3")]
    assert unreachable.startswith("⊘ h3 unreachable at ping: ") and \
        "Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 1: " \
        "Connection refused" in unreachable, "Ansible's message, on one line, told once"
    table = out[out.index("+--"):]
    assert table.index("h3") < table.index("h1"), "problems first in the summary"


def test_job_watch_exits_0_when_every_host_succeeded(api: Api,
                                                     jobs: tuple[int, int, int]) -> None:
    fine = run_cli(api, "job", "watch", str(jobs[2]), check=False)
    assert fine.returncode == 0, (fine.stdout, fine.stderr)
    assert "succeeded" in fine.stdout and "✓ ok" in fine.stdout and "h2" not in fine.stdout


HELD = """\
- name: Held
  hosts: all
  gather_facts: false
  tasks:
    - name: Wait for the go-ahead
      ansible.builtin.wait_for:
        host: 127.0.0.1
        port: "{{ go_ahead_port }}"
        timeout: 600
"""


@dataclass
class Held:
    job: Job
    go_ahead: GoAhead
    tenant_id: int


@pytest.fixture
def held(api: Api, client: Client) -> Iterator[Held]:
    """A job over one local host whose only task waits for the test's go-ahead; the task
    has started (the job is running, its stream quiet) when the test gets it."""
    go_ahead = GoAhead()
    tenant = client.tenants.create(f"held-{uuid.uuid4().hex[:8]}")
    region = tenant.create_region("lab", variables={**LOCAL, "go_ahead_port": go_ahead.port})
    region.create_hosts([{"name": "h1"}])
    source = api.home / "data" / "sources" / str(tenant.id) / "held"
    source.mkdir(parents=True)
    (source / "site.yml").write_text(HELD)
    job = client.jobs.submit(region.id, "site.yml", source={"path": str(source)})
    try:
        for event in job.stream():
            if event.kind == "runner_on_start":
                break
        yield Held(job, go_ahead, tenant.id)
    finally:
        go_ahead.give()
        job.wait(timeout=EVENT_TIMEOUT)
        go_ahead.close()


Outcome = list[tuple[Job | Exception, datetime]]


def waiting(client: Client, job_id: int, **options: float) -> tuple[threading.Thread, Outcome]:
    """``client.jobs.wait(job_id, **options)`` in a thread; its list gets (what it returned
    or raised, the wall-clock time then)."""
    outcome: Outcome = []

    def wait() -> None:
        try:
            outcome.append((client.jobs.wait(job_id, **options), datetime.now(UTC)))
        except Exception as exc:  # the test reads it
            outcome.append((exc, datetime.now(UTC)))

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, outcome


def test_wait_follows_the_event_stream_to_the_jobs_end(api: Api, held: Held) -> None:
    proxy = Proxy(api.server.port)
    try:
        thread, outcome = waiting(Client(proxy.url, retries=0), held.job.id,
                                  timeout=EVENT_TIMEOUT)
        proxy.wait_for(2)  # the job, then its event stream
        held.go_ahead.give()
        thread.join(EVENT_TIMEOUT)
    finally:
        proxy.close()
    (ended, returned_at), = outcome
    assert isinstance(ended, Job) and ended.status == "succeeded", ended
    finished_at = datetime.fromisoformat(ended.finished_at or "")
    assert (returned_at - finished_at).total_seconds() < 2, "back as soon as the job ended"
    path = f"/v1/jobs/{held.job.id}"
    assert proxy.paths() == [f"GET {path}", f"GET {path}/events", f"GET {path}"], \
        "one stream followed to its end, no polling"
    assert b"Accept: text/event-stream" in proxy.requests[1]
    stored = list(api.client().jobs.events(held.job.id))
    assert stored[-1].seq == ended.last_event, "every event is stored when wait returns"


def test_wait_raises_job_timeout_when_its_time_is_up(held: Held) -> None:
    """The job is quiet; its stream sends only a keep-alive every 15 s. A wait of 16 s must
    end at 16 s, not at the read after that keep-alive (30 s and more)."""
    started = time.monotonic()
    with pytest.raises(JobTimeout) as raised:
        held.job.wait(timeout=16)
    waited = time.monotonic() - started
    assert 16 <= waited < 21, f"the wait ends at its timeout: {waited:.2f} s"
    error = raised.value
    assert isinstance(error, CratonError) and isinstance(error, TimeoutError)
    assert (error.job_id, error.status) == (held.job.id, "running")
    assert str(error) == (f"job {held.job.id} did not end within the 16 s the wait allowed "
                          "(it is running, and goes on)")
    assert held.job.refresh().status == "running"


def test_wait_polls_when_the_stream_cannot_be_opened(api: Api, held: Held) -> None:
    """The server refuses a caller's stream past [api] max_streams_per_caller (429): with
    every one of them taken, wait falls back to polling and still sees the job end."""
    caller = {"X-Craton-Tenant": str(held.tenant_id), "X-Craton-Roles": "admin"}
    url = f"{api.url}/v1/jobs/{held.job.id}/events"
    streams: list[requests.Response] = []
    proxy = Proxy(api.server.port)
    try:
        while True:
            opened = requests.get(url, headers={**caller, "Accept": "text/event-stream"},
                                  stream=True, timeout=(10, EVENT_TIMEOUT))
            streams.append(opened)
            if opened.status_code == 429:
                break
            assert opened.status_code == 200 and len(streams) <= 100, opened.status_code
        client = Client(proxy.url, tenant=held.tenant_id, roles="admin", retries=0)
        thread, outcome = waiting(client, held.job.id, timeout=EVENT_TIMEOUT, interval=0.2)
        proxy.wait_for(3)  # the job, its refused stream, then the job again: polling
        held.go_ahead.give()
        thread.join(EVENT_TIMEOUT)
    finally:
        proxy.close()
        for stream in streams:
            stream.close()
    (ended, _), = outcome
    assert isinstance(ended, Job) and ended.status == "succeeded", ended
    path = f"/v1/jobs/{held.job.id}"
    assert proxy.paths()[:2] == [f"GET {path}", f"GET {path}/events"]
    assert set(proxy.paths()[2:]) == {f"GET {path}"} and len(proxy.paths()) >= 3
