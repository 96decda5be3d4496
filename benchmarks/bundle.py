"""Time GET /v1/inventory/<region>.tgz on a large fleet, next to the floor measured in the same
run, on SQLite (the embedded default).

Fleet: N hosts x 10 variables, 200 groups four levels deep (each with a few variables that
overlap, so resolution has work to do), every host in one or two groups.

Floor: the same host variables read with one raw SQL query, serialized as JSON, and the same
number of bytes as the archive's content gzipped — what any bundle costs at least.

304: If-None-Match with the current ETag, which is known from the region's inventory version
and its references' pins without reading a host.

Targets (issue 10): at 10,000 hosts, both layouts <= 1 s and <= 1.5x the floor, and a 304 in
<= 20 ms whatever the fleet size; at 100,000 hosts <= 10 s with peak memory <= 300 MB
(measured in a fresh process that only builds the bundle).

    python benchmarks/bundle.py                 # 10,000 hosts, both layouts
    python benchmarks/bundle.py --hosts 100000  # adds the time and memory of a fresh process
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from craton.api import create_app
from craton.config import DefaultSettings, Settings
from craton.db import migrate
from craton.db.session import Database

GROUP_LEVELS = (4, 16, 60, 120)  # 200 groups, four levels deep


def build_fleet(client, hosts: int) -> int:
    tenant = client.post("/v1/tenants", json={"name": "bench"}).get_json()
    region = client.post(f"/v1/tenants/{tenant['id']}/regions", json={
        "name": "bench", "variables": {"ntp": "10.0.0.1", "dns": ["10.0.0.2", "10.0.0.3"],
                                       "tier": "all"}}).get_json()
    rid = region["id"]
    levels: list[list[str]] = []
    for depth, count in enumerate(GROUP_LEVELS):
        names = [f"g{depth}_{i:03d}" for i in range(count)]
        for i, name in enumerate(names):
            parents = [levels[-1][i % len(levels[-1])]] if levels else []
            variables = {"tier": f"level{depth}", f"only_{depth}": i,
                         "shared": {"from": name}, "priority_hint": depth * 10 + i % 3}
            if i % 7 == 0:
                variables["ansible_group_priority"] = 1 + i % 5
            response = client.post(f"/v1/regions/{rid}/groups", json={
                "name": name, "parents": parents, "variables": variables})
            assert response.status_code == 201, response.get_json()
        levels.append(names)
    leaves, mids = levels[-1], levels[-2]
    batch = 10_000
    for start in range(0, hosts, batch):
        fleet = [
            {"name": f"host-{i:06d}", "ip_address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
             "variables": {f"var_{k}": (f"value-{i % 97}-{k}" if k % 2 else i * k)
                           for k in range(9)} | {"tier": "host" if i % 3 else "override"},
             "groups": [leaves[i % len(leaves)]] + ([mids[i % len(mids)]] if i % 4 == 0 else [])}
            for i in range(start, min(start + batch, hosts))
        ]
        response = client.post(f"/v1/regions/{rid}/hosts", json=fleet)
        assert response.status_code == 201, response.get_json()
    return rid


def floor(db: Database, region_id: int, content_bytes: int) -> float:
    """One raw query for the same variables + JSON per host + gzip of as many bytes."""
    started = time.perf_counter()
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT h.name, v.key, v.value_json FROM hosts h JOIN host_variables v "
            "ON v.host_id = h.id WHERE h.region_id = ? ORDER BY h.name, v.key", (region_id,)
        ).fetchall()
    per_host: dict[str, dict[str, object]] = {}
    for name, key, value in rows:
        per_host.setdefault(name, {})[key] = json.loads(value)
    text = "".join(json.dumps(variables) for variables in per_host.values()).encode()
    payload = (text * (content_bytes // max(len(text), 1) + 1))[:content_bytes]
    gzip.compress(payload, compresslevel=6, mtime=0)
    return time.perf_counter() - started


def timed_download(client, url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = client.get(url)
    data = b"".join(response.response)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, data[:500]
    return elapsed, data


def content_size(data: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return sum(member.size for member in archive.getmembers())


def child(db_url: str, data_dir: str, region_id: int, layout: str) -> None:
    """Run in a fresh process: stream one bundle as a client saving it would (each piece
    written out, none kept), print seconds and the process's peak RSS."""
    db = Database(db_url)
    app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=data_dir)), database=db)
    started = time.perf_counter()
    response = app.test_client().get(f"/v1/inventory/{region_id}.tgz?layout={layout}",
                                     buffered=False)
    assert response.status_code == 200
    size = 0
    with open(os.devnull, "wb") as sink:
        for piece in response.response:
            sink.write(piece)
            size += len(piece)
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_rss_mb(), "bytes": size}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not ru_maxrss: Linux folds the forking parent's
    high-water mark into a child's ru_maxrss at exec; VmHWM belongs to this address space."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("DB", "DATA", "REGION", "LAYOUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(url)
        migrate.upgrade(db.engine)
        app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=tmp)), database=db)
        client = app.test_client()
        started = time.perf_counter()
        region_id = build_fleet(client, args.hosts)
        print(f"fleet: {args.hosts:,} hosts x 10 variables, {sum(GROUP_LEVELS)} groups in "
              f"{len(GROUP_LEVELS)} levels (built in {time.perf_counter() - started:.1f} s)")
        summary = []
        for layout in ("ansible", "hosts"):
            url_path = f"/v1/inventory/{region_id}.tgz?layout={layout}"
            times, floors, size, archive = [], [], 0, b""
            for _ in range(args.runs):
                elapsed, archive = timed_download(client, url_path)
                size = content_size(archive)
                times.append(elapsed)
                floors.append(floor(db, region_id, size))
            best, best_floor = min(times), min(floors)
            print(f"  layout={layout:8s} .tgz {len(archive) / 1e6:5.1f} MB "
                  f"({size / 1e6:.1f} MB inside): best {best:.3f} s, median "
                  f"{statistics.median(times):.3f} s; floor {best_floor:.3f} s; "
                  f"ratio {best / best_floor:.2f}x")
            etag = client.get(url_path).headers["ETag"]
            not_modified = []
            for _ in range(max(args.runs, 5)):
                started = time.perf_counter()
                unchanged = client.get(url_path, headers={"If-None-Match": etag})
                not_modified.append(time.perf_counter() - started)
                assert unchanged.status_code == 304, unchanged.status_code
            print(f"    If-None-Match: 304 in best {min(not_modified) * 1000:.1f} ms, median "
                  f"{statistics.median(not_modified) * 1000:.1f} ms")
            summary.append(f"{layout} {best:.2f} s ({best / best_floor:.2f}x floor)")
            if args.hosts >= 50_000:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", url, tmp, str(region_id), layout],
                    check=True, capture_output=True, text=True).stdout
                fresh = json.loads(out)
                print(f"    fresh process: {fresh['seconds']:.2f} s, peak RSS "
                      f"{fresh['peak_mb']:.0f} MB (targets <= 10 s, <= 300 MB)")
        print(f"summary at {args.hosts:,} hosts: {'; '.join(summary)} "
              f"(targets <= 1 s at 10,000 hosts and <= 1.5x the floor; 304 <= 20 ms)")
        db.dispose()


if __name__ == "__main__":
    main()
