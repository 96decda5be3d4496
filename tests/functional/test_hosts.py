"""Hosts through the API: create one or many, change, delete, and their variables."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, counting_queries, error_of

HOST_FIELDS = {"id", "region_id", "name", "ip_address", "fqdn", "ssh_port", "ssh_user", "state",
               "variables", "groups", "reachable", "last_seen_at", "created_at", "updated_at",
               "version"}


def hosts_url(region: dict[str, Any]) -> str:
    return f"/v1/regions/{region['id']}/hosts"


def region_hosts(client: Client, region: dict[str, Any]) -> list[dict[str, Any]]:
    """Every host of the region, as a listing shows them."""
    response = client.get(f"{hosts_url(region)}?limit=1000")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["next"] is None
    return response.get_json()["items"]


def host_names(client: Client, region: dict[str, Any]) -> list[str]:
    return [host["name"] for host in region_hosts(client, region)]


def make_group(client: Client, region: dict[str, Any], name: str, **fields: Any
               ) -> dict[str, Any]:
    return client.create(f"/v1/regions/{region['id']}/groups", {"name": name, **fields})


def get_json(client: Client, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200, (url, response.get_json())
    return response.get_json()


def member_names(client: Client, group_id: int) -> list[str]:
    return [host["name"] for host in get_json(client, f"/v1/groups/{group_id}/hosts")["items"]]


# --- Creating one host -----------------------------------------------------------------------

def test_create_one_host_answers_201_with_location_etag_and_the_host(client, region):
    """An operator registers a host and gets it back with where it lives and its version."""
    group = make_group(client, region, "web")
    response = client.post(hosts_url(region), {
        "name": "web-1", "ip_address": "10.0.0.5", "fqdn": "web-1.dfw.example.com",
        "ssh_port": 2222, "ssh_user": "deploy", "state": "ready",
        "variables": {"role": "web"}, "groups": ["web"],
    })
    assert response.status_code == 201, response.get_json()
    host = response.get_json()
    assert set(host) == HOST_FIELDS
    assert response.headers["Location"] == f"/v1/hosts/{host['id']}"
    assert response.headers["ETag"] == f'"{host["version"]}"'
    assert {k: host[k] for k in HOST_FIELDS - {"id", "created_at", "updated_at", "version"}} == {
        "region_id": region["id"], "name": "web-1", "ip_address": "10.0.0.5",
        "fqdn": "web-1.dfw.example.com", "ssh_port": 2222, "ssh_user": "deploy",
        "state": "ready", "variables": {"role": "web"}, "groups": ["web"],
        "reachable": None, "last_seen_at": None,
    }
    assert host["created_at"].endswith("Z") and host["updated_at"].endswith("Z")
    shown = client.get(response.headers["Location"])
    assert shown.status_code == 200
    assert shown.get_json() == host
    assert shown.headers["ETag"] == response.headers["ETag"]
    assert member_names(client, group["id"]) == ["web-1"]


def test_create_host_with_only_a_name_gets_defaults(client, region):
    """Only the name is required; the rest is empty and the state is "defined"."""
    host = client.create(hosts_url(region), {"name": "bare"})
    assert {k: host[k] for k in ("ip_address", "fqdn", "ssh_port", "ssh_user", "state",
                                 "variables", "groups")} == {
        "ip_address": None, "fqdn": None, "ssh_port": None, "ssh_user": None,
        "state": "defined", "variables": {}, "groups": [],
    }


@pytest.mark.parametrize(("given", "stored"), [
    ("2001:DB8::0001", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    (" 10.0.0.1 ", "10.0.0.1"),
])
def test_ip_address_is_stored_in_canonical_form(client, region, given, stored):
    """Addresses are kept in one canonical text, however the operator typed them."""
    host = client.create(hosts_url(region), {"name": "h1", "ip_address": given})
    assert host["ip_address"] == stored
    assert get_json(client, f"/v1/hosts/{host['id']}")["ip_address"] == stored


BAD_FIELDS = [
    ("ip_address", "10.0.0.256"),
    ("ip_address", "not-an-ip"),
    ("ip_address", ""),
    ("ip_address", "010.0.0.1"),
    ("ip_address", 167772161),
    ("fqdn", ""),
    ("fqdn", "-web.example.com"),
    ("fqdn", "web..example.com"),
    ("fqdn", "web 1.example.com"),
    ("fqdn", "a" * 64 + ".example.com"),
    ("ssh_user", ""),
    ("ssh_user", "root user"),
    ("ssh_user", "-root"),
    ("ssh_user", "u" * 65),
    ("ssh_port", 0),
    ("ssh_port", 70000),
    ("ssh_port", -22),
    ("ssh_port", "22"),
    ("ssh_port", True),
    ("ssh_port", 22.5),
    ("state", "bogus"),
    ("state", "READY"),
    ("state", None),
    ("name", ""),
    ("name", "../x"),
    ("name", "a/b"),
    ("name", "a b"),
    ("name", "a\x00b"),
    ("name", "x" * 201),
    ("name", "-web"),
    ("name", "-web"),
    ("name", "a..b"),
    ("name", 7),
    ("name", None),
    ("variables", ["a"]),
    ("groups", "web"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_invalid_field_is_422_naming_the_field(client, region, field, value):
    """A bad value is refused with a 422 naming exactly that field; nothing is created."""
    body = {"name": "good-name", field: value}
    response = client.post(hosts_url(region), body)
    assert response.status_code == 422, response.get_json()
    assert set(error_of(response)["fields"]) == {field}
    assert host_names(client, region) == []


def test_name_of_200_characters_is_accepted(client, region):
    """The length limit is 200: exactly 200 characters is fine."""
    name = "n" * 200
    assert client.create(hosts_url(region), {"name": name})["name"] == name


def test_missing_name_is_422(client, region):
    """A host without a name is refused, naming the field."""
    response = client.post(hosts_url(region), {"ip_address": "10.0.0.1"})
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"name"}
    assert host_names(client, region) == []


@pytest.mark.parametrize("field", ["bogus", "id", "region_id", "version", "created_at"])
def test_unknown_or_read_only_field_is_422(client, region, field):
    """A field the API does not accept (a typo, or one it sets itself) is named, not ignored."""
    response = client.post(hosts_url(region), {"name": "h1", field: 5})
    assert response.status_code == 422, response.get_json()
    assert set(error_of(response)["fields"]) == {field}
    assert host_names(client, region) == []


def test_several_bad_fields_are_all_named(client, region):
    """Every bad field of one host is reported at once."""
    response = client.post(hosts_url(region), {"name": "a b", "ip_address": "x",
                                               "fqdn": "-x", "ssh_user": "a b"})
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"name", "ip_address", "fqdn", "ssh_user"}


def test_duplicate_name_is_409_and_the_first_host_is_untouched(client, region):
    """A name is unique within a region; the second create is a conflict naming the field."""
    first = client.create(hosts_url(region), {"name": "web-1", "ip_address": "10.0.0.1"})
    response = client.post(hosts_url(region), {"name": "web-1", "ip_address": "10.0.0.2"})
    assert response.status_code == 409
    assert set(error_of(response)["fields"]) == {"name"}
    assert region_hosts(client, region) == [first]


def test_same_name_is_allowed_in_another_region(client, region):
    """Uniqueness is per region: two regions may each have a "web-1"."""
    other = client.create(f"/v1/tenants/{region['tenant_id']}/regions", {"name": "ord"})
    a = client.create(hosts_url(region), {"name": "web-1"})
    b = client.create(hosts_url(other), {"name": "web-1"})
    assert a["id"] != b["id"] and b["region_id"] == other["id"]


def test_host_names_equal_but_for_case_are_refused(client, region):
    """"Web1" and "web1" are two hosts to Ansible, but their host_vars files are one on a
    case-insensitive file system: the second is refused (422 naming the field), on create, in
    a bulk create and on rename; an exact duplicate is still a 409."""
    upper = client.create(hosts_url(region), {"name": "Web1"})
    lower = client.post(hosts_url(region), {"name": "web1"})
    assert lower.status_code == 422
    assert "host_vars file" in error_of(lower)["fields"]["name"]
    bulk = client.post(hosts_url(region), [{"name": "DB1"}, {"name": "db1"}])
    assert bulk.status_code == 422
    assert set(error_of(bulk)["fields"]) == {"1.name"}
    other = client.create(hosts_url(region), {"name": "other"})
    renamed = client.patch(f"/v1/hosts/{other['id']}", {"name": "WEB1"})
    assert renamed.status_code == 422
    assert sorted(host_names(client, region)) == ["Web1", "other"]
    assert client.post(hosts_url(region), {"name": "Web1"}).status_code == 409
    renamed = client.patch(f"/v1/hosts/{upper['id']}", {"name": "WEB1"})
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["name"] == "WEB1"


def test_create_in_unknown_region_is_404(client, region):
    """Creating in a region that does not exist names the resource that is missing."""
    response = client.post(f"/v1/regions/{region['id'] + 1000}/hosts", {"name": "h1"})
    assert response.status_code == 404
    error_of(response)


def test_body_that_is_not_an_object_or_list_is_refused(client, region):
    """A JSON scalar is neither one host nor a list of hosts."""
    response = client.post(hosts_url(region), "web-1")
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"body"}
    assert host_names(client, region) == []


# --- Creating many hosts ---------------------------------------------------------------------

def test_bulk_create_costs_the_same_statements_for_5_or_500_hosts(client, region, database):
    """Never one INSERT per host (SQLite cannot order a batched RETURNING: ids are given
    there instead) — and ids are never given twice, even after the newest host is deleted."""
    make_group(client, region, "web")
    counts = {}
    for size in (5, 500):
        fleet = [{"name": f"s{size}-{i}", "variables": {"rack": f"r{i}", "db_password": "pw"},
                  "groups": ["web"]} for i in range(size)]
        with counting_queries(database) as statements:
            response = client.post(hosts_url(region), fleet)
        assert response.status_code == 201, response.get_json()
        counts[size] = len(statements)
    assert counts[500] == counts[5] and counts[5] < 30, counts
    newest = max(h["id"] for h in region_hosts(client, region))
    assert client.delete(f"/v1/hosts/{newest}").status_code == 204
    created = client.post(hosts_url(region), [{"name": "after-1"}, {"name": "after-2"}])
    assert [h["id"] for h in created.get_json()["items"]] == [newest + 1, newest + 2]
    assert client.get(f"/v1/hosts/{newest}").status_code == 404


def test_bulk_create_answers_items_in_request_order(client, region):
    """A list of hosts is created in one request; the answer lists them in request order,
    each as a later GET shows it."""
    web = make_group(client, region, "web")
    make_group(client, region, "db")
    fleet = [
        {"name": "zz-3", "ip_address": "2001:DB8::3", "variables": {"rack": "r1", "n": 3},
         "groups": ["web", "db"]},
        {"name": "aa-1", "variables": {"rack": "r2", "tags": ["a", {"b": None}]},
         "groups": [web["id"]]},
        {"name": "mm-2", "ssh_port": 22, "ssh_user": "root", "state": "ready"},
    ]
    response = client.post(hosts_url(region), fleet)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"items", "next"} and body["next"] is None
    items = body["items"]
    assert [h["name"] for h in items] == ["zz-3", "aa-1", "mm-2"]
    assert [h["id"] for h in items] == sorted(h["id"] for h in items)
    assert items[0]["ip_address"] == "2001:db8::3"
    assert items[0]["groups"] == ["db", "web"]
    assert items[1]["groups"] == ["web"]
    assert items[2]["groups"] == []
    assert items[1]["variables"] == {"rack": "r2", "tags": ["a", {"b": None}]}
    assert items[2]["state"] == "ready" and items[2]["variables"] == {}
    for item in items:
        assert set(item) == HOST_FIELDS
        assert item["region_id"] == region["id"]
        assert get_json(client, f"/v1/hosts/{item['id']}") == item
    assert region_hosts(client, region) == sorted(items, key=lambda h: h["id"])


def test_bulk_create_groups_by_id_and_by_name(client, region):
    """Groups may be named by id or by name, mixed in one list."""
    a = make_group(client, region, "a")
    b = make_group(client, region, "b")
    items = client.create(hosts_url(region), [
        {"name": "h1", "groups": [a["id"], "b"]},
        {"name": "h2", "groups": ["a", "a", a["id"]]},
    ])["items"]
    assert items[0]["groups"] == ["a", "b"]
    assert items[1]["groups"] == ["a"]
    assert member_names(client, a["id"]) == ["h1", "h2"]
    assert member_names(client, b["id"]) == ["h1"]


def test_bulk_create_moves_the_groups_etag(client, region):
    """Joining hosts changes the group, so a cached copy of it is stale."""
    group = make_group(client, region, "web")
    before = client.get(f"/v1/groups/{group['id']}").headers["ETag"]
    client.create(hosts_url(region), [{"name": "h1", "groups": ["web"]}])
    after = client.get(f"/v1/groups/{group['id']}")
    assert after.headers["ETag"] != before
    assert after.get_json()["version"] > group["version"]


def test_bulk_create_is_all_or_nothing(client, region):
    """One bad item and nothing is created; the error names the item by index."""
    fleet = [{"name": f"ok-{i}"} for i in range(5)]
    fleet[3]["name"] = "bad name"
    response = client.post(hosts_url(region), fleet)
    assert response.status_code == 422
    error = error_of(response)
    assert set(error["fields"]) == {"3.name"}
    assert host_names(client, region) == []


def test_bulk_create_names_every_bad_item(client, region):
    """Every bad item is reported, each field under its item's index."""
    fleet = [
        {"name": "ok-0"},
        {"name": "a/b"},
        {"name": "ok-2", "ip_address": "999.0.0.1"},
        {"name": "ok-3"},
        {"name": "ok-4", "variables": {"groups": 1}, "ssh_user": "a b"},
    ]
    response = client.post(hosts_url(region), fleet)
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"1.name", "2.ip_address", "4.variables.groups",
                                                 "4.ssh_user"}
    assert host_names(client, region) == []


@pytest.mark.parametrize(("item", "field"), [
    ({"name": "h", "ssh_port": "22"}, "2.ssh_port"),
    ({"name": "h", "bogus": 1}, "2.bogus"),
    ({"ip_address": "10.0.0.1"}, "2.name"),
    ("h", "2"),
])
def test_bulk_create_names_shape_errors_by_index(client, region, item, field):
    """Wrong types, unknown fields, a missing name or an item that is not an object are
    named by index too."""
    response = client.post(hosts_url(region), [{"name": "a"}, {"name": "b"}, item])
    assert response.status_code == 422, response.get_json()
    assert set(error_of(response)["fields"]) == {field}
    assert host_names(client, region) == []


def test_bulk_duplicate_names_in_the_request_name_the_later_item(client, region):
    """Two items with one name: the later one is named, and nothing is created."""
    response = client.post(hosts_url(region), [
        {"name": "h0"}, {"name": "h1"}, {"name": "h0"}, {"name": "h1"}, {"name": "h0"},
    ])
    assert response.status_code == 422
    fields = error_of(response)["fields"]
    assert set(fields) == {"2.name", "3.name", "4.name"}
    assert "0" in fields["2.name"] and "1" in fields["3.name"]
    assert host_names(client, region) == []


def test_bulk_name_clash_with_existing_host_is_409_naming_the_item(client, region):
    """A name already used in the region is a conflict naming the item; nothing is created."""
    client.create(hosts_url(region), {"name": "old"})
    response = client.post(hosts_url(region), [{"name": "new-0"}, {"name": "new-1"},
                                               {"name": "old"}])
    assert response.status_code == 409
    assert set(error_of(response)["fields"]) == {"2.name"}
    assert host_names(client, region) == ["old"]


def test_bulk_unknown_group_is_422_naming_the_item(client, region):
    """A group that is not in the region is named with its item; nothing is created."""
    make_group(client, region, "web")
    other = client.create(f"/v1/tenants/{region['tenant_id']}/regions", {"name": "ord"})
    elsewhere = make_group(client, other, "db")
    response = client.post(hosts_url(region), [
        {"name": "h0", "groups": ["web"]},
        {"name": "h1", "groups": ["web", "nope"]},
        {"name": "h2", "groups": [elsewhere["id"]]},
    ])
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"1.groups", "2.groups"}
    assert host_names(client, region) == []


def test_bulk_empty_list_is_422(client, region):
    """An empty list creates nothing and says so."""
    response = client.post(hosts_url(region), [])
    assert response.status_code == 422
    assert error_of(response)["fields"]
    assert host_names(client, region) == []


# --- Changing a host -------------------------------------------------------------------------

@pytest.fixture
def host(client: Client, region: dict[str, Any]) -> dict[str, Any]:
    """A fully described host."""
    return client.create(hosts_url(region), {
        "name": "web-1", "ip_address": "10.0.0.1", "fqdn": "web-1.example.com",
        "ssh_port": 22, "ssh_user": "root", "state": "defined",
        "variables": {"role": "web", "rack": "r1"},
    })


def test_patch_changes_scalar_fields_and_moves_the_etag(client, host):
    """Every scalar field can be changed; the answer and a later GET agree."""
    response = client.patch(f"/v1/hosts/{host['id']}", {
        "name": "web-2", "ip_address": "FE80::0001", "fqdn": "web-2.example.com.",
        "ssh_port": 2222, "ssh_user": "deploy", "state": "ready",
    })
    assert response.status_code == 200, response.get_json()
    changed = response.get_json()
    assert {k: changed[k] for k in ("name", "ip_address", "fqdn", "ssh_port", "ssh_user",
                                    "state")} == {
        "name": "web-2", "ip_address": "fe80::1", "fqdn": "web-2.example.com.",
        "ssh_port": 2222, "ssh_user": "deploy", "state": "ready",
    }
    assert changed["variables"] == host["variables"]
    assert changed["version"] > host["version"]
    assert response.headers["ETag"] == f'"{changed["version"]}"'
    assert get_json(client, f"/v1/hosts/{host['id']}") == changed


def test_patch_null_clears_nullable_fields(client, host):
    """null empties ip_address, fqdn, ssh_port and ssh_user."""
    response = client.patch(f"/v1/hosts/{host['id']}", {
        "ip_address": None, "fqdn": None, "ssh_port": None, "ssh_user": None})
    assert response.status_code == 200, response.get_json()
    shown = get_json(client, f"/v1/hosts/{host['id']}")
    assert [shown[k] for k in ("ip_address", "fqdn", "ssh_port", "ssh_user")] == [None] * 4
    assert shown["name"] == "web-1" and shown["state"] == "defined"


@pytest.mark.parametrize(("field", "value"), [
    ("name", None), ("name", "a/b"), ("name", ""), ("state", None), ("state", "gone"),
    ("ip_address", "10.0.0"), ("ssh_port", 0), ("ssh_port", "22"), ("ssh_user", "a b"),
    ("fqdn", "a..b"), ("bogus", 1), ("id", 1), ("variables", {"groups": 1}),
])
def test_patch_with_a_bad_field_is_422_and_changes_nothing(client, host, field, value):
    """A refused change leaves the host exactly as it was, other fields included."""
    response = client.patch(f"/v1/hosts/{host['id']}", {"ssh_user": "other", field: value})
    assert response.status_code == 422, response.get_json()
    named = set(error_of(response)["fields"])
    assert named == ({f"variables.{next(iter(value))}"} if field == "variables" else {field})
    assert get_json(client, f"/v1/hosts/{host['id']}") == host


def test_patch_variables_merges_and_null_deletes(client, host):
    """Variables in a PATCH are merged into the host's: new keys added, null deletes."""
    response = client.patch(f"/v1/hosts/{host['id']}",
                            {"variables": {"rack": None, "zone": "b", "role": "db"}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["variables"] == {"role": "db", "zone": "b"}
    assert response.get_json()["version"] > host["version"]
    assert get_json(client, f"/v1/hosts/{host['id']}")["variables"] == {"role": "db",
                                                                       "zone": "b"}


def test_patch_groups_replaces_memberships(client, region, host):
    """groups replaces the host's direct memberships; each group gained or lost changes."""
    zeta = make_group(client, region, "zeta")
    alpha = make_group(client, region, "alpha")
    mid = make_group(client, region, "mid")
    first = client.patch(f"/v1/hosts/{host['id']}", {"groups": ["zeta", "mid"]})
    assert first.status_code == 200, first.get_json()
    assert sorted(first.get_json()["groups"]) == ["mid", "zeta"]
    before = {g["id"]: get_json(client, f"/v1/groups/{g['id']}")["version"]
              for g in (zeta, alpha, mid)}

    response = client.patch(f"/v1/hosts/{host['id']}", {"groups": [alpha["id"], "mid"]})
    assert response.status_code == 200, response.get_json()
    assert sorted(response.get_json()["groups"]) == ["alpha", "mid"]
    assert response.get_json()["version"] > first.get_json()["version"]
    assert get_json(client, f"/v1/hosts/{host['id']}")["groups"] == ["alpha", "mid"]
    assert member_names(client, zeta["id"]) == []
    assert member_names(client, alpha["id"]) == ["web-1"]
    assert member_names(client, mid["id"]) == ["web-1"]
    for group in (zeta, alpha):
        shown = client.get(f"/v1/groups/{group['id']}")
        assert shown.get_json()["version"] > before[group["id"]]
        assert shown.headers["ETag"] == f'"{shown.get_json()["version"]}"'

    cleared = client.patch(f"/v1/hosts/{host['id']}", {"groups": []})
    assert cleared.status_code == 200 and cleared.get_json()["groups"] == []
    assert member_names(client, mid["id"]) == []


def test_patch_groups_answer_lists_groups_by_name(client, region, host):
    """The PATCH answer shows the groups in the same (name) order as a GET does."""
    make_group(client, region, "zeta")
    make_group(client, region, "alpha")
    response = client.patch(f"/v1/hosts/{host['id']}", {"groups": ["zeta", "alpha"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["groups"] == ["alpha", "zeta"]
    assert response.get_json() == get_json(client, f"/v1/hosts/{host['id']}")


def test_patch_unknown_group_is_422_and_changes_nothing(client, region, host):
    """An unknown group refuses the whole change, the other fields included."""
    make_group(client, region, "web")
    response = client.patch(f"/v1/hosts/{host['id']}",
                            {"name": "renamed", "groups": ["web", "nope"]})
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"groups"}
    assert get_json(client, f"/v1/hosts/{host['id']}") == host


def test_rename_to_a_taken_name_is_409_and_changes_nothing(client, region, host):
    """Renaming onto another host's name is a conflict; nothing of the change is applied."""
    other = client.create(hosts_url(region), {"name": "web-2"})
    response = client.patch(f"/v1/hosts/{host['id']}", {
        "name": "web-2", "ip_address": "10.9.9.9", "variables": {"role": None}})
    assert response.status_code == 409
    assert set(error_of(response)["fields"]) == {"name"}
    assert get_json(client, f"/v1/hosts/{host['id']}") == host
    assert get_json(client, f"/v1/hosts/{other['id']}") == other


def test_rename_to_its_own_name_is_fine(client, host):
    """Sending the current name back is not a conflict."""
    response = client.patch(f"/v1/hosts/{host['id']}", {"name": "web-1", "state": "ready"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "ready"


def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(client, host):
    """A change based on an old version is refused once someone else changed the host."""
    old_etag = f'"{host["version"]}"'
    assert client.patch(f"/v1/hosts/{host['id']}", {"state": "ready"},
                        headers={"If-Match": old_etag}).status_code == 200
    current = get_json(client, f"/v1/hosts/{host['id']}")
    response = client.patch(f"/v1/hosts/{host['id']}", {"state": "stopped"},
                            headers={"If-Match": old_etag})
    assert response.status_code == 412
    assert get_json(client, f"/v1/hosts/{host['id']}") == current


def test_patch_unknown_host_is_404(client, host):
    """Changing a host that does not exist is a 404."""
    response = client.patch(f"/v1/hosts/{host['id'] + 1000}", {"state": "ready"})
    assert response.status_code == 404
    error_of(response)


def test_host_id_too_large_for_the_database_is_404(client, host):
    """An id no row could have is a 404 like any unknown id, not a server error."""
    url = f"/v1/hosts/{10 ** 20}"
    for response in (client.get(url), client.patch(url, {"state": "ready"}),
                     client.delete(url), client.get(f"{url}/variables"),
                     client.put(f"{url}/variables", {"variables": {}})):
        assert response.status_code == 404, response.get_json()
        error_of(response)
    assert get_json(client, f"/v1/hosts/{host['id']}") == host


# --- Deleting a host -------------------------------------------------------------------------

def test_delete_host_takes_its_secrets_and_memberships(client, region, host):
    """A deleted host is gone with its secrets and memberships; its name is free again."""
    group = make_group(client, region, "web")
    other = client.create(hosts_url(region), {"name": "web-2", "groups": ["web"]})
    assert client.patch(f"/v1/hosts/{host['id']}", {"groups": ["web"]}).status_code == 200
    secret = client.create(f"/v1/hosts/{host['id']}/secrets",
                           {"name": "root-pw", "kind": "password", "content": "hunter2"})
    group_version = get_json(client, f"/v1/groups/{group['id']}")["version"]

    response = client.delete(f"/v1/hosts/{host['id']}")
    assert response.status_code == 204
    assert response.data == b""
    for url in (f"/v1/hosts/{host['id']}", f"/v1/hosts/{host['id']}/variables",
                f"/v1/hosts/{host['id']}/secrets", f"/v1/secrets/{secret['id']}"):
        gone = client.get(url)
        assert gone.status_code == 404, url
        error_of(gone)
    assert client.post(f"/v1/secrets/{secret['id']}/reveal").status_code == 404
    assert member_names(client, group["id"]) == ["web-2"]
    assert get_json(client, f"/v1/groups/{group['id']}")["version"] > group_version
    assert host_names(client, region) == ["web-2"]
    assert get_json(client, f"/v1/hosts/{other['id']}")["groups"] == ["web"]
    again = client.create(hosts_url(region), {"name": "web-1"})
    assert again["id"] != host["id"] and again["variables"] == {} and again["groups"] == []
    assert client.get(f"/v1/hosts/{again['id']}/secrets").get_json()["items"] == []


def test_delete_twice_is_404(client, host):
    """The second delete finds nothing."""
    assert client.delete(f"/v1/hosts/{host['id']}").status_code == 204
    response = client.delete(f"/v1/hosts/{host['id']}")
    assert response.status_code == 404
    error_of(response)


def test_other_tenant_cannot_see_change_or_delete_a_host(client, host):
    """A caller scoped to another tenant gets 404s, as for a host that does not exist."""
    other = client.create("/v1/tenants", {"name": "globex"})
    url = f"/v1/hosts/{host['id']}"
    assert client.get(url, tenant=other["id"]).status_code == 404
    assert client.get(f"{url}/variables", tenant=other["id"]).status_code == 404
    assert client.patch(url, {"state": "ready"}, tenant=other["id"]).status_code == 404
    assert client.put(f"{url}/variables", {"variables": {}},
                      tenant=other["id"]).status_code == 404
    assert client.delete(url, tenant=other["id"]).status_code == 404
    assert get_json(client, url) == host


# --- Variables -------------------------------------------------------------------------------

def test_variables_get_put_patch_delete(client, host):
    """Show, replace, merge and delete a host's variables, each moving the host's ETag."""
    url = f"/v1/hosts/{host['id']}/variables"
    shown = client.get(url)
    assert shown.status_code == 200
    assert shown.get_json() == {"variables": {"role": "web", "rack": "r1"}}
    assert shown.headers["ETag"] == f'"{host["version"]}"'

    put = client.put(url, {"variables": {"a": 1, "b": "two"}})
    assert put.status_code == 200 and put.get_json() == {"variables": {"a": 1, "b": "two"}}
    assert put.headers["ETag"] != shown.headers["ETag"]

    patched = client.patch(url, {"variables": {"a": None, "c": [3]}})
    assert patched.status_code == 200
    assert patched.get_json() == {"variables": {"b": "two", "c": [3]}}
    assert patched.headers["ETag"] != put.headers["ETag"]

    deleted = client.delete(f"{url}/b")
    assert deleted.status_code == 204
    after = client.get(url)
    assert after.get_json() == {"variables": {"c": [3]}}
    assert after.headers["ETag"] != patched.headers["ETag"]
    assert get_json(client, f"/v1/hosts/{host['id']}")["variables"] == {"c": [3]}
    assert after.headers["ETag"] == client.get(f"/v1/hosts/{host['id']}").headers["ETag"]

    emptied = client.put(url, {"variables": {}})
    assert emptied.status_code == 200 and emptied.get_json() == {"variables": {}}


def test_delete_unknown_variable_is_404(client, host):
    """Deleting a key that is not set is a 404, and the others stay."""
    response = client.delete(f"/v1/hosts/{host['id']}/variables/nope")
    assert response.status_code == 404
    error_of(response)
    assert get_json(client, f"/v1/hosts/{host['id']}")["variables"] == host["variables"]


@pytest.mark.parametrize("key", ["a\nb", "", "k" * 256, "a\x7fb", "groups",
                                 "inventory_hostname", "__ansible_unsafe"])
@pytest.mark.parametrize("method", ["put", "patch", "patch-null"])
def test_invalid_variable_key_is_422_naming_it(client, host, method, key):
    """A key Ansible would drop or misread (or Craton cannot hold) is refused, named as
    variables.<key>; nothing changes. Deleting a reserved key (patch with null) is allowed."""
    if method == "patch-null" and key in ("groups", "inventory_hostname", "__ansible_unsafe"):
        response = client.patch(f"/v1/hosts/{host['id']}/variables", {"variables": {key: None}})
        assert response.status_code == 200, response.get_json()
        return
    url = f"/v1/hosts/{host['id']}/variables"
    value = None if method == "patch-null" else 1
    send = client.put if method == "put" else client.patch
    response = send(url, {"variables": {"ok": 2, key: value}})
    assert response.status_code == 422, response.get_json()
    assert set(error_of(response)["fields"]) == {f"variables.{key}"}
    assert get_json(client, url) == {"variables": host["variables"]}


@pytest.mark.parametrize("key", ["1a", "class", "a-b", "a.b", "caf\u00e9", "None", "a b",
                                 'a"b', "a\\b"])
def test_keys_ansible_keeps_are_kept(client, host, key):
    """Ansible keeps inventory variables whose names are not identifiers (it only warns), so
    Craton stores them too."""
    url = f"/v1/hosts/{host['id']}/variables"
    response = client.patch(url, {"variables": {key: 1}})
    assert response.status_code == 200, response.get_json()
    assert get_json(client, url)["variables"][key] == 1


@pytest.mark.parametrize("key", ["hostvars", "group_names", "__ansible_vault", "a\x00"])
def test_invalid_variable_key_on_create_is_422_naming_it(client, region, key):
    """The same key rules hold when a host is created with variables."""
    response = client.post(hosts_url(region), {"name": "h1", "variables": {key: 1}})
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {f"variables.{key}"}
    assert host_names(client, region) == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "[1, NaN]"])
def test_non_finite_number_is_422(client, host, literal):
    """NaN and Infinity are not JSON; a body carrying them is refused, naming the key."""
    url = f"/v1/hosts/{host['id']}/variables"
    response = client.http.open(url, method="PATCH", data=f'{{"variables": {{"x": {literal}}}}}',
                                content_type="application/json")
    assert response.status_code == 422, response.get_json()
    assert set(error_of(response)["fields"]) == {"variables.x"}
    assert get_json(client, url) == {"variables": host["variables"]}


ROUND_TRIP = {
    "list": [1, "two", None, [3, [4]], {"five": 5}],
    "dict": {"b": {"c": [None]}, "a": [], "z": {}},
    "null_in_list": [None, None],
    "unicode": "Zürich — 東京 🚀",
    "escapes": "quote\" backslash\\ newline\n tab\t nul\u0000",
    "big": 2 ** 70,
    "negative_big": -(2 ** 63) - 1,
    "zero": 0,
    "floats": [0.1, -2.5, 1e-7, 1.5e300, 1.0],
    "bools": [True, False],
    "empty_string": "",
    "null": None,
}


@pytest.mark.parametrize("method", ["create", "put", "patch"])
def test_variable_values_round_trip_exactly(client, region, method):
    """Whatever JSON goes in comes back the same: nesting, nulls, unicode, big ints, floats."""
    if method == "create":
        host_id = client.create(hosts_url(region), {"name": "h1", "variables": ROUND_TRIP})["id"]
    else:
        host_id = client.create(hosts_url(region), {"name": "h1"})["id"]
        values = ROUND_TRIP if method == "put" else {k: v for k, v in ROUND_TRIP.items()
                                                     if v is not None}
        response = getattr(client, method)(f"/v1/hosts/{host_id}/variables",
                                           {"variables": values})
        assert response.status_code == 200, response.get_json()
    shown = get_json(client, f"/v1/hosts/{host_id}/variables")["variables"]
    expected = ROUND_TRIP if method != "patch" else {k: v for k, v in ROUND_TRIP.items()
                                                     if v is not None}
    assert shown == expected
    assert [type(x) for x in shown["floats"]] == [float] * 5
    assert type(shown["big"]) is int and type(shown["zero"]) is int
    listed = client.get(f"{hosts_url(region)}?name=h1").get_json()["items"]
    assert listed[0]["variables"] == expected


def test_longest_variable_key_is_accepted(client, host):
    """A key of 255 characters is the longest allowed, and it is kept whole."""
    key = "k" * 255
    url = f"/v1/hosts/{host['id']}/variables"
    response = client.patch(url, {"variables": {key: "long"}})
    assert response.status_code == 200, response.get_json()
    assert get_json(client, url)["variables"][key] == "long"


def test_variables_body_without_variables_is_422(client, host):
    """PUT needs the variables object; anything else is named."""
    url = f"/v1/hosts/{host['id']}/variables"
    for body, field in (({}, "variables"), ({"variables": [1]}, "variables"),
                        ({"variables": {}, "extra": 1}, "extra")):
        response = client.put(url, body)
        assert response.status_code == 422, (body, response.get_json())
        assert set(error_of(response)["fields"]) == {field}
    assert get_json(client, url) == {"variables": host["variables"]}


def test_variables_if_match_is_checked(client, host):
    """Variables share the host's ETag: a stale If-Match is refused on them too."""
    url = f"/v1/hosts/{host['id']}/variables"
    stale = f'"{host["version"]}"'
    assert client.patch(f"/v1/hosts/{host['id']}", {"state": "ready"}).status_code == 200
    response = client.put(url, {"variables": {}}, headers={"If-Match": stale})
    assert response.status_code == 412
    assert client.delete(f"{url}/role", headers={"If-Match": stale}).status_code == 412
    assert get_json(client, url) == {"variables": host["variables"]}


# --- Listing ---------------------------------------------------------------------------------

def test_list_answers_byte_for_byte_what_host_list_dumps(app, client, region, database):
    """The hosts lists (a region's, across regions, a group's members) read rows and dump them
    without marshmallow (for speed); they answer, to the byte, what HostList dumps of the same
    hosts as ORM objects: every field, in the same order, variables hidden as they are stored,
    groups by name, reachability."""
    from flask import jsonify
    from sqlalchemy import select, update

    from craton.api.v1 import schemas
    from craton.db.models import Host
    from craton.inventory.hosts import HOST_LOADERS

    make_group(client, region, "zeta")
    alpha = make_group(client, region, "alpha")
    items = [
        {"name": "full", "ip_address": "10.0.0.1", "fqdn": "full.example", "ssh_port": 2222,
         "ssh_user": "deploy", "state": "ready", "groups": ["zeta", "alpha"],
         "variables": {**ROUND_TRIP, "db_password": "s3cret", "Zed": 1, "motd": "hi"}},
        {"name": "bare"},
        {"name": "seen", "groups": ["alpha"], "variables": {"role": "web"}},
        {"name": "unseen", "state": "stopped", "variables": {"vault_token": {"a": 1}}},
    ]
    created = {h["name"]: h for h in client.create(hosts_url(region), items)["items"]}
    response = client.patch(f"/v1/hosts/{created['bare']['id']}/variables",
                            {"variables": {"motd_key": "x", "plain": 2}, "sensitive": ["motd_key"]})
    assert response.status_code == 200, response.get_json()
    with database.transaction() as session:
        session.execute(update(Host).where(Host.id == created["seen"]["id"]).values(
            reachable=True, last_seen_at=Host.created_at))
        session.execute(update(Host).where(Host.id == created["unseen"]["id"]).values(
            reachable=False))
    other = client.create(f"/v1/tenants/{region['tenant_id']}/regions", {"name": "other"})
    client.create(f"/v1/regions/{other['id']}/hosts", {"name": "elsewhere"})
    stranger = client.create("/v1/tenants", {"name": "stranger"})
    far = client.create(f"/v1/tenants/{stranger['id']}/regions", {"name": "far"})
    client.create(f"/v1/regions/{far['id']}/hosts", {"name": "theirs", "variables": {"a": 1}})

    def orm_dump(where: Any, limit: int, next_url: str | None) -> bytes:
        session = database.new_session()
        try:
            found = list(session.scalars(select(Host).where(where).order_by(Host.id)
                                         .options(*HOST_LOADERS).limit(limit)))
            with app.app_context():
                return jsonify(schemas.HostList().dump({"items": found, "next": next_url})).data
        finally:
            session.close()

    ours = Host.region_id.in_([region["id"], other["id"]])
    for url, tenant, where in (
        (f"{hosts_url(region)}?limit=1000", None, Host.region_id == region["id"]),
        (f"{hosts_url(region)}?limit=1000", region["tenant_id"], Host.region_id == region["id"]),
        ("/v1/hosts?limit=1000", None, Host.id > 0),
        ("/v1/hosts?limit=1000", region["tenant_id"], ours),
        (f"/v1/hosts?limit=2&marker={created['full']['id']}", region["tenant_id"],
         ours & (Host.id > created["full"]["id"])),
        (f"/v1/groups/{alpha['id']}/hosts", region["tenant_id"],
         Host.id.in_([created["full"]["id"], created["seen"]["id"]])),
    ):
        response = client.get(url, tenant=tenant, roles="reader" if tenant else None)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        expected = orm_dump(where, len(body["items"]), body["next"])
        assert len(body["items"]) >= 2 and response.data == expected, (url, tenant)
    shown = {h["name"]: h for h in client.get(f"{hosts_url(region)}").get_json()["items"]}
    assert shown["full"]["variables"]["db_password"] == "<hidden>"
    assert shown["full"]["groups"] == ["alpha", "zeta"]
    assert shown["bare"]["variables"] == {"motd_key": "<hidden>", "plain": 2}
    assert (shown["seen"]["reachable"], shown["unseen"]["reachable"]) == (True, False)
    assert shown["seen"]["last_seen_at"] == shown["seen"]["created_at"]


def test_plain_dumper_refuses_a_field_it_cannot_dump():
    """A field type whose dump is not a plain conversion cannot slip into the fast path."""
    import marshmallow as ma

    from craton.api.v1.schemas import PlainDumper, Stamped

    class WithNested(Stamped):
        inner = ma.fields.Nested(Stamped)

    with pytest.raises(TypeError, match="Nested field 'inner'"):
        PlainDumper(WithNested())
