"""The distributed engine as an operator runs it: the API posts jobs to a jobboard in a real
redis-server and ``craton-worker`` processes claim and run them, sharing the API's database
(a SQLite file) and data directory, each with a work directory of its own as if on its own
machine. Settings reach the workers the way an operator's would: ``CRATON_*`` variables.

A worker killed mid-job (SIGKILL: no goodbye) is replaced within seconds by another that
resumes the job where it stopped: the waves that had finished are not run again, the wave that
was running is, and the job's event record has no hole and no duplicate. A worker stopped with
SIGTERM hands its job back after its running wave finishes, and nothing runs twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from craton.db import migrate
from craton.db.models import JobEvent, JobHost
from craton.db.session import Database
from craton.jobs.distributed import DistributedEngine, posted
from craton.values import utcnow
from tests import services
from tests.functional.job_helpers import (
    Fleet,
    JobApp,
    app_on,
    events,
    get_job,
    job_body,
    job_hosts,
    job_settings,
    make_fleet,
    play,
    read_stream,
    submit,
    wait_job,
)

BIN = Path(sys.executable).parent
CLAIM_EXPIRY = 3
NAP = 1.5
"""Seconds each host of the takeover job sleeps: the window in which its worker is killed."""
PLAYBOOK = play("""
name: nap
ansible.builtin.command: sleep {{ nap | default(0) }}
""")


@dataclasses.dataclass
class Grid:
    """The API side (an app with the distributed engine) and what workers need to join it."""

    job_app: JobApp
    env: dict[str, str]
    root: Path

    @property
    def naps(self) -> Path:
        """The playbook directory of every test here, in a sources root all tenants share."""
        return self.root / "data" / "sources" / "naps"

    @property
    def engine(self) -> DistributedEngine:
        engine = self.job_app.app.extensions["craton"].jobs.engine
        assert isinstance(engine, DistributedEngine)
        return engine


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Redis]:
    """A redis-server of this module's own: its jobboard sees only these tests' jobs."""
    with services.redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, redis: services.Redis) -> Iterator[Grid]:
    root = tmp_path_factory.mktemp("grid")
    data = root / "data"
    (data / "sources" / "naps").mkdir(parents=True)
    (data / "sources" / "naps" / "site.yml").write_text(PLAYBOOK)
    url = f"sqlite:///{data / 'craton.db'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    # One root shared by every tenant (no {tenant} in it): these tests are about workers, and
    # their fleets belong to several tenants.
    shared = str(data / "sources")
    settings = job_settings(data, database_url=url, redis_url=redis.url, engine="distributed",
                            claim_expiry=CLAIM_EXPIRY, file_roots=(shared,))
    env = services.environment_without_craton()
    env.update(HOME=str(root), CRATON_DATA_DIR=str(data), CRATON_DATABASE_URL=url,
               CRATON_JOBS_ENGINE="distributed", CRATON_REDIS_URL=redis.url,
               CRATON_JOBS_CLAIM_EXPIRY=str(CLAIM_EXPIRY), CRATON_SOURCES_FILE_ROOTS=shared)
    with app_on(db, settings) as job_app:
        yield Grid(job_app=job_app, env=env, root=root)
    db.dispose()


@dataclasses.dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    work_dir: Path

    @property
    def name_suffix(self) -> str:
        """How the worker's claims end: craton-worker@<hostname>:<pid>."""
        return f":{self.process.pid}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@contextlib.contextmanager
def workers(grid: Grid, *names: str) -> Iterator[list[Worker]]:
    """``craton-worker`` processes (each with a work directory of its own), stopped by PID on
    the way out; their logs are shown when a test fails."""
    started: list[Worker] = []
    try:
        for name in names:
            work_dir = grid.root / f"work-{name}"
            log = grid.root / f"worker-{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [str(BIN / "craton-worker")], stdout=out, stderr=subprocess.STDOUT,
                    env={**grid.env, "CRATON_JOBS_WORK_DIR": str(work_dir)}, cwd=grid.root)
            started.append(Worker(process=process, log=log, work_dir=work_dir))
        yield started
    except BaseException:
        for worker in started:
            print(f"--- worker {worker.process.pid} ---\n{worker.tail()}")
        raise
    finally:
        for worker in started:
            services.stop(worker.process)


def stored_events(grid: Grid, job_id: int) -> list[JobEvent]:
    with grid.job_app.db.transaction(write=False) as session:
        return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                                    .order_by(JobEvent.seq)))


def assert_record_whole(grid: Grid, job_id: int) -> list[JobEvent]:
    """Every event once: sequence numbers 1..n without a gap, no event stored twice."""
    rows = stored_events(grid, job_id)
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    uuids = [row.uuid for row in rows]
    assert len(set(uuids)) == len(uuids)
    return rows


def test_a_worker_runs_what_the_api_posts(grid: Grid) -> None:
    """An operator runs the API with [jobs] engine = distributed and starts craton-worker: a
    job posted through the API is run by the worker, and the user sees its per-host results
    and every event — live, through the API's event stream, from another process."""
    client = grid.job_app.client
    fleet = make_fleet(client, ["web-1", "web-2", "web-3"], tenant="story")
    source = {"path": str(grid.naps)}
    with workers(grid, "solo"):
        job = submit(client, job_body(fleet, "site.yml", source, layout="ansible"))
        assert job["engine"] == "distributed"
        stream = read_stream(client, job["id"], timeout=60)
        finished = wait_job(client, job["id"], timeout=10)
    assert stream.ended and stream.end["status"] == "succeeded", stream
    assert finished["status"] == "succeeded", finished
    assert finished["hosts"]["changed"] == 3 and finished["hosts"]["total"] == 3
    hosts = job_hosts(client, job["id"])
    assert {name: row["status"] for name, row in hosts.items()} == {
        "web-1": "changed", "web-2": "changed", "web-3": "changed"}
    assert all(row["finished_at"] for row in hosts.values())
    paged = events(client, job["id"])
    assert stream.events == paged
    assert stream.ids == [event["seq"] for event in paged]
    assert_record_whole(grid, job["id"])
    for host in hosts:
        mine = [e["kind"] for e in paged if e["host"] == host]
        assert "runner_on_ok" in mine and mine.count("host_result") == 1, (host, mine)
    assert [e["data"]["status"] for e in paged if e["kind"] == "job" and "status" in e["data"]
            ] == ["running", "succeeded"]
    assert paged[-1]["kind"] == "taskflow.flow" and paged[-1]["data"]["state"] == "SUCCESS"
    assert grid.engine.claimed_by(job["id"]) is None  # consumed: off the board


def test_installations_sharing_one_redis_keep_their_jobs_apart(
        grid: Grid, redis: services.Redis, tmp_path: Path) -> None:
    """A second installation (its own database, [redis] prefix "other") posts a job to the
    same Redis while this installation's worker runs: the worker runs its own job and leaves
    the other's alone — unclaimed, on the other's board, still pending."""
    data = tmp_path / "other"
    data.mkdir()
    url = f"sqlite:///{data / 'craton.db'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    settings = job_settings(data, database_url=url, redis_url=redis.url, engine="distributed",
                            claim_expiry=CLAIM_EXPIRY)
    settings = dataclasses.replace(
        settings, redis=dataclasses.replace(settings.redis, prefix="other"))
    try:
        with app_on(db, settings) as other, workers(grid, "ours"):
            theirs = submit(other.client, {
                "region_id": make_fleet(other.client, ["o1"], tenant="other").region_id,
                "playbook": "craton:ping"})
            ours = submit(grid.job_app.client, {
                "region_id": make_fleet(grid.job_app.client, ["m1"], tenant="ours").region_id,
                "playbook": "craton:ping"})
            assert wait_job(grid.job_app.client, ours["id"], timeout=60)["status"] == "succeeded"
            board = other.app.extensions["craton"].jobs.engine
            assert theirs["id"] in posted(board.board())
            assert board.claimed_by(theirs["id"]) is None
            assert get_job(other.client, theirs["id"])["status"] == "pending"
    finally:
        db.dispose()


def test_a_live_reader_waits_on_redis_quietly(grid: Grid,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A user follows a job live while its host is silent for a few seconds (a long task):
    the API, which learns of the worker's events through Redis, keeps waiting on Redis — it
    neither decides Redis is down nor tells the operator so in its log."""
    client = grid.job_app.client
    fleet = make_fleet(client, ["quiet-1"], tenant="quiet")
    source = {"path": str(grid.naps)}
    with workers(grid, "quiet"):
        job = submit(client, job_body(fleet, "site.yml", source, extra_vars={"nap": 2.5}))
        with caplog.at_level(logging.WARNING, logger="craton.jobs.events"):
            stream = read_stream(client, job["id"], timeout=60)
    assert stream.ended and stream.end["status"] == "succeeded", stream
    assert [r.getMessage() for r in caplog.records if r.name == "craton.jobs.events"] == []
    assert grid.job_app.app.extensions["craton"].jobs.runtime.redis.up


def two_waves(grid: Grid, tenant: str) -> tuple[Fleet, list[str], list[str]]:
    """A fleet whose job runs in two waves: the ``then`` hosts depend on the ``first`` ones."""
    first, then = [f"{tenant}-a{i}" for i in range(1, 4)], [f"{tenant}-b{i}" for i in range(1, 4)]
    fleet = make_fleet(grid.job_app.client, first + then, tenant=tenant, groups=[
        {"name": "first", "hosts": first},
        {"name": "then", "hosts": then, "depends_on": ["first"]}])
    return fleet, first, then


def test_a_killed_worker_s_job_is_taken_over(grid: Grid) -> None:
    """A worker dies (SIGKILL) in the middle of a job's second wave: another worker takes the
    job over within seconds of the claim expiring and finishes it. The first wave's hosts are
    not run again; the second wave runs again, once; the job's events are whole."""
    client = grid.job_app.client
    fleet, first_wave, second_wave = two_waves(grid, "takeover")
    with workers(grid, "a", "b") as pair:
        job_id, first, other = submit_naps(grid, fleet, pair)
        before = wait_for_mid_nap(grid, job_id, napping=second_wave, done=first_wave)
        assert processes_on(first.work_dir)  # its Ansible runs, which must die with it
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(5)
        killed_at = time.monotonic()
        assert owner_of(grid, job_id, pair, timeout=CLAIM_EXPIRY + 5) is other
        takeover = time.monotonic() - killed_at
        stream = read_stream(client, job_id, timeout=60)
        finished = get_job(client, job_id)
        # The new owner stops what the dead worker's runs left on this machine before it runs
        # those hosts again: nothing of them outlives the job.
        orphans = processes_on(first.work_dir, grace=0.5)
        for orphan in orphans:  # recorded (asserted on last): stop them, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(orphan.split(":")[0]), signal.SIGKILL)
    print(f"takeover after {takeover:.2f}s (claim expiry {CLAIM_EXPIRY}s)")
    assert takeover <= CLAIM_EXPIRY + 2
    assert finished["status"] == "succeeded", finished
    assert stream.end == {"status": "succeeded", "last": len(stream.events)}, stream.end
    assert stream.ids == list(range(1, len(stream.events) + 1))
    rows = job_rows(grid, job_id)
    assert {name: row.status.value for name, row in rows.items()} == dict.fromkeys(
        first_wave + second_wave, "changed")
    for name in first_wave:  # untouched since the kill
        assert (rows[name].started_at, rows[name].finished_at) == (
            before[name].started_at, before[name].finished_at), name
    record = assert_record_whole(grid, job_id)
    for name in first_wave + second_wave:
        kinds = [row.kind for row in record if row.host == name]
        assert kinds.count("host_result") == 1, (name, kinds)
        assert kinds.count("runner_on_start") == (2 if name in second_wave else 1), (name, kinds)
    flow_states = [row.data_json for row in record if row.kind == "taskflow.flow"]
    assert sum('"SUCCESS"' in state for state in flow_states) == 1
    assert grid.engine.claimed_by(job_id) is None
    # The dead worker's Ansible must not run on, unseen, beside the runs that replace it.
    assert not orphans, "the killed worker's ansible-playbook runs outlived the job:\n" + \
        "\n".join(orphans)


def submit_naps(grid: Grid, fleet: Fleet, pair: list[Worker]) -> tuple[int, Worker, Worker]:
    """Submit the napping playbook over ``fleet``; returns the job's id, the worker of ``pair``
    that claimed it and the other one."""
    job = submit(grid.job_app.client, job_body(fleet, "site.yml", {"path": str(grid.naps)},
                                               forks=4, extra_vars={"nap": NAP}))
    first = owner_of(grid, job["id"], pair)
    return job["id"], first, next(w for w in pair if w is not first)


def owner_of(grid: Grid, job_id: int, pool: list[Worker], timeout: float = 30) -> Worker:
    """The worker that holds the job's claim on the board (waiting for one that is alive)."""
    deadline = time.monotonic() + timeout
    while True:
        owner = grid.engine.claimed_by(job_id) or ""
        for worker in pool:
            if owner.endswith(worker.name_suffix) and worker.process.poll() is None:
                return worker
        assert time.monotonic() < deadline, f"no live worker claimed job {job_id} ({owner!r})"
        time.sleep(0.05)


def job_rows(grid: Grid, job_id: int) -> dict[str, JobHost]:
    with grid.job_app.db.transaction(write=False) as session:
        return {row.host_name: row for row in session.scalars(
            select(JobHost).where(JobHost.job_id == job_id))}


def wait_for_mid_nap(grid: Grid, job_id: int, *, napping: list[str], done: list[str],
                     timeout: float = 40) -> dict[str, JobHost]:
    """Wait until the ``done`` hosts have their results stored and every ``napping`` host is
    early in its nap (it began less than NAP - 0.8 s ago) — a moment when no host is about to
    finish — and return the hosts as they were then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = job_rows(grid, job_id)
        record = stored_events(grid, job_id)
        results = {row.host for row in record if row.kind == "host_result"}
        started = {row.host: row.created_at for row in record if row.kind == "runner_on_start"
                   and row.host in napping}
        now = utcnow()
        if set(done) <= results and all(rows[name].status.finished for name in done) and \
                set(started) == set(napping) and \
                all((now - at).total_seconds() < NAP - 0.8 for at in started.values()):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached the middle of a nap")


def processes_on(work_dir: Path, grace: float = 0) -> list[str]:
    """Processes running on a worker's work directory (its Ansible runs); with ``grace``,
    waits up to that long for there to be none."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    if str(work_dir).encode() in cmdline:
                        found.append(f"{pid}: {cmdline.decode(errors='replace')}")
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def test_a_stopped_worker_hands_its_job_over(grid: Grid) -> None:
    """An operator stops a worker (SIGTERM) in the middle of a job's first wave: it lets that
    wave's run finish, hands the job back to the board and exits 0; another worker resumes the
    job at once (no waiting for the claim to expire) with the second wave, and no host runs
    twice."""
    client = grid.job_app.client
    fleet, first_wave, second_wave = two_waves(grid, "handover")
    with workers(grid, "c", "d") as pair:
        job_id, first, other = submit_naps(grid, fleet, pair)
        wait_for_mid_nap(grid, job_id, napping=first_wave, done=[])
        first.process.send_signal(signal.SIGTERM)
        asked_at = time.monotonic()
        assert first.process.wait(30) == 0, first.tail()
        exited_at = time.monotonic()
        assert owner_of(grid, job_id, pair, timeout=CLAIM_EXPIRY) is other
        claimed_at = time.monotonic()
        stream = read_stream(client, job_id, timeout=60)
        finished = get_job(client, job_id)
    print(f"stopped worker exited {exited_at - asked_at:.2f}s after SIGTERM; the other held "
          f"the job {claimed_at - asked_at:.2f}s after SIGTERM")
    assert claimed_at - exited_at < 1  # handed back, not left to expire
    assert "stopped" in first.tail()
    assert finished["status"] == "succeeded", finished
    assert stream.end == {"status": "succeeded", "last": len(stream.events)}, stream.end
    rows = job_rows(grid, job_id)
    assert {name: row.status.value for name, row in rows.items()} == dict.fromkeys(
        first_wave + second_wave, "changed")
    record = assert_record_whole(grid, job_id)
    for name in first_wave + second_wave:
        kinds = [row.kind for row in record if row.host == name]
        assert kinds.count("runner_on_start") == 1 and kinds.count("host_result") == 1, (
            name, kinds)
    flow_states = [row.data_json for row in record if row.kind == "taskflow.flow"]
    assert sum('"SUSPENDED"' in state for state in flow_states) == 1
    assert sum('"SUCCESS"' in state for state in flow_states) == 1


def test_worker_refuses_the_embedded_engine(grid: Grid) -> None:
    """craton-worker started where the API runs jobs itself (the embedded engine), or without
    Redis, refuses to start with a one-line reason and exit status 2."""
    for override, reason in (({"CRATON_JOBS_ENGINE": "embedded"}, "engine = distributed"),
                             ({"CRATON_REDIS_URL": ""}, "needs [redis] url")):
        done = subprocess.run([str(BIN / "craton-worker")], env={**grid.env, **override},
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("craton-worker: "), done.stderr
        assert reason in lines[0]
