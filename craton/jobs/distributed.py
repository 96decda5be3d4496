"""The distributed engine: the API posts each job to a TaskFlow jobboard in Redis, and
``craton-worker`` processes run conductors that claim jobs and run their flows.

A flow's state lives in the SQL database (TaskFlow's persistence), so any worker can run any
job, and a job whose worker died resumes where it stopped. A claim lasts ``[jobs]
claim_expiry`` seconds and a heartbeat renews it while the job runs: when a worker dies — even
by SIGKILL — its claim lapses and another worker's conductor claims the job within seconds.
Tasks that were running then run again (host tasks return the recorded result of a host that
had finished, see ``craton.jobs.flows``).

Redis layout: the board keeps its keys under ``<[redis] prefix>:jobboard:`` — the listing of
posted jobs, and one ``….owned`` key per claimed job holding the worker's name — so
installations sharing one Redis (each with its own prefix) never see each other's jobs.
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
import os
import socket
import threading
import time
from typing import Any

import futurist
from redis import maint_notifications
from sqlalchemy import select
from taskflow import engines, states
from taskflow import exceptions as taskflow_errors
from taskflow import flow as taskflow_flow
from taskflow.conductors.backends import impl_nonblocking
from taskflow.jobs.backends import impl_redis
from taskflow.utils import redis_utils

from craton.config import without_password
from craton.db.models import Job, JobStatus
from craton.jobs.engine import EventListener, _fail_unfinished, logbook_for, store_for
from craton.jobs.flows import FetchSource, Materialize, build_flow, work_dir
from craton.jobs.runtime import JobRuntime

LOG = logging.getLogger(__name__)

POLL_SECONDS = 0.25
"""How often an idle worker looks for jobs to claim (posted or abandoned)."""


def redis_client(url: str) -> redis_utils.RedisClient:
    """A client as TaskFlow's jobboard wants it (one that refuses use once closed), from a
    redis:// URL; without the maintenance-notification probe redis-py 8 sends on every new
    connection, which Redis before 8 does not know."""
    return redis_utils.RedisClient.from_url(
        url, socket_timeout=5, socket_connect_timeout=5,
        maint_notifications_config=maint_notifications.MaintNotificationsConfig(enabled=False))


class Renewal(enum.Enum):
    RENEWED = "renewed"
    """The claim was ours and lasts another claim_expiry seconds."""
    RECLAIMED = "reclaimed"
    """The claim had lapsed and nobody else had taken the job: it is ours again."""
    LOST = "lost"
    """Another worker holds the job now."""
    GONE = "gone"
    """The job is no longer on the board."""


RENEW_SCRIPT = """
local owner = redis.call("get", KEYS[1])
if owner == ARGV[1] then
    redis.call("pexpire", KEYS[1], ARGV[3])
    return 1
end
if owner then
    return -1
end
if redis.call("hexists", KEYS[2], ARGV[2]) == 1 then
    redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[3])
    return 2
end
return 0
"""
RENEWALS = {1: Renewal.RENEWED, 2: Renewal.RECLAIMED, -1: Renewal.LOST, 0: Renewal.GONE}


class CratonJobBoard(impl_redis.RedisJobBoard):
    """TaskFlow's Redis jobboard whose claims expire unless renewed (TaskFlow's never expire by
    default, so a job whose worker was killed would stay claimed forever)."""

    def __init__(self, url: str, claim_expiry: float, *, prefix: str = "craton",
                 persistence: Any = None) -> None:
        super().__init__(prefix, {"namespace": f"{prefix}:jobboard", "url": url},
                         persistence=persistence)
        self.claim_expiry = claim_expiry
        self._renew: Any = None

    @classmethod
    def _make_client(cls, conf: dict[str, Any]) -> redis_utils.RedisClient:
        return redis_client(conf["url"])

    def connect(self) -> None:
        super().connect()
        self._renew = self._client.register_script(RENEW_SCRIPT)

    def claim(self, job: Any, who: str, expiry: float | None = None) -> None:
        super().claim(job, who, expiry=self.claim_expiry if expiry is None else expiry)

    def renew(self, job: Any, who: str) -> Renewal:
        """Extend our claim on ``job`` — atomically, only while it is still ours (extending a
        claim that lapsed meanwhile would extend another worker's)."""
        with impl_redis._translate_failures():
            found = self._renew(keys=[job.owner_key, self.listings_key],
                                args=[self._encode_owner(who), job.key,
                                      int(self.claim_expiry * 1000)])
        return RENEWALS[int(found)]

    def owner(self, job: Any) -> str | None:
        """Who holds ``job``, or None (``find_owner`` fails on an unclaimed job)."""
        with impl_redis._translate_failures():
            raw = self._client.get(job.owner_key)
        return self._decode_owner(raw) if raw else None

    def posted(self) -> dict[int, Any]:
        """The jobs on the board, by Craton job id."""
        found = {}
        for job in self._fetch_jobs():
            job_id = job_id_of(job)
            if job_id is not None:
                found[job_id] = job
        return found


def job_id_of(job: Any) -> int | None:
    job_id = (job.details or {}).get("job_id")
    return job_id if isinstance(job_id, int) else None


def make_board(rt: JobRuntime) -> CratonJobBoard:
    if not rt.settings.redis.url:
        raise RuntimeError("the distributed engine needs [redis] url")
    board = CratonJobBoard(rt.settings.redis.url, rt.settings.jobs.claim_expiry,
                           prefix=rt.settings.redis.prefix, persistence=rt.taskflow_backend())
    board.connect()
    return board


class DistributedEngine:
    """Posts jobs to the jobboard; ``craton-worker`` processes run them."""

    name = "distributed"
    POLL = 0.2

    def __init__(self, rt: JobRuntime) -> None:
        self.rt = rt
        self._board: CratonJobBoard | None = None
        self._lock = threading.Lock()

    def board(self) -> CratonJobBoard:
        with self._lock:
            if self._board is None:
                self._board = make_board(self.rt)
            return self._board

    def submit(self, job_id: int) -> None:
        """Post the job (its logbook carries the flow's factory). A job that cannot be posted
        fails at once, saying why, instead of waiting forever."""
        book, flow_detail = logbook_for(self.rt, job_id)
        try:
            self.board().post(f"job-{job_id}", book=book, details={
                "job_id": job_id, "flow_uuid": flow_detail.uuid,
                "store": store_for(self.rt, job_id)})
        except (taskflow_errors.JobFailure, taskflow_errors.StorageFailure) as error:
            LOG.error("could not post job %s to the jobboard: %s", job_id, error)
            with self._lock:
                self._board = None
            where = without_password(self.rt.settings.redis.url)
            _fail_unfinished(self.rt, job_id, RuntimeError(
                f"it could not be posted to the jobboard at {where}: {error}"))

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Return once the job has finished (whichever worker ran it); TimeoutError after
        ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.rt.db.transaction(write=False) as session:
                status = session.scalar(select(Job.status).where(Job.id == job_id))
            if status is None or JobStatus(status).finished:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
            time.sleep(self.POLL)

    def claimed_by(self, job_id: int) -> str | None:
        """The worker holding the job now (None: unclaimed, or no longer on the board)."""
        board = self.board()
        job = board.posted().get(job_id)
        return board.owner(job) if job is not None else None

    def resume_interrupted(self) -> list[int]:
        """Nothing to do here: workers take over interrupted jobs from the board."""
        return []

    def close(self) -> None:
        with self._lock:
            if self._board is not None:
                self._board.close()
                self._board = None


class _Pool(futurist.ThreadPoolExecutor):
    """A job's ``forks`` threads. Suspending cancels the work still queued at once: TaskFlow
    cancels it only after a running task ends — by when the freed thread has taken it."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers)
        self._pending: set[Any] = set()
        self._pending_lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        future = super().submit(fn, *args, **kwargs)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Any) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def cancel_queued(self) -> None:
        with self._pending_lock:
            pending = list(self._pending)
        for future in pending:
            future.cancel()  # no effect on one already running


class _Run:
    """One job a conductor is running."""

    def __init__(self, job_id: int, forks: int) -> None:
        self.job_id = job_id
        self.forks = forks
        self.executor = _Pool(forks)
        self.flow: Any = None
        self.engine: Any = None
        self.lost = threading.Event()
        self.suspending = threading.Event()

    def suspend(self) -> None:
        """Run the running tasks to their end, nothing more."""
        self.suspending.set()
        if self.engine is not None:
            self.engine.suspend()
        self.executor.cancel_queued()

    def cut_short(self) -> bool:
        """Whether the run stopped because it was suspended, with atoms left unrun.

        A parallel engine hands every ready atom to its executor at once; the executor runs
        ``forks`` of them and queues the rest. Suspending cancels the queued futures but
        leaves their atoms RUNNING, so TaskFlow then finds nothing left to do and calls the
        flow REVERTED — which would make the next engine reset and rerun the whole flow. Such
        a flow was suspended: its unrun atoms are resumed like interrupted ones."""
        if self.engine is None or not self.suspending.is_set():
            return False
        storage = self.engine.storage
        if storage.get_execute_failures() or storage.get_revert_failures():
            return False
        found = storage.get_atoms_states(_atom_names(self.flow))
        return any(state == states.RUNNING for state, _intention in found.values())


def _atom_names(flow: Any) -> list[str]:
    names = []
    for node, _meta in flow.iter_nodes():
        names.extend(_atom_names(node) if isinstance(node, taskflow_flow.Flow) else [node.name])
    return names


class _JobListener(EventListener):
    """The job's events; a run cut short by suspension says SUSPENDED, not TaskFlow's REVERTED
    (readers of the job's events take REVERTED for the job's end)."""

    def __init__(self, engine: Any, rt: JobRuntime, run: _Run) -> None:
        super().__init__(engine, rt, run.job_id)
        self.job_run = run

    def _flow_receiver(self, state: str, details: dict[str, Any]) -> None:
        if state == states.REVERTED and self.job_run.cut_short():
            state = states.SUSPENDED
        super()._flow_receiver(state, details)


class Heartbeat(threading.Thread):
    """Renews a claim every third of its expiry while the job runs; when another worker took
    the job over (this process stalled past the expiry), suspends our run of it."""

    def __init__(self, board: CratonJobBoard, job: Any, who: str, run: _Run) -> None:
        super().__init__(name=f"craton-heartbeat-{run.job_id}", daemon=True)
        self.board = board
        self.job = job
        self.who = who
        self.job_run = run
        self.interval = max(board.claim_expiry / 3.0, 0.2)
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.join(5)

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                renewal = self.board.renew(self.job, self.who)
            except taskflow_errors.JobFailure as error:
                LOG.warning("could not renew the claim on job %s: %s", self.job_run.job_id, error)
                continue
            if renewal is Renewal.RECLAIMED:
                LOG.warning("the claim on job %s had lapsed; claimed it again", self.job_run.job_id)
            elif renewal is Renewal.LOST:
                LOG.error("job %s was taken over by %s: stopping this run of it",
                          self.job_run.job_id, self.board.owner(self.job))
                self.job_run.lost.set()
                self.job_run.suspend()
                return
            elif renewal is Renewal.GONE:
                LOG.warning("job %s is no longer on the jobboard; running it to its end",
                            self.job_run.job_id)
                return


class Conductor(impl_nonblocking.NonBlockingConductor):
    """Claims jobs (up to ``[jobs] concurrent_jobs`` at once) and runs each with the parallel
    engine on a pool of the job's ``forks`` threads, keeping its claim alive meanwhile."""

    def __init__(self, rt: JobRuntime, board: CratonJobBoard, name: str | None = None) -> None:
        jobs = rt.settings.jobs.concurrent_jobs
        # concurrent.futures, not futurist: futurist's idle threads notice a shutdown only
        # once a second, which would delay every stop by that much.
        super().__init__(name or worker_name(), board, persistence=rt.taskflow_backend(),
                         engine="parallel", wait_timeout=POLL_SECONDS,
                         max_simultaneous_jobs=jobs,
                         executor_factory=lambda: concurrent.futures.ThreadPoolExecutor(
                             max_workers=jobs, thread_name_prefix="craton-job"))
        self.rt = rt
        self.board = board
        self._local = threading.local()
        self._runs: dict[int, _Run] = {}
        self._lost: set[str] = set()
        self._runs_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def stop(self) -> None:
        """Claim nothing more; running jobs stop after their running tasks (suspended) and are
        abandoned to other workers, which resume them."""
        super().stop()
        with self._runs_lock:
            runs = list(self._runs.values())
        for run in runs:
            run.suspend()

    def running(self) -> list[int]:
        with self._runs_lock:
            return sorted(self._runs)

    def _dispatch_job(self, job: Any) -> bool:
        """Run one claimed job; True to consume it (done), False to abandon it (to be resumed
        by whichever worker claims it next)."""
        job_id = job_id_of(job)
        if job_id is None:
            LOG.error("jobboard entry %s is not a Craton job: dropping it", job)
            return True
        with self.rt.db.transaction(write=False) as session:
            row = session.execute(select(Job.status, Job.forks).where(Job.id == job_id)).first()
        if row is None or JobStatus(row.status).finished:
            return True  # deleted, or finished by a worker that died before consuming it
        run = _Run(job_id, row.forks)
        heartbeat = Heartbeat(self.board, job, self._name, run)
        self.rt.local_jobs.add(job_id)
        with self._runs_lock:
            self._runs[job_id] = run
        heartbeat.start()
        error: Exception | None = None
        self._local.run = run
        try:
            consume = super()._dispatch_job(job)
        except Exception as failure:  # the flow could not even be loaded
            LOG.exception("job %s could not run", job_id)
            error, consume = failure, True
        finally:
            # The engine has waited for its tasks: nothing is left to wait for (and waiting
            # for futurist's idle threads would cost a second).
            run.executor.shutdown(wait=False)
            self._local.run = None
            heartbeat.stop()
            with self._runs_lock:
                self._runs.pop(job_id, None)
            self.rt.local_jobs.discard(job_id)
        if run.lost.is_set():
            with self._runs_lock:
                self._lost.add(job.uuid)
            return False  # the flow is another worker's now: leave its state alone
        if run.cut_short():
            run.engine.storage.set_flow_state(states.SUSPENDED)
            LOG.info("job %s suspended after its running tasks: back to the board", job_id)
            return False
        if consume:
            _fail_unfinished(self.rt, job_id, error or RuntimeError(_why_stopped(run.engine)))
        return consume

    def _try_finish_job(self, job: Any, consume: bool, trash: bool = False) -> None:
        """Consume or abandon the job — unless it is another worker's now."""
        with self._runs_lock:
            if job.uuid in self._lost:
                self._lost.discard(job.uuid)
                return
        super()._try_finish_job(job, consume, trash)

    def _engine_from_job(self, job: Any) -> Any:
        """The job's flow, rebuilt in this process (the store names this worker's runtime, so
        the API and the workers need not spell the database URL alike)."""
        run: _Run = self._local.run
        flow_detail = self._flow_detail_from_job(job)
        self._restore_work_dir(run.job_id, flow_detail)
        run.flow = build_flow(run.job_id, self.rt.key)
        run.engine = engines.load(
            run.flow, store=store_for(self.rt, run.job_id), flow_detail=flow_detail,
            book=job.book, backend=self._persistence, engine="parallel",
            executor=run.executor)
        if self._wait_timeout.is_stopped():
            run.suspending.set()  # stop() came before this run was known to it
        return run.engine

    def _listeners_from_job(self, job: Any, engine: Any) -> list[Any]:
        return [*super()._listeners_from_job(job, engine),
                _JobListener(engine, self.rt, self._local.run)]

    def _restore_work_dir(self, job_id: int, flow_detail: Any) -> None:
        """A job taken over from a worker on another machine resumes after the steps that
        prepared its work directory there: prepare it here again."""
        done = {atom.name for atom in flow_detail if atom.state == states.SUCCESS}
        for step, kept in ((Materialize(), "bundle"), (FetchSource(), "project")):
            if step.name in done and not (work_dir(self.rt, job_id) / kept).is_dir():
                LOG.info("job %s: preparing %s again in this worker", job_id, kept)
                step.execute(runtime_key=self.rt.key, job_id=job_id)


def _why_stopped(engine: Any) -> str:
    """What the flow says about an end its own revert did not record."""
    if engine is None:
        return "its flow could not be loaded"
    try:
        failures = list(engine.storage.get_execute_failures().values()) + \
            list(engine.storage.get_revert_failures().values())
        state = engine.storage.get_flow_state()
    except Exception:  # storage unavailable: say what we know
        return "its flow stopped unexpectedly"
    texts = "; ".join(f"{f.exception_str}" for f in failures)
    return f"its flow ended {state}" + (f": {texts}" if texts else "")


def worker_name() -> str:
    return f"craton-worker@{socket.gethostname()}:{os.getpid()}"
