"""Import: an Ansible inventory goes in through POST /v1/regions/{id}/import, and Ansible's own
``ansible-inventory --list`` over the region's bundle (layout=ansible) equals
``ansible-inventory --list`` over the original — groups, direct hosts, children and every
host's variables. Proven on kolla-ansible's multinode example, a directory inventory with
group_vars/ and host_vars/, dynamic-inventory JSON and random inventories. Also the contract of
the one adapter into ansible-core (craton.inventory.importer): nothing an inventory says runs.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from craton.api import create_app
from craton.cmd import manage
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import Client, error_of, make_settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "inventories"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, str, Path]]:
    tmp = tmp_path_factory.mktemp("import")
    url = f"sqlite:///{tmp / 'craton.db'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    yield Client(create_app(make_settings(tmp), database=db).test_client()), url, tmp
    db.dispose()


@pytest.fixture
def api(world: tuple[Client, str, Path]) -> Client:
    return world[0]


def new_region(client: Client) -> int:
    tenant = client.create("/v1/tenants", {"name": f"t-{uuid.uuid4().hex}"})
    return client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "r"})["id"]


def ansible_list(*sources: Path) -> dict[str, Any]:
    """Ansible's view: each group's direct hosts and children (``all``'s included), and each
    host's variables."""
    command = ["ansible-inventory", "--list"]
    for source in sources:
        command += ["-i", str(source)]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
                               "ANSIBLE_NOCOLOR": "1"})
    listed = json.loads(done.stdout)
    hostvars = listed.pop("_meta")["hostvars"]
    groups = {name: (sorted(body.get("hosts", [])), sorted(body.get("children", [])))
              for name, body in listed.items()}
    return {"groups": groups, "hostvars": hostvars}


def bundle_view(client: Client, region_id: int, target: Path) -> dict[str, Any]:
    response = client.get(f"/v1/inventory/{region_id}.tgz?layout=ansible")
    assert response.status_code == 200, response.get_data()[:500]
    with tarfile.open(fileobj=io.BytesIO(response.get_data())) as archive:
        archive.extractall(target, filter="data")
    return ansible_list(target / "inventory")


def import_(client: Client, region_id: int, body: dict[str, Any], query: str = "") -> Any:
    return client.post(f"/v1/regions/{region_id}/import{query}", body)


def directory_files(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): path.read_text()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_kolla_multinode_round_trips(api: Client, tmp_path: Path) -> None:
    """kolla-ansible's example: 158 groups besides all (98 with '-' in their name), 8 hosts."""
    source = FIXTURES / "kolla-multinode.ini"
    original = ansible_list(source)
    assert len(original["groups"]) == 159
    rid = new_region(api)
    response = import_(api, rid, {"format": "ini", "content": source.read_text()})
    assert response.status_code == 200, response.get_json()
    plan = response.get_json()
    assert len(plan["groups"]["created"]) == 158 and len(plan["hosts"]["created"]) == 8
    assert bundle_view(api, rid, tmp_path) == original


def test_all_holds_only_top_level_groups(api: Client, tmp_path: Path) -> None:
    """hosts.yml lists under ``all`` only the groups without parents, as Ansible does; the
    others sit under their parents (kolla's groups nest up to four deep, with diamonds)."""
    source = FIXTURES / "kolla-multinode.ini"
    rid = new_region(api)
    assert import_(api, rid, {"format": "ini", "content": source.read_text()}).status_code == 200
    view = bundle_view(api, rid, tmp_path)
    assert view["groups"]["all"] == ansible_list(source)["groups"]["all"]
    assert len(view["groups"]["all"][1]) < len(view["groups"]) - 1


def test_a_one_host_region_keeps_its_other_groups(api: Client, tmp_path: Path) -> None:
    """A region of one host: layout=ansible and the .json still hold every group and edge
    (the empty ``db`` and ``spare`` too). layout=hosts is each host's own inventory: the
    groups that hold the host, with their edges."""
    source = tmp_path / "one.ini"
    source.write_text("[web]\nw1\n[db]\n[site:children]\nweb\ndb\n[spare]\n")
    rid = new_region(api)
    assert import_(api, rid, {"format": "ini", "content": source.read_text()}).status_code == 200
    original = ansible_list(source)
    assert bundle_view(api, rid, tmp_path / "bundle") == original
    script = tmp_path / "inventory.sh"
    document = tmp_path / "inventory.json"
    document.write_bytes(api.get(f"/v1/inventory/{rid}.json").get_data())
    script.write_text(f"#!/bin/sh\ncat '{document}'\n")
    script.chmod(0o755)
    assert ansible_list(script) == original
    response = api.get(f"/v1/inventory/{rid}.tgz?layout=hosts")
    with tarfile.open(fileobj=io.BytesIO(response.get_data())) as archive:
        archive.extractall(tmp_path / "hosts", filter="data")
    own = ansible_list(tmp_path / "hosts" / "hosts" / "w1" / "inventory")
    assert own == {**original, "groups": {
        "all": ([], ["site", "ungrouped"]), "site": ([], ["web"]), "web": (["w1"], [])}}


def test_directory_inventory_round_trips(api: Client, tmp_path: Path) -> None:
    """YAML inventory + group_vars (a file, a directory, a .yaml) + host_vars (YAML, JSON):
    group and host variables, dotted and unicode keys, dates, big integers, templates kept
    as text."""
    source = FIXTURES / "site"
    original = ansible_list(source)
    rid = new_region(api)
    response = import_(api, rid, {"format": "directory", "files": directory_files(source)})
    assert response.status_code == 200, response.get_json()
    assert bundle_view(api, rid, tmp_path) == implicit_all(original)


def implicit_all(view: dict[str, Any]) -> dict[str, Any]:
    """``view`` without the edges from ``all`` to groups that have another parent.

    hosts.yml of the fixture names ``control`` under ``all`` and under ``nova-api``, and
    Ansible keeps both edges; the one from ``all`` changes no membership, depth or variable
    (a group is in ``all`` anyway, and its depth is its longest path). Craton holds a region,
    not an ``all`` group with edges of its own, so it lists under ``all`` the groups without
    parents, as Ansible does for an inventory that does not name them there."""
    groups = view["groups"]
    parented = {child for name, (_, children) in groups.items() if name != "all"
                for child in children}
    hosts, children = groups["all"]
    return {**view, "groups": {**groups, "all": (hosts, [c for c in children
                                                         if c not in parented])}}


def test_dynamic_inventory_json_round_trips(api: Client, tmp_path: Path) -> None:
    script_output = {
        "web": {"hosts": ["w1", "w2"], "vars": {"http_port": 80}},
        "edge-lb": ["lb1"],
        "site": {"children": ["web", "edge-lb"], "vars": {"dc": "dfw"}},
        "_meta": {"hostvars": {"w1": {"weight": 3}, "lb1": {"vip": "192.0.2.9"}}},
    }
    source = tmp_path / "inventory.yml"
    yaml_text = json.dumps({"all": {"children": {
        "site": {"vars": {"dc": "dfw"}, "children": {
            "web": {"vars": {"http_port": 80}, "hosts": {"w1": {"weight": 3}, "w2": None}},
            "edge-lb": {"hosts": {"lb1": {"vip": "192.0.2.9"}}}}}}}})
    source.write_text(yaml_text)
    original = ansible_list(source)
    rid = new_region(api)
    response = import_(api, rid, {"format": "json", "content": json.dumps(script_output)})
    assert response.status_code == 200, response.get_json()
    assert bundle_view(api, rid, tmp_path / "bundle") == original


def test_dry_run_plans_and_changes_nothing(api: Client) -> None:
    rid = new_region(api)
    body = {"format": "ini", "content": "[web]\nw1 a=1\n[all:vars]\nx=2\n"}
    planned = import_(api, rid, body, "?dry_run=true")
    assert planned.status_code == 200, planned.get_json()
    assert planned.get_json() == {
        "dry_run": True, "region": {"variables_changed": True},
        "groups": {"created": ["web"], "changed": []},
        "hosts": {"created": ["w1"], "changed": []}, "ignored_variables": {}}
    assert api.get(f"/v1/regions/{rid}/hosts").get_json()["items"] == []
    assert api.get(f"/v1/regions/{rid}/groups").get_json()["items"] == []
    assert api.get(f"/v1/regions/{rid}").get_json()["variables"] == {}
    done = import_(api, rid, body)
    assert done.get_json() == {**planned.get_json(), "dry_run": False}
    again = import_(api, rid, body | {"content": "[web]\nw1 a=1\nw2\n[all:vars]\nx=2\n"})
    assert again.get_json()["hosts"] == {"created": ["w2"], "changed": []}
    assert again.get_json()["groups"] == {"created": [], "changed": []}


def test_reserved_variables_are_ignored_and_said(api: Client) -> None:
    """Variables Ansible sets itself are not imported (Ansible ignores them too); the plan
    names them."""
    rid = new_region(api)
    response = import_(api, rid, {"format": "ini",
                                  "content": "[web]\nw1 groups=x ok=1\n[web:vars]\nhostvars=1\n"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["ignored_variables"] == {"w1": ["groups"], "web": ["hostvars"]}


def test_null_values_are_values(api: Client, tmp_path: Path) -> None:
    """A variable whose value is null is a variable to Ansible: imported as one into a new
    region and over existing objects alike (an import is no JSON merge patch)."""
    source = tmp_path / "inventory.yml"
    source.write_text(json.dumps({"all": {"vars": {"n": None}, "children": {"web": {
        "vars": {"n": None}, "hosts": {"w1": {"n": None}}}}}}))
    original = ansible_list(source)
    assert original["hostvars"] == {"w1": {"n": None}}
    rid = new_region(api)
    for attempt in ("new", "existing"):
        response = import_(api, rid, {"format": "yaml", "content": source.read_text()})
        assert response.status_code == 200, response.get_json()
        assert bundle_view(api, rid, tmp_path / attempt) == original
        assert api.get(f"/v1/regions/{rid}").get_json()["variables"] == {"n": None}


def test_alls_priority_is_not_a_region_variable(api: Client, tmp_path: Path) -> None:
    """``ansible_group_priority`` set on ``all`` in the inventory is that group's priority, no
    host's variable (and it orders nothing): not imported, and said. In group_vars/all it is
    an ordinary variable, and stays one."""
    source = tmp_path / "inventory"
    (source / "group_vars").mkdir(parents=True)
    (source / "hosts.ini").write_text("[all:vars]\nansible_group_priority=3\nx=1\n[web]\nw1\n")
    rid = new_region(api)
    response = import_(api, rid, {"format": "directory", "files": directory_files(source)})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["ignored_variables"] == {"all": ["ansible_group_priority"]}
    assert bundle_view(api, rid, tmp_path / "bundle") == ansible_list(source)

    (source / "group_vars" / "all.yml").write_text("ansible_group_priority: 5\n")
    rid = new_region(api)
    response = import_(api, rid, {"format": "directory", "files": directory_files(source)})
    assert response.status_code == 200, response.get_json()
    assert api.get(f"/v1/regions/{rid}").get_json()["variables"] == {
        "ansible_group_priority": 5, "x": 1}
    assert bundle_view(api, rid, tmp_path / "bundle-2") == ansible_list(source)


@pytest.mark.parametrize(("body", "field"), [
    ({"format": "ini", "content": "[all]\nall\n"}, "content"),
    ({"format": "ini", "content": "[web]\nweb\n"}, "0.name"),
    ({"format": "ini", "content": "[web]\nCaseHost\ncasehost\n"}, "1.name"),
    ({"format": "yaml", "content": "plugin: ansible.builtin.constructed\n"}, "content"),
    ({"format": "yaml", "content": "all:\n  hosts:\n    h:\n      v: !vault |\n"
                                   "        $ANSIBLE_VAULT;1.1;AES256\n        6162\n"},
     "content"),
    ({"format": "directory", "files": {"../x": "[a]\n"}}, "files.../x"),
    ({"format": "directory", "files": {"/etc/x": "[a]\n"}}, "files./etc/x"),
    ({"format": "json", "content": "[1]"}, "content"),
    ({"format": "ini"}, "content"),
])
def test_what_ansible_misreads_or_craton_refuses_is_422(api: Client, body: dict[str, Any],
                                                       field: str) -> None:
    rid = new_region(api)
    response = import_(api, rid, body)
    assert response.status_code == 422, response.get_json()
    assert field in error_of(response)["fields"], error_of(response)
    assert api.get(f"/v1/regions/{rid}/hosts").get_json()["items"] == []
    assert api.get(f"/v1/regions/{rid}/groups").get_json()["items"] == []


def test_nothing_an_inventory_says_is_run(api: Client, tmp_path: Path) -> None:
    """A script inventory is text to Craton: an executable-looking file, a plugin
    configuration and a template that would run a command all fail or stay text."""
    marker = tmp_path / "ran"
    rid = new_region(api)
    script = f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n"
    response = import_(api, rid, {"format": "directory", "files": {"inventory.sh": script}})
    assert response.status_code == 422
    template = f"{{{{ lookup('pipe', 'touch {marker}') }}}}"
    response = import_(api, rid, {"format": "ini", "content": f'[web]\nw1 x="{template}"\n'})
    assert response.status_code == 200, response.get_json()
    host = api.get(f"/v1/regions/{rid}/hosts").get_json()["items"][0]
    assert host["variables"] == {"x": template}
    assert not marker.exists()


def test_another_tenants_caller_cannot_import(api: Client) -> None:
    rid = new_region(api)
    other = api.create("/v1/tenants", {"name": f"t-{uuid.uuid4().hex}"})
    response = api.post(f"/v1/regions/{rid}/import", {"format": "ini", "content": "[a]\nh\n"},
                        tenant=other["id"], roles="admin")
    assert response.status_code == 404


def test_manage_import(world: tuple[Client, str, Path], capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """craton-manage import REGION PATH: a file (format from its suffix) or a directory."""
    client, url, _ = world
    rid = new_region(client)
    monkeypatch.setenv("CRATON_DATABASE_URL", url)
    monkeypatch.setenv("CRATON_DEFAULT_DATA_DIR", str(tmp_path))
    assert manage.main(["import", str(rid), str(FIXTURES / "site"), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["dry_run"] is True
    assert client.get(f"/v1/regions/{rid}/hosts").get_json()["items"] == []
    assert manage.main(["import", str(rid), str(FIXTURES / "site")]) == 0
    assert len(json.loads(capsys.readouterr().out)["hosts"]["created"]) == 5
    assert manage.main(["import", str(rid + 10**6), str(FIXTURES / "site")]) == 1


NAMES = st.sampled_from(["web", "db", "nova-api", "ceph.osd", "1st", "caf\u00e9", "g_x",
                         "neutron-l3-agent", "\u8ba1\u7b97"])
VALUES = st.recursive(
    st.one_of(st.integers(-10**20, 10**20), st.text("abc:{} #", max_size=6), st.booleans(),
              st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["k", "a.b", "x-y"]), inner,
                                            max_size=2)), max_leaves=5)
VARS = st.dictionaries(st.sampled_from(["alpha", "beta", "a.b", "with-dash", "\u00e9t\u00e9"]),
                       VALUES, max_size=3)


@st.composite
def inventories(draw: st.DrawFn) -> dict[str, Any]:
    """A YAML inventory: a DAG of groups (each may list earlier ones as children), hosts in
    several groups, variables at every level. As people write them: a group sits under
    ``all`` only if it has no parent, its body under one of its parents (the last) and its
    name alone under the others."""
    names = draw(st.lists(NAMES, unique=True, min_size=1, max_size=6))
    hosts = [f"h{index}.example" for index in range(draw(st.integers(1, 4)))]
    bodies: dict[str, dict[str, Any]] = {}
    parents: dict[str, list[str]] = {name: [] for name in names}
    for index, name in enumerate(names):
        body: dict[str, Any] = {}
        kids = [names[j] for j in range(index) if draw(st.booleans())]
        for kid in kids:
            parents[kid].append(name)
        members = draw(st.lists(st.sampled_from(hosts), unique=True, max_size=3))
        if members:
            body["hosts"] = {host: draw(VARS) or None for host in members}
        if variables := draw(VARS):
            body["vars"] = variables
        bodies[name] = body
    for name in names:
        for parent in parents[name]:
            bodies[parent].setdefault("children", {})[name] = \
                bodies[name] or None if parent == parents[name][-1] else None
    top: dict[str, Any] = {"children": {name: bodies[name] or None for name in names
                                        if not parents[name]}}
    if variables := draw(VARS):
        top["vars"] = variables
    return {"all": top}


# Ten here: tests/integration/test_fidelity.py imports fifty more fleets of its own.
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(inventory=inventories())
def test_random_inventories_round_trip(api: Client, tmp_path_factory: pytest.TempPathFactory,
                                       inventory: dict[str, Any]) -> None:
    scratch = tmp_path_factory.mktemp("random")
    source = scratch / "inventory.yml"
    source.write_text(json.dumps(inventory))
    original = ansible_list(source)
    rid = new_region(api)
    response = import_(api, rid, {"format": "yaml", "content": source.read_text()})
    assert response.status_code == 200, response.get_json()
    assert bundle_view(api, rid, scratch / "bundle") == original
