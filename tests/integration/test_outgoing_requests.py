"""The attack of issue 9 against a real craton-api (gunicorn, SQLite, [sources] allowed_networks
unset, as shipped): a tenant points a reference at the server's own API — which trusts requests
from loopback — to read another tenant's inventory through its own resolved variables.

Before: the reference was accepted, the server fetched http://127.0.0.1:<port>/v1/inventory/
<victim region>.json with its own standing, and the victim's hosts and variables appeared in the
attacker's resolved variables. Now: the literal address is refused when the reference is stored,
and a name that resolves to this machine is refused each time it would be fetched.
"""

from __future__ import annotations

import json
import socket
import stat
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_server import (
    Server,
    craton_environment,
    running_api,
    upgrade_database,
)

SECRET_VALUE = "victim-only-value-0f3a"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("craton-api")
    env = craton_environment(home)
    assert not any(key.startswith("CRATON_SOURCES") for key in env)
    upgrade_database(env)
    with running_api(env, home) as running:
        yield running


def world(server: Server, label: str) -> dict[str, Any]:
    """A tenant with a region, a group and a host in it, acting as that tenant from now on."""
    tenant = server.create("/v1/tenants", {"name": f"{label}-{uuid.uuid4().hex[:8]}"})
    as_tenant = {"X-Craton-Tenant": str(tenant["id"])}
    region = create(server, f"/v1/tenants/{tenant['id']}/regions",
                    {"name": "dfw", "variables": {"owner": label}}, as_tenant)
    group = create(server, f"/v1/regions/{region['id']}/groups", {"name": "web"}, as_tenant)
    host = create(server, f"/v1/regions/{region['id']}/hosts",
                  {"name": f"{label}-h1", "groups": ["web"],
                   "variables": {"db_password_hint": SECRET_VALUE if label == "victim" else "x"}},
                  as_tenant)
    return {"tenant": tenant, "region": region, "group": group, "host": host,
            "headers": as_tenant}


def create(server: Server, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    reply = server.call("POST", path, body, headers=headers)
    assert reply.status == 201, (reply.status, reply.body)
    return reply.json()


def test_a_reference_at_the_servers_own_api_reads_nothing(server: Server) -> None:
    victim, attacker = world(server, "victim"), world(server, "attacker")
    stolen_path = f"/v1/inventory/{victim['region']['id']}.json"
    # The victim's inventory is what the server itself would read over loopback.
    assert SECRET_VALUE.encode() in server.call("GET", stolen_path).body
    references = f"/v1/groups/{attacker['group']['id']}/references"

    for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "127.1"):
        url = f"http://{host}:{server.port}{stolen_path}"
        reply = server.call("POST", references, {"name": "steal", "url": url},
                            headers=attacker["headers"])
        assert reply.status == 422, (url, reply.body)
        error = reply.error()
        assert set(error["fields"]) == {"url"}
        assert "not allowed" in error["fields"]["url"]
        assert "[sources] allowed_networks" in error["fields"]["url"]

    # A name that resolves to this machine passes when stored (names are judged when fetched)...
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, server.port)
    except socket.gaierror:
        pytest.skip(f"this machine's name {name!r} does not resolve here")
    reference = create(server, references,
                       {"name": "steal", "url": f"http://{name}:{server.port}{stolen_path}"},
                       attacker["headers"])
    # ...and is refused each time it would be fetched: nothing of the victim's comes back.
    for path in (f"/v1/hosts/{attacker['host']['id']}/variables?resolved=true",
                 f"/v1/inventory/{attacker['region']['id']}.json",
                 f"/v1/inventory/{attacker['region']['id']}.tgz"):
        reply = server.call("GET", path, headers=attacker["headers"])
        assert reply.status == 422, (path, reply.status, reply.body[:300])
        error = reply.error()
        assert set(error["fields"]) == {f"references.{reference['id']}"}
        assert f"{name} resolves to an address that is not allowed" in error["message"]
        for leaked in (SECRET_VALUE, "victim", str(victim["host"]["name"])):
            assert leaked not in reply.body.decode(), (path, leaked)
    assert server.call("DELETE", f"/v1/references/{reference['id']}",
                       headers=attacker["headers"]).status == 204
    shown = server.call("GET", f"/v1/hosts/{attacker['host']['id']}/variables?resolved=true",
                        headers=attacker["headers"]).json()
    assert json.dumps(shown).count(SECRET_VALUE) == 0
    assert shown["variables"]["owner"] == "attacker"


def test_the_data_directory_is_private(server: Server) -> None:
    """The running server's data directory (CRATON_DATA_DIR=<home>/data, beside its log) is
    0700 and its database 0600."""
    data = server.log.parent / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "craton.db").stat().st_mode) == 0o600
