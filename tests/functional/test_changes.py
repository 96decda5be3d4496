"""Change records through the API: every kind of write leaves one per object it touched, in
its own transaction, saying who, when, in which request and why, with the before and after of
what changed; a failed write leaves none; no secret, key or sensitive value is ever in one;
``/v1/changes`` filters, pages newest first and shows a caller only its own tenant's."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from craton.config import Settings
from craton.db import changes
from craton.db.models import Change
from craton.db.session import Database
from tests.conftest import Client, counting_queries, error_of
from tests.functional.job_helpers import (
    PlaybookRepo,
    finished_job,
    job_body,
    make_fleet,
    play,
    sqlite_app,
    submit,
    wait_job,
)

Body = dict[str, Any]


def records(client: Client, url: str = "/v1/changes", **kwargs: Any) -> list[Body]:
    """Every record the URL lists, following its pages."""
    found: list[Body] = []
    while url:
        response = client.get(url, **kwargs)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        found += page["items"]
        url = page["next"] and page["next"].removeprefix("http://localhost")
    return found


def of(found: list[Body], object_type: str, object_id: int | None = None) -> list[Body]:
    """The records of one object (or kind), oldest first."""
    return [r for r in reversed(found) if r["object_type"] == object_type
            and (object_id is None or r["object_id"] == object_id)]


def stored(database: Database) -> str:
    """Every change record as the database holds it, as text."""
    with database.transaction(write=False) as session:
        return "\n".join(f"{c.object_name} {c.reason} {c.diff_json}"
                         for c in session.scalars(select(Change)))


def on_the_wire(header: str) -> str:
    """A header value as a client sends it (UTF-8) and the WSGI server hands it on (each
    byte a character)."""
    return header.encode().decode("latin-1")


@pytest.fixture
def tenant(client: Client) -> Body:
    return client.create("/v1/tenants", {"name": "acme"})


@pytest.fixture
def region(client: Client, tenant: Body) -> Body:
    return client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"})


# --- hosts: the thinnest slice --------------------------------------------------------------------

def test_host_create_update_delete_are_recorded(client: Client, region: Body) -> None:
    """Creating, changing and deleting a host each leave a record saying who, in which
    request, why, and what changed — fields, variables key by key, groups."""
    client.create(f"/v1/regions/{region['id']}/groups", {"name": "web"})
    created = client.post(f"/v1/regions/{region['id']}/hosts",
                          {"name": "h1", "ip_address": "10.0.0.1",
                           "variables": {"rack": "r1", "role": "db"}},
                          headers={"X-Craton-User": "alice", "X-Request-Id": "req-create"})
    assert created.status_code == 201
    host = created.get_json()
    changed = client.patch(f"/v1/hosts/{host['id']}",
                           {"name": "h1b", "variables": {"rack": "r2", "role": None, "new": [1]},
                            "groups": ["web"]},
                           headers={"X-Craton-Reason": on_the_wire("ticket OPS-7: rack r2 ✓"),
                                    "X-Craton-User": "bob"})
    assert changed.status_code == 200
    listed = records(client, f"/v1/hosts/{host['id']}/changes")
    assert client.delete(f"/v1/hosts/{host['id']}").status_code == 204

    assert [r["action"] for r in listed] == ["update", "create"]
    update, create = listed
    assert create["request_id"] == "req-create" == created.headers["X-Request-Id"]
    assert create["actor"] == {"user": "alice", "tenant_id": None, "auth_strategy": "noauth",
                               "api_key_name": None, "job_id": None}
    assert (create["object_name"], create["tenant_id"], create["region_id"]) == (
        "h1", region["tenant_id"], region["id"])
    assert create["fields"] == {"name": {"after": "h1"}, "ip_address": {"after": "10.0.0.1"},
                                "state": {"after": "defined"}}
    assert create["variables"] == {"rack": {"after": "r1"}, "role": {"after": "db"}}
    assert update["request_id"] == changed.headers["X-Request-Id"]
    assert update["actor"]["user"] == "bob"
    assert update["reason"] == "ticket OPS-7: rack r2 ✓"
    assert update["object_name"] == "h1b"
    assert update["fields"] == {"name": {"before": "h1", "after": "h1b"}}
    assert update["variables"] == {"new": {"after": [1]}, "rack": {"before": "r1", "after": "r2"},
                                   "role": {"before": "db"}}
    assert update["links"] == {"groups": {"added": ["web"]}}

    # Gone with its host, its history is still listed by type and id.
    assert client.get(f"/v1/hosts/{host['id']}/changes").status_code == 404
    history = records(client, f"/v1/changes?object_type=host&object_id={host['id']}")
    assert [r["action"] for r in history] == ["delete", "update", "create"]
    assert history[0]["fields"] == {"name": {"before": "h1b"},
                                    "ip_address": {"before": "10.0.0.1"},
                                    "state": {"before": "defined"}}
    assert history[0]["variables"] == {"new": {"before": [1]}, "rack": {"before": "r2"}}
    assert history[0]["links"] == {"groups": {"removed": ["web"]}}


def test_a_write_that_changes_nothing_leaves_no_record(client: Client, region: Body) -> None:
    host = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "h1",
                                                                "variables": {"a": 1}})
    before = records(client)
    assert client.patch(f"/v1/hosts/{host['id']}", {"name": "h1",
                                                    "variables": {"a": 1}}).status_code == 200
    assert records(client) == before


def test_a_failed_write_leaves_no_record(client: Client, region: Body,
                                         database: Database) -> None:
    """A refused write — a conflict, invalid input, one bad item of a bulk create, a cycle, a
    bad reason header — changes nothing, its records included."""
    rid = region["id"]
    host = client.create(f"/v1/regions/{rid}/hosts", {"name": "h1"})
    parent = client.create(f"/v1/regions/{rid}/groups", {"name": "parent"})
    client.create(f"/v1/regions/{rid}/groups", {"name": "child", "parents": ["parent"]})
    before = records(client)
    refused = [
        client.post(f"/v1/regions/{rid}/hosts", {"name": "h1"}),
        client.patch(f"/v1/hosts/{host['id']}", {"ssh_port": 0, "variables": {"x": 1}}),
        client.post(f"/v1/regions/{rid}/hosts", [{"name": "ok-1"}, {"name": "bad name!"}]),
        client.patch(f"/v1/groups/{parent['id']}", {"description": "d",
                                                    "variables": {"y": 2},
                                                    "depends_on": ["nope"]}),
        client.post(f"/v1/groups/{parent['id']}/children", {"children": [parent["id"]]}),
        client.patch(f"/v1/hosts/{host['id']}", {"variables": {"x": 1}},
                     headers={"X-Craton-Reason": "x" * 501}),
        client.patch(f"/v1/hosts/{host['id']}", {"variables": {"x": 1}},
                     headers={"If-Match": '"999"'}),
    ]
    assert [r.status_code for r in refused] == [409, 422, 422, 422, 409, 400, 412]
    assert records(client) == before
    with database.transaction(write=False) as session:
        assert session.scalar(select(text("count(*)")).select_from(Change)) == len(before)


@pytest.mark.parametrize("reason, problem", [
    ("x" * 501, "at most 500 characters"),
    ("a bell \x07", "control or format characters"),
    ("bidi \u202e override", "control or format characters"),
])
def test_a_bad_reason_is_400_naming_the_header(client: Client, region: Body, reason: str,
                                               problem: str) -> None:
    response = client.post(f"/v1/regions/{region['id']}/hosts", {"name": "h1"},
                           headers={"X-Craton-Reason": on_the_wire(reason)})
    assert response.status_code == 400
    error = error_of(response)
    assert problem in error["fields"]["X-Craton-Reason"]
    assert client.get(f"/v1/regions/{region['id']}/hosts").get_json()["items"] == []


def test_a_reason_of_500_characters_is_kept(client: Client, region: Body) -> None:
    reason = "é" * 500
    client.create(f"/v1/regions/{region['id']}/hosts", {"name": "h1"},
                  headers={"X-Craton-Reason": on_the_wire(reason)})
    assert records(client)[0]["reason"] == reason


# --- every kind of write --------------------------------------------------------------------------

def test_every_kind_of_write_is_recorded(client: Client, settings: Settings) -> None:
    """Tenants (quotas too), regions, groups (edges, members), hosts, variables at each
    level, secrets, references, API keys, jobs (submit, cancel) and an import each leave
    their records, with what changed."""
    tenant = client.create("/v1/tenants", {"name": "acme", "quotas": {"hosts": 10}})
    tid = tenant["id"]
    assert client.patch(f"/v1/tenants/{tid}", {"description": "d",
                                                "quotas": {"hosts": 20}}).status_code == 200
    region = client.create(f"/v1/tenants/{tid}/regions", {"name": "dfw",
                                                          "variables": {"ntp": "a"}})
    rid = region["id"]
    assert client.put(f"/v1/regions/{rid}/variables", {"variables": {"dns": "b"}}).status_code \
        == 200
    cloud = client.create(f"/v1/regions/{rid}/groups", {"name": "cloud"})
    compute = client.create(f"/v1/regions/{rid}/groups", {"name": "compute",
                                                          "parents": ["cloud"]})
    storage = client.create(f"/v1/regions/{rid}/groups", {"name": "storage"})
    host = client.create(f"/v1/regions/{rid}/hosts", {"name": "c1"})
    hid = host["id"]
    assert client.post(f"/v1/groups/{compute['id']}/hosts", {"hosts": ["c1"]}).status_code \
        == 200
    assert client.patch(f"/v1/groups/{compute['id']}", {
        "description": "nodes", "depends_on": ["storage"],
        "variables": {"ansible_group_priority": 3}}).status_code == 200
    assert client.delete(f"/v1/groups/{compute['id']}/hosts", {"hosts": [hid]}).status_code \
        == 200
    assert client.delete(f"/v1/groups/{cloud['id']}/children/{compute['id']}").status_code \
        in (200, 204)
    assert client.delete(f"/v1/hosts/{hid}/variables/nothing").status_code == 404
    assert client.patch(f"/v1/hosts/{hid}/variables", {"variables": {"k": "v"}}).status_code \
        == 200
    assert client.delete(f"/v1/hosts/{hid}/variables/k").status_code == 204
    secret = client.create(f"/v1/hosts/{hid}/secrets", {"name": "pw", "kind": "password",
                                                        "content": "first-s3cret"})
    assert client.patch(f"/v1/secrets/{secret['id']}", {"content": "second-s3cret"}
                        ).status_code == 200
    assert client.delete(f"/v1/secrets/{secret['id']}").status_code == 204
    sources = settings.data_dir / "sources" / str(tid)
    sources.mkdir(parents=True)
    (sources / "common.yml").write_text("a: 1\n")
    reference = client.create(f"/v1/groups/{storage['id']}/references",
                              {"name": "common", "url": f"file://{sources / 'common.yml'}"})
    assert client.patch(f"/v1/references/{reference['id']}", {"path": "x.yml"}).status_code \
        == 200
    assert client.delete(f"/v1/references/{reference['id']}").status_code == 204
    key = client.create(f"/v1/tenants/{tid}/apikeys", {"name": "ci", "role": "member"})
    assert client.delete(f"/v1/apikeys/{key['id']}").status_code == 204
    job = finished_job(client, rid)
    imported = client.post(f"/v1/regions/{rid}/import", {
        "format": "ini", "content": "[web]\nw1 http_port=80\n[web:vars]\ntier=front\n"})
    assert imported.status_code in (200, 201), imported.get_json()
    assert client.delete(f"/v1/groups/{storage['id']}").status_code == 204
    assert client.delete(f"/v1/regions/{rid}?cascade=true").status_code == 204

    found = records(client)
    assert len({r["id"] for r in found}) == len(found)
    actions = [(r["object_type"], r["action"]) for r in reversed(found)]
    for expected in [("tenant", "create"), ("tenant", "update"), ("region", "create"),
                     ("region", "update"), ("group", "create"), ("group", "update"),
                     ("host", "create"), ("host", "update"), ("secret", "create"),
                     ("secret", "update"), ("secret", "delete"), ("reference", "create"),
                     ("reference", "update"), ("reference", "delete"), ("api_key", "create"),
                     ("api_key", "revoke"), ("job", "submit"), ("job", "cancel"),
                     ("group", "delete"), ("region", "delete")]:
        assert expected in actions, expected

    tenant_records = of(found, "tenant", tid)
    assert tenant_records[0]["fields"] == {"name": {"after": "acme"},
                                           "quotas.hosts": {"after": 10}}
    assert tenant_records[1]["fields"] == {"description": {"before": None, "after": "d"},
                                           "quotas.hosts": {"before": 10, "after": 20}}
    region_records = of(found, "region", rid)
    assert region_records[0]["variables"] == {"ntp": {"after": "a"}}
    assert region_records[1]["variables"] == {"dns": {"after": "b"}, "ntp": {"before": "a"}}
    assert region_records[-1]["action"] == "delete"

    compute_records = [r for r in of(found, "group", compute["id"]) if r["action"] == "update"]
    assert {"hosts": {"added": ["c1"]}} in [r["links"] for r in compute_records]
    assert {"hosts": {"removed": ["c1"]}} in [r["links"] for r in compute_records]
    assert {"parents": {"removed": ["cloud"]}} in [r["links"] for r in compute_records]
    patched = next(r for r in compute_records if r["fields"])
    assert patched["fields"] == {"description": {"before": None, "after": "nodes"}}
    assert patched["variables"] == {"ansible_group_priority": {"after": 3}}
    assert patched["links"] == {"depends_on": {"added": ["storage"]}}
    assert of(found, "group", compute["id"])[0]["links"] == {"parents": {"added": ["cloud"]}}
    assert {"children": {"removed": ["compute"]}} in [
        r["links"] for r in of(found, "group", cloud["id"])]
    host_links = [r["links"] for r in of(found, "host", hid)]
    assert {"groups": {"added": ["compute"]}} in host_links
    assert {"groups": {"removed": ["compute"]}} in host_links
    host_variables = [r["variables"] for r in of(found, "host", hid)]
    assert {"k": {"after": "v"}} in host_variables and {"k": {"before": "v"}} in host_variables

    secret_records = of(found, "secret", secret["id"])
    assert secret_records[0]["fields"]["content"] == {"after": "<hidden>"}
    assert secret_records[1]["fields"] == {"content": {"before": "<hidden>",
                                                       "after": "<hidden>"},
                                           "size": {"before": 12, "after": 13}}
    assert (secret_records[0]["tenant_id"], secret_records[0]["region_id"]) == (tid, rid)
    assert of(found, "reference", reference["id"])[1]["fields"] == {"path": {"before": None,
                                                                     "after": "x.yml"}}
    key_records = of(found, "api_key", key["id"])
    assert key_records[0]["fields"]["role"] == {"after": "member"}
    assert set(key_records[1]["fields"]) == {"revoked_at"}
    submit, cancel = of(found, "job", job["id"])
    assert (submit["action"], submit["object_name"], submit["fields"]["playbook"]) == (
        "submit", "craton:ping", {"after": "craton:ping"})
    assert cancel["fields"] == {"cancel_requested": {"before": False, "after": True}}
    imported_host = next(r for r in found if r["object_name"] == "w1")
    assert imported_host["variables"] == {"http_port": {"after": 80}}
    assert imported_host["links"] == {"groups": {"added": ["web"]}}
    web = next(r for r in found if r["object_name"] == "web" and r["action"] == "create")
    assert web["variables"] == {"tier": {"after": "front"}}
    assert all(r["tenant_id"] == tid for r in found)


def test_an_import_dry_run_leaves_no_record(client: Client, region: Body) -> None:
    before = records(client)
    response = client.post(f"/v1/regions/{region['id']}/import?dry_run=true", {
        "format": "ini", "content": "[web]\nw1 http_port=80\nw2\n"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["hosts"]["created"] == ["w1", "w2"]
    assert records(client) == before


AUDIT = play("""
name: record what was found
ansible.builtin.set_fact:
  craton_audit:
    kernel: "6.1"
    audit_token: "from-the-playbook"
""")


def test_a_jobs_audit_write_back_is_recorded_as_the_jobs(tmp_path: Path) -> None:
    """The variables a playbook's craton_audit facts write are recorded as the job's: its
    submitter's, marked with the job, through the ``auth_strategy`` "job"."""
    with sqlite_app(tmp_path / "data") as japp:
        api = japp.client
        tenant = api.create("/v1/tenants", {"name": "acme"})
        repo = PlaybookRepo(japp.sources_of(tenant) / "playbooks.git")
        repo.push({"audit.yml": AUDIT})
        fleet = make_fleet(api, {"a1": {"variables": {"kernel": "5.10"}}}, tenant=tenant)
        job = submit(api, job_body(fleet, "audit.yml", repo.source()),
                     headers={"X-Craton-User": "carol"})
        assert wait_job(api, job["id"])["status"] == "succeeded"
        host_id = fleet.hosts["a1"]["id"]
        audited, created = records(api, f"/v1/hosts/{host_id}/changes")
        submitted = records(api, f"/v1/changes?object_type=job&object_id={job['id']}")
    assert created["action"] == "create"
    assert audited["actor"] == {"user": "carol", "tenant_id": tenant["id"],
                                "auth_strategy": "job", "api_key_name": None,
                                "job_id": job["id"]}
    assert audited["request_id"] is None
    assert audited["variables"] == {"audit_token": {"after": "<hidden>"},
                                    "kernel": {"before": "5.10", "after": "6.1"}}
    assert [r["action"] for r in submitted] == ["submit"]
    assert submitted[0]["actor"]["user"] == "carol"


# --- secrets never -------------------------------------------------------------------------------

SENSITIVE = {
    "ansible_become_password": "become-Pw-1",
    "ansible_ssh_pass": "ssh-Pw-2",
    "vault_token": "tok-3",
    "db": {"root_password": "nested-Pw-4", "port": 3306},
    "users": [{"name": "u", "api_key": "key-5"}],
}


def test_no_secret_value_is_ever_recorded(client: Client, region: Body,
                                          database: Database) -> None:
    """Secrets' contents, API keys and the values of sensitive-looking variables (at any
    depth) are in no record — listed or stored — while the rest of a value is."""
    host = client.create(f"/v1/regions/{region['id']}/hosts",
                         {"name": "h1", "variables": SENSITIVE})
    client.patch(f"/v1/hosts/{host['id']}/variables", {"variables": {
        "ansible_become_password": "become-Pw-6", "db": {"root_password": "nested-Pw-7"}}})
    client.post(f"/v1/regions/{region['id']}/hosts", [
        {"name": "h2", "variables": {"my_token": "bulk-tok-8"}}])
    group = client.create(f"/v1/regions/{region['id']}/groups",
                          {"name": "g", "variables": {"admin_password": "group-Pw-9"}})
    client.put(f"/v1/groups/{group['id']}/variables", {"variables": {"x_secret": "grp-10"}})
    secret = client.create(f"/v1/hosts/{host['id']}/secrets",
                           {"name": "pw", "kind": "password", "content": "secret-Content-11"})
    client.patch(f"/v1/secrets/{secret['id']}", {"content": "secret-Content-12"})
    key = client.create(f"/v1/tenants/{region['tenant_id']}/apikeys",
                        {"name": "ci", "role": "admin"})
    client.post("/v1/jobs", {"region_id": region["id"], "playbook": "craton:ping",
                             "extra_vars": {"ansible_password": "extra-Pw-13"}})
    client.delete(f"/v1/hosts/{host['id']}")

    listed = json.dumps(records(client))
    kept = stored(database)
    values = ["become-Pw-1", "ssh-Pw-2", "tok-3", "nested-Pw-4", "key-5", "become-Pw-6",
              "nested-Pw-7", "bulk-tok-8", "group-Pw-9", "grp-10", "secret-Content-11",
              "secret-Content-12", key["key"], key["key"].split("_")[-1], "extra-Pw-13"]
    assert [value for value in values if value in listed or value in kept] == []
    assert "<hidden>" in listed and '"port":3306' in kept


# --- filters, pages, scope ----------------------------------------------------------------------

def test_filters(client: Client, region: Body) -> None:
    rid = region["id"]
    client.create(f"/v1/regions/{rid}/hosts", {"name": "a"}, headers={"X-Craton-User": "ann"})
    before = dt.datetime.now(dt.UTC)
    b = client.post(f"/v1/regions/{rid}/hosts", {"name": "b"},
                    headers={"X-Craton-User": "ben", "X-Request-Id": "req-b"}).get_json()
    client.patch(f"/v1/hosts/{b['id']}", {"fqdn": "b.example.com"},
                 headers={"X-Craton-User": "ann"})
    after = dt.datetime.now(dt.UTC)

    def names(**query: str) -> list[tuple[str, str]]:
        url = "/v1/changes?" + "&".join(f"{k}={v}" for k, v in query.items())
        return [(r["object_name"], r["action"]) for r in records(client, url)]

    assert names(user="ann") == [("b", "update"), ("a", "create")]
    assert names(user="ben") == [("b", "create")]
    assert names(request_id="req-b") == [("b", "create")]
    assert names(object_type="host", object_id=str(b["id"])) == [("b", "update"),
                                                                 ("b", "create")]
    assert names(object_type="region") == [("dfw", "create")]
    assert names(action="update") == [("b", "update")]
    stamp = before.isoformat().replace("+00:00", "Z")
    assert names(since=stamp, object_type="host") == [("b", "update"), ("b", "create")]
    assert names(until=stamp, object_type="host") == [("a", "create")]
    assert names(since=stamp, until=after.isoformat().replace("+00:00", "Z"),
                 user="ann") == [("b", "update")]
    assert names(user="nobody") == []
    for bad in ("object_type=planet", "since=yesterday", "object_id=0", "action=x",
                "limit=0", "colour=red"):
        response = client.get(f"/v1/changes?{bad}")
        assert response.status_code == 422, bad
        assert bad.split("=")[0] in error_of(response)["fields"]


def test_pages_are_newest_first_and_stable(client: Client, region: Body) -> None:
    """Keyset pages: each holds the next older records, none twice, none lost when new
    records arrive between pages."""
    for index in range(7):
        client.create(f"/v1/regions/{region['id']}/hosts", {"name": f"h{index}"})
    everything = records(client)
    first = client.get("/v1/changes?limit=3").get_json()
    client.create(f"/v1/regions/{region['id']}/hosts", {"name": "late"})
    rest = records(client, first["next"].removeprefix("http://localhost"))
    paged = first["items"] + rest
    assert [r["id"] for r in paged] == [r["id"] for r in everything]
    assert [r["id"] for r in paged] == sorted((r["id"] for r in paged), reverse=True)
    assert len(everything) == 9  # tenant, region, 7 hosts


def test_a_tenant_sees_only_its_own_records(client: Client) -> None:
    """A tenant's callers list its records only (an API key's only with apikeys:manage); a
    cloud admin lists all; another tenant's object's records are 404 like the object."""
    a = client.create("/v1/tenants", {"name": "a"})
    b = client.create("/v1/tenants", {"name": "b"})
    ra = client.create(f"/v1/tenants/{a['id']}/regions", {"name": "ra"})
    rb = client.create(f"/v1/tenants/{b['id']}/regions", {"name": "rb"})
    ha = client.create(f"/v1/regions/{ra['id']}/hosts", {"name": "ha"})
    hb = client.create(f"/v1/regions/{rb['id']}/hosts", {"name": "hb"},
                       tenant=b["id"], roles="member")
    ga = client.create(f"/v1/regions/{ra['id']}/groups", {"name": "ga"})
    client.create(f"/v1/tenants/{b['id']}/apikeys", {"name": "bkey", "role": "reader"})

    as_reader = records(client, tenant=b["id"], roles="reader")
    assert {r["tenant_id"] for r in as_reader} == {b["id"]}
    assert {r["object_name"] for r in as_reader} == {"b", "rb", "hb"}
    assert records(client, f"/v1/changes?tenant_id={a['id']}", tenant=b["id"],
                   roles="admin") == []
    as_admin = records(client, tenant=b["id"], roles="admin")
    assert {r["object_name"] for r in as_admin} == {"b", "rb", "hb", "bkey"}
    member = next(r for r in as_admin if r["object_name"] == "hb")
    assert member["actor"]["tenant_id"] == b["id"]
    everything = records(client)
    assert {"a", "ra", "ha", "ga", "b", "rb", "hb", "bkey"} <= {
        r["object_name"] for r in everything}

    for url in (f"/v1/hosts/{ha['id']}/changes", f"/v1/groups/{ga['id']}/changes",
                f"/v1/regions/{ra['id']}/changes"):
        response = client.get(url, tenant=b["id"], roles="admin")
        assert response.status_code == 404
        assert "ha" not in response.get_data(as_text=True)
    assert [r["object_name"] for r in records(
        client, f"/v1/hosts/{hb['id']}/changes", tenant=b["id"], roles="reader")] == ["hb"]
    assert client.get("/v1/changes", tenant=b["id"], roles="auditor").status_code == 403


def test_changes_made_with_an_api_key_name_the_key(client: Client, tmp_path: Any,
                                                   database: Database) -> None:
    """Under [api] auth_strategy = apikey a record names the strategy and the key."""
    from craton.api import create_app
    from tests.conftest import make_settings

    tenant = client.create("/v1/tenants", {"name": "keyed"})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "r"})
    key = client.create(f"/v1/tenants/{tenant['id']}/apikeys", {"name": "deployer",
                                                                "role": "member"})
    keyed = create_app(make_settings(tmp_path, auth_strategy="apikey",
                                     apikey_hash_key_file=str(
                                         client.http.application.extensions["craton"]
                                         .settings.apikey_hash_key_file)),
                       database=database)
    try:
        http = Client(keyed.test_client())
        made = http.post(f"/v1/regions/{region['id']}/hosts", {"name": "k1"},
                         headers={"Authorization": f"Bearer {key['key']}"})
        assert made.status_code == 201, made.get_json()
        (record,) = records(http, f"/v1/hosts/{made.get_json()['id']}/changes",
                            headers={"Authorization": f"Bearer {key['key']}"})
    finally:
        keyed.extensions["craton"].close()
    assert record["actor"] == {"user": f"deployer (API key {key['id']})",
                               "tenant_id": tenant["id"], "auth_strategy": "apikey",
                               "api_key_name": "deployer", "job_id": None}


# --- bulk writes, retention -----------------------------------------------------------------------

def test_bulk_create_records_in_a_constant_number_of_statements(
        client: Client, region: Body, database: Database) -> None:
    """A bulk create records each host (with its variables and groups) without a statement
    per host: 2,000 hosts cost what 20 do, but for the hosts' own INSERT (which SQLite runs
    a row at a time to return ids in order, records or not)."""
    client.create(f"/v1/regions/{region['id']}/groups", {"name": "g"})

    def bulk(prefix: str, count: int) -> int:
        body = [{"name": f"{prefix}{i}", "variables": {"i": i, "z_password": "p"},
                 "groups": ["g"]} for i in range(count)]
        with counting_queries(database) as statements:
            assert client.post(f"/v1/regions/{region['id']}/hosts", body).status_code == 201
        return len([s for s in statements if not s.startswith("INSERT INTO hosts ")])

    small, large = bulk("s", 20), bulk("l", 2000)
    assert large == small
    created = records(client, "/v1/changes?object_type=host&limit=1000")
    assert len(created) == 2020
    sample = next(r for r in created if r["object_name"] == "l1999")
    assert sample["variables"] == {"i": {"after": 1999}, "z_password": {"after": "<hidden>"}}
    assert sample["links"] == {"groups": {"added": ["g"]}}
    (group_record,) = [r for r in records(client, "/v1/changes?object_type=group")
                       if r["action"] == "update" and len(r["links"]["hosts"]["added"]) == 2000]
    assert group_record["object_name"] == "g"


def test_prune_deletes_records_older_than_the_cutoff(client: Client, region: Body,
                                                     database: Database) -> None:
    client.create(f"/v1/regions/{region['id']}/hosts", {"name": "old"})
    with database.connection() as connection:
        connection.execute(Change.__table__.update().values(
            created_at=dt.datetime(2020, 1, 1)))
    client.create(f"/v1/regions/{region['id']}/hosts", {"name": "new"})

    assert changes.prune(database, dt.datetime(2021, 1, 1)) == 3
    assert [r["object_name"] for r in records(client)] == ["new"]
    assert changes.prune(database, dt.datetime(2021, 1, 1)) == 0


def test_set_based_updates_and_unattributed_sessions_are_recorded(
        client: Client, region: Body, database: Database) -> None:
    """An UPDATE statement of a recorded column, run outside any request, is recorded with its
    before and after, as Craton's own; one of columns no record shows (reachability) is not."""
    from sqlalchemy import update

    from craton.db.models import Host

    host = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "h1"})
    with database.transaction() as session:
        session.execute(update(Host).where(Host.id == host["id"]).values(fqdn="h1.example"))
        session.execute(update(Host).where(Host.id == host["id"]).values(reachable=True))
    latest, created = records(client, f"/v1/hosts/{host['id']}/changes")
    assert created["action"] == "create"
    assert latest["actor"] == {"user": "craton", "tenant_id": None, "auth_strategy": "internal",
                               "api_key_name": None, "job_id": None}
    assert latest["fields"] == {"fqdn": {"before": None, "after": "h1.example"}}
    assert (latest["tenant_id"], latest["region_id"]) == (region["tenant_id"], region["id"])
