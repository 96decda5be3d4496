"""The tenant-isolation and policy walks, shared by every auth strategy: a world of objects per
tenant, every operation the served OpenAPI document lists with a valid body and every id it
takes, and the two walks over them —

- ``walk_other_tenants_objects``: a caller of tenant B, on every method of every endpoint on
  tenant A's ids, gets exactly what it gets on ids that do not exist, learns none of A's names
  and changes nothing (0 leaks);
- ``walk_policy``: each role of a tenant, on its own objects, is refused exactly the operations
  the policy's rules refuse it (0 unexpected allows or denies).

An ``Access`` says how callers are made under one strategy (noauth role headers, API keys,
Keystone tokens): tests/functional/test_tenancy.py and tests/keystone/ build one each."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from craton.config import Settings
from craton.context import Action, RequestContext
from craton.policy import list_rules
from tests.conftest import Client, error_of
from tests.functional.job_helpers import finished_job

ARGUMENT = re.compile(r"<(?:([^<>:]+):)?([^<>]+)>")
_worlds = itertools.count(1)

World = dict[str, Any]
MakeWorld = Callable[[str], World]

# A valid body for every /v1 operation on an id that takes one, so a refusal can only come from
# tenant scoping (tests/functional/test_tenancy.py's test_every_id_endpoint_works_for_the_owner
# proves each body is accepted). A new endpoint with a body fails
# test_body_table_covers_every_operation until it is added here.
BODIES: dict[tuple[str, str], Callable[[World], Any]] = {
    ("/v1/tenants/<int:tenant_id>", "PATCH"): lambda w: {"description": "changed"},
    ("/v1/tenants/<int:tenant_id>/regions", "POST"): lambda w: {"name": "intruder"},
    ("/v1/regions/<int:region_id>", "PATCH"): lambda w: {"description": "changed"},
    ("/v1/regions/<int:region_id>/variables", "PUT"): lambda w: {"variables": {"x": 1}},
    ("/v1/regions/<int:region_id>/variables", "PATCH"): lambda w: {"variables": {"role": 2}},
    ("/v1/regions/<int:region_id>/hosts", "POST"): lambda w: {"name": "intruder"},
    ("/v1/regions/<int:region_id>/groups", "POST"): lambda w: {"name": "intruder"},
    ("/v1/regions/<int:region_id>/import", "POST"): lambda w: {
        "format": "ini", "content": "[intruders]\nintruder ansible_host=192.0.2.1\n"},
    ("/v1/hosts/<int:host_id>", "PATCH"): lambda w: {"ssh_user": "intruder"},
    ("/v1/hosts/<int:host_id>/variables", "PUT"): lambda w: {"variables": {"x": 1}},
    ("/v1/hosts/<int:host_id>/variables", "PATCH"): lambda w: {"variables": {"role": 2}},
    ("/v1/hosts/<int:host_id>/secrets", "POST"): lambda w: {
        "name": "intruder", "kind": "password", "content": "hunter2"},
    ("/v1/groups/<int:group_id>", "PATCH"): lambda w: {"description": "changed"},
    ("/v1/groups/<int:group_id>/variables", "PUT"): lambda w: {"variables": {"x": 1}},
    ("/v1/groups/<int:group_id>/variables", "PATCH"): lambda w: {"variables": {"role": 2}},
    ("/v1/groups/<int:group_id>/hosts", "POST"): lambda w: {"hosts": [w["spare_host_id"]]},
    ("/v1/groups/<int:group_id>/hosts", "DELETE"): lambda w: {"hosts": [w["host_id"]]},
    ("/v1/groups/<int:group_id>/children", "POST"): lambda w: {
        "children": [w["spare_group_id"]]},
    ("/v1/groups/<int:group_id>/children", "DELETE"): lambda w: {"children": [w["child_id"]]},
    ("/v1/groups/<int:group_id>/references", "POST"): lambda w: {
        "name": "intruder", "url": "https://git.example.com/intruder.git"},
    ("/v1/secrets/<int:secret_id>", "PATCH"): lambda w: {"name": "renamed"},
    ("/v1/references/<int:reference_id>", "PATCH"): lambda w: {"ref": "stable"},
    ("/v1/tenants/<int:tenant_id>/apikeys", "POST"): lambda w: {
        "name": "intruder", "role": "admin"},
    ("/v1/tenants", "POST"): lambda w: {"name": f"intruder-{next(_worlds)}"},
    # Selects no host: answered after the permission check (422), starting nothing.
    ("/v1/jobs", "POST"): lambda w: {"region_id": w["region_id"], "playbook": "craton:ping",
                                     "filters": {"name": "no-such-host"}},
}


def build_world(client: Client, label: str, reference_url: Callable[[int], str],
                tenant_fields: Mapping[str, Any] | None = None) -> World:
    """A tenant (made by ``client``, a cloud admin, with ``tenant_fields`` besides its name)
    with a region, three groups (parent > child, spare), two hosts (one in parent), variables
    ``role`` on region, group and host, a secret, a reference (at the URL ``reference_url``
    gives for the tenant's id), a finished job and an API key. Keys are the URL argument names
    they fill (plus spare objects the bodies use)."""
    label = f"{label}{next(_worlds)}"
    tenant = client.create("/v1/tenants", {"name": f"tenant-{label}", **(tenant_fields or {})})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions",
                           {"name": f"region-{label}", "variables": {"role": label}})
    rid = region["id"]
    parent = client.create(f"/v1/regions/{rid}/groups",
                           {"name": f"parent_{label}", "variables": {"role": label}})
    child = client.create(f"/v1/regions/{rid}/groups",
                          {"name": f"child_{label}", "parents": [parent["id"]]})
    spare_group = client.create(f"/v1/regions/{rid}/groups", {"name": f"spare_{label}"})
    created = client.post(f"/v1/regions/{rid}/hosts", [
        {"name": f"host-{label}", "groups": [parent["id"]], "variables": {"role": label}},
        {"name": f"spare-{label}"},
    ])
    assert created.status_code == 201, created.get_json()
    host, spare_host = created.get_json()["items"]
    secret = client.create(f"/v1/hosts/{host['id']}/secrets",
                           {"name": "root-password", "kind": "password",
                            "content": f"pw-{label}"})
    reference = client.create(f"/v1/groups/{parent['id']}/references",
                              {"name": "common", "url": reference_url(tenant["id"])})
    job = finished_job(client, rid)
    apikey = client.create(f"/v1/tenants/{tenant['id']}/apikeys",
                           {"name": f"key-{label}", "role": "reader"})
    return {
        "tenant_id": tenant["id"], "region_id": rid, "group_id": parent["id"],
        "child_id": child["id"], "host_id": host["id"], "secret_id": secret["id"],
        "reference_id": reference["id"], "job_id": job["id"], "key": "role",
        "apikey_id": apikey["id"],
        "spare_group_id": spare_group["id"], "spare_host_id": spare_host["id"],
        "names": {"tenant": tenant["name"], "region": region["name"], "group": parent["name"],
                  "child": child["name"], "host": host["name"], "spare host": spare_host["name"],
                  "spare group": spare_group["name"], "API key": apikey["name"]},
    }


def urls(rule: str, world: World) -> list[str]:
    """``rule`` with its ids from ``world``; one URL per choice of an ``any(...)`` argument."""
    choices: list[list[tuple[str, str]]] = []
    for converter, name in ARGUMENT.findall(rule):
        if converter.startswith("any("):
            values = [item.strip(" '\"") for item in converter[4:-1].split(",")]
        else:
            assert name in world, f"build_world provides no value for {name!r} of {rule}"
            values = [str(world[name])]
        choices.append([(name, value) for value in values])
    return [ARGUMENT.sub(lambda match, chosen=dict(combination): chosen[match.group(2)], rule)
            for combination in itertools.product(*choices)]


NOT_OPERATIONS = {"/v1/openapi.json"}
"""Served to anyone, the same for every caller."""


def all_operations(app: Flask, *, ids_only: bool = False) -> list[tuple[str, str]]:
    """(rule, method) of every /v1 route (with ``ids_only``, of those with an integer id in
    their URL). OPTIONS is left out: Flask answers it itself with the same Allow header for any
    id, without looking anything up."""
    operations = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/") or rule.rule in NOT_OPERATIONS:
            continue
        if ids_only and not any(isinstance(conv, IntegerConverter)
                                for conv in rule._converters.values()):
            continue
        operations += [(rule.rule, method) for method in sorted(rule.methods - {"OPTIONS"})]
    return operations


def id_operations(app: Flask) -> list[tuple[str, str]]:
    return all_operations(app, ids_only=True)


def openapi_path(rule: str) -> str:
    return ARGUMENT.sub(lambda match: "{" + match.group(2) + "}", rule)


def openapi_operation(document: dict[str, Any], rule: str, method: str) -> dict[str, Any]:
    return document["paths"].get(openapi_path(rule), {}).get(method.lower(), {})


def queries(document: dict[str, Any], rule: str, method: str) -> list[str]:
    """Query strings to try: with every boolean option on (cascade, resolved, descendants: the
    most a call can reach or destroy) and without."""
    operation = openapi_operation(document, rule, method)
    flags = [param["name"] for param in operation.get("parameters", [])
             if param.get("in") == "query" and param.get("schema", {}).get("type") == "boolean"]
    return (["?" + "&".join(f"{flag}=true" for flag in flags)] if flags else []) + [""]


def body_of(document: dict[str, Any], rule: str, method: str, world: World) -> Any:
    if "requestBody" not in openapi_operation(document, rule, method):
        return None
    return BODIES[(rule, method)](world)


def unused(value: Any) -> Any:
    """``value`` without API keys' ``last_used_at``, which using a key moves on."""
    if isinstance(value, dict):
        return {k: unused(v) for k, v in value.items() if k != "last_used_at"}
    return [unused(v) for v in value] if isinstance(value, list) else value


def snapshot(client: Client, app: Flask, world: World) -> dict[str, Any]:
    """Everything a cloud admin can read about ``world``: every GET on its ids (but when its
    API keys were last used), and the secret's content."""
    seen: dict[str, Any] = {}
    for rule, method in id_operations(app):
        if method == "GET":
            for url in urls(rule, world):
                response = client.get(url)
                seen[url] = (response.status_code, unused(response.get_json(silent=True)))
    reveal = client.post(f"/v1/secrets/{world['secret_id']}/reveal")
    seen["reveal"] = (reveal.status_code, reveal.get_json())
    return seen


# --- Policy ----------------------------------------------------------------------------------

CONDITIONAL = {Action.USE_SECRETS.value}
"""Rules an operation checks only in some cases (secrets:use: when a job's hosts hold
secrets); tested on their own (tests/functional/test_job_rights.py)."""


def documented_rules() -> dict[tuple[str, str], set[str]]:
    """(method, OpenAPI path) → the rules the policy documents as deciding it."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in list_rules():
        for operation in getattr(rule, "operations", None) or ():
            if rule.name not in CONDITIONAL:
                found[(operation["method"], operation["path"])].add(rule.name)
    return found


def permission_of(rule: str, method: str) -> str:
    [permission] = documented_rules()[("GET" if method == "HEAD" else method, openapi_path(rule))]
    return permission


def document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(OpenAPI path, METHOD) of every operation the document lists."""
    return {(path, method.upper()) for path, item in document["paths"].items()
            for method in item if method in ("get", "put", "post", "delete", "patch")}


# --- Callers -----------------------------------------------------------------------------------


class ActingClient(Client):
    """A client whose every request carries one caller's credentials: noauth's tenant and role
    headers, an API key, or a Keystone token (``headers`` may be a callable, asked before each
    request, for credentials that are renewed)."""

    def __init__(self, base: Client, *, tenant: int | None = None, roles: str | None = None,
                 headers: dict[str, str] | Callable[[], dict[str, str]] | None = None) -> None:
        super().__init__(base.http)
        self.tenant, self.roles, self._headers = tenant, roles, headers or {}

    @property
    def headers(self) -> dict[str, str]:
        """The credential headers the next request carries."""
        return self._headers() if callable(self._headers) else self._headers

    def request(self, method: str, url: str, json: Any = None, *, tenant: int | None = None,
                roles: str | None = None, headers: dict[str, str] | None = None,
                **kwargs: Any) -> Any:
        return super().request(method, url, json,
                               tenant=self.tenant if tenant is None else tenant,
                               roles=self.roles if roles is None else roles,
                               headers={**self.headers, **(headers or {})}, **kwargs)


@dataclasses.dataclass
class Access:
    """How callers are made under one auth strategy: a cloud admin, and a caller with one role
    in a tenant.

    ``roles`` maps each role name ``as_role`` takes to the Craton roles such a caller holds
    (under Keystone, those its Keystone roles, implied ones included, map to). A strategy that
    refuses a caller holding no Craton role at all before the policy is asked (Keystone: a
    token whose roles the role map does not name gets nothing, not even ``/v1/whoami``) says
    so with ``roleless_refusal``, what its 403s name."""

    strategy: str
    app: Flask
    admin: Client
    as_role: Callable[[int, str], Client]
    make_world: MakeWorld
    roles: dict[str, frozenset[str]]
    roleless_refusal: str | None = None

    def ruled(self, tenant_id: int, role: str) -> RequestContext:
        """The context the policy's rules decide for a caller with ``role`` in the tenant."""
        return RequestContext(tenant_id=tenant_id, roles=self.roles[role])


def reference_maker(settings: Settings) -> Callable[[int], str]:
    """Reference URLs to a local YAML file in the tenant's own directory below the data
    directory (where its file references may read), so no world needs the network."""

    def reference_url(tenant_id: int) -> str:
        sources = settings.data_dir / "sources" / str(tenant_id)
        sources.mkdir(parents=True, exist_ok=True)
        (sources / "common.yml").write_text("ntp_server: 10.0.0.1\n")
        return f"file://{(sources / 'common.yml').resolve()}"

    return reference_url


def assert_unchanged(before: tuple[dict[str, Any], ...],
                     after: tuple[dict[str, Any], ...]) -> None:
    """The snapshots are the same; else the failure names what changed (this module is not
    rewritten by pytest, so a bare assert would say nothing)."""
    changed = {url: (seen[url], now.get(url)) for seen, now in zip(before, after, strict=True)
               for url in seen.keys() | now.keys() if seen.get(url) != now.get(url)}
    assert changed == {}, f"changed (before, after): {changed}"


# --- The walks ---------------------------------------------------------------------------------


def walk_other_tenants_objects(access: Access, role: str) -> None:
    """A caller with ``role`` in tenant B gets from every method of every endpoint on tenant
    A's ids exactly the status it gets on ids that do not exist (404 for any role that may
    read), learns none of A's names, and changes nothing of A's or B's: 0 leaks."""
    client, app = access.admin, access.app
    a, b = access.make_world("alpha"), access.make_world("beta")
    caller = access.as_role(b["tenant_id"], role)
    missing = {key: value + 1_000_000 if key.endswith("_id") else value
               for key, value in a.items()}
    document = client.get("/v1/openapi.json").get_json()
    before = snapshot(client, app, a), snapshot(client, app, b)

    leaks, statuses = {}, set()
    # Deletes last, innermost first, so one leak cannot hide others behind a 404.
    operations = sorted(id_operations(app), key=lambda op: (op[1] == "DELETE", -len(op[0])))
    for rule, method in operations:
        body = body_of(document, rule, method, a)
        for url, absent in zip(urls(rule, a), urls(rule, missing), strict=True):
            for query in queries(document, rule, method):
                response = caller.request(method, url + query, body)
                control = caller.request(method, absent + query, body)
                statuses.add(response.status_code)
                if response.status_code != control.status_code:
                    leaks[(method, url + query)] = (response.status_code, control.status_code)
                if method != "HEAD" and response.status_code == 404:
                    error_of(response)
                    text = response.get_data(as_text=True)
                    assert not [name for name in a["names"].values() if name in text], (url, text)
    assert leaks == {}, f"{len(leaks)} leaks (A's status, a missing id's): {leaks}"
    # A tenant admin may do everything there but manage tenants, so all it meets is 404s; a
    # role without some permission may be refused before the lookup, as for a missing id.
    if "admin" in access.roles[role]:
        assert statuses == {404}, statuses
    else:
        assert statuses <= {403, 404}, statuses

    assert_unchanged(before, (snapshot(client, app, a), snapshot(client, app, b)))


def walk_policy(access: Access) -> None:
    """Each role of ``access.roles``, in a tenant of its own, walks every operation of the
    served OpenAPI document on its own objects: an operation is refused (403 naming its
    permission, or inventory:read, which every other permission needs) exactly when the
    policy's rule does not allow the role — 0 unexpected allows, 0 unexpected denies. Deletes
    come last, innermost first, so an allowed delete hides nothing behind a 404."""
    document = access.admin.get("/v1/openapi.json").get_json()
    operations = sorted(all_operations(access.app),
                        key=lambda op: (op[1] == "DELETE", -len(op[0]), op))
    walked_operations = {(openapi_path(rule), "GET" if method == "HEAD" else method)
                         for rule, method in operations}
    assert document_operations(document) == walked_operations, (
        document_operations(document) ^ walked_operations)
    unexpected: dict[tuple[str, str, str], tuple[int, str, str]] = {}
    walked = 0
    for role in access.roles:
        world = access.make_world(f"walk-{role or 'none'}")
        caller = access.as_role(world["tenant_id"], role)
        ruled = access.ruled(world["tenant_id"], role)
        for rule, method in operations:
            permission = permission_of(rule, method)
            expected = "allowed" if ruled.can(Action(permission)) else "denied"
            # Every permission needs inventory:read too: a caller without it may be told so.
            named = [permission] + ([] if ruled.can(Action.READ) else [Action.READ.value])
            if not ruled.roles and access.roleless_refusal:
                # Refused by the strategy before the policy is asked, on every operation.
                expected, named = "denied", [access.roleless_refusal]
            body = body_of(document, rule, method, world)
            for url in urls(rule, world):
                for query in queries(document, rule, method):
                    response = caller.request(method, url + query, body)
                    walked += 1
                    outcome = "denied" if response.status_code == 403 else "allowed"
                    if outcome == "denied" and method != "HEAD" and not any(
                            name in error_of(response)["message"] for name in named):
                        outcome = f"denied without naming {' or '.join(named)}"
                    if outcome != expected or response.status_code in (401, 500):
                        unexpected[(role, method, url + query)] = (
                            response.status_code, permission, expected)
    assert unexpected == {}, (
        f"{len(unexpected)} unexpected (status, permission, expected): {unexpected}")
    assert walked > 100 * len(access.roles), walked
