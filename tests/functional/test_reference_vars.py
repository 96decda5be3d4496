"""Referenced group variables through the API: a group's references (YAML files in git, on a web
server, in a local directory) are fetched when a host's resolved variables are shown or a bundle
is built; they sit under the group's own variables, in reference-name order; bundles carry them
as files Ansible loads in that same order, with their pins in the manifest and in the ETag; and a
reference that cannot be fetched or parsed fails the request, naming the reference.

These tests run git and Ansible many times, so they run once, on SQLite: each gets its own app
on a fresh copy of one migrated database, with real git repositories below the tenant's
<data_dir>/sources/<tenant id>, a real HTTP server on 127.0.0.1 (which the app may reach:
[sources] allowed_networks lists loopback) and real ``ansible-inventory``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from craton.api import create_app
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import Client, error_of, make_settings
from tests.unit.test_fetch import GitRepo, WebServer, closed_port, web_server, with_sources

Body = dict[str, Any]


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def migrated_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file built by the migrations, copied for each test (migrating takes ~1 s)."""
    path = tmp_path_factory.mktemp("template") / "craton.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db.engine)
    db.dispose()
    return path


@pytest.fixture
def api(tmp_path: Path, migrated_file: Path) -> Iterator[Client]:
    """An app of its own on SQLite that may fetch from loopback."""
    shutil.copy(migrated_file, tmp_path / "craton.db")
    db = Database(f"sqlite:///{tmp_path}/craton.db")
    app = create_app(with_sources(make_settings(tmp_path), allowed_networks=("127.0.0.0/8",)),
                     database=db)
    yield Client(app.test_client())
    db.dispose()


@pytest.fixture
def sources(tmp_path: Path, fleet: Body) -> Path:
    """Where the fleet's tenant may read file:// references: <data_dir>/sources/<tenant>."""
    root = tmp_path / "data" / "sources" / str(fleet["region"]["tenant_id"])
    root.mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def web() -> Iterator[WebServer]:
    with web_server() as server:
        yield server


@pytest.fixture
def fleet(api: Client) -> Body:
    """Region "dfw" with group "web" and host "h1" in it."""
    tenant = api.create("/v1/tenants", {"name": "acme"})
    region = api.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"})
    group = api.create(f"/v1/regions/{region['id']}/groups", {"name": "web"})
    host = api.create(f"/v1/regions/{region['id']}/hosts", {"name": "h1", "groups": ["web"]})
    return {"region": region, "group": group, "host": host}


# --- helpers --------------------------------------------------------------------------------------

def add_reference(api: Client, group: Body, name: str, url: str, ref: str | None = None,
                  path: str | None = None) -> Body:
    return api.create(f"/v1/groups/{group['id']}/references",
                      {"name": name, "url": url, "ref": ref, "path": path})


def set_group_variables(api: Client, group: Body, variables: Body) -> None:
    response = api.put(f"/v1/groups/{group['id']}/variables", {"variables": variables})
    assert response.status_code == 200, response.get_json()


def resolved(api: Client, host: Body, *, full: bool = False) -> Body:
    url = f"/v1/hosts/{host['id']}/variables?resolved=true"
    response = api.get(url + ("&provenance=full" if full else ""))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bundle_url(region: Body, layout: str = "ansible", fmt: str = "tgz") -> str:
    return f"/v1/inventory/{region['id']}.{fmt}?layout={layout}"


def bundle(api: Client, region: Body, layout: str = "ansible",
           headers: dict[str, str] | None = None) -> tuple[Any, dict[str, bytes]]:
    """The bundle response and its files (path → bytes)."""
    response = api.get(bundle_url(region, layout), headers=headers)
    assert response.status_code == 200, response.get_data()[:500]
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(response.get_data())) as archive:
        for member in archive.getmembers():
            extracted = archive.extractfile(member)
            assert extracted is not None
            files[member.name] = extracted.read()
    return response, files


def source(kind: str, reference: Body) -> Body:
    return {"type": kind, "id": reference["id"], "name": reference["name"]}


def ansible_host_vars(api: Client, region: Body, host: str, target: Path) -> Body:
    """What Ansible makes of the region's ansible-layout bundle for ``host``: the bundle is
    unpacked and read by ``ansible-inventory --host``."""
    response = api.get(bundle_url(region))
    assert response.status_code == 200, response.get_data()[:500]
    with tarfile.open(fileobj=io.BytesIO(response.get_data())) as archive:
        archive.extractall(target, filter="data")
    command = [str(Path(sys.executable).parent / "ansible-inventory"),
               "-i", str(target / "inventory" / "hosts.yml"), "--host", host]
    env = {**os.environ, "ANSIBLE_HOME": str(target / ".ansible"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(target / ".ansible" / "tmp"),
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- resolved variables ---------------------------------------------------------------------------

def test_resolved_variables_show_a_git_reference_under_the_group(
        api: Client, fleet: Body, sources: Path) -> None:
    """A git reference's variables show in a host's resolved variables with the reference as
    their source; the group's own variables override the reference's, and provenance=full
    lists the value each one overrode."""
    repo = GitRepo(sources / "vars.git")
    repo.commit({"group_vars/web.yml": "ntp_server: 10.0.0.1\ndns: [1.1.1.1, 8.8.8.8]\n"
                                       "shared: from-reference\nnested: {a: 1}\n"})
    set_group_variables(api, fleet["group"], {"shared": "from-group"})
    reference = add_reference(api, fleet["group"], "base", repo.url, "main",
                              "group_vars/web.yml")

    shown = resolved(api, fleet["host"])
    assert shown["variables"] == {"ntp_server": "10.0.0.1", "dns": ["1.1.1.1", "8.8.8.8"],
                                  "shared": "from-group", "nested": {"a": 1}}
    from_reference = {"source": source("reference", reference)}
    assert shown["provenance"] == {
        "ntp_server": from_reference, "dns": from_reference, "nested": from_reference,
        "shared": {"source": source("group", fleet["group"])}}

    full = resolved(api, fleet["host"], full=True)
    assert full["variables"] == shown["variables"]
    assert full["provenance"]["shared"] == {
        "source": source("group", fleet["group"]),
        "overridden": [{"source": source("reference", reference), "value": "from-reference"}]}
    assert full["provenance"]["ntp_server"] == {**from_reference, "overridden": []}


def test_references_of_one_group_apply_in_name_order(api: Client, fleet: Body,
                                                     sources: Path) -> None:
    """Two references of one group apply by name — the later name wins — whatever order they
    were created in; renaming one changes which wins."""
    (sources / "zeta.yml").write_text("tier: zeta\nonly_zeta: 1\n")
    (sources / "alpha.yml").write_text("tier: alpha\nonly_alpha: 1\n")
    zeta = add_reference(api, fleet["group"], "zeta", f"file://{sources}/zeta.yml")
    alpha = add_reference(api, fleet["group"], "alpha", f"file://{sources}/alpha.yml")

    full = resolved(api, fleet["host"], full=True)
    assert full["variables"] == {"tier": "zeta", "only_zeta": 1, "only_alpha": 1}
    assert full["provenance"]["tier"] == {
        "source": source("reference", zeta),
        "overridden": [{"source": source("reference", alpha), "value": "alpha"}]}

    renamed = api.patch(f"/v1/references/{zeta['id']}", {"name": "aardvark"})
    assert renamed.status_code == 200, renamed.get_json()
    full = resolved(api, fleet["host"], full=True)
    assert full["variables"]["tier"] == "alpha"
    assert full["provenance"]["tier"] == {
        "source": source("reference", alpha),
        "overridden": [{"source": source("reference", renamed.get_json()), "value": "zeta"}]}


def test_yaml_dates_become_iso_strings(api: Client, fleet: Body, sources: Path) -> None:
    """Dates and times in a referenced YAML file become ISO 8601 strings — at top level and
    nested — in resolved variables and in the bundle's reference file alike."""
    (sources / "dates.yml").write_text(
        "built: 2024-05-01\nat: 2024-05-01 10:20:30\nwindows: [2024-12-24, {from: 2025-01-02}]\n"
        "quoted: '2024-05-01'\n")
    add_reference(api, fleet["group"], "dates", f"file://{sources}/dates.yml")
    expected = {"built": "2024-05-01", "at": "2024-05-01T10:20:30",
                "windows": ["2024-12-24", {"from": "2025-01-02"}], "quoted": "2024-05-01"}
    assert resolved(api, fleet["host"])["variables"] == expected
    _, files = bundle(api, fleet["region"])
    assert json.loads(files["inventory/group_vars/web/_references/dates.json"]) == expected


def test_group_priority_from_a_reference_is_an_ordinary_variable(
        api: Client, fleet: Body, sources: Path) -> None:
    """The group's own ansible_group_priority orders groups and is not a variable (it goes
    to hosts.yml, not vars.json); set inside a referenced file it is an ordinary variable, as
    Ansible treats it in group_vars, and shows in resolved variables."""
    set_group_variables(api, fleet["group"], {"ansible_group_priority": 5, "role": "web"})
    assert resolved(api, fleet["host"])["variables"] == {"role": "web"}

    (sources / "prio.yml").write_text("ansible_group_priority: 7\n")
    reference = add_reference(api, fleet["group"], "prio", f"file://{sources}/prio.yml")
    shown = resolved(api, fleet["host"])
    assert shown["variables"] == {"role": "web", "ansible_group_priority": 7}
    assert shown["provenance"]["ansible_group_priority"] == {
        "source": source("reference", reference)}

    _, files = bundle(api, fleet["region"])
    assert json.loads(files["inventory/group_vars/web/vars.json"]) == {"role": "web"}
    assert json.loads(files["inventory/group_vars/web/_references/prio.json"]) == {
        "ansible_group_priority": 7}
    hosts_yml = yaml.safe_load(files["inventory/hosts.yml"])
    assert hosts_yml["all"]["children"]["web"]["vars"] == {"ansible_group_priority": 5}


# --- Ansible agrees -------------------------------------------------------------------------------

def test_ansible_sees_what_the_api_resolves(api: Client, fleet: Body, sources: Path,
                                            web: WebServer, tmp_path: Path) -> None:
    """ansible-inventory, reading the ansible-layout bundle, gives the host exactly the
    variables the API resolves: references (git, http, file) under the group's own variables,
    in name order, a referenced ansible_group_priority as a variable, dates as strings."""
    repo = GitRepo(sources / "vars.git")
    repo.commit({"web.yml": "shared: git\nfrom_git: 1\nansible_group_priority: 7\n"
                            "built: 2024-05-01\n"})
    web.files["/ansible/web.yml"] = b"shared: http\nfrom_http: [1, 2]\nonly_refs: http\n"
    (sources / "local.yml").write_text("shared: file\nfrom_file: {x: 1}\nonly_refs: file\n")
    set_group_variables(api, fleet["group"], {"shared": "group", "ansible_group_priority": 3})
    add_reference(api, fleet["group"], "b_git", repo.url, "main", "web.yml")
    add_reference(api, fleet["group"], "c_http", web.url("/ansible/web.yml"))
    add_reference(api, fleet["group"], "a_file", f"file://{sources}/local.yml")

    from_api = resolved(api, fleet["host"])["variables"]
    assert from_api == {"shared": "group", "from_git": 1, "ansible_group_priority": 7,
                        "built": "2024-05-01", "from_http": [1, 2], "only_refs": "http",
                        "from_file": {"x": 1}}
    assert ansible_host_vars(api, fleet["region"], "h1", tmp_path / "bundle") == from_api


def test_reference_name_order_is_the_order_ansible_loads_them(
        api: Client, fleet: Body, sources: Path, tmp_path: Path) -> None:
    """References named "base" and "base-extra" (both valid names) set the same variable: the
    API and Ansible, reading the bundle, agree on which one wins. (Ansible loads
    _references/<name>.json in file-name order, where "base-extra.json" sorts before
    "base.json".)"""
    (sources / "base.yml").write_text("tier: base\n")
    (sources / "extra.yml").write_text("tier: base-extra\n")
    add_reference(api, fleet["group"], "base", f"file://{sources}/base.yml")
    add_reference(api, fleet["group"], "base-extra", f"file://{sources}/extra.yml")
    from_ansible = ansible_host_vars(api, fleet["region"], "h1", tmp_path / "bundle")
    assert resolved(api, fleet["host"])["variables"]["tier"] == from_ansible["tier"]


# --- bundles --------------------------------------------------------------------------------------

def test_bundle_lays_out_references_and_pins_them(api: Client, fleet: Body, sources: Path,
                                                  web: WebServer) -> None:
    """The ansible layout puts each reference in group_vars/<group>/_references/<name>.json
    and the group's own variables in group_vars/<group>/vars.json; the manifest lists each
    reference with the commit (git) or sha256 (http, file) it was built from; the hosts layout
    carries the same resolved variables the API shows."""
    repo = GitRepo(sources / "vars.git")
    commit = repo.commit({"group_vars/web.yml": "from_git: 1\nshared: git\n"})
    http_body = b"from_http: true\n"
    file_body = b"from_file: [a, b]\n"
    web.files["/layout/web.yml"] = http_body
    (sources / "web.yml").write_bytes(file_body)
    set_group_variables(api, fleet["group"], {"shared": "group", "ansible_group_priority": 2})
    git_ref = add_reference(api, fleet["group"], "git-vars", repo.url, "main",
                            "group_vars/web.yml")
    http_ref = add_reference(api, fleet["group"], "http-vars", web.url("/layout/web.yml"))
    file_ref = add_reference(api, fleet["group"], "file-vars", f"file://{sources}/web.yml")

    response, files = bundle(api, fleet["region"])
    base = "inventory/group_vars/web"
    assert sorted(path for path in files if path.startswith("inventory/group_vars/")) == [
        f"{base}/_references/file-vars.json", f"{base}/_references/git-vars.json",
        f"{base}/_references/http-vars.json", f"{base}/vars.json"]
    assert json.loads(files[f"{base}/_references/git-vars.json"]) == {"from_git": 1,
                                                                      "shared": "git"}
    assert json.loads(files[f"{base}/_references/http-vars.json"]) == {"from_http": True}
    assert json.loads(files[f"{base}/_references/file-vars.json"]) == {"from_file": ["a", "b"]}
    assert json.loads(files[f"{base}/vars.json"]) == {"shared": "group"}

    manifest = json.loads(files["manifest.json"])
    common = {"group": "web"}
    assert manifest["references"] == [
        {**common, "id": git_ref["id"], "name": "git-vars", "url": repo.url, "ref": "main",
         "path": "group_vars/web.yml", "commit": commit},
        {**common, "id": http_ref["id"], "name": "http-vars", "url": http_ref["url"],
         "ref": None, "path": None, "sha256": hashlib.sha256(http_body).hexdigest()},
        {**common, "id": file_ref["id"], "name": "file-vars", "url": file_ref["url"],
         "ref": None, "path": None, "sha256": hashlib.sha256(file_body).hexdigest()},
    ]
    for path, digest in manifest["files"].items():
        assert hashlib.sha256(files[path]).hexdigest() == digest, path
    assert response.headers["ETag"]

    shown = resolved(api, fleet["host"])
    assert shown["variables"] == {"from_git": 1, "shared": "group", "from_http": True,
                                  "from_file": ["a", "b"]}
    assert shown["provenance"]["from_http"] == {"source": source("reference", http_ref)}
    assert shown["provenance"]["from_file"] == {"source": source("reference", file_ref)}
    _, per_host = bundle(api, fleet["region"], layout="hosts")
    assert json.loads(per_host["hosts/h1/inventory/host_vars/h1.json"]) == shown["variables"]


def test_bundle_etag_follows_the_referenced_branch(api: Client, fleet: Body,
                                                   sources: Path) -> None:
    """The bundle's ETag stays put while nothing changes — asking again, pushing to another
    branch, pushing a tag — and moves when a commit is pushed to the referenced branch, with
    the new content in the new bundle."""
    repo = GitRepo(sources / "vars.git")
    first = repo.commit({"web.yml": "version: 1\n"})
    add_reference(api, fleet["group"], "base", repo.url, "main", "web.yml")
    reference_file = "inventory/group_vars/web/_references/base.json"

    response, files = bundle(api, fleet["region"])
    etag = response.headers["ETag"]
    again, files_again = bundle(api, fleet["region"])
    assert again.headers["ETag"] == etag and files_again == files
    unchanged = api.get(bundle_url(fleet["region"]), headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.get_data() == b""

    repo.commit({"web.yml": "version: 99\n"}, branch="dev")
    repo.tag("v1", first, annotated=True)
    assert bundle(api, fleet["region"])[0].headers["ETag"] == etag

    second = repo.commit({"web.yml": "version: 2\n"}, branch="main")
    response, files = bundle(api, fleet["region"])
    assert response.headers["ETag"] != etag
    assert json.loads(files[reference_file]) == {"version": 2}
    assert json.loads(files["manifest.json"])["references"][0]["commit"] == second
    stale = api.get(bundle_url(fleet["region"]), headers={"If-None-Match": etag})
    assert stale.status_code == 200
    assert resolved(api, fleet["host"])["variables"] == {"version": 2}


def test_bundle_etag_follows_http_content(api: Client, fleet: Body, web: WebServer) -> None:
    """An http reference is pinned by its content's sha256: the ETag stays while the server
    serves the same bytes and moves when they change."""
    web.files["/etag/web.yml"] = b"version: 1\n"
    add_reference(api, fleet["group"], "remote", web.url("/etag/web.yml"))
    etag = bundle(api, fleet["region"])[0].headers["ETag"]
    assert bundle(api, fleet["region"])[0].headers["ETag"] == etag
    web.files["/etag/web.yml"] = b"version: 2\n"
    response, files = bundle(api, fleet["region"])
    assert response.headers["ETag"] != etag
    assert json.loads(files["inventory/group_vars/web/_references/remote.json"]) == {
        "version": 2}
    assert json.loads(files["manifest.json"])["references"][0]["sha256"] == hashlib.sha256(
        b"version: 2\n").hexdigest()


# --- failures -------------------------------------------------------------------------------------

FAILURES = {
    # case: the status it answers (502: cannot be fetched; 422: may not be, or is not usable)
    "unreachable git server": 502,
    "no repository at the file url": 502,
    "missing path in the repository": 502,
    "path is a directory in the repository": 502,
    "http 404": 502,
    "file outside the roots": 422,
    "redirect to a private address": 422,
    "yaml that is not a mapping": 422,
    "invalid yaml": 422,
    "bad variable key": 422,
    "alias bomb": 422,
    "nesting that overflowed the yaml composer": 422,
    "recursive alias": 422,
}

ALIAS_BOMB = "\n".join(
    ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]" for i in range(1, 10)]
) + "\n"
"""Under 1 KB of YAML that expands to 9^10 strings: minutes and gigabytes per request before."""


def failing_reference(case: str, sources: Path, web: WebServer) -> dict[str, Any]:
    """The url/ref/path of a reference that fails in the way ``case`` says."""
    repo = GitRepo(sources / "vars.git")
    repo.commit({"group_vars/web.yml": "fine: 1\n", "list.yml": "- a\n- b\n"})
    if case == "unreachable git server":
        return {"url": f"git://127.0.0.1:{closed_port()}/vars.git", "ref": "main",
                "path": "web.yml"}
    if case == "no repository at the file url":
        return {"url": f"file://{sources}/missing.git", "ref": "main", "path": "web.yml"}
    if case == "missing path in the repository":
        return {"url": repo.url, "ref": "main", "path": "group_vars/nope.yml"}
    if case == "path is a directory in the repository":
        return {"url": repo.url, "ref": "main", "path": "group_vars"}
    if case == "http 404":
        return {"url": web.url("/status/404")}
    if case == "file outside the roots":
        # A link inside the root when stored; the test points it outside afterwards.
        (sources / "moved.yml").symlink_to(sources / "fine.yml")
        return {"url": f"file://{sources}/moved.yml"}
    if case == "redirect to a private address":
        return {"url": web.url("/redirect?to=http://10.255.255.1/vars.yml")}
    if case == "yaml that is not a mapping":
        return {"url": repo.url, "ref": "main", "path": "list.yml"}
    if case == "invalid yaml":
        web.files["/invalid.yml"] = b"ok: 1\nbroken: [1, 2\n"
        return {"url": web.url("/invalid.yml")}
    if case == "alias bomb":
        (sources / "bomb.yml").write_text(ALIAS_BOMB)
        return {"url": f"file://{sources}/bomb.yml"}
    if case == "nesting that overflowed the yaml composer":
        (sources / "deep.yml").write_text("deep: " + "[" * 100_000 + "]" * 100_000)
        return {"url": f"file://{sources}/deep.yml"}
    if case == "recursive alias":
        (sources / "loop.yml").write_text("loop: &loop [1, *loop]\n")
        return {"url": f"file://{sources}/loop.yml"}
    assert case == "bad variable key"
    (sources / "badkey.yml").write_text("good: 1\ninventory_hostname: 2\n")
    return {"url": f"file://{sources}/badkey.yml"}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failing_reference_fails_the_request_naming_it(api: Client, fleet: Body,
                                                         sources: Path, web: WebServer,
                                                         case: str) -> None:
    """A reference that cannot be fetched (502) or whose file is not a mapping of valid
    variables (422) fails resolved variables and every bundle format with an error whose
    message names the reference and its group and whose fields name references.<id>; no
    bundle bytes, no ETag, no attachment are sent."""
    status = FAILURES[case]
    (sources / "fine.yml").write_text("fine: 1\n")
    add_reference(api, fleet["group"], "aaa-fine", f"file://{sources}/fine.yml")
    reference = api.create(f"/v1/groups/{fleet['group']['id']}/references",
                           {"name": "broken", **failing_reference(case, sources, web)})
    if case == "file outside the roots":
        (sources / "moved.yml").unlink()
        (sources / "moved.yml").symlink_to(sources.parent.parent / "craton.db")

    urls = [f"/v1/hosts/{fleet['host']['id']}/variables?resolved=true",
            bundle_url(fleet["region"], "ansible", "tgz"),
            bundle_url(fleet["region"], "hosts", "tgz"),
            bundle_url(fleet["region"], "hosts", "zip"),
            bundle_url(fleet["region"], "hosts", "json")]
    for url in urls:
        response = api.get(url)
        assert response.status_code == status, (url, response.get_data()[:300])
        assert response.mimetype == "application/json", url
        error = error_of(response)
        assert "reference 'broken' of group 'web'" in error["message"], error
        assert set(error["fields"]) == {f"references.{reference['id']}"}, error
        assert error["fields"][f"references.{reference['id']}"] in error["message"]
        assert "ETag" not in response.headers and "Content-Disposition" not in response.headers

    assert api.delete(f"/v1/references/{reference['id']}").status_code == 204
    assert resolved(api, fleet["host"])["variables"] == {"fine": 1}
