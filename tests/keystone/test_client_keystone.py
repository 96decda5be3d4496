"""The Python client and the ``craton`` command against craton-api in keystone mode, with the
session's real Keystone: password credentials from ``OS_*`` variables and from a clouds.yaml
(``cloud=`` / ``--os-cloud``) become a keystoneauth1 session whose token (issued by Keystone
for the user's project) is sent as X-Auth-Token; the user sees the tenant that records the
project, and nothing of another project's; a wrong password is a clear error."""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from cratonclient import Client
from cratonclient.errors import Unauthorized
from tests.client.conftest import Api, run_cli
from tests.keystone.conftest import KeystoneCraton, Member, member_of
from tests.openstack import Keystone


@dataclasses.dataclass
class Project:
    """A Keystone project, its tenant (region dfw, one host) and a member of it."""

    id: str
    name: str
    tenant: dict[str, Any]
    host: str
    member: Member


def project_with_a_host(craton: KeystoneCraton, cloud_admin: Member, host: str) -> Project:
    keystone = craton.keystone
    project = keystone.project(f"client-{secrets.token_hex(4)}")
    made = craton.server.call("POST", "/v1/tenants", {
        "name": project["name"], "keystone_project_id": project["id"]},
        headers=cloud_admin.headers())
    assert made.status == 201, made.body
    tenant = made.json()
    member = member_of(keystone, project["id"], "member")
    region = craton.server.call("POST", f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"},
                                headers=member.headers())
    assert region.status == 201, region.body
    created = craton.server.call("POST", f"/v1/regions/{region.json()['id']}/hosts",
                                 {"name": host}, headers=member.headers())
    assert created.status == 201, created.body
    return Project(project["id"], project["name"], tenant, host, member)


@pytest.fixture(scope="module")
def projects(craton: KeystoneCraton) -> tuple[Project, Project]:
    """Two projects with a tenant each: the user's, and another one."""
    cloud_admin = Member(craton.keystone, "admin", craton.keystone.admin_password, None,
                         system=True)
    return (project_with_a_host(craton, cloud_admin, "web-1"),
            project_with_a_host(craton, cloud_admin, "db-9"))


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CRATON_* or OS_* variable, nor any clouds.yaml, but what a test sets: openstacksdk
    reads clouds.yaml from the working directory and ~/.config/openstack."""
    import os

    for name in list(os.environ):
        if name.startswith(("CRATON_", "OS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def os_variables(keystone: Keystone, project: Project, password: str | None = None
                 ) -> dict[str, str]:
    member = project.member
    return {"OS_AUTH_URL": f"{keystone.url}/v3", "OS_IDENTITY_API_VERSION": "3",
            "OS_USERNAME": member.name, "OS_PASSWORD": password or member.password,
            "OS_PROJECT_NAME": project.name, "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default", "OS_INTERFACE": "public"}


def url_of(craton: KeystoneCraton) -> str:
    return f"http://127.0.0.1:{craton.server.port}"


def write_clouds_yaml(directory: Path, craton: KeystoneCraton, project: Project,
                      password: str | None = None) -> Path:
    """A clouds.yaml naming cloud ``lab``: password auth as ``project``'s member, and Craton's
    endpoint (``craton_endpoint_override``, the catalog having no craton service here)."""
    member, keystone = project.member, craton.keystone
    clouds = directory / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"lab": {
        "auth": {"auth_url": f"{keystone.url}/v3", "username": member.name,
                 "password": password or member.password, "project_id": project.id,
                 "user_domain_name": "Default"},
        "identity_api_version": 3, "interface": "public",
        "craton_endpoint_override": url_of(craton)}}}))
    return clouds


def sees_its_own_tenant(client: Client, keystone: Keystone, mine: Project) -> None:
    """``client`` holds a token Keystone issued for ``mine``'s member, sends it, and is shown
    ``mine``'s tenant alone (not the other project's, nor its host)."""
    token = client.transport.keystone.get_token()
    status, _, checked = keystone.call("GET", "/v3/auth/tokens", token=keystone.admin,
                                       headers={"X-Subject-Token": token})
    assert status == 200, checked
    assert checked["token"]["user"]["name"] == mine.member.name
    assert checked["token"]["project"]["id"] == mine.id
    whoami = client.transport.request("GET", "/v1/whoami").json()
    assert whoami["auth_strategy"] == "keystone"
    assert whoami["user"].startswith(f"{mine.member.name} (Keystone user ")
    assert whoami["tenant"] == {"id": mine.tenant["id"], "name": mine.tenant["name"]}
    assert [host.name for host in client.hosts.list()] == [mine.host]
    assert [tenant.id for tenant in client.tenants.list()] == [mine.tenant["id"]]


def test_a_client_from_os_variables(craton: KeystoneCraton, projects: tuple[Project, Project],
                                     clean_environment: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    mine, _ = projects
    for name, value in {**os_variables(craton.keystone, mine),
                        "CRATON_URL": url_of(craton)}.items():
        monkeypatch.setenv(name, value)
    with Client.from_environment() as client:
        sees_its_own_tenant(client, craton.keystone, mine)


def test_a_client_from_clouds_yaml(craton: KeystoneCraton, projects: tuple[Project, Project],
                                   clean_environment: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint comes from the cloud's craton_endpoint_override."""
    mine, _ = projects
    clouds = write_clouds_yaml(clean_environment, craton, mine)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    with Client.from_cloud(cloud="lab") as client:
        assert client.url == url_of(craton)
        sees_its_own_tenant(client, craton.keystone, mine)


def test_the_cli_with_os_cloud_and_with_os_variables(
        craton: KeystoneCraton, projects: tuple[Project, Project],
        clean_environment: Path) -> None:
    mine, theirs = projects
    api = Api(craton.server, clean_environment)
    clouds = write_clouds_yaml(clean_environment, craton, mine)
    listed = run_cli(api, "--os-cloud", "lab", "host", "list", "-f", "json", "--debug",
                     env={"OS_CLIENT_CONFIG_FILE": str(clouds), "CRATON_URL": ""})
    assert [row["name"] for row in json.loads(listed.stdout)] == [mine.host]
    # --debug shows the token went as X-Auth-Token, and shows neither it nor the password.
    assert "X-Auth-Token: <redacted>" in listed.stderr
    assert mine.member.password not in listed.stderr
    assert "gAAAA" not in listed.stderr  # a fernet token's first characters

    tenants = run_cli(api, "tenant", "list", "-f", "json",
                      env=os_variables(craton.keystone, mine))
    assert [row["id"] for row in json.loads(tenants.stdout)] == [mine.tenant["id"]]
    hosts = run_cli(api, "host", "list", "-f", "value", "-c", "name",
                    env=os_variables(craton.keystone, theirs))
    assert hosts.stdout.split() == [theirs.host]


def test_a_wrong_password_is_a_clear_error(craton: KeystoneCraton,
                                           projects: tuple[Project, Project],
                                           clean_environment: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Keystone's refusal is the client's Unauthorized saying so (not keystoneauth1's own
    exception), and one line from the command (not a traceback); the password is never
    shown."""
    mine, _ = projects
    wrong = f"wrong-{secrets.token_hex(6)}"
    clouds = write_clouds_yaml(clean_environment, craton, mine, password=wrong)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    with Client.from_cloud(cloud="lab") as client, pytest.raises(Unauthorized) as refused:
        list(client.hosts.list())
    message = str(refused.value)
    assert refused.value.code == 401
    assert f"Keystone at {craton.keystone.url}/v3/auth/tokens refused the credentials" in message
    assert wrong not in message

    api = Api(craton.server, clean_environment)
    for args, env in [
            (("--os-cloud", "lab"), {"OS_CLIENT_CONFIG_FILE": str(clouds), "CRATON_URL": ""}),
            ((), os_variables(craton.keystone, mine, password=wrong))]:
        failed = run_cli(api, *args, "host", "list", env=env, check=False)
        assert failed.returncode == 1, (failed.stdout, failed.stderr)
        [line] = failed.stderr.splitlines()
        assert line.startswith(f"401 Keystone at {craton.keystone.url}/v3/auth/tokens refused "
                               "the credentials (user name, password, domain or project): "), line
        assert line.count("req-") == 1 and wrong not in line
        assert failed.stdout == ""
