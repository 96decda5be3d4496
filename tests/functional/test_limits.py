"""Limits and quotas through the API: what one request or one object may hold ([limits]) and
what one tenant may keep or run at once ([quotas], or a cloud admin's setting on the tenant).
Past each, the answer is a 413, 422 or 429 in the one error shape, naming the field or quota,
and nothing changes."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from craton.api import create_app
from craton.config import MAX_LIMIT, LimitSettings, QuotaSettings, Settings
from craton.db.session import Database
from tests.conftest import Client, error_of, make_settings

Body = dict[str, Any]

LIMITS = LimitSettings(max_value_bytes=200, max_variables=4, max_json_depth=3,
                       max_bulk_hosts=5)
QUOTAS = QuotaSettings(hosts=8, groups=2, secrets=2, concurrent_jobs=0)


@pytest.fixture
def limited_settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(make_settings(tmp_path), limits=LIMITS, quotas=QUOTAS)


@pytest.fixture
def limited_app(limited_settings: Settings, database: Database) -> Iterator[Flask]:
    app = create_app(limited_settings, database=database)
    yield app
    app.extensions["craton"].close()


@pytest.fixture
def api(limited_app: Flask) -> Client:
    return Client(limited_app.test_client())


@pytest.fixture
def world(api: Client) -> Body:
    """A tenant with a region, a group and a host (one of each quota's kind used)."""
    tenant = api.create("/v1/tenants", {"name": "acme"})
    region = api.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"})
    group = api.create(f"/v1/regions/{region['id']}/groups", {"name": "web"})
    host = api.create(f"/v1/regions/{region['id']}/hosts", {"name": "h0"})
    return {"tenant": tenant, "region": region, "group": group, "host": host}


def state(api: Client, world: Body) -> Any:
    """What a refused request must leave as it was."""
    rid = world["region"]["id"]
    return [api.get(url).get_json() for url in (
        f"/v1/tenants/{world['tenant']['id']}", f"/v1/regions/{rid}",
        f"/v1/regions/{rid}/hosts?limit=1000", f"/v1/regions/{rid}/groups?limit=1000",
        f"/v1/hosts/{world['host']['id']}/secrets", "/v1/jobs")]


def refused(response: Any, status: int, field: str, *words: str) -> Body:
    assert response.status_code == status, response.get_json()
    error = error_of(response)
    assert field in error["fields"], error
    for word in words:
        assert word in error["message"], error
    return error


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


# --- [limits] ----------------------------------------------------------------------------------

# (method, url template, body with VALUE where a variable value goes, field named)
VALUE_WRITES = [
    ("POST", "/v1/tenants/{tenant}/regions", {"name": "r2", "variables": {"v": "VALUE"}},
     "variables.v"),
    ("PATCH", "/v1/regions/{region}", {"variables": {"v": "VALUE"}}, "variables.v"),
    ("PUT", "/v1/regions/{region}/variables", {"variables": {"v": "VALUE"}}, "variables.v"),
    ("POST", "/v1/regions/{region}/groups", {"name": "g2", "variables": {"v": "VALUE"}},
     "variables.v"),
    ("PATCH", "/v1/groups/{group}/variables", {"variables": {"v": "VALUE"}}, "variables.v"),
    ("POST", "/v1/regions/{region}/hosts", {"name": "h9", "variables": {"v": "VALUE"}},
     "variables.v"),
    ("POST", "/v1/regions/{region}/hosts", [{"name": "h8"}, {"name": "h9", "variables": {
        "v": "VALUE"}}], "1.variables.v"),
    ("PATCH", "/v1/hosts/{host}", {"variables": {"v": "VALUE"}}, "variables.v"),
    ("PUT", "/v1/hosts/{host}/variables", {"variables": {"v": "VALUE"}}, "variables.v"),
    ("POST", "/v1/jobs", {"region_id": "{region}", "playbook": "craton:ping",
                          "extra_vars": {"v": "VALUE"}}, "extra_vars.v"),
]


def fill(body: Any, world: Body, value: Any) -> Any:
    ids = {"{tenant}": world["tenant"]["id"], "{region}": world["region"]["id"]}
    if body == "VALUE":
        return value
    if isinstance(body, str):
        return ids.get(body, body)
    if isinstance(body, dict):
        return {key: fill(item, world, value) for key, item in body.items()}
    if isinstance(body, list):
        return [fill(item, world, value) for item in body]
    return body


def url_of(template: str, world: Body) -> str:
    return template.format(**{kind: world[kind]["id"] for kind in
                              ("tenant", "region", "group", "host")})


@pytest.mark.parametrize(("method", "url", "body", "field"), VALUE_WRITES,
                         ids=[f"{m} {u} {f}" for m, u, _, f in VALUE_WRITES])
@pytest.mark.parametrize(("value", "words"), [
    ("x" * 199, ("201 bytes as JSON; at most 200", "max_value_bytes")),
    (nested(4), ("levels deep", "max_json_depth")),
], ids=["too large", "too deep"])
def test_a_value_past_the_limits_is_422_naming_it(api: Client, world: Body, method: str,
                                                 url: str, body: Any, field: str, value: Any,
                                                 words: tuple[str, ...]) -> None:
    """Every way a variable value reaches Craton (region, group and host variables, one host
    or many, a job's extra_vars) refuses one larger or deeper than [limits] allows. (In a list
    of hosts a value that deep makes the body as a whole too deep: the body is named.)"""
    before = state(api, world)
    response = api.request(method, url_of(url, world), fill(body, world, value))
    deep_list = isinstance(body, list) and isinstance(value, list)
    refused(response, 422, "body" if deep_list else field, *words)
    assert state(api, world) == before


@pytest.mark.parametrize(("method", "url", "body"), [
    (m, u, b) for m, u, b, _ in VALUE_WRITES if u != "/v1/jobs"])
def test_a_value_at_the_limits_is_kept(api: Client, world: Body, method: str, url: str,
                                       body: Any) -> None:
    value = [[["x" * 180]]]
    response = api.request(method, url_of(url, world), fill(body, world, value))
    assert response.status_code in (200, 201), response.get_json()


def test_variables_per_object_count_after_a_merge(api: Client, world: Body) -> None:
    """[limits] max_variables counts what the object would hold: a merge that adds past it is
    refused, one that replaces or deletes keys is not."""
    url = f"/v1/hosts/{world['host']['id']}/variables"
    assert api.put(url, {"variables": {"a": 1, "b": 2, "c": 3, "d": 4}}).status_code == 200
    refused(api.put(url, {"variables": {f"k{i}": i for i in range(5)}}), 422, "variables",
            "holds 5 variables; at most 4", "max_variables")
    refused(api.patch(url, {"variables": {"e": 5}}), 422, "variables", "holds 5 variables")
    assert api.get(url).get_json()["variables"] == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert api.patch(url, {"variables": {"e": 5, "a": None}}).status_code == 200
    assert api.patch(url, {"variables": {"b": "changed"}}).status_code == 200
    refused(api.post(f"/v1/regions/{world['region']['id']}/hosts",
                     [{"name": f"m{i}", "variables": {f"k{k}": k for k in range(i + 3)}}
                      for i in range(3)]), 422, "2.variables", "holds 5 variables")


def test_bodies_nested_past_the_limit_are_422_naming_the_body(api: Client, world: Body) -> None:
    """A body may nest 3 levels more than a value (the objects holding values); past that it
    is refused before it is parsed."""
    url = f"/v1/regions/{world['region']['id']}/hosts"
    before = state(api, world)
    refused(api.post(url, [{"name": "d", "variables": {"v": nested(4)}}]), 422, "body",
            "7 levels deep; at most 6", "max_json_depth")
    assert state(api, world) == before
    created = api.post(url, [{"name": "d", "variables": {"v": nested(3)}}])
    assert created.status_code == 201, created.get_json()


def test_more_hosts_than_max_bulk_hosts_is_413_and_creates_none(api: Client,
                                                                world: Body) -> None:
    url = f"/v1/regions/{world['region']['id']}/hosts"
    before = state(api, world)
    error = refused(api.post(url, [{"name": f"b{i}"} for i in range(6)]), 413, "body",
                    "6 hosts; at most 5", "max_bulk_hosts")
    assert error["fields"] == {"body": error["message"].removeprefix("request body ")}
    assert state(api, world) == before
    assert api.post(url, [{"name": f"b{i}"} for i in range(5)]).status_code == 201


# --- [quotas] ----------------------------------------------------------------------------------

def test_bulk_creates_count_against_the_host_quota_all_or_nothing(api: Client,
                                                                  world: Body) -> None:
    """With 1 of 8 hosts used, 5 more fit; then 3 more do not (all refused, none created,
    429 naming quotas.hosts); 2 do; then not one."""
    url = f"/v1/regions/{world['region']['id']}/hosts"
    assert api.post(url, [{"name": f"a{i}"} for i in range(5)]).status_code == 201
    before = state(api, world)
    error = refused(api.post(url, [{"name": f"b{i}"} for i in range(3)]), 429,
                    "quotas.hosts", "quota hosts exceeded")
    assert "at most 8 hosts; it has 6 and this request adds 3" in error["fields"]["quotas.hosts"]
    assert state(api, world) == before
    assert api.post(url, [{"name": f"b{i}"} for i in range(2)]).status_code == 201
    refused(api.post(url, {"name": "one-more"}), 429, "quotas.hosts")
    other = api.create(f"/v1/tenants/{world['tenant']['id']}/regions", {"name": "other"})
    refused(api.post(f"/v1/regions/{other['id']}/hosts", {"name": "x"}), 429, "quotas.hosts")


def test_quotas_count_per_tenant(api: Client, world: Body) -> None:
    """Another tenant's hosts and groups do not use this tenant's quota."""
    tenant = api.create("/v1/tenants", {"name": "other"})
    region = api.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "r"})
    hosts = api.post(f"/v1/regions/{region['id']}/hosts", [{"name": f"o{i}"} for i in range(5)])
    assert hosts.status_code == 201
    api.create(f"/v1/regions/{region['id']}/groups", {"name": "g1"})
    api.create(f"/v1/regions/{region['id']}/groups", {"name": "g2"})
    assert api.post(f"/v1/regions/{world['region']['id']}/groups",
                    {"name": "second"}).status_code == 201


def test_group_and_secret_quotas(api: Client, world: Body) -> None:
    rid, hid = world["region"]["id"], world["host"]["id"]
    api.create(f"/v1/regions/{rid}/groups", {"name": "db"})
    before = state(api, world)
    refused(api.post(f"/v1/regions/{rid}/groups", {"name": "third"}), 429, "quotas.groups",
            "at most 2 groups")
    secret = {"kind": "password", "content": "hunter2"}
    api.create(f"/v1/hosts/{hid}/secrets", {"name": "one", **secret})
    api.create(f"/v1/hosts/{hid}/secrets", {"name": "two", **secret})
    before = state(api, world)
    refused(api.post(f"/v1/hosts/{hid}/secrets", {"name": "three", **secret}), 429,
            "quotas.secrets", "at most 2 secrets")
    assert state(api, world) == before
    assert api.delete(f"/v1/groups/{world['group']['id']}").status_code == 204
    assert api.post(f"/v1/regions/{rid}/groups", {"name": "third"}).status_code == 201


def test_concurrent_jobs_past_the_quota_are_429_with_retry_after(api: Client,
                                                                 world: Body) -> None:
    """Waiting helps with this quota (jobs end), so the answer says when to try again."""
    response = api.post("/v1/jobs", {"region_id": world["region"]["id"],
                                     "playbook": "craton:ping"})
    refused(response, 429, "quotas.concurrent_jobs", "0 jobs pending or running")
    assert int(response.headers["Retry-After"]) > 0
    assert api.get("/v1/jobs").get_json()["items"] == []


# --- a tenant's own quotas ---------------------------------------------------------------------

def test_tenants_show_their_quotas_and_a_cloud_admin_sets_them(api: Client,
                                                               world: Body) -> None:
    """A tenant sees the quotas in force (the configured defaults until a cloud admin sets
    its own); an admin's number replaces a default, null puts it back; the tenant's own
    callers cannot change them."""
    tid = world["tenant"]["id"]
    defaults = {"hosts": 8, "groups": 2, "secrets": 2, "concurrent_jobs": 0}
    assert world["tenant"]["quotas"] == defaults
    assert api.get(f"/v1/tenants/{tid}", tenant=tid, roles="reader").get_json()[
        "quotas"] == defaults

    for roles in ("admin", "member"):
        response = api.patch(f"/v1/tenants/{tid}", {"quotas": {"hosts": 1000}}, tenant=tid,
                             roles=roles)
        assert response.status_code == 403, response.get_json()
    changed = api.patch(f"/v1/tenants/{tid}", {"quotas": {"hosts": 10, "concurrent_jobs": 3}})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["quotas"] == {**defaults, "hosts": 10, "concurrent_jobs": 3}
    assert changed.get_json()["version"] > world["tenant"]["version"]
    listed = api.get("/v1/tenants").get_json()["items"]
    assert [t["quotas"]["hosts"] for t in listed if t["id"] == tid] == [10]

    url = f"/v1/regions/{world['region']['id']}/hosts"
    assert api.post(url, [{"name": f"n{i}"} for i in range(5)]).status_code == 201
    assert api.post(url, [{"name": f"m{i}"} for i in range(4)]).status_code == 201
    refused(api.post(url, {"name": "eleventh"}), 429, "quotas.hosts", "at most 10 hosts")

    lowered = api.patch(f"/v1/tenants/{tid}", {"quotas": {"hosts": 3}})
    assert lowered.status_code == 200
    assert len(api.get(f"{url}?limit=100").get_json()["items"]) == 10, "nothing is removed"
    reset = api.patch(f"/v1/tenants/{tid}", {"quotas": {"hosts": None, "concurrent_jobs": None}})
    assert reset.get_json()["quotas"] == defaults
    created = api.create("/v1/tenants", {"name": "big", "quotas": {"groups": 500}})
    assert created["quotas"] == {**defaults, "groups": 500}


@pytest.mark.parametrize(("quotas", "field"), [
    ({"hosts": -1}, "quotas.hosts"),
    ({"hosts": "10"}, "quotas.hosts"),
    ({"hosts": 1.5}, "quotas.hosts"),
    ({"groups": MAX_LIMIT + 1}, "quotas.groups"),
    ({"groups": 2**63}, "quotas.groups"),
    ({"cpus": 4}, "quotas.cpus"),
    ([1], "quotas"),
])
def test_bad_quotas_are_422_naming_them(api: Client, world: Body, quotas: Any,
                                        field: str) -> None:
    tid = world["tenant"]["id"]
    before = state(api, world)
    refused(api.patch(f"/v1/tenants/{tid}", {"quotas": quotas}), 422, field)
    refused(api.post("/v1/tenants", {"name": "new", "quotas": quotas}), 422, field)
    assert state(api, world) == before


# --- races -------------------------------------------------------------------------------------

def test_concurrent_creates_never_exceed_the_quota(limited_app: Flask, api: Client,
                                                   world: Body) -> None:
    """Twelve writers at once, each adding one host to a tenant with room for seven: exactly
    seven succeed and the rest get 429 — the quota is counted inside each write's transaction
    with the tenant locked, so two writers cannot both take the last place."""
    rid = world["region"]["id"]
    statuses: list[int] = []
    start = threading.Barrier(12)

    def create(index: int) -> None:
        client = Client(limited_app.test_client())
        start.wait()
        statuses.append(client.post(f"/v1/regions/{rid}/hosts",
                                    {"name": f"racer{index}"}).status_code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * 7 + [429] * 5
    assert len(api.get(f"/v1/regions/{rid}/hosts?limit=100").get_json()["items"]) == 8
