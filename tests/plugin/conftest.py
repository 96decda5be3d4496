"""Fixtures for the craton.fleet inventory plugin: the collection built and installed from
its tarball, a real craton-api (noauth, as scripts/run serves it) and Ansible's commands run
against it with that collection."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ansible_collection import BIN, PLUGIN, ansible_environment, build_and_install
from tests.fidelity import Lister
from tests.integration.test_server import Server, craton_environment, running_api, upgrade_database


@pytest.fixture(scope="session")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_and_install(tmp_path_factory.mktemp("collection"))


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """craton-api under noauth (every caller is cloud admin, so bundles hold secrets)."""
    home = tmp_path_factory.mktemp("craton-api")
    env = craton_environment(home)
    upgrade_database(env)
    with running_api(env, home) as server:
        yield server


class HttpResponse:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.body = body

    def get_json(self) -> Any:
        return json.loads(self.body)

    def get_data(self) -> bytes:
        return self.body


class HttpClient:
    """What tests.fidelity asks of its client (``create``, ``post``, ``get``), over real HTTP
    to craton-api rather than through the WSGI app."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def get(self, url: str) -> HttpResponse:
        reply = self.server.call("GET", url)
        return HttpResponse(reply.status, reply.body)

    def post(self, url: str, json: Any = None) -> HttpResponse:
        reply = self.server.call("POST", url, json)
        return HttpResponse(reply.status, reply.body)

    def create(self, url: str, json: Any) -> dict[str, Any]:
        response = self.post(url, json)
        assert response.status_code == 201, (response.status_code, response.body[:500])
        return response.get_json()


@dataclasses.dataclass
class Ansible:
    """Ansible's commands with the installed collection, in a home of their own."""

    env: dict[str, str]

    def run(self, command: str, *args: str | Path, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(BIN / command), *map(str, args)], capture_output=True,
                              text=True, env={**self.env, **(env or {})}, timeout=300)
        if check:
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    def inventory(self, source: Path, **env: str) -> str:
        """What ``ansible-inventory -i SOURCE --list`` prints."""
        return self.run("ansible-inventory", "-i", source, "--list", env=env).stdout


@pytest.fixture(scope="session")
def ansible(collections: Path, tmp_path_factory: pytest.TempPathFactory) -> Ansible:
    return Ansible(ansible_environment(collections, tmp_path_factory.mktemp("ansible-home")))


@pytest.fixture(scope="session")
def listers(ansible: Ansible, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Lister]]:
    """Two ansible-inventory helpers (tests/ansible_lister.py) that see the collection: one
    lists the plugin's sources while the other lists the bundles."""
    logs = tmp_path_factory.mktemp("lister")
    helpers = [Lister(logs / f"ansible-{index}.log", env=ansible.env) for index in range(2)]
    yield helpers
    for helper in helpers:
        helper.close()


def keygen(directory: Path, name: str) -> tuple[str, str]:
    """A real ed25519 key pair made by ssh-keygen: (private, public)."""
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
                   check=True, capture_output=True)
    return path.read_text(), path.with_suffix(".pub").read_text()


@pytest.fixture(scope="session")
def region(api: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A region of local-connection hosts: cloud > compute holding c1 and c2, s1 in no group;
    c1 has an SSH key, s1 a certificate."""
    keys = tmp_path_factory.mktemp("keys")
    private, public = keygen(keys, "c1")
    tenant = api.create("/v1/tenants", {"name": "acme"})
    region = api.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw", "variables": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "ntp": "10.0.0.1"}})
    rid = region["id"]
    api.create(f"/v1/regions/{rid}/groups", {"name": "cloud", "variables": {"ntp": "10.0.0.2"}})
    api.create(f"/v1/regions/{rid}/groups", {"name": "compute", "parents": ["cloud"]})
    reply = api.call("POST", f"/v1/regions/{rid}/hosts", [
        {"name": "c1", "groups": ["compute"], "variables": {"role": "compute", "rack": "r7"}},
        {"name": "c2", "groups": ["compute"], "variables": {"role": "compute", "rack": "r8"}},
        {"name": "s1", "variables": {"role": "storage", "rack": "r7", "ntp": "10.0.0.3"}}])
    assert reply.status == 201, reply.body
    hosts = {host["name"]: host["id"] for host in reply.json()["items"]}
    api.create(f"/v1/hosts/{hosts['c1']}/secrets",
               {"name": "ssh", "kind": "ssh_private_key", "content": private})
    api.create(f"/v1/hosts/{hosts['s1']}/secrets", {"name": "tls", "kind": "pem", "content":
                                                     "-----BEGIN CERTIFICATE-----\nMIIB\n"
                                                     "-----END CERTIFICATE-----\n"})
    return {"id": rid, "hosts": hosts, "private": private, "public": public}


def write_config(path: Path, server: Server | None, region: int, **options: Any) -> Path:
    """A craton.yml for ``region`` of ``server`` (its URL left to CRATON_URL when None)."""
    config: dict[str, Any] = {"plugin": PLUGIN, "region": region, **options}
    if server is not None:
        config["url"] = f"http://127.0.0.1:{server.port}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


def bundle_requests(server: Server, region: int) -> list[tuple[str, int]]:
    """(query, status) of each request for ``region``'s bundle the plugin made, from the
    server's access log."""
    found = []
    for line in server.log.read_text(errors="replace").splitlines():
        if f"GET /v1/inventory/{region}.tgz?" in line and line.endswith('"craton.fleet"'):
            request, _, rest = line.partition(" HTTP/1.1\" ")
            found.append((request.rpartition("?")[2], int(rest.split()[0])))
    return found
