"""The job event pipeline: throughput (events stored in job_events and published to the job's
Redis stream per second) and the delay from an event's creation to a Server-Sent Events reader
(a real craton-api server over HTTP, in another process).

Targets (issue 4): >= 5,000 events/s stored and published; p99 delay <= 100 ms.
Starts its own redis-server (Debian's) on a free loopback port and stops it by PID.

    python benchmarks/events.py [--events 50000] [--rate 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import statistics
import tempfile
import threading
import time

import redis
from servers import craton_api, embedded_app, redis_server

from craton.db.models import Job, JobStatus
from craton.db.session import Database
from craton.jobs.events import Event


def make_region(client) -> int:
    tenant = client.post("/v1/tenants", json={"name": "bench"}).get_json()
    region = client.post(f"/v1/tenants/{tenant['id']}/regions", json={"name": "r"}).get_json()
    client.post(f"/v1/regions/{region['id']}/hosts", json={"name": "h"})
    return region["id"]


def new_job(db: Database, region_id: int) -> int:
    """A running job row no engine owns (an embedded server would resume its own jobs)."""
    with db.transaction() as session:
        job = Job(region_id=region_id, status=JobStatus.RUNNING, playbook="bench",
                  layout="ansible", filters_json="{}", plan_json="{}", forks=1,
                  extra_vars_json="{}", engine="benchmark", created_by="bench",
                  cancel_requested=False)
        session.add(job)
        session.flush()
        return job.id


def throughput(system, db: Database, region_id: int, count: int, redis_url: str) -> float:
    job_id = new_job(db, region_id)
    runtime = system.runtime
    payload = {"task": "a task name of a usual length", "task_action": "ansible.builtin.copy",
               "changed": True, "msg": "x" * 80}
    started = time.perf_counter()
    for index in range(count):
        runtime.sink.emit(Event(job_id=job_id, kind="runner_on_ok", host=f"h{index % 100}",
                                data=payload))
    runtime.sink.flush(120)
    elapsed = time.perf_counter() - started
    stored = redis.Redis.from_url(redis_url).xlen(runtime.redis.stream(job_id))
    assert stored == count, (stored, count)
    return count / elapsed


def sse_delays(server_port: int, db: Database, region_id: int, rate: int, seconds: float,
               emit) -> list[float]:
    job_id = new_job(db, region_id)
    delays: list[float] = []
    connection = http.client.HTTPConnection("127.0.0.1", server_port, timeout=30)
    connection.request("GET", f"/v1/jobs/{job_id}/events",
                       headers={"Accept": "text/event-stream"})
    response = connection.getresponse()
    total = int(rate * seconds)
    done = threading.Event()

    def read() -> None:
        for raw in response:
            line = raw.decode()
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if "sent" not in event.get("data", {}):
                    continue
                created = dt.datetime.fromisoformat(event["data"]["sent"])
                delays.append((dt.datetime.now(dt.UTC) - created).total_seconds())
                if len(delays) >= total:
                    break
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for index in range(total):
        emit(job_id, index)
        next_at += interval
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    done.wait(30)
    connection.close()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1000, help="events/s for the delay run")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with (tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url,
          embedded_app(tmp, redis_url) as (app, db, db_url)):
        region_id = make_region(app.test_client())
        system = app.extensions["craton"].jobs
        rate = throughput(system, db, region_id, args.events, redis_url)
        print(f"throughput: {args.events:,} events stored in job_events and published to "
              f"Redis at {rate:,.0f} events/s (target >= 5,000)")

        def emit(job_id: int, index: int) -> None:
            sent = dt.datetime.now(dt.UTC).isoformat()
            system.runtime.sink.emit(Event(job_id=job_id, kind="runner_on_ok",
                                           host="h", data={"sent": sent, "i": index}))

        with craton_api(tmp, db_url, redis_url) as port:
            delays = sse_delays(port, db, region_id, args.rate, args.seconds, emit)
        delays.sort()
        p50 = statistics.median(delays) * 1000
        p99 = delays[int(len(delays) * 0.99) - 1] * 1000
        print(f"SSE delay over real HTTP (another process, via Redis): {len(delays):,} "
              f"events at {args.rate}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {delays[-1] * 1000:.1f} ms (target p99 <= 100 ms)")

if __name__ == "__main__":
    main()
