"""Sensitive variables: a variable named like a password, token or secret
(``ansible_become_password``, ``*_password``, ``*_token``, ``*_secret``, …) or marked sensitive
is stored encrypted like a secret, shows as "<hidden>" to callers who may not reveal secrets —
in lists, objects, variables, resolved variables and bundles — and shows its value to those who
may (its own variables and resolved variables, and the archives they download)."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest
from sqlalchemy import text

from craton.db.session import Database
from tests.conftest import Client, error_of

SENSITIVE = {"ansible_become_password": "become-s3cret", "db_password": "db-s3cret",
             "api_token": "tok-s3cret", "app_secret": "app-s3cret"}
PLAIN = {"ntp_server": "10.0.0.1", "password_policy": "strict"}
CLEAR = [value for value in SENSITIVE.values()]


def fleet(client: Client) -> dict[str, Any]:
    """A tenant with a region, a group and a host, each holding sensitive and plain
    variables."""
    tenant = client.create("/v1/tenants", {"name": "acme"})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions",
                           {"name": "dfw", "variables": {**PLAIN, "region_token": "rt-s3cret"}})
    group = client.create(f"/v1/regions/{region['id']}/groups",
                          {"name": "db", "variables": {"group_secret": "gs-s3cret"}})
    host = client.create(f"/v1/regions/{region['id']}/hosts",
                         {"name": "db-1", "groups": [group["id"]],
                          "variables": {**SENSITIVE, **PLAIN}})
    return {"tenant": tenant["id"], "region": region["id"], "group": group["id"],
            "host": host["id"]}


def everything_a_caller_reads(client: Client, ids: dict[str, Any], **who: Any) -> str:
    """Every answer that shows variables, as one text."""
    urls = [f"/v1/hosts/{ids['host']}", f"/v1/hosts/{ids['host']}/variables",
            f"/v1/hosts/{ids['host']}/variables?resolved=true&provenance=full",
            f"/v1/hosts?region_id={ids['region']}", f"/v1/regions/{ids['region']}/hosts",
            f"/v1/regions/{ids['region']}", f"/v1/regions/{ids['region']}/variables",
            f"/v1/regions?tenant_id={ids['tenant']}", f"/v1/groups/{ids['group']}",
            f"/v1/groups/{ids['group']}/variables", f"/v1/groups?region_id={ids['region']}",
            f"/v1/inventory/{ids['region']}.json"]
    answers = []
    for url in urls:
        response = client.get(url, **who)
        assert response.status_code == 200, (url, response.get_json())
        answers.append(response.get_data(as_text=True))
    for layout in ("ansible", "hosts"):
        response = client.get(f"/v1/inventory/{ids['region']}.tgz?layout={layout}", **who)
        assert response.status_code == 200
        answers.append(archive_text(response.data))
    return "\n".join(answers)


def archive_text(data: bytes) -> str:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return "\n".join(archive.extractfile(member).read().decode()
                         for member in archive.getmembers() if member.isfile())


@pytest.mark.parametrize("role", ["reader", "member"])
def test_callers_who_may_not_reveal_see_hidden_values(client: Client, role: str) -> None:
    """A reader or member sees every sensitive value as "<hidden>" wherever variables show,
    and the plain ones as they are."""
    ids = fleet(client)
    who = {"tenant": ids["tenant"], "roles": role}
    shown = everything_a_caller_reads(client, ids, **who)
    assert [value for value in [*CLEAR, "rt-s3cret", "gs-s3cret"] if value in shown] == []
    assert "<hidden>" in shown and "strict" in shown

    own = client.get(f"/v1/hosts/{ids['host']}/variables", **who).get_json()["variables"]
    assert own == {**dict.fromkeys(SENSITIVE, "<hidden>"), **PLAIN}
    resolved = client.get(f"/v1/hosts/{ids['host']}/variables?resolved=true",
                          **who).get_json()["variables"]
    assert resolved["region_token"] == resolved["group_secret"] == "<hidden>"
    assert resolved["ansible_become_password"] == "<hidden>"


def test_callers_who_may_reveal_see_the_values(client: Client) -> None:
    """A tenant admin (secrets:reveal) sees the values in the variables, resolved variables
    and the archives it downloads; objects and lists show "<hidden>" to everyone."""
    ids = fleet(client)
    who = {"tenant": ids["tenant"], "roles": "admin"}
    own = client.get(f"/v1/hosts/{ids['host']}/variables", **who).get_json()["variables"]
    assert own == {**SENSITIVE, **PLAIN}
    resolved = client.get(f"/v1/hosts/{ids['host']}/variables?resolved=true",
                          **who).get_json()["variables"]
    assert (resolved["region_token"], resolved["group_secret"]) == ("rt-s3cret", "gs-s3cret")
    archive = archive_text(client.get(f"/v1/inventory/{ids['region']}.tgz?layout=ansible",
                                      **who).data)
    assert all(value in archive for value in [*CLEAR, "rt-s3cret", "gs-s3cret"])
    listed = client.get(f"/v1/hosts?region_id={ids['region']}", **who).get_data(as_text=True)
    assert "become-s3cret" not in listed


def test_a_variable_marked_sensitive_is_hidden(client: Client) -> None:
    """Any key can be marked sensitive when it is written ("sensitive": [keys]); written again
    without the mark (and not named like a secret) it is plain again."""
    ids = fleet(client)
    url = f"/v1/hosts/{ids['host']}/variables"
    who = {"tenant": ids["tenant"], "roles": "reader"}
    marked = client.patch(url, {"variables": {"motd_key": "mk-s3cret"},
                                "sensitive": ["motd_key"]})
    assert marked.status_code == 200, marked.get_json()
    assert client.get(url, **who).get_json()["variables"]["motd_key"] == "<hidden>"
    assert client.get(url).get_json()["variables"]["motd_key"] == "mk-s3cret"

    assert client.patch(url, {"variables": {"motd_key": "public"}}).status_code == 200
    assert client.get(url, **who).get_json()["variables"]["motd_key"] == "public"


def test_marking_a_key_that_is_not_written_is_refused(client: Client) -> None:
    ids = fleet(client)
    response = client.patch(f"/v1/hosts/{ids['host']}/variables",
                            {"variables": {"a": 1}, "sensitive": ["b"]})
    assert response.status_code == 422
    assert "sensitive" in error_of(response)["fields"]


def test_sensitive_values_are_stored_encrypted(client: Client, database: Database) -> None:
    """No table holds a sensitive value in clear."""
    fleet(client)
    with database.engine.connect() as connection:
        for table in ("host_variables", "group_variables", "region_variables"):
            rows = [json.dumps([str(v) for v in row]) for row in
                    connection.execute(text(f"SELECT * FROM {table}"))]
            assert rows
            assert [row for row in rows if any(value in row for value in
                                                [*CLEAR, "rt-s3cret", "gs-s3cret"])] == []
