"""What a web page of another site can do to Craton through its visitor's browser: nothing.
Under noauth it cannot read the API by rebinding its own name to 127.0.0.1 (the Host header is
checked); under any strategy a cross-site form cannot change anything (a state-changing request
needs a JSON body or a header a form cannot send); and every answer carries the headers that
keep the pages out of frames and their content types unsniffed."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.conftest import Client, error_of


@pytest.mark.parametrize("host", ["localhost", "localhost:7780", "127.0.0.1", "127.0.0.1:8080",
                                  "[::1]", "[::1]:7780", "127.0.0.2:7780"])
def test_noauth_serves_loopback_hosts(app: Flask, host: str) -> None:
    response = app.test_client().get("/v1/tenants", headers={"Host": host})
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7780", "192.0.2.1:7780",
                                  "localhost.evil.example", "[2001:db8::1]:7780", "10.0.0.1"])
def test_noauth_refuses_other_hosts(app: Flask, host: str) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name, which is what its requests
    carry as Host: they get 403, pages included."""
    for url in ("/v1/tenants", "/ui/"):
        response = app.test_client().get(url, headers={"Host": host})
        assert response.status_code == 403, (url, response.get_data(as_text=True))
        assert "loopback" in error_of(response)["message"]


def test_a_cross_site_form_cannot_cancel_a_job(app: Flask, client: Client,
                                               region: dict[str, Any]) -> None:
    """A bodyless POST as a form of another site sends it (no JSON, no custom header) is 403 and
    leaves the job running; a form body is 415; the same call from an API client (JSON body or
    X-Craton-Request) goes through."""
    client.create(f"/v1/regions/{region['id']}/hosts", {"name": "web-1"})
    started = client.post("/v1/jobs", {"region_id": region["id"], "playbook": "craton:ping"})
    assert started.status_code == 202, started.get_json()
    job = started.get_json()
    browser = app.test_client()
    forged = browser.post(f"/v1/jobs/{job['id']}/cancel",
                          headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert "X-Craton-Request" in error_of(forged)["message"]
    as_form = browser.post(f"/v1/jobs/{job['id']}/cancel", data={"x": "1"})
    assert as_form.status_code == 415
    assert client.get(f"/v1/jobs/{job['id']}").get_json()["status"] in ("pending", "running")

    cancelled = browser.post(f"/v1/jobs/{job['id']}/cancel", headers={"X-Craton-Request": "1"})
    assert cancelled.status_code == 202, cancelled.get_json()


@pytest.mark.parametrize("method", ["DELETE", "POST", "PUT", "PATCH"])
def test_bodyless_writes_need_a_header_a_form_cannot_send(app: Flask, client: Client,
                                                          region: dict[str, Any],
                                                          method: str) -> None:
    host = client.create(f"/v1/regions/{region['id']}/hosts", {"name": "web-1"})
    response = app.test_client().open(f"/v1/hosts/{host['id']}", method=method)
    assert response.status_code == 403
    assert client.get(f"/v1/hosts/{host['id']}").status_code == 200
    with_json = app.test_client().open(f"/v1/hosts/{host['id']}", method="DELETE",
                                       headers={"Content-Type": "application/json"})
    assert with_json.status_code == 204


@pytest.mark.parametrize("url", ["/ui/", "/v1/tenants", "/v1/openapi.json", "/v1/hosts/999",
                                 "/ui/static/common.js"])
def test_every_answer_carries_the_security_headers(client: Client, url: str) -> None:
    headers = client.get(url).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
