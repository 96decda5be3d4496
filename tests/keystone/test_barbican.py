"""``[secrets] backend = barbican`` against a real Barbican behind the real Keystone: a
secret's content lives in Barbican and Craton keeps its id — create, reveal, bundle, job and
delete work as with local content; an outage answers 503 naming Barbican and changes nothing;
every way a secret or sensitive variable goes (cascades included) deletes its payload, after
the commit, and an outage then only delays that; ``craton-manage secrets migrate --to
barbican`` moves existing content, resumably."""

from __future__ import annotations

import io
import json
import secrets
import sqlite3
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.integration.test_server import (
    BIN,
    Reply,
    craton_environment,
    running_api,
    upgrade_database,
)
from tests.keystone.conftest import KeystoneCraton, Member, ServiceUser, keystone_settings
from tests.openstack import Barbican, Keystone, barbican_server


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body)
    return reply.json() if reply.body else None


def ssh_key() -> str:
    """A fresh OpenSSH private key: it ends with a newline, which must survive Barbican."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def barbican(keystone: Keystone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Barbican]:
    with barbican_server(tmp_path_factory.mktemp("barbican"), keystone) as server:
        yield server


def barbican_settings(keystone: Keystone, service: ServiceUser, backend: str = "barbican"
                      ) -> dict[str, str]:
    """Craton's service user keeps the payloads (Barbican's member role on its project)."""
    return {"CRATON_SECRETS_BACKEND": backend,
            "CRATON_BARBICAN_AUTH_URL": f"{keystone.url}/v3",
            "CRATON_BARBICAN_USERNAME": service.name,
            "CRATON_BARBICAN_PASSWORD": service.password,
            "CRATON_BARBICAN_PROJECT_NAME": "service",
            "CRATON_BARBICAN_TIMEOUT": "5"}


@pytest.fixture(scope="module")
def craton_barbican(keystone: Keystone, service_user: ServiceUser, barbican: Barbican,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneCraton]:
    keystone.grant(_user_id(keystone, service_user.name), "member",
                   project_id=service_user.project_id)
    home = tmp_path_factory.mktemp("craton-barbican")
    env = craton_environment(home, **keystone_settings(keystone, service_user),
                             **barbican_settings(keystone, service_user),
                             CRATON_JOBS_HOST_KEY_CHECKING="false")
    upgrade_database(env)
    with running_api(env, home) as server:
        yield KeystoneCraton(server, keystone, env, home)


def _user_id(keystone: Keystone, name: str) -> str:
    status, _, answer = keystone.call("GET", f"/v3/users?name={name}", token=keystone.admin)
    assert status == 200, answer
    return answer["users"][0]["id"]


@pytest.fixture(scope="module")
def admin(craton_barbican: KeystoneCraton) -> Member:
    keystone = craton_barbican.keystone
    return Member(keystone, "admin", keystone.admin_password, None, system=True)


@pytest.fixture
def host(craton_barbican: KeystoneCraton, admin: Member) -> dict[str, Any]:
    server = craton_barbican.server
    tenant = ok(server.call("POST", "/v1/tenants", {"name": f"t-{secrets.token_hex(4)}"},
                            headers=admin.headers()), 201)
    region = ok(server.call("POST", f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"},
                            headers=admin.headers()), 201)
    return ok(server.call("POST", f"/v1/regions/{region['id']}/hosts", {
        "name": "web-1", "variables": {"ansible_connection": "local",
                                       "ansible_python_interpreter": "auto_silent"}},
        headers=admin.headers()), 201)


def stored(craton: KeystoneCraton, secret_id: int) -> tuple[str, bytes]:
    """(backend, ciphertext) of a secret, as the database holds it."""
    connection = sqlite3.connect(craton.home / "data" / "craton.db")
    try:
        return connection.execute("SELECT backend, ciphertext FROM secrets WHERE id = ?",
                                  (secret_id,)).fetchone()
    finally:
        connection.close()


def owner_token(craton: KeystoneCraton) -> str:
    """A token of Craton's service user, which owns the payloads in Barbican."""
    env = craton.env
    return craton.keystone.token(env["CRATON_BARBICAN_USERNAME"],
                                 env["CRATON_BARBICAN_PASSWORD"],
                                 project_id=_project_id(craton.keystone, "service")).value


def _project_id(keystone: Keystone, name: str) -> str:
    status, _, answer = keystone.call("GET", f"/v3/projects?name={name}", token=keystone.admin)
    assert status == 200, answer
    return answer["projects"][0]["id"]


def test_content_lives_in_barbican(craton_barbican: KeystoneCraton, barbican: Barbican,
                                   admin: Member, host: dict[str, Any]) -> None:
    server = craton_barbican.server
    key = ssh_key()
    secret = ok(server.call("POST", f"/v1/hosts/{host['id']}/secrets",
                            {"name": "deploy", "kind": "ssh_private_key", "content": key},
                            headers=admin.headers()), 201)
    backend, ciphertext = stored(craton_barbican, secret["id"])
    assert backend == "barbican" and ciphertext.startswith(b"barbican:")
    barbican_id = ciphertext.removeprefix(b"barbican:").decode()
    assert barbican.holds(owner_token(craton_barbican), barbican_id)
    assert key.encode() not in (craton_barbican.home / "data" / "craton.db").read_bytes()

    revealed = ok(server.call("POST", f"/v1/secrets/{secret['id']}/reveal",
                              headers=admin.headers()))
    assert revealed["content"] == key
    bundle = server.call("GET", f"/v1/inventory/{host['region_id']}.tgz?layout=ansible",
                         headers=admin.headers())
    assert bundle.status == 200
    with tarfile.open(fileobj=io.BytesIO(bundle.body)) as archive:
        member = archive.extractfile(f"secrets/{host['name']}/deploy")
        assert member is not None and member.read() == key.encode()

    job = ok(server.call("POST", "/v1/jobs", {"region_id": host["region_id"],
                                              "playbook": "craton:ping"},
                         headers=admin.headers()), 202)
    deadline = time.monotonic() + 300
    while (state := ok(server.call("GET", f"/v1/jobs/{job['id']}", headers=admin.headers()))
           )["status"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state["status"] == "succeeded", state

    replacement = ssh_key()
    ok(server.call("PATCH", f"/v1/secrets/{secret['id']}", {"content": replacement},
                   headers=admin.headers()))
    _, new_ciphertext = stored(craton_barbican, secret["id"])
    assert new_ciphertext != ciphertext
    assert not barbican.holds(owner_token(craton_barbican), barbican_id)  # the old payload went
    assert ok(server.call("POST", f"/v1/secrets/{secret['id']}/reveal",
                          headers=admin.headers()))["content"] == replacement

    ok(server.call("DELETE", f"/v1/secrets/{secret['id']}", headers=admin.headers()), 204)
    assert not barbican.holds(owner_token(craton_barbican),
                              new_ciphertext.removeprefix(b"barbican:").decode())


def test_a_barbican_outage_is_503_and_changes_nothing(craton_barbican: KeystoneCraton,
                                                      barbican: Barbican, admin: Member,
                                                      host: dict[str, Any]) -> None:
    server = craton_barbican.server
    secret = ok(server.call("POST", f"/v1/hosts/{host['id']}/secrets",
                            {"name": "kept", "kind": "password", "content": "s3cret-1"},
                            headers=admin.headers()), 201)
    barbican.stop()
    try:
        refused = [
            server.call("POST", f"/v1/hosts/{host['id']}/secrets",
                        {"name": "new", "kind": "password", "content": "s3cret-2"},
                        headers=admin.headers()),
            server.call("POST", f"/v1/secrets/{secret['id']}/reveal", headers=admin.headers()),
            server.call("PATCH", f"/v1/secrets/{secret['id']}", {"content": "s3cret-3"},
                        headers=admin.headers()),
            server.call("DELETE", f"/v1/secrets/{secret['id']}", headers=admin.headers()),
        ]
        for answer in refused:
            assert answer.status == 503, answer.body
            message = answer.error()["message"]
            assert message.startswith("Barbican (the secret store) is unavailable"), message
            assert answer.headers["Retry-After"]
            assert b"s3cret" not in answer.body
        listed = ok(server.call("GET", f"/v1/hosts/{host['id']}/secrets", headers=admin.headers()))
        assert [s["name"] for s in listed["items"]] == ["kept"]
        assert listed["items"][0]["version"] == secret["version"]
    finally:
        barbican.start()
    assert ok(server.call("POST", f"/v1/secrets/{secret['id']}/reveal",
                          headers=admin.headers()))["content"] == "s3cret-1"


def test_secrets_migrate_to_barbican_resumes(keystone: Keystone, service_user: ServiceUser,
                                             barbican: Barbican, craton_barbican: KeystoneCraton,
                                             tmp_path: Path) -> None:
    local_env = craton_environment(tmp_path, **keystone_settings(keystone, service_user))

    def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "craton-manage"), *args], env=env,
                              capture_output=True, text=True, timeout=300)

    assert manage(local_env, "db", "upgrade").returncode == 0
    assert manage(local_env, "tenant", "create", "acme").returncode == 0
    contents = [f"password-{n}-{secrets.token_hex(8)}" for n in range(3)]
    _make_local_secrets(tmp_path, contents)
    barbican_env = {**local_env, **barbican_settings(keystone, service_user)}

    barbican.stop()
    try:
        stopped = manage(barbican_env, "secrets", "migrate", "--to", "barbican")
    finally:
        barbican.start()
    assert stopped.returncode == 1, stopped.stderr
    assert "Barbican (the secret store) is unavailable" in stopped.stderr
    assert "run the same command again" in stopped.stderr

    moved = manage(barbican_env, "secrets", "migrate", "--to", "barbican")
    assert moved.returncode == 0, moved.stderr
    assert "moved 3 secrets to barbican; 0 kept elsewhere" in moved.stdout
    again = manage(barbican_env, "secrets", "migrate", "--to", "barbican")
    assert "moved 0 secrets to barbican; 0 kept elsewhere" in again.stdout

    database = (tmp_path / "data" / "craton.db").read_bytes()
    for content in contents:
        assert content.encode() not in database
    with running_api(barbican_env, tmp_path) as server:
        cloud_admin = Member(keystone, "admin", keystone.admin_password, None, system=True)
        for secret_id, content in enumerate(contents, start=1):
            shown = ok(server.call("POST", f"/v1/secrets/{secret_id}/reveal",
                                   headers=cloud_admin.headers()))
            assert shown["content"] == content


def _make_local_secrets(home: Path, contents: list[str]) -> None:
    """Secrets made by this process through the app with local content (Fernet, the key in
    ``home``'s data dir, shared with craton-manage)."""
    from craton.api import create_app
    from craton.config import DefaultSettings, Settings
    from tests.conftest import Client

    app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=str(home / "data"))))
    client = Client(app.test_client())
    region = client.create("/v1/tenants/1/regions", {"name": "dfw"})
    host = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "db-1"})
    for n, content in enumerate(contents):
        client.create(f"/v1/hosts/{host['id']}/secrets",
                      {"name": f"password-{n}", "kind": "password", "content": content})
    app.extensions["craton"].close()


# --- payloads go with their rows ------------------------------------------------------------

def barbican_ids(craton: KeystoneCraton, barbican: Barbican) -> set[str]:
    """Every secret Barbican holds for Craton's service user, listed through its API."""
    token = owner_token(craton)  # a fresh one: they live 20 s here
    found: set[str] = set()
    offset = 0
    while True:
        request = urllib.request.Request(
            f"{barbican.url}/v1/secrets?limit=100&offset={offset}",
            headers={"X-Auth-Token": token, "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.load(response)
        found.update(ref["secret_ref"].rstrip("/").rpartition("/")[2]
                     for ref in page["secrets"])
        offset += len(page["secrets"])
        if not page["secrets"] or offset >= page["total"]:
            return found


def database_refs(craton: KeystoneCraton) -> set[str]:
    """The Barbican ids the database refers to: secrets' content, sensitive variables."""
    connection = sqlite3.connect(craton.home / "data" / "craton.db")
    try:
        rows = [ciphertext.decode() for (ciphertext,) in connection.execute(
            "SELECT ciphertext FROM secrets")]
        for table in ("region_variables", "group_variables", "host_variables"):
            rows += [sealed for (sealed,) in connection.execute(
                f"SELECT sealed FROM {table} WHERE sealed IS NOT NULL")]
    finally:
        connection.close()
    return {row.removeprefix("barbican:") for row in rows if row.startswith("barbican:")}


def recorded_discards(craton: KeystoneCraton) -> dict[str, tuple[int, str | None]]:
    """payload_discards: Barbican id → (failed attempts, last error)."""
    connection = sqlite3.connect(craton.home / "data" / "craton.db")
    try:
        return {ref.removeprefix("barbican:"): (attempts, error) for ref, attempts, error
                in connection.execute("SELECT ref, attempts, last_error FROM payload_discards")}
    finally:
        connection.close()


class Fleet:
    """A tenant with a region whose region, groups and hosts hold secrets and sensitive
    variables in Barbican, made through the API as the cloud admin."""

    def __init__(self, craton: KeystoneCraton, admin: Member) -> None:
        self.server, self.admin = craton.server, admin
        self.tenant = self.make("/v1/tenants", {"name": f"t-{secrets.token_hex(4)}"})
        self.region = self.make(f"/v1/tenants/{self.tenant['id']}/regions", {
            "name": "dfw", "variables": {"ansible_become_password": secrets.token_hex(8)}})
        self.group = self.make(f"/v1/regions/{self.region['id']}/groups", {
            "name": "compute", "variables": {"api_token": secrets.token_hex(8)}})
        self.hosts = [self.host(f"c{n}") for n in range(2)]

    def make(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return ok(self.server.call("POST", path, body, headers=self.admin.headers()), 201)

    def host(self, name: str) -> dict[str, Any]:
        host = self.make(f"/v1/regions/{self.region['id']}/hosts", {
            "name": name, "groups": ["compute"],
            "variables": {"db_password": secrets.token_hex(8), "rack": "r1"}})
        for kind, content in (("password", secrets.token_hex(8)),
                              ("ssh_private_key", ssh_key())):
            self.make(f"/v1/hosts/{host['id']}/secrets",
                      {"name": kind.replace("_", "-"), "kind": kind, "content": content})
        return host

    def delete(self, path: str) -> None:
        ok(self.server.call("DELETE", path, headers=self.admin.headers()), 204)


def test_every_way_a_row_goes_deletes_its_payload(craton_barbican: KeystoneCraton,
                                                 barbican: Barbican, admin: Member) -> None:
    """Each step drops rows holding Barbican ids (a variable replaced or deleted, a host, a
    group, a region and a tenant with cascade=true): afterwards Barbican holds exactly the
    payloads the database still refers to — of those this test made."""
    before = barbican_ids(craton_barbican, barbican)
    fleet = Fleet(craton_barbican, admin)
    made = database_refs(craton_barbican) - before
    assert len(made) == 1 + 1 + 2 * 3  # region var, group var, each host's var and 2 secrets
    assert made <= barbican_ids(craton_barbican, barbican)

    def only_referenced_remain() -> None:
        held = barbican_ids(craton_barbican, barbican) - before
        assert held == database_refs(craton_barbican) & made
        assert set(recorded_discards(craton_barbican)) & made == set()

    host = fleet.hosts[0]
    ok(fleet.server.call("PATCH", f"/v1/hosts/{host['id']}/variables",
                         {"variables": {"db_password": "replaced-1"}}, headers=admin.headers()))
    made |= database_refs(craton_barbican) - before
    only_referenced_remain()
    ok(fleet.server.call("PATCH", f"/v1/hosts/{host['id']}/variables",
                         {"variables": {"db_password": "replaced-1", "rack": "r2"}},
                         headers=admin.headers()))
    assert database_refs(craton_barbican) - before <= made  # unchanged: not sealed again
    fleet.delete(f"/v1/hosts/{host['id']}/variables/db_password")
    only_referenced_remain()
    fleet.delete(f"/v1/hosts/{host['id']}")
    only_referenced_remain()
    fleet.delete(f"/v1/groups/{fleet.group['id']}")
    only_referenced_remain()
    assert database_refs(craton_barbican) & made  # the other host's, the region's
    fleet.delete(f"/v1/regions/{fleet.region['id']}?cascade=true")
    only_referenced_remain()

    second = Fleet(craton_barbican, admin)
    made |= database_refs(craton_barbican) - before
    fleet.delete(f"/v1/tenants/{second.tenant['id']}?cascade=true")
    only_referenced_remain()
    assert barbican_ids(craton_barbican, barbican) - before == set()


def test_an_outage_after_the_commit_only_delays_the_payloads_delete(
        craton_barbican: KeystoneCraton, barbican: Barbican, admin: Member) -> None:
    """Barbican is down when a host goes: the delete stands (nothing refers to the payloads
    any more), the payloads are recorded, and they go once Barbican is back — after the next
    delete, with ``craton-manage secrets purge``, or when craton-api starts."""
    fleet = Fleet(craton_barbican, admin)
    fleet.hosts.append(fleet.host("c2"))

    def delete_host_while_barbican_is_down(host: dict[str, Any]) -> set[str]:
        held = database_refs(craton_barbican)
        barbican.stop()
        try:
            fleet.delete(f"/v1/hosts/{host['id']}")
            dropped = held - database_refs(craton_barbican)
            assert len(dropped) == 3  # its sensitive variable and its two secrets
            recorded = recorded_discards(craton_barbican)
            for ref in dropped:
                attempts, error = recorded[ref]
                assert attempts == 1 and error is not None and "Barbican" in error, recorded
            assert fleet.server.call("GET", f"/v1/hosts/{host['id']}",
                                     headers=admin.headers()).status == 404
        finally:
            barbican.start()
        assert dropped <= barbican_ids(craton_barbican, barbican)  # still there, recorded
        return dropped

    # The next delete that Barbican answers takes the earlier ones along.
    first = delete_host_while_barbican_is_down(fleet.hosts[0])
    fleet.delete(f"/v1/groups/{fleet.group['id']}/variables/api_token")
    assert first & barbican_ids(craton_barbican, barbican) == set()
    assert first & set(recorded_discards(craton_barbican)) == set()

    # craton-manage secrets purge.
    second = delete_host_while_barbican_is_down(fleet.hosts[1])
    purged = craton_barbican.manage("secrets", "purge")
    assert purged.returncode == 0, purged.stderr
    assert "deleted 3 payloads of deleted secrets; 0 still to delete" in purged.stdout
    assert second & barbican_ids(craton_barbican, barbican) == set()

    # craton-api's start.
    third = delete_host_while_barbican_is_down(fleet.hosts[2])
    restart = craton_barbican.home / "restart"
    restart.mkdir()
    with running_api(craton_barbican.env, restart):
        deadline = time.monotonic() + 60
        while third & barbican_ids(craton_barbican, barbican) and time.monotonic() < deadline:
            time.sleep(0.3)
    assert third & barbican_ids(craton_barbican, barbican) == set()
    assert recorded_discards(craton_barbican) == {}
    fleet.delete(f"/v1/tenants/{fleet.tenant['id']}?cascade=true")
