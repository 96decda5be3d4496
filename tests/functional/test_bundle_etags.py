"""A bundle's ETag stands for its region's inventory version: every kind of write that can
change a bundle of the region moves it on (through the API, and the job engine's write-backs),
while reads, writes that change nothing a bundle shows, and writes to other regions and
tenants leave it; and answering If-None-Match reads no host.

User story: a client polls ``GET /v1/inventory/<region>.tgz`` with If-None-Match; it gets a
304 at once while nothing changed and the new bundle after any change, whoever made it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from craton.api import create_app
from craton.db.models import Host, HostVariable
from craton.db.session import Database
from craton.values import value_digest
from tests.conftest import Client, counting_queries, make_settings
from tests.functional.bundle_helpers import download, fetch

Body = dict[str, Any]
VARIANTS = [("tgz", "hosts"), ("zip", "ansible"), ("json", "hosts")]


class World:
    """A region "dfw" with hosts, groups, variables, a secret and a file reference; a second
    region "ord" of the same tenant and a region of another tenant, each with a host."""

    def __init__(self, client: Client, region: Body, data_dir: Path) -> None:
        self.client = client
        self.rid = region["id"]
        self.tenant = tenant = region["tenant_id"]
        sources = data_dir / "sources" / str(tenant)
        sources.mkdir(parents=True)
        self.ref_file = sources / "web.yml"
        self.ref_file.write_text("from_file: 1\n")
        (sources / "other.yml").write_text("from_other: 2\n")
        self.other_file = sources / "other.yml"
        client.put(f"/v1/regions/{self.rid}/variables",
                   {"variables": {"ntp": "10.0.0.1", "dns": ["1.1.1.1"]}})
        self.groups = {
            name: client.create(f"/v1/regions/{self.rid}/groups", body)["id"]
            for name, body in (("a", {"name": "a", "variables": {"tier": "a"}}),
                               ("b", {"name": "b", "parents": ["a"]}),
                               ("c", {"name": "c", "variables": {"tier": "c"}}))}
        made = client.create(f"/v1/regions/{self.rid}/hosts", [
            {"name": "h1", "ip_address": "10.0.0.1", "groups": ["b"],
             "variables": {"rack": "r1"}},
            {"name": "h2", "groups": ["a"]},
        ])["items"]
        self.hosts = {host["name"]: host["id"] for host in made}
        self.secret = client.create(f"/v1/hosts/{self.hosts['h1']}/secrets",
                                    {"name": "pw", "kind": "password", "content": "one"})["id"]
        self.reference = client.create(f"/v1/groups/{self.groups['a']}/references", {
            "name": "web", "url": self.ref_file.as_uri()})["id"]
        self.ord = client.create(f"/v1/tenants/{tenant}/regions", {"name": "ord"})["id"]
        self.ord_host = client.create(f"/v1/regions/{self.ord}/hosts", {"name": "o1"})["id"]
        self.ord_group = client.create(f"/v1/regions/{self.ord}/groups", {"name": "og"})["id"]
        other = client.create("/v1/tenants", {"name": "globex"})["id"]
        self.far = client.create(f"/v1/tenants/{other}/regions", {"name": "lon"})["id"]
        self.far_host = client.create(f"/v1/regions/{self.far}/hosts", {"name": "l1"})["id"]

    def etags(self) -> dict[tuple[str, str], str]:
        found = {}
        for fmt, layout in VARIANTS:
            response = fetch(self.client, self.rid, fmt, layout=layout)
            assert response.status_code == 200, response.get_json()
            found[fmt, layout] = response.headers["ETag"]
        return found


@pytest.fixture
def world(client: Client, region: Body, tmp_path: Path) -> World:
    return World(client, region, tmp_path / "data")


Write = Callable[[World], Any]


def _api(method: str, url: Callable[[World], str], body: Any = None) -> Write:
    """A request; ``body`` may be a function of the world (for paths that only it knows)."""
    def write(w: World) -> Any:
        return w.client.request(method, url(w), body(w) if callable(body) else body)
    return write


def _file(change: Callable[[World], None]) -> Write:
    def write(w: World) -> None:
        change(w)
    return write


WRITES: dict[str, Write] = {
    "region rename": _api("PATCH", lambda w: f"/v1/regions/{w.rid}", {"name": "dfw2"}),
    "region variables put": _api("PUT", lambda w: f"/v1/regions/{w.rid}/variables",
                                 {"variables": {"ntp": "10.0.0.9"}}),
    "region variables patch": _api("PATCH", lambda w: f"/v1/regions/{w.rid}/variables",
                                   {"variables": {"extra": 1}}),
    "region variable delete": _api("DELETE", lambda w: f"/v1/regions/{w.rid}/variables/dns"),
    "host create": _api("POST", lambda w: f"/v1/regions/{w.rid}/hosts", {"name": "h9"}),
    "hosts bulk create": _api("POST", lambda w: f"/v1/regions/{w.rid}/hosts",
                              [{"name": f"n{i}", "groups": ["c"], "variables": {"i": i}}
                               for i in range(3)]),
    "host rename": _api("PATCH", lambda w: f"/v1/hosts/{w.hosts['h2']}", {"name": "h2b"}),
    "host address": _api("PATCH", lambda w: f"/v1/hosts/{w.hosts['h1']}",
                         {"ip_address": "10.0.0.99"}),
    "host ssh fields": _api("PATCH", lambda w: f"/v1/hosts/{w.hosts['h1']}",
                            {"ssh_user": "root", "ssh_port": 2222, "fqdn": "h1.example"}),
    "host state": _api("PATCH", lambda w: f"/v1/hosts/{w.hosts['h1']}", {"state": "stopped"}),
    "host groups replaced": _api("PATCH", lambda w: f"/v1/hosts/{w.hosts['h1']}",
                                 {"groups": ["c"]}),
    "host variables put": _api("PUT", lambda w: f"/v1/hosts/{w.hosts['h1']}/variables",
                               {"variables": {"rack": "r2"}}),
    "host variables patch": _api("PATCH", lambda w: f"/v1/hosts/{w.hosts['h2']}/variables",
                                 {"variables": {"new": True}}),
    "host variable delete": _api("DELETE",
                                 lambda w: f"/v1/hosts/{w.hosts['h1']}/variables/rack"),
    "host delete": _api("DELETE", lambda w: f"/v1/hosts/{w.hosts['h2']}"),
    "group create": _api("POST", lambda w: f"/v1/regions/{w.rid}/groups", {"name": "d"}),
    "group rename": _api("PATCH", lambda w: f"/v1/groups/{w.groups['c']}", {"name": "c2"}),
    "group variables put": _api("PUT", lambda w: f"/v1/groups/{w.groups['a']}/variables",
                                {"variables": {"tier": "A"}}),
    "group variables patch": _api("PATCH", lambda w: f"/v1/groups/{w.groups['c']}/variables",
                                  {"variables": {"ansible_group_priority": 3}}),
    "group variable delete": _api("DELETE",
                                  lambda w: f"/v1/groups/{w.groups['a']}/variables/tier"),
    "group children added": _api("POST", lambda w: f"/v1/groups/{w.groups['a']}/children",
                                 {"children": ["c"]}),
    "group child removed": _api(
        "DELETE", lambda w: f"/v1/groups/{w.groups['a']}/children/{w.groups['b']}"),
    "group children replaced": _api("PATCH", lambda w: f"/v1/groups/{w.groups['a']}",
                                    {"children": []}),
    "group depends_on": _api("PATCH", lambda w: f"/v1/groups/{w.groups['c']}",
                             {"depends_on": ["a"]}),
    "members added": _api("POST", lambda w: f"/v1/groups/{w.groups['c']}/hosts",
                          {"hosts": ["h1", "h2"]}),
    "members removed": _api("DELETE", lambda w: f"/v1/groups/{w.groups['b']}/hosts",
                            {"hosts": ["h1"]}),
    "member removed": _api("DELETE",
                           lambda w: f"/v1/groups/{w.groups['a']}/hosts/{w.hosts['h2']}"),
    "group delete": _api("DELETE", lambda w: f"/v1/groups/{w.groups['b']}"),
    "secret create": _api("POST", lambda w: f"/v1/hosts/{w.hosts['h2']}/secrets",
                          {"name": "token", "kind": "opaque", "content": "T0KEN"}),
    "secret content": _api("PATCH", lambda w: f"/v1/secrets/{w.secret}", {"content": "two"}),
    "secret rename": _api("PATCH", lambda w: f"/v1/secrets/{w.secret}", {"name": "pw2"}),
    "secret delete": _api("DELETE", lambda w: f"/v1/secrets/{w.secret}"),
    "reference create": _api("POST", lambda w: f"/v1/groups/{w.groups['c']}/references",
                             lambda w: {"name": "other", "url": w.other_file.as_uri()}),
    "reference url": _api("PATCH", lambda w: f"/v1/references/{w.reference}",
                          lambda w: {"url": w.other_file.as_uri()}),
    "reference rename": _api("PATCH", lambda w: f"/v1/references/{w.reference}",
                             {"name": "web2"}),
    "reference delete": _api("DELETE", lambda w: f"/v1/references/{w.reference}"),
    "referenced file content": _file(lambda w: w.ref_file.write_text("from_file: 2\n")),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_every_kind_of_write_moves_the_etag(world: World, kind: str) -> None:
    before = world.etags()
    response = WRITES[kind](world)
    if response is not None:
        assert response.status_code in (200, 201, 204), (kind, response.get_json())
    after = world.etags()
    for variant, etag in before.items():
        assert after[variant] != etag, (kind, variant)
        stale = fetch(world.client, world.rid, variant[0], layout=variant[1],
                      headers={"If-None-Match": etag})
        assert stale.status_code == 200, (kind, variant)


NO_CHANGES: dict[str, Write] = {
    "reads": lambda w: [
        w.client.get(url) for url in (
            f"/v1/regions/{w.rid}", f"/v1/regions/{w.rid}/hosts", f"/v1/regions/{w.rid}/groups",
            f"/v1/hosts/{w.hosts['h1']}/variables?resolved=true",
            f"/v1/groups/{w.groups['a']}/references", f"/v1/hosts/{w.hosts['h1']}/secrets",
            f"/v1/inventory/{w.rid}.tgz?layout=ansible")],
    "secret revealed": _api("POST", lambda w: f"/v1/secrets/{w.secret}/reveal"),
    "region description": _api("PATCH", lambda w: f"/v1/regions/{w.rid}",
                               {"description": "Dallas"}),
    "group description": _api("PATCH", lambda w: f"/v1/groups/{w.groups['a']}",
                              {"description": "the a tier"}),
    "same host fields": _api("PATCH", lambda w: f"/v1/hosts/{w.hosts['h1']}",
                             {"name": "h1", "ip_address": "10.0.0.1"}),
    "same host variables": _api("PATCH", lambda w: f"/v1/hosts/{w.hosts['h1']}/variables",
                                {"variables": {"rack": "r1"}}),
    "same region variables": _api("PUT", lambda w: f"/v1/regions/{w.rid}/variables",
                                  {"variables": {"ntp": "10.0.0.1", "dns": ["1.1.1.1"]}}),
    "refused write": _api("POST", lambda w: f"/v1/regions/{w.rid}/hosts", {"name": "h1"}),
    "tenant rename": _api("PATCH", lambda w: f"/v1/tenants/{w.tenant}", {"name": "acme2"}),
    "other region's host": _api("POST", lambda w: f"/v1/regions/{w.ord}/hosts",
                                {"name": "h1"}),
    "other region's variables": _api("PATCH", lambda w: f"/v1/hosts/{w.ord_host}/variables",
                                     {"variables": {"x": 1}}),
    "other region's group": _api("DELETE", lambda w: f"/v1/groups/{w.ord_group}"),
    "other region renamed": _api("PATCH", lambda w: f"/v1/regions/{w.ord}", {"name": "ord2"}),
    "other tenant's host": _api("PATCH", lambda w: f"/v1/hosts/{w.far_host}", {"name": "l2"}),
    "other tenant's region variables": _api("PUT", lambda w: f"/v1/regions/{w.far}/variables",
                                            {"variables": {"ntp": "x"}}),
}


@pytest.mark.parametrize("kind", list(NO_CHANGES))
def test_reads_no_ops_and_other_regions_keep_the_etag(world: World, kind: str) -> None:
    before = world.etags()
    NO_CHANGES[kind](world)
    assert world.etags() == before, kind
    for (fmt, layout), etag in before.items():
        cached = fetch(world.client, world.rid, fmt, layout=layout,
                       headers={"If-None-Match": etag})
        assert cached.status_code == 304, (kind, fmt, layout)


def test_job_write_backs(world: World, database: Database) -> None:
    """The job engine writes hosts outside the API. Its ``craton_audit`` variables move the
    ETag. A host's reachability, which every job writes and no bundle shows, moves only the
    ETag of a bundle selected by ``reachable``; when a host was last seen moves none."""
    host_id = world.hosts["h1"]

    def unreachable_etag() -> str:
        response = fetch(world.client, world.rid, "tgz", reachable="false")
        assert response.status_code == 200
        return response.headers["ETag"]

    before, selected = world.etags(), unreachable_etag()
    with database.transaction() as session:
        session.execute(update(Host).where(Host.id.in_([host_id])).values(
            last_seen_at=Host.created_at).execution_options(synchronize_session=False))
    assert (world.etags(), unreachable_etag()) == (before, selected)
    with database.transaction() as session:
        session.execute(update(Host).where(Host.id.in_([host_id])).values(
            reachable=False).execution_options(synchronize_session=False))
    assert world.etags() == before
    assert unreachable_etag() != selected
    with database.transaction() as session:
        text = '"2026-12-05"'
        session.add(HostVariable(host_id=host_id, key="converged_at", value_json=text,
                                 value_digest=value_digest(text)))
    audited = world.etags()
    assert all(audited[v] != before[v] for v in before)
    with database.transaction() as session:
        row = session.scalar(select(HostVariable).where(HostVariable.host_id == host_id,
                                                        HostVariable.key == "converged_at"))
        assert row is not None
        row.value_json = row.value_digest = '"2026-12-06"'
    assert all(world.etags()[v] != audited[v] for v in before)


@pytest.mark.parametrize(("fmt", "layout"), VARIANTS)
def test_if_none_match_reads_no_host(world: World, database: Database, fmt: str,
                                     layout: str) -> None:
    """A 304 is answered from the region row and the references alone: no statement reads
    the hosts, their variables, memberships or secrets, or the groups' variables."""
    etag = world.etags()[fmt, layout]
    with counting_queries(database) as statements:
        cached = fetch(world.client, world.rid, fmt, layout=layout,
                       headers={"If-None-Match": etag})
    assert cached.status_code == 304
    read = " ".join(statements).lower()
    for table in ("hosts", "host_variables", "host_groups", "secrets", "group_variables",
                  "group_children"):
        assert f"from {table}" not in read and f"join {table}" not in read, (table, statements)
    assert len(statements) <= 6, statements


def test_reference_pins_are_reused_for_refresh_seconds(database: Database, tmp_path: Path
                                                       ) -> None:
    """With ``[sources] refresh_seconds``, what a reference was fetched at is reused for that
    long — a 304 then costs no fetch, and the bundle it stands for is built from the same
    fetch — and fetched again after it."""
    settings = make_settings(tmp_path)
    settings = dataclasses.replace(
        settings, sources=dataclasses.replace(settings.sources, refresh_seconds=60))
    app = create_app(settings, database=database)
    try:
        client = Client(app.test_client())
        tenant = client.create("/v1/tenants", {"name": "acme"})
        world = World(client, client.create(f"/v1/tenants/{tenant['id']}/regions",
                                            {"name": "dfw"}), tmp_path / "data")
        fetcher = app.extensions["craton"].fetcher
        now = [1000.0]
        fetcher.clock = lambda: now[0]
        before = world.etags()
        world.ref_file.write_text("from_file: 2\n")
        now[0] += 59
        assert world.etags() == before
        bundle = download(client, world.rid, "tgz", layout="ansible")
        assert bundle.json("inventory/group_vars/a/_references/web.json") == {"from_file": 1}
        now[0] += 2
        after = world.etags()
        assert all(after[v] != before[v] for v in before)
        bundle = download(client, world.rid, "tgz", layout="ansible")
        assert bundle.json("inventory/group_vars/a/_references/web.json") == {"from_file": 2}
    finally:
        app.extensions["craton"].close()
