"""Selecting hosts through the API: filters by name, group, variables, state, address and id,
keyset pages, and a query count that does not grow with the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from craton.api import create_app
from craton.db.session import Database
from tests.conftest import Client, counting_queries, error_of, make_settings


def hosts_url(region: dict[str, Any]) -> str:
    return f"/v1/regions/{region['id']}/hosts"


def bulk(client: Client, region: dict[str, Any], items: list[dict[str, Any]]
         ) -> list[dict[str, Any]]:
    return client.create(hosts_url(region), items)["items"]


def group(client: Client, region: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    return client.create(f"/v1/regions/{region['id']}/groups", {"name": name, **fields})


def page(client: Client, url: str, **kwargs: Any) -> dict[str, Any]:
    response = client.get(url, **kwargs)
    assert response.status_code == 200, (url, response.get_json())
    return response.get_json()


def names(client: Client, url: str, **kwargs: Any) -> list[str]:
    """Names of every host the URL selects, following next links, in id order."""
    found: list[str] = []
    seen: set[int] = set()
    while url:
        body = page(client, url, **kwargs)
        for host in body["items"]:
            assert host["id"] not in seen
            seen.add(host["id"])
            found.append(host["name"])
        url = body["next"]
    return found


def refused(client: Client, url: str) -> dict[str, str]:
    """The fields named by a 422 answer to GET url."""
    response = client.get(url)
    assert response.status_code == 422, (url, response.get_json())
    return error_of(response)["fields"]


# --- Names -----------------------------------------------------------------------------------

@pytest.fixture
def named(client: Client, region: dict[str, Any]) -> str:
    """Hosts whose names mix underscores, dots and case; returns the region's hosts URL."""
    bulk(client, region, [{"name": n} for n in (
        "web_1", "webX1", "web-1", "web1", "Web2", "web10", "a_b", "axb", "a_bc", "aXbc",
        "db.1", "dbx1", "a%b",
    )])
    return hosts_url(region)


@pytest.mark.parametrize(("name", "expected"), [
    ("web1", ["web1"]),
    ("Web2", ["Web2"]),
    ("WEB1", []),
    ("web2", []),
    ("a%b", ["a%b"]),
    ("a%", []),
    ("web_1", ["web_1"]),
    ("a_b", ["a_b"]),
    ("db.1", ["db.1"]),
    ("_", []),
    ("web", []),
])
def test_name_without_wildcards_is_exact(client, named, name, expected):
    """A name without * or ? selects that exact, case-sensitive name — no LIKE surprises."""
    assert names(client, f"{named}?{urlencode({'name': name})}") == expected


@pytest.mark.parametrize("name", ["web1 ", " web1", "a b", "a/b", "a:b", "[a]"])
def test_name_no_host_could_have_is_refused(client, named, name):
    """A name filter no stored name could match (spaces, '/', ':') is a 422 naming
    the argument — rather than an empty list, or whatever a database's comparison rules make
    of it (MariaDB's = ignores trailing spaces)."""
    response = client.get(f"{named}?{urlencode({'name': name})}")
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"name"}


@pytest.mark.parametrize(("pattern", "expected"), [
    ("web*", ["web_1", "webX1", "web-1", "web1", "web10"]),
    ("Web*", ["Web2"]),
    ("web?", ["web1"]),
    ("web??", ["web_1", "webX1", "web-1", "web10"]),
    ("web_?", ["web_1"]),
    ("web_*", ["web_1"]),
    ("a_?", ["a_b"]),
    ("a_*", ["a_b", "a_bc"]),
    ("a?b", ["a_b", "axb", "a%b"]),
    ("a%*", ["a%b"]),
    ("db.?", ["db.1"]),
    ("*1", ["web_1", "webX1", "web-1", "web1", "db.1", "dbx1"]),
    ("*", ["web_1", "webX1", "web-1", "web1", "Web2", "web10", "a_b", "axb", "a_bc", "aXbc",
           "db.1", "dbx1", "a%b"]),
])
def test_name_glob_treats_like_characters_literally(client, named, pattern, expected):
    """* and ? are the only wildcards; _ and % in a pattern mean themselves; case counts."""
    assert names(client, f"{named}?{urlencode({'name': pattern})}") == expected


@pytest.mark.parametrize("pattern", ["* ", "*/*", "*:*", "[*"])
def test_glob_with_characters_no_name_has_is_refused(client, named, pattern):
    response = client.get(f"{named}?{urlencode({'name': pattern})}")
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"name"}


def test_flat_listing_filters_by_name_across_regions(client, region):
    """/v1/hosts?name=… finds a name in every region the caller may see."""
    other = client.create(f"/v1/tenants/{region['tenant_id']}/regions", {"name": "ord"})
    bulk(client, region, [{"name": "web_1"}, {"name": "webX1"}])
    bulk(client, other, [{"name": "web_1"}])
    found = page(client, "/v1/hosts?name=web_1")["items"]
    assert sorted(h["region_id"] for h in found) == sorted([region["id"], other["id"]])
    assert {h["name"] for h in found} == {"web_1"}


# --- Groups ----------------------------------------------------------------------------------

@pytest.fixture
def tree(client: Client, region: dict[str, Any]) -> dict[str, Any]:
    """cloud > compute > gpu (3 levels), and a diamond top > left, right > bottom."""
    group(client, region, "cloud")
    group(client, region, "compute", parents=["cloud"])
    group(client, region, "gpu", parents=["compute"])
    group(client, region, "storage")
    group(client, region, "top")
    group(client, region, "left", parents=["top"])
    group(client, region, "right", parents=["top"])
    group(client, region, "bottom", parents=["left", "right"])
    bulk(client, region, [
        {"name": "c0", "groups": ["cloud"]},
        {"name": "c1", "groups": ["compute"]},
        {"name": "c2", "groups": ["gpu"]},
        {"name": "c3", "groups": ["gpu", "compute", "storage"]},
        {"name": "s0", "groups": ["storage"]},
        {"name": "d0", "groups": ["bottom"]},
        {"name": "d1", "groups": ["left", "right"]},
        {"name": "d2", "groups": ["right", "bottom", "top"]},
        {"name": "none"},
    ])
    return region


@pytest.mark.parametrize(("name", "expected"), [
    ("cloud", ["c0", "c1", "c2", "c3"]),
    ("compute", ["c1", "c2", "c3"]),
    ("gpu", ["c2", "c3"]),
    ("storage", ["c3", "s0"]),
    ("top", ["d0", "d1", "d2"]),
    ("left", ["d0", "d1", "d2"]),
    ("right", ["d0", "d1", "d2"]),
    ("bottom", ["d0", "d2"]),
])
def test_group_filter_includes_every_descendant_once(client, tree, name, expected):
    """A group selects its members and those of every subgroup below it, each host once,
    even when a host is reachable by several paths."""
    assert names(client, f"{hosts_url(tree)}?group={name}") == expected
    assert names(client, f"/v1/hosts?region_id={tree['id']}&group={name}&limit=2") == expected


def test_group_filter_counts_pages_without_duplicates(client, tree):
    """Diamond members are not repeated to fill a page: limit counts distinct hosts."""
    first = page(client, f"{hosts_url(tree)}?group=top&limit=3")
    assert [h["name"] for h in first["items"]] == ["d0", "d1", "d2"]
    assert first["next"] is None


def test_unknown_group_in_a_region_is_422(client, tree):
    """Filtering a region on a group it does not have is a mistake worth naming."""
    assert set(refused(client, f"{hosts_url(tree)}?group=nope")) == {"group"}
    assert set(refused(client, f"/v1/hosts?region_id={tree['id']}&group=nope")) == {"group"}
    assert set(refused(client, f"{hosts_url(tree)}?group=CLOUD")) == {"group"}
    assert set(refused(client, f"{hosts_url(tree)}?{urlencode({'group': 'cloud '})}")) == {
        "group"}


def test_flat_group_filter_spans_the_callers_regions(client, region):
    """/v1/hosts?group=web finds members of "web" in each of the tenant's regions, and none
    of another tenant's."""
    tenant_id = region["tenant_id"]
    ord_ = client.create(f"/v1/tenants/{tenant_id}/regions", {"name": "ord"})
    other_tenant = client.create("/v1/tenants", {"name": "globex"})
    foreign = client.create(f"/v1/tenants/{other_tenant['id']}/regions", {"name": "dfw"})
    for where, prefix in ((region, "dfw"), (ord_, "ord"), (foreign, "globex")):
        group(client, where, "web")
        group(client, where, "app", parents=["web"])
        bulk(client, where, [{"name": f"{prefix}-web", "groups": ["web"]},
                             {"name": f"{prefix}-app", "groups": ["app"]},
                             {"name": f"{prefix}-other"}])
    mine = names(client, "/v1/hosts?group=web", tenant=tenant_id)
    assert sorted(mine) == ["dfw-app", "dfw-web", "ord-app", "ord-web"]
    assert sorted(names(client, "/v1/hosts?group=web")) == sorted(
        [*mine, "globex-app", "globex-web"])
    assert names(client, "/v1/hosts?group=nope", tenant=tenant_id) == []
    theirs = names(client, "/v1/hosts?group=web", tenant=other_tenant["id"])
    assert sorted(theirs) == ["globex-app", "globex-web"]


def test_group_filter_does_not_reveal_another_tenants_groups(client, region):
    """Asking about another tenant's region answers the same whether or not it has the group,
    so group names of other tenants cannot be probed."""
    group(client, region, "secret_project")
    outsider = client.create("/v1/tenants", {"name": "globex"})["id"]
    url = f"/v1/hosts?region_id={region['id']}&group="
    exists = client.get(url + "secret_project", tenant=outsider)
    missing = client.get(url + "no_such_group", tenant=outsider)
    assert (exists.status_code, exists.get_json().get("items")) == (
        missing.status_code, missing.get_json().get("items")), (exists.get_json(),
                                                                missing.get_json())


# --- Variables -------------------------------------------------------------------------------

@pytest.fixture
def variables(client: Client, region: dict[str, Any]) -> str:
    """Hosts with assorted variable values; "inherits" gets rack only from its group."""
    group(client, region, "racked", variables={"rack": "r1", "role": "web"})
    bulk(client, region, [
        {"name": "h1", "variables": {"role": "web", "count": 3, "flag": True, "rack": "r1"}},
        {"name": "h2", "variables": {"role": "db", "count": "3", "flag": False}},
        {"name": "h3", "variables": {"role": "web", "count": 4, "flag": "true",
                                     "rack": None}},
        {"name": "h4", "variables": {"endpoint": "10.0.0.1:8080", "tags": ["a", "b"],
                                     "empty": "", "count": 3.5}},
        {"name": "inherits", "groups": ["racked"]},
    ])
    return hosts_url(region)


@pytest.mark.parametrize(("var", "expected"), [
    (["role:web"], ["h1", "h3"]),
    (["role:db"], ["h2"]),
    (["role:WEB"], []),
    (["role:we"], []),
    (["count:3"], ["h1", "h2"]),
    (["count:4"], ["h3"]),
    (["count:3.5"], ["h4"]),
    (["flag:true"], ["h1", "h3"]),
    (["flag:false"], ["h2"]),
    (["rack"], ["h1", "h3"]),
    (["rack:r1"], ["h1"]),
    (["rack:null"], ["h3"]),
    (["role"], ["h1", "h2", "h3"]),
    (["endpoint:10.0.0.1:8080"], ["h4"]),
    (['tags:["a", "b"]'], ["h4"]),
    (['tags:["b","a"]'], []),
    (["empty:"], ["h4"]),
    (["nope"], []),
    (["role:web", "count:3"], ["h1"]),
    (["role:web", "flag:true", "count:4"], ["h3"]),
    (["role:web", "role:db"], []),
    (["rack", "flag:false"], []),
])
def test_var_filter(client, variables, var, expected):
    """var=key:value matches the host's own value (as text or as JSON); var=key matches any
    host that sets the key; several var= must all match."""
    assert names(client, f"{variables}?{urlencode({'var': var}, doseq=True)}") == expected


def test_var_filter_ignores_variables_set_on_groups(client, variables):
    """Only a host's own variables count: a value it inherits from a group does not."""
    assert "inherits" not in names(client, f"{variables}?var=rack:r1")
    assert "inherits" not in names(client, f"{variables}?var=role")
    assert names(client, f"{variables}?group=racked") == ["inherits"]


@pytest.mark.parametrize("text", [":x", "", "k" * 256 + ":1", "a\x01:1"],
                         ids=["no key", "empty", "too long", "control character"])
def test_var_filter_with_invalid_key_is_422(client, variables, text):
    """A key no variable could have is refused, naming the var argument."""
    fields = refused(client, f"{variables}?{urlencode({'var': ['role:web', text]}, doseq=True)}")
    assert {f.split(".")[0] for f in fields} == {"var"}


# --- State, address, id ----------------------------------------------------------------------

@pytest.fixture
def fleet(client: Client, region: dict[str, Any]) -> list[dict[str, Any]]:
    return bulk(client, region, [
        {"name": "n0", "state": "ready", "ip_address": "10.0.0.1"},
        {"name": "n1", "state": "stopped", "ip_address": "2001:db8::1"},
        {"name": "n2", "state": "defined", "ip_address": "2001:db8::10"},
        {"name": "n3", "state": "ready", "ip_address": "10.0.0.10"},
        {"name": "n4", "state": "terminated"},
    ])


@pytest.mark.parametrize(("query", "expected"), [
    ("state=ready", ["n0", "n3"]),
    ("state=ready&state=stopped", ["n0", "n1", "n3"]),
    ("state=creating", []),
    ("state=terminated&state=defined", ["n2", "n4"]),
    ("ip_address=10.0.0.1", ["n0"]),
    ("ip_address=2001:DB8:0:0::0001", ["n1"]),
    ("ip_address=2001:0db8::0010", ["n2"]),
    ("ip_address=10.0.0.2", []),
    ("state=ready&ip_address=10.0.0.10", ["n3"]),
    ("state=stopped&ip_address=10.0.0.10", []),
])
def test_state_and_address_filters(client, region, fleet, query, expected):
    """state is repeatable (any of); ip_address compares canonical addresses."""
    assert names(client, f"{hosts_url(region)}?{query}") == expected


def test_id_filter_is_repeatable(client, region, fleet):
    """id= selects those hosts (any of), combined with the other filters."""
    a, b, c = fleet[0]["id"], fleet[1]["id"], fleet[3]["id"]
    url = hosts_url(region)
    assert names(client, f"{url}?id={c}&id={a}&id={b}") == ["n0", "n1", "n3"]
    assert names(client, f"{url}?id={a}&id={b}&state=stopped") == ["n1"]
    assert names(client, f"{url}?id={a + 100000}") == []
    assert names(client, f"/v1/hosts?id={a}&id={c}") == ["n0", "n3"]


@pytest.mark.parametrize(("query", "field"), [
    ("state=bogus", "state"),
    ("state=READY", "state"),
    ("ip_address=10.0.0.300", "ip_address"),
    ("ip_address=web-1", "ip_address"),
    ("id=abc", "id"),
    ("limit=0", "limit"),
    ("limit=-1", "limit"),
    ("limit=ten", "limit"),
    ("marker=x", "marker"),
])
def test_bad_filter_argument_is_422_naming_it(client, region, fleet, query, field):
    """A bad query argument is refused, naming it."""
    fields = refused(client, f"{hosts_url(region)}?{query}")
    assert {f.split(".")[0] for f in fields} == {field}


# --- Pages -----------------------------------------------------------------------------------

def test_pages_cover_every_host_once(client, region):
    """limit sets the page size; next links walk the rest; the last page says next: null."""
    created = bulk(client, region, [{"name": f"p{i}"} for i in range(7)])
    url: str | None = f"{hosts_url(region)}?limit=3"
    sizes, ids = [], []
    while url:
        body = page(client, url)
        sizes.append(len(body["items"]))
        ids += [h["id"] for h in body["items"]]
        url = body["next"]
    assert sizes == [3, 3, 1]
    assert ids == [h["id"] for h in created]


def test_exact_multiple_of_limit_ends_without_an_empty_page(client, region):
    """When the hosts fill the last page exactly, that page already says next: null."""
    bulk(client, region, [{"name": f"p{i}"} for i in range(4)])
    first = page(client, f"{hosts_url(region)}?limit=2")
    assert len(first["items"]) == 2 and first["next"]
    second = page(client, first["next"])
    assert len(second["items"]) == 2 and second["next"] is None


def test_next_link_keeps_every_filter(client, region):
    """The next link repeats every filter (repeated ones included) and adds the marker."""
    group(client, region, "web")
    made = bulk(client, region, [
        {"name": f"web-{i}", "state": "ready" if i % 2 else "defined",
         "variables": {"role": "web", "rack": f"r{i % 2}"}, "groups": ["web"]}
        for i in range(6)
    ] + [{"name": "web-x", "state": "ready", "variables": {"role": "web", "rack": "r1"}}])
    ids = "&".join(f"id={h['id']}" for h in made)
    query = (f"name=web-*&group=web&var=role:web&var=rack&state=ready&state=defined&{ids}"
             "&limit=2")
    first = page(client, f"{hosts_url(region)}?{query}")
    link = urlsplit(first["next"])
    assert link.path == hosts_url(region)
    sent = sorted(parse_qsl(query))
    kept = sorted(parse_qsl(link.query))
    assert kept == sorted([*sent, ("marker", str(first["items"][-1]["id"]))])
    assert names(client, f"{hosts_url(region)}?{query}") == [f"web-{i}" for i in range(6)]


def test_next_link_of_flat_listing_keeps_region_id(client, region):
    """The flat listing's next link keeps region_id, so page 2 stays in the region."""
    other = client.create(f"/v1/tenants/{region['tenant_id']}/regions", {"name": "ord"})
    bulk(client, region, [{"name": f"a{i}"} for i in range(3)])
    bulk(client, other, [{"name": f"b{i}"} for i in range(3)])
    assert names(client, f"/v1/hosts?region_id={region['id']}&limit=2") == ["a0", "a1", "a2"]
    assert names(client, f"/v1/hosts?region_id={other['id']}&limit=1") == ["b0", "b1", "b2"]


def test_pages_neither_overlap_nor_skip_while_hosts_are_added(client, region):
    """Hosts created between page fetches neither repeat nor push others off a page."""
    bulk(client, region, [{"name": f"h{i}"} for i in range(6)])
    url = f"{hosts_url(region)}?limit=4&name=h*"
    first = page(client, url)
    bulk(client, region, [{"name": f"h{i}"} for i in range(6, 9)] + [{"name": "other"}])
    seen = [h["name"] for h in first["items"]]
    next_url = first["next"]
    while next_url:
        body = page(client, next_url)
        seen += [h["name"] for h in body["items"]]
        if body["next"] is None:
            bulk(client, region, [{"name": "h9-late"}])
        next_url = body["next"]
    assert seen == [f"h{i}" for i in range(9)]


def test_deleted_host_between_pages_does_not_shift_the_next_page(client, region):
    """Deleting a host already seen does not make the next page skip one."""
    created = bulk(client, region, [{"name": f"h{i}"} for i in range(6)])
    first = page(client, f"{hosts_url(region)}?limit=3")
    assert client.delete(f"/v1/hosts/{created[0]['id']}").status_code == 204
    second = page(client, first["next"])
    assert [h["name"] for h in second["items"]] == ["h3", "h4", "h5"]


def test_marker_past_the_end_is_an_empty_last_page(client, region):
    """A marker beyond every id answers no items and no next link."""
    created = bulk(client, region, [{"name": f"h{i}"} for i in range(3)])
    body = page(client, f"{hosts_url(region)}?marker={created[-1]['id']}")
    assert body == {"items": [], "next": None}
    body = page(client, f"{hosts_url(region)}?marker={created[-1]['id'] + 1000}&limit=5")
    assert body == {"items": [], "next": None}
    body = page(client, f"{hosts_url(region)}?marker={created[0]['id']}")
    assert [h["name"] for h in body["items"]] == ["h1", "h2"] and body["next"] is None


def test_marker_or_id_beyond_any_stored_id_is_refused(client, region):
    """An id or marker larger than any id column can hold is a 422 naming the argument,
    never a server error; the largest possible id simply selects nothing."""
    bulk(client, region, [{"name": "h0"}])
    huge = 10 ** 20
    for query, field in ((f"marker={huge}", "marker"), (f"id={huge}", "id.0"),
                         (f"marker={huge}&limit=1", "marker")):
        response = client.get(f"{hosts_url(region)}?{query}")
        assert response.status_code == 422
        assert set(error_of(response)["fields"]) == {field}
    response = client.get(f"/v1/hosts?region_id={huge}")
    assert response.status_code == 422 and set(error_of(response)["fields"]) == {"region_id"}
    largest = 2**63 - 1
    assert page(client, f"{hosts_url(region)}?marker={largest}") == {"items": [], "next": None}
    assert page(client, f"{hosts_url(region)}?id={largest}") == {"items": [], "next": None}


@pytest.fixture
def small_pages(database: Database, tmp_path: Path) -> Client:
    """A client of an app whose pages hold 2 hosts by default and 5 at most."""
    settings = make_settings(tmp_path, default_page_size=2, max_page_size=5)
    return Client(create_app(settings, database=database).test_client())


def test_limit_above_the_maximum_is_capped(small_pages):
    """Asking for more than max_page_size gets max_page_size, and a next link for the rest."""
    tenant = small_pages.create("/v1/tenants", {"name": "acme"})
    region = small_pages.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"})
    bulk(small_pages, region, [{"name": f"h{i}"} for i in range(8)])
    url = hosts_url(region)
    assert len(page(small_pages, url)["items"]) == 2
    capped = page(small_pages, f"{url}?limit=1000")
    assert [h["name"] for h in capped["items"]] == [f"h{i}" for i in range(5)]
    rest = page(small_pages, capped["next"])
    assert [h["name"] for h in rest["items"]] == ["h5", "h6", "h7"] and rest["next"] is None


def test_default_page_is_100_and_largest_is_1000(client, region, settings):
    """Out of the box, a page holds 100 hosts and a larger limit is capped at 1,000."""
    assert (settings.api.default_page_size, settings.api.max_page_size) == (100, 1000)
    bulk(client, region, [{"name": f"h{i:04d}"} for i in range(1001)])
    assert len(page(client, hosts_url(region))["items"]) == 100
    big = page(client, f"{hosts_url(region)}?limit=5000")
    assert len(big["items"]) == 1000 and big["next"]
    last = page(client, big["next"])
    assert [h["name"] for h in last["items"]] == ["h1000"] and last["next"] is None


# --- Cost ------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["", "&group=all_hosts&var=role:web&state=ready"])
@pytest.mark.parametrize("scope", ["cloud admin", "tenant"])
@pytest.mark.parametrize("across_regions", [False, True], ids=["region", "all regions"])
def test_statement_count_does_not_grow_with_the_page(client, region, database, query, scope,
                                                     across_regions):
    """A page of 600 hosts, each with variables (one sensitive) and two groups, costs the
    statements a page of 5 costs — in a region or across regions, for a cloud admin or a
    tenant's reader — and those are a handful: never one per host, nor one per batch of
    hosts."""
    group(client, region, "all_hosts")
    group(client, region, "evens", parents=["all_hosts"])
    group(client, region, "odds", parents=["all_hosts"])
    bulk(client, region, [
        {"name": f"h{i:03d}", "state": "ready",
         "variables": {"role": "web", "index": i, "tags": [i, "x"], "db_password": f"pw{i}"},
         "groups": ["all_hosts", "evens" if i % 2 == 0 else "odds"]}
        for i in range(605)
    ])
    url = (f"/v1/hosts?region_id={region['id']}&" if across_regions
           else f"{hosts_url(region)}?")
    caller = {"tenant": region["tenant_id"], "roles": "reader"} if scope == "tenant" else {}
    counts = {}
    for limit in (5, 600):
        with counting_queries(database) as statements:
            body = page(client, f"{url}limit={limit}{query}", **caller)
        assert len(body["items"]) == limit
        assert all(len(h["groups"]) == 2 and h["variables"]["role"] == "web"
                   and h["variables"]["db_password"] == "<hidden>" for h in body["items"])
        counts[limit] = len(statements)
    assert counts[5] == counts[600], counts
    assert counts[600] <= 6, counts
