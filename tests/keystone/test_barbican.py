"""``[secrets] backend = barbican`` against a real Barbican behind the real Keystone: a
secret's content lives in Barbican and Craton keeps its id — create, reveal, bundle, job and
delete work as with local content; an outage answers 503 naming Barbican and changes nothing;
``craton-manage secrets migrate --to barbican`` moves existing content, resumably."""

from __future__ import annotations

import io
import secrets
import sqlite3
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.integration.test_server import BIN, Reply, craton_environment, running_api
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
    subprocess.run([str(BIN / "craton-manage"), "db", "upgrade"], env=env, check=True,
                   capture_output=True, timeout=120)
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
