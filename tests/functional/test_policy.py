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


def test_the_app_refuses_to_start_with_a_broken_policy_file(
        tmp_path: Path, settings: Settings, database: Database) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"inventory:wirte": "role:member"\n')
    with pytest.raises(PolicyError, match=r"unknown rules: inventory:wirte"):
        create_app(dataclasses.replace(settings, policy=PolicySettings(file=str(path))),
                   database=database)
