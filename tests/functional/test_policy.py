"""The policy through the API: a policy.yaml ([policy] file) changes who may do what, and a 403
names the permission."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from craton.api import create_app
from craton.config import PolicySettings, Settings
from craton.db.session import Database
from craton.policy import PolicyError
from tests.conftest import Client, error_of


def test_a_policy_file_decides_what_a_role_may_do(
        tmp_path: Path, settings: Settings, database: Database) -> None:
    """With inventory:write kept for tenant admins, a member's write is 403 naming the
    permission and changes nothing; an admin's write works."""
    path = tmp_path / "policy.yaml"
    path.write_text('"inventory:write": "rule:cloud_admin or rule:tenant_admin"\n')
    app = create_app(dataclasses.replace(settings, policy=PolicySettings(file=str(path))),
                     database=database)
    try:
        client = Client(app.test_client())
        tenant = client.create("/v1/tenants", {"name": "acme"})
        region = client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"})
        hosts = f"/v1/regions/{region['id']}/hosts"

        refused = client.post(hosts, {"name": "h1"}, tenant=tenant["id"], roles="member")
        assert refused.status_code == 403
        assert "inventory:write" in error_of(refused)["message"]
        assert client.get(hosts).get_json()["items"] == []

        assert client.post(hosts, {"name": "h1"}, tenant=tenant["id"],
                           roles="admin").status_code == 201
    finally:
        app.extensions["craton"].close()


def test_whoami_lists_the_permissions_of_the_policy_in_force(
        tmp_path: Path, settings: Settings, database: Database) -> None:
    """A policy.yaml that keeps jobs:cancel for tenant admins takes it out of a member's
    /v1/whoami (so the pages stop offering "Cancel job"), and a rule that refuses
    identity:read to readers answers them 403 naming it."""
    path = tmp_path / "policy.yaml"
    path.write_text('"jobs:cancel": "rule:cloud_admin or rule:tenant_admin"\n'
                    '"identity:read": "not role:reader"\n')
    app = create_app(dataclasses.replace(settings, policy=PolicySettings(file=str(path))),
                     database=database)
    try:
        client = Client(app.test_client())
        tenant = client.create("/v1/tenants", {"name": "acme"})
        member = client.get("/v1/whoami", tenant=tenant["id"], roles="member").get_json()
        assert "jobs:submit" in member["permissions"]
        assert "jobs:cancel" not in member["permissions"]
        admin = client.get("/v1/whoami", tenant=tenant["id"], roles="admin").get_json()
        assert "jobs:cancel" in admin["permissions"]
        refused = client.get("/v1/whoami", tenant=tenant["id"], roles="reader")
        assert refused.status_code == 403
        assert "identity:read" in error_of(refused)["message"]
    finally:
        app.extensions["craton"].close()


def test_the_app_refuses_to_start_with_a_broken_policy_file(
        tmp_path: Path, settings: Settings, database: Database) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"inventory:wirte": "role:member"\n')
    with pytest.raises(PolicyError, match=r"unknown rules: inventory:wirte"):
        create_app(dataclasses.replace(settings, policy=PolicySettings(file=str(path))),
                   database=database)
