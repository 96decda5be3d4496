"""ETags and conditional requests: every object and every variables endpoint answers an ETag,
If-None-Match saves a download, and If-Match keeps a client from overwriting a change it has
not seen (412, nothing changed)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Client, error_of

Objects = dict[str, Any]


@pytest.fixture
def objects(client: Client, region: dict[str, Any]) -> Objects:
    """One of each kind: an empty tenant and an empty region (deletable without cascade), and
    in the ``region`` fixture's region a host, a group, a secret and a reference."""
    rid = region["id"]
    tenant = client.create("/v1/tenants", {"name": "etag-tenant"})
    empty_region = client.create(f"/v1/tenants/{region['tenant_id']}/regions", {"name": "empty"})
    host = client.create(f"/v1/regions/{rid}/hosts", {"name": "h1", "variables": {"a": 1}})
    group = client.create(f"/v1/regions/{rid}/groups", {"name": "web", "variables": {"a": 1}})
    secret = client.create(f"/v1/hosts/{host['id']}/secrets",
                           {"name": "pw", "kind": "password", "content": "hunter2"})
    reference = client.create(f"/v1/groups/{group['id']}/references",
                              {"name": "common", "url": "https://git.example.com/vars.git"})
    return {"tenant": tenant, "region": empty_region, "dfw": region, "host": host,
            "group": group, "secret": secret, "reference": reference}


Spec = tuple[Callable[[Objects], str], Callable[[int], Any], Callable[[Objects], str]]

# name → (URL of the object, a PATCH body that changes it (the n-th time), URL to DELETE).
RESOURCES: dict[str, Spec] = {
    "tenant": (lambda o: f"/v1/tenants/{o['tenant']['id']}",
               lambda n: {"description": f"revision {n}"},
               lambda o: f"/v1/tenants/{o['tenant']['id']}"),
    "region": (lambda o: f"/v1/regions/{o['region']['id']}",
               lambda n: {"description": f"revision {n}"},
               lambda o: f"/v1/regions/{o['region']['id']}"),
    "host": (lambda o: f"/v1/hosts/{o['host']['id']}",
             lambda n: {"ssh_user": f"user{n}"},
             lambda o: f"/v1/hosts/{o['host']['id']}"),
    "group": (lambda o: f"/v1/groups/{o['group']['id']}",
              lambda n: {"description": f"revision {n}"},
              lambda o: f"/v1/groups/{o['group']['id']}"),
    "secret": (lambda o: f"/v1/secrets/{o['secret']['id']}",
               lambda n: {"name": f"pw-{n}"},
               lambda o: f"/v1/secrets/{o['secret']['id']}"),
    "reference": (lambda o: f"/v1/references/{o['reference']['id']}",
                  lambda n: {"ref": f"v{n}"},
                  lambda o: f"/v1/references/{o['reference']['id']}"),
    "region variables": (lambda o: f"/v1/regions/{o['dfw']['id']}/variables",
                         lambda n: {"variables": {"rev": n}},
                         lambda o: f"/v1/regions/{o['dfw']['id']}/variables/rev"),
    "host variables": (lambda o: f"/v1/hosts/{o['host']['id']}/variables",
                       lambda n: {"variables": {"rev": n}},
                       lambda o: f"/v1/hosts/{o['host']['id']}/variables/rev"),
    "group variables": (lambda o: f"/v1/groups/{o['group']['id']}/variables",
                        lambda n: {"variables": {"rev": n}},
                        lambda o: f"/v1/groups/{o['group']['id']}/variables/rev"),
}


def _etag(response: Any) -> str:
    assert response.status_code in (200, 201), response.get_json()
    etag = response.headers.get("ETag")
    assert etag is not None and re.fullmatch(r'"\d+"', etag), etag
    return etag


def _refused_412(response: Any) -> None:
    assert response.status_code == 412, response.get_json()
    error = error_of(response)
    assert "If-Match" in error["message"]
    assert "If-Match" in error["fields"]


@pytest.mark.parametrize("name", list(RESOURCES))
def test_conditional_requests(client: Client, objects: Objects, name: str) -> None:
    """GET answers an ETag; If-None-Match with it is 304; each write answers a new ETag; a
    stale If-Match is 412 and changes nothing; the current one or * lets the write through;
    deletes are conditional the same way."""
    url_of, change, delete_url_of = RESOURCES[name]
    url, delete_url = url_of(objects), delete_url_of(objects)

    first = client.get(url)
    original = _etag(first)
    if "version" in first.get_json():
        assert original == f'"{first.get_json()["version"]}"'

    cached = client.get(url, headers={"If-None-Match": original})
    assert cached.status_code == 304
    assert cached.data == b"" and cached.headers["ETag"] == original
    assert client.get(url, headers={"If-None-Match": f'"0", {original}'}).status_code == 304
    other = client.get(url, headers={"If-None-Match": '"999999"'})
    assert other.status_code == 200 and other.get_json() == first.get_json()

    written = client.patch(url, change(1), headers={"If-Match": original})
    current = _etag(written)
    assert current != original
    after = client.get(url)
    assert _etag(after) == current

    _refused_412(client.patch(url, change(2), headers={"If-Match": original}))
    if name.endswith("variables"):
        _refused_412(client.put(url, {"variables": {}}, headers={"If-Match": original}))
    unchanged = client.get(url)
    assert unchanged.get_json() == after.get_json() and _etag(unchanged) == current

    fresh = client.get(url, headers={"If-None-Match": original})
    assert fresh.status_code == 200 and fresh.get_json() == after.get_json()

    listed = client.patch(url, change(3), headers={"If-Match": f'"0", {current}'})
    newer = _etag(listed)
    assert newer != current
    starred = client.patch(url, change(4), headers={"If-Match": "*"})
    newest = _etag(starred)
    assert newest not in (current, newer)
    assert _etag(client.get(url)) == newest

    _refused_412(client.delete(delete_url, headers={"If-Match": current}))
    assert client.get(url).get_json() == starred.get_json()
    assert client.delete(delete_url, headers={"If-Match": newest}).status_code == 204
    if name.endswith("variables"):
        assert "rev" not in client.get(url).get_json()["variables"]
    else:
        assert client.get(url).status_code == 404


@pytest.mark.parametrize("kind", ["tenants", "regions", "hosts", "groups", "secrets",
                                  "references"])
def test_create_answers_the_etag_a_get_answers(client: Client, objects: Objects,
                                               kind: str) -> None:
    """The ETag of a 201 is the ETag the object then has, so a client can write with
    If-Match right after creating."""
    rid, hid, gid = objects["dfw"]["id"], objects["host"]["id"], objects["group"]["id"]
    url, body = {
        "tenants": ("/v1/tenants", {"name": "fresh"}),
        "regions": (f"/v1/tenants/{objects['dfw']['tenant_id']}/regions", {"name": "fresh"}),
        "hosts": (f"/v1/regions/{rid}/hosts", {"name": "fresh"}),
        "groups": (f"/v1/regions/{rid}/groups", {"name": "fresh"}),
        "secrets": (f"/v1/hosts/{hid}/secrets", {"name": "fresh", "kind": "opaque",
                                                 "content": "x"}),
        "references": (f"/v1/groups/{gid}/references",
                       {"name": "fresh", "url": "https://example.com/v.yml"}),
    }[kind]
    created = client.post(url, body)
    assert created.status_code == 201
    location = created.headers["Location"]
    assert _etag(created) == _etag(client.get(location))
    again = client.patch(location, {"name": "fresher"}, headers={"If-Match": _etag(created)})
    assert again.status_code == 200, again.get_json()


@pytest.mark.parametrize("owner", ["regions", "hosts", "groups"])
def test_variables_share_their_owners_etag(client: Client, objects: Objects,
                                           owner: str) -> None:
    """Variables are part of their owner: both answer the same ETag, and changing the
    variables makes the owner's old ETag stale."""
    owner_id = {"regions": objects["dfw"], "hosts": objects["host"],
                "groups": objects["group"]}[owner]["id"]
    url = f"/v1/{owner}/{owner_id}"
    before = _etag(client.get(url))
    assert _etag(client.get(f"{url}/variables")) == before

    changed = client.put(f"{url}/variables", {"variables": {"b": 2}})
    assert _etag(changed) != before
    assert _etag(client.get(url)) == _etag(changed)
    stale = client.patch(url, {"variables": {"c": 3}}, headers={"If-Match": before})
    _refused_412(stale)
    assert client.get(f"{url}/variables").get_json() == {"variables": {"b": 2}}

    same = client.put(f"{url}/variables", {"variables": {"b": 2}})
    assert _etag(same) == _etag(changed), "an unchanged PUT must not move the ETag"


def test_membership_changes_move_host_and_group_etags(client: Client,
                                                      objects: Objects) -> None:
    """A host's groups are part of the host and of the group: adding or removing it makes
    both old ETags stale."""
    host_url = f"/v1/hosts/{objects['host']['id']}"
    group_url = f"/v1/groups/{objects['group']['id']}"
    host_before, group_before = _etag(client.get(host_url)), _etag(client.get(group_url))

    added = client.post(f"{group_url}/hosts", {"hosts": [objects["host"]["id"]]})
    assert added.status_code == 200
    assert client.get(host_url, headers={"If-None-Match": host_before}).status_code == 200
    _refused_412(client.patch(host_url, {"ssh_user": "x"}, headers={"If-Match": host_before}))
    _refused_412(client.patch(group_url, {"description": "x"},
                              headers={"If-Match": group_before}))

    host_member = _etag(client.get(host_url))
    removed = client.delete(f"{group_url}/hosts/{objects['host']['id']}")
    assert removed.status_code == 204
    assert client.get(host_url).get_json()["groups"] == []
    _refused_412(client.patch(host_url, {"ssh_user": "x"}, headers={"If-Match": host_member}))


def test_renaming_a_group_moves_the_etags_of_what_shows_its_name(client: Client,
                                                                 objects: Objects) -> None:
    """A host lists its groups' names and a group its subgroups', parents' and dependencies'
    names: after a rename, a cached copy naming the old name must not be confirmed by 304."""
    rid = objects["dfw"]["id"]
    client.create(f"/v1/regions/{rid}/groups", {"name": "app", "children": ["web"]})
    client.create(f"/v1/regions/{rid}/groups", {"name": "db", "depends_on": ["web"]})
    client.post(f"/v1/groups/{objects['group']['id']}/hosts", {"hosts": [objects["host"]["id"]]})
    host_url = f"/v1/hosts/{objects['host']['id']}"
    groups = {g["name"]: g["id"] for g in client.get(f"/v1/regions/{rid}/groups").get_json()[
        "items"]}
    watched = [host_url, f"/v1/groups/{groups['app']}", f"/v1/groups/{groups['db']}"]
    cached = {url: _etag(client.get(url)) for url in watched}

    renamed = client.patch(f"/v1/groups/{objects['group']['id']}", {"name": "frontend"})
    assert renamed.status_code == 200

    stale = {}
    for url in watched:
        response = client.get(url, headers={"If-None-Match": cached[url]})
        if response.status_code == 304:
            stale[url] = client.get(url).get_json()
    assert stale == {}, "304 confirmed copies that still name 'web'"


def test_weak_tag_never_satisfies_if_match(client: Client, region: dict) -> None:
    """If-Match compares strongly (RFC 9110): W/"n" is refused even when n is current."""
    url = f"/v1/regions/{region['id']}"
    current = client.get(url).headers["ETag"]
    refused = client.patch(url, {"description": "x"}, headers={"If-Match": f"W/{current}"})
    assert refused.status_code == 412
    assert client.get(url).get_json()["description"] is None
