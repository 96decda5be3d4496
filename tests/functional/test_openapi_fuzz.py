"""Every operation of the API reference, fuzzed with schemathesis in-process against the WSGI
app: requests that fit the document and requests that do not, each answered below 500, in a
status, content type, headers and body shape the document allows — and with a 4xx whenever
the request did not fit the document.

One check is left out: positive_data_acceptance, which expects every request that fits the
document to succeed. The document describes types and shapes; the domain decides meaning (a
name must be a valid Ansible name, a group named in a body must exist in the region, a host
may not join a group of another region), so a request can fit the document and still be
refused with a 4xx that names the field — as it should be.

The app authenticates with API keys (``[api] auth_strategy = apikey``, what a real deployment
runs): each request carries a cloud admin's key, and schemathesis also checks that a request
without it, or with a wrong one, is refused with 401.

No job runs: the tenants' concurrent_jobs quota is 0, so a job that would start answers 429.
Fetches are bounded by short timeouts, and file:// reads by a directory of this test's own.
The run is derandomized (the same examples every time), so a failure here is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings

from craton.api import create_app
from craton.config import (
    ApiSettings,
    DefaultSettings,
    QuotaSettings,
    Settings,
    SourcesSettings,
)
from craton.context import ADMIN
from craton.db import migrate
from craton.db.models import ApiKeyRole
from craton.db.session import Database
from craton.identity import apikeys
from tests.conftest import Client
from tests.functional.job_helpers import finished_job

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = 25
"""Examples per operation (and per generation mode): about half a minute for the whole API."""

schema = schemathesis.openapi.from_path(str(REPO / "api-ref" / "openapi.json"))
schema.config.generation.update(modes=["positive", "negative"], max_examples=EXAMPLES)


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on a SQLite database of its own, holding a tenant whose objects have the small
    ids generated requests tend to name: a region, groups, hosts, a secret, a reference and a
    finished job."""
    data = tmp_path_factory.mktemp("fuzz")
    sources = data / "sources"
    sources.mkdir()
    (sources / "common.yml").write_text("ntp: 10.0.0.1\ndns: [10.0.0.2]\n")
    db = Database(f"sqlite:///{data / 'craton.db'}")
    migrate.upgrade(db.engine)
    apps = [create_app(Settings(
        DEFAULT=DefaultSettings(data_dir=str(data)),
        api=ApiSettings(auth_strategy=strategy),
        sources=SourcesSettings(file_roots=(str(sources),), http_timeout=1, git_timeout=2),
        quotas=QuotaSettings(concurrent_jobs=0),
    ), database=db) for strategy in ("noauth", "apikey")]
    seed(Client(apps[0].test_client()), sources)
    yield apps[1]
    for app in apps:
        app.extensions["craton"].close()
    db.dispose()


@pytest.fixture(scope="module")
def admin_key(fuzzed_app: Flask) -> str:
    """A cloud admin's API key for the fuzzed app."""
    services = fuzzed_app.extensions["craton"]
    hash_key = apikeys.read_or_create_hash_key(services.settings.apikey_hash_key_file)
    with services.db.transaction() as session:
        _, key = apikeys.create_key(session, ADMIN, hash_key, tenant_id=None, name="fuzz",
                                    role=ApiKeyRole.ADMIN)
    return key


def seed(client: Client, sources: Path) -> None:
    tenant = client.create("/v1/tenants", {"name": "fuzz",
                                           "quotas": {"concurrent_jobs": 1}})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions",
                           {"name": "dfw", "variables": {"ntp": "10.0.0.1"}})
    rid = region["id"]
    parent = client.create(f"/v1/regions/{rid}/groups", {"name": "cloud"})
    client.create(f"/v1/regions/{rid}/groups", {"name": "compute", "parents": ["cloud"],
                                                "variables": {"role": "compute"}})
    hosts = client.post(f"/v1/regions/{rid}/hosts", [
        {"name": f"h{i}", "groups": ["compute"], "variables": {"rack": f"r{i}"}}
        for i in range(3)]).get_json()["items"]
    client.create(f"/v1/hosts/{hosts[0]['id']}/secrets",
                  {"name": "pw", "kind": "password", "content": "hunter2"})
    client.create(f"/v1/groups/{parent['id']}/references",
                  {"name": "common", "url": f"file://{sources / 'common.yml'}"})
    finished_job(client, rid)
    quotas = client.patch(f"/v1/tenants/{tenant['id']}", {"quotas": {"concurrent_jobs": None}})
    assert quotas.status_code == 200, quotas.get_json()


@schema.parametrize()
@settings(deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large])
def test_every_operation_answers_as_documented(case: schemathesis.Case, fuzzed_app: Flask,
                                               admin_key: str) -> None:
    # The document comes from a file, so schemathesis has no app for the probes it sends
    # without credentials (or with wrong ones) unless its schema is given it.
    case.operation.schema.app = fuzzed_app
    case.call_and_validate(app=fuzzed_app, headers={"Authorization": f"Bearer {admin_key}"},
                           excluded_checks=[schemathesis.checks.positive_data_acceptance])
