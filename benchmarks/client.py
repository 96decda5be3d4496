"""The ``craton`` command's speed: start-up (``craton --help``), ``craton host list`` on a
small fleet, and ``craton host list -f json`` of 10,000 hosts with 10 variables each, each
the best of a few runs, against a real craton-api (SQLite) on 127.0.0.1.

Targets (issue 13): --help and a small host list <= 0.4 s; 10,000 hosts as JSON <= 3 s.

    python benchmarks/client.py [--hosts 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from servers import craton_api

from cratonclient import Client

CRATON = str(Path(sys.executable).parent / "craton")


def best(command: list[str], env: dict[str, str], runs: int) -> tuple[float, str]:
    """The fastest of ``runs`` runs of ``command``, and its output."""
    times = []
    output = ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
        output = done.stdout
    return min(times), output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        db_url = f"sqlite:///{data_dir}/craton.db"
        env = {**os.environ, "CRATON_DATA_DIR": data_dir, "CRATON_DATABASE_URL": db_url,
               "HOME": data_dir}
        subprocess.run([str(Path(sys.executable).parent / "craton-manage"), "db", "upgrade"],
                       env=env, check=True, capture_output=True)
        with craton_api(data_dir, db_url, "") as port:
            url = f"http://127.0.0.1:{port}"
            client = Client(url)
            tenant = client.tenants.create("bench")
            small = tenant.create_region("small")
            small.create_hosts([{"name": f"s{i}"} for i in range(5)])
            big = tenant.create_region("big")
            for start in range(0, args.hosts, 5000):
                big.create_hosts([
                    {"name": f"h{i:05d}", "ip_address": f"10.{i // 65536}.{i // 256 % 256}."
                     f"{i % 256}", "variables": {f"v{k}": f"value-{i}-{k}" for k in range(10)}}
                    for i in range(start, min(start + 5000, args.hosts))])
            cli_env = {**{k: v for k, v in os.environ.items()
                          if not k.startswith(("CRATON_", "OS_"))}, "CRATON_URL": url}
            help_time, _ = best([CRATON, "--help"], cli_env, args.runs)
            small_time, _ = best([CRATON, "host", "list", "--region", str(small.id)], cli_env,
                                 args.runs)
            big_time, output = best([CRATON, "host", "list", "--region", str(big.id), "-f",
                                     "json"], cli_env, max(1, args.runs // 2))
            assert len(json.loads(output)) == args.hosts
            started = time.perf_counter()
            listed = sum(1 for _ in client.hosts.list(region=big.id))
            library_time = time.perf_counter() - started
    print(f"craton --help:                          {help_time:6.3f} s (target <= 0.4 s)")
    print(f"craton host list (5 hosts):             {small_time:6.3f} s (target <= 0.4 s)")
    print(f"craton host list -f json ({args.hosts:,} hosts): {big_time:6.3f} s (target <= 3 s)")
    print(f"client.hosts.list() ({listed:,} hosts, library): {library_time:6.3f} s")


if __name__ == "__main__":
    main()
