"""Jobs through the client: submit, wait, events, the live stream resumed after a dropped
connection, and ``craton job run --watch`` as CI logs see it (no terminal)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import uuid

import pytest

from cratonclient import Client
from tests.client.conftest import Api, run_cli

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


class CuttingProxy:
    """A loopback TCP proxy to the API that hangs up on the first connection right after the
    first piece of the answer holding events has gone through — a dropped connection, for
    real, before the stream's end — and passes later connections whole."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                downstream, _ = self.listener.accept()
                self.requests.append(b"")
                threading.Thread(target=self._serve, args=(downstream, len(self.requests) - 1),
                                 daemon=True).start()

    def _serve(self, downstream: socket.socket, number: int) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        request = downstream.recv(65536)
        self.requests[number] = request
        upstream.sendall(request)
        with downstream, upstream, contextlib.suppress(OSError):
            while chunk := upstream.recv(65536):
                downstream.sendall(chunk)
                if number == 0 and b"id: " in chunk:
                    return

    def close(self) -> None:
        self.listener.close()


def test_stream_resumes_after_a_dropped_connection(api: Api,
                                                   job_region: tuple[int, int]) -> None:
    _, job_id = job_region
    proxy = CuttingProxy(api.server.port)
    try:
        client = Client(f"http://127.0.0.1:{proxy.port}", retries=0)
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
