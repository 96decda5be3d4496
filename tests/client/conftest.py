"""A real craton-api (gunicorn on 127.0.0.1, SQLite) for the client's tests, started once for
the directory, and a fleet in it for each test that wants one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cratonclient import Client
from tests.integration.test_server import (
    Server,
    craton_environment,
    running_api,
    upgrade_database,
)

CRATON = Path(sys.executable).parent / "craton"


EVENT_TIMEOUT = 180.0
"""Only how long a test waits before it gives up on something that should happen."""


class GoAhead:
    """A loopback port that refuses connections until :meth:`give` starts listening on it:
    the playbook's hosts wait for it."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]

    def give(self) -> None:
        self.socket.listen(16)

    def close(self) -> None:
        self.socket.close()


@dataclass
class Api:
    server: Server
    home: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def client(self, **options: object) -> Client:
        return Client(self.url, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="package")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """craton-api under noauth (the default), as scripts/run serves it."""
    home = tmp_path_factory.mktemp("craton-client-api")
    env = craton_environment(home)
    upgrade_database(env)
    with running_api(env, home) as server:
        yield Api(server, home)


@pytest.fixture
def client(api: Api) -> Iterator[Client]:
    with api.client(retries=0) as made:
        yield made


@dataclass
class Fleet:
    tenant_id: int
    region_id: int
    host_ids: dict[str, int]


@pytest.fixture
def fleet(client: Client) -> Fleet:
    """A tenant of its own with region dfw: groups cloud > compute > gpu, and hosts c1…c5
    (c1 to c3 in compute, racks r7/r8, c4 and c5 in cloud)."""
    tenant = client.tenants.create(f"acme-{uuid.uuid4().hex[:8]}")
    region = tenant.create_region("dfw", variables={"ntp_server": "10.0.0.1"})
    region.create_group("cloud")
    region.create_group("compute", parents=["cloud"], variables={"role": "compute"})
    region.create_group("gpu", parents=["compute"])
    hosts = region.create_hosts([
        {"name": f"c{i}", "ip_address": f"10.0.1.{i}", "groups": ["compute" if i <= 3 else "cloud"],
         "variables": {"rack": "r7" if i % 2 else "r8", "index": i}}
        for i in range(1, 6)])
    return Fleet(tenant.id, region.id, {host.name: host.id for host in hosts})


def run_cli(api: Api, *args: str, env: dict[str, str] | None = None,
            check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed ``craton`` command, pointed at ``api`` through CRATON_URL."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("CRATON_", "OS_"))}
    environ.update({"CRATON_URL": api.url, "HOME": str(api.home), **(env or {})})
    done = subprocess.run([str(CRATON), *args], capture_output=True, text=True, env=environ,
                          timeout=timeout)
    if check:
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
    return done
