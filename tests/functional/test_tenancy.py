"""Tenant isolation and policy through the API: a caller scoped to one tenant can neither see
nor touch another tenant's objects on any endpoint (whatever its role, under noauth role headers
and with API keys), lists and filters show only its own objects, and every operation answers
each role as the policy's rules say — walked over every operation the API serves by the walks
of tests/tenancy_walk.py, which tests/keystone/test_tenancy_walk.py runs with Keystone tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete

from craton.api import create_app
from craton.config import Settings
from craton.context import ADMIN, Action
from craton.db.models import ApiKey
from craton.db.session import Database
from craton.identity import apikeys
from tests.conftest import Client, error_of, make_settings
from tests.tenancy_walk import (
    ARGUMENT,
    BODIES,
    Access,
    ActingClient,
    MakeWorld,
    World,
    all_operations,
    body_of,
    build_world,
    documented_rules,
    id_operations,
    openapi_operation,
    openapi_path,
    queries,
    reference_maker,
    snapshot,
    urls,
    walk_other_tenants_objects,
    walk_policy,
)


@pytest.fixture
def make_world(client: Client, settings: Settings) -> MakeWorld:
    """``build_world`` made by a noauth cloud admin."""
    reference_url = reference_maker(settings)
    return lambda label: build_world(client, label, reference_url)



def test_every_id_endpoint_is_checked(app: Flask) -> None:
    """The isolation sweep below reaches every kind of object the API serves by id."""
    rules = {rule for rule, _ in id_operations(app)}
    arguments = {name for rule in rules for _, name in ARGUMENT.findall(rule)}
    assert arguments >= {"tenant_id", "region_id", "host_id", "group_id", "child_id",
                         "secret_id", "reference_id", "apikey_id"}
    assert {f"/v1/{kind}/<int:{kind[:-1]}_id>/changes" for kind in ("hosts", "groups",
                                                                     "regions")} <= rules
    assert len(rules) >= 20


def test_body_table_covers_every_operation(client: Client, app: Flask) -> None:
    """Every /v1 operation that takes a JSON body has a valid body in BODIES (and no entry is
    left over from a removed endpoint)."""
    document = client.get("/v1/openapi.json").get_json()
    with_body = {(rule, method) for rule, method in all_operations(app)
                 if "requestBody" in openapi_operation(document, rule, method)}
    assert with_body, "the OpenAPI document lists no request bodies"
    assert sorted(with_body - set(BODIES)) == []
    assert sorted(set(BODIES) - with_body) == []


@pytest.mark.parametrize(("access", "role"), [
    ("noauth", "admin"), ("noauth", "reader"), ("noauth", "auditor"),
    ("apikey", "admin"), ("apikey", "reader")], indirect=["access"])
def test_other_tenants_objects_answer_as_missing_ids_on_every_endpoint(
        access: Access, role: str) -> None:
    """A caller with any role of tenant B, under noauth or with an API key, gets from every
    method of every endpoint on tenant A's ids exactly the status it gets on ids that do not
    exist (404 for any role that may read), learns none of A's names, and changes nothing of
    A's: 0 leaks."""
    walk_other_tenants_objects(access, role)



def test_every_id_endpoint_works_for_the_owner(client: Client, app: Flask,
                                               make_world: MakeWorld) -> None:
    """The control for the sweep above: the same calls, made by a cloud admin on a fresh
    world for each write, succeed (with or without the boolean options) — so the 404s come
    from tenant scoping, not from bad ids or bodies."""
    document = client.get("/v1/openapi.json").get_json()
    reads = make_world("reads")
    failures = {}
    for rule, method in id_operations(app):
        for index in range(len(urls(rule, reads))):
            world = reads if method in ("GET", "HEAD") else make_world("owner")
            url, body = urls(rule, world)[index], body_of(document, rule, method, world)
            answers = []
            for query in queries(document, rule, method):
                response = client.request(method, url + query, body)
                answers.append((query, response.status_code, response.get_json(silent=True)))
                if response.status_code < 400:
                    break
            else:
                failures[(method, url)] = answers
    assert failures == {}


def _unknown_id(*worlds: World) -> int:
    highest = max(value for world in worlds for key, value in world.items()
                  if key.endswith("_id"))
    return highest + 1_000_000


# Requests on B's own objects that name A's group ({a_group}) or host ({a_host}).
CROSS_REFERENCES = [
    ("POST", "/v1/regions/{b[region_id]}/hosts", {"name": "x", "groups": ["{a_group}"]}),
    ("POST", "/v1/regions/{b[region_id]}/groups", {"name": "x", "parents": ["{a_group}"]}),
    ("POST", "/v1/regions/{b[region_id]}/groups", {"name": "x", "children": ["{a_group}"]}),
    ("POST", "/v1/regions/{b[region_id]}/groups", {"name": "x", "depends_on": ["{a_group}"]}),
    ("POST", "/v1/regions/{b[region_id]}/groups", {"name": "x", "hosts": ["{a_host}"]}),
    ("PATCH", "/v1/hosts/{b[host_id]}", {"groups": ["{a_group}"]}),
    ("PATCH", "/v1/groups/{b[group_id]}", {"children": ["{a_group}"]}),
    ("PATCH", "/v1/groups/{b[group_id]}", {"depends_on": ["{a_group}"]}),
    ("POST", "/v1/groups/{b[group_id]}/hosts", {"hosts": ["{a_host}"]}),
    ("DELETE", "/v1/groups/{b[group_id]}/hosts", {"hosts": ["{a_host}"]}),
    ("POST", "/v1/groups/{b[group_id]}/children", {"children": ["{a_group}"]}),
    ("DELETE", "/v1/groups/{b[group_id]}/hosts/{a_host}", None),
    ("DELETE", "/v1/groups/{b[group_id]}/children/{a_group}", None),
]


def test_own_objects_cannot_reach_other_tenants_ids(client: Client, app: Flask,
                                                    make_world: MakeWorld) -> None:
    """Naming another tenant's group or host from one's own objects answers exactly as an id
    that does not exist would (ids leak nothing) and links nothing."""
    a, b = make_world("alpha"), make_world("beta")
    before = snapshot(client, app, a), snapshot(client, app, b)
    missing = _unknown_id(a, b)

    def attempt(method: str, url: str, body: Any, group_id: int, host_id: int) -> Any:
        ids = {"{a_group}": group_id, "{a_host}": host_id}
        payload = None if body is None else {
            key: [ids.get(item, item) for item in value] if isinstance(value, list) else value
            for key, value in body.items()}
        response = client.request(method, url.format(b=b, a_group=group_id, a_host=host_id),
                                  payload, tenant=b["tenant_id"], roles="admin")
        if not 400 <= response.status_code < 500:
            return response.status_code, response.get_json()
        message = error_of(response)["message"]
        message = re.sub(rf"\b{group_id}\b", "<group>", message)
        return response.status_code, re.sub(rf"\b{host_id}\b", "<host>", message)

    differences = {}
    for method, url, body in CROSS_REFERENCES:
        theirs = attempt(method, url, body, a["child_id"], a["host_id"])
        unknown = attempt(method, url, body, missing, missing + 1)
        if theirs != unknown or not 400 <= theirs[0] < 500:
            differences[(method, url, str(body))] = (theirs, unknown)
    assert differences == {}
    assert (snapshot(client, app, a), snapshot(client, app, b)) == before


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_lists_show_only_the_callers_tenant(client: Client, make_world: MakeWorld) -> None:
    """A scoped caller's lists hold only its own tenant's objects; a cloud admin sees both."""
    a, b = make_world("alpha"), make_world("beta")
    tid = b["tenant_id"]
    assert _ids(client.get("/v1/tenants", tenant=tid, roles="reader")) == [tid]
    assert _ids(client.get("/v1/regions", tenant=tid, roles="reader")) == [b["region_id"]]
    assert _ids(client.get("/v1/hosts", tenant=tid, roles="reader")) == sorted(
        [b["host_id"], b["spare_host_id"]])
    assert _ids(client.get("/v1/groups", tenant=tid, roles="reader")) == sorted(
        [b["group_id"], b["child_id"], b["spare_group_id"]])
    assert _ids(client.get(f"/v1/tenants/{tid}/regions", tenant=tid, roles="reader")) == [
        b["region_id"]]
    everything = _ids(client.get("/v1/tenants"))
    assert a["tenant_id"] in everything and tid in everything
    for roles in ("reader", "admin"):
        changes = client.get("/v1/changes?limit=1000", tenant=tid, roles=roles).get_json()
        assert changes["items"] and {c["tenant_id"] for c in changes["items"]} == {tid}
    changes = client.get("/v1/changes?limit=1000").get_json()["items"]
    assert {a["tenant_id"], tid} <= {c["tenant_id"] for c in changes}


@pytest.mark.parametrize("query", [
    "/v1/hosts?region_id={a[region_id]}",
    "/v1/hosts?name={a[names][host]}",
    "/v1/hosts?name=host-alpha*",
    "/v1/hosts?group={a[names][group]}",
    "/v1/hosts?var=role",
    "/v1/hosts?id={a[host_id]}",
    "/v1/regions?tenant_id={a[tenant_id]}",
    "/v1/regions?name={a[names][region]}",
    "/v1/groups?region_id={a[region_id]}",
    "/v1/groups?name={a[names][group]}",
    "/v1/changes?object_type=host&object_id={a[host_id]}",
    "/v1/changes?tenant_id={a[tenant_id]}",
    "/v1/changes?object_type=api_key",
])
def test_filters_on_other_tenants_objects_answer_empty(
        client: Client, query: str, make_world: MakeWorld) -> None:
    """Filtering on another tenant's region, names, groups or variables finds nothing for a
    scoped caller, while the same filter finds A's objects for a cloud admin."""
    a = make_world("alpha")
    b = make_world("beta")
    assert client.put(f"/v1/hosts/{b['host_id']}/variables",
                      {"variables": {"other": 1}}).status_code == 200
    url = query.format(a=a)
    assert _ids(client.get(url)) != []
    assert _ids(client.get(url, tenant=b["tenant_id"], roles="reader")) == []


def test_group_filter_does_not_reveal_other_tenants_group_names(
        client: Client, make_world: MakeWorld) -> None:
    """Asking for hosts of another tenant's region by group answers the same whether that
    group exists there or not, so a caller cannot probe another tenant's group names."""
    a, b = make_world("alpha"), make_world("beta")
    existing, made_up = a["names"]["group"], "no_such_group"

    def ask(group: str) -> tuple[int, Any]:
        response = client.get(f"/v1/hosts?region_id={a['region_id']}&group={group}",
                              tenant=b["tenant_id"], roles="reader")
        body = response.get_data(as_text=True).replace(group, "<group>")
        body = re.sub(r'"request_id":"[^"]*"', "", body)
        return response.status_code, body

    assert ask(existing) == ask(made_up)


def test_every_operation_is_documented_by_one_rule(app: Flask) -> None:
    """The policy's documentation (the operations listed in etc/policy.yaml.sample) names one
    rule for each operation the API serves, and no operation the API does not serve."""
    served = {("GET" if method == "HEAD" else method, openapi_path(rule))
              for rule, method in all_operations(app)}
    documented = documented_rules()
    assert sorted(served - set(documented)) == []
    assert sorted(set(documented) - served) == []
    assert {op: rules for op, rules in documented.items() if len(rules) != 1} == {}



NOAUTH_ROLES = ["reader", "secret-reader", "member", "admin", "auditor", ""]
APIKEY_ROLES = ["reader", "member", "admin"]
"""The roles walked: every role an API key can have; under noauth also secret-reader, a role
Craton does not know (auditor) and none (the X-Craton-Roles header, as sent)."""


@pytest.fixture(params=["noauth", "apikey"])
def access(request: pytest.FixtureRequest, tmp_path: Path,
           database: Database) -> Iterator[Access]:
    """Callers under noauth (X-Craton-Tenant and X-Craton-Roles) or with API keys (a
    cloud-admin key made as craton-manage makes it; tenant keys made through the API)."""
    settings = make_settings(tmp_path, auth_strategy=request.param)
    app = create_app(settings, database=database)
    base = Client(app.test_client())
    if request.param == "noauth":
        admin = base
        roles = {role: frozenset(filter(None, role.split(","))) for role in NOAUTH_ROLES}

        def as_role(tenant_id: int, role: str) -> Client:
            return ActingClient(base, tenant=tenant_id, roles=role)
    else:
        with database.transaction() as session:
            _, root = apikeys.create_key(
                session, ADMIN, apikeys.read_or_create_hash_key(settings.apikey_hash_key_file),
                tenant_id=None, name="walk", role="admin")
        admin = ActingClient(base, headers={"Authorization": f"Bearer {root}"})
        roles = {role: frozenset({role}) for role in APIKEY_ROLES}

        def as_role(tenant_id: int, role: str) -> Client:
            made = admin.create(f"/v1/tenants/{tenant_id}/apikeys",
                                {"name": f"walk-{role}", "role": role})
            return ActingClient(base, headers={"Authorization": f"Bearer {made['key']}"})
    reference_url = reference_maker(settings)
    yield Access(strategy=request.param, app=app, admin=admin, as_role=as_role,
                 make_world=lambda label: build_world(admin, label, reference_url), roles=roles)
    app.extensions["craton"].close()
    with database.transaction() as session:
        session.execute(delete(ApiKey))  # cloud-admin keys have no tenant to cascade from


@pytest.mark.one_backend  # the policy's decisions do not touch the database
def test_every_operation_answers_each_role_as_the_policy_says(access: Access) -> None:
    """Each role of a tenant (under noauth or with an API key), on its own tenant's objects,
    walks every operation the API serves: an operation is refused (403 naming its permission,
    or inventory:read, which every other permission needs) exactly when the policy's rule does
    not allow the role — 0 unexpected allows, 0 unexpected denies."""
    walk_policy(access)


@pytest.mark.one_backend  # the policy's decisions do not touch the database
def test_whoami_shows_each_caller_itself_and_the_permissions_the_policy_grants(
        access: Access) -> None:
    """GET /v1/whoami answers every role of tenant B (a role Craton does not know included)
    with B alone — its id and name, none of A's names — the caller's roles, how it was
    authenticated and exactly the permissions the policy's rules grant it; never the key it
    sent. A cloud admin has no tenant and every permission; no credentials is 401."""
    strategy = access.strategy
    a, b = access.make_world("alpha"), access.make_world("beta")
    everything = sorted(action.value for action in Action)
    for role in access.roles:
        caller = access.as_role(b["tenant_id"], role)
        response = caller.get("/v1/whoami")
        assert response.status_code == 200, (role, response.get_json())
        assert response.headers["Cache-Control"] == "no-store"
        shown = response.get_json()
        ruled = access.ruled(b["tenant_id"], role)
        roles = ruled.roles
        assert shown["tenant"] == {"id": b["tenant_id"], "name": b["names"]["tenant"]}
        assert shown["cloud_admin"] is False
        assert shown["roles"] == sorted(roles)
        assert shown["auth_strategy"] == strategy
        assert shown["permissions"] == sorted(
            action.value for action in Action if ruled.can(action))
        assert shown["permissions"] != everything
        text = response.get_data(as_text=True)
        assert not [name for name in a["names"].values() if name in text], text
        credential = caller.headers.get("Authorization", "").removeprefix("Bearer ")
        if strategy == "apikey":
            assert shown["api_key_name"] == f"walk-{role}"
            assert shown["user"].startswith(f"walk-{role} (API key ")
            assert credential and credential not in text
        else:
            assert shown["api_key_name"] is None
    admin = access.admin.get("/v1/whoami").get_json()
    assert (admin["tenant"], admin["cloud_admin"], admin["permissions"]) == (
        None, True, everything)
    anonymous = Client(access.admin.http).get("/v1/whoami")
    if strategy == "apikey":
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        assert error_of(anonymous)["message"]
    else:
        assert anonymous.get_json()["auth_strategy"] == "noauth"


def test_tenant_management_needs_a_cloud_admin(client: Client, make_world: MakeWorld) -> None:
    """Creating, renaming and deleting tenants is refused (403) to scoped callers, whatever
    their role, and changes nothing; a cloud admin may."""
    b = make_world("beta")
    tid = b["tenant_id"]
    tenants_before = client.get("/v1/tenants").get_json()
    for roles in ("admin", "member"):
        refused = [
            client.post("/v1/tenants", {"name": "sneaky"}, tenant=tid, roles=roles),
            client.patch(f"/v1/tenants/{tid}", {"name": "renamed"}, tenant=tid, roles=roles),
            client.delete(f"/v1/tenants/{tid}", tenant=tid, roles=roles),
            client.delete(f"/v1/tenants/{tid}?cascade=true", tenant=tid, roles=roles),
        ]
        assert [response.status_code for response in refused] == [403] * 4
        assert all(error_of(response)["message"] for response in refused)
    assert client.get("/v1/tenants").get_json() == tenants_before

    assert client.patch(f"/v1/tenants/{tid}", {"description": "ok"}).status_code == 200
    assert client.post("/v1/tenants", {"name": "by-admin"}).status_code == 201


def test_reader_reads_but_cannot_write(client: Client, app: Flask, make_world: MakeWorld) -> None:
    """The reader role sees its tenant's inventory but every write, reveal or API-key change is
    403 and changes nothing."""
    b = make_world("beta")
    tid, rid, hid, gid = b["tenant_id"], b["region_id"], b["host_id"], b["group_id"]
    reads = [f"/v1/regions/{rid}", f"/v1/hosts/{hid}", f"/v1/groups/{gid}",
             f"/v1/hosts/{hid}/variables", f"/v1/hosts/{hid}/secrets",
             f"/v1/secrets/{b['secret_id']}", f"/v1/references/{b['reference_id']}"]
    for url in reads:
        assert client.get(url, tenant=tid, roles="reader").status_code == 200, url

    before = snapshot(client, app, b)
    writes = [
        ("POST", f"/v1/tenants/{tid}/regions", {"name": "r2"}),
        ("PATCH", f"/v1/regions/{rid}", {"description": "x"}),
        ("POST", f"/v1/regions/{rid}/hosts", {"name": "new-host"}),
        ("POST", f"/v1/regions/{rid}/hosts", [{"name": "bulk-1"}, {"name": "bulk-2"}]),
        ("PATCH", f"/v1/hosts/{hid}", {"ssh_user": "x"}),
        ("PUT", f"/v1/hosts/{hid}/variables", {"variables": {}}),
        ("PATCH", f"/v1/groups/{gid}/variables", {"variables": {"x": 1}}),
        ("DELETE", f"/v1/hosts/{hid}/variables/role", None),
        ("POST", f"/v1/regions/{rid}/groups", {"name": "new_group"}),
        ("POST", f"/v1/groups/{gid}/hosts", {"hosts": [b["spare_host_id"]]}),
        ("POST", f"/v1/hosts/{hid}/secrets", {"name": "s2", "kind": "opaque", "content": "x"}),
        ("PATCH", f"/v1/secrets/{b['secret_id']}", {"name": "renamed"}),
        ("POST", f"/v1/secrets/{b['secret_id']}/reveal", None),
        ("DELETE", f"/v1/references/{b['reference_id']}", None),
        ("DELETE", f"/v1/hosts/{hid}", None),
        ("DELETE", f"/v1/regions/{rid}?cascade=true", None),
        ("POST", f"/v1/tenants/{tid}/apikeys", {"name": "mine", "role": "admin"}),
        ("DELETE", f"/v1/apikeys/{b['apikey_id']}", None),
    ]
    statuses = {(method, url): client.request(method, url, body, tenant=tid,
                                              roles="reader").status_code
                for method, url, body in writes}
    assert {key: status for key, status in statuses.items() if status != 403} == {}
    assert snapshot(client, app, b) == before


def test_member_writes_inventory_but_cannot_reveal(client: Client, make_world: MakeWorld) -> None:
    """The member role creates and changes inventory, but revealing a secret is 403."""
    b = make_world("beta")
    tid, rid = b["tenant_id"], b["region_id"]
    host = client.create(f"/v1/regions/{rid}/hosts", {"name": "by-member"}, tenant=tid,
                         roles="member")
    changed = client.patch(f"/v1/hosts/{host['id']}", {"variables": {"a": 1}}, tenant=tid,
                           roles="member")
    assert changed.status_code == 200 and changed.get_json()["variables"] == {"a": 1}
    secret = client.create(f"/v1/hosts/{host['id']}/secrets",
                           {"name": "pw", "kind": "password", "content": "s3cret"},
                           tenant=tid, roles="member")

    refused = client.post(f"/v1/secrets/{secret['id']}/reveal", tenant=tid, roles="member")
    assert refused.status_code == 403
    assert "s3cret" not in refused.get_data(as_text=True)
    assert "secrets:reveal" in error_of(refused)["message"]


@pytest.mark.parametrize("roles", ["secret-reader", "reader,secret-reader", "admin"])
def test_secret_reader_or_admin_can_reveal(
        client: Client, roles: str, make_world: MakeWorld) -> None:
    """A caller with the secret-reader role (alone or with reader) or the admin role reveals
    its tenant's secrets."""
    b = make_world("beta")
    revealed = client.post(f"/v1/secrets/{b['secret_id']}/reveal", tenant=b["tenant_id"],
                           roles=roles)
    assert revealed.status_code == 200, revealed.get_json()
    assert revealed.get_json()["content"].startswith("pw-beta")


@pytest.mark.parametrize("roles", ["", "auditor"])
def test_unknown_roles_may_do_nothing(client: Client, roles: str, make_world: MakeWorld) -> None:
    """A scoped caller without any known role may not even read (403)."""
    b = make_world("beta")
    response = client.get(f"/v1/hosts/{b['host_id']}", tenant=b["tenant_id"], roles=roles)
    assert response.status_code == 403
    assert error_of(response)["message"]


@pytest.mark.parametrize("value", ["abc", "", "-1", "1.5", "0x10", "1,2", "\u00b2"])
def test_bad_tenant_header_is_400_naming_it(client: Client, value: str) -> None:
    """An X-Craton-Tenant that is not a tenant id answers 400 naming the header."""
    response = client.get("/v1/hosts", headers={"X-Craton-Tenant": value})
    assert response.status_code == 400, response.get_json()
    error = error_of(response)
    assert "X-Craton-Tenant" in error["message"]
    assert "X-Craton-Tenant" in error["fields"]


def test_huge_tenant_header_is_not_a_server_error(client: Client) -> None:
    """A tenant id beyond any database integer is refused or finds nothing, never a 500."""
    response = client.get("/v1/hosts", tenant=10**30, roles="reader")
    assert response.status_code in (200, 400, 404), response.get_json()
    if response.status_code == 200:
        assert response.get_json()["items"] == []


# --- Deleting parents --------------------------------------------------------------------------


def _gone(client: Client, world: World) -> dict[str, int]:
    urls = {
        "tenant": f"/v1/tenants/{world['tenant_id']}",
        "region": f"/v1/regions/{world['region_id']}",
        "host": f"/v1/hosts/{world['host_id']}",
        "spare host": f"/v1/hosts/{world['spare_host_id']}",
        "group": f"/v1/groups/{world['group_id']}",
        "child": f"/v1/groups/{world['child_id']}",
        "secret": f"/v1/secrets/{world['secret_id']}",
        "reference": f"/v1/references/{world['reference_id']}",
    }
    return {what: client.get(url).status_code for what, url in urls.items()}


def test_deleting_a_tenant_with_content_needs_cascade(
        client: Client, app: Flask, make_world: MakeWorld) -> None:
    """Deleting a tenant that still has regions is 409 and changes nothing; with cascade=true
    it removes the tenant and everything in it, and nothing of other tenants."""
    a, b = make_world("alpha"), make_world("beta")
    before_a, before_b = snapshot(client, app, a), snapshot(client, app, b)

    refused = client.delete(f"/v1/tenants/{a['tenant_id']}")
    assert refused.status_code == 409
    assert "cascade" in error_of(refused)["message"]
    assert snapshot(client, app, a) == before_a

    assert client.delete(f"/v1/tenants/{a['tenant_id']}?cascade=true").status_code == 204
    assert set(_gone(client, a).values()) == {404}
    assert _ids(client.get(f"/v1/hosts?region_id={a['region_id']}")) == []
    assert snapshot(client, app, b) == before_b


def test_deleting_a_tenant_with_an_empty_region_needs_cascade(client: Client) -> None:
    """A region counts as content even when it is empty; an empty tenant goes without
    cascade."""
    tenant = client.create("/v1/tenants", {"name": "t-empty-region"})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "r"})
    assert client.delete(f"/v1/tenants/{tenant['id']}").status_code == 409
    assert client.get(f"/v1/regions/{region['id']}").status_code == 200
    assert client.delete(f"/v1/regions/{region['id']}").status_code == 204
    assert client.delete(f"/v1/tenants/{tenant['id']}").status_code == 204
    assert client.get(f"/v1/tenants/{tenant['id']}").status_code == 404


@pytest.mark.parametrize("content", ["hosts and groups", "groups only", "hosts only"])
def test_deleting_a_region_with_content_needs_cascade(
        client: Client, content: str, make_world: MakeWorld) -> None:
    """A region holding hosts or groups is 409 on delete and keeps everything; cascade=true
    removes it with its hosts, groups, secrets and references."""
    world = make_world("alpha")
    rid = world["region_id"]
    if content == "groups only":
        client.delete(f"/v1/hosts/{world['host_id']}")
        client.delete(f"/v1/hosts/{world['spare_host_id']}")
    elif content == "hosts only":
        for gid in (world["group_id"], world["child_id"], world["spare_group_id"]):
            assert client.delete(f"/v1/groups/{gid}").status_code == 204
    before = client.get(f"/v1/regions/{rid}/hosts").get_json(), client.get(
        f"/v1/regions/{rid}/groups").get_json()

    refused = client.delete(f"/v1/regions/{rid}", tenant=world["tenant_id"], roles="member")
    assert refused.status_code == 409
    assert "cascade" in error_of(refused)["message"]
    assert (client.get(f"/v1/regions/{rid}/hosts").get_json(),
            client.get(f"/v1/regions/{rid}/groups").get_json()) == before

    deleted = client.delete(f"/v1/regions/{rid}?cascade=true", tenant=world["tenant_id"],
                            roles="member")
    assert deleted.status_code == 204
    statuses = _gone(client, world)
    assert statuses.pop("tenant") == 200
    assert set(statuses.values()) == {404}
    assert _ids(client.get(f"/v1/hosts?region_id={rid}")) == []
    assert _ids(client.get(f"/v1/groups?region_id={rid}")) == []
