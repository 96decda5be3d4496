"""Inventory bundles through the API — GET /v1/inventory/{region_id}.tgz|.zip|.json.

User stories proven here: an operator downloads a region (or a filtered part of it) as an
Ansible inventory laid out either as one inventory (``layout=ansible``) or as one private data
directory per host (``layout=hosts``, the default); the archive forms hold the same files; the
JSON form is Ansible's dynamic-inventory JSON; downloads are reproducible byte for byte and
cacheable by ETag, which moves whenever what the bundle shows changes; the manifest describes
the selection and checksums every file; filters select what the hosts list selects; the cost
does not grow with the fleet; secrets reach only callers allowed to read them, as 0600 files;
and names that could escape the bundle directory never reach an archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import random
import string
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import text

from craton.api import create_app
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import Client, counting_queries, error_of, make_settings
from tests.functional.bundle_helpers import (
    ARCHIVES,
    LAYOUTS,
    Bundle,
    download,
    fetch,
    hosts_in_yaml,
)

Body = dict[str, Any]

FIXED_MTIME = 315532800  # 1980-01-01T00:00:00Z
KEY_FILE_VAR = "ansible_ssh_private_key_file"

REGION_VARS = {"ntp_server": "10.0.0.1", "level": "region", "dns": ["10.0.0.2", "10.0.0.3"]}
GROUPS: list[Body] = [
    {"name": "cloud", "variables": {"level": "cloud", "cloud_only": True}},
    {"name": "compute", "parents": ["cloud"],
     "variables": {"level": "compute", "cpu": 8, "ansible_group_priority": 5}},
    {"name": "gpu", "parents": ["compute"], "variables": {"gpu": {"model": "a100", "count": 4}}},
    {"name": "storage", "parents": ["cloud"], "depends_on": ["compute"],
     "variables": {"level": "storage", "disks": 12}},
    {"name": "empty"},
]
C1_OWN: Body = {"level": "host", "rack": "r1",
                "motd": 'h\u00e9llo "quoted" \\ back\nline 2 \u2713', "big": 9007199254740993,
                "ratio": 0.1, "empty": "", "nested": {"b": [True, False, None], "a": {}}}
C1_FIELDS: Body = {"ansible_host": "10.0.1.1", "ansible_port": 2222, "ansible_user": "ubuntu"}
HOSTS: list[Body] = [
    {"name": "c1", "ip_address": "10.0.1.1", "ssh_user": "ubuntu", "ssh_port": 2222,
     "state": "ready", "groups": ["gpu"], "variables": C1_OWN},
    {"name": "c2", "fqdn": "c2.example.com", "state": "ready", "groups": ["compute", "storage"],
     "variables": {"rack": "r2", "role": "compute"}},
    {"name": "s1", "ip_address": "10.0.2.1", "groups": ["storage"],
     "variables": {"role": "storage", "ansible_host": "10.9.9.9"}},
    {"name": "lone"},
]
DIRECT_GROUPS = {"c1": ["gpu"], "c2": ["compute", "storage"], "s1": ["storage"], "lone": []}
ALL_GROUPS = {"c1": {"cloud", "compute", "gpu"}, "c2": {"cloud", "compute", "storage"},
              "s1": {"cloud", "storage"}, "lone": set()}
PASSWORD = "p@ss w0rd\n"
BLOB = "line one\r\nline two\t\x01 \u00fc\n"


# --- fixtures ----------------------------------------------------------------------------------

def _keygen(directory: Path, name: str) -> str:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test",
                    "-f", str(path)], check=True, capture_output=True, timeout=60)
    return path.read_text()


@pytest.fixture(scope="module")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two real OpenSSH private keys made by ssh-keygen."""
    directory = tmp_path_factory.mktemp("bundle-keys")
    keys = {name: _keygen(directory, name) for name in ("one", "two")}
    assert all(k.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") for k in keys.values())
    assert keys["one"] != keys["two"]
    return keys


@pytest.fixture
def fleet(client: Client, region: Body, ssh_keys: dict[str, str]) -> Body:
    """A small region: variables, a 3-level group tree with a priority and a dependency, four
    hosts (one in no group), SSH keys and a password. Returns the ids by name and the secret
    contents by path (host/secret)."""
    rid = region["id"]
    put = client.put(f"/v1/regions/{rid}/variables", {"variables": REGION_VARS})
    assert put.status_code == 200, put.get_json()
    groups = {g["name"]: client.create(f"/v1/regions/{rid}/groups", g)["id"] for g in GROUPS}
    hosts = {h["name"]: h["id"]
             for h in client.create(f"/v1/regions/{rid}/hosts", HOSTS)["items"]}
    secrets_in = {
        "c1/ssh": ("ssh_private_key", ssh_keys["one"]),
        "c1/db-password": ("password", PASSWORD),
        "c1/blob": ("opaque", BLOB),
        "s1/z-key": ("ssh_private_key", ssh_keys["two"]),
        "s1/a-key": ("ssh_private_key", ssh_keys["one"]),
    }
    secrets: Body = {}
    for path, (kind, content) in secrets_in.items():
        host, name = path.split("/")
        created = client.create(f"/v1/hosts/{hosts[host]}/secrets",
                                {"name": name, "kind": kind, "content": content})
        secrets[path] = {"id": created["id"], "content": content}
    return {"region_id": rid, "tenant_id": region["tenant_id"], "hosts": hosts,
            "groups": groups, "secrets": secrets}


def resolved(client: Client, host_id: int, **kwargs: Any) -> Body:
    response = client.get(f"/v1/hosts/{host_id}/variables?resolved=true", **kwargs)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["variables"]


def host_names(client: Client, region_id: int, query: Body) -> list[str]:
    """Names of every host the hosts list selects with ``query`` (following next links)."""
    url: str | None = f"/v1/regions/{region_id}/hosts?{urlencode(query, doseq=True)}"
    found: list[str] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        found += [host["name"] for host in body["items"]]
        url = body["next"]
    return sorted(found)


def key_target(bundle: Bundle, inventory_dir: str, value: str) -> str:
    """The bundle path an ``ansible_ssh_private_key_file`` value points at, for an inventory
    read from ``inventory_dir`` (what Ansible substitutes for {{ inventory_dir }})."""
    assert value.startswith("{{ inventory_dir }}/"), value
    return posixpath.normpath(inventory_dir + value[len("{{ inventory_dir }}"):])


# --- layouts -----------------------------------------------------------------------------------

def test_ansible_layout_is_one_inventory_with_group_and_host_vars(client: Client,
                                                                   fleet: Body) -> None:
    """layout=ansible: hosts.yml holds the group tree (only groups without parents under
    ``all``), members and group priorities, group_vars/all.json the region's variables,
    group_vars/<group>.json each group's, and host_vars/<host>.json each host's own variables
    plus those derived from its fields; secrets sit under secrets/<host>/ and the manifest
    comes last."""
    bundle = download(client, fleet["region_id"], layout="ansible")
    assert bundle.paths[-1] == "manifest.json"
    assert sorted(bundle.paths) == sorted([
        "inventory/hosts.yml",
        "inventory/group_vars/all.json",
        "inventory/group_vars/cloud.json",
        "inventory/group_vars/compute.json",
        "inventory/group_vars/gpu.json",
        "inventory/group_vars/storage.json",
        "inventory/host_vars/c1.json",
        "inventory/host_vars/c2.json",
        "inventory/host_vars/s1.json",
        "secrets/c1/blob",
        "secrets/c1/db-password",
        "secrets/c1/ssh",
        "secrets/s1/a-key",
        "secrets/s1/z-key",
        "manifest.json",
    ])
    assert bundle.json("inventory/group_vars/all.json") == REGION_VARS
    for spec in GROUPS:
        if spec.get("variables"):
            expected = {k: v for k, v in spec["variables"].items()
                        if k != "ansible_group_priority"}
            assert bundle.json(f"inventory/group_vars/{spec['name']}.json") == expected

    c1 = bundle.json("inventory/host_vars/c1.json")
    assert c1.pop(KEY_FILE_VAR)
    assert c1 == {**C1_OWN, **C1_FIELDS}
    assert bundle.json("inventory/host_vars/c2.json") == {
        "rack": "r2", "role": "compute", "ansible_host": "c2.example.com"}
    s1 = bundle.json("inventory/host_vars/s1.json")
    assert s1.pop(KEY_FILE_VAR)
    assert s1 == {"role": "storage", "ansible_host": "10.9.9.9"}  # own value beats the field

    inventory = bundle.yaml("inventory/hosts.yml")
    members = hosts_in_yaml(inventory)
    assert members["all"] == {"c1", "c2", "s1", "lone"}
    for group in ("cloud", "compute", "gpu", "storage", "empty"):
        assert members[group] == {h for h, gs in ALL_GROUPS.items() if group in gs}, group
    top = inventory["all"]["children"]
    assert set(top) == {"cloud", "empty"}  # groups with parents sit under them, as in Ansible
    assert top["cloud"]["children"]["compute"]["vars"] == {"ansible_group_priority": 5}


def test_hosts_layout_gives_each_host_its_resolved_variables(client: Client,
                                                            fleet: Body) -> None:
    """The default layout: one private data directory per host, whose host_vars file holds
    exactly what GET /v1/hosts/{id}/variables?resolved=true shows, whose hosts.yml holds that
    host alone in its groups, and whose env/ssh_key is the host's SSH key (the first by name
    when it has several); a host without a key has no env/ssh_key."""
    bundle = download(client, fleet["region_id"])
    assert download(client, fleet["region_id"], layout="hosts").raw == bundle.raw
    assert bundle.paths[-1] == "manifest.json"
    assert sorted(bundle.paths) == sorted([
        "hosts/c1/env/ssh_key",
        "hosts/c1/inventory/hosts.yml",
        "hosts/c1/inventory/host_vars/c1.json",
        "hosts/c1/secrets/c1/blob",
        "hosts/c1/secrets/c1/db-password",
        "hosts/c1/secrets/c1/ssh",
        "hosts/c2/inventory/hosts.yml",
        "hosts/c2/inventory/host_vars/c2.json",
        "hosts/lone/inventory/hosts.yml",
        "hosts/lone/inventory/host_vars/lone.json",
        "hosts/s1/env/ssh_key",
        "hosts/s1/inventory/hosts.yml",
        "hosts/s1/inventory/host_vars/s1.json",
        "hosts/s1/secrets/s1/a-key",
        "hosts/s1/secrets/s1/z-key",
        "manifest.json",
    ])
    for name, host_id in fleet["hosts"].items():
        shown = bundle.json(f"hosts/{name}/inventory/host_vars/{name}.json")
        assert shown == resolved(client, host_id), name
        members = hosts_in_yaml(bundle.yaml(f"hosts/{name}/inventory/hosts.yml"))
        assert members["all"] == {name}
        assert {group for group, hosts in members.items() if name in hosts} == \
            ALL_GROUPS[name] | {"all"}

    files, secrets = bundle.files, fleet["secrets"]
    assert files["hosts/c1/env/ssh_key"] == secrets["c1/ssh"]["content"].encode()
    assert files["hosts/s1/env/ssh_key"] == secrets["s1/a-key"]["content"].encode()
    # Ansible's precedence: region < cloud < storage (priority 1) < compute (priority 5) < host
    c2 = bundle.json("hosts/c2/inventory/host_vars/c2.json")
    assert c2 == {**REGION_VARS, "cloud_only": True, "disks": 12, "level": "compute",
                  "cpu": 8, "ansible_host": "c2.example.com", "rack": "r2", "role": "compute"}
    assert bundle.json("hosts/lone/inventory/host_vars/lone.json") == REGION_VARS


@pytest.mark.parametrize("layout", LAYOUTS)
def test_key_file_variable_points_at_the_hosts_key_inside_the_bundle(
        client: Client, fleet: Body, layout: str) -> None:
    """ansible_ssh_private_key_file, read relative to the inventory that sets it, names a file
    of the same bundle that holds the host's key (the first by name)."""
    bundle = download(client, fleet["region_id"], layout=layout)
    expected = {"c1": "c1/ssh", "s1": "s1/a-key"}
    for host, secret in expected.items():
        if layout == "ansible":
            inventory_dir, variables = "inventory", bundle.json(f"inventory/host_vars/{host}.json")
        else:
            inventory_dir = f"hosts/{host}/inventory"
            variables = bundle.json(f"{inventory_dir}/host_vars/{host}.json")
        target = key_target(bundle, inventory_dir, variables[KEY_FILE_VAR])
        assert bundle.files.get(target) == fleet["secrets"][secret]["content"].encode(), target
        assert bundle.mode(target) == 0o600


@pytest.mark.parametrize("fmt", ["tgz", "zip", "json"])
@pytest.mark.parametrize("layout", ["flat", "", "HOSTS", "ansible,hosts"])
def test_unknown_layout_is_422_naming_layout(client: Client, fleet: Body, fmt: str,
                                             layout: str) -> None:
    """A layout other than hosts or ansible is refused, naming the argument."""
    response = fetch(client, fleet["region_id"], fmt, layout=layout)
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"layout"}


# --- formats -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_tgz_and_zip_hold_the_same_files(client: Client, fleet: Body, layout: str) -> None:
    """The .tgz and the .zip of one state hold the same paths, in the same order, with the same
    bytes and modes; each is served as an attachment named after the region and layout."""
    tgz = download(client, fleet["region_id"], "tgz", layout=layout)
    zipped = download(client, fleet["region_id"], "zip", layout=layout)
    assert [(m.path, m.data, m.mode) for m in tgz.members] == \
        [(m.path, m.data, m.mode) for m in zipped.members]
    assert len(tgz.members) > 5
    for bundle in (tgz, zipped):
        assert bundle.headers["Content-Disposition"] == \
            f'attachment; filename="craton-dfw-{layout}.{bundle.fmt}"'
    assert tgz.etag != zipped.etag


def test_json_is_ansible_dynamic_inventory(client: Client, fleet: Body) -> None:
    """The .json form is what an Ansible inventory script prints: every group with its hosts,
    children and variables (region variables on ``all``), and under _meta.hostvars each host's
    fully resolved variables — what the API resolves for a caller who may not read secrets
    (the JSON never carries a secret or a key path)."""
    bundle = download(client, fleet["region_id"], "json")
    inventory = json.loads(bundle.raw)
    assert set(inventory) == {"_meta", "all", "cloud", "compute", "gpu", "storage", "empty"}
    for name, group in inventory.items():
        if name != "_meta":
            assert set(group) == {"hosts", "children", "vars"}, name
            assert all(isinstance(group[k], list) for k in ("hosts", "children")), name
            assert isinstance(group["vars"], dict), name
    assert inventory["all"]["vars"] == REGION_VARS
    assert inventory["all"]["hosts"] == ["lone"]
    assert set(inventory["all"]["children"]) - {"ungrouped"} == {"cloud", "empty"}
    assert {k: (sorted(v["children"]), sorted(v["hosts"])) for k, v in inventory.items()
            if k not in ("_meta", "all")} == {
        "cloud": (["compute", "storage"], []),
        "compute": (["gpu"], ["c2"]),
        "gpu": ([], ["c1"]),
        "storage": ([], ["c2", "s1"]),
        "empty": ([], []),
    }
    for spec in GROUPS:
        assert inventory[spec["name"]]["vars"] == spec.get("variables", {}), spec["name"]

    hostvars = inventory["_meta"]["hostvars"]
    member = {"tenant": fleet["tenant_id"], "roles": "member"}
    assert hostvars == {name: resolved(client, host_id, **member)
                        for name, host_id in fleet["hosts"].items()}
    assert hostvars["c1"]["ansible_host"] == C1_FIELDS["ansible_host"]
    assert all("ansible_ssh_private_key_file" not in v for v in hostvars.values())
    for secret in fleet["secrets"].values():
        assert secret["content"].encode() not in bundle.raw
    assert b"BEGIN OPENSSH" not in bundle.raw


# --- determinism ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tgz", "zip", "json"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_downloads_are_byte_identical(client: Client, fleet: Body, fmt: str,
                                          layout: str) -> None:
    """The same inventory state gives the same bytes and the same ETag, download after
    download."""
    first = download(client, fleet["region_id"], fmt, layout=layout)
    second = download(client, fleet["region_id"], fmt, layout=layout)
    assert first.raw == second.raw
    assert first.etag == second.etag


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tar_carries_no_time_or_owner_of_the_build(client: Client, fleet: Body,
                                                   layout: str) -> None:
    """Every tar entry has the fixed 1980-01-01 mtime, uid/gid 0 and empty owner names; the
    gzip header carries mtime 0 and no file name."""
    bundle = download(client, fleet["region_id"], "tgz", layout=layout)
    assert bundle.raw[:3] == b"\x1f\x8b\x08"
    assert bundle.raw[4:8] == b"\0\0\0\0"  # gzip MTIME
    assert bundle.raw[3] & 0x08 == 0  # no FNAME
    for member in bundle.members:
        info = member.info
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == \
            (FIXED_MTIME, 0, 0, "", ""), member.path


@pytest.mark.parametrize("layout", LAYOUTS)
def test_zip_entries_carry_the_1980_date(client: Client, fleet: Body, layout: str) -> None:
    """Every zip entry is dated 1980-01-01 00:00:00, whatever the time of the download."""
    bundle = download(client, fleet["region_id"], "zip", layout=layout)
    assert bundle.members
    for member in bundle.members:
        assert member.info.date_time == (1980, 1, 1, 0, 0, 0), member.path


# --- ETag ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tgz", "zip", "json"])
def test_etag_is_strong_stable_and_answers_if_none_match(client: Client, fleet: Body,
                                                         fmt: str) -> None:
    """The ETag is a strong validator, the same for the same state; If-None-Match with it is a
    304 with no body; with any other tag the bundle comes in full."""
    bundle = download(client, fleet["region_id"], fmt)
    etag = bundle.etag
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert fetch(client, fleet["region_id"], fmt).headers["ETag"] == etag

    unchanged = fetch(client, fleet["region_id"], fmt, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.get_data() == b""
    assert unchanged.headers["ETag"] == etag

    listed = fetch(client, fleet["region_id"], fmt, headers={"If-None-Match": f'"x", {etag}'})
    assert listed.status_code == 304 and listed.get_data() == b""

    other = fetch(client, fleet["region_id"], fmt, headers={"If-None-Match": '"b1-stale"'})
    assert other.status_code == 200
    assert other.get_data() == bundle.raw


def _change(client: Client, fleet: Body, change: str) -> None:
    """One change to what a bundle of the hosts named c* shows."""
    hosts, groups, secrets = fleet["hosts"], fleet["groups"], fleet["secrets"]
    if change == "host variable":
        response = client.patch(f"/v1/hosts/{hosts['c1']}/variables",
                                {"variables": {"rack": "r9"}})
    elif change == "group variable":
        response = client.patch(f"/v1/groups/{groups['gpu']}/variables",
                                {"variables": {"gpu": "h100"}})
    elif change == "region variable":
        response = client.patch(f"/v1/regions/{fleet['region_id']}/variables",
                                {"variables": {"ntp_server": "10.0.0.9"}})
    elif change == "host joins a group":
        response = client.post(f"/v1/groups/{groups['storage']}/hosts", {"hosts": ["c1"]})
    elif change == "new matching host":
        response = client.post(f"/v1/regions/{fleet['region_id']}/hosts",
                               {"name": "c3", "variables": {"rack": "r3"}})
    elif change == "secret content":
        response = client.patch(f"/v1/secrets/{secrets['c1/db-password']['id']}",
                                {"content": "another password"})
    elif change == "host rename":
        response = client.patch(f"/v1/hosts/{hosts['c2']}", {"name": "c2b"})
    elif change == "group rename":
        response = client.patch(f"/v1/groups/{groups['gpu']}", {"name": "accel"})
    elif change == "secret rename":
        response = client.patch(f"/v1/secrets/{secrets['c1/db-password']['id']}",
                                {"name": "db-pw"})
    else:
        raise AssertionError(change)
    assert response.status_code in (200, 201), (change, response.get_json())


CHANGES = ["host variable", "group variable", "region variable", "host joins a group",
           "new matching host", "secret content", "host rename", "group rename",
           "secret rename"]
SECRET_CHANGES = ("secret content", "secret rename")
VARIANTS = [("tgz", "hosts"), ("tgz", "ansible"), ("zip", "ansible"), ("json", "hosts")]


@pytest.mark.parametrize(("fmt", "layout", "change"), [
    (fmt, layout, change) for fmt, layout in VARIANTS for change in CHANGES
    if not (fmt == "json" and change in SECRET_CHANGES)  # .json never holds secrets
])
def test_etag_and_bytes_move_after_each_change(client: Client, fleet: Body, fmt: str,
                                               layout: str, change: str) -> None:
    """After any change to what the bundle shows, the ETag moves, the old one no longer
    gets a 304, and the bytes differ."""
    before = download(client, fleet["region_id"], fmt, layout=layout, name="c*")
    _change(client, fleet, change)
    after = download(client, fleet["region_id"], fmt, layout=layout, name="c*")
    assert after.etag != before.etag
    assert after.raw != before.raw
    stale = fetch(client, fleet["region_id"], fmt, layout=layout, name="c*",
                  headers={"If-None-Match": before.etag})
    assert stale.status_code == 200
    assert stale.get_data() == after.raw


@pytest.mark.parametrize("fmt", ["tgz", "json"])
@pytest.mark.parametrize("change", [
    {"variables": {"role": "changed", "extra": [1, 2]}},
    {"name": "s9"},
    {"ip_address": "10.0.2.99", "ssh_user": "root"},
    {"state": "stopped"},
])
def test_a_change_to_a_host_outside_the_filter_keeps_the_bytes(
        client: Client, fleet: Body, fmt: str, change: Body) -> None:
    """A bundle of the hosts named c* keeps its bytes when a host it does not select changes
    (its fields, variables or name), and its secret too. Its ETag moves all the same: it
    stands for the region's inventory version, which any write in the region moves on, so
    that a 304 never has to read the hosts to know (the client downloads the same bytes)."""
    before = download(client, fleet["region_id"], fmt, name="c*")
    response = client.patch(f"/v1/hosts/{fleet['hosts']['s1']}", change)
    assert response.status_code == 200, response.get_json()
    secret = client.patch(f"/v1/secrets/{fleet['secrets']['s1/z-key']['id']}",
                          {"name": "renamed-key"})
    assert secret.status_code == 200, secret.get_json()
    after = download(client, fleet["region_id"], fmt, name="c*")
    assert after.raw == before.raw
    assert after.etag != before.etag
    again = fetch(client, fleet["region_id"], fmt, name="c*",
                  headers={"If-None-Match": after.etag})
    assert again.status_code == 304


def test_json_read_while_the_inventory_changes_holds_one_snapshot(client: Client,
                                                                 fleet: Body) -> None:
    """A JSON inventory whose download has started (its ETag and first bytes sent) holds the
    state that ETag names, even if the inventory changes before the rest is read."""
    rid = fleet["region_id"]
    fmt = "json"
    before = download(client, rid, fmt)
    url = f"/v1/inventory/{rid}.{fmt}"
    started = client.http.get(url, buffered=False)
    try:
        assert started.status_code == 200
        assert started.headers["ETag"] == before.etag
        _change(client, fleet, "host variable")
        _change(client, fleet, "host rename")
        _change(client, fleet, "region variable")
        assert started.get_data() == before.raw
    finally:
        started.close()
    after = download(client, rid, fmt)
    assert after.etag != before.etag and after.raw != before.raw


@pytest.mark.parametrize("fmt", ARCHIVES)
def test_a_large_archive_read_while_the_inventory_changes_holds_one_snapshot(
        client: Client, region: Body, fmt: str) -> None:
    """An archive big enough to be sent in pieces (host variables of ~150 KB each, in values
    within [limits] max_value_bytes) still holds one state — the one its ETag names — when
    secrets and variables change after its first piece has gone out."""
    rng = random.Random(11)
    rid = region["id"]
    hosts = client.create(f"/v1/regions/{rid}/hosts", [
        {"name": f"big{i}", "variables": {
            f"blob{part}": "".join(rng.choices(string.ascii_letters, k=50_000))
            for part in range(3)}}
        for i in range(3)])["items"]
    secret = client.create(f"/v1/hosts/{hosts[0]['id']}/secrets",
                           {"name": "pw", "kind": "password", "content": "before"})
    before = download(client, rid, fmt, layout="ansible")
    started = client.http.get(f"/v1/inventory/{rid}.{fmt}?layout=ansible", buffered=False)
    try:
        assert started.status_code == 200 and started.headers["ETag"] == before.etag
        assert client.patch(f"/v1/secrets/{secret['id']}",
                            {"content": "after"}).status_code == 200
        assert client.patch(f"/v1/hosts/{hosts[2]['id']}/variables",
                            {"variables": {"blob": "changed"}}).status_code == 200
        assert client.create(f"/v1/regions/{rid}/hosts", {"name": "big3"})
        assert started.get_data() == before.raw
    finally:
        started.close()
    after = download(client, rid, fmt, layout="ansible")
    assert after.files["secrets/big0/pw"] == b"after"
    assert after.etag != before.etag


# --- manifest ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ARCHIVES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_manifest_describes_the_selection_and_checksums_every_file(
        client: Client, fleet: Body, fmt: str, layout: str) -> None:
    """manifest.json names the region, layout and filters, each selected host with its direct
    groups, every group with its parents and dependencies, the dependency order, and the
    sha256 of every other file of the archive."""
    bundle = download(client, fleet["region_id"], fmt, layout=layout, group="cloud")
    manifest = bundle.manifest
    assert manifest["region"] == {"id": fleet["region_id"], "name": "dfw",
                                  "tenant_id": fleet["tenant_id"]}
    assert manifest["layout"] == layout
    assert manifest["filters"] == {"group": "cloud"}
    assert manifest["secrets"] == "included"
    assert manifest["hosts"] == [
        {"id": fleet["hosts"][name], "name": name, "groups": DIRECT_GROUPS[name]}
        for name in ("c1", "c2", "s1")
    ]
    assert sorted(manifest["groups"], key=lambda g: g["name"]) == [
        {"name": "cloud", "parents": [], "depends_on": []},
        {"name": "compute", "parents": ["cloud"], "depends_on": []},
        {"name": "empty", "parents": [], "depends_on": []},
        {"name": "gpu", "parents": ["compute"], "depends_on": []},
        {"name": "storage", "parents": ["cloud"], "depends_on": ["compute"]},
    ]
    assert manifest["dependency_order"] == [["cloud", "compute", "empty", "gpu"], ["storage"]]
    others = {m.path: hashlib.sha256(m.data).hexdigest() for m in bundle.members
              if m.path != "manifest.json"}
    assert manifest["files"] == others
    assert bundle.paths.count("manifest.json") == 1 and bundle.paths[-1] == "manifest.json"
    assert not any("lone" in path for path in manifest["files"])


@pytest.mark.parametrize("fmt", ARCHIVES)
def test_manifest_is_json_whatever_the_names(client: Client, region: Body, fmt: str) -> None:
    """Paths in the manifest are JSON strings: a group or host name holding '"' or '\\'
    (both allowed) leaves it readable, each path as it is in the archive."""
    rid = region["id"]
    client.create(f"/v1/regions/{rid}/groups", {"name": 'a"b', "variables": {"x": 1}})
    client.create(f"/v1/regions/{rid}/hosts", {"name": 'h"1', "groups": ['a"b'],
                                               "variables": {"y": 2}})
    for layout in LAYOUTS:
        bundle = download(client, rid, fmt, layout=layout)
        files = bundle.manifest["files"]
        assert set(files) == {m.path for m in bundle.members if m.path != "manifest.json"}
        assert any('a"b' in path for path in files) or layout == "hosts"
        assert any('h"1' in path for path in files)


def test_manifest_lists_filters_as_given(client: Client, fleet: Body) -> None:
    """Every filter of the request is recorded in the manifest."""
    c1 = fleet["hosts"]["c1"]
    bundle = download(client, fleet["region_id"], layout="ansible", name="c*", var="rack",
                      state=["ready"], id=[c1])
    assert bundle.manifest["filters"] == {"name": "c*", "var": ["rack"], "state": ["ready"],
                                          "id": [c1]}
    assert [host["name"] for host in bundle.manifest["hosts"]] == ["c1"]


# --- selection -----------------------------------------------------------------------------------

SELECTIONS = [
    {},
    {"name": "c*"},
    {"name": "?1"},
    {"name": "s1"},
    {"group": "compute"},
    {"group": "cloud"},
    {"group": "gpu"},
    {"group": "empty"},
    {"var": "role:storage"},
    {"var": "rack"},
    {"var": ["role:compute", "rack:r2"]},
    {"var": "level:host"},
    {"var": "big:9007199254740993"},
    {"var": "ratio:0.1"},
    {"state": "ready"},
    {"state": ["defined", "stopped"]},
    {"id": ["c1", "s1"]},
    {"ip_address": "10.0.1.1"},
    {"group": "cloud", "name": "s*"},
    {"group": "storage", "state": "ready", "var": "rack"},
]


@pytest.mark.parametrize("query", SELECTIONS, ids=lambda q: repr(q) if q else "all")
def test_filters_select_what_the_hosts_list_selects(client: Client, fleet: Body,
                                                     query: Body) -> None:
    """Name globs, groups (with their subgroups), variables, states, ids and addresses select
    exactly the hosts the hosts list selects, in each format and layout."""
    if "id" in query:
        query = {**query, "id": [fleet["hosts"][name] for name in query["id"]]}
    expected = host_names(client, fleet["region_id"], query)
    rid = fleet["region_id"]

    per_host = download(client, rid, "tgz", **query)
    assert sorted(h["name"] for h in per_host.manifest["hosts"]) == expected
    assert sorted({p.split("/")[1] for p in per_host.paths if p.startswith("hosts/")}) == \
        expected

    flat = download(client, rid, "zip", layout="ansible", **query)
    assert sorted(h["name"] for h in flat.manifest["hosts"]) == expected
    members = hosts_in_yaml(flat.yaml("inventory/hosts.yml"))
    assert sorted(members["all"]) == expected
    assert set(members) == {"all", *(g["name"] for g in GROUPS)}  # the whole tree, always

    dynamic = json.loads(download(client, rid, "json", **query).raw)
    assert sorted(dynamic["_meta"]["hostvars"]) == expected
    assert set(dynamic) == {"_meta", "all", *(g["name"] for g in GROUPS)}


@pytest.mark.parametrize("fmt", ["tgz", "zip", "json"])
def test_unknown_group_or_argument_is_422(client: Client, fleet: Body, fmt: str) -> None:
    """A group the region lacks, an argument the endpoint does not take (region_id comes from
    the path) and a name no host could have are refused, naming the argument."""
    rid = fleet["region_id"]
    for query, field in [({"group": "nope"}, "group"), ({"foo": "1"}, "foo"),
                         ({"region_id": rid}, "region_id"), ({"name": "a/b"}, "name"),
                         ({"state": "bogus"}, "state.0"), ({"var": "not\ta key:1"}, "var")]:
        response = fetch(client, rid, fmt, **query)
        assert response.status_code == 422, (query, response.status_code)
        assert set(error_of(response)["fields"]) == {field}, query


@pytest.mark.parametrize("fmt", ["tgz", "zip", "json"])
def test_another_tenants_region_is_404(client: Client, fleet: Body, fmt: str) -> None:
    """A caller scoped to another tenant, whatever its roles, gets 404 for this region's
    bundle, as it would for a region that does not exist; the owning tenant gets it."""
    other = client.create("/v1/tenants", {"name": "globex"})
    for roles in ("admin", "member", "secret-reader"):
        response = fetch(client, fleet["region_id"], fmt, tenant=other["id"], roles=roles)
        assert response.status_code == 404, roles
        body = error_of(response)
        assert "dfw" not in body["message"]
    assert fetch(client, fleet["region_id"], fmt, tenant=fleet["tenant_id"],
                 roles="reader").status_code == 200
    assert fetch(client, fleet["region_id"] + 10**6, fmt).status_code == 404


@pytest.mark.parametrize("fmt", ["tgz", "json"])
def test_a_caller_without_a_reading_role_is_403(client: Client, fleet: Body, fmt: str) -> None:
    """A tenant caller whose roles allow no reading gets 403, not the inventory."""
    response = fetch(client, fleet["region_id"], fmt, tenant=fleet["tenant_id"],
                     roles="observer")
    assert response.status_code == 403
    assert "inventory:read" in error_of(response)["message"]


# --- cost ----------------------------------------------------------------------------------------

def _grow(client: Client, region_id: int, names: list[str]) -> None:
    """Hosts with variables, two groups each and a secret."""
    created = client.create(f"/v1/regions/{region_id}/hosts", [
        {"name": name, "ip_address": f"10.2.{i // 200}.{i % 200 + 1}",
         "variables": {"index": i, "rack": f"r{i % 7}", "tags": ["a", name]},
         "groups": ["gpu", "storage"] if i % 2 else ["compute"]}
        for i, name in enumerate(names)
    ])["items"]
    for host in created:
        client.create(f"/v1/hosts/{host['id']}/secrets",
                      {"name": "pw", "kind": "password", "content": f"pw-{host['name']}"})


def test_statement_count_does_not_grow_with_the_fleet(client: Client, region: Body,
                                                      database: Database) -> None:
    """A bundle of 60 hosts (each with variables, groups and a secret) costs the same number
    of SQL statements as one of 5, in every format and layout."""
    rid = region["id"]
    for spec in GROUPS:
        client.create(f"/v1/regions/{rid}/groups", spec)
    client.put(f"/v1/regions/{rid}/variables", {"variables": REGION_VARS})
    _grow(client, rid, [f"n{i:02d}" for i in range(5)])
    variants = [("tgz", "hosts"), ("tgz", "ansible"), ("zip", "hosts"), ("zip", "ansible"),
                ("json", "hosts")]

    def count(fmt: str, layout: str, hosts: int) -> int:
        download(client, rid, fmt, layout=layout)  # warm: pooled connection, caches
        with counting_queries(database) as statements:
            response = fetch(client, rid, fmt, layout=layout)
        assert response.status_code == 200
        if fmt != "json":
            bundle = download(client, rid, fmt, layout=layout)
            assert len(bundle.manifest["hosts"]) == hosts
        return len(statements)

    small = {variant: count(*variant, hosts=5) for variant in variants}
    _grow(client, rid, [f"n{i:02d}" for i in range(5, 60)])
    large = {variant: count(*variant, hosts=60) for variant in variants}
    assert large == small
    assert all(n <= 20 for n in small.values()), small


# --- secrets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ARCHIVES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_admin_gets_secret_files_0600_with_exact_content(client: Client, fleet: Body, fmt: str,
                                                          layout: str) -> None:
    """For a caller who may read secrets, every secret is a 0600 file holding its content
    byte for byte (every other file is 0644), and the answer is marked private, no-store."""
    bundle = download(client, fleet["region_id"], fmt, layout=layout)
    assert bundle.headers["Cache-Control"] == "private, no-store"
    prefix = "" if layout == "ansible" else "hosts/{host}/"
    expected = {}
    for path, secret in fleet["secrets"].items():
        host = path.split("/")[0]
        expected[prefix.format(host=host) + f"secrets/{path}"] = secret["content"].encode()
    if layout == "hosts":
        expected["hosts/c1/env/ssh_key"] = fleet["secrets"]["c1/ssh"]["content"].encode()
        expected["hosts/s1/env/ssh_key"] = fleet["secrets"]["s1/a-key"]["content"].encode()
    files = bundle.files
    assert {path: files.get(path) for path in expected} == expected
    for member in bundle.members:
        assert member.mode == (0o600 if member.path in expected else 0o644), member.path
    if fmt == "zip":
        for member in bundle.members:
            assert member.info.external_attr >> 16 == 0o100000 | member.mode, member.path


@pytest.mark.parametrize("fmt", ARCHIVES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("roles", ["member", "reader"])
def test_caller_without_secret_role_gets_no_secrets(client: Client, fleet: Body, fmt: str,
                                                    layout: str, roles: str) -> None:
    """A tenant member who may not read secrets gets the bundle without secret files, without
    env/ssh_key, without ansible_ssh_private_key_file, with the manifest saying secrets were
    omitted — and host variables still matching what that caller's resolved view shows."""
    tid = fleet["tenant_id"]
    bundle = download(client, fleet["region_id"], fmt, layout=layout, tenant=tid, roles=roles)
    assert bundle.manifest["secrets"] == "omitted"
    assert bundle.headers["Cache-Control"] == "private"
    for path in bundle.paths:
        assert "secrets/" not in path and not path.endswith("env/ssh_key"), path
        assert KEY_FILE_VAR.encode() not in bundle.files[path], path
    everything = b"".join(bundle.files.values())
    for secret in fleet["secrets"].values():
        assert secret["content"].encode() not in everything
    assert b"PRIVATE KEY" not in everything
    if layout == "hosts":
        for name, host_id in fleet["hosts"].items():
            assert bundle.json(f"hosts/{name}/inventory/host_vars/{name}.json") == \
                resolved(client, host_id, tenant=tid, roles=roles), name
    else:
        assert bundle.json("inventory/host_vars/c1.json") == {**C1_OWN, **C1_FIELDS}
    admin = download(client, fleet["region_id"], fmt, layout=layout)
    assert admin.etag != bundle.etag


@pytest.mark.parametrize("fmt", ARCHIVES)
def test_secret_reader_in_the_tenant_gets_the_secrets(client: Client, fleet: Body,
                                                      fmt: str) -> None:
    """A tenant caller with the secret-reader role gets the same bundle an admin gets."""
    scoped = download(client, fleet["region_id"], fmt, tenant=fleet["tenant_id"],
                      roles="secret-reader")
    admin = download(client, fleet["region_id"], fmt)
    assert scoped.manifest["secrets"] == "included"
    assert scoped.headers["Cache-Control"] == "private, no-store"
    assert scoped.raw == admin.raw
    assert scoped.files["hosts/c1/env/ssh_key"] == \
        fleet["secrets"]["c1/ssh"]["content"].encode()


# --- hostile names -------------------------------------------------------------------------------

HOSTILE = ["..", "../etc", "a/b", "a\\b", "..\\..\\x", "a\x00b", "/etc/passwd",
           "hosts/../../x", "x" * 300]


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n[:20]))
def test_hostile_host_names_are_refused_at_creation(client: Client, fleet: Body,
                                                    name: str) -> None:
    """A host name that could leave the bundle directory is refused on create (alone or in a
    batch) and on rename, naming the field; nothing is stored and bundles stay as they were."""
    rid = fleet["region_id"]
    before = download(client, rid, "tgz")
    alone = client.post(f"/v1/regions/{rid}/hosts", {"name": name})
    assert alone.status_code == 422
    assert set(error_of(alone)["fields"]) == {"name"}
    batch = client.post(f"/v1/regions/{rid}/hosts", [{"name": "fine"}, {"name": name}])
    assert batch.status_code == 422
    assert set(error_of(batch)["fields"]) == {"1.name"}
    rename = client.patch(f"/v1/hosts/{fleet['hosts']['lone']}", {"name": name})
    assert rename.status_code == 422
    assert set(error_of(rename)["fields"]) == {"name"}
    assert host_names(client, rid, {}) == ["c1", "c2", "lone", "s1"]
    after = download(client, rid, "tgz")
    assert after.raw == before.raw


STORED_HOSTILE = ["..", "../../etc/cron.d/x", "a/b", "a\\b", "a\x00b", "/etc/passwd",
                  "x" * 250, "hosts/../../x", "-rf", "a b"]


@pytest.mark.parametrize("name", STORED_HOSTILE, ids=lambda n: repr(n[:20]))
def test_hostile_name_written_behind_the_api_is_409_and_nothing_is_streamed(
        client: Client, fleet: Body, database: Database, name: str) -> None:
    """If a name that is not a safe path part reaches the database anyway, every bundle that
    selects that host is refused with a 409 naming it before a byte of archive is sent;
    renaming it through the API makes bundles work again."""
    rid, victim = fleet["region_id"], fleet["hosts"]["lone"]
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE hosts SET name = :name WHERE id = :id"),
                           {"name": name, "id": victim})
    for fmt in ("tgz", "zip", "json"):
        for layout in LAYOUTS:
            response = fetch(client, rid, fmt, layout=layout)
            assert response.status_code == 409, (fmt, layout, response.status_code)
            assert response.mimetype == "application/json"
            assert "Content-Disposition" not in response.headers
            assert "ETag" not in response.headers
            message = error_of(response)["message"]
            assert "host" in message
            assert name in message or repr(name) in message, message
    renamed = client.patch(f"/v1/hosts/{victim}", {"name": "lone"})
    assert renamed.status_code == 200, renamed.get_json()
    assert "hosts/lone/inventory/hosts.yml" in download(client, rid).paths


@pytest.mark.parametrize(("table", "row", "name"), [
    ("groups", "gpu", "../gpu"),
    ("groups", "gpu", "all"),
    ("secrets", "c1/ssh", "../../../../root/.ssh/id_ed25519"),
    ("secrets", "c1/db-password", ".."),
    ("regions", None, "dfw/../../x"),
])
def test_hostile_group_secret_or_region_name_in_the_database_is_409(
        client: Client, fleet: Body, database: Database, table: str, row: str | None,
        name: str) -> None:
    """A group, secret or region name written behind the API's back that is not a safe path
    part stops every bundle that would write it, with a 409 naming it."""
    ids = {"groups": fleet["groups"], "regions": {None: fleet["region_id"]},
           "secrets": {k: v["id"] for k, v in fleet["secrets"].items()}}
    with database.engine.begin() as connection:
        connection.execute(text(f"UPDATE {table} SET name = :name WHERE id = :id"),
                           {"name": name, "id": ids[table][row]})
    for fmt in ("tgz", "zip"):
        for layout in LAYOUTS:
            response = fetch(client, fleet["region_id"], fmt, layout=layout)
            assert response.status_code == 409, (fmt, layout, response.status_code)
            assert "Content-Disposition" not in response.headers
            message = error_of(response)["message"]
            assert table.rstrip("s") in message and repr(name) in message, message


# --- names and contents at the edges -------------------------------------------------------------

TRICKY_HOSTS = ["true", "null", "yes", "1.0", "007", "1e3", "10.0.0.1", "_",
                "h" * 34, "h" * 35, "a" * 74, "b" * 75, "c" * 76, "z" * 200]


def test_names_that_look_like_values_or_fill_the_limits_survive_every_format(
        client: Client, region: Body) -> None:
    """Valid names YAML would read as booleans, nulls or numbers, and names of up to 200
    characters (which push archive paths past tar's 100-byte name field), come out as the same
    names in hosts.yml, the JSON and the paths of both archives."""
    rid = region["id"]
    long_group = "g" * 200
    client.create(f"/v1/regions/{rid}/groups", {"name": long_group, "variables": {"x": 1}})
    client.create(f"/v1/regions/{rid}/groups", {"name": "on", "parents": [long_group]})
    created = client.create(f"/v1/regions/{rid}/hosts", [
        {"name": name, "groups": ["on"] if i % 2 else [long_group],
         "variables": {"name_again": name}} for i, name in enumerate(TRICKY_HOSTS)])["items"]
    client.create(f"/v1/hosts/{created[-1]['id']}/secrets",
                  {"name": "s" * 200, "kind": "password", "content": "long"})

    for layout in LAYOUTS:
        tgz = download(client, rid, "tgz", layout=layout)
        zipped = download(client, rid, "zip", layout=layout)
        assert [(m.path, m.data) for m in tgz.members] == \
            [(m.path, m.data) for m in zipped.members]
        assert sorted(h["name"] for h in tgz.manifest["hosts"]) == sorted(TRICKY_HOSTS)
        if layout == "ansible":
            members = hosts_in_yaml(tgz.yaml("inventory/hosts.yml"))
            assert members["all"] == set(TRICKY_HOSTS)
            assert members[long_group] == set(TRICKY_HOSTS)
            assert members["on"] == set(TRICKY_HOSTS[1::2])
            for name in TRICKY_HOSTS:
                assert tgz.json(f"inventory/host_vars/{name}.json") == {"name_again": name}
            assert tgz.json(f"inventory/group_vars/{long_group}.json") == {"x": 1}
            assert tgz.files[f"secrets/{'z' * 200}/{'s' * 200}"] == b"long"
        else:
            for name in TRICKY_HOSTS:
                inventory = tgz.yaml(f"hosts/{name}/inventory/hosts.yml")
                assert hosts_in_yaml(inventory)["all"] == {name}
                shown = tgz.json(f"hosts/{name}/inventory/host_vars/{name}.json")
                assert shown["name_again"] == name and shown["x"] == 1
    dynamic = json.loads(download(client, rid, "json").raw)
    assert set(dynamic["_meta"]["hostvars"]) == set(TRICKY_HOSTS)
    assert {name: dynamic["_meta"]["hostvars"][name]["name_again"]
            for name in TRICKY_HOSTS} == {name: name for name in TRICKY_HOSTS}


def test_large_secrets_span_many_stream_chunks_and_come_out_exact(
        client: Client, region: Body) -> None:
    """Secrets near the 256 KiB limit, whose archives are written in several pieces, come out
    byte for byte in both archives; the tar inside the gzip is whole records long, as tar
    tools expect."""
    rid = region["id"]
    rng = random.Random(7)
    contents: dict[str, str] = {}
    for i in range(4):
        host = client.create(f"/v1/regions/{rid}/hosts", {"name": f"big{i}"})
        content = "".join(rng.choices(string.ascii_letters + string.digits, k=250_000 + i))
        client.create(f"/v1/hosts/{host['id']}/secrets",
                      {"name": "blob", "kind": "opaque", "content": content})
        contents[f"secrets/big{i}/blob"] = content
    for fmt in ARCHIVES:
        bundle = download(client, rid, fmt, layout="ansible")
        assert {path: bundle.files[path].decode() for path in contents} == contents
        assert download(client, rid, fmt, layout="ansible").raw == bundle.raw
        if fmt == "tgz":
            assert len(gzip.decompress(bundle.raw)) % 10240 == 0


@pytest.mark.parametrize("fmt", ["tgz", "zip", "json"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_empty_region_gives_an_empty_but_valid_bundle(client: Client, region: Body,
                                                         fmt: str, layout: str) -> None:
    """A region without hosts or groups still gives a bundle: its manifest (and, in the
    ansible layout, an inventory with nothing in it), or a JSON inventory without hosts."""
    bundle = download(client, region["id"], fmt, layout=layout)
    if fmt == "json":
        inventory = json.loads(bundle.raw)
        assert inventory["_meta"] == {"hostvars": {}}
        assert inventory["all"]["hosts"] == []
        return
    assert bundle.paths[-1] == "manifest.json"
    assert bundle.manifest["hosts"] == [] and bundle.manifest["groups"] == []
    assert bundle.manifest["dependency_order"] == []
    if layout == "ansible":
        assert bundle.paths == ["inventory/hosts.yml", "manifest.json"]
        assert hosts_in_yaml(bundle.yaml("inventory/hosts.yml")) == {"all": set()}
    else:
        assert bundle.paths == ["manifest.json"]


# --- Ansible reads the JSON as the API resolves it ----------------------------------------------

@pytest.fixture
def own_app(tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    """An app of its own on SQLite (these tests run Ansible), with the directory below which
    each tenant's file:// references may read its own <tenant id>/ directory."""
    db = Database(f"sqlite:///{tmp_path}/craton.db")
    migrate.upgrade(db.engine)
    app = create_app(make_settings(tmp_path), database=db)
    yield Client(app.test_client()), tmp_path / "data" / "sources"
    db.dispose()


def ansible_hostvars(inventory: Path, work: Path) -> Body:
    """Every host's variables as ansible-inventory --list reads ``inventory``; a source it
    cannot parse is a failure, not a warning."""
    env = {**os.environ, "ANSIBLE_HOME": str(work / "ansible-home"),
           "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}
    env.pop("ANSIBLE_CONFIG", None)
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"),
                           "-i", str(inventory), "--list"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)["_meta"]["hostvars"]


PRIORITY_CASES = {
    "an integer": ({"ansible_group_priority": 5}, None),
    "a referenced file": ({}, "ansible_group_priority: 9\nfrom_ref: yes-ref\n"),
}


@pytest.mark.parametrize("priority", ["5", 5.5, "high", True, None, [1]])
def test_a_group_priority_must_be_an_integer(client: Client, fleet: Body, priority: Any) -> None:
    """Ansible orders a host's groups by ansible_group_priority and int()s it: anything but an
    integer on a group is refused where it is written, naming the variable, and changes
    nothing."""
    group_id = fleet["groups"]["compute"]
    before = client.get(f"/v1/groups/{group_id}/variables").get_json()
    for method, url, body in (
            ("PATCH", f"/v1/groups/{group_id}/variables", {"variables": {
                "ansible_group_priority": priority}}),
            ("PUT", f"/v1/groups/{group_id}/variables", {"variables": {
                "ansible_group_priority": priority}}),
            ("POST", f"/v1/regions/{fleet['region_id']}/groups", {
                "name": "prio", "variables": {"ansible_group_priority": priority}})):
        if method == "PATCH" and priority is None:
            continue  # null in a merge deletes the key: nothing to refuse
        response = client.request(method, url, body)
        assert response.status_code == 422, (method, priority)
        assert set(error_of(response)["fields"]) == {"variables.ansible_group_priority"}
    assert client.get(f"/v1/groups/{group_id}/variables").get_json() == before


@pytest.mark.parametrize("case", PRIORITY_CASES)
def test_ansible_reading_the_json_sees_the_resolved_variables(
        own_app: tuple[Client, Path], tmp_path: Path, case: str) -> None:
    """ansible-inventory, running the .json as an inventory script, gives every host exactly
    the variables GET /v1/hosts/{id}/variables?resolved=true shows — and so do the ansible
    layout's files — whatever group "a" holds as ansible_group_priority (its own setting, or a
    referenced file's) while its sibling "b" sets the same variable."""
    client, sources = own_app
    extra, reference = PRIORITY_CASES[case]
    tenant = client.create("/v1/tenants", {"name": "acme"})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions",
                           {"name": "dfw", "variables": {"x": "region", "r": 1}})
    rid = region["id"]
    a = client.create(f"/v1/regions/{rid}/groups", {"name": "a", "variables": {"x": "a",
                                                                                **extra}})
    client.create(f"/v1/regions/{rid}/groups", {"name": "b", "variables": {"x": "b"}})
    client.create(f"/v1/regions/{rid}/groups", {"name": "c", "parents": ["a"],
                                                 "variables": {"y": "c"}})
    if reference is not None:
        own = sources / str(tenant["id"])
        own.mkdir(parents=True)
        (own / "prio.yml").write_text(reference)
        client.create(f"/v1/groups/{a['id']}/references",
                      {"name": "prio", "url": f"file://{own}/prio.yml"})
    hosts = {h["name"]: h["id"] for h in client.create(f"/v1/regions/{rid}/hosts", [
        {"name": "h1", "groups": ["a", "b"]}, {"name": "h2", "groups": ["c"]},
        {"name": "h3", "variables": {"x": "own"}}])["items"]}
    expected = {name: resolved(client, host_id) for name, host_id in hosts.items()}

    script = tmp_path / "inventory.sh"
    document = tmp_path / "inventory.json"
    document.write_bytes(download(client, rid, "json").raw)
    script.write_text(f"#!/bin/sh\nexec cat '{document}'\n")
    script.chmod(0o755)
    from_json = ansible_hostvars(script, tmp_path)

    flat = tmp_path / "flat"
    flat.mkdir()
    with tarfile.open(fileobj=io.BytesIO(download(client, rid, "tgz", layout="ansible").raw),
                      mode="r:gz") as archive:
        archive.extractall(flat, filter="data")
    from_files = ansible_hostvars(flat / "inventory" / "hosts.yml", tmp_path)

    assert from_files == expected
    assert from_json == expected
