"""Groups through the API: creation with links named inline, the subgroup and depends_on DAGs
(cycles refused with nothing changed), host membership, subgroups, PATCH/DELETE, group variables
and the group lists."""

from __future__ import annotations

from typing import Any

import pytest

from craton.db.session import Database
from tests.conftest import Client, counting_queries, error_of

Body = dict[str, Any]


# --- helpers -----------------------------------------------------------------------------------

def groups_url(region: Body) -> str:
    return f"/v1/regions/{region['id']}/groups"


def make_group(client: Client, region: Body, name: str, **fields: Any) -> Body:
    return client.create(groups_url(region), {"name": name, **fields})


def make_host(client: Client, region: Body, name: str, **fields: Any) -> Body:
    return client.create(f"/v1/regions/{region['id']}/hosts", {"name": name, **fields})


def group(client: Client, group_id: int) -> Body:
    response = client.get(f"/v1/groups/{group_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def host(client: Client, host_id: int) -> Body:
    response = client.get(f"/v1/hosts/{host_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def etag(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    return response.headers["ETag"]


def all_items(client: Client, url: str) -> list[Body]:
    """Every item of a list, following ``next``."""
    items: list[Body] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        items += page["items"]
        url = page["next"]
    return items


def region_state(client: Client, region: Body) -> dict[str, tuple[Any, ...]]:
    """Every group of the region with everything a refused write must leave alone."""
    return {
        g["name"]: (g["id"], g["description"], g["variables"], g["children"], g["parents"],
                    g["depends_on"], g["version"])
        for g in all_items(client, f"{groups_url(region)}?limit=1000")
    }


def assert_cycle(response: Any, field: str, cycle: list[str]) -> None:
    """A 409 whose message and field spell ``cycle`` (names in edge order, from any start)."""
    assert response.status_code == 409, response.get_json()
    error = error_of(response)
    spellings = [" → ".join([*cycle[i:], *cycle[:i], cycle[i]]) for i in range(len(cycle))]
    assert any(s in error["message"] for s in spellings), (error["message"], spellings)
    assert set(error["fields"]) == {field}
    assert any(s in error["fields"][field] for s in spellings), error["fields"]


@pytest.fixture
def other_region(client: Client, region: Body) -> Body:
    """A second region of the same tenant."""
    return client.create(f"/v1/tenants/{region['tenant_id']}/regions", {"name": "ord"})


# --- creation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("by", ["id", "name"])
def test_create_group_with_links_named_inline(client: Client, region: Body, by: str) -> None:
    """A group can be created with parents, children, dependencies and hosts named inline,
    by id or by name, and every side of each link shows it."""
    cloud = make_group(client, region, "cloud")
    gpu = make_group(client, region, "gpu")
    nfs = make_group(client, region, "nfs")
    dns = make_group(client, region, "dns")
    h1 = make_host(client, region, "h1")
    h2 = make_host(client, region, "h2")
    h1_etag = etag(client, f"/v1/hosts/{h1['id']}")

    def ref(obj: Body) -> int | str:
        return obj[by]

    response = client.post(groups_url(region), {
        "name": "compute", "description": "hypervisors", "variables": {"cpu": "x86"},
        "parents": [ref(cloud)], "children": [ref(gpu)], "depends_on": [ref(nfs), ref(dns)],
        "hosts": [ref(h1), ref(h2)],
    })
    assert response.status_code == 201, response.get_json()
    compute = response.get_json()
    assert response.headers["Location"] == f"/v1/groups/{compute['id']}"
    assert response.headers["ETag"] == f'"{compute["version"]}"'
    assert compute["name"] == "compute" and compute["region_id"] == region["id"]
    assert compute["description"] == "hypervisors"
    assert compute["variables"] == {"cpu": "x86"}
    assert compute["parents"] == ["cloud"]
    assert compute["children"] == ["gpu"]
    assert compute["depends_on"] == ["dns", "nfs"]
    assert group(client, compute["id"]) == compute

    assert group(client, cloud["id"])["children"] == ["compute"]
    assert group(client, gpu["id"])["parents"] == ["compute"]
    members = client.get(f"/v1/groups/{compute['id']}/hosts").get_json()["items"]
    assert [m["id"] for m in members] == [h1["id"], h2["id"]]
    assert host(client, h1["id"])["groups"] == ["compute"]
    assert etag(client, f"/v1/hosts/{h1['id']}") != h1_etag


@pytest.mark.parametrize("field", ["children", "parents", "depends_on", "hosts"])
@pytest.mark.parametrize("by", ["name", "id"])
def test_create_group_with_unknown_link_is_refused(client: Client, region: Body, field: str,
                                                   by: str) -> None:
    """Naming a group or host that does not exist in any link field is a 422 naming that
    field, and nothing is created (not even the links that were fine)."""
    make_group(client, region, "known")
    make_host(client, region, "known-host")
    before = region_state(client, region)
    unknown: int | str = "nope" if by == "name" else 10**9
    body: Body = {"name": "fresh", "children": ["known"], "hosts": ["known-host"]}
    body[field] = [*body.get(field, []), unknown]

    response = client.post(groups_url(region), body)

    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert set(error["fields"]) == {field}
    assert repr(unknown) in error["fields"][field]
    assert region_state(client, region) == before
    assert client.get(f"/v1/hosts?region_id={region['id']}&name=known-host"
                      ).get_json()["items"][0]["groups"] == []


def test_create_group_names_every_field_with_an_unknown_group(client: Client,
                                                              region: Body) -> None:
    """Unknown groups in several fields are all named in one answer."""
    response = client.post(groups_url(region), {"name": "fresh", "children": ["x"],
                                                 "parents": ["y"], "depends_on": [12345678]})
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"children", "parents", "depends_on"}
    assert region_state(client, region) == {}


@pytest.mark.parametrize("name", ["all", "ungrouped", "_meta", "", "a b", "a:b", "g[1]", "-a",
                                  ".a", "a/b", "x" * 201])
def test_group_names_must_be_ansible_group_names(client: Client, region: Body,
                                                 name: str) -> None:
    """A name Ansible reserves or misreads, or that is no safe file name, is refused (on
    create and on rename)."""
    response = client.post(groups_url(region), {"name": name})
    assert response.status_code == 422, response.get_json()
    assert set(error_of(response)["fields"]) == {"name"}
    assert region_state(client, region) == {}

    web = make_group(client, region, "web")
    renamed = client.patch(f"/v1/groups/{web['id']}", {"name": name})
    assert renamed.status_code == 422
    assert set(error_of(renamed)["fields"]) == {"name"}
    assert group(client, web["id"]) == web


@pytest.mark.parametrize("name", ["_x", "Web_01", "a" * 200, "nova-api", "1a", "a.b", "é"])
def test_valid_group_names_are_accepted(client: Client, region: Body, name: str) -> None:
    """What Ansible keeps as written (kolla-ansible's ``nova-api``, dots, leading digits,
    unicode), up to 200 bytes, is fine."""
    assert make_group(client, region, name)["name"] == name


def test_duplicate_group_name_is_a_conflict(client: Client, region: Body,
                                            other_region: Body) -> None:
    """A second group of the same name in a region is a 409; another region may reuse it."""
    make_group(client, region, "web")
    before = region_state(client, region)
    response = client.post(groups_url(region), {"name": "web", "description": "again"})
    assert response.status_code == 409
    assert set(error_of(response)["fields"]) == {"name"}
    assert region_state(client, region) == before
    assert make_group(client, other_region, "web")["region_id"] == other_region["id"]


def test_group_names_equal_but_for_case_are_refused(client: Client, region: Body) -> None:
    """'web' and 'Web' would share a group_vars file on a case-insensitive file system: the
    second is refused; a reference must match the case."""
    web = make_group(client, region, "web")
    cap = client.post(groups_url(region), {"name": "Web"})
    assert cap.status_code == 422
    assert "group_vars file" in error_of(cap)["fields"]["name"]
    assert client.get(f"{groups_url(region)}?name=WEB").get_json()["items"] == []
    found = client.get(f"{groups_url(region)}?name=web").get_json()["items"]
    assert [g["id"] for g in found] == [web["id"]]
    response = client.post(groups_url(region), {"name": "other", "children": ["WEB"]})
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"children"}


def test_a_group_may_not_share_a_hosts_name(client: Client, region: Body) -> None:
    """Ansible keeps hosts and groups in one namespace: a group named like a host of the
    region is refused, and so is a host named like a group, on create and on rename."""
    host = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "db-1"})
    clash = client.post(groups_url(region), {"name": "db-1"})
    assert clash.status_code == 422 and "host of the region" in error_of(clash)["fields"]["name"]
    web = make_group(client, region, "web")
    renamed = client.patch(f"/v1/groups/{web['id']}", {"name": "db-1"})
    assert renamed.status_code == 422
    hosts = client.post(f"/v1/regions/{region['id']}/hosts", [{"name": "ok"}, {"name": "web"}])
    assert hosts.status_code == 422 and set(error_of(hosts)["fields"]) == {"1.name"}
    renamed = client.patch(f"/v1/hosts/{host['id']}", {"name": "web"})
    assert renamed.status_code == 422
    assert [g["name"] for g in client.get(groups_url(region)).get_json()["items"]] == ["web"]


# --- the subgroup DAG --------------------------------------------------------------------------

def test_direct_cycle_is_refused(client: Client, region: Body) -> None:
    """a → b plus b → a is refused with a 409 spelling the cycle; nothing changes."""
    a = make_group(client, region, "a")
    b = make_group(client, region, "b", parents=["a"])
    before = region_state(client, region)

    response = client.post(f"/v1/groups/{b['id']}/children", {"children": [a["id"]]})

    assert_cycle(response, "children", ["a", "b"])
    assert region_state(client, region) == before


def test_indirect_cycle_is_refused(client: Client, region: Body) -> None:
    """a → b → c plus c → a is refused; the message follows the edges a → b → c → a."""
    make_group(client, region, "a")
    make_group(client, region, "b", parents=["a"])
    c = make_group(client, region, "c", parents=["b"])
    before = region_state(client, region)

    response = client.post(f"/v1/groups/{c['id']}/children", {"children": ["a"]})

    assert_cycle(response, "children", ["a", "b", "c"])
    assert region_state(client, region) == before


def test_group_cannot_be_its_own_child(client: Client, region: Body) -> None:
    """Making a group its own subgroup is a 409, by POST /children and by PATCH."""
    a = make_group(client, region, "a")
    before = region_state(client, region)

    posted = client.post(f"/v1/groups/{a['id']}/children", {"children": [a["id"]]})
    assert_cycle(posted, "children", ["a"])
    patched = client.patch(f"/v1/groups/{a['id']}", {"children": ["a"]})
    assert_cycle(patched, "children", ["a"])
    assert region_state(client, region) == before


def test_cycle_through_patch_children_replace_is_refused(client: Client, region: Body) -> None:
    """PATCH {"children": [...]} that would close a cycle changes nothing at all: not the other
    fields of the same PATCH, not the children that were fine, not the ones it would drop."""
    make_group(client, region, "a")
    make_group(client, region, "b", parents=["a"])
    c = make_group(client, region, "c", parents=["b"])
    make_group(client, region, "d", parents=["c"])
    make_group(client, region, "e")
    before = region_state(client, region)

    response = client.patch(f"/v1/groups/{c['id']}", {
        "name": "c2", "description": "changed", "variables": {"k": 1},
        "children": ["e", "a"],
    })

    assert_cycle(response, "children", ["a", "b", "c2"])
    assert region_state(client, region) == before


def test_cycle_through_create_with_parents_and_children_is_refused(client: Client,
                                                                   region: Body) -> None:
    """Creating x with parents [b] and children [a] where a → b exists would close
    a → b → x → a: 409, and x does not exist afterwards."""
    make_group(client, region, "a")
    make_group(client, region, "b", parents=["a"])
    make_host(client, region, "h1")
    before = region_state(client, region)

    response = client.post(groups_url(region), {"name": "x", "parents": ["b"],
                                                 "children": ["a"], "hosts": ["h1"]})

    assert response.status_code == 409
    error = error_of(response)
    assert any(s in error["message"]
               for s in ("a → b → x → a", "b → x → a → b", "x → a → b → x")), error
    assert region_state(client, region) == before
    assert client.get(f"/v1/hosts?region_id={region['id']}&name=h1"
                      ).get_json()["items"][0]["groups"] == []


def test_depends_on_cycles_are_refused(client: Client, region: Body) -> None:
    """The depends_on graph is kept acyclic too: direct, indirect and self dependencies are
    409s spelling the cycle, and nothing changes."""
    c = make_group(client, region, "c")
    b = make_group(client, region, "b", depends_on=["c"])
    a = make_group(client, region, "a", depends_on=["b"])
    before = region_state(client, region)

    assert_cycle(client.patch(f"/v1/groups/{b['id']}", {"depends_on": ["a"]}),
                 "depends_on", ["a", "b"])
    assert_cycle(client.patch(f"/v1/groups/{c['id']}", {"depends_on": ["a"]}),
                 "depends_on", ["a", "b", "c"])
    assert_cycle(client.patch(f"/v1/groups/{a['id']}", {"depends_on": ["b", "a"]}),
                 "depends_on", ["a"])
    assert region_state(client, region) == before


def test_subgroups_and_dependencies_are_separate_graphs(client: Client, region: Body) -> None:
    """b may be a's subgroup and depend on a: only a cycle within one graph is refused."""
    make_group(client, region, "a")
    b = make_group(client, region, "b", parents=["a"])
    response = client.patch(f"/v1/groups/{b['id']}", {"depends_on": ["a"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["depends_on"] == ["a"]
    assert response.get_json()["parents"] == ["a"]


def test_diamonds_are_allowed(client: Client, region: Body) -> None:
    """a → b, a → c, b → d, c → d is a DAG, not a cycle; d's hosts are listed once under a."""
    a = make_group(client, region, "a")
    make_group(client, region, "b", parents=["a"])
    make_group(client, region, "c", parents=["a"])
    d = make_group(client, region, "d", parents=["b"])
    c = client.get(f"{groups_url(region)}?name=c").get_json()["items"][0]
    closed = client.post(f"/v1/groups/{c['id']}/children", {"children": ["d"]})
    assert closed.status_code == 200, closed.get_json()
    assert closed.get_json() == {"changed": [d["id"]]}
    assert group(client, d["id"])["parents"] == ["b", "c"]
    assert group(client, a["id"])["children"] == ["b", "c"]
    again = make_group(client, region, "e", parents=["b", "c"], children=["d"])
    assert again["parents"] == ["b", "c"] and again["children"] == ["d"]
    h = make_host(client, region, "h1", groups=["d", "b"])

    members = all_items(client, f"/v1/groups/{a['id']}/hosts?descendants=true")
    assert [m["id"] for m in members] == [h["id"]]


def test_groups_of_another_region_cannot_be_linked(client: Client, region: Body,
                                                   other_region: Body) -> None:
    """Names and ids resolve within the group's own region: another region's group or host
    is unknown (422), on create, POST /children, PATCH and membership."""
    far = make_group(client, other_region, "far")
    far_host = make_host(client, other_region, "far-host")
    near = make_group(client, region, "near")
    before = region_state(client, region)
    far_before = region_state(client, other_region)

    for field in ("children", "parents", "depends_on"):
        for ref in (far["id"], "far"):
            response = client.post(groups_url(region), {"name": "x", field: [ref]})
            assert response.status_code == 422, (field, ref)
            assert set(error_of(response)["fields"]) == {field}
    response = client.post(f"/v1/groups/{near['id']}/children", {"children": [far["id"]]})
    assert response.status_code == 422 and set(error_of(response)["fields"]) == {"children"}
    for field in ("children", "depends_on"):
        response = client.patch(f"/v1/groups/{near['id']}", {field: [far["id"]]})
        assert response.status_code == 422 and set(error_of(response)["fields"]) == {field}
    for ref in (far_host["id"], "far-host"):
        response = client.post(f"/v1/groups/{near['id']}/hosts", {"hosts": [ref]})
        assert response.status_code == 422 and set(error_of(response)["fields"]) == {"hosts"}

    assert region_state(client, region) == before
    assert region_state(client, other_region) == far_before
    assert host(client, far_host["id"])["groups"] == []


# --- membership --------------------------------------------------------------------------------

def test_add_hosts_answers_only_the_newly_added(client: Client, region: Body) -> None:
    """POST /groups/{id}/hosts with ids or names answers the ids that were not members yet;
    a host's groups and ETag change only when its membership does."""
    g = make_group(client, region, "web")
    h1, h2, h3 = (make_host(client, region, f"h{i}") for i in (1, 2, 3))
    url = f"/v1/groups/{g['id']}/hosts"
    tag1 = etag(client, f"/v1/hosts/{h1['id']}")

    first = client.post(url, {"hosts": [h1["id"], "h2"]})
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"changed": [h1["id"], h2["id"]]}
    assert host(client, h1["id"])["groups"] == ["web"]
    tag1_member = etag(client, f"/v1/hosts/{h1['id']}")
    assert tag1_member != tag1

    again = client.post(url, {"hosts": ["h1", h2["id"], "h3", "h3"]})
    assert again.get_json() == {"changed": [h3["id"]]}
    assert etag(client, f"/v1/hosts/{h1['id']}") == tag1_member
    assert client.post(url, {"hosts": ["h1"]}).get_json() == {"changed": []}
    assert [m["id"] for m in all_items(client, url)] == [h1["id"], h2["id"], h3["id"]]


def test_add_hosts_with_an_unknown_host_adds_none(client: Client, region: Body) -> None:
    """One unknown host makes the whole request a 422 naming "hosts"; no host is added."""
    g = make_group(client, region, "web")
    h1 = make_host(client, region, "h1")
    url = f"/v1/groups/{g['id']}/hosts"
    for unknown in ("ghost", 10**9):
        response = client.post(url, {"hosts": ["h1", unknown]})
        assert response.status_code == 422
        assert set(error_of(response)["fields"]) == {"hosts"}
    empty = client.post(url, {"hosts": []})
    assert empty.status_code == 422 and set(error_of(empty)["fields"]) == {"hosts"}
    assert all_items(client, url) == []
    assert host(client, h1["id"])["groups"] == []
    assert group(client, g["id"]) == g


def test_remove_hosts_with_a_body(client: Client, region: Body) -> None:
    """DELETE /groups/{id}/hosts with {"hosts": [...]} removes and answers who was removed;
    the removed hosts' groups and ETags change, they stay in the inventory."""
    g = make_group(client, region, "web")
    h1, h2, h3 = (make_host(client, region, f"h{i}", groups=["web"]) for i in (1, 2, 3))
    url = f"/v1/groups/{g['id']}/hosts"
    tag1, tag2 = (etag(client, f"/v1/hosts/{h['id']}") for h in (h1, h2))

    response = client.delete(url, {"hosts": ["h1", h3["id"]]})
    assert response.status_code == 200, response.get_json()
    assert sorted(response.get_json()["changed"]) == sorted([h1["id"], h3["id"]])
    assert host(client, h1["id"])["groups"] == []
    assert etag(client, f"/v1/hosts/{h1['id']}") != tag1
    assert etag(client, f"/v1/hosts/{h2['id']}") == tag2
    assert [m["id"] for m in all_items(client, url)] == [h2["id"]]
    assert client.delete(url, {"hosts": ["h1"]}).get_json() == {"changed": []}
    unknown = client.delete(url, {"hosts": ["h2", "ghost"]})
    assert unknown.status_code == 422 and set(error_of(unknown)["fields"]) == {"hosts"}
    assert [m["id"] for m in all_items(client, url)] == [h2["id"]]


def test_remove_one_host_by_id(client: Client, region: Body) -> None:
    """DELETE /groups/{id}/hosts/{host_id} is a 204, then a 404 once it is not a member."""
    g = make_group(client, region, "web")
    h1 = make_host(client, region, "h1", groups=["web"])
    h2 = make_host(client, region, "h2")
    tag = etag(client, f"/v1/hosts/{h1['id']}")

    response = client.delete(f"/v1/groups/{g['id']}/hosts/{h1['id']}")
    assert response.status_code == 204
    assert host(client, h1["id"])["groups"] == []
    assert etag(client, f"/v1/hosts/{h1['id']}") != tag

    again = client.delete(f"/v1/groups/{g['id']}/hosts/{h1['id']}")
    assert again.status_code == 404 and error_of(again)
    assert client.delete(f"/v1/groups/{g['id']}/hosts/{h2['id']}").status_code == 404
    assert client.delete(f"/v1/groups/{g['id']}/hosts/{10**9}").status_code == 404
    assert client.delete(f"/v1/groups/{10**9}/hosts/{h1['id']}").status_code == 404


def test_list_members_direct_and_with_descendants(client: Client, region: Body) -> None:
    """GET /groups/{id}/hosts lists direct members; with descendants=true, also every
    subgroup's, each host once, in id order, page by page."""
    top = make_group(client, region, "top")
    make_group(client, region, "left", parents=["top"])
    make_group(client, region, "right", parents=["top"])
    make_group(client, region, "leaf", parents=["left", "right"])
    make_group(client, region, "elsewhere")
    hosts = [
        make_host(client, region, "t1", groups=["top"]),
        make_host(client, region, "l1", groups=["left", "right"]),
        make_host(client, region, "r1", groups=["right", "top"]),
        make_host(client, region, "f1", groups=["leaf"]),
        make_host(client, region, "f2", groups=["leaf", "left"]),
    ]
    make_host(client, region, "x1", groups=["elsewhere"])
    make_host(client, region, "none")
    url = f"/v1/groups/{top['id']}/hosts"

    direct = all_items(client, f"{url}?limit=1")
    assert [h["name"] for h in direct] == ["t1", "r1"]
    first = client.get(f"{url}?descendants=true&limit=2").get_json()
    assert len(first["items"]) == 2 and first["next"]
    every = all_items(client, f"{url}?descendants=true&limit=2")
    assert [h["id"] for h in every] == [h["id"] for h in hosts]
    assert every[1]["groups"] == ["left", "right"]
    assert client.get(f"/v1/groups/{10**9}/hosts").status_code == 404


# --- subgroups ---------------------------------------------------------------------------------

def test_children_endpoints(client: Client, region: Body) -> None:
    """Subgroups are listed, attached (ids or names; already-children left out) and detached
    (by body or one by id); a detached subgroup still exists."""
    top = make_group(client, region, "top")
    a = make_group(client, region, "a")
    b = make_group(client, region, "b")
    c = make_group(client, region, "c")
    url = f"/v1/groups/{top['id']}/children"

    added = client.post(url, {"children": ["a", b["id"]]})
    assert added.status_code == 200, added.get_json()
    assert added.get_json() == {"changed": [a["id"], b["id"]]}
    assert client.post(url, {"children": ["a", "c"]}).get_json() == {"changed": [c["id"]]}
    listed = all_items(client, f"{url}?limit=2")
    assert [g["name"] for g in listed] == ["a", "b", "c"]
    assert listed[0]["parents"] == ["top"]
    assert group(client, top["id"])["children"] == ["a", "b", "c"]
    b_version = group(client, b["id"])["version"]

    removed = client.delete(url, {"children": ["b", c["id"]]})
    assert removed.status_code == 200
    assert sorted(removed.get_json()["changed"]) == sorted([b["id"], c["id"]])
    assert client.delete(url, {"children": ["b"]}).get_json() == {"changed": []}
    assert group(client, b["id"])["parents"] == []
    assert group(client, b["id"])["version"] > b_version

    assert client.delete(f"{url}/{a['id']}").status_code == 204
    missing = client.delete(f"{url}/{a['id']}")
    assert missing.status_code == 404 and error_of(missing)
    assert client.delete(f"{url}/{10**9}").status_code == 404
    assert all_items(client, url) == []
    assert group(client, top["id"])["children"] == []
    for child in (a, b, c):
        assert group(client, child["id"])["parents"] == []

    unknown = client.post(url, {"children": ["a", "ghost"]})
    assert unknown.status_code == 422 and set(error_of(unknown)["fields"]) == {"children"}
    assert all_items(client, url) == []
    empty = client.post(url, {"children": []})
    assert empty.status_code == 422 and set(error_of(empty)["fields"]) == {"children"}


# --- PATCH -------------------------------------------------------------------------------------

def test_rename_group(client: Client, region: Body) -> None:
    """A rename shows everywhere the group is named, and each object that shows it has a new
    ETag; renaming onto a taken name is a 409 that changes nothing."""
    top = make_group(client, region, "top")
    web = make_group(client, region, "web", parents=["top"])
    leaf = make_group(client, region, "leaf", parents=["web"])
    db = make_group(client, region, "db", depends_on=["web"])
    h = make_host(client, region, "h1", groups=["web"])
    urls = [f"/v1/groups/{g['id']}" for g in (top, leaf, db)] + [f"/v1/hosts/{h['id']}"]
    tags = {url: etag(client, url) for url in urls}

    response = client.patch(f"/v1/groups/{web['id']}", {"name": "frontend"})
    assert response.status_code == 200, response.get_json()
    renamed = response.get_json()
    assert renamed["name"] == "frontend" and renamed["version"] > web["version"]
    assert response.headers["ETag"] == f'"{renamed["version"]}"'
    assert group(client, top["id"])["children"] == ["frontend"]
    assert group(client, leaf["id"])["parents"] == ["frontend"]
    assert group(client, db["id"])["depends_on"] == ["frontend"]
    assert host(client, h["id"])["groups"] == ["frontend"]

    before = region_state(client, region)
    taken = client.patch(f"/v1/groups/{web['id']}", {"name": "db", "description": "x"})
    assert taken.status_code == 409
    assert set(error_of(taken)["fields"]) == {"name"}
    assert region_state(client, region) == before
    same = client.patch(f"/v1/groups/{web['id']}", {"name": "frontend"})
    assert same.status_code == 200 and same.get_json()["name"] == "frontend"
    # every object showing the new name must have a new ETag
    assert [url for url in urls if etag(client, url) == tags[url]] == []


def test_patch_description_and_merge_variables(client: Client, region: Body) -> None:
    """PATCH sets the description and merges variables (null deletes a key)."""
    g = make_group(client, region, "web", variables={"a": 1, "b": 2}, description="old")
    response = client.patch(f"/v1/groups/{g['id']}", {
        "description": "new", "variables": {"a": None, "b": [3], "c": {"d": True}}})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["description"] == "new"
    assert body["variables"] == {"b": [3], "c": {"d": True}}
    assert body["version"] > g["version"]
    assert group(client, g["id"]) == body
    cleared = client.patch(f"/v1/groups/{g['id']}", {"description": None}).get_json()
    assert cleared["description"] is None and cleared["variables"] == body["variables"]
    bad = client.patch(f"/v1/groups/{g['id']}", {"variables": {"groups": 1}})
    assert bad.status_code == 422 and set(error_of(bad)["fields"]) == {"variables.groups"}
    assert group(client, g["id"]) == cleared


def test_patch_replaces_children_and_dependencies(client: Client, region: Body) -> None:
    """PATCH children/depends_on makes them exactly the list given; dropped subgroups stay."""
    top = make_group(client, region, "top")
    a = make_group(client, region, "a", parents=["top"])
    make_group(client, region, "b", parents=["top"])
    c = make_group(client, region, "c")
    make_group(client, region, "nfs")
    make_group(client, region, "dns")
    url = f"/v1/groups/{top['id']}"

    response = client.patch(url, {"children": ["b", c["id"]], "depends_on": ["nfs"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["children"] == ["b", "c"]
    assert response.get_json()["depends_on"] == ["nfs"]
    assert group(client, a["id"])["parents"] == []
    assert group(client, c["id"])["parents"] == ["top"]

    swapped = client.patch(url, {"depends_on": ["dns"]}).get_json()
    assert swapped["depends_on"] == ["dns"] and swapped["children"] == ["b", "c"]
    cleared = client.patch(url, {"children": [], "depends_on": []}).get_json()
    assert cleared["children"] == [] and cleared["depends_on"] == []
    assert set(region_state(client, region)) == {"top", "a", "b", "c", "nfs", "dns"}


def test_unchanged_patch_keeps_the_etag(client: Client, region: Body) -> None:
    """Replacing children with the same list is no change: the version stays."""
    top = make_group(client, region, "top")
    make_group(client, region, "a", parents=["top"])
    version = group(client, top["id"])["version"]
    response = client.patch(f"/v1/groups/{top['id']}", {"children": ["a"]})
    assert response.status_code == 200
    assert response.get_json()["version"] == version


def test_stale_if_match_is_refused(client: Client, region: Body) -> None:
    """PATCH or DELETE with an If-Match naming an old version is a 412 that changes nothing;
    the current ETag (or *) goes through."""
    make_group(client, region, "a")
    g = make_group(client, region, "web")
    old = f'"{g["version"]}"'
    changed = client.patch(f"/v1/groups/{g['id']}", {"description": "v2"})
    current = changed.headers["ETag"]
    assert current != old
    before = region_state(client, region)

    for body in ({"description": "v3"}, {"name": "web2"}, {"children": ["a"]},
                 {"depends_on": ["a"]}, {"variables": {"k": 1}}):
        response = client.patch(f"/v1/groups/{g['id']}", body, headers={"If-Match": old})
        assert response.status_code == 412, body
        assert set(error_of(response)["fields"]) == {"If-Match"}
    deleted = client.delete(f"/v1/groups/{g['id']}", headers={"If-Match": old})
    assert deleted.status_code == 412
    assert region_state(client, region) == before

    ok = client.patch(f"/v1/groups/{g['id']}", {"description": "v3"},
                      headers={"If-Match": current})
    assert ok.status_code == 200 and ok.get_json()["description"] == "v3"
    star = client.patch(f"/v1/groups/{g['id']}", {"description": "v4"}, headers={"If-Match": "*"})
    assert star.status_code == 200
    assert client.get(f"/v1/groups/{g['id']}",
                      headers={"If-None-Match": star.headers["ETag"]}).status_code == 304


# --- DELETE ------------------------------------------------------------------------------------

def test_delete_group_keeps_hosts_and_subgroups(client: Client, region: Body) -> None:
    """Deleting a group removes it and its links; its hosts, parents, subgroups and the groups
    depending on it stay, each showing the link gone with a new ETag."""
    top = make_group(client, region, "top")
    mid = make_group(client, region, "mid", parents=["top"], variables={"k": 1})
    leaf = make_group(client, region, "leaf", parents=["mid"])
    client_group = make_group(client, region, "clients", depends_on=["mid"])
    h1 = make_host(client, region, "h1", groups=["mid", "leaf"])
    h2 = make_host(client, region, "h2", groups=["top"])
    tags = {gid: etag(client, f"/v1/groups/{gid}")
            for gid in (top["id"], leaf["id"], client_group["id"])}
    host_tags = {h["id"]: etag(client, f"/v1/hosts/{h['id']}") for h in (h1, h2)}

    response = client.delete(f"/v1/groups/{mid['id']}")
    assert response.status_code == 204
    assert client.get(f"/v1/groups/{mid['id']}").status_code == 404
    assert client.get(f"/v1/groups/{mid['id']}/variables").status_code == 404
    assert client.delete(f"/v1/groups/{mid['id']}").status_code == 404

    assert host(client, h1["id"])["groups"] == ["leaf"]
    assert etag(client, f"/v1/hosts/{h1['id']}") != host_tags[h1["id"]]
    assert etag(client, f"/v1/hosts/{h2['id']}") == host_tags[h2["id"]]
    assert group(client, top["id"])["children"] == []
    assert group(client, leaf["id"])["parents"] == []
    assert group(client, client_group["id"])["depends_on"] == []
    for gid, tag in tags.items():
        assert etag(client, f"/v1/groups/{gid}") != tag, group(client, gid)["name"]
    assert [h["id"] for h in all_items(client, f"/v1/groups/{top['id']}/hosts"
                                               "?descendants=true")] == [h2["id"]]
    assert make_group(client, region, "mid")["children"] == []


# --- group variables ---------------------------------------------------------------------------

def test_group_variables_endpoints(client: Client, region: Body) -> None:
    """A group's variables can be shown, replaced, merged and deleted one key at a time;
    they share the group's ETag."""
    g = make_group(client, region, "web", variables={"a": 1})
    url = f"/v1/groups/{g['id']}/variables"

    shown = client.get(url)
    assert shown.status_code == 200 and shown.get_json() == {"variables": {"a": 1}}
    assert shown.headers["ETag"] == f'"{g["version"]}"'

    put = client.put(url, {"variables": {"b": [1, 2], "c": "x"}})
    assert put.status_code == 200 and put.get_json() == {"variables": {"b": [1, 2], "c": "x"}}
    assert put.headers["ETag"] == etag(client, f"/v1/groups/{g['id']}") != shown.headers["ETag"]

    merged = client.patch(url, {"variables": {"b": None, "d": {"e": None}}})
    assert merged.get_json() == {"variables": {"c": "x", "d": {"e": None}}}

    stale = client.put(url, {"variables": {}}, headers={"If-Match": shown.headers["ETag"]})
    assert stale.status_code == 412
    assert client.delete(f"{url}/c", headers={"If-Match": shown.headers["ETag"]}
                         ).status_code == 412
    assert client.delete(f"{url}/c").status_code == 204
    assert client.delete(f"{url}/c").status_code == 404
    bad = client.patch(url, {"variables": {"hostvars": 1}})
    assert bad.status_code == 422 and set(error_of(bad)["fields"]) == {"variables.hostvars"}
    assert client.get(url).get_json() == {"variables": {"d": {"e": None}}}
    assert group(client, g["id"])["variables"] == {"d": {"e": None}}
    assert client.get(f"/v1/groups/{10**9}/variables").status_code == 404


# --- lists -------------------------------------------------------------------------------------

def test_list_groups_by_region_and_name(client: Client, region: Body,
                                        other_region: Body) -> None:
    """Groups are listed per region (both URL forms), filtered by exact name, in id order,
    page by page."""
    mine = [make_group(client, region, name) for name in ("a", "b", "c", "d", "e")]
    theirs = make_group(client, other_region, "a")

    for url in (f"{groups_url(region)}?limit=2", f"/v1/groups?region_id={region['id']}&limit=2"):
        first = client.get(url).get_json()
        assert len(first["items"]) == 2 and "marker=" in first["next"]
        listed = all_items(client, url)
        assert [g["id"] for g in listed] == [g["id"] for g in mine]
        assert listed[0] == mine[0]
    named = all_items(client, "/v1/groups?name=a")
    assert {g["id"] for g in named} == {mine[0]["id"], theirs["id"]}
    assert [g["id"] for g in all_items(client, f"{groups_url(region)}?name=c")] == [
        mine[2]["id"]]
    assert all_items(client, f"{groups_url(region)}?name=zz") == []
    assert client.get(f"{groups_url(region)}?limit=0").status_code == 422
    assert client.get(f"/v1/regions/{10**9}/groups").status_code == 404


def test_other_tenants_and_readers_cannot_change_groups(client: Client, region: Body) -> None:
    """A caller scoped to another tenant neither sees nor changes this tenant's groups; a
    reader of the tenant sees them but cannot change them (403)."""
    g = make_group(client, region, "web")
    other = client.create("/v1/tenants", {"name": "globex"})
    assert client.get(f"/v1/groups/{g['id']}", tenant=other["id"]).status_code == 404
    assert client.get("/v1/groups", tenant=other["id"]).get_json()["items"] == []
    response = client.patch(f"/v1/groups/{g['id']}", {"name": "x"}, tenant=other["id"])
    assert response.status_code == 404
    assert client.get(f"/v1/groups/{g['id']}", tenant=region["tenant_id"]).get_json() == g
    reader = {"tenant": region["tenant_id"], "roles": "reader"}
    assert client.get(f"/v1/groups/{g['id']}", **reader).status_code == 200
    assert client.patch(f"/v1/groups/{g['id']}", {"name": "x"}, **reader).status_code == 403
    assert client.post(groups_url(region), {"name": "x"}, **reader).status_code == 403
    assert client.delete(f"/v1/groups/{g['id']}", **reader).status_code == 403
    assert set(region_state(client, region)) == {"web"}
    assert group(client, g["id"]) == g


def test_ids_too_large_for_the_database_are_unknown(client: Client, region: Body) -> None:
    """An id no row can have (beyond 64 bits) is an unknown object like any other: a 404 in
    the URL, a 422 naming the field in a body, an empty page as a marker; never a 500."""
    huge = 2**63
    g = make_group(client, region, "web")
    make_host(client, region, "h1")

    assert client.get(f"/v1/groups/{huge}").status_code == 404
    assert client.get(f"/v1/groups/{huge}/hosts").status_code == 404
    assert client.delete(f"/v1/groups/{g['id']}/hosts/{huge}").status_code == 404
    assert client.delete(f"/v1/groups/{g['id']}/children/{huge}").status_code == 404
    for field in ("children", "parents", "depends_on", "hosts"):
        response = client.post(groups_url(region), {"name": "x", field: [huge]})
        assert response.status_code == 422, (field, response.status_code)
        assert set(error_of(response)["fields"]) == {f"{field}.0"}
    response = client.post(f"/v1/groups/{g['id']}/hosts", {"hosts": ["h1", huge]})
    assert response.status_code == 422 and set(error_of(response)["fields"]) == {"hosts.1"}
    page = client.get(f"{groups_url(region)}?marker={huge}")
    assert page.status_code in (200, 422)
    assert page.status_code == 422 or page.get_json()["items"] == []
    assert set(region_state(client, region)) == {"web"}


def test_listing_groups_costs_the_same_statements_for_3_or_60(
        client: Client, region: Body, database: Database) -> None:
    """A page of groups is loaded in a fixed number of SQL statements, however many groups
    (with variables, subgroups, parents and dependencies) it holds."""
    url = f"{groups_url(region)}?limit=100"

    def add(first: int, last: int) -> None:
        for i in range(first, last):
            links: Body = {"parents": [f"g{i - 1}"], "depends_on": [f"g{i - 2}"]} if i > 1 else {}
            make_group(client, region, f"g{i}", variables={"i": i}, **links)

    def statements() -> int:
        with counting_queries(database) as seen:
            response = client.get(url)
        assert response.status_code == 200
        return len(seen)

    add(0, 3)
    small = statements()
    add(3, 60)
    page = client.get(url).get_json()["items"]
    assert len(page) == 60 and page[30]["children"] == ["g31"]
    assert page[30]["depends_on"] == ["g28"] and page[30]["variables"] == {"i": 30}
    assert statements() == small
