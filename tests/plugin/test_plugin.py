"""The craton.fleet inventory plugin as an operator uses it, against a real craton-api:
ansible-playbook over local-connection hosts with compose, groups and keyed_groups; a host's
SSH key as a private key file that is gone when Ansible exits; the hosts list's filters; a
cache that an unchanged selection revalidates with one 304; API keys from the environment;
and errors that say what the server said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fidelity import Lister, extract
from tests.integration.test_server import Server
from tests.plugin.conftest import Ansible, HttpClient, bundle_requests, write_config

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: the key file, as ssh would find it
      ansible.builtin.stat:
        path: "{{ ansible_ssh_private_key_file }}"
      register: key
      when: ansible_ssh_private_key_file is defined
    - name: a key ssh-keygen accepts (it refuses one that others may read)
      ansible.builtin.command: ssh-keygen -y -f "{{ ansible_ssh_private_key_file }}"
      register: public
      when: ansible_ssh_private_key_file is defined
    - name: what the host saw
      ansible.builtin.copy:
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        content: "{{ {'groups': group_names, 'motd': motd, 'ntp': ntp,
                      'key_file': ansible_ssh_private_key_file | default(None),
                      'key_mode': key.stat.mode | default(None),
                      'public_key': public.stdout | default(None)} | to_json }}"
"""


def test_playbook_over_the_plugin_with_a_key_file(api: Server, ansible: Ansible,
                                                  region: dict[str, Any],
                                                  tmp_path: Path) -> None:
    config = write_config(tmp_path / "craton.yml", api, region["id"], strict=True,
                          compose={"motd": "'hello ' ~ inventory_hostname"},
                          groups={"rack7": "rack == 'r7'"},
                          keyed_groups=[{"key": "role", "prefix": "role"}])
    playbook = tmp_path / "site.yml"
    playbook.write_text(PLAYBOOK)
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    scratch.mkdir()
    ansible.run("ansible-playbook", "-i", config, playbook, "-e", f"out={out}",
                env={"TMPDIR": str(scratch)})

    seen = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    assert sorted(seen) == ["c1", "c2", "s1"]
    assert {name: sorted(host["groups"]) for name, host in seen.items()} == {
        "c1": ["cloud", "compute", "rack7", "role_compute"],
        "c2": ["cloud", "compute", "role_compute"],
        "s1": ["rack7", "role_storage"]}
    assert {name: (host["motd"], host["ntp"]) for name, host in seen.items()} == {
        "c1": ("hello c1", "10.0.0.2"), "c2": ("hello c2", "10.0.0.2"),
        "s1": ("hello s1", "10.0.0.3")}
    c1 = seen["c1"]
    assert c1["key_mode"] == "0600"
    assert c1["public_key"].split()[:2] == region["public"].split()[:2]
    assert c1["key_file"].startswith(str(scratch))
    assert seen["s1"]["key_file"] is None and seen["c2"]["key_file"] is None
    assert list(scratch.iterdir()) == [], "the key files went with ansible-playbook"


def test_the_key_is_a_file_never_a_variable(api: Server, ansible: Ansible,
                                            region: dict[str, Any], tmp_path: Path) -> None:
    """The listing names c1's key file and holds no key; the certificate is not handed over;
    the file is gone once ansible-inventory has exited."""
    config = write_config(tmp_path / "craton.yml", api, region["id"])
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    listing = ansible.inventory(config, TMPDIR=str(scratch))
    hostvars = json.loads(listing)["_meta"]["hostvars"]
    key_file = hostvars["c1"]["ansible_ssh_private_key_file"]
    assert key_file.startswith(f"{scratch}/craton-keys-")
    assert "PRIVATE KEY" not in listing and "CERTIFICATE" not in listing
    assert region["private"].splitlines()[1] not in listing
    assert "ansible_ssh_private_key_file" not in hostvars["s1"]
    assert not Path(key_file).exists() and list(scratch.iterdir()) == []


@pytest.mark.parametrize("filters", [
    {"group": "compute", "var": ["rack:r7"]},
    {"name": "?1"},
    {"var": ["ntp"]},
    {"state": ["defined", "ready"]},
], ids=lambda filters: ",".join(filters))
def test_filters_select_as_the_bundle_does(api: Server, listers: list[Lister],
                                           region: dict[str, Any], tmp_path: Path,
                                           filters: dict[str, Any]) -> None:
    """Each filter of the hosts list, through the plugin, lists what the bundle of the same
    query lists (the key file's path aside: the bundle's is relative to its inventory)."""
    config = write_config(tmp_path / "craton.yml", api, region["id"], **filters)
    query = "&".join(f"{key}={value}" for key, values in filters.items()
                     for value in (values if isinstance(values, list) else [values]))
    bundle = extract(HttpClient(api), f"/v1/inventory/{region['id']}.tgz?layout=ansible&{query}",
                     tmp_path / "bundle")
    listers[0].submit([config])
    listers[1].submit([bundle / "inventory"])
    plugin, expected = listers[0].result(), listers[1].result()
    assert "output" in plugin, plugin
    shown, wanted = json.loads(plugin["output"]), json.loads(expected["output"])
    for listing in (shown, wanted):
        for variables in listing["_meta"]["hostvars"].values():
            if "ansible_ssh_private_key_file" in variables:
                variables["ansible_ssh_private_key_file"] = "<key file>"
    assert shown == wanted
    assert shown["_meta"]["hostvars"], "each of these selects a host"


def test_references_merge_as_ansible_merges_their_files(api: Server, listers: list[Lister],
                                                        tmp_path: Path) -> None:
    """A group's references and its own variables (in the bundle: group_vars/<group>/
    _references/*.json, then vars.json) mean through the plugin what they mean to Ansible
    from the extracted bundle: "base-extra" before "base" (file names sort so), the group's
    own variables last, and an ansible_group_priority from a reference an ordinary variable
    while the group's own orders it."""
    tenant = api.create("/v1/tenants", {"name": "refs"})
    rid = api.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "ord"})["id"]
    sources = api.log.parent / "data" / "sources" / str(tenant["id"])
    sources.mkdir(parents=True)
    (sources / "base.yml").write_text("tier: base\nonly_base: 1\nshared: base\n")
    (sources / "extra.yml").write_text("tier: base-extra\nansible_group_priority: 99\n")
    web = api.create(f"/v1/regions/{rid}/groups", {"name": "web", "variables": {
        "shared": "web", "ansible_group_priority": 5}})
    api.create(f"/v1/regions/{rid}/groups", {"name": "db", "variables": {"shared": "db"}})
    for name, file in (("base", "base.yml"), ("base-extra", "extra.yml")):
        api.create(f"/v1/groups/{web['id']}/references",
                   {"name": name, "url": f"file://{sources / file}"})
    api.create(f"/v1/regions/{rid}/hosts", {"name": "h1", "groups": ["web", "db"]})

    config = write_config(tmp_path / "craton.yml", api, rid)
    bundle = extract(HttpClient(api), f"/v1/inventory/{rid}.tgz?layout=ansible",
                     tmp_path / "bundle")
    listers[0].submit([config])
    listers[1].submit([bundle / "inventory"])
    plugin, expected = listers[0].result(), listers[1].result()
    assert "output" in plugin, plugin
    assert plugin["output"] == expected["output"]
    assert json.loads(plugin["output"])["_meta"]["hostvars"]["h1"] == {
        "tier": "base", "only_base": 1, "shared": "web", "ansible_group_priority": 99}


def test_an_unchanged_selection_costs_one_304(api: Server, ansible: Ansible,
                                              region: dict[str, Any], tmp_path: Path) -> None:
    """With a cache, the second run sends the kept ETag and lists the same (c1's key file
    included) from one 304; a change to the region is seen on the next run; --flush-cache
    fetches again."""
    config = write_config(tmp_path / "prod.craton.yml", api, region["id"], cache=True,
                          cache_plugin="ansible.builtin.jsonfile",
                          cache_connection=str(tmp_path / "cache"), cache_timeout=0)
    before = len(bundle_requests(api, region["id"]))
    first = json.loads(ansible.inventory(config))
    second = json.loads(ansible.inventory(config))
    assert first == {**second, "_meta": first["_meta"]}
    for host in ("c2", "s1"):
        assert first["_meta"]["hostvars"][host] == second["_meta"]["hostvars"][host]
    assert second["_meta"]["hostvars"]["c1"]["ansible_ssh_private_key_file"]
    assert [status for _, status in bundle_requests(api, region["id"])[before:]] == [200, 304]

    changed = api.call("PATCH", f"/v1/hosts/{region['hosts']['c2']}/variables",
                       {"variables": {"rack": "r9"}})
    assert changed.status == 200, changed.body
    try:
        third = json.loads(ansible.inventory(config))
        assert third["_meta"]["hostvars"]["c2"]["rack"] == "r9"
        ansible.run("ansible-inventory", "-i", config, "--list", "--flush-cache")
    finally:
        api.call("PATCH", f"/v1/hosts/{region['hosts']['c2']}/variables",
                 {"variables": {"rack": "r8"}})
    assert [status for _, status in bundle_requests(api, region["id"])[before:]] == \
        [200, 304, 200, 200]


def test_errors_say_what_the_server_said(api: Server, ansible: Ansible,
                                         region: dict[str, Any], tmp_path: Path) -> None:
    missing = write_config(tmp_path / "missing.craton.yml", api, 999999)
    bad = write_config(tmp_path / "bad.craton.yml", api, region["id"], state=["bogus"])
    nowhere = write_config(tmp_path / "nowhere.craton.yml", None, region["id"],
                           url="http://127.0.0.1:9")
    strict = write_config(tmp_path / "strict.craton.yml", api, region["id"], strict=True,
                          compose={"rack_number": "rack[1:] | int + no_such_variable"})
    done = ansible.run("ansible-inventory", "-i", missing, "-i", bad, "-i", nowhere,
                       "-i", strict, "--list",
                       env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "0",
                            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "0"})
    said = " ".join(done.stderr.split())
    assert "/v1/inventory/999999.tgz?layout=ansible answered 404: region 999999" in said, said
    assert "answered 422" in said and "state" in said, said
    assert "http://127.0.0.1:9/v1/inventory/" in said and "refused" in said.lower(), said
    assert "Could not set rack_number for host" in said and "no_such_variable" in said, said


def test_the_documentation_is_what_ansible_doc_shows(ansible: Ansible) -> None:
    shown = json.loads(ansible.run("ansible-doc", "-t", "inventory", "--json",
                                   "craton.fleet.craton").stdout)
    options = shown["craton.fleet.craton"]["doc"]["options"]
    assert {"url", "api_key", "region", "group", "var", "compose", "keyed_groups", "cache",
            "cache_plugin"} <= set(options)
    assert options["api_key"]["env"] == [{"name": "CRATON_API_KEY"}]
    assert options["url"]["env"] == [{"name": "CRATON_URL"}]
