"""A real Keystone for the session, and craton-api (``[api] auth_strategy = keystone``) in
front of it: the fixtures that tests/keystone/ shares."""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_server import (
    BIN,
    Server,
    craton_environment,
    running_api,
    upgrade_database,
)
from tests.openstack import Keystone, Token, keystone_server

ROLES = ("reader", "member", "admin")


@pytest.fixture(scope="session")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keystone]:
    with keystone_server(tmp_path_factory.mktemp("keystone")) as server:
        yield server


@dataclasses.dataclass
class ServiceUser:
    """The user craton-api's auth_token checks tokens as (the service role, in project
    service)."""

    name: str
    password: str
    project_id: str


@pytest.fixture(scope="session")
def service_user(keystone: Keystone) -> ServiceUser:
    project = keystone.project("service")
    password = secrets.token_hex(12)
    user = keystone.user("craton", password)
    keystone.grant(user["id"], "service", project_id=project["id"])
    return ServiceUser("craton", password, project["id"])


def authtoken_options(keystone: Keystone, service: ServiceUser) -> dict[str, str]:
    """``[keystone_authtoken]`` for checking tokens of ``keystone`` as ``service``."""
    return {
        "www_authenticate_uri": f"{keystone.url}/v3", "auth_url": f"{keystone.url}/v3",
        "auth_type": "password", "username": service.name, "password": service.password,
        "project_name": "service", "user_domain_name": "Default",
        "project_domain_name": "Default", "interface": "public",
        # A revoked token is refused once auth_token's cache of it expires: short here.
        "token_cache_time": "2",
    }


def keystone_settings(keystone: Keystone, service: ServiceUser, **extra: str) -> dict[str, str]:
    """craton-api's environment for ``[api] auth_strategy = keystone`` against ``keystone``."""
    return {"CRATON_API_AUTH_STRATEGY": "keystone",
            **{f"CRATON_KEYSTONE_AUTHTOKEN_{k.upper()}": v
               for k, v in authtoken_options(keystone, service).items()},
            **extra}


@dataclasses.dataclass
class KeystoneCraton:
    """craton-api behind the session's Keystone, with what tests need to act in it."""

    server: Server
    keystone: Keystone
    env: dict[str, str]
    home: Path

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "craton-manage"), *args], env=self.env,
                              capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def craton(keystone: Keystone, service_user: ServiceUser,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneCraton]:
    home = tmp_path_factory.mktemp("craton-keystone")
    env = craton_environment(home, **keystone_settings(keystone, service_user))
    upgrade_database(env)
    with running_api(env, home) as server:
        yield KeystoneCraton(server, keystone, env, home)


@dataclasses.dataclass
class Member:
    """A Keystone user with one role on one project; ``headers()`` carries a fresh token."""

    keystone: Keystone
    name: str
    password: str
    project_id: str | None
    system: bool = False
    _token: Token | None = None

    @property
    def token(self) -> str:
        if self._token is None or self._token.expires_at - time.time() < 12:
            self._token = self.keystone.token(self.name, self.password,
                                              project_id=self.project_id, system=self.system)
        return self._token.value

    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}


def member_of(keystone: Keystone, project_id: str, role: str | None) -> Member:
    """A new user holding ``role`` on the project (none: a user without a role there)."""
    name = f"user-{secrets.token_hex(4)}"
    password = secrets.token_hex(12)
    user = keystone.user(name, password)
    if role:
        keystone.grant(user["id"], role, project_id=project_id)
    return Member(keystone, name, password, project_id)


def ensure_role(keystone: Keystone, name: str) -> None:
    """A Keystone role ``name`` exists (made now, or by an earlier test of the session)."""
    status, _, answer = keystone.call("POST", "/v3/roles", {"role": {"name": name}},
                                      token=keystone.admin)
    assert status in (201, 409), (status, answer)
