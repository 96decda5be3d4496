"""Every operation of the API reference, fuzzed with schemathesis in-process against the WSGI
app: requests that fit the document and requests that do not, each answered below 500, in a
status, content type, headers and body shape the document allows — and with a 4xx whenever
the request did not fit the document.

One check is left out: positive_data_acceptance, which expects every request that fits the
document to succeed. The document describes types and shapes; the domain decides meaning (a
name must be a valid Ansible name, a group named in a body must exist in the region, a host
may not join a group of another region), so a request can fit the document and still be
refused with a 4xx that names the field — as it should be.

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
    DefaultSettings,
    QuotaSettings,
    Settings,
    SourcesSettings,
)
from craton.db import migrate
from craton.db.session import Database
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
    app = create_app(Settings(
        DEFAULT=DefaultSettings(data_dir=str(data)),
        sources=SourcesSettings(file_roots=(str(sources),), http_timeout=1, git_timeout=2),
        quotas=QuotaSettings(concurrent_jobs=0),
    ), database=db)
    seed(Client(app.test_client()), sources)
    yield app
    app.extensions["craton"].close()
    db.dispose()


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
def test_every_operation_answers_as_documented(case: schemathesis.Case,
                                               fuzzed_app: Flask) -> None:
    case.call_and_validate(app=fuzzed_app,
                           excluded_checks=[schemathesis.checks.positive_data_acceptance])
