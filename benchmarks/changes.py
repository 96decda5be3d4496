"""What change records cost: a bulk create of 1,000 hosts (10 variables each, in a group) and a
single-host PATCH (a field and two variables), each with recording on and off, in the same run
and on the same kind of fresh database.

    python benchmarks/changes.py [--hosts 1000] [--patches 300] [--runs 5] [--db URL]

--db (e.g. a MariaDB URL) runs against that database; each run adds a tenant of its own.
Prints the medians and what recording adds, in time and in statements.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event

from craton.api import create_app
from craton.config import DefaultSettings, Settings
from craton.db import changes, migrate
from craton.db.session import Database


def fleet(prefix: str, hosts: int) -> list[dict[str, Any]]:
    return [{"name": f"{prefix}-{i:05d}", "ip_address": f"10.0.{i // 256}.{i % 256}",
             "variables": {f"var_{k}": f"value-{i}-{k}" for k in range(9)}
             | {"db_password": "s3cret"}, "groups": ["compute"]} for i in range(hosts)]


@contextlib.contextmanager
def database(url: str | None) -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate.upgrade(db.engine)
        try:
            yield db
        finally:
            db.dispose()


def one_run(url: str | None, recording: bool, hosts: int, patches: int) -> dict[str, float]:
    with database(url) as db, tempfile.TemporaryDirectory() as data:
        if not recording:
            changes.unwatch(db._sessions)
        app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=data)), database=db)
        client = app.test_client()
        tenant = client.post("/v1/tenants", json={"name": f"bench-{uuid.uuid4().hex[:8]}"})
        region = client.post(f"/v1/tenants/{tenant.get_json()['id']}/regions",
                             json={"name": "r"}).get_json()
        client.post(f"/v1/regions/{region['id']}/groups", json={"name": "compute"})
        statements: list[str] = []
        event.listen(db.engine, "before_cursor_execute",
                     lambda *args: statements.append(args[2]))
        body = fleet("h", hosts)
        started = time.perf_counter()
        created = client.post(f"/v1/regions/{region['id']}/hosts", json=body)
        bulk = time.perf_counter() - started
        assert created.status_code == 201, created.get_json()
        bulk_statements = len(statements)
        host_id = created.get_json()["items"][0]["id"]
        timings = []
        statements.clear()
        for index in range(patches):
            started = time.perf_counter()
            response = client.patch(f"/v1/hosts/{host_id}", json={
                "ssh_user": f"user{index}", "variables": {"rack": f"r{index}",
                                                          "var_1": index}})
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.get_json()
        app.extensions["craton"].close()
        return {"bulk": bulk, "bulk_statements": bulk_statements,
                "patch_p50": statistics.median(timings),
                "patch_statements": len(statements) / patches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--patches", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file per run)")
    args = parser.parse_args()

    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.runs):
        for recording in (False, True):  # interleaved: a busy machine slows both alike
            results[recording].append(one_run(args.db, recording, args.hosts, args.patches))

    def median(recording: bool, key: str) -> float:
        return statistics.median(run[key] for run in results[recording])

    print(f"change records on {args.db or 'SQLite'}: medians of {args.runs} runs each, "
          "recording off / on")
    off, on = median(False, "bulk"), median(True, "bulk")
    print(f"  bulk create of {args.hosts:,} hosts x 10 variables: {off * 1000:.0f} ms / "
          f"{on * 1000:.0f} ms (+{(on - off) * 1000:.0f} ms, {(on / off - 1) * 100:+.0f}%); "
          f"statements {median(False, 'bulk_statements'):.0f} / "
          f"{median(True, 'bulk_statements'):.0f}")
    off, on = median(False, "patch_p50"), median(True, "patch_p50")
    print(f"  single-host PATCH, p50 of {args.patches}: {off * 1000:.2f} ms / "
          f"{on * 1000:.2f} ms (+{(on - off) * 1000:.2f} ms, {(on / off - 1) * 100:+.0f}%); "
          f"statements per PATCH {median(False, 'patch_statements'):.0f} / "
          f"{median(True, 'patch_statements'):.0f}")


if __name__ == "__main__":
    main()
