"""craton-api with ``[api] auth_strategy = keystone`` in front of a real Keystone: real tokens
of real projects, users and roles, checked by keystonemiddleware's auth_token."""

from __future__ import annotations

import secrets

from tests.keystone.conftest import KeystoneCraton, member_of


def test_a_project_token_reads_its_tenant(craton: KeystoneCraton) -> None:
    keystone = craton.keystone
    project = keystone.project(f"acme-{secrets.token_hex(4)}")
    made = craton.manage("tenant", "create", "acme", "--keystone-project", project["id"])
    assert made.returncode == 0, made.stderr
    reader = member_of(keystone, project["id"], "reader")
    listed = craton.server.call("GET", "/v1/tenants", headers=reader.headers())
    assert listed.status == 200, listed.body
    assert [t["keystone_project_id"] for t in listed.json()["items"]] == [project["id"]]
