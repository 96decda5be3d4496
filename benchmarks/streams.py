"""Event streams must not starve the API: GET /v1/hosts/{id} latency while 500 watchers
follow a running job's Server-Sent Events, against the same requests with no watcher — the
same craton-api (embedded engine, SQLite), the same running job, phases interleaved.

Target (issue 9): with >= 500 concurrent watchers, GET /v1/hosts/{id} p99 within 2x of its
p99 without them.

    python benchmarks/streams.py [--watchers 500] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from servers import craton_api

from craton.db import migrate
from craton.db.session import make_engine

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
""" + "".join(f"""    - name: step {index}
      ansible.builtin.command: sleep 0.4
      changed_when: false
""" for index in range(30))


class Api:
    """One keep-alive connection (opened again when the server closed an idle one)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            try:
                self.connection.request(method, path,
                                        json.dumps(body) if body is not None else None, headers)
                response = self.connection.getresponse()
                data = response.read()
                return response.status, (json.loads(data) if data else {})
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def setup(api: Api, sources: Path) -> tuple[int, int]:
    _, tenant = api.call("POST", "/v1/tenants", {"name": "bench"})
    _, region = api.call("POST", f"/v1/tenants/{tenant['id']}/regions", {
        "name": "bench", "variables": {
            "ansible_connection": "local",
            "ansible_python_interpreter": os.path.abspath(sys.executable)}})
    status, hosts = api.call("POST", f"/v1/regions/{region['id']}/hosts",
                             [{"name": f"node-{index:02d}"} for index in range(40)])
    assert status == 201, hosts
    source = sources / str(tenant["id"]) / "bench"
    source.mkdir(parents=True)
    (source / "play.yml").write_text(PLAYBOOK)
    status, job = api.call("POST", "/v1/jobs", {
        "region_id": region["id"], "playbook": "play.yml", "layout": "ansible", "forks": 10,
        "source": {"path": str(source)}})
    assert status == 202, job
    return hosts["items"][0]["id"], job["id"]


async def watch(port: int, job_id: int, user: str, seen: list[int],
                stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Accept: text/event-stream\r\nX-Craton-User: {user}\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    assert b" 200 " in status, status
    while not stop.is_set():
        try:
            chunk = await asyncio.wait_for(reader.read(65536), 0.5)
        except TimeoutError:
            continue
        if not chunk:
            break
        seen[0] += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
    writer.close()


def latencies(api: Api, host_id: int, count: int) -> list[float]:
    found = []
    for _ in range(count):
        started = time.perf_counter()
        status, _ = api.call("GET", f"/v1/hosts/{host_id}")
        found.append(time.perf_counter() - started)
        assert status == 200
        time.sleep(0.01)
    return found


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        engine = make_engine(db_url)
        migrate.upgrade(engine)
        engine.dispose()
        try:
            with craton_api(tmp, db_url, "") as port:
                measured = measure(port, Path(tmp), args)
        except Exception:
            log = Path(tmp) / "craton-api.log"
            print(log.read_text()[-3000:] if log.exists() else "(no server log)")
            raise
    report(args, *measured)


def measure(port: int, tmp: Path, args: argparse.Namespace
            ) -> tuple[list[float], list[float], int, str]:
    """GETs without watchers, then with them, then without again — while the job runs."""
    api = Api(port)
    host_id, job_id = setup(api, tmp / "sources")
    while api.call("GET", f"/v1/jobs/{job_id}")[1]["status"] == "pending":
        time.sleep(0.1)
    latencies(api, host_id, 50)  # warm up
    idle = latencies(api, host_id, args.requests // 2)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    seen = [0]

    def run_watchers() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.gather(*(
            watch(port, job_id, f"watcher-{index}", seen, stop)
            for index in range(args.watchers))))

    thread = threading.Thread(target=run_watchers, daemon=True)
    thread.start()
    time.sleep(3)
    watched = latencies(api, host_id, args.requests)
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    idle += latencies(api, host_id, args.requests // 2)
    status = api.call("GET", f"/v1/jobs/{job_id}")[1]["status"]
    return idle, watched, seen[0], status


def report(args: argparse.Namespace, idle: list[float], watched: list[float], seen: int,
           status: str) -> None:
    print(f"GET /v1/hosts/{{id}} while a job runs ({status} at the end), "
          f"{args.requests} requests per phase")
    print(f"  no watchers    p50 {statistics.median(idle) * 1000:.1f} ms  "
          f"p99 {p99(idle) * 1000:.1f} ms")
    print(f"  {args.watchers} watchers   p50 {statistics.median(watched) * 1000:.1f} ms  "
          f"p99 {p99(watched) * 1000:.1f} ms   ({seen:,} events delivered to the "
          "watchers)")
    print(f"  p99 ratio {p99(watched) / p99(idle):.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
