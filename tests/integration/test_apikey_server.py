"""craton-api with ``[api] auth_strategy = apikey`` as an operator runs it: the first key made
by the real ``craton-manage apikey create --cloud-admin``, a tenant's keys made through the API,
used over real HTTP, revoked by ``craton-manage apikey revoke``; and no clear key in the
database files, the server's log, craton-manage's listing or any error body."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_server import BIN, Reply, Server, craton_environment, running_api

CHALLENGE = 'Bearer realm="craton"'


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN / "craton-manage"), *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str],
                                                                      Path, str]]:
    home = tmp_path_factory.mktemp("craton-apikey")
    env = craton_environment(home, CRATON_API_AUTH_STRATEGY="apikey")
    manage(env, "db", "upgrade")
    made = manage(env, "apikey", "create", "--cloud-admin", "--name", "first operator key")
    assert "shown this once" in made.stderr
    root = made.stdout.strip()
    assert root.startswith("craton_") and len(root.splitlines()) == 1
    with running_api(env, home) as server:
        yield server, env, home, root


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body)
    return reply.json() if reply.body else None


def test_operator_story_with_api_keys(keyed: tuple[Server, dict[str, str], Path, str]) -> None:
    server, env, home, root = keyed
    refused = server.call("GET", "/v1/tenants")
    assert refused.status == 401 and refused.headers["WWW-Authenticate"] == CHALLENGE
    assert "Bearer" in refused.error()["message"]

    tenant = ok(server.call("POST", "/v1/tenants", {"name": "acme"}, headers=as_key(root)), 201)
    region = ok(server.call("POST", f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"},
                            headers=as_key(root)), 201)
    admin = ok(server.call("POST", f"/v1/tenants/{tenant['id']}/apikeys",
                           {"name": "acme admin", "role": "admin"}, headers=as_key(root)), 201)
    reader = ok(server.call("POST", f"/v1/tenants/{tenant['id']}/apikeys",
                            {"name": "acme dashboards", "role": "reader", },
                            headers={"X-Auth-Token": admin["key"]}), 201)
    host = ok(server.call("POST", f"/v1/regions/{region['id']}/hosts", {"name": "web-1"},
                          headers=as_key(admin["key"])), 201)
    shown = ok(server.call("GET", f"/v1/hosts/{host['id']}", headers=as_key(reader["key"])))
    assert shown["name"] == "web-1"
    denied = server.call("DELETE", f"/v1/hosts/{host['id']}", headers=as_key(reader["key"]))
    assert denied.status == 403 and "inventory:write" in denied.error()["message"]

    listed = manage(env, "apikey", "list", "--tenant", str(tenant["id"])).stdout
    assert "acme admin" in listed and "acme dashboards" in listed and "active" in listed
    manage(env, "apikey", "revoke", str(reader["id"]))
    gone = server.call("GET", f"/v1/hosts/{host['id']}", headers=as_key(reader["key"]))
    assert gone.status == 401 and "revoked" in gone.error()["message"]
    assert "revoked" in manage(env, "apikey", "list").stdout

    wrong = server.call("GET", "/v1/tenants", headers=as_key(admin["key"][:-4] + "0000"))
    assert wrong.status == 401 and wrong.headers["WWW-Authenticate"].startswith(CHALLENGE)

    # Nowhere at rest, in the log, in listings or in answers: the keys' secret parts.
    everything = manage(env, "apikey", "list").stdout + "".join(
        reply.body.decode() for reply in (refused, denied, gone, wrong))
    files = [path for path in (home / "data").rglob("*") if path.is_file()]
    assert any(path.name == "craton.db" for path in files)
    for key in (root, admin["key"], reader["key"]):
        secret = key.rpartition("_")[2].encode()
        for path in [*files, server.log]:
            assert secret not in path.read_bytes(), path
        assert secret.decode() not in everything
