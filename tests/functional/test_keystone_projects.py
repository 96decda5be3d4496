"""A tenant records the Keystone project whose tokens act in it: set by a cloud admin when the
tenant is made or later, one tenant per project, refused with the field named otherwise."""

from __future__ import annotations

from tests.conftest import Client, error_of

PROJECT = "8f2e0c3b9a4d4e5f8a1b2c3d4e5f6a7b"


def test_a_cloud_admin_links_a_tenant_to_a_project(client: Client) -> None:
    tenant = client.create("/v1/tenants", {"name": "acme", "keystone_project_id": PROJECT})
    assert tenant["keystone_project_id"] == PROJECT
    other = client.create("/v1/tenants", {"name": "globex"})
    assert other["keystone_project_id"] is None

    taken = client.post("/v1/tenants", {"name": "initech", "keystone_project_id": PROJECT})
    assert taken.status_code == 409
    assert error_of(taken)["fields"] == {"keystone_project_id": "already another tenant's"}
    moved = client.patch(f"/v1/tenants/{other['id']}", {"keystone_project_id": PROJECT})
    assert moved.status_code == 409

    unlinked = client.patch(f"/v1/tenants/{tenant['id']}", {"keystone_project_id": None})
    assert unlinked.status_code == 200 and unlinked.get_json()["keystone_project_id"] is None
    relinked = client.patch(f"/v1/tenants/{other['id']}", {"keystone_project_id": PROJECT})
    assert relinked.status_code == 200
    assert relinked.get_json()["keystone_project_id"] == PROJECT


def test_bad_project_ids_are_422_naming_the_field(client: Client) -> None:
    for value in ("", "x" * 65, " padded ", "tab\there", 7):
        answer = client.post("/v1/tenants", {"name": "acme", "keystone_project_id": value})
        assert answer.status_code == 422, (value, answer.get_json())
        assert "keystone_project_id" in error_of(answer)["fields"], value
    assert client.get("/v1/tenants").get_json()["items"] == []


def test_only_a_cloud_admin_links_a_project(client: Client) -> None:
    tenant = client.create("/v1/tenants", {"name": "acme"})
    refused = client.patch(f"/v1/tenants/{tenant['id']}", {"keystone_project_id": PROJECT},
                           tenant=tenant["id"], roles="admin")
    assert refused.status_code == 403 and "tenants:manage" in error_of(refused)["message"]
    assert client.get(f"/v1/tenants/{tenant['id']}").get_json()["keystone_project_id"] is None
