"""The proof that Craton resolves variables exactly as Ansible does, and that bundles run as
they are: random fleets (group DAGs, shared keys at every level, sibling groups, priorities,
host fields) are built through the API, every layout of their bundle is handed to Ansible's own
``ansible-inventory``, and Ansible's view of each host must equal the API's resolved variables.
Then real playbooks run on extracted bundles with ansible-playbook and ansible-runner.

These run Ansible many times, so they use one SQLite-backed app of their own.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from craton.api import create_app
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import Client, make_settings

KEYS = ["alpha", "beta", "gamma", "delta", "epsilon"]
CONTESTED = ["alpha", "beta", "gamma"]
"""Few keys, so values set at several levels collide and the merge order decides."""
GROUP_NAMES = ["web", "db", "app", "edge", "core", "zeta", "mid", "base"]
SCALARS = st.one_of(st.integers(-5, 5), st.text("abcxyz", min_size=0, max_size=4),
                    st.booleans(), st.none(), st.floats(0.5, 2.5, allow_nan=False))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["k", "v"]), inner,
                                                 max_size=2)), max_leaves=4)
VARIABLES = st.dictionaries(st.sampled_from(CONTESTED), VALUES, max_size=3)


@pytest.fixture(scope="module")
def ansible_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    tmp = tmp_path_factory.mktemp("equivalence")
    db = Database(f"sqlite:///{tmp / 'craton.db'}")
    migrate.upgrade(db.engine)
    yield Client(create_app(make_settings(tmp), database=db).test_client())
    db.dispose()


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, len(GROUP_NAMES)))
    names = draw(st.permutations(GROUP_NAMES))[:count]
    groups = []
    for index, name in enumerate(names):
        parents = [names[j] for j in range(index) if draw(st.booleans())]
        variables = draw(VARIABLES)
        if draw(st.booleans()):
            variables["ansible_group_priority"] = draw(st.integers(0, 3))
        groups.append({"name": name, "parents": parents, "variables": variables})
    hosts = []
    for index in range(draw(st.integers(1, 5))):
        host: dict[str, Any] = {
            "name": f"host-{index}",
            "groups": draw(st.lists(st.sampled_from(names), unique=True, max_size=4)),
            "variables": draw(VARIABLES),
        }
        if draw(st.booleans()):
            host["ip_address"] = f"192.0.2.{index + 1}"
        if draw(st.booleans()):
            host["ssh_user"] = draw(st.sampled_from(["root", "ubuntu"]))
        if draw(st.integers(0, 4)) == 0:
            host["variables"]["ansible_host"] = "override.example"
        hosts.append(host)
    return {"region_vars": draw(VARIABLES), "groups": groups, "hosts": hosts}


def create_fleet(client: Client, fleet: dict[str, Any]) -> tuple[int, dict[str, int]]:
    # A fresh name per example: id() of a collected fleet comes back for a later one.
    tenant = client.create("/v1/tenants", {"name": f"t-{uuid.uuid4().hex}"})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions",
                           {"name": "r", "variables": fleet["region_vars"]})
    for group in fleet["groups"]:
        client.create(f"/v1/regions/{region['id']}/groups", group)
    created = client.post(f"/v1/regions/{region['id']}/hosts", fleet["hosts"])
    assert created.status_code == 201, created.get_json()
    return region["id"], {h["name"]: h["id"] for h in created.get_json()["items"]}


def resolved(client: Client, host_ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The API's resolved variables of every host, as ansible-inventory shows them: a host
    without any is left out."""
    found = {}
    for name, host_id in host_ids.items():
        response = client.get(f"/v1/hosts/{host_id}/variables?resolved=true")
        assert response.status_code == 200, response.get_json()
        if response.get_json()["variables"]:
            found[name] = response.get_json()["variables"]
    return found


def extract(client: Client, url: str, target: Path) -> Path:
    response = client.get(url)
    assert response.status_code == 200, response.get_data()[:500]
    with tarfile.open(fileobj=io.BytesIO(response.get_data())) as archive:
        archive.extractall(target, filter="data")
    return target


def ansible_hostvars(*sources: Path | str) -> dict[str, dict[str, Any]]:
    """What Ansible itself makes of the inventory sources: ``ansible-inventory --list``
    (which leaves a host without variables out of ``_meta.hostvars``)."""
    command = ["ansible-inventory", "--list"]
    for source in sources:
        command += ["-i", str(source)]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**_ansible_env(), "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"})
    return json.loads(done.stdout)["_meta"]["hostvars"]


def _ansible_env() -> dict[str, str]:
    import os

    return {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1"}


def _group(name: str, parents: list[str], priority: int | None = None,
           **variables: Any) -> dict[str, Any]:
    if priority is not None:
        variables["ansible_group_priority"] = priority
    return {"name": name, "parents": parents, "variables": variables}


# Shapes where the order is easy to get wrong, always tried before the random ones.
SIBLINGS_PRIORITY_BEATS_NAME = {"region_vars": {"alpha": "region"}, "groups": [
    _group("aa", [], 5, alpha="aa"), _group("bb", [], None, alpha="bb")],
    "hosts": [{"name": "host-0", "groups": ["aa", "bb"], "variables": {}}]}
DEPTH_BEATS_PRIORITY = {"region_vars": {}, "groups": [
    _group("top", [], 9, alpha="top", beta="top"), _group("leaf", ["top"], 0, alpha="leaf"),
    _group("other", [], 0, beta="other")],
    "hosts": [{"name": "host-0", "groups": ["leaf", "other"], "variables": {}}]}
DIAMOND_AND_HOST_FIELDS = {"region_vars": {"gamma": 1}, "groups": [
    _group("base", [], None, alpha="base", gamma=2), _group("left", ["base"], 2, alpha="l"),
    _group("right", ["base"], 1, alpha="r", beta="r"), _group("zeta", ["left", "right"])],
    "hosts": [{"name": "host-0", "groups": ["zeta"], "ip_address": "192.0.2.9",
               "ssh_user": "ops", "variables": {"beta": "host"}},
              {"name": "host-1", "groups": [], "variables": {"ansible_host": "x.example"},
               "ip_address": "192.0.2.10"}]}


QUOTES_IN_KEYS = {"region_vars": {'a"b': "region", "a\\b": 1}, "groups": [
    _group("web", [], 2, **{'a"b': "web", '\\"': ['"', "\\"]})],
    "hosts": [{"name": "host-0", "groups": ["web"], "variables": {"a\\b": {'k"\\': "host"}}},
              {"name": "host-1", "groups": [], "variables": {}}]}


# Five random fleets beside the examples: tests/integration/test_fidelity.py checks every
# layout of 200 more against Ansible through a long-lived helper, at a fraction of the cost.
@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(fleet=SIBLINGS_PRIORITY_BEATS_NAME)
@example(fleet=DEPTH_BEATS_PRIORITY)
@example(fleet=DIAMOND_AND_HOST_FIELDS)
@example(fleet=QUOTES_IN_KEYS)
@example(fleet={"region_vars": {}, "groups": [_group("web", [])],
                "hosts": [{"name": "host-0", "groups": [], "variables": {}}]})
@given(fleet=fleets())
def test_every_layout_gives_ansible_the_apis_resolved_variables(
        ansible_app: Client, tmp_path_factory: pytest.TempPathFactory,
        fleet: dict[str, Any]) -> None:
    """For a random fleet, Ansible's view of every host — from the aggregate bundle, from the
    per-host bundles and from the dynamic-inventory JSON — is exactly GET …?resolved=true."""
    region_id, host_ids = create_fleet(ansible_app, fleet)
    expected = resolved(ansible_app, host_ids)
    work = tmp_path_factory.mktemp("fleet")

    aggregate = extract(ansible_app, f"/v1/inventory/{region_id}.tgz?layout=ansible",
                        work / "ansible")
    assert ansible_hostvars(aggregate / "inventory") == expected

    per_host = extract(ansible_app, f"/v1/inventory/{region_id}.tgz", work / "hosts")
    sources = sorted((per_host / "hosts").glob("*/inventory"))
    assert len(sources) == len(fleet["hosts"])
    assert ansible_hostvars(*sources) == expected

    script = work / "inventory.sh"
    document = work / "inventory.json"
    document.write_bytes(ansible_app.get(f"/v1/inventory/{region_id}.json").get_data())
    script.write_text(f"#!/bin/sh\ncat '{document}'\n")
    script.chmod(0o755)
    assert ansible_hostvars(script) == expected


def test_a_larger_fleet_agrees_with_ansible(ansible_app: Client, tmp_path: Path) -> None:
    """300 hosts in a 4-level tree of 40 groups with priorities and shared keys everywhere."""
    groups = []
    for level in range(4):
        for index in range(10):
            name = f"l{level}_{index}"
            parents = [f"l{level - 1}_{(index + k) % 10}" for k in (0, 3)] if level else []
            variables = {KEYS[(index + level) % 5]: f"{name}", "shared": level * 10 + index}
            if index % 4 == 0:
                variables["ansible_group_priority"] = index % 3
            groups.append({"name": name, "parents": parents, "variables": variables})
    hosts = [{"name": f"h{i:03d}", "groups": [f"l3_{i % 10}", f"l1_{i % 7}"][: 1 + i % 2],
              "variables": {KEYS[i % 5]: i} if i % 3 else {}} for i in range(300)]
    region_id, host_ids = create_fleet(
        ansible_app, {"region_vars": {k: "region" for k in KEYS}, "groups": groups,
                      "hosts": hosts})
    expected = resolved(ansible_app, host_ids)
    aggregate = extract(ansible_app, f"/v1/inventory/{region_id}.tgz?layout=ansible",
                        tmp_path / "bundle")
    assert ansible_hostvars(aggregate / "inventory") == expected


PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: record what this host sees
      ansible.builtin.copy:
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        content: "{{ {'role': role, 'zone': zone, 'groups': group_names} | to_json }}"
"""


@pytest.fixture(scope="module")
def local_fleet(ansible_app: Client, tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, Any]:
    """Three hosts on Ansible's local connection, in two groups, one with an SSH key."""
    tenant = ansible_app.create("/v1/tenants", {"name": "local"})
    region = ansible_app.create(f"/v1/tenants/{tenant['id']}/regions", {
        "name": "local", "variables": {
            "ansible_connection": "local", "zone": "region-zone",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}})
    rid = region["id"]
    ansible_app.create(f"/v1/regions/{rid}/groups", {"name": "cloud",
                                                    "variables": {"role": "generic"}})
    ansible_app.create(f"/v1/regions/{rid}/groups", {"name": "compute", "parents": ["cloud"],
                                                    "variables": {"role": "compute"}})
    created = ansible_app.post(f"/v1/regions/{rid}/hosts", [
        {"name": "c1", "groups": ["compute"], "variables": {"zone": "az1"}},
        {"name": "c2", "groups": ["compute"]},
        {"name": "s1", "groups": ["cloud"]},
    ]).get_json()["items"]
    keys = tmp_path_factory.mktemp("keys")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "k")],
                   check=True)
    ansible_app.create(f"/v1/hosts/{created[0]['id']}/secrets", {
        "name": "ssh", "kind": "ssh_private_key", "content": (keys / "k").read_text()})
    return {"region_id": rid, "expected": {
        "c1": {"role": "compute", "zone": "az1", "groups": ["cloud", "compute"]},
        "c2": {"role": "compute", "zone": "region-zone", "groups": ["cloud", "compute"]},
        "s1": {"role": "generic", "zone": "region-zone", "groups": ["cloud"]},
    }}


def read_outputs(out: Path) -> dict[str, Any]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(out.glob("*.json"))}


def test_ansible_playbook_runs_the_aggregate_bundle_as_is(
        ansible_app: Client, local_fleet: dict[str, Any], tmp_path: Path) -> None:
    """Extract ?layout=ansible, run ansible-playbook -i inventory/ on it: every host runs
    with the variables Craton resolved (and the SSH key wiring does not get in the way)."""
    bundle = extract(ansible_app, f"/v1/inventory/{local_fleet['region_id']}.tgz"
                                  "?layout=ansible", tmp_path / "bundle")
    assert (bundle / "secrets" / "c1" / "ssh").stat().st_mode & 0o777 == 0o600
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(["ansible-playbook", "-i", str(bundle / "inventory"),
                           str(tmp_path / "play.yml"), "-e", f"out_dir={out}"],
                          capture_output=True, text=True, env=_ansible_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert read_outputs(out) == local_fleet["expected"]


def test_ansible_runner_runs_each_host_bundle_as_is(
        ansible_app: Client, local_fleet: dict[str, Any], tmp_path: Path) -> None:
    """Extract the default layout and ansible-runner run each hosts/<name> directory, the key
    holder's env/ssh_key included: each run touches only its own host."""
    bundle = extract(ansible_app, f"/v1/inventory/{local_fleet['region_id']}.tgz",
                     tmp_path / "bundle")
    assert (bundle / "hosts" / "c1" / "env" / "ssh_key").is_file()
    out = tmp_path / "out"
    out.mkdir()
    for host in ("c1", "c2", "s1"):
        private = bundle / "hosts" / host
        (private / "project").mkdir()
        (private / "project" / "play.yml").write_text(PLAYBOOK)
        done = subprocess.run(
            ["ansible-runner", "run", str(private), "-p", "play.yml", "--cmdline",
             f"-e out_dir={out}"], capture_output=True, text=True, env=_ansible_env())
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert set(read_outputs(out)) <= {"c1", "c2", "s1"}
        assert host in read_outputs(out)
    assert read_outputs(out) == local_fleet["expected"]
