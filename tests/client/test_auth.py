"""Credentials against craton-api with ``auth_strategy = apikey``: an API key given directly
or through CRATON_API_KEY, and a keystoneauth1 session built from clouds.yaml. No Keystone
server runs here: the cloud uses keystoneauth1's ``admin_token`` plugin, which sends a fixed
token as X-Auth-Token — a Craton API key is accepted there — so the whole Keystone code path
(openstacksdk's config loader, the session, its auth headers and endpoint) runs for real.
tests/keystone/test_client_keystone.py drives the client with tokens a real Keystone issued."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cratonclient import Client
from cratonclient.errors import Forbidden, Unauthorized
from tests.client.conftest import Api, run_cli
from tests.integration.test_server import BIN, craton_environment, running_api


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str]]:
    home = tmp_path_factory.mktemp("craton-client-apikey")
    env = craton_environment(home, CRATON_API_AUTH_STRATEGY="apikey")
    for command in (["db", "upgrade"], ["apikey", "create", "--cloud-admin", "--name", "ops"]):
        done = subprocess.run([str(BIN / "craton-manage"), *command], env=env, check=True,
                              capture_output=True, text=True, timeout=120)
    with running_api(env, home) as server:
        yield Api(server, home), done.stdout.strip()


def test_api_keys_and_their_roles(keyed: tuple[Api, str]) -> None:
    api, root = keyed
    with pytest.raises(Unauthorized) as refused:
        list(api.client().tenants.list())
    assert refused.value.code == 401
    admin = api.client(api_key=root)
    tenant = admin.tenants.create("acme")
    region = tenant.create_region("dfw")
    reader_key = admin.apikeys.create(tenant.id, "dash", "reader").key
    assert reader_key and reader_key.startswith("craton_")
    assert [k.name for k in tenant.apikeys()] == ["dash"]
    region.create_host("web-1")
    reader = Client(api.url, reader_key)
    assert [h.name for h in reader.hosts.list()] == ["web-1"]
    with pytest.raises(Forbidden) as denied:
        reader.hosts.create(region.id, "web-2")
    assert "inventory:write" in denied.value.message

    listed = run_cli(api, "host", "list", "-f", "value", "-c", "name",
                     env={"CRATON_API_KEY": reader_key})
    assert listed.stdout.split() == ["web-1"]
    anonymous = run_cli(api, "host", "list", check=False)
    assert anonymous.returncode == 1 and "401" in anonymous.stderr


def test_keystone_session_from_clouds_yaml(keyed: tuple[Api, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    api, root = keyed
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  lab:\n    auth_type: admin_token\n    auth:\n"
        f"      endpoint: {api.url}\n      token: {root}\n")
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    client = Client.from_cloud("lab")
    assert client.url == api.url and client.transport.keystone is not None
    assert "Authorization" not in client.transport.headers
    names = [t.name for t in client.tenants.list()]
    assert "acme" in names or names == []
    made = client.tenants.create("through-keystoneauth")
    assert made.name == "through-keystoneauth"

    listed = run_cli(api, "--os-cloud", "lab", "tenant", "list", "-f", "value", "-c", "name",
                     env={**env, "CRATON_URL": ""})
    assert "through-keystoneauth" in listed.stdout.split()


def test_a_netrc_entry_does_not_replace_the_api_key(keyed: tuple[Api, str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """requests would send ~/.netrc's login for the API's host as Basic credentials in place of
    the key; the client keeps the key it was given."""
    api, root = keyed
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with api.client(api_key=root) as client:
        response = client.transport.request("GET", "/v1/tenants")
    assert response.request.headers["Authorization"] == f"Bearer {root}"
