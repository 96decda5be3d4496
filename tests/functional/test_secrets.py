"""Host secrets through the API: each kind is checked on the way in, stored encrypted, shown
only as metadata, revealed exactly on request, never leaked into error bodies or logs, and
still readable after the operator rotates the encryption key."""

from __future__ import annotations

import base64
import dataclasses
import logging
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import select

from craton.api import create_app
from craton.config import SecretsSettings, Settings
from craton.db.models import Secret
from craton.db.session import Database
from tests.conftest import Client, error_of, make_settings

PEM = ("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGU=\n"
       "-----END CERTIFICATE-----\n")
MAX_SECRET_BYTES = 256 * 1024


def _keygen(directory: Path, name: str, *args: str) -> str:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-f", str(path), "-C", f"{name}@test", *args],
                   check=True, capture_output=True, timeout=60)
    return path.read_text()


@pytest.fixture(scope="module")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Real keys made by ssh-keygen: OpenSSH ed25519, RSA in PEM, and passphrase-protected
    ones of both formats."""
    directory = tmp_path_factory.mktemp("keys")
    keys = {
        "ed25519": _keygen(directory, "ed25519", "-t", "ed25519", "-N", ""),
        "rsa_pem": _keygen(directory, "rsa_pem", "-t", "rsa", "-b", "2048", "-m", "PEM",
                           "-N", ""),
        "ed25519_encrypted": _keygen(directory, "ed25519_enc", "-t", "ed25519",
                                     "-N", "correct horse"),
        "rsa_pem_encrypted": _keygen(directory, "rsa_pem_enc", "-t", "rsa", "-b", "2048",
                                     "-m", "PEM", "-N", "correct horse"),
    }
    keys["ed25519_public"] = (directory / "ed25519.pub").read_text()
    assert keys["ed25519"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert keys["rsa_pem"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert "ENCRYPTED" in keys["rsa_pem_encrypted"]
    return keys


@pytest.fixture
def host(client: Client, region: dict[str, Any]) -> dict[str, Any]:
    return client.create(f"/v1/regions/{region['id']}/hosts", {"name": "db1"})


def _secrets_url(host: dict[str, Any]) -> str:
    return f"/v1/hosts/{host['id']}/secrets"


def _listing(client: Client, host: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.get(_secrets_url(host))
    assert response.status_code == 200
    return response.get_json()["items"]


def _reveal(client: Client, secret_id: int) -> str:
    response = client.post(f"/v1/secrets/{secret_id}/reveal")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["content"]


@pytest.mark.parametrize(("kind", "source"), [
    ("ssh_private_key", "ed25519"),
    ("ssh_private_key", "rsa_pem"),
    ("pem", "pem"),
    ("password", "p@ss w0rd ünïcode"),
    ("opaque", "line one\nline two\r\n\ttabbed \x01 binary-ish"),
])
def test_each_kind_is_stored_as_metadata_and_revealed_exactly(
        client: Client, host: dict[str, Any], ssh_keys: dict[str, str], kind: str,
        source: str) -> None:
    """A secret of each kind is accepted; the answer, the listing and GET show its name, kind
    and size but never its content; reveal returns it byte for byte, marked no-store."""
    content = ssh_keys.get(source) or (PEM if source == "pem" else source)
    created = client.post(_secrets_url(host), {"name": "the-secret", "kind": kind,
                                               "content": content})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert "content" not in body
    assert {key: body[key] for key in ("host_id", "name", "kind", "size")} == {
        "host_id": host["id"], "name": "the-secret", "kind": kind,
        "size": len(content.encode())}
    assert created.headers["Location"] == f"/v1/secrets/{body['id']}"

    shown = [client.get(f"/v1/secrets/{body['id']}"), client.get(_secrets_url(host))]
    for response in shown:
        assert response.status_code == 200
        assert content not in response.get_data(as_text=True)
    assert shown[0].get_json() == body
    assert _listing(client, host) == [body]

    revealed = client.post(f"/v1/secrets/{body['id']}/reveal")
    assert revealed.status_code == 200
    assert revealed.get_json() == {"id": body["id"], "name": "the-secret", "kind": kind,
                                   "content": content}
    assert revealed.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("kind", "source", "reason"), [
    ("ssh_private_key", "ed25519_encrypted", "passphrase"),
    ("ssh_private_key", "rsa_pem_encrypted", "passphrase"),
    ("ssh_private_key", "ed25519_public", "private key"),
    ("ssh_private_key", "garbage", "private key"),
    ("ssh_private_key", "pem", "private key"),
    ("pem", "garbage", "PEM block"),
    ("pem", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "PEM block"),
    ("password", "", "non-empty"),
    ("opaque", "", "non-empty"),
])
def test_content_that_does_not_fit_its_kind_is_422_with_the_reason(
        client: Client, host: dict[str, Any], ssh_keys: dict[str, str], kind: str,
        source: str, reason: str) -> None:
    """Content that is not what its kind promises (an encrypted or public key, garbage, a
    PEM without a block, nothing) is refused with a message saying why; nothing is stored."""
    content = ssh_keys.get(source) or {"pem": PEM, "garbage": "not a key at all"}.get(
        source, source)
    response = client.post(_secrets_url(host), {"name": "key", "kind": kind,
                                                "content": content})
    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert set(error["fields"]) == {"content"}
    assert reason in error["fields"]["content"]
    assert _listing(client, host) == []


def test_content_is_encrypted_at_rest(client: Client, host: dict[str, Any], database: Database,
                                      ssh_keys: dict[str, str]) -> None:
    """What the database holds for a secret is neither its content nor an encoding of it."""
    plaintext = ssh_keys["rsa_pem"].encode()
    secret = client.create(_secrets_url(host), {"name": "rsa", "kind": "ssh_private_key",
                                                "content": ssh_keys["rsa_pem"]})
    body_line = plaintext.splitlines()[5]
    with database.engine.connect() as connection:
        row = connection.execute(select(Secret.__table__).where(
            Secret.__table__.c.id == secret["id"])).one()
    stored = b"".join(value if isinstance(value, bytes) else str(value).encode()
                      for value in row)
    assert row.ciphertext and row.size == len(plaintext)
    for form in (plaintext, body_line, base64.b64encode(plaintext),
                 base64.urlsafe_b64encode(plaintext), plaintext.hex().encode()):
        assert form not in stored
    assert _reveal(client, secret["id"]) == ssh_keys["rsa_pem"]


def test_patch_replaces_content_renames_and_rechecks_kind(client: Client, host: dict[str, Any],
                                                          ssh_keys: dict[str, str]) -> None:
    """PATCH replaces content (size and ETag follow), renames, and changes the kind; a new
    kind the stored content does not fit is 422 and leaves the secret as it was."""
    secret = client.create(_secrets_url(host), {"name": "cert", "kind": "pem", "content": PEM})
    url = f"/v1/secrets/{secret['id']}"

    new_pem = PEM.replace("MIIB", "MIIC") * 2
    replaced = client.patch(url, {"content": new_pem})
    assert replaced.status_code == 200
    assert replaced.get_json()["size"] == len(new_pem.encode())
    assert replaced.headers["ETag"] != f'"{secret["version"]}"'
    assert "content" not in replaced.get_json()
    assert _reveal(client, secret["id"]) == new_pem

    renamed = client.patch(url, {"name": "tls-cert"})
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "tls-cert"

    before = client.get(url).get_json()
    refused = client.patch(url, {"kind": "ssh_private_key"})
    assert refused.status_code == 422
    error = error_of(refused)
    assert set(error["fields"]) == {"kind"}
    assert "private key" in error["fields"]["kind"]
    assert client.get(url).get_json() == before
    assert _reveal(client, secret["id"]) == new_pem

    mismatched = client.patch(url, {"kind": "pem", "content": "no block here"})
    assert mismatched.status_code == 422
    assert set(error_of(mismatched)["fields"]) == {"content"}
    assert client.get(url).get_json() == before

    to_key = client.patch(url, {"kind": "ssh_private_key", "content": ssh_keys["ed25519"]})
    assert to_key.status_code == 200, to_key.get_json()
    assert to_key.get_json()["kind"] == "ssh_private_key"
    assert _reveal(client, secret["id"]) == ssh_keys["ed25519"]

    to_opaque = client.patch(url, {"kind": "opaque"})
    assert to_opaque.status_code == 200 and to_opaque.get_json()["kind"] == "opaque"
    assert _reveal(client, secret["id"]) == ssh_keys["ed25519"]


def test_secret_names_are_unique_per_host(client: Client, host: dict[str, Any],
                                          region: dict[str, Any]) -> None:
    """A second secret of the same name on a host is 409; another host may use the name."""
    body = {"name": "pw", "kind": "password", "content": "one"}
    first = client.create(_secrets_url(host), body)
    again = client.post(_secrets_url(host), {**body, "content": "two"})
    assert again.status_code == 409
    assert set(error_of(again)["fields"]) == {"name"}
    assert _listing(client, host) == [first]
    assert _reveal(client, first["id"]) == "one"

    other = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "db2"})
    client.create(_secrets_url(other), body)
    second = client.create(_secrets_url(host), {**body, "name": "pw2"})
    renamed = client.patch(f"/v1/secrets/{second['id']}", {"name": "pw"})
    assert renamed.status_code == 409
    assert client.get(f"/v1/secrets/{second['id']}").get_json()["name"] == "pw2"


def _refusals(client: Client, host: dict[str, Any], region: dict[str, Any], existing: int,
              marker: str) -> list[Any]:
    """Requests that must fail, each carrying ``marker`` in its content."""
    url = _secrets_url(host)
    big = marker + "x" * MAX_SECRET_BYTES
    return [
        client.post(url, {"name": "s", "kind": "no-such-kind", "content": marker}),
        client.post(url, {"kind": "password", "content": marker}),
        client.post(url, {"name": "../etc/passwd", "kind": "password", "content": marker}),
        client.post(url, {"name": "s", "kind": "password", "content": marker, "extra": 1}),
        client.post(url, {"name": "s", "kind": "password", "content": big}),
        client.post(url, {"name": "s", "kind": "pem", "content": marker}),
        client.post(url, {"name": "s", "kind": "ssh_private_key", "content": marker}),
        client.post(url, {"name": "s", "kind": "password", "content": [marker]}),
        client.post(url, {"name": "taken", "kind": "password", "content": marker}),
        client.post(url, [{"name": "s", "kind": "password", "content": marker}]),
        client.http.post(url, data='{"name": "s", "kind": "password", "content": "'
                         + marker + '"', content_type="application/json"),
        client.http.post(url, data=f"content={marker}", content_type="text/plain"),
        client.post(url, {"name": "s", "kind": "password", "content": marker},
                    tenant=region["tenant_id"], roles="reader"),
        client.post(url, {"name": "s", "kind": "password", "content": marker},
                    tenant=region["tenant_id"] + 1000, roles="admin"),
        client.post(f"/v1/hosts/{host['id'] + 10**6}/secrets",
                    {"name": "s", "kind": "password", "content": marker}),
        client.patch(f"/v1/secrets/{existing}", {"kind": "pem", "content": marker}),
        client.patch(f"/v1/secrets/{existing}", {"content": big}),
        client.patch(f"/v1/secrets/{existing}", {"content": marker, "kind": "nope"}),
        client.patch(f"/v1/secrets/{existing}", {"content": marker},
                     headers={"If-Match": '"999"'}),
    ]


def test_content_never_reaches_error_bodies_or_logs(client: Client, host: dict[str, Any],
                                                    region: dict[str, Any],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Refused requests carrying secret content never echo it, and neither refused nor
    successful creates, changes and reveals write it to any log record (SQL statements and
    their parameters included)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    marker = f"MARKER{uuid.uuid4().hex}"
    existing = client.create(_secrets_url(host), {"name": "taken", "kind": "password",
                                                  "content": f"{marker}-stored"})

    responses = _refusals(client, host, region, existing["id"], marker)
    statuses = [response.status_code for response in responses]
    assert all(400 <= status < 500 for status in statuses), statuses
    for response in responses:
        assert marker not in response.get_data(as_text=True)
        assert marker not in str(dict(response.headers))
    assert [item["name"] for item in _listing(client, host)] == ["taken"]
    assert _reveal(client, existing["id"]) == f"{marker}-stored"

    changed = client.patch(f"/v1/secrets/{existing['id']}", {"content": f"{marker}-changed"})
    assert changed.status_code == 200 and marker not in changed.get_data(as_text=True)
    assert _reveal(client, existing["id"]) == f"{marker}-changed"

    assert any("INSERT INTO secrets" in record.getMessage() for record in caplog.records), \
        "the SQL log was not captured: the check below would prove nothing"
    leaked = [record for record in caplog.records
              if marker in record.getMessage() or marker in str(record.args)
              or marker in (record.exc_text or "")]
    assert leaked == []
    assert marker not in caplog.text


# --- Key rotation ------------------------------------------------------------------------------


def _app_with_keys(tmp_path: Path, database: Database, *keys: str) -> Flask:
    base: Settings = make_settings(tmp_path)
    settings = dataclasses.replace(base, secrets=SecretsSettings(keys=keys))
    return create_app(settings, database=database)


def test_rotated_keys_still_reveal_and_a_missing_key_is_a_clear_error(
        tmp_path: Path, database: Database) -> None:
    """A secret sealed under K1 reveals under keys (K2, K1); with K2 alone reveal is a clear
    server error that shows no content, while metadata stays readable. Rewriting it under
    (K2, K1) makes it readable with K2 alone."""
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = Client(_app_with_keys(tmp_path, database, k1).test_client())
    tenant = old.create("/v1/tenants", {"name": "rotating"})
    region = old.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "r1"})
    host = old.create(f"/v1/regions/{region['id']}/hosts", {"name": "h1"})
    content = f"sealed-under-k1-{uuid.uuid4().hex}"
    secret = old.create(_secrets_url(host), {"name": "pw", "kind": "password",
                                             "content": content})

    rotated = Client(_app_with_keys(tmp_path, database, k2, k1).test_client())
    assert _reveal(rotated, secret["id"]) == content

    new_only = Client(_app_with_keys(tmp_path, database, k2).test_client())
    failed = new_only.post(f"/v1/secrets/{secret['id']}/reveal")
    assert failed.status_code >= 500
    assert "decrypt" in error_of(failed)["message"]
    assert content not in failed.get_data(as_text=True)
    assert new_only.get(f"/v1/secrets/{secret['id']}").get_json() == secret
    assert _listing(new_only, host) == [secret]

    rewritten = f"sealed-under-k2-{uuid.uuid4().hex}"
    assert rotated.patch(f"/v1/secrets/{secret['id']}", {"content": rewritten}).status_code == 200
    assert _reveal(new_only, secret["id"]) == rewritten
    retired = old.post(f"/v1/secrets/{secret['id']}/reveal")
    assert retired.status_code >= 500
    assert rewritten not in retired.get_data(as_text=True)
