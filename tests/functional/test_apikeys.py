"""API keys through the API (``[api] auth_strategy = apikey``): a cloud-admin key made by
craton-manage's own code, tenant keys made through the API by a tenant admin, used, listed
without their secret, revoked, expired, refused when wrong (401 with a challenge), kept to their
tenant (another tenant's objects are 404 like a missing id) and to their role (403 naming the
permission); the clear key is in no row, no file of the database and no error body."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select, update

from craton.api import create_app
from craton.cmd import manage
from craton.db.models import ApiKey, Base
from craton.db.session import Database
from craton.values import utcnow
from tests.conftest import Client, error_of, make_settings

CHALLENGE = 'Bearer realm="craton"'


@pytest.fixture
def keyed_app(tmp_path: Path, database: Database) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path, auth_strategy="apikey"), database=database)
    yield app
    app.extensions["craton"].close()
    with database.transaction() as session:
        session.execute(delete(ApiKey))  # cloud-admin keys have no tenant to cascade from


@pytest.fixture
def anonymous(keyed_app: Flask) -> Client:
    return Client(keyed_app.test_client())


def manage_create(keyed_app: Flask, database: Database, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """A key made by ``craton-manage apikey create ARGS`` on the app's database and data
    directory; what it prints on stdout."""
    settings = keyed_app.extensions["craton"].settings
    monkeypatch.setenv("CRATON_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CRATON_DATABASE_URL", database.url)
    monkeypatch.delenv("CRATON_CONFIG", raising=False)
    capsys.readouterr()
    assert manage.main(["apikey", "create", *args]) == 0
    out, err = capsys.readouterr()
    assert "shown this once" in err
    return out.strip()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def root_key(keyed_app: Flask, database: Database, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> str:
    return manage_create(keyed_app, database, monkeypatch, capsys, "--cloud-admin",
                         "--name", "operator", "--expires", "90d")


def tenant_with_host(client: Client, root_key: str, name: str) -> dict[str, Any]:
    tenant = client.create("/v1/tenants", {"name": name}, headers=bearer(root_key))
    region = client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"},
                           headers=bearer(root_key))
    host = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "web-1"},
                         headers=bearer(root_key))
    return {"tenant": tenant, "region": region, "host": host}


def make_key(client: Client, by: str, tenant_id: int, role: str, **extra: Any) -> dict[str, Any]:
    return client.create(f"/v1/tenants/{tenant_id}/apikeys",
                         {"name": f"{role}-key", "role": role, **extra}, headers=bearer(by))


def assert_unauthorized(response: Any, words: str) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.headers["WWW-Authenticate"].startswith(CHALLENGE)
    assert words in error_of(response)["message"]


def test_keys_from_craton_manage_and_the_api_work_end_to_end(anonymous: Client,
                                                             root_key: str) -> None:
    """The operator's cloud-admin key sets up a tenant; the tenant's admin key, made through
    the API and shown once, makes a reader key; keys are listed without their secrets and a
    revoked key answers 401 from then on."""
    world = tenant_with_host(anonymous, root_key, "acme")
    tid, hid = world["tenant"]["id"], world["host"]["id"]
    admin = make_key(anonymous, root_key, tid, "admin")
    assert admin["key"].startswith(f"{admin['prefix']}_") and admin["tenant_id"] == tid
    reader = make_key(anonymous, admin["key"], tid, "reader")
    assert reader["created_by"] == f"admin-key (API key {admin['id']})"

    shown = anonymous.get(f"/v1/hosts/{hid}", headers=bearer(reader["key"]))
    assert shown.status_code == 200 and shown.get_json()["name"] == "web-1"
    also = anonymous.get(f"/v1/hosts/{hid}", headers={"X-Auth-Token": reader["key"]})
    assert also.status_code == 200

    listed = anonymous.get(f"/v1/tenants/{tid}/apikeys", headers=bearer(admin["key"]))
    assert listed.status_code == 200
    items = listed.get_json()["items"]
    assert [(item["name"], item["role"]) for item in items] == [
        ("admin-key", "admin"), ("reader-key", "reader")]
    assert all("key" not in item for item in items)
    text = listed.get_data(as_text=True)
    assert admin["key"] not in text and reader["key"] not in text
    assert items[1]["last_used_at"] is not None

    revoked = anonymous.delete(f"/v1/apikeys/{reader['id']}", headers=bearer(admin["key"]))
    assert revoked.status_code == 204
    assert_unauthorized(anonymous.get(f"/v1/hosts/{hid}", headers=bearer(reader["key"])),
                        "revoked")
    shown = anonymous.get(f"/v1/apikeys/{reader['id']}", headers=bearer(admin["key"]))
    assert shown.get_json()["revoked_at"] is not None


def test_missing_wrong_and_malformed_credentials_are_401(anonymous: Client,
                                                          root_key: str) -> None:
    """No key, a key with a wrong secret, an unknown key id, garbage, or another scheme: 401 in
    the error shape with ``WWW-Authenticate: Bearer realm="craton"``; nothing sent is echoed."""
    assert_unauthorized(anonymous.get("/v1/tenants"), "Bearer")
    prefix, _, secret = root_key.rpartition("_")
    wrong_secret = f"{prefix}_{'0' * len(secret)}"
    unknown_id = f"craton_{'0' * 16}_{secret}"
    for headers in (bearer(wrong_secret), bearer(unknown_id), bearer("hunter2"),
                    {"X-Auth-Token": wrong_secret}, bearer(root_key + "0")):
        response = anonymous.get("/v1/tenants", headers=headers)
        assert_unauthorized(response, "not valid")
        assert secret not in response.get_data(as_text=True)
    assert_unauthorized(anonymous.get("/v1/tenants", headers={"Authorization": "Basic eDp5"}),
                        "Bearer")
    assert anonymous.get("/v1/tenants", headers=bearer(root_key)).status_code == 200


def test_expired_key_is_401(anonymous: Client, root_key: str, database: Database) -> None:
    """A key past its expiry answers 401 saying so; an expiry in the past is refused (422)."""
    world = tenant_with_host(anonymous, root_key, "acme")
    tid = world["tenant"]["id"]
    past = anonymous.post(f"/v1/tenants/{tid}/apikeys",
                          {"name": "old", "role": "reader", "expires_at": "2020-01-01T00:00:00Z"},
                          headers=bearer(root_key))
    assert past.status_code == 422 and "expires_at" in error_of(past)["fields"]

    soon = (utcnow() + dt.timedelta(hours=1)).isoformat() + "Z"
    key = make_key(anonymous, root_key, tid, "reader", expires_at=soon)
    url = f"/v1/hosts/{world['host']['id']}"
    assert anonymous.get(url, headers=bearer(key["key"])).status_code == 200
    with database.transaction() as session:  # an hour and a second later
        session.execute(update(ApiKey).where(ApiKey.id == key["id"])
                        .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert_unauthorized(anonymous.get(url, headers=bearer(key["key"])), "expired")


def test_a_tenants_key_finds_nothing_of_another_tenant(anonymous: Client,
                                                       root_key: str) -> None:
    """Tenant A's admin key on tenant B's host, tenant, keys: 404, answered exactly as for an
    id that does not exist."""
    a, b = (tenant_with_host(anonymous, root_key, name) for name in ("alpha", "beta"))
    a_admin = make_key(anonymous, root_key, a["tenant"]["id"], "admin")
    b_key = make_key(anonymous, root_key, b["tenant"]["id"], "reader")
    missing = 10**9

    def answer(url: str, method: str = "GET", body: Any = None) -> tuple[int, str]:
        response = anonymous.request(method, url, body, headers=bearer(a_admin["key"]))
        error = error_of(response)
        return response.status_code, error["message"]

    for template, real in [("/v1/hosts/{}", b["host"]["id"]),
                           ("/v1/tenants/{}/apikeys", b["tenant"]["id"]),
                           ("/v1/apikeys/{}", b_key["id"])]:
        status, message = answer(template.format(real))
        assert status == 404
        assert message.replace(str(real), "ID") == \
            answer(template.format(missing))[1].replace(str(missing), "ID")
    assert answer(f"/v1/apikeys/{b_key['id']}", "DELETE")[0] == 404
    created = answer(f"/v1/tenants/{b['tenant']['id']}/apikeys", "POST",
                     {"name": "intruder", "role": "admin"})
    assert created[0] == 404
    assert anonymous.get(f"/v1/hosts/{b['host']['id']}",
                         headers=bearer(b_key["key"])).status_code == 200


def test_roles_bound_what_a_key_may_do(anonymous: Client, root_key: str) -> None:
    """A reader key reads but cannot write (403 naming inventory:write) nor manage keys; a
    member key writes but cannot manage keys (403 naming apikeys:manage); a tenant key cannot
    manage tenants."""
    world = tenant_with_host(anonymous, root_key, "acme")
    tid, rid, hid = world["tenant"]["id"], world["region"]["id"], world["host"]["id"]
    reader = make_key(anonymous, root_key, tid, "reader")["key"]
    member = make_key(anonymous, root_key, tid, "member")["key"]

    refused = anonymous.patch(f"/v1/hosts/{hid}", {"ssh_user": "x"}, headers=bearer(reader))
    assert refused.status_code == 403
    assert "inventory:write" in error_of(refused)["message"]
    for key in (reader, member):
        for method, url, body in [
            ("GET", f"/v1/tenants/{tid}/apikeys", None),
            ("POST", f"/v1/tenants/{tid}/apikeys", {"name": "mine", "role": "admin"}),
        ]:
            response = anonymous.request(method, url, body, headers=bearer(key))
            assert response.status_code == 403, (method, url, response.get_json())
            assert "apikeys:manage" in error_of(response)["message"]
    written = anonymous.post(f"/v1/regions/{rid}/hosts", {"name": "web-2"},
                             headers=bearer(member))
    assert written.status_code == 201
    tenants = anonymous.post("/v1/tenants", {"name": "mine"}, headers=bearer(member))
    assert tenants.status_code == 403 and "tenants:manage" in error_of(tenants)["message"]


def test_last_used_is_written_at_most_once_a_minute(anonymous: Client, root_key: str,
                                                    database: Database) -> None:
    world = tenant_with_host(anonymous, root_key, "acme")
    key = make_key(anonymous, root_key, world["tenant"]["id"], "reader")
    url = f"/v1/hosts/{world['host']['id']}"

    def last_used() -> dt.datetime | None:
        with database.transaction(write=False) as session:
            return session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key["id"]))

    assert last_used() is None
    anonymous.get(url, headers=bearer(key["key"]))
    first = last_used()
    assert first is not None
    for _ in range(5):
        anonymous.get(url, headers=bearer(key["key"]))
    assert last_used() == first


def test_the_clear_key_is_stored_nowhere(anonymous: Client, root_key: str, database: Database,
                                         keyed_app: Flask) -> None:
    """After keys are made, used, mistyped and revoked, no row of any table, no file of the
    data directory (nor, on SQLite, the database file with its WAL) and no answer but the one
    that made the key holds a key's secret part."""
    world = tenant_with_host(anonymous, root_key, "acme")
    made = make_key(anonymous, root_key, world["tenant"]["id"], "admin")
    key = made["key"]
    bodies = []
    for headers in (bearer(key), bearer(key[:-1] + "x"), {"X-Auth-Token": key + "0"}):
        bodies.append(anonymous.get(f"/v1/hosts/{world['host']['id']}", headers=headers))
    bodies.append(anonymous.delete(f"/v1/apikeys/{made['id']}", headers=bearer(key)))
    bodies.append(anonymous.get("/v1/tenants", headers=bearer(key)))

    secrets = [key.rpartition("_")[2], root_key.rpartition("_")[2]]
    data_dir = keyed_app.extensions["craton"].settings.data_dir
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    if database.dialect == "sqlite":
        database_file = Path(database.url.removeprefix("sqlite:///"))
        files += [p for p in database_file.parent.iterdir() if p.is_file()]
    assert any(p.name == "apikey-hash.key" for p in files)
    with database.engine.connect() as connection:
        rows = {table.name: [tuple(row) for row in connection.execute(select(table))]
                for table in Base.metadata.sorted_tables}
    assert rows["api_keys"], "the keys made are stored"
    for secret in secrets:
        for path in files:
            assert secret.encode() not in path.read_bytes(), path
        for table, stored in rows.items():
            assert secret not in repr(stored), table
        for response in bodies:
            assert secret not in response.get_data(as_text=True)


def test_pages_and_the_api_document_need_no_key(anonymous: Client) -> None:
    """The web pages are shells (they read through /v1 with the caller's key) and the OpenAPI
    document is the same everywhere: both are served without credentials, /v1 data is not."""
    assert anonymous.get("/ui/").status_code == 200
    assert anonymous.get("/v1/openapi.json").status_code == 200
    assert anonymous.get("/v1/regions").status_code == 401
