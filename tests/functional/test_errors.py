"""Errors through the API: one shape for every failure (code, message, fields, request_id), the
request id echoed in a header, and no 500 whatever JSON a caller sends."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from craton.api import create_app
from craton.db.session import Database
from craton.jobs.streams import QUIET_SECONDS
from tests.conftest import Client, error_of, make_settings
from tests.functional.job_helpers import finished_job

Case = Callable[..., Any]
"""(client, region, **request options) → response"""


def _post_raw(url: str, data: str, content_type: str = "application/json") -> Case:
    return lambda client, region, **kw: client.http.post(
        url.format(region=region), data=data, content_type=content_type, **kw)


def _call(method: str, url: str, body: Any = None) -> Case:
    return lambda client, region, **kw: client.request(
        method, url.format(region=region), body, **kw)


# name → (request, status, fields the error must name (None: not checked), a header it needs)
CASES: dict[str, tuple[Case, int, set[str] | None, str | None]] = {
    "invalid JSON": (_post_raw("/v1/tenants", '{"name": '), 400, {"body"}, None),
    "invalid JSON, hosts": (_post_raw("/v1/regions/{region[id]}/hosts", '[{"name": '),
                            400, {"body"}, None),
    "unknown id": (_call("GET", "/v1/hosts/987654321"), 404, None, None),
    "unknown id of a child": (_call("DELETE", "/v1/regions/{region[id]}/variables/nope"),
                              404, None, None),
    "unknown URL": (_call("GET", "/v1/no-such-thing"), 404, None, None),
    "unknown URL outside v1": (_call("GET", "/v2/tenants"), 404, None, None),
    "method not allowed": (_call("PUT", "/v1/tenants", {"name": "x"}), 405, None, "Allow"),
    "method not allowed on an id": (_call("POST", "/v1/regions/{region[id]}", {}), 405,
                                    None, "Allow"),
    "text/plain body": (_post_raw("/v1/tenants", "name=x", "text/plain"), 415, None, None),
    "form body on hosts": (_post_raw("/v1/regions/{region[id]}/hosts", "name=x",
                                     "application/x-www-form-urlencoded"), 415, None, None),
    "missing field": (_call("POST", "/v1/tenants", {}), 422, {"name"}, None),
    "unknown field": (_call("POST", "/v1/tenants", {"name": "x", "colour": "red"}), 422,
                      {"colour"}, None),
    "wrong type": (_call("POST", "/v1/tenants", {"name": 5}), 422, {"name"}, None),
    "wrong type in a list item": (_call("POST", "/v1/regions/{region[id]}/hosts",
                                        [{"name": "ok"}, {"name": "b", "ssh_port": "22"}]),
                                  422, {"1.ssh_port"}, None),
    "bad query argument": (_call("GET", "/v1/hosts?limit=0"), 422, {"limit"}, None),
    "duplicate": (_call("POST", "/v1/tenants", {"name": "acme"}), 409, {"name"}, None),
    "stale If-Match": (lambda client, region, **kw: client.patch(
        f"/v1/regions/{region['id']}", {"description": "x"},
        headers={"If-Match": '"999"', **kw.pop("headers", {})}, **kw), 412, {"If-Match"}, None),
    "forbidden": (lambda client, region, **kw: client.post(
        "/v1/tenants", {"name": "x"}, tenant=region["tenant_id"], **kw), 403, None, None),
    # Each of these was a 500 before: Python's JSON parser ran out of recursion, or refused
    # to convert a 5,000-digit integer with a ValueError nobody caught.
    "JSON nested 1,000 deep": (_post_raw("/v1/tenants", "[" * 1000 + "]" * 1000), 422,
                               {"body"}, None),
    "JSON nested 990 deep in a value": (
        _post_raw("/v1/regions/{region[id]}/groups",
                  '{"name": "g", "variables": {"v": ' + "[" * 990 + "]" * 990 + "}}"),
        422, {"body"}, None),
    "JSON nested 100,000 deep in a list of hosts": (
        _post_raw("/v1/regions/{region[id]}/hosts", "[" * 100_000 + "]" * 100_000), 422,
        {"body"}, None),
    "value nested deeper than max_json_depth": (
        _call("POST", "/v1/regions/{region[id]}/groups",
              {"name": "g", "variables": {"v": json.loads("[" * 33 + "]" * 33)}}), 422,
        {"variables.v"}, None),
    "5,000-digit integer in a body": (_post_raw("/v1/tenants", '{"name": ' + "9" * 5000 + "}"),
                                      422, {"name"}, None),
    "5,000-digit integer in a list of hosts": (
        _post_raw("/v1/regions/{region[id]}/hosts",
                  '[{"name": "a"}, {"name": "b", "ssh_port": ' + "9" * 5000 + "}]"),
        422, {"1.ssh_port"}, None),
    "5,000-digit integer in a variable": (
        _post_raw("/v1/regions/{region[id]}/groups",
                  '{"name": "g", "variables": {"big": -' + "1" * 5000 + "}}"),
        422, {"variables.big"}, None),
    "5,000-digit integer as an id": (
        _post_raw("/v1/jobs", '{"playbook": "craton:ping", "region_id": ' + "1" * 5000 + "}"),
        422, {"region_id"}, None),
    "5,000-digit integer in a query": (_call("GET", "/v1/hosts?marker=" + "9" * 5000), 422,
                                       {"marker"}, None),
    "too many hosts at once": (_call("POST", "/v1/regions/{region[id]}/hosts",
                                     [{"name": f"h{i}"} for i in range(10_001)]),
                               413, {"body"}, None),
}


def _check(response: Any, status: int, fields: set[str] | None, header: str | None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = error_of(response)
    assert set(error) <= {"code", "message", "fields", "request_id"}
    if fields is not None:
        assert fields <= set(error.get("fields", {})), error
    assert all(isinstance(reason, str) and reason for reason in error.get("fields", {}).values())
    if header is not None:
        assert response.headers.get(header), f"{status} without {header}"
    assert error["request_id"] and response.headers["X-Request-Id"] == error["request_id"]
    return error


def _world(client: Client) -> Any:
    return {"tenants": client.get("/v1/tenants").get_json(),
            "regions": client.get("/v1/regions").get_json(),
            "hosts": client.get("/v1/hosts").get_json()}


@pytest.mark.parametrize("name", list(CASES))
def test_every_error_has_one_shape(client: Client, region: dict[str, Any], name: str) -> None:
    """Each kind of failure answers its status with {"error": {code, message, fields?,
    request_id}}, names the fields at fault, carries a fresh request id in body and header,
    and changes nothing."""
    request, status, fields, header = CASES[name]
    before = _world(client)
    first = _check(request(client, region), status, fields, header)
    second = _check(request(client, region), status, fields, header)
    assert first["request_id"] != second["request_id"]
    assert _world(client) == before


@pytest.mark.parametrize("name", list(CASES))
def test_errors_echo_the_callers_request_id(client: Client, region: dict[str, Any],
                                            name: str) -> None:
    """A caller's X-Request-Id comes back in the error body and header, to match its logs."""
    request, status, fields, header = CASES[name]
    request_id = f"req-{name.replace(' ', '-')}"
    error = _check(request(client, region, headers={"X-Request-Id": request_id}), status,
                   fields, header)
    assert error["request_id"] == request_id


def test_405_lists_the_allowed_methods(client: Client, region: dict[str, Any]) -> None:
    """The Allow header of a 405 names exactly the methods the URL serves."""
    response = client.get(f"/v1/secrets/{region['id']}/reveal")
    assert response.status_code == 405
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert allowed == {"POST", "OPTIONS"}
    assert error_of(response)["request_id"]


def test_404_names_what_was_not_found(client: Client, region: dict[str, Any]) -> None:
    """A 404 says which object or path is missing."""
    assert "host 987654321" in error_of(client.get("/v1/hosts/987654321"))["message"]
    assert "/v1/no-such-thing" in error_of(client.get("/v1/no-such-thing"))["message"]


@pytest.mark.parametrize("url", [
    "/v1/hosts/{huge}",
    "/v1/secrets/{huge}/reveal",
    "/v1/hosts?region_id={huge}",
    "/v1/hosts?marker={huge}",
    "/v1/regions?tenant_id={huge}",
    "/v1/hosts?id={huge}",
    "/v1/hosts?limit={huge}",
    "/v1/groups?marker={huge}",
    "/v1/jobs?region_id={huge}",
    "/v1/jobs/{huge}/events?after={huge}",
])
def test_ids_beyond_any_integer_column_are_not_server_errors(client: Client,
                                                             region: dict[str, Any],
                                                             url: str) -> None:
    """An id larger than any database integer finds nothing (or is refused as invalid); it is
    never a 500."""
    method = "POST" if url.endswith("reveal") else "GET"
    response = client.request(method, url.format(huge=10**30))
    assert response.status_code in (200, 404, 422), response.get_json()
    if response.status_code == 200:
        assert response.get_json()["items"] == []
    else:
        error_of(response)


TWO_63 = 2**63
"""One past the largest id either database holds (BIGINT, SQLite's INTEGER)."""


@pytest.mark.parametrize(("method", "url", "body", "field"), [
    ("POST", "/v1/jobs", {"region_id": "{region}", "playbook": "craton:ping",
                          "forks": TWO_63}, "forks"),
    ("POST", "/v1/jobs", {"region_id": TWO_63, "playbook": "craton:ping"}, "region_id"),
    ("POST", "/v1/jobs", {"region_id": "{region}", "playbook": "craton:ping",
                          "filters": {"id": [TWO_63]}}, "filters.id.0"),
    ("POST", "/v1/groups/{group}/hosts", {"hosts": [TWO_63]}, "hosts.0"),
    ("DELETE", "/v1/groups/{group}/hosts", {"hosts": [1, -TWO_63]}, "hosts.1"),
    ("POST", "/v1/groups/{group}/children", {"children": [TWO_63 * 4]}, "children.0"),
    ("POST", "/v1/regions/{region}/groups", {"name": "g2", "parents": [TWO_63]}, "parents.0"),
    ("POST", "/v1/regions/{region}/hosts", {"name": "h", "ssh_port": TWO_63}, "ssh_port"),
    ("PATCH", "/v1/hosts/{host}", {"groups": [TWO_63]}, "groups.0"),
    ("PATCH", "/v1/tenants/{tenant}", {"quotas": {"hosts": TWO_63}}, "quotas.hosts"),
    ("GET", "/v1/hosts?marker=" + str(TWO_63), None, "marker"),
    ("GET", "/v1/hosts?region_id=" + str(-TWO_63), None, "region_id"),
    ("GET", "/v1/jobs/{job}/events?after=" + str(TWO_63), None, "after"),
    ("GET", "/v1/jobs/{job}/hosts?limit=0", None, "limit"),
])
def test_integers_past_64_bits_are_422_naming_the_field(client: Client, region: dict[str, Any],
                                                        method: str, url: str, body: Any,
                                                        field: str) -> None:
    """An integer of 2^63 or more fits no database column: wherever an integer goes, body or
    query, it is refused naming the field (it is never sent to the database to overflow)."""
    world = _integer_world(client, region)
    filled = json.loads(json.dumps(body).replace('"{region}"', str(world["region"])))
    response = client.request(method, url.format(**world), filled)
    assert response.status_code == 422, response.get_json()
    assert field in error_of(response)["fields"]


def _integer_world(client: Client, region: dict[str, Any]) -> dict[str, int]:
    rid = region["id"]
    host = client.create(f"/v1/regions/{rid}/hosts", {"name": "h1"})
    group = client.create(f"/v1/regions/{rid}/groups", {"name": "web", "hosts": [host["id"]]})
    return {"region": rid, "host": host["id"], "group": group["id"],
            "tenant": region["tenant_id"], "job": finished_job(client, rid)["id"]}


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1\u00b2", "-1", "1.0", " 1 2",
                                   str(2**63), str(2**64), "9" * 5000])
def test_last_event_id_that_is_no_event_number_is_422(client: Client, region: dict[str, Any],
                                                      value: str) -> None:
    """Last-Event-ID "²" passed str.isdigit and then crashed int() (500), and one of 2^63 or
    more was accepted and then overflowed the database in the middle of the stream; both are
    now refused naming the header, before the stream starts."""
    rid = region["id"]
    client.create(f"/v1/regions/{rid}/hosts", {"name": "h1"})
    job = finished_job(client, rid)
    header = value.encode().decode("unicode_escape")
    response = client.get(f"/v1/jobs/{job['id']}/events",
                          headers={"Accept": "text/event-stream", "Last-Event-ID": header})
    assert response.status_code == 422, response.get_data()[:300]
    assert set(error_of(response)["fields"]) == {"Last-Event-ID"}


def test_last_event_id_at_the_largest_event_number_streams_to_the_end(
        client: Client, region: dict[str, Any]) -> None:
    rid = region["id"]
    client.create(f"/v1/regions/{rid}/hosts", {"name": "h1"})
    job = finished_job(client, rid)
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job['id']}/events",
                          headers={"Accept": "text/event-stream",
                                   "Last-Event-ID": str(2**63 - 1)})
    assert response.status_code == 200
    assert b"event: end" in response.get_data()
    # It ends because the job's last event is known, not when the job has gone quiet.
    assert time.monotonic() - started < QUIET_SECONDS / 2


def test_null_body_is_refused_as_not_a_host(client: Client, region: dict[str, Any]) -> None:
    """`null` is valid JSON but no host: 422 naming the body, not a claim the JSON is
    invalid."""
    response = client.http.post(f"/v1/regions/{region['id']}/hosts", data="null",
                                content_type="application/json")
    assert response.status_code == 422, response.get_json()
    assert "body" in error_of(response)["fields"]


@pytest.mark.parametrize("target", ["tenants", "hosts", "host variables"])
def test_bodies_over_max_body_size_are_413(tmp_path: Path, database: Database,
                                           target: str) -> None:
    """A body larger than [api] max_body_size is 413 in the one shape, and nothing is
    written."""
    client = Client(create_app(make_settings(tmp_path, max_body_size=2000),
                               database=database).test_client())
    tenant = client.create("/v1/tenants", {"name": "small"})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "r"})
    host = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "h0"})
    url, body = {
        "tenants": ("/v1/tenants", {"name": "big", "description": "x" * 3000}),
        "hosts": (f"/v1/regions/{region['id']}/hosts",
                  [{"name": f"h{i}"} for i in range(1, 300)]),
        "host variables": (f"/v1/hosts/{host['id']}/variables",
                           {"variables": {"blob": "x" * 3000}}),
    }[target]
    assert len(json.dumps(body)) > 2000
    before = _world(client), client.get(f"/v1/hosts/{host['id']}").get_json()

    response = client.request("PUT" if target == "host variables" else "POST", url, body,
                              headers={"X-Request-Id": "too-big"})
    error = _check(response, 413, None, None)
    assert "max_body_size" in error["message"]
    assert error["request_id"] == "too-big"
    assert (_world(client), client.get(f"/v1/hosts/{host['id']}").get_json()) == before

    small = client.post("/v1/tenants", {"name": "fits"})
    assert small.status_code == 201


# --- No 500 on bad input -----------------------------------------------------------------------

FIELDS = ["name", "ip_address", "fqdn", "ssh_port", "ssh_user", "state", "variables",
          "groups", "description", "children", "parents", "depends_on", "hosts"]

# Any text a JSON string can carry, lone surrogates ("\\ud800") included.
texts = st.text(st.characters(exclude_categories=()), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
bodies = (
    json_values
    | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5)
    | st.lists(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4), max_size=3)
    | st.fixed_dictionaries({"variables": st.dictionaries(texts, json_values, max_size=4)})
)


def _send(client: Client, method: str, url: str, body: Any) -> Any:
    """Send ``body`` as JSON text (NaN and Infinity included, as Python's json writes them)."""
    return client.http.open(url, method=method, data=json.dumps(body),
                            content_type="application/json")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies)
@example(body={"name": "ok-host", "groups": [10**30]})
@example(body={"name": "ok_group", "hosts": [10**30], "children": [-1]})
@example(body={"name": "ok_group", "description": "\ud800"})
@example(body={"variables": {"k": "\udfff"}})
@example(body={"variables": {"k": float("nan"), "ok": [float("inf")]}})
@example(body=[{"name": "a"}, {"name": "a"}, 7, None])
@example(body={"ssh_port": 10**30, "state": [], "groups": [True, 1.5]})
@example(body={"name": "", "ip_address": "1.2.3.4.5", "fqdn": "-bad-", "ssh_user": "x y"})
@example(body=None)
@example(body=[])
def test_arbitrary_json_never_causes_a_500(client: Client, region: dict[str, Any],
                                           body: Any) -> None:
    """Whatever JSON value is sent to create hosts or groups, change a host or replace its
    variables, the answer is below 500, and a refused request leaves the region's hosts (and
    the host) as they were."""
    rid = region["id"]
    host = client.get(f"/v1/regions/{rid}/hosts?name=fixed-host").get_json()["items"]
    host_id = host[0]["id"] if host else client.create(f"/v1/regions/{rid}/hosts",
                                                       {"name": "fixed-host"})["id"]
    for method, url in (("POST", f"/v1/regions/{rid}/hosts"),
                        ("POST", f"/v1/regions/{rid}/groups"),
                        ("PATCH", f"/v1/hosts/{host_id}"),
                        ("PUT", f"/v1/hosts/{host_id}/variables")):
        hosts_before = client.get(f"/v1/regions/{rid}/hosts?limit=1000").get_json()["items"]
        response = _send(client, method, url, body)
        assert response.status_code < 500, (method, url, response.get_json())
        if response.status_code >= 400:
            error_of(response)
            hosts_after = client.get(f"/v1/regions/{rid}/hosts?limit=1000").get_json()["items"]
            assert len(hosts_after) == len(hosts_before), (method, url)
            assert hosts_after == hosts_before, (method, url)


@pytest.mark.parametrize(("method", "url", "field"), [
    ("POST", "/v1/tenants", "description"),
    ("PATCH", "/v1/regions/{region[id]}", "description"),
    ("POST", "/v1/regions/{region[id]}/groups", "description"),
    ("PUT", "/v1/hosts/{host[id]}/variables", "variables"),
])
def test_long_text_is_stored_or_refused_never_a_500(client: Client, region: dict[str, Any],
                                                    method: str, url: str, field: str) -> None:
    """A 70,000-character description or variable (beyond a 64 KiB TEXT column) is stored
    whole or refused with a 422; it is never a server error."""
    host = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "h1"})
    text = "d" * 70_000
    body: dict[str, Any] = {"variables": {"blob": text}} if field == "variables" else {
        "name": "long_text", "description": text}
    if method == "PATCH":
        body.pop("name")
    response = client.request(method, url.format(region=region, host=host), body)
    assert response.status_code in (200, 201, 422), response.get_json()
    if response.status_code == 422:
        assert field in " ".join(error_of(response)["fields"])
    else:
        location = response.headers.get("Location") or url.format(region=region, host=host)
        stored = client.get(location).get_json()
        assert (stored["variables"]["blob"] if field == "variables" else
                stored["description"]) == text


@pytest.mark.parametrize("url", ["/v1/hosts?stat=ready", "/v1/tenants?limt=5",
                                 "/v1/regions?tenant=1"])
def test_unknown_query_argument_is_refused(client: Client, url: str) -> None:
    """A mistyped filter must not silently select everything: 422 naming the argument."""
    response = client.get(url)
    assert response.status_code == 422
    (name,) = error_of(response)["fields"]
    assert name == url.split("?")[1].split("=")[0]
