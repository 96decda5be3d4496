"""The tenant-isolation and policy walks of tests/tenancy_walk.py with real Keystone tokens:
each tenant is a Keystone project's (``keystone_project_id``), each caller a Keystone user
holding a Keystone role on that project, each Craton role reached through ``[keystone]
role_map`` (and Keystone's implied roles), each token checked by keystonemiddleware's auth_token
against the session's Keystone. The app runs in-process (the Flask test client through the
auth_token-wrapped WSGI app): auth_token caches each token it validated, so a walk costs little
beyond Keystone making the projects and users and issuing their tokens.

On SQLite only: what these walks add is the Keystone identity in front of the tenant scope and
the policy, which the database does not change; tests/functional/test_tenancy.py walks the
tenant scope on every backend."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from craton.api import create_app
from craton.config import KeystoneSettings
from craton.db import migrate
from craton.db.models import Change, Tenant
from craton.db.session import Database
from tests.conftest import Client, make_settings
from tests.keystone.conftest import (
    Member,
    ServiceUser,
    authtoken_options,
    ensure_role,
    member_of,
)
from tests.openstack import Keystone
from tests.tenancy_walk import (
    Access,
    ActingClient,
    World,
    build_world,
    reference_maker,
    walk_other_tenants_objects,
    walk_policy,
)

SECRET_READER = "craton_secret_reader"
"""A Keystone role of the cloud's own naming that the role map turns into secret-reader."""
UNMAPPED = "craton_auditor"
"""A Keystone role the role map does not name: it gives nothing."""
ROLE_MAP = ("reader:reader", "member:member", "admin:admin", f"{SECRET_READER}:secret-reader")

CALLERS: dict[str, tuple[str, frozenset[str]]] = {
    "reader": ("reader", frozenset({"reader"})),
    "member": ("member", frozenset({"member", "reader"})),
    "admin": ("admin", frozenset({"admin", "member", "reader"})),
    "secret-reader": (SECRET_READER, frozenset({"secret-reader"})),
    "unmapped": (UNMAPPED, frozenset()),
}
"""Each caller walked: the Keystone role it is granted on its project, and the Craton roles its
token then holds (Keystone puts the roles ``admin`` and ``member`` imply in the token too)."""


@pytest.fixture(scope="module")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('walk-db') / 'craton.db'}")
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def walk_database(sqlite_database: Database) -> Iterator[Database]:
    """The module's SQLite database, emptied after each test (as tests/conftest.py's
    ``database`` empties its own)."""
    yield sqlite_database
    with sqlite_database.transaction() as session:
        session.execute(delete(Tenant))
    with sqlite_database.connection() as connection:
        connection.execute(delete(Change))


@pytest.fixture
def keystone_access(keystone: Keystone, service_user: ServiceUser, tmp_path: Path,
                    walk_database: Database) -> Iterator[Access]:
    """Callers with Keystone tokens: a system-scoped admin as cloud admin, and for each world a
    Keystone project its tenant records, and a user per role asked for."""
    for role in (SECRET_READER, UNMAPPED):
        ensure_role(keystone, role)
    settings = dataclasses.replace(
        make_settings(tmp_path, auth_strategy="keystone"),
        keystone=KeystoneSettings(role_map=ROLE_MAP),
        # auth_token's default cache time: each token is validated once in a walk.
        keystone_authtoken=tuple(sorted(
            {**authtoken_options(keystone, service_user), "token_cache_time": "300"}.items())))
    app = create_app(settings, database=walk_database)
    base = Client(app.test_client())
    cloud_admin = Member(keystone, "admin", keystone.admin_password, None, system=True)
    admin = ActingClient(base, headers=cloud_admin.headers)
    projects: dict[int, str] = {}
    reference_url = reference_maker(settings)

    def make_world(label: str) -> World:
        project = keystone.project(f"walk-{label}-{secrets.token_hex(4)}")
        world = build_world(admin, label, reference_url,
                            tenant_fields={"keystone_project_id": project["id"]})
        projects[world["tenant_id"]] = project["id"]
        return world

    def as_role(tenant_id: int, role: str) -> Client:
        user = member_of(keystone, projects[tenant_id], CALLERS[role][0])
        return ActingClient(base, headers=user.headers)

    yield Access(strategy="keystone", app=app, admin=admin, as_role=as_role,
                 make_world=make_world,
                 roles={role: craton_roles for role, (_, craton_roles) in CALLERS.items()},
                 roleless_refusal="[keystone] role_map")
    app.extensions["craton"].close()


@pytest.mark.parametrize("role", list(CALLERS))
def test_other_tenants_objects_answer_as_missing_ids_with_keystone_tokens(
        keystone_access: Access, role: str) -> None:
    """A Keystone user with any role on tenant B's project gets from every method of every
    endpoint on tenant A's ids exactly the status it gets on ids that do not exist, learns
    none of A's names, and changes nothing of A's: 0 leaks."""
    walk_other_tenants_objects(keystone_access, role)


def test_every_operation_answers_each_keystone_role_as_the_policy_says(
        keystone_access: Access) -> None:
    """Each Keystone role on a tenant's project, on the tenant's own objects, walks every
    operation the API serves and is refused exactly what the policy's rules refuse the Craton
    roles it maps to: 0 unexpected allows, 0 unexpected denies."""
    walk_policy(keystone_access)
