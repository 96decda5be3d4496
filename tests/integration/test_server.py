"""craton-api as an operator runs it: a real gunicorn process on 127.0.0.1, spoken to over real
HTTP — the story in small, the headers clients rely on, the body limit and the refusal to serve
without authentication beyond loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import services

BIN = Path(sys.executable).parent
MAX_BODY = 16 * 1024


@dataclasses.dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json", self.headers
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The error object, checked for the one shape every error has."""
        body = self.json()
        assert set(body) == {"error"}, body
        assert body["error"]["code"] == self.status
        assert body["error"]["message"]
        assert body["error"]["request_id"] == self.headers["X-Request-Id"]
        return body["error"]


@dataclasses.dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             chunks: Iterable[bytes] | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        """One request on a new connection; ``path`` may also be a full URL (a ``next`` link).
        Sends ``X-Craton-Request: 1`` as API clients do (a request without a JSON body needs
        it)."""
        parts = urlsplit(path)
        if parts.netloc:
            assert parts.netloc == f"127.0.0.1:{self.port}", path
            path = f"{parts.path}?{parts.query}" if parts.query else parts.path
        headers = {"X-Craton-Request": "1", **(headers or {})}
        payload: bytes | Iterable[bytes] | None = raw
        if body is not None:
            payload = json.dumps(body).encode()
        if chunks is not None:
            payload = chunks
            headers["Transfer-Encoding"] = "chunked"
        if payload is not None:
            headers.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=payload, headers=headers,
                               encode_chunked=chunks is not None)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def create(self, path: str, body: Any) -> dict[str, Any]:
        reply = self.call("POST", path, body)
        assert reply.status == 201, (reply.status, reply.body)
        return reply.json()


def craton_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """The caller's environment minus CRATON_*, with a private data dir and HOME (gunicorn
    keeps a control socket under $HOME)."""
    env = services.environment_without_craton()
    env.update(HOME=str(data_dir), CRATON_DATA_DIR=str(data_dir / "data"), **settings)
    return env


def upgrade_database(env: dict[str, str]) -> None:
    """Build the database of the installation ``env`` names, as an operator would."""
    subprocess.run([str(BIN / "craton-manage"), "db", "upgrade"], env=env, check=True,
                   capture_output=True, timeout=120)


@contextlib.contextmanager
def running_api(env: dict[str, str], home: Path, port: int | None = None) -> Iterator[Server]:
    """craton-api on ``port`` (a free one by default) with ``env``, logging to ``home``;
    stopped by its PID."""
    port = port or services.free_port()
    log = home / "craton-api.log"
    with log.open("ab") as out:
        process = subprocess.Popen([str(BIN / "craton-api"), "--port", str(port)], env=env,
                                   stdout=out, stderr=subprocess.STDOUT, cwd=home)
    try:
        services.wait_for_port(port, process, log=log)
        yield Server(port=port, process=process, log=log)
    finally:
        services.stop(process)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("craton-api")
    env = craton_environment(home, CRATON_API_MAX_BODY_SIZE=str(MAX_BODY))
    upgrade_database(env)
    with running_api(env, home) as running:
        yield running


@pytest.fixture
def http_region(server: Server) -> dict[str, Any]:
    tenant = server.create("/v1/tenants", {"name": f"acme-{uuid.uuid4().hex[:8]}"})
    return server.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"})


def test_operator_story_over_http(server: Server) -> None:
    tenant = server.call("POST", "/v1/tenants", {"name": f"acme-{uuid.uuid4().hex[:8]}"})
    assert tenant.status == 201
    assert tenant.headers["ETag"] == '"1"'
    assert tenant.headers["Location"] == f"/v1/tenants/{tenant.json()['id']}"
    region = server.create(f"/v1/tenants/{tenant.json()['id']}/regions",
                           {"name": "dfw", "variables": {"ntp_server": "10.0.0.1"}})
    rid = region["id"]
    assert region["variables"] == {"ntp_server": "10.0.0.1"}
    server.create(f"/v1/regions/{rid}/groups", {"name": "cloud"})
    server.create(f"/v1/regions/{rid}/groups", {"name": "compute", "parents": ["cloud"]})

    fleet = [{"name": f"c{i}", "ip_address": f"10.0.1.{i}",
              "variables": {"role": "compute" if i <= 3 else "storage", "index": i},
              "groups": ["compute"] if i <= 3 else ["cloud"]}
             for i in range(1, 6)]
    bulk = server.call("POST", f"/v1/regions/{rid}/hosts", fleet)
    assert bulk.status == 201, bulk.body
    created = bulk.json()["items"]
    assert [h["name"] for h in created] == ["c1", "c2", "c3", "c4", "c5"]
    assert created[0]["groups"] == ["compute"] and created[0]["variables"]["index"] == 1
    ids = [h["id"] for h in created]

    compute = server.call("GET", f"/v1/hosts?region_id={rid}&var=role:compute").json()
    assert [h["name"] for h in compute["items"]] == ["c1", "c2", "c3"]
    assert compute["next"] is None
    assert [h["name"] for h in server.call(
        "GET", f"/v1/regions/{rid}/hosts?var=index:4").json()["items"]] == ["c4"]
    in_cloud = server.call("GET", f"/v1/regions/{rid}/hosts?group=cloud").json()["items"]
    assert [h["id"] for h in in_cloud] == ids, "subgroups' hosts are in their parents"

    seen: list[int] = []
    url: str | None = f"/v1/regions/{rid}/hosts?limit=2"
    pages = 0
    while url:
        page = server.call("GET", url)
        assert page.status == 200, page.body
        seen += [h["id"] for h in page.json()["items"]]
        url = page.json()["next"]
        pages += 1
        if url:
            assert url.startswith(f"http://127.0.0.1:{server.port}/v1/regions/{rid}/hosts?")
    assert (pages, seen) == (3, ids)

    key = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUb3BlbnNzaC1rZXk\n" \
          "-----END CERTIFICATE-----\n"
    secret = server.create(f"/v1/hosts/{ids[0]}/secrets",
                           {"name": "tls", "kind": "pem", "content": key})
    assert "content" not in secret and secret["size"] == len(key)
    listing = server.call("GET", f"/v1/hosts/{ids[0]}/secrets")
    assert [s["name"] for s in listing.json()["items"]] == ["tls"]
    assert b"MIIBszCCAVmgAwIBAgIUb3BlbnNzaC1rZXk" not in listing.body
    revealed = server.call("POST", f"/v1/secrets/{secret['id']}/reveal")
    assert revealed.json()["content"] == key
    assert revealed.headers["Cache-Control"] == "no-store"


def test_headers_clients_rely_on(server: Server, http_region: dict[str, Any]) -> None:
    """JSON everywhere, an ETag that moves on with each change and guards writes, and a request
    id that is echoed back (or made up) and also named in error bodies."""
    host = server.call("POST", f"/v1/regions/{http_region['id']}/hosts", {"name": "h1"},
                       headers={"X-Request-Id": "req-story-1"})
    assert host.status == 201
    assert host.headers["Content-Type"] == "application/json"
    assert host.headers["X-Request-Id"] == "req-story-1"
    assert host.headers["ETag"] == '"1"'
    hid = host.json()["id"]
    assert host.headers["Location"] == f"/v1/hosts/{hid}"

    shown = server.call("GET", f"/v1/hosts/{hid}")
    assert shown.status == 200 and shown.headers["ETag"] == '"1"'
    assert re.fullmatch(r"[0-9a-f]{32}", shown.headers["X-Request-Id"])
    unchanged = server.call("GET", f"/v1/hosts/{hid}", headers={"If-None-Match": '"1"'})
    assert unchanged.status == 304 and unchanged.body == b""
    assert unchanged.headers["ETag"] == '"1"'

    patched = server.call("PATCH", f"/v1/hosts/{hid}", {"state": "ready"},
                          headers={"If-Match": '"1"'})
    assert patched.status == 200 and patched.headers["ETag"] == '"2"'
    stale = server.call("PATCH", f"/v1/hosts/{hid}", {"state": "stopped"},
                        headers={"If-Match": '"1"', "X-Request-Id": "req-stale"})
    assert stale.status == 412
    assert stale.error()["request_id"] == "req-stale"
    after = server.call("GET", f"/v1/hosts/{hid}")
    assert after.json()["state"] == "ready" and after.headers["ETag"] == '"2"'

    missing = server.call("GET", "/v1/hosts/999999999")
    assert missing.status == 404
    assert missing.error()["request_id"] == missing.headers["X-Request-Id"]


def test_body_within_the_limit_is_accepted(server: Server) -> None:
    """Exactly max_body_size bytes is still allowed."""
    tenant = server.call("POST", "/v1/tenants", {"name": f"t-{uuid.uuid4().hex[:8]}"}).json()
    name = f"fits-{uuid.uuid4().hex[:8]}"
    skeleton = json.dumps({"name": name, "variables": {"pad": ""}}).encode()
    body = json.dumps({"name": name,
                       "variables": {"pad": "x" * (MAX_BODY - len(skeleton))}}).encode()
    assert len(body) == MAX_BODY
    reply = server.call("POST", f"/v1/tenants/{tenant['id']}/regions", raw=body)
    assert reply.status == 201, reply.body
    assert reply.json()["name"] == name


def tenant_names(server: Server) -> set[str]:
    return {t["name"] for t in server.call("GET", "/v1/tenants?limit=1000").json()["items"]}


def test_body_over_the_limit_is_refused_with_413(server: Server) -> None:
    name = f"big-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"name": name, "description": "x" * MAX_BODY}).encode()
    reply = server.call("POST", "/v1/tenants", raw=body)
    assert reply.status == 413
    assert "max_body_size" in reply.error()["message"]
    assert name not in tenant_names(server)


def bulk_over_the_limit() -> bytes:
    hosts = [{"name": f"h{i:04d}", "variables": {"pad": "x" * 100}} for i in range(200)]
    body = json.dumps(hosts).encode()
    assert len(body) > MAX_BODY
    return body


def test_bulk_hosts_over_the_limit_are_refused_with_413(server: Server,
                                                        http_region: dict[str, Any]) -> None:
    hosts = f"/v1/regions/{http_region['id']}/hosts"
    reply = server.call("POST", hosts, raw=bulk_over_the_limit())
    assert reply.status == 413
    assert "max_body_size" in reply.error()["message"]
    assert server.call("GET", hosts).json()["items"] == []


def test_chunked_body_over_the_limit_is_refused_with_413(server: Server,
                                                         http_region: dict[str, Any]) -> None:
    """A client that streams its body (Transfer-Encoding: chunked, no Content-Length) meets
    the same limit, not a truncated body read as invalid JSON."""
    body = bulk_over_the_limit()
    chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)]
    hosts = f"/v1/regions/{http_region['id']}/hosts"
    reply = server.call("POST", hosts, chunks=chunks)
    assert reply.status == 413, reply.body
    assert "max_body_size" in reply.error()["message"]
    assert server.call("GET", hosts).json()["items"] == []


def test_small_chunked_body_is_accepted(server: Server, http_region: dict[str, Any]) -> None:
    body = json.dumps([{"name": "s1"}, {"name": "s2"}]).encode()
    reply = server.call("POST", f"/v1/regions/{http_region['id']}/hosts",
                        chunks=[body[:10], body[10:]])
    assert reply.status == 201, reply.body
    assert [h["name"] for h in reply.json()["items"]] == ["s1", "s2"]


@dataclasses.dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


def run_api_briefly(cwd: Path, env: dict[str, str], *args: str) -> Completed:
    """Run craton-api expecting it to exit at once; if it serves instead, stop it by its PID."""
    process = subprocess.Popen([str(BIN / "craton-api"), "--port", str(services.free_port()),
                                *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=cwd)
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        services.stop(process)
        stdout, stderr = process.communicate()
    return Completed(process.returncode, stdout.decode(), stderr.decode())


@pytest.mark.parametrize(("args", "settings"), [
    (["--host", "0.0.0.0"], {}),
    (["--host", "::"], {}),
    (["--host", "10.1.2.3"], {}),
    ([], {"CRATON_API_HOST": "0.0.0.0"}),
], ids=["any-ipv4", "any-ipv6", "public-address", "host-from-settings"])
def test_noauth_beyond_loopback_is_refused(tmp_path: Path, args: list[str],
                                           settings: dict[str, str]) -> None:
    """Without authentication Craton trusts every caller as cloud admin: it must refuse to
    listen anywhere but loopback, before binding anything."""
    result = run_api_briefly(tmp_path, craton_environment(tmp_path, **settings), *args)
    assert result.returncode == 2
    assert "noauth" in result.stderr and "loopback" in result.stderr, result.stderr


def test_noauth_refuses_requests_for_other_host_names(server: Server) -> None:
    """A page of another site that rebinds its name to 127.0.0.1 reaches the port, but its
    requests name its own host: under noauth they get 403; loopback names are served."""
    for host in ("evil.example", f"evil.example:{server.port}", f"192.0.2.1:{server.port}"):
        reply = server.call("GET", "/v1/tenants", headers={"Host": host})
        assert reply.status == 403, (host, reply.body)
        assert "loopback" in reply.error()["message"]
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}"):
        assert server.call("GET", "/v1/tenants", headers={"Host": host}).status == 200, host


def test_bad_configuration_exits_2_with_a_message(tmp_path: Path) -> None:
    env = craton_environment(tmp_path, CRATON_API_PORT="eighty")
    result = run_api_briefly(tmp_path, env)
    assert result.returncode == 2
    assert result.stderr.strip() == \
        "craton-api: [api] port: expected an integer, got 'eighty'"


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (an SSH server that hangs):
    Ansible waits on it until its connection timeout."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


def wait_for_status(api: Server, job_id: int, status: str, timeout: float = 60) -> None:
    """Poll the job until it has ``status`` (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while (now := api.call("GET", f"/v1/jobs/{job_id}").json()["status"]) != status:
        assert time.monotonic() < deadline, f"job {job_id} still {now}, never {status}"
        time.sleep(0.05)


def test_open_event_streams_leave_requests_served(tmp_path: Path) -> None:
    """Twenty clients follow a running job's events on a server with only two request
    threads: each stream gets a thread of its own, so requests are still answered at once —
    and the per-caller stream limit is announced with 429, not by a hang."""
    env = craton_environment(tmp_path, CRATON_API_THREADS="2", CRATON_API_MAX_STREAMS="40",
                             CRATON_API_MAX_STREAMS_PER_CALLER="20")
    upgrade_database(env)
    with running_api(env, tmp_path) as api, silent_listener() as port:
        tenant = api.create("/v1/tenants", {"name": "streams"})
        region = api.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "r", "variables": {
            "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": port}})
        host = api.create(f"/v1/regions/{region['id']}/hosts", {"name": "hanging"})
        started = api.call("POST", "/v1/jobs", {"region_id": region["id"],
                                                "playbook": "craton:ping"})
        assert started.status == 202, started.body
        job_id = started.json()["id"]
        wait_for_status(api, job_id, "running")  # a busy machine may not have started it yet
        streams = []
        try:
            for _ in range(20):
                connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
                connection.request("GET", f"/v1/jobs/{job_id}/events",
                                   headers={"Accept": "text/event-stream"})
                response = connection.getresponse()
                assert response.status == 200
                streams.append(connection)
            over = api.call("GET", f"/v1/jobs/{job_id}/events",
                            headers={"Accept": "text/event-stream"})
            assert over.status == 429 and over.headers["Retry-After"]
            for _ in range(10):
                reply = api.call("GET", f"/v1/hosts/{host['id']}")
                assert reply.status == 200
                assert reply.json()["name"] == "hanging"
            assert api.call("GET", f"/v1/jobs/{job_id}").json()["status"] == "running"
        finally:
            for connection in streams:
                connection.close()
