"""The issue's user story, end to end through the API: tenant, region, 1,000 hosts in one bulk
request, a 3-level group tree, variables set/merged/deleted, filters, pages, a secret."""

from __future__ import annotations

from tests.conftest import Client


def test_operator_story(client: Client) -> None:
    tenant = client.create("/v1/tenants", {"name": "acme"})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions",
                           {"name": "dfw", "variables": {"ntp": "10.0.0.1"}})
    rid = region["id"]

    cloud = client.create(f"/v1/regions/{rid}/groups", {"name": "cloud"})
    compute = client.create(f"/v1/regions/{rid}/groups", {"name": "compute",
                                                          "parents": ["cloud"]})
    client.create(f"/v1/regions/{rid}/groups", {"name": "gpu", "parents": [compute["id"]]})
    client.create(f"/v1/regions/{rid}/groups", {"name": "control", "parents": ["cloud"]})

    fleet = [
        {"name": f"node-{i:04d}", "ip_address": f"10.1.{i // 250}.{i % 250 + 1}",
         "variables": {"role": "compute" if i % 10 else "control", "rack": f"r{i % 40}",
                       "index": i},
         "groups": ["gpu"] if i % 100 == 1 else (["compute"] if i % 10 else ["control"])}
        for i in range(1000)
    ]
    created = client.post(f"/v1/regions/{rid}/hosts", fleet)
    assert created.status_code == 201
    items = created.get_json()["items"]
    assert [h["name"] for h in items] == [h["name"] for h in fleet]
    assert items[1]["groups"] == ["gpu"] and items[1]["variables"]["index"] == 1

    # group filter includes subgroups: compute = compute members + gpu members
    ids = _all_ids(client, f"/v1/regions/{rid}/hosts?group=compute&limit=250")
    assert len(ids) == 900
    assert len(_all_ids(client, f"/v1/regions/{rid}/hosts?group=cloud&limit=1000")) == 1000
    assert len(_all_ids(client, f"/v1/regions/{rid}/hosts?group=gpu")) == 10

    # variable filter, ANDed
    assert len(_all_ids(client, f"/v1/hosts?region_id={rid}&var=role:compute&limit=500")) == 900
    both = _all_ids(client, f"/v1/hosts?region_id={rid}&var=role:compute&var=rack:r1")
    assert len(both) == 25

    # variables: set, merge (null deletes), delete one key
    host_id = items[0]["id"]
    put = client.put(f"/v1/hosts/{host_id}/variables", {"variables": {"a": 1, "b": [1, 2]}})
    assert put.status_code == 200 and put.get_json() == {"variables": {"a": 1, "b": [1, 2]}}
    merged = client.patch(f"/v1/hosts/{host_id}/variables", {"variables": {"a": None, "c": {}}})
    assert merged.get_json() == {"variables": {"b": [1, 2], "c": {}}}
    assert client.delete(f"/v1/hosts/{host_id}/variables/b").status_code == 204
    assert client.get(f"/v1/hosts/{host_id}/variables").get_json() == {"variables": {"c": {}}}

    # a secret: listed without content, revealed on request
    key = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    secret = client.create(f"/v1/hosts/{host_id}/secrets",
                           {"name": "tls", "kind": "pem", "content": key})
    assert "content" not in secret
    listing = client.get(f"/v1/hosts/{host_id}/secrets").get_json()
    assert [s["name"] for s in listing["items"]] == ["tls"]
    assert "content" not in listing["items"][0]
    revealed = client.post(f"/v1/secrets/{secret['id']}/reveal").get_json()
    assert revealed["content"] == key

    # a bad request is a clear 4xx that names the field
    bad = client.post(f"/v1/regions/{rid}/hosts", [{"name": "ok-1"}, {"name": "../etc"}])
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"1.name"}
    assert client.get(f"/v1/hosts?region_id={rid}&name=ok-1").get_json()["items"] == []
    assert cloud["name"] == "cloud"


def _all_ids(client: Client, url: str) -> list[int]:
    ids: list[int] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        ids += [host["id"] for host in page["items"]]
        url = page["next"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    return ids
