"""craton-api with ``[api] auth_strategy = keystone`` in front of a real Keystone: real tokens
of real projects, users and roles, checked by keystonemiddleware's auth_token — each role
against representative operations, a system-scoped admin, expiry, revocation, a project
without a tenant, and no token anywhere in what Craton keeps or answers. Every operation, for
every role, is walked with Keystone tokens in test_tenancy_walk.py."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_server import Reply, craton_environment, running_api, upgrade_database
from tests.keystone.conftest import (
    KeystoneCraton,
    Member,
    ServiceUser,
    keystone_settings,
    member_of,
)
from tests.openstack import TOKEN_LIFETIME, Keystone


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body)
    return reply.json() if reply.body else None


class Project:
    """A Keystone project with its Craton tenant (a region and a host with a secret in it) and
    one user per role."""

    def __init__(self, craton: KeystoneCraton, admin: Member) -> None:
        keystone = craton.keystone
        self.project = keystone.project(f"acme-{secrets.token_hex(4)}")
        self.tenant = ok(craton.server.call(
            "POST", "/v1/tenants", {"name": self.project["name"],
                                    "keystone_project_id": self.project["id"]},
            headers=admin.headers()), 201)
        self.users = {role: member_of(keystone, self.project["id"], role)
                      for role in ("reader", "member", "admin")}
        self.region = ok(craton.server.call(
            "POST", f"/v1/tenants/{self.tenant['id']}/regions", {"name": "dfw"},
            headers=self.users["member"].headers()), 201)
        self.host = ok(craton.server.call(
            "POST", f"/v1/regions/{self.region['id']}/hosts", {"name": "web-1"},
            headers=self.users["member"].headers()), 201)
        self.secret = ok(craton.server.call(
            "POST", f"/v1/hosts/{self.host['id']}/secrets",
            {"name": "db-password", "kind": "password", "content": secrets.token_hex(16)},
            headers=self.users["member"].headers()), 201)


@pytest.fixture(scope="module")
def cloud_admin(craton: KeystoneCraton) -> Member:
    """The bootstrap's admin, with a system-scoped token."""
    return Member(craton.keystone, "admin", craton.keystone.admin_password, None, system=True)


@pytest.fixture(scope="module")
def acme(craton: KeystoneCraton, cloud_admin: Member) -> Project:
    return Project(craton, cloud_admin)


@pytest.fixture(scope="module")
def globex(craton: KeystoneCraton, cloud_admin: Member) -> Project:
    return Project(craton, cloud_admin)


# (method, path template, body, the least role allowed: reader < member < admin)
OPERATIONS: list[tuple[str, str, Any, str]] = [
    ("GET", "/v1/hosts/{host}", None, "reader"),
    ("GET", "/v1/regions/{region}/hosts", None, "reader"),
    ("GET", "/v1/hosts/{host}/variables?resolved=true", None, "reader"),
    ("GET", "/v1/hosts/{host}/secrets", None, "reader"),
    ("PATCH", "/v1/hosts/{host}/variables", {"variables": {"rack": "r7"}}, "member"),
    ("POST", "/v1/regions/{region}/groups", {"name": "g-{n}"}, "member"),
    ("POST", "/v1/secrets/{secret}/reveal", None, "admin"),
    ("GET", "/v1/tenants/{tenant}/apikeys", None, "admin"),
]
RANK = {"reader": 0, "member": 1, "admin": 2}


def fill(template: str, project: Project, n: int) -> str:
    return template.format(host=project.host["id"], region=project.region["id"],
                           secret=project.secret["id"], tenant=project.tenant["id"], n=n)


def test_each_role_against_representative_operations(craton: KeystoneCraton, acme: Project,
                                                      globex: Project) -> None:
    n = 0
    for role, user in acme.users.items():
        for method, path, body, least in OPERATIONS:
            n += 1
            answer = craton.server.call(
                method, fill(path, acme, n),
                body if body is None else {k: fill(v, acme, n) if isinstance(v, str) else v
                                           for k, v in body.items()},
                headers=user.headers())
            if RANK[role] >= RANK[least]:
                assert answer.status in (200, 201), (role, method, path, answer.body)
            else:
                assert answer.status == 403, (role, method, path, answer.body)
                assert "permission" in answer.error()["message"] or \
                    "allow" in answer.error()["message"]
            # Another project's token never sees acme's objects: 404, as a missing id.
            foreign = craton.server.call(method, fill(path, acme, n), body,
                                         headers=globex.users[role].headers())
            assert foreign.status in (403, 404), (role, method, path, foreign.body)
            if method == "GET" and "apikeys" not in path:
                assert foreign.status == 404, (role, path, foreign.body)
    listed = ok(craton.server.call("GET", "/v1/tenants", headers=acme.users["admin"].headers()))
    assert [t["id"] for t in listed["items"]] == [acme.tenant["id"]]


def test_a_system_scoped_admin_is_cloud_admin(craton: KeystoneCraton, cloud_admin: Member,
                                              acme: Project, globex: Project) -> None:
    listed = ok(craton.server.call("GET", "/v1/tenants?limit=1000",
                                   headers=cloud_admin.headers()))
    ids = {tenant["id"] for tenant in listed["items"]}
    assert {acme.tenant["id"], globex.tenant["id"]} <= ids
    shown = ok(craton.server.call("POST", f"/v1/secrets/{globex.secret['id']}/reveal",
                                  headers=cloud_admin.headers()))
    assert shown["name"] == "db-password"
    # A tenant admin may not make tenants: that is the cloud admin's.
    refused = craton.server.call("POST", "/v1/tenants", {"name": f"t-{secrets.token_hex(3)}"},
                                 headers=acme.users["admin"].headers())
    assert refused.status == 403 and "tenants:manage" in refused.error()["message"]


def test_whoami_shows_the_keystone_user_its_tenant_and_permissions(
        craton: KeystoneCraton, cloud_admin: Member, acme: Project) -> None:
    """What the web pages show after a Keystone sign-in: the user, the tenant of the token's
    project, the mapped roles and the permissions they give; the token itself never."""
    for role, user in acme.users.items():
        token = user.token
        reply = craton.server.call("GET", "/v1/whoami", headers={"X-Auth-Token": token})
        shown = ok(reply)
        assert shown["auth_strategy"] == "keystone"
        assert shown["tenant"] == {"id": acme.tenant["id"], "name": acme.tenant["name"]}
        assert shown["cloud_admin"] is False and role in shown["roles"]
        assert shown["user"].startswith(f"{user.name} (Keystone user ")
        assert ("jobs:cancel" in shown["permissions"]) == (RANK[role] >= RANK["member"])
        assert ("apikeys:manage" in shown["permissions"]) == (role == "admin")
        assert token not in reply.body.decode()
    admin = ok(craton.server.call("GET", "/v1/whoami", headers=cloud_admin.headers()))
    assert (admin["auth_strategy"], admin["tenant"], admin["cloud_admin"]) == (
        "keystone", None, True)


def test_a_system_scoped_reader_is_not_a_cloud_admin(craton: KeystoneCraton) -> None:
    keystone = craton.keystone
    name, password = f"auditor-{secrets.token_hex(3)}", secrets.token_hex(12)
    user = keystone.user(name, password)
    keystone.grant(user["id"], "reader")
    auditor = Member(keystone, name, password, None, system=True)
    refused = craton.server.call("GET", "/v1/tenants", headers=auditor.headers())
    assert refused.status == 403
    assert "system-scoped token is a cloud admin only with the Keystone role 'admin'" in \
        refused.error()["message"]


def test_missing_and_invalid_tokens_are_401(craton: KeystoneCraton, acme: Project) -> None:
    challenge = f'Keystone uri="{craton.keystone.url}/v3"'
    missing = craton.server.call("GET", f"/v1/hosts/{acme.host['id']}")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == challenge
    assert "X-Auth-Token" in missing.error()["message"]
    forged = craton.server.call("GET", f"/v1/hosts/{acme.host['id']}",
                                headers={"X-Auth-Token": "gAAAAAB" + "x" * 180})
    assert forged.status == 401 and forged.headers["WWW-Authenticate"] == challenge
    # Identity headers sent by the caller are removed by auth_token before Craton reads any.
    spoofed = craton.server.call("GET", f"/v1/hosts/{acme.host['id']}", headers={
        "X-Identity-Status": "Confirmed", "X-Project-Id": acme.project["id"],
        "X-Roles": "admin", "X-System-Scope": "all"})
    assert spoofed.status == 401
    # Nor does a project admin become a cloud admin by claiming the system scope (a header
    # auth_token sets for system tokens but does not remove from what the caller sends).
    claimed = craton.server.call("GET", "/v1/tenants?limit=1000", headers={
        **acme.users["admin"].headers(), "OpenStack-System-Scope": "all"})
    assert [t["id"] for t in ok(claimed)["items"]] == [acme.tenant["id"]]
    # The pages and the API document need no token.
    assert craton.server.call("GET", "/v1/openapi.json").status == 200


def test_a_revoked_token_is_refused_once_the_cache_lets_go(craton: KeystoneCraton,
                                                           acme: Project) -> None:
    user = acme.users["reader"]
    token = craton.keystone.token(user.name, user.password, project_id=acme.project["id"])
    path = f"/v1/hosts/{acme.host['id']}"
    ok(craton.server.call("GET", path, headers={"X-Auth-Token": token.value}))
    craton.keystone.revoke(token.value)
    # [keystone_authtoken] token_cache_time is 2 s for this server.
    deadline = time.monotonic() + 15
    while (answer := craton.server.call("GET", path, headers={"X-Auth-Token": token.value})
           ).status == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert answer.status == 401, answer.body
    assert "not valid" in answer.error()["message"]


def test_an_expired_token_is_refused(craton: KeystoneCraton, acme: Project) -> None:
    user = acme.users["member"]
    token = craton.keystone.token(user.name, user.password, project_id=acme.project["id"])
    path = f"/v1/hosts/{acme.host['id']}"
    ok(craton.server.call("GET", path, headers={"X-Auth-Token": token.value}))
    assert token.expires_at - time.time() <= TOKEN_LIFETIME
    time.sleep(max(0.0, token.expires_at - time.time()) + 1)
    expired = craton.server.call("GET", path, headers={"X-Auth-Token": token.value})
    assert expired.status == 401, expired.body


def test_a_project_without_a_tenant_is_403_until_an_admin_makes_one(
        craton: KeystoneCraton) -> None:
    keystone = craton.keystone
    project = keystone.project(f"initech-{secrets.token_hex(4)}")
    admin = member_of(keystone, project["id"], "admin")
    refused = craton.server.call("GET", "/v1/tenants", headers=admin.headers())
    assert refused.status == 403
    message = refused.error()["message"]
    assert f"Keystone project {project['id']} has no Craton tenant" in message
    assert "craton-manage tenant create --keystone-project" in message
    made = craton.manage("tenant", "create", project["name"], "--keystone-project",
                         project["id"])
    assert made.returncode == 0, made.stderr
    listed = ok(craton.server.call("GET", "/v1/tenants", headers=admin.headers()))
    assert [t["keystone_project_id"] for t in listed["items"]] == [project["id"]]
    again = craton.manage("tenant", "create", "other", "--keystone-project", project["id"])
    assert again.returncode == 1 and "already tenant" in again.stderr


def test_roles_outside_the_role_map_give_nothing(craton: KeystoneCraton, acme: Project) -> None:
    keystone = craton.keystone
    status, _, _ = keystone.call("POST", "/v3/roles", {"role": {"name": "observer"}},
                                 token=keystone.admin)
    assert status in (201, 409)
    observer = member_of(keystone, acme.project["id"], "observer")
    refused = craton.server.call("GET", "/v1/tenants", headers=observer.headers())
    assert refused.status == 403 and "[keystone] role_map" in refused.error()["message"]
    unscoped = Member(keystone, observer.name, observer.password, None)
    refused = craton.server.call("GET", "/v1/tenants", headers=unscoped.headers())
    assert refused.status == 403 and "not scoped to a project" in refused.error()["message"]


def test_no_token_reaches_the_log_or_the_database(craton: KeystoneCraton, acme: Project,
                                                  cloud_admin: Member) -> None:
    tokens = [cloud_admin.token, *(user.token for user in acme.users.values())]
    for token in tokens:
        ok(craton.server.call("GET", "/v1/tenants", headers={"X-Auth-Token": token}))
    files = [path for path in (craton.home / "data").rglob("*") if path.is_file()]
    assert any(path.name == "craton.db" for path in files)
    for path in [*files, craton.server.log]:
        content = path.read_bytes()
        for token in tokens:
            assert token.encode() not in content, path


@pytest.fixture(scope="module")
def auto_craton(keystone: Keystone, service_user: ServiceUser,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneCraton]:
    """A second craton-api: tenants made on first use, the admin project's admins cloud
    admins."""


    status, _, answer = keystone.call("GET", "/v3/projects?name=admin", token=keystone.admin)
    assert status == 200
    home = tmp_path_factory.mktemp("craton-keystone-auto")
    env = craton_environment(home, **keystone_settings(
        keystone, service_user, CRATON_KEYSTONE_AUTO_CREATE_TENANTS="true",
        CRATON_KEYSTONE_ADMIN_PROJECT_ID=answer["projects"][0]["id"]))
    upgrade_database(env)
    with running_api(env, home) as server:
        yield KeystoneCraton(server, keystone, env, home)


def test_tenants_made_on_first_use_and_the_admin_project(auto_craton: KeystoneCraton) -> None:
    keystone = auto_craton.keystone
    project = keystone.project(f"hooli-{secrets.token_hex(4)}")
    member = member_of(keystone, project["id"], "member")
    listed = ok(auto_craton.server.call("GET", "/v1/tenants", headers=member.headers()))
    [tenant] = listed["items"]
    assert (tenant["name"], tenant["keystone_project_id"]) == (project["name"], project["id"])
    region = ok(auto_craton.server.call("POST", f"/v1/tenants/{tenant['id']}/regions",
                                        {"name": "dfw"}, headers=member.headers()), 201)
    assert region["tenant_id"] == tenant["id"]
    # The same project again: the same tenant, not a second one.
    reader = member_of(keystone, project["id"], "reader")
    again = ok(auto_craton.server.call("GET", "/v1/tenants", headers=reader.headers()))
    assert [t["id"] for t in again["items"]] == [tenant["id"]]
    # The admin role on the admin project ([keystone] admin_project_id) is cloud admin.
    _, _, answer = keystone.call("GET", "/v3/projects?name=admin", token=keystone.admin)
    admin = Member(keystone, "admin", keystone.admin_password, answer["projects"][0]["id"])
    everything = ok(auto_craton.server.call("GET", "/v1/tenants?limit=1000",
                                            headers=admin.headers()))
    assert tenant["id"] in {t["id"] for t in everything["items"]}
    ok(auto_craton.server.call("POST", "/v1/tenants", {"name": f"t-{secrets.token_hex(3)}"},
                               headers=admin.headers()), 201)
