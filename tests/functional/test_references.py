"""References through the API: group-variable files kept in git, on a web server or in a local
directory — what URLs, refs, paths and names are accepted, and the usual create/list/show/
change/delete with ETags. A URL the server would refuse to fetch — a file outside the tenant's
directories, a host that is a loopback, private or link-local address — is refused when it is
stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from craton.config import Settings
from tests.conftest import Client, error_of

Body = dict[str, Any]

URL = "https://git.example.com/ops/vars.git"


@pytest.fixture
def group(client: Client, region: Body) -> Body:
    return client.create(f"/v1/regions/{region['id']}/groups", {"name": "web"})


def refs_url(group: Body) -> str:
    return f"/v1/groups/{group['id']}/references"


def make_reference(client: Client, group: Body, name: str = "vars", **fields: Any) -> Body:
    return client.create(refs_url(group), {"name": name, "url": URL, **fields})


def listed(client: Client, group: Body) -> list[Body]:
    """Every reference of the group, following ``next``."""
    items: list[Body] = []
    url: str | None = refs_url(group)
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        items += response.get_json()["items"]
        url = response.get_json()["next"]
    return items


def shown(client: Client, reference: Body) -> Body:
    response = client.get(f"/v1/references/{reference['id']}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def tenant_root(settings: Settings, region: Body) -> Path:
    """The directory the region's tenant may read file:// references from (the default)."""
    return settings.data_dir / "sources" / str(region["tenant_id"])


def assert_refused(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert set(error["fields"]) == {field}, error
    return error


# --- create, list, show, change, delete --------------------------------------------------------

def test_reference_lifecycle(client: Client, group: Body, region: Body,
                             settings: Settings) -> None:
    """A reference is created under its group, listed there, shown, changed and deleted."""
    local = f"file://{tenant_root(settings, region)}/vars"
    response = client.post(refs_url(group), {"name": "vars", "url": URL, "ref": "main",
                                             "path": "group_vars/web.yml"})
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert response.headers["Location"] == f"/v1/references/{created['id']}"
    assert response.headers["ETag"] == f'"{created["version"]}"'
    assert {k: created[k] for k in ("group_id", "name", "url", "ref", "path")} == {
        "group_id": group["id"], "name": "vars", "url": URL, "ref": "main",
        "path": "group_vars/web.yml"}
    assert created["created_at"].endswith("Z")
    assert shown(client, created) == created
    assert listed(client, group) == [created]

    changed = client.patch(f"/v1/references/{created['id']}",
                           {"url": local, "ref": "v2.0", "name": "vars2"})
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["name"], body["url"], body["ref"], body["path"]) == (
        "vars2", local, "v2.0", "group_vars/web.yml")
    assert body["version"] > created["version"]
    assert changed.headers["ETag"] == f'"{body["version"]}"'
    assert shown(client, created) == body

    assert client.delete(f"/v1/references/{created['id']}").status_code == 204
    assert client.get(f"/v1/references/{created['id']}").status_code == 404
    assert client.delete(f"/v1/references/{created['id']}").status_code == 404
    assert listed(client, group) == []


def test_minimal_reference_has_no_ref_or_path(client: Client, group: Body) -> None:
    """Only name and url are needed; ref and path default to null."""
    created = make_reference(client, group)
    assert created["ref"] is None and created["path"] is None
    explicit = make_reference(client, group, "other", ref=None, path=None)
    assert explicit["ref"] is None and explicit["path"] is None


@pytest.mark.parametrize("missing", ["name", "url"])
def test_name_and_url_are_required(client: Client, group: Body, missing: str) -> None:
    """Leaving out the name or the url is a 422 naming it; nothing is created."""
    body = {"name": "vars", "url": URL}
    del body[missing]
    assert_refused(client.post(refs_url(group), body), missing)
    assert listed(client, group) == []


def test_list_references_page_by_page(client: Client, group: Body, region: Body) -> None:
    """A group's references are listed in id order, page by page, without other groups'."""
    other = client.create(f"/v1/regions/{region['id']}/groups", {"name": "db"})
    mine = [make_reference(client, group, f"r{i}") for i in range(3)]
    make_reference(client, other, "r0")
    first = client.get(f"{refs_url(group)}?limit=2").get_json()
    assert [r["id"] for r in first["items"]] == [r["id"] for r in mine[:2]]
    rest = client.get(first["next"]).get_json()
    assert [r["id"] for r in rest["items"]] == [mine[2]["id"]] and rest["next"] is None
    assert listed(client, group) == mine


@pytest.mark.parametrize("missing", [10**9, 2**63])
def test_unknown_group_or_reference_is_404(client: Client, missing: int) -> None:
    """References of a group that does not exist, or a reference that does not, are 404s
    (also for ids too large for any row)."""
    assert client.get(f"/v1/groups/{missing}/references").status_code == 404
    response = client.post(f"/v1/groups/{missing}/references", {"name": "x", "url": URL})
    assert response.status_code == 404 and error_of(response)
    assert client.get(f"/v1/references/{missing}").status_code == 404
    assert client.patch(f"/v1/references/{missing}", {"ref": "main"}).status_code == 404
    assert client.delete(f"/v1/references/{missing}").status_code == 404


def test_deleting_the_group_deletes_its_references(client: Client, group: Body) -> None:
    """References belong to their group: they go when it goes."""
    reference = make_reference(client, group)
    assert client.delete(f"/v1/groups/{group['id']}").status_code == 204
    assert client.get(f"/v1/references/{reference['id']}").status_code == 404


def test_other_tenants_and_readers_cannot_change_references(client: Client, group: Body,
                                             region: Body) -> None:
    """A caller scoped to another tenant gets 404s, as for ids that do not exist; a reader of
    the tenant sees references but cannot change them (403)."""
    reference = make_reference(client, group)
    other = client.create("/v1/tenants", {"name": "globex"})["id"]
    assert client.get(f"/v1/references/{reference['id']}", tenant=other).status_code == 404
    assert client.get(refs_url(group), tenant=other).status_code == 404
    assert client.post(refs_url(group), {"name": "x", "url": URL},
                       tenant=other).status_code == 404
    assert client.patch(f"/v1/references/{reference['id']}", {"ref": "x"},
                        tenant=other).status_code == 404
    assert client.delete(f"/v1/references/{reference['id']}", tenant=other).status_code == 404
    assert client.get(f"/v1/references/{reference['id']}",
                      tenant=region["tenant_id"]).get_json() == reference
    assert listed(client, group) == [reference]
    reader = {"tenant": region["tenant_id"], "roles": "reader"}
    assert client.get(f"/v1/references/{reference['id']}", **reader).status_code == 200
    assert client.post(refs_url(group), {"name": "x", "url": URL}, **reader).status_code == 403
    assert client.patch(f"/v1/references/{reference['id']}", {"ref": "x"},
                        **reader).status_code == 403
    assert client.delete(f"/v1/references/{reference['id']}", **reader).status_code == 403
    assert listed(client, group) == [reference]


# --- URLs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "git://git.example.com/ops/vars.git",
    "http://vars.example.com/web.yml",
    "https://vars.example.com:8443/web.yml?x=1",
    "HTTPS://vars.example.com/web.yml",
    "https://203.0.113.7.nip.example/web.yml",
    "http://8.8.8.8/web.yml",
    "file://{root}/vars",
    "file://localhost{root}/team/vars.git",
])
def test_accepted_urls(client: Client, group: Body, region: Body, settings: Settings,
                       url: str) -> None:
    """git, http, https and file URLs (below the tenant's own directory) are accepted and
    stored as given; host names are checked when they are fetched, not here."""
    url = url.format(root=tenant_root(settings, region))
    assert make_reference(client, group, url=url)["url"] == url


@pytest.mark.parametrize("url", [
    "ftp://ftp.example.com/vars.yml",
    "ssh://git@example.com/vars.git",
    "git.example.com/ops/vars.git",
    "/srv/vars.yml",
    "javascript:alert(1)",
    "https:///no-host",
    "https://exa mple.com/x",
    "https://example.com/\x00",
    "http://[::1/x",
    "",
    "https://example.com/" + "x" * 2048,
])
def test_refused_urls(client: Client, group: Body, url: str) -> None:
    """Other schemes, scheme-less, host-less and malformed URLs are a 422 naming "url"."""
    assert_refused(client.post(refs_url(group), {"name": "vars", "url": url}), "url")
    assert listed(client, group) == []


@pytest.mark.parametrize("url", [
    "file://fileserver/srv/vars",
    "file:relative/vars",
    "file://srv/vars",
])
def test_file_urls_must_be_absolute_and_local(client: Client, group: Body, url: str) -> None:
    """A file URL must be file:///absolute/path (no host, no relative path)."""
    error = assert_refused(client.post(refs_url(group), {"name": "vars", "url": url}), "url")
    assert "file:///" in error["fields"]["url"]


@pytest.mark.parametrize(("url", "host"), [
    ("http://127.0.0.1:7780/v1/inventory/1.json", "127.0.0.1 is a loopback address"),
    ("http://localhost:7780/v1/inventory/1.json", "localhost is this machine"),
    ("https://127.1/vars.yml", "127.1 is a loopback address"),
    ("http://[::1]/vars.yml", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/vars.yml", "::ffff:127.0.0.1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("git://10.1.2.3/ops/vars.git", "10.1.2.3 is a private address"),
    ("https://192.168.0.10/vars.yml", "192.168.0.10 is a private address"),
    ("http://[fd00::5]/vars.yml", "fd00::5 is a private address"),
    ("http://0.0.0.0:7780/vars.yml", "0.0.0.0 is an unspecified address"),
])
def test_urls_at_addresses_the_server_may_not_reach_are_refused(
        client: Client, group: Body, url: str, host: str) -> None:
    """A URL whose host is a loopback, link-local, private or unspecified address (in any
    spelling), or localhost, is a 422 naming url — on create and on change — that says it is
    not allowed and where an operator could allow it."""
    error = assert_refused(client.post(refs_url(group), {"name": "vars", "url": url}), "url")
    assert host in error["fields"]["url"]
    assert "not allowed" in error["fields"]["url"]
    assert "[sources] allowed_networks" in error["fields"]["url"]
    reference = make_reference(client, group)
    assert_refused(client.patch(f"/v1/references/{reference['id']}", {"url": url}), "url")
    assert shown(client, reference) == reference


def test_file_urls_outside_the_tenants_directory_are_refused(
        client: Client, group: Body, region: Body, settings: Settings) -> None:
    """A file URL outside the directory of the group's tenant is a 422 naming url: another
    tenant's directory, the data directory itself, /etc — also climbing out with '..' — and
    also when a cloud admin (no tenant of its own) writes the reference."""
    root = tenant_root(settings, region)
    other = client.create("/v1/tenants", {"name": "globex"})
    for url in (f"file://{root.parent / str(other['id'])}/vars.yml",
                f"file://{settings.data_dir}/craton.db", "file:///etc/passwd",
                f"file://{root}/../{other['id']}/vars.yml", f"file://{root}-evil/vars.yml"):
        for tenant in (region["tenant_id"], None):
            response = client.post(refs_url(group), {"name": "vars", "url": url},
                                   tenant=tenant)
            assert "file_roots" in assert_refused(response, "url")["fields"]["url"], url
    assert listed(client, group) == []


@pytest.mark.parametrize("url", [
    "https://deploy:Sup3rS3cretPW@git.example.com/ops/vars.git",
    "git://deploy:Sup3rS3cretPW@git.example.com/ops/vars.git",
    "http://:Sup3rS3cretPW@vars.example.com/web.yml",
])
def test_urls_with_credentials_are_refused_without_echoing_them(client: Client, group: Body,
                                                                url: str) -> None:
    """A URL embedding a password is a 422 on create and on change, and the password appears
    nowhere in the answer (it would otherwise show in every listing and log)."""
    created = client.post(refs_url(group), {"name": "vars", "url": url})
    assert_refused(created, "url")
    assert "Sup3rS3cretPW" not in created.get_data(as_text=True)
    both = client.post(refs_url(group), {"name": "../bad", "url": url})
    assert both.status_code == 422 and set(error_of(both)["fields"]) == {"name", "url"}
    assert "Sup3rS3cretPW" not in both.get_data(as_text=True)
    assert listed(client, group) == []

    reference = make_reference(client, group)
    changed = client.patch(f"/v1/references/{reference['id']}", {"url": url})
    assert_refused(changed, "url")
    assert "Sup3rS3cretPW" not in changed.get_data(as_text=True)
    assert shown(client, reference) == reference


# --- ref and path ------------------------------------------------------------------------------

@pytest.mark.parametrize("ref", [
    "main", "v1.2.3", "refs/heads/feature/x", "release-2024_01", "feature/JIRA-12",
    "0123456789abcdef0123456789abcdef01234567",
])
def test_accepted_refs(client: Client, group: Body, ref: str) -> None:
    """Branch names, tags, full ref names and commit ids are refs."""
    assert make_reference(client, group, ref=ref)["ref"] == ref


@pytest.mark.parametrize("ref", [
    "", "a b", "a\tb", "a..b", "-main", "main~1", "HEAD^", "a:b", "a?", "a*", "a[b", "a\\b",
    "main/", "main.", "a//b", "x" * 256,
    "/main", "main.lock", "refs/heads/.hidden", "a@{1}", "@",
])
def test_refused_refs(client: Client, group: Body, ref: str) -> None:
    """What git check-ref-format refuses is refused (422 naming "ref"), on create and change."""
    assert_refused(client.post(refs_url(group), {"name": "vars", "url": URL, "ref": ref}), "ref")
    assert listed(client, group) == []
    reference = make_reference(client, group, ref="main")
    assert_refused(client.patch(f"/v1/references/{reference['id']}", {"ref": ref}), "ref")
    assert shown(client, reference) == reference


@pytest.mark.parametrize("path", ["web.yml", "group_vars/web.yml", "a/b/c.yaml", "..a/b..c"])
def test_accepted_paths(client: Client, group: Body, path: str) -> None:
    """Relative paths inside the fetched tree are accepted."""
    assert make_reference(client, group, path=path)["path"] == path


@pytest.mark.parametrize("path", [
    "", "/etc/passwd", "../secrets.yml", "a/../../b", "a/..", "a//b", "a/", "./a", "a/./b",
    "a\\b", "..\\b", "a\x00b", "a\nb", "x" * 1025,
])
def test_refused_paths(client: Client, group: Body, path: str) -> None:
    """Absolute paths, '..', '.' or empty parts, backslashes and control characters are a 422
    naming "path", on create and change."""
    assert_refused(client.post(refs_url(group), {"name": "vars", "url": URL, "path": path}),
                   "path")
    assert listed(client, group) == []
    reference = make_reference(client, group, path="web.yml")
    assert_refused(client.patch(f"/v1/references/{reference['id']}", {"path": path}), "path")
    assert shown(client, reference) == reference


def test_null_clears_ref_and_path(client: Client, group: Body) -> None:
    """PATCH with ref or path null clears just that field; name and url cannot be cleared."""
    reference = make_reference(client, group, ref="main", path="web.yml")
    url = f"/v1/references/{reference['id']}"

    no_ref = client.patch(url, {"ref": None})
    assert no_ref.status_code == 200, no_ref.get_json()
    assert no_ref.get_json()["ref"] is None and no_ref.get_json()["path"] == "web.yml"
    no_path = client.patch(url, {"path": None}).get_json()
    assert no_path["ref"] is None and no_path["path"] is None
    assert shown(client, reference) == no_path

    for field in ("name", "url"):
        assert_refused(client.patch(url, {field: None}), field)
    assert_refused(client.patch(url, {"group_id": 1}), "group_id")
    assert shown(client, reference) == no_path


# --- names -------------------------------------------------------------------------------------

def test_names_are_unique_per_group(client: Client, group: Body, region: Body) -> None:
    """A second reference of the same name in a group is a 409 (on create and on rename);
    another group may use the name."""
    first = make_reference(client, group, "vars")
    second = make_reference(client, group, "more")
    duplicate = client.post(refs_url(group), {"name": "vars", "url": URL})
    assert duplicate.status_code == 409
    assert set(error_of(duplicate)["fields"]) == {"name"}
    renamed = client.patch(f"/v1/references/{second['id']}", {"name": "vars", "ref": "dev"})
    assert renamed.status_code == 409
    assert set(error_of(renamed)["fields"]) == {"name"}
    assert listed(client, group) == [first, second]

    same = client.patch(f"/v1/references/{first['id']}", {"name": "vars"})
    assert same.status_code == 200 and same.get_json()["name"] == "vars"
    other = client.create(f"/v1/regions/{region['id']}/groups", {"name": "db"})
    assert make_reference(client, other, "vars")["group_id"] == other["id"]
    assert make_reference(client, group, "Vars")["name"] == "Vars"


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a\\b", ".hidden", "a b", "x..y", "-x",
                                  "x.", "a\x00b", "x" * 201])
def test_names_are_file_name_safe(client: Client, group: Body, name: str) -> None:
    """A reference name becomes a file name: separators, '..', leading dots, spaces and
    control characters are a 422 naming "name", on create and on rename."""
    assert_refused(client.post(refs_url(group), {"name": name, "url": URL}), "name")
    assert listed(client, group) == []
    reference = make_reference(client, group)
    assert_refused(client.patch(f"/v1/references/{reference['id']}", {"name": name}), "name")
    assert shown(client, reference) == reference


# --- ETags -------------------------------------------------------------------------------------

def test_etags_and_if_match(client: Client, group: Body) -> None:
    """A reference's ETag is its version: If-None-Match gives 304, a stale If-Match on PATCH
    or DELETE is a 412 that changes nothing, the current one goes through."""
    reference = make_reference(client, group, ref="main")
    url = f"/v1/references/{reference['id']}"
    old = client.get(url).headers["ETag"]
    assert old == f'"{reference["version"]}"'
    assert client.get(url, headers={"If-None-Match": old}).status_code == 304

    current = client.patch(url, {"ref": "dev"}).headers["ETag"]
    assert current != old
    assert client.get(url, headers={"If-None-Match": old}).status_code == 200
    before = shown(client, reference)

    stale = client.patch(url, {"ref": "prod"}, headers={"If-Match": old})
    assert stale.status_code == 412
    assert set(error_of(stale)["fields"]) == {"If-Match"}
    assert client.delete(url, headers={"If-Match": old}).status_code == 412
    assert shown(client, reference) == before

    ok = client.patch(url, {"ref": "prod"}, headers={"If-Match": current})
    assert ok.status_code == 200 and ok.get_json()["ref"] == "prod"
    assert client.delete(url, headers={"If-Match": ok.headers["ETag"]}).status_code == 204
    assert listed(client, group) == []


@pytest.mark.parametrize("url", ["https://ghp_secrettoken@github.com/org/vars.git",
                                 "http://h:99999/x.yml", "git://user@host/repo.git"])
def test_urls_with_a_user_or_a_bad_port_are_refused(client, region, url):
    """A user part (often a token) would show in every listing; a port must be a port."""
    group = client.create(f"/v1/regions/{region['id']}/groups", {"name": "g"})
    response = client.post(f"/v1/groups/{group['id']}/references", {"name": "r", "url": url})
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"url"}
    assert "secrettoken" not in response.get_data(as_text=True)
