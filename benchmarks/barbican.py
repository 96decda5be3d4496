"""What keeping secrets in Barbican costs a bundle, and what reading them at once saves: GET
/v1/inventory/<region>.tgz of a region whose N hosts each hold one secret, with the content
encrypted in the database (local) and kept in a real Barbican (started for the run from
.venv-openstack, behind a real Keystone, on 127.0.0.1), read one request after another
(``[barbican] concurrency = 1``: what every bundle and job did before) and
``--concurrency`` at a time. Then the same for deleting the region with cascade=true, whose
payloads are deleted after the commit. Through the WSGI app in-process; the median of
``--repeat`` runs each. A job's bundle is built by the same code.

    python benchmarks/barbican.py [--hosts 200] [--concurrency 8] [--repeat 5]
                                  [--barbican-workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from craton.api import create_app
from craton.config import BarbicanSettings, DefaultSettings, SecretsSettings, Settings
from craton.db import migrate
from craton.db.session import Database
from tests.openstack import Keystone, barbican_server, keystone_server


def median_seconds(run: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def service_user(keystone: Keystone) -> tuple[str, str]:
    """Craton's service user, with Barbican's member role on project service."""
    project = keystone.project("service")
    password = secrets.token_hex(12)
    user = keystone.user("craton", password)
    keystone.grant(user["id"], "member", project_id=project["id"])
    return "craton", password


def make_app(data: Path, name: str, barbican: BarbicanSettings | None) -> Flask:
    home = data / name
    home.mkdir()
    db = Database(f"sqlite:///{home / 'craton.db'}")
    migrate.upgrade(db.engine)
    settings = Settings(DEFAULT=DefaultSettings(data_dir=str(home)),
                        secrets=SecretsSettings(backend="barbican" if barbican else "local"),
                        barbican=barbican or BarbicanSettings())
    return create_app(settings, database=db)


def make_region(app: Flask, hosts: int) -> int:
    """A region of ``hosts`` hosts with one password secret each; its id."""
    client = app.test_client()
    tenant = client.post("/v1/tenants", json={"name": f"t{secrets.token_hex(3)}"}).get_json()
    region = client.post(f"/v1/tenants/{tenant['id']}/regions",
                         json={"name": "dfw"}).get_json()
    answer = client.post(f"/v1/regions/{region['id']}/hosts",
                         json=[{"name": f"h{n:04d}"} for n in range(hosts)])
    assert answer.status_code == 201, answer.get_json()
    for host in answer.get_json()["items"]:
        created = client.post(f"/v1/hosts/{host['id']}/secrets", json={
            "name": "pw", "kind": "password", "content": secrets.token_hex(16)})
        assert created.status_code == 201, created.get_json()
    return region["id"]


def get_bundle(app: Flask, region_id: int, hosts: int) -> None:
    answer = app.test_client().get(f"/v1/inventory/{region_id}.tgz")
    assert answer.status_code == 200 and len(answer.data) > hosts * 40, answer.status_code


def delete_region(app: Flask, region_id: int) -> None:
    answer = app.test_client().delete(f"/v1/regions/{region_id}?cascade=true",
                                      headers={"X-Craton-Request": "1"})
    assert answer.status_code == 204, answer.get_json()


@dataclasses.dataclass
class Case:
    name: str
    app: Flask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--barbican-workers", type=int, default=4,
                        help="Barbican's gunicorn workers (each serves one request at a time; "
                             "with one, requests queue at Barbican whatever Craton does)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        data = Path(directory)
        keystone = stack.enter_context(keystone_server(data / "keystone", token_lifetime=3600))
        barbican = stack.enter_context(barbican_server(data / "barbican", keystone,
                                                         workers=args.barbican_workers))
        username, password = service_user(keystone)

        def barbican_settings(concurrency: int) -> BarbicanSettings:
            return BarbicanSettings(auth_url=f"{keystone.url}/v3", username=username,
                                    password=password, project_name="service",
                                    endpoint=barbican.url, concurrency=concurrency)

        cases = [Case("local (Fernet, in the database)", make_app(data, "local", None)),
                 Case("barbican, one at a time (before)",
                      make_app(data, "sequential", barbican_settings(1))),
                 Case(f"barbican, {args.concurrency} at a time",
                      make_app(data, "concurrent", barbican_settings(args.concurrency)))]
        print(f"{args.hosts} hosts with a secret each; Barbican with {args.barbican_workers} "
              f"workers; median of {args.repeat}")
        bundles: dict[str, float] = {}
        for case in cases:
            region_id = make_region(case.app, args.hosts)
            get_bundle(case.app, region_id, args.hosts)  # warm: Keystone token, connections
            bundles[case.name] = median_seconds(
                lambda: get_bundle(case.app, region_id, args.hosts), args.repeat)  # noqa: B023
            print(f"  GET bundle.tgz   {case.name:<36} {bundles[case.name] * 1000:8.1f} ms")
        for case in cases:
            regions = [make_region(case.app, args.hosts) for _ in range(args.repeat)]
            spent = median_seconds(lambda: delete_region(case.app, regions.pop()), args.repeat)  # noqa: B023
            print(f"  DELETE cascade   {case.name:<36} {spent * 1000:8.1f} ms")
        before, after = cases[1].name, cases[2].name
        print(f"bundle speed-up from reading at once: {bundles[before] / bundles[after]:.1f}x; "
              f"Barbican adds {(bundles[after] - bundles[cases[0].name]) * 1000:.0f} ms "
              f"over local")
        for case in cases:
            case.app.extensions["craton"].close()


if __name__ == "__main__":
    main()
