"""Time the hosts list on SQLite (the embedded default): one page of 1,000 hosts, and the walk
over every page of the fleet following ``next`` links, through the app's WSGI interface (JSON
encoding included, no network).

Fleet: N hosts x 10 variables (one of them sensitive by name, so shown as "<hidden>"), each in
one or two of 50 groups.

Targets (issue 13): <= 0.2 s per 1,000-host page, so that ``craton host list -f json`` of
10,000 hosts stays within 3 s end to end.

    python benchmarks/host_list.py [--hosts 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from craton.api import create_app
from craton.config import DefaultSettings, Settings
from craton.db import migrate
from craton.db.session import Database

GROUPS = 50
PAGE = 1000


def build_fleet(client: Any, hosts: int) -> int:
    tenant = client.post("/v1/tenants", json={"name": "bench"}).get_json()
    region = client.post(f"/v1/tenants/{tenant['id']}/regions",
                         json={"name": "bench"}).get_json()
    rid = region["id"]
    names = [f"g{i:02d}" for i in range(GROUPS)]
    for name in names:
        response = client.post(f"/v1/regions/{rid}/groups", json={"name": name})
        assert response.status_code == 201, response.get_json()
    for start in range(0, hosts, 5000):
        fleet = [
            {"name": f"host-{i:06d}", "ip_address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
             "variables": {f"var_{k}": (f"value-{i % 97}-{k}" if k % 2 else i * k)
                           for k in range(9)} | {"db_password": f"pw-{i}"},
             "groups": [names[i % GROUPS]] + ([names[(i + 7) % GROUPS]] if i % 3 == 0 else [])}
            for i in range(start, min(start + 5000, hosts))
        ]
        response = client.post(f"/v1/regions/{rid}/hosts", json=fleet)
        assert response.status_code == 201, response.get_json()
    return rid


def timed_get(client: Any, url: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.get(url)
    body = response.data
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, body[:500]
    return elapsed, response.get_json()


def walk(client: Any, url: str) -> tuple[float, int]:
    """Every page from ``url`` on, following next links: the time and the hosts seen."""
    seen, total = 0, 0.0
    next_url: str | None = url
    while next_url:
        elapsed, body = timed_get(client, next_url)
        total += elapsed
        seen += len(body["items"])
        next_url = body["next"]
    return total, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate.upgrade(db.engine)
        app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=tmp)), database=db)
        client = app.test_client()
        started = time.perf_counter()
        region_id = build_fleet(client, args.hosts)
        print(f"fleet: {args.hosts:,} hosts x 10 variables, {GROUPS} groups "
              f"(built in {time.perf_counter() - started:.1f} s)")
        for label, url in (("/v1/regions/{id}/hosts", f"/v1/regions/{region_id}/hosts"),
                           ("/v1/hosts", f"/v1/hosts?region_id={region_id}")):
            sep = "&" if "?" in url else "?"
            pages = []
            for _ in range(args.runs):
                elapsed, body = timed_get(client, f"{url}{sep}limit={PAGE}")
                assert len(body["items"]) == min(PAGE, args.hosts)
                pages.append(elapsed)
            walks = []
            for _ in range(max(1, args.runs // 2)):
                elapsed, seen = walk(client, f"{url}{sep}limit={PAGE}")
                assert seen == args.hosts
                walks.append(elapsed)
            print(f"  {label:24s} {PAGE:,}-host page: best {min(pages):.3f} s, median "
                  f"{statistics.median(pages):.3f} s (target <= 0.2 s); all {args.hosts:,} "
                  f"hosts in {len(range(0, args.hosts, PAGE))} pages: best {min(walks):.3f} s")


if __name__ == "__main__":
    main()
