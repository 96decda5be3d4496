"""Bulk-create 10,000 hosts x 10 variables through the REST API, on SQLite (the embedded default).

Target (issue 2): under 5 s for the whole request on this machine. Prints the request's wall
time, a split of where it goes, and the read-back time of a filtered list page.

    python benchmarks/bulk_create.py [--hosts 10000] [--variables 10] [--db URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from craton.api import create_app
from craton.config import DefaultSettings, Settings
from craton.db import migrate
from craton.db.session import Database


def fleet(hosts: int, variables: int) -> list[dict[str, object]]:
    return [
        {
            "name": f"host-{i:06d}",
            "ip_address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            "variables": {f"var_{k}": (f"value-{i % 97}-{k}" if k % 2 else i * k)
                          for k in range(variables)} | {"role": "compute" if i % 4 else "ctl"},
            "groups": ["compute" if i % 4 else "control"],
        }
        for i in range(hosts)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--variables", type=int, default=10)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    timings = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
            db = Database(url)
            migrate.upgrade(db.engine)
            app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=tmp)), database=db)
            client = app.test_client()
            tenant = client.post("/v1/tenants", json={"name": "bench"}).get_json()
            region = client.post(f"/v1/tenants/{tenant['id']}/regions",
                                 json={"name": "r"}).get_json()
            for group in ("compute", "control"):
                client.post(f"/v1/regions/{region['id']}/groups", json={"name": group})
            body = json.dumps(fleet(args.hosts, args.variables - 1))
            started = time.perf_counter()
            response = client.post(f"/v1/regions/{region['id']}/hosts", data=body,
                                   content_type="application/json")
            elapsed = time.perf_counter() - started
            assert response.status_code == 201, response.get_json()
            assert len(response.get_json()["items"]) == args.hosts
            started = time.perf_counter()
            page = client.get(f"/v1/regions/{region['id']}/hosts?var=role:compute&limit=1000")
            read = time.perf_counter() - started
            assert len(page.get_json()["items"]) == 1000
            timings.append((elapsed, read, len(body)))
            db.dispose()
    best = min(t[0] for t in timings)
    print(f"bulk create: {args.hosts} hosts x {args.variables} variables "
          f"({timings[0][2] / 1e6:.1f} MB body) on {args.db or 'SQLite'}")
    print(f"  create request: best {best:.2f} s, median "
          f"{statistics.median(t[0] for t in timings):.2f} s over {args.runs} runs "
          f"({args.hosts / best:,.0f} hosts/s) — target < 5 s")
    print(f"  filtered page of 1,000 (var=role:compute): median "
          f"{statistics.median(t[1] for t in timings) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
