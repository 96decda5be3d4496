"""The plugin against craton-api with ``[api] auth_strategy = apikey``: the key from
CRATON_API_KEY (or the file) as ``Authorization: Bearer``, a reader's bundle without
secrets, and a missing or wrong key refused with the server's 401 — the key never shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_apikey_server import as_key, manage
from tests.integration.test_server import Server, craton_environment, running_api
from tests.plugin.conftest import Ansible, keygen, write_config


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server whose every request needs a key; a tenant with two regions (a1 in one, b1
    in the other, each with an SSH key), and the tenant's admin and reader keys."""
    home = tmp_path_factory.mktemp("craton-apikey")
    env = craton_environment(home, CRATON_API_AUTH_STRATEGY="apikey")
    manage(env, "db", "upgrade")
    root = manage(env, "apikey", "create", "--cloud-admin", "--name", "ops").stdout.strip()
    private, _ = keygen(home, "a1")
    with running_api(env, home) as server:
        def create(path: str, body: Any) -> Any:
            reply = server.call("POST", path, body, headers=as_key(root))
            assert reply.status == 201, reply.body
            return reply.json()

        tenant = create("/v1/tenants", {"name": "acme"})
        regions = {}
        for name in ("a", "b"):
            region = create(f"/v1/tenants/{tenant['id']}/regions", {"name": name})
            host = create(f"/v1/regions/{region['id']}/hosts", {"name": f"{name}1"})
            create(f"/v1/hosts/{host['id']}/secrets",
                   {"name": "ssh", "kind": "ssh_private_key", "content": private})
            regions[name] = region["id"]
        keys = {role: create(f"/v1/tenants/{tenant['id']}/apikeys",
                             {"name": role, "role": role})["key"]
                for role in ("admin", "reader")}
        yield {"server": server, "regions": regions, "keys": keys, "root": root}


def test_keys_from_the_environment_and_the_file(keyed: dict[str, Any], ansible: Ansible,
                                                tmp_path: Path) -> None:
    """CRATON_URL and CRATON_API_KEY (an admin's) serve the file that names neither; a file's
    own api_key (a reader's) wins over the environment's, and its bundle has no secrets."""
    server: Server = keyed["server"]
    admin = write_config(tmp_path / "admin.craton.yml", None, keyed["regions"]["a"])
    reader = write_config(tmp_path / "reader.craton.yml", None, keyed["regions"]["b"],
                          api_key=keyed["keys"]["reader"])
    listing = ansible.run("ansible-inventory", "-i", admin, "-i", reader, "--list", env={
        "CRATON_URL": f"http://127.0.0.1:{server.port}/v1/",
        "CRATON_API_KEY": keyed["keys"]["admin"]}).stdout
    listed = json.loads(listing)
    assert sorted(listed["ungrouped"]["hosts"]) == ["a1", "b1"]
    hostvars = listed["_meta"]["hostvars"]
    assert "craton-keys-" in hostvars["a1"]["ansible_ssh_private_key_file"]
    assert "b1" not in hostvars, "no variables: no key file"


def test_a_missing_or_wrong_key_is_the_servers_401(keyed: dict[str, Any], ansible: Ansible,
                                                   tmp_path: Path) -> None:
    server: Server = keyed["server"]
    wrong_key = keyed["keys"]["admin"][:-6] + "000000"
    missing = write_config(tmp_path / "missing.craton.yml", server, keyed["regions"]["a"])
    wrong = write_config(tmp_path / "wrong.craton.yml", server, keyed["regions"]["a"],
                         api_key=wrong_key)
    output = tmp_path / "list.json"
    done = ansible.run("ansible-inventory", "-vvv", "-i", missing, "-i", wrong, "--list",
                       "--output", output,
                       env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "0",
                            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "0"})
    said = " ".join(done.stderr.split())
    assert said.count(f"/v1/inventory/{keyed['regions']['a']}.tgz?layout=ansible answered 401"
                      ) >= 2, said
    assert "authentication required: send Authorization: Bearer" in said, said
    assert "the API key is not valid" in said, said
    assert json.loads(output.read_text())["_meta"]["hostvars"] == {}
    assert "ansible-inventory [core" in done.stdout, "-vvv says what it does"
    for key in (wrong_key, keyed["keys"]["admin"]):
        secret = key.rpartition("_")[2]
        assert secret not in done.stdout + done.stderr
